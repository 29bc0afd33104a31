"""Rewrite every golden PNG from the current code: ``python -m tests.golden.regenerate``."""

from __future__ import annotations

import sys

from tests.golden.cases import CASES, save


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        path = save(name, CASES[name]())
        print(f"{path.name}: {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
