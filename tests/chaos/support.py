"""Shared steps of the chaos tests: generate memes, wait for rows, count objects."""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import psycopg
from PIL import Image

from memestream.testing.private_stack import PrivateStack


def generate(client: httpx.Client, n: int, tag: str) -> tuple[list[str], dict[int, int]]:
    """POST n generations; the acknowledged meme ids and a count per status code."""
    ids: list[str] = []
    statuses: dict[int, int] = {}
    for i in range(n):
        try:
            response = client.post(
                "/api/meme/generate", json={"template_id": "drake", "texts": [tag, f"#{i}"]}
            )
        except httpx.HTTPError:
            statuses[0] = statuses.get(0, 0) + 1
            continue
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 202:
            ids.append(response.json()["meme_id"])
    return ids, statuses


def rows(database_url: str, ids: list[str]) -> dict[str, str]:
    with psycopg.connect(database_url, connect_timeout=3) as conn:
        found = conn.execute(
            "SELECT id::text, status FROM memes WHERE id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    return {r[0]: r[1] for r in found}


#: Rendered and stored (`flagged` is rendered but held for moderation review).
DONE = frozenset({"rendered", "flagged"})


def wait_rendered(database_url: str, ids: list[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            found = rows(database_url, ids)
        except psycopg.OperationalError:
            found = {}
        if len(found) == len(ids) and all(s in DONE for s in found.values()):
            return found
        time.sleep(0.5)
    return found


def objects(stack: PrivateStack, meme_id: str, root: Path | None = None) -> list[Path]:
    folder = (root or stack.settings.storage_path) / "memes" / meme_id
    return sorted(folder.iterdir()) if folder.is_dir() else []


def final_objects(paths: Iterable[Path]) -> list[Path]:
    """The named variants (full/medium/thumb.*), not temp files a killed writer left."""
    return [p for p in paths if p.stem in {"full", "medium", "thumb"}]


def decodes(path: Path) -> bool:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()
        return True
    except Exception:
        return False
