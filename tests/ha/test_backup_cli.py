"""`memestream backup` against the private rig: a full backup and an incremental one on top
of it, then `info` lists them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks.ha_restore import HaBackupRig
from memestream import backup_cli
from memestream.cli import app

pytestmark = pytest.mark.ha


def test_backup_run_then_info(pg_ha: HaBackupRig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_cli, "get_settings", lambda: pg_ha.settings)
    runner = CliRunner()
    before = len(pg_ha.backrest.info().get("backup", []))
    for kind in ("full", "incr"):
        done = runner.invoke(app, ["backup", "run", "--type", kind])
        assert done.exit_code == 0, done.output
        assert f"{kind} backup done" in done.output
    backups = pg_ha.backrest.info()["backup"]
    assert len(backups) == before + 2
    assert [b["type"] for b in backups[-2:]] == ["full", "incr"]
    assert backups[-1]["prior"] == backups[-2]["label"]
    shown = runner.invoke(app, ["backup", "info"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["backup"][-1]["label"] == backups[-1]["label"]
