"""Golden images: renders must stay perceptually equal to the stored references.

Set GOLDEN_REGENERATE=1 (or run ``python -m tests.golden.regenerate``) after an
intended visual change. On failure the actual image is written to
``artifacts/golden/`` for a side-by-side look.
"""

from __future__ import annotations

import os

import pytest
from PIL import Image, ImageDraw

from domain.settings import PROJECT_ROOT
from tests.golden.cases import CASES, compare, path_for, reduce, save

#: Tolerances: small enough to catch a missing outline or a shifted line of text,
#: large enough for codec and resampling noise across library versions.
MAX_MEAN_ABS = 3.0
MAX_WORST_BLOCK = 28.0
MIN_SSIM = 0.93


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden(name: str) -> None:
    actual = CASES[name]()
    if os.environ.get("GOLDEN_REGENERATE") == "1":
        save(name, actual)
    path = path_for(name)
    assert path.exists(), f"no golden for {name}; run python -m tests.golden.regenerate {name}"
    reference = Image.open(path).convert("RGB")
    scores = compare(actual, reference)
    ok = (
        scores["mean_abs"] <= MAX_MEAN_ABS
        and scores["worst_block"] <= MAX_WORST_BLOCK
        and scores["ssim"] >= MIN_SSIM
    )
    if not ok:
        out = PROJECT_ROOT / "artifacts" / "golden"
        out.mkdir(parents=True, exist_ok=True)
        reduce(actual).save(out / f"{name}.actual.png")
    assert ok, f"{name} drifted from its golden image: {scores}"


def test_goldens_are_small() -> None:
    for name in CASES:
        assert path_for(name).stat().st_size < 40 * 1024, name


def test_comparison_catches_missing_text() -> None:
    """The tolerance is not so loose that dropping a caption would pass."""
    actual = CASES["classic"]()
    reference = Image.open(path_for("classic")).convert("RGB")
    assert compare(actual, reference)["mean_abs"] <= MAX_MEAN_ABS
    erased = actual.copy()
    ImageDraw.Draw(erased).rectangle((16, 440, 584, 590), fill=(60, 30, 60))
    scores = compare(erased, reference)
    assert scores["worst_block"] > MAX_WORST_BLOCK or scores["ssim"] < MIN_SSIM
