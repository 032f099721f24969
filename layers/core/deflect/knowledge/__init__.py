"""Governed knowledge: articles and their versions, chunking, ingestion, search and knowledge gaps.

Import the pieces from their modules (`deflect.knowledge.ingestion`, `.search`, ...); this package file stays
empty so that importing a model never drags in a service.
"""
