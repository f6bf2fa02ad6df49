"""Benchmarks: run as modules (``python -m benchmarks.api``); see ``benchmarks/README.md``."""
