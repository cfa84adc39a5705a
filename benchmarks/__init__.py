"""Benchmarks and the peers they compare: see docs/how-to/load.md and docs/models.md."""
