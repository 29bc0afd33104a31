"""A full disk under the object folder and under the upload spool: clear errors, no corruption.

Both folders are small tmpfs mounts (this runs as root); images are stored on the filesystem
backend of the PRIVATE stack.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from memestream.testing.private_stack import PrivateStack
from tests.chaos.support import DONE, decodes, final_objects, generate, objects, rows

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


@pytest.fixture
def full_disk(private_stack: PrivateStack, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A 2 MiB tmpfs filled up by a filler file (delete `filler` to free it)."""
    folder = private_stack.root / f"full-{request.node.name[:20]}"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with (folder / "filler").open("wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_full_object_folder_holds_renders_then_completes_uncorrupted(
    private_stack: PrivateStack, chaos_api: str, full_disk: Path
) -> None:
    stack = private_stack
    _, worker = stack.worker("worker-disk-full", STORAGE_PATH=str(full_disk))
    try:
        with httpx.Client(base_url=chaos_api, timeout=20) as client:
            ids, statuses = generate(client, 3, "DISK FULL")
        time.sleep(8)
        while_full = rows(stack.settings.database_url, ids)
        log_says = "No space left on device" in worker.output()
        partial = [
            p
            for m in ids
            for p in final_objects(objects(stack, m, root=full_disk))
            if not decodes(p)
        ]
        (full_disk / "filler").unlink()
        deadline = time.monotonic() + 60
        done: dict[str, str] = {}
        while time.monotonic() < deadline:
            done = rows(stack.settings.database_url, ids)
            if len(done) == 3 and set(done.values()) <= DONE:
                break
            time.sleep(0.5)
        alive = worker.alive()
    finally:
        stack.kill(worker)
    stored = {m: objects(stack, m, root=full_disk) for m in ids}
    leftovers = [p for files in stored.values() for p in files if p not in final_objects(files)]
    print(
        f"\ndisk full: generate {statuses}; while full {sorted(while_full.values())}; "
        f"after {sorted(done.values())}; temp leftovers {len(leftovers)}"
    )
    assert statuses == {202: 3}
    assert set(while_full.values()) <= {"pending"}, "nothing is marked done or failed half-way"
    assert log_says, "the worker says why it is waiting"
    assert not partial, f"half-written images: {partial}"
    assert alive and len(done) == 3 and set(done.values()) <= DONE, done
    for files in stored.values():
        assert len(final_objects(files)) == 3 and all(decodes(p) for p in final_objects(files))


def test_full_upload_spool_gives_a_clear_error(
    private_stack: PrivateStack, full_disk: Path
) -> None:
    stack = private_stack
    url, api = stack.api("api-spool-full", UPLOAD_TMP_DIR=str(full_disk))
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            paths = client.get("/openapi.json").json()["paths"]
            # The upload route is part of the API: its absence is a failure, not a skip.
            assert "post" in paths.get("/api/templates", {}), "no template upload endpoint"
            credentials = {"username": "spool-full-user", "password": "chaos-password-1"}
            client.post("/api/auth/register", json=credentials)
            token = client.post("/api/auth/login", json=credentials).json()["token"]
            image = io.BytesIO()
            Image.new("RGB", (300, 300), (10, 200, 10)).save(image, format="PNG")
            response = client.post(
                "/api/templates",
                files={"file": ("t.png", image.getvalue(), "image/png")},
                data={"name": "disk full template"},
                headers={"authorization": f"Bearer {token}"},
            )
        with httpx.Client(base_url=url, timeout=30) as client:  # a 500 may close the socket
            listed = client.get("/api/templates", params={"q": "disk full"})
            health = client.get("/health")
    finally:
        stack.kill(api)
    print(f"\nupload with a full spool: {response.status_code} {response.text[:200]}")
    assert health.status_code == 200
    assert "disk full template" not in listed.text, "nothing half-created"
    assert response.status_code in {503, 507}, response.text
    assert "retry-after" in response.headers, "a full disk is temporary: say when to retry"
    assert response.headers.get("content-type", "").startswith("application/problem+json")
