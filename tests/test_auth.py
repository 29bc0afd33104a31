"""Accounts against the real PostgreSQL and Redis: register, login, sessions, API keys."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.settings import Settings
from tests.data_helpers import PASSWORD, register


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/" + slug)
    return body


def test_register_login_and_me_with_bearer_and_cookie(client: TestClient) -> None:
    user = register(client)
    me = client.get("/api/auth/me", headers=user["headers"])
    assert me.status_code == 200
    assert me.json() == {
        "id": user["id"],
        "username": user["username"],
        "role": "user",
        "created_at": None,
    }
    # The login also set an HttpOnly session cookie that authenticates on its own.
    assert client.get("/api/auth/me").status_code == 200
    client.cookies.clear()
    problem(client.get("/api/auth/me"), 401, "unauthorized")


def test_passwords_are_argon2_and_keys_are_hashed(
    client: TestClient, stack_settings: Settings
) -> None:
    user = register(client)
    key = client.post("/api/auth/api-keys", json={"name": "ci"}, headers=user["headers"]).json()
    client.cookies.clear()
    with psycopg.connect(stack_settings.database_url) as conn:
        (password_hash,) = conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (user["id"],)
        ).fetchone()
        stored = conn.execute(
            "SELECT key_hash, prefix FROM api_keys WHERE user_id = %s", (user["id"],)
        ).fetchall()
    assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash
    assert len(stored) == 1
    key_hash, prefix = stored[0]
    assert key["key"].encode() not in bytes(key_hash) and len(bytes(key_hash)) == 32
    assert key["key"].startswith(prefix) and key["prefix"] == prefix


def test_wrong_password_unknown_user_and_duplicate_name(client: TestClient) -> None:
    user = register(client)
    client.cookies.clear()
    bad = client.post("/api/auth/login", json={"username": user["username"], "password": "x" * 9})
    problem(bad, 401, "invalid-credentials")
    unknown = client.post("/api/auth/login", json={"username": "nobody_here", "password": "x" * 9})
    problem(unknown, 401, "invalid-credentials")
    again = client.post(
        "/api/auth/register", json={"username": user["username"].upper(), "password": PASSWORD}
    )
    problem(again, 409, "username-taken")
    short = client.post("/api/auth/register", json={"username": "ab", "password": "short"})
    problem(short, 422, "validation-error")


def test_api_keys_authenticate_list_without_secret_and_revoke(client: TestClient) -> None:
    user = register(client)
    client.cookies.clear()
    created = client.post("/api/auth/api-keys", json={"name": "bot"}, headers=user["headers"])
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("msk_")
    for headers in ({"X-API-Key": secret}, {"Authorization": f"Bearer {secret}"}):
        me = client.get("/api/auth/me", headers=headers)
        assert me.status_code == 200 and me.json()["id"] == user["id"]
    listed = client.get("/api/auth/api-keys", headers={"X-API-Key": secret}).json()
    assert [k["name"] for k in listed] == ["bot"]
    assert "key" not in listed[0] and listed[0]["last_used_at"] is not None
    revoked = client.delete(f"/api/auth/api-keys/{listed[0]['id']}", headers=user["headers"])
    assert revoked.status_code == 204
    problem(client.get("/api/auth/me", headers={"X-API-Key": secret}), 401, "unauthorized")
    missing = client.delete("/api/auth/api-keys/not-a-key", headers=user["headers"])
    problem(missing, 404, "api-key-not-found")


def test_logout_ends_the_session_and_bad_tokens_are_401(client: TestClient) -> None:
    user = register(client)
    client.cookies.clear()
    assert client.post("/api/auth/logout", headers=user["headers"]).status_code == 204
    problem(client.get("/api/auth/me", headers=user["headers"]), 401, "unauthorized")
    for token in ("mss_forged", "msk_forged", "garbage"):
        response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        body = problem(response, 401, "unauthorized")
        assert body["status"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    # A bad credential is refused even on endpoints anonymous callers may use.
    anon_ok = client.get("/api/search/memes", params={"q": "x"})
    assert anon_ok.status_code == 200
    forged = client.get("/api/search/memes", params={"q": "x"}, headers={"X-API-Key": "msk_no"})
    problem(forged, 401, "unauthorized")
