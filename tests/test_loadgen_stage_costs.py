"""Stage costs: stacks charged to stages, and a real py-spy profile of a busy process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from loadgen.stage_costs import parse_raw, profile, stage_of, table

PY_SPY = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"


def test_the_innermost_frame_that_names_a_stage_gets_the_sample() -> None:
    api_to_postgres = [
        "<module> (memestream/__main__.py:5)",
        "generate (/w/api/routes/memes.py:230)",
        "add_pending (/w/sinks/postgres/memes.py:50)",
        "execute (/v/site-packages/psycopg/cursor_async.py:97)",
    ]
    assert stage_of(api_to_postgres) == "postgresql"
    assert stage_of(api_to_postgres[:2]) == "api (http, validation)"
    model = [
        "handle (/w/streams/render.py:300)",
        "moderate (/w/domain/ai/moderation.py:80)",
        "run (/w/domain/ai/backends.py:120)",
    ]
    assert stage_of(model) == "moderation", "model code is charged to the task that called it"
    assert stage_of(["main (/w/x.py:1)"]) == "other"


def test_raw_stacks_and_measured_cpu_make_the_table() -> None:
    raw = (
        "MainThread;render (/w/domain/rendering/engine.py:10) 30\n"
        "MainThread;put (/w/sinks/storage/s3.py:5) 10\n"
        "not a stack line\n"
    )
    counts = parse_raw(raw)
    assert counts == Counter({"render": 30, "object store": 10})
    out = table({"worker-render": counts}, {"worker-render": 8.0}, memes=100, duration_s=10)
    stages = {r["stage"]: r for r in out["stages"]}  # type: ignore[attr-defined]
    assert stages["render"]["cpu_s"] == 6.0 and stages["object store"]["cpu_s"] == 2.0
    assert stages["render"]["cpu_ms_per_meme"] == 60.0
    assert out["cpu_ms_per_meme_total"] == 80.0 and out["cores_busy"] == 0.8


@pytest.mark.skipif(not Path(PY_SPY).exists(), reason="py-spy is not installed")
def test_a_real_profile_charges_a_busy_process(tmp_path: Path) -> None:
    script = tmp_path / "busy.py"
    # A file under a `domain/rendering/` folder: its frames are the render stage.
    (tmp_path / "domain" / "rendering").mkdir(parents=True)
    work = tmp_path / "domain" / "rendering" / "spin.py"
    work.write_text("def spin():\n    while True:\n        sum(i * i for i in range(1000))\n")
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(work.parent)!r})\nimport spin\nspin.spin()\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        time.sleep(0.5)
        samples, cpu = profile({"busy": proc.pid}, duration_s=2, rate=50, py_spy=PY_SPY)
    finally:
        proc.kill()
        proc.wait()
    assert samples["busy"]["render"] > 0.8 * sum(samples["busy"].values())
    # At most one core over the profile's ~2 s; at least something, even on a crowded host.
    assert 0.05 < cpu["busy"] <= 3.0
