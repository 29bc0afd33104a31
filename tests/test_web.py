"""The pages and the service worker's script (api/routes/web.py): the worker is served from
the root with the shell it precaches and a version that changes with any static file."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes import web


def static_dir(root: Path, editor: str) -> Path:
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "js" / "editor.js").write_text(editor)
    (root / "sw.js").write_text("// the worker\n")
    return root


def version(script: bytes) -> str:
    found = re.search(rb'self\.SHELL_VERSION = "([0-9a-f]+)";', script)
    assert found
    return found.group(1).decode()


def test_the_worker_precaches_the_pages_and_every_static_file_but_itself(tmp_path: Path) -> None:
    script = web.service_worker_script(static_dir(tmp_path / "a", "one"))
    shell = re.search(rb"self\.SHELL_FILES = (\[.*\]);", script)
    assert shell
    assert shell.group(1).decode() == (
        '["/", "/feed", "/templates", "/static/index.html", "/static/js/editor.js"]'
    )
    assert script.endswith(b"// the worker\n")


def test_a_changed_static_file_changes_the_version(tmp_path: Path) -> None:
    one = version(web.service_worker_script(static_dir(tmp_path / "a", "one")))
    same = version(web.service_worker_script(static_dir(tmp_path / "b", "one")))
    two = version(web.service_worker_script(static_dir(tmp_path / "c", "two")))
    assert one == same
    assert one != two


def test_an_edited_file_changes_the_version_of_a_running_server(tmp_path: Path) -> None:
    root = static_dir(tmp_path / "a", "one")
    before = version(web.service_worker_script(root))
    (root / "js" / "editor.js").write_text("one, edited")
    assert version(web.service_worker_script(root)) != before


def test_the_worker_is_served_from_the_root_and_checked_on_every_visit() -> None:
    app = FastAPI()
    app.include_router(web.router)
    with TestClient(app) as client:
        response = client.get("/sw.js")
        page = client.get("/templates")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["service-worker-allowed"] == "/"
    assert b'"/static/js/upload.js"' in response.content
    assert b'"/static/js/editor.js"' in response.content
    assert b'addEventListener("fetch"' in response.content
    assert page.status_code == 200 and 'id="upload-form"' in page.text
