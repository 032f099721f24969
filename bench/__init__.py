"""Benchmarks: speed and size numbers, run by hand or by `make bench` (`python -m bench`), never as tests."""
