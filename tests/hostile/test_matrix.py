"""The hostile matrix (tests/hostile/matrix.py) against the running API on the real stack.

Every case must get a 4xx problem+json (whose `status` repeats the HTTP status) or, where
the value is odd but legal, a status its operation documents; a case marked `must_refuse`
must get the 4xx. Then no object in storage may lack its row: refused uploads store nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from domain.settings import Settings
from memestream.testing.memes import insert_meme
from sinks.storage import object_store
from tests.hostile.matrix import MEME_ID, Case, cases

UPLOADS = "templates/uploads/"
pytestmark = pytest.mark.timeout(300)


def _upload_objects(settings: Settings) -> set[str]:
    store = object_store(settings)
    listed = store.client.list_objects(store.bucket, prefix=UPLOADS, recursive=True)  # type: ignore[attr-defined]
    return {o.object_name for o in listed}


@pytest.fixture(scope="module")
def objects_before(stack_settings: Settings) -> set[str]:
    return _upload_objects(stack_settings)


@pytest.fixture(scope="module")
def client(
    api_url: str, stack_settings: Settings, objects_before: set[str]
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as http:
        credentials = {"username": f"matrix_{uuid.uuid4().hex[:8]}", "password": "matrix-pass-1"}
        assert http.post("/api/auth/register", json=credentials).status_code == 201
        token = http.post("/api/auth/login", json=credentials).json()["token"]
        http.cookies.clear()  # the token, not the login's cookie, authenticates the cases
        http.headers["authorization"] = f"Bearer {token}"
        http.headers["x-meme-id"] = insert_meme(stack_settings)  # read back by `_send`
        yield http


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    meme = client.headers["x-meme-id"]
    headers = {"content-type": case.content_type} if case.content_type else {}
    return client.request(
        case.method.upper(),
        case.path.replace(MEME_ID, meme),
        params=case.params or None,
        content=case.body,
        headers=headers,
    )


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_hostile_field(client: httpx.Client, case: Case) -> None:
    response = _send(client, case)
    status = response.status_code
    assert status < 500, (status, response.text[:300])
    if 400 <= status < 500:
        media = response.headers.get("content-type", "")
        assert media.startswith("application/problem+json"), (status, media, response.text[:200])
        problem = response.json()
        assert problem["status"] == status and problem["type"], problem
        assert " object at 0x" not in response.text, problem  # no Python reprs
    else:
        assert not case.must_refuse, (status, response.text[:300])
        assert status in case.documented, (status, sorted(case.documented))


def test_matrix_is_large_and_covers_every_field_kind() -> None:
    generated = cases()
    assert len(generated) >= 300
    assert {c.kind for c in generated} >= {"path", "query", "json", "multipart"}


def test_no_orphaned_objects_after_hostile_uploads(
    client: httpx.Client, stack_settings: Settings, objects_before: set[str]
) -> None:
    """Runs after the matrix (file order): every new object under the uploads prefix has its
    template row, i.e. no refused upload left an image behind."""
    assert client.get("/health").status_code == 200, "the API must survive the matrix"
    new = _upload_objects(stack_settings) - objects_before
    with psycopg.connect(stack_settings.database_url) as conn:
        keys = {
            row[0]
            for row in conn.execute(
                "SELECT image_key FROM templates WHERE image_key = ANY(%s)", (sorted(new),)
            )
        }
    orphaned = new - keys
    print(f"\nhostile matrix: {len(cases())} cases; {len(new)} new upload objects, "
          f"{len(orphaned)} orphaned")  # fmt: skip
    assert not orphaned, sorted(orphaned)[:10]
