"""Apicurio Registry, the schema registry with a Confluent-compatible API, from Maven Central.

The server is the `io.apicurio:apicurio-registry-app:<version>:tar.gz:all` artifact, copied
once per version by `mvn dependency:copy` into `<cache>/apicurio/<version>` and unpacked
there (a Quarkus runner jar plus its `lib/`). 3.0.x runs on Java 17, the JDK the stack
already needs for Kafka (3.3.x needs Java 21).

Storage is Apicurio's SQL storage on our PostgreSQL, in a schema of its own
(`schema_registry`) of the application's database, which the stack creates. Why not
KafkaSQL: it replays its journal topic at every start (start-up grows with history), needs
topics of its own on a broker that auto-creates none, and would make a Kafka outage a
registry outage too; PostgreSQL is already the platform's store of truth, backed up and
replicated with it. Why not the default in-memory H2: schema ids must survive a restart,
because every message on a topic names its schema by id.

HTTP (API and `/health/ready`) and Quarkus' management interface are bound to 127.0.0.1;
the JVM is kept small (serial GC, C1 only, 256 MB heap), which is what a registry serving a
few dozen schemas needs, and what keeps start-up near 5 s on two cores.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from domain.settings import Settings
from memestream.stack.health import http_ok
from memestream.stack.kafka import java_binary
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError, file_lock, tail, wait_until

APICURIO_VERSION = "3.0.9"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
REGISTRY_DB_SCHEMA = "schema_registry"
JVM_FLAGS = (
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
# How long the registry waits for PostgreSQL (started beside it, in parallel) before failing.
POSTGRES_WAIT_S = 90.0


def apicurio_home(cache_dir: Path) -> Path:
    """The unpacked server, fetched and unpacked once per version (safe to call in parallel)."""
    home = cache_dir / "apicurio" / APICURIO_VERSION
    stamp = home / ".unpacked"
    if stamp.exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) not found: apt-get install maven")
    home.mkdir(parents=True, exist_ok=True)
    with file_lock(home.parent / f".{APICURIO_VERSION}.lock"):
        if stamp.exists():
            return home
        download = home.parent / f"{APICURIO_VERSION}.download"
        shutil.rmtree(download, ignore_errors=True)
        log = home.parent / "mvn.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={ARTIFACT}",
                    f"-DoutputDirectory={download}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        archives = sorted(download.glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ServiceError(f"fetching Apicurio Registry failed; end of {log}:\n{tail(log)}")
        staging = home.parent / f"{APICURIO_VERSION}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        with tarfile.open(archives[0]) as archive:
            archive.extractall(staging, filter="data")
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
        stamp.write_text(ARTIFACT + "\n")
    return home


def runner_jar(home: Path) -> Path:
    """The server's entry point: `*-runner.jar` (3.0.x) or Quarkus' fast-jar `quarkus-run.jar`."""
    for pattern in ("*-runner.jar", "quarkus-app/quarkus-run.jar", "quarkus-run.jar"):
        found = sorted(home.glob(pattern))
        if found:
            return found[0]
    raise ServiceError(f"no runner jar in {home}; delete it to fetch again")


def registry_api_url(settings: Settings) -> str:
    """The base URL of the registry's Confluent-compatible API (SCHEMA_REGISTRY_URL)."""
    return (settings.schema_registry_url or "").rstrip("/")


def jdbc_url(database_url: str, schema: str = REGISTRY_DB_SCHEMA) -> str:
    """The registry's JDBC URL for a libpq URL; a multi-host URL keeps every host, and
    `target_session_attrs=read-write` becomes pgJDBC's `targetServerType=primary`."""
    params = conninfo_to_dict(database_url)
    hosts = str(params.get("host") or "127.0.0.1").split(",")
    ports = [port or "5432" for port in str(params.get("port") or "").split(",")]
    if len(ports) == 1:
        ports *= len(hosts)
    dbname = params.get("dbname") or params.get("user") or "memestream"
    netloc = ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=True))
    url = f"jdbc:postgresql://{netloc}/{dbname}?currentSchema={schema}"
    if params.get("target_session_attrs") == "read-write":
        url += "&targetServerType=primary"
    return url


def ensure_registry_schema(database_url: str, schema: str = REGISTRY_DB_SCHEMA) -> None:
    """The PostgreSQL schema the registry keeps its tables in (it creates the tables)."""
    with psycopg.connect(database_url, connect_timeout=3, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))


class SchemaRegistryServer(ManagedProcess):
    start_timeout = 120.0
    stop_timeout = 20.0

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        super().__init__("registry", layout)
        parts = urlsplit(registry_api_url(settings) or "http://127.0.0.1:18081")
        self._port = parts.port or 18081
        self.management_port = self._port + 1
        self.database_url = settings.database_url
        self.cache_dir = settings.cache_dir
        self.api_path = parts.path or "/apis/ccompat/v7"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.api_path}"

    @property
    def port(self) -> int:
        return self._port

    def prepare(self) -> None:
        apicurio_home(self.cache_dir)

        def schema_created() -> bool:
            try:
                ensure_registry_schema(self.database_url)
                return True
            except psycopg.OperationalError:
                return False  # PostgreSQL is starting beside us

        wait_until(schema_created, POSTGRES_WAIT_S, what="registry: PostgreSQL")

    def command(self) -> list[str]:
        home = apicurio_home(self.cache_dir)
        return [
            java_binary(),
            *JVM_FLAGS,
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self._port}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.management_port}",
            "-jar",
            str(runner_jar(home)),
        ]

    def env(self) -> dict[str, str]:
        """Storage settings through the environment: the password stays out of `ps`."""
        params = conninfo_to_dict(self.database_url)
        return {
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": jdbc_url(self.database_url),
            "APICURIO_DATASOURCE_USERNAME": str(params.get("user") or "memestream"),
            "APICURIO_DATASOURCE_PASSWORD": str(params.get("password") or ""),
            # Its defaults hold 20 connections open (max 100) on a server with 200 slots.
            "APICURIO_DATASOURCE_JDBC_INITIAL_SIZE": "1",
            "APICURIO_DATASOURCE_JDBC_MIN_SIZE": "1",
            "APICURIO_DATASOURCE_JDBC_MAX_SIZE": "10",
            "QUARKUS_HTTP_ACCESS_LOG_ENABLED": "false",
        }

    def check_health(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self._port}/health/ready")
