"""`streams.faust_compat.install`: refuses untested Faust/aiokafka/mode versions, then patches.

The installed libraries cannot be swapped inside a test, so the version a package reports is
faked (importlib.metadata's answer), the one failure here that cannot be caused for real.
"""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from faust.transport import consumer as faust_consumer
from mode.utils.queues import FlowControlQueue

from domain.settings import Settings
from domain.tested_versions import UntestedVersion, require
from producers.roles import ROLES
from streams import faust_compat
from streams.app import create_app
from streams.faust_compat import batches, fetch_wait


def test_the_installed_versions_are_in_the_tested_ranges() -> None:
    found = require(faust_compat.TESTED, "test")
    assert set(found) == {"faust-streaming", "aiokafka", "mode-streaming"}


@pytest.mark.parametrize("package", sorted(faust_compat.TESTED))
@pytest.mark.parametrize("untested", ["99.0", "0.1"], ids=["newer", "older"])
def test_a_version_outside_the_range_stops_install_before_any_patch(
    package: str, untested: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from domain import tested_versions

    real = tested_versions.installed_version
    monkeypatch.setattr(
        tested_versions, "installed_version", lambda p: untested if p == package else real(p)
    )
    app = faust.App(f"compat-{package}-{untested}", datadir=str(tmp_path))
    with pytest.raises(UntestedVersion) as raised:
        faust_compat.install(app, fetch_max_wait_ms=80)
    message = str(raised.value)
    assert package in message and untested in message and faust_compat.TESTED[package] in message
    assert (raised.value.package, raised.value.version) == (package, untested)
    assert app not in fetch_wait._max_wait_ms
    assert "resume" not in vars(app.flow_control)


def test_create_app_refuses_to_build_a_worker_on_an_untested_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from domain import tested_versions

    monkeypatch.setattr(tested_versions, "installed_version", lambda p: "1.0")
    with pytest.raises(UntestedVersion, match=r"faust-streaming 1\.0"):
        create_app(ROLES["render"], Settings(worker_data_dir=tmp_path))


def test_the_trending_worker_gets_the_batch_loop(tmp_path: Path) -> None:
    app = create_app(ROLES["trending"], Settings(worker_data_dir=tmp_path))
    assert batches.routed(app)
    assert batches.installed()
    assert faust_consumer.Consumer._drain_messages is batches._drain_messages


def test_a_role_without_batches_routes_nothing(tmp_path: Path) -> None:
    app = create_app(ROLES["render"], Settings(worker_data_dir=tmp_path))
    assert not batches.routed(app)


async def test_recovery_end_keeps_the_queued_messages_a_revocation_still_clears(
    tmp_path: Path,
) -> None:
    app = create_app(ROLES["render"], Settings(worker_data_dir=tmp_path))
    flow = app.flow_control
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow)
    flow.manage_queue(queue)
    queue.put_nowait(1)
    flow.resume()  # what Faust calls when recovery ends
    assert queue.qsize() == 1 and flow.is_active()
    flow.clear()  # what Faust calls when partitions are revoked
    assert queue.qsize() == 0
