"""Benchmarks and the peers they compare: see README.md, "Benchmarks"."""
