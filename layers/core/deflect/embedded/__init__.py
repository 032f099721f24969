"""Embedded defaults used when no AWS is configured: search engine, embeddings, local model.

Dev-only dependencies (tantivy, onnxruntime, tokenizers, numpy) are imported inside these modules, lazily;
production code paths never import this package.
"""
