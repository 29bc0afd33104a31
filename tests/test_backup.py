"""pgBackRest's configuration (memestream/stack/backup.py): the S3 repository in the MinIO
bucket, both HA data nodes, and an archive command that uses that configuration."""

from __future__ import annotations

from pathlib import Path

from domain.settings import Settings
from memestream.stack.backup import PGBACKREST, PgBackRest
from memestream.stack.layout import StackLayout
from memestream.stack.postgres_ha import postgres_ha_nodes


def backrest(tmp_path: Path, **overrides: object) -> PgBackRest:
    settings = Settings(stack_dir=tmp_path, postgres_ha_port=25440, **overrides)  # type: ignore[arg-type]
    layout = StackLayout(tmp_path, tmp_path / "cache")
    _, nodes = postgres_ha_nodes(settings, layout)
    return PgBackRest(settings, layout, nodes)


def test_config_names_the_bucket_path_style_and_both_nodes(tmp_path: Path) -> None:
    text = backrest(
        tmp_path,
        backup_s3_endpoint_url="https://localhost:29000",
        backup_s3_ca_file=tmp_path / "ca.crt",
    ).config_text()
    lines = set(text.splitlines())
    assert {
        "repo1-type=s3",
        "repo1-s3-endpoint=localhost",
        "repo1-storage-port=29000",
        "repo1-s3-uri-style=path",
        "repo1-s3-bucket=memes",
        "repo1-path=/pgbackrest",
        "repo1-retention-full=2",
        "[memestream]",
        "pg1-port=25441",
        "pg2-port=25442",
    } <= lines
    assert any(line.startswith("repo1-storage-ca-file=") for line in lines)


def test_endpoint_defaults_to_the_s3_endpoint(tmp_path: Path) -> None:
    text = backrest(tmp_path).config_text()
    assert "repo1-s3-endpoint=127.0.0.1" in text.splitlines()
    assert "repo1-storage-port=19000" in text.splitlines()
    assert "repo1-storage-ca-file" not in text


def test_archive_command_pushes_with_this_config(tmp_path: Path) -> None:
    b = backrest(tmp_path)
    assert b.archive_command() == (
        f"{PGBACKREST} --config={b.config_path} --stanza=memestream archive-push %p"
    )
