"""Uploads spooled to a temporary folder (`UPLOAD_TMP_DIR`), never held whole in memory twice.

A request streams its file into its own temporary file and removes it when done; a crash can
leave files behind, so `cleanup` (run at start-up and every `CLEANUP_EVERY_S` by the API)
removes files older than `MAX_AGE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import UploadFile

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
MAX_AGE_S = 3600
CLEANUP_EVERY_S = 600


class UploadTooLarge(ValueError):
    """The upload exceeded its byte limit while streaming."""


@contextlib.asynccontextmanager
async def spooled(upload: UploadFile, folder: Path, max_bytes: int) -> AsyncIterator[Path]:
    """The upload as a file in `folder`, deleted when the block ends."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.upload"
    try:
        size = 0
        with path.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(f"the file is larger than {max_bytes} bytes")
                await asyncio.to_thread(out.write, chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def cleanup(folder: Path, max_age_s: float = MAX_AGE_S) -> int:
    """Removes spooled files older than `max_age_s`; returns how many."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for path in folder.glob("*.upload"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


async def cleanup_forever(folder: Path) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(cleanup, folder)
            if removed:
                log.info("removed %d stale uploads from %s", removed, folder)
        except OSError as exc:
            log.warning("upload cleanup failed: %s", exc)
        await asyncio.sleep(CLEANUP_EVERY_S)
