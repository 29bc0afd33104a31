"""Golden images: reference renders made by our own code, compared perceptually.

Regenerate after an intended visual change with ``python -m tests.golden.regenerate``
(or ``GOLDEN_REGENERATE=1 pytest tests/test_rendering_golden.py``), then look at the
PNGs before committing them.
"""
