"""chDB, the ClickHouse engine in-process: nothing to run, only its data folder to create.

It still appears in `memestream stack status` so the table lists every store the
platform uses, with the folder the analytics tables live in.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.process import Service, State, Status


def chdb_path(settings: Settings, layout: StackLayout) -> Path:
    """The folder of a `chdb://<path>` URL, relative paths taken from the project root."""
    parts = urlsplit(settings.clickhouse_url)
    if parts.scheme != "chdb":
        return layout.data("chdb")
    raw = (parts.netloc + parts.path) or str(layout.data("chdb"))
    return settings.resolved(Path(raw))


class ChdbStore(Service):
    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        self.name = "chdb"
        self.path = chdb_path(settings, layout)
        self.url = f"chdb://{self.path}"

    def start(self) -> Status:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.status()

    def stop(self) -> Status:
        return self.status()  # in-process: nothing runs, and its data stays

    def status(self) -> Status:
        state = State.READY if self.path.is_dir() else State.STOPPED
        return Status(self.name, self.url, state, None, None)
