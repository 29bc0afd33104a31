"""Where the local stack keeps its files, so every service lays them out the same way.

`<stack>/data/<service>` holds a service's state, `<stack>/logs/<service>.log` its output,
`<stack>/run/<service>.pid` the supervisor's pid file and `<stack>/conf/<service>/` any
generated configuration. Deleting `<stack>/` resets the stack; caches live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StackLayout:
    """The folders of one stack directory (one per clone, from `settings.stack_path`)."""

    root: Path
    cache: Path

    def data(self, service: str) -> Path:
        return self.root / "data" / service

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def pid(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def lock(self, service: str) -> Path:
        return self.root / "run" / f"{service}.lock"

    def conf(self, service: str) -> Path:
        return self.root / "conf" / service

    def ensure(self, service: str) -> None:
        """Create the folders a service writes to; cheap, so every start calls it."""
        for folder in (self.data(service), self.log(service).parent, self.pid(service).parent):
            folder.mkdir(parents=True, exist_ok=True)
