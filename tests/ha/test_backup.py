"""pgBackRest into MinIO: WAL archived from the primary, a full backup, and a point-in-time
restore that holds exactly the rows committed before the target time."""

from __future__ import annotations

import pytest

from benchmarks.ha_restore import HaBackupRig, pitr_check

pytestmark = pytest.mark.ha

ROWS = 500


def test_archive_command_points_at_pgbackrest_on_every_node(pg_ha: HaBackupRig) -> None:
    for node in pg_ha.nodes:
        with node.connect() as conn:
            row = conn.execute("select current_setting('archive_command')").fetchone()
            mode = conn.execute("select current_setting('archive_mode')").fetchone()
        assert row == (pg_ha.backrest.archive_command(),)
        assert mode == ("on",)


def test_point_in_time_restore_holds_exactly_the_rows_before_the_target(
    pg_ha: HaBackupRig,
) -> None:
    result = pitr_check(pg_ha, ROWS)
    assert result["rows_in_source"] == 2 * ROWS
    assert result["rows_restored"] == ROWS
    assert result["restored_match"] is True
    info = pg_ha.backrest.info()
    assert info["status"]["message"] == "ok"
    assert [b["type"] for b in info["backup"]][-1] == "full"
