"""Benchmark scripts; `python -m benchmarks.report` runs them and writes BENCHMARKS.md."""
