"""A zip archive produced as a stream of chunks, without a temporary file or the whole archive
in memory: `zipfile` writes to an unseekable sink (it then uses data descriptors), and each
entry's bytes are handed on as soon as they are written. Images are already compressed, so
entries are stored, not deflated.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def zip_stream(
    entries: Iterable[tuple[str, Callable[[], bytes | None]]],
) -> Iterator[bytes]:
    """Chunks of a zip of `entries` (name, loader); a loader returning None skips its entry."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, load in entries:
            data = load()
            if data is None:
                continue
            archive.writestr(name, data)
            yield sink.take()
    yield sink.take()
