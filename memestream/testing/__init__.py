"""What tests and benchmarks share to run the platform: its processes (API, workers) started
and awaited, the store URLs handed to them, rows seeded as a worker would leave them.

Benchmarks import this package, never `tests/` (test modules are not a library); tests import
it too, so both start processes the same way.
"""
