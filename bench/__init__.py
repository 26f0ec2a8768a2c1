"""Benchmarks of the Corral API server: ``python -m bench.run`` (see bench/README.md)."""
