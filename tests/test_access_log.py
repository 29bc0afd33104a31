"""uvicorn's access lines follow its own switch and LOG_LEVEL once our JSON logging takes over.

Each access line costs about 40 us of a request; they were written even under
`--no-access-log` because propagating `uvicorn.access` to the root handler is what uvicorn
takes as "access log on".
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from domain.ids import new_id
from domain.logs import REQUEST_ID_HEADER
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment

pytestmark = pytest.mark.services


def _access_lines(name: str, request_id: str) -> list[dict[str, object]]:
    found = []
    for line in processes.log_path(name).read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("logger") == "uvicorn.access" and record.get("request_id") == request_id:
            found.append(record)
    return found


@pytest.mark.parametrize(
    ("flags", "level"),
    [(["--no-access-log"], "INFO"), ([], "WARNING")],
    ids=["no-access-log", "log-level-warning"],
)
def test_access_lines_are_off_when_asked(
    stack_settings: Settings, flags: list[str], level: str
) -> None:
    port = processes.free_port()
    env = environment(stack_settings) | {"API_PORT": str(port), "LOG_LEVEL": level}
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port), *flags]
    name = f"api-access-{uuid.uuid4().hex[:6]}"
    request_id = f"acc-{uuid.uuid4().hex[:12]}"
    with processes.process(name, args, env) as proc:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", proc)
        response = httpx.get(
            f"{url}/api/meme/{new_id()}", headers={REQUEST_ID_HEADER: request_id}, timeout=10
        )
        assert response.headers[REQUEST_ID_HEADER] == request_id
        time.sleep(1.0)  # a line would be written before the response is finished
        assert _access_lines(name, request_id) == []
