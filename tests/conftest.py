"""Fixtures: a real PostgreSQL for the session (embedded unless DATABASE_URL is set), migrated once;
handlers loaded from template.yaml and invoked with API Gateway HTTP API v2 events."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from factories import JWT_SECRET, World

os.environ.update(
    {
        "JWT_SECRET": JWT_SECRET,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "glow-activity",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
)

from legacy import build_legacy_database

from activity_dev import embedded_pg, lambdas
from activity_dev.events import LambdaContext, http_event
from glow_activity import API_PREFIX, db
from glow_activity.migrate import ensure_runtime_login, migrate
from glow_activity.refresh import refresh_views
from glow_activity.settings import get_settings

# The functions connect as this LOGIN member of activity_runtime (as in AWS), never as the harness's superuser.
RUNTIME_USER = "activity_app_test"


def harness_params(url: str) -> db.ConnectParams:
    """The tests' own connections carry another application_name than the service's."""
    return dataclasses.replace(db.params_from_url(url), application_name="glow-tests")


@pytest.fixture(scope="session")
def database_url() -> str:
    """The harness's (the migrating superuser's) URL. The service's own DATABASE_URL, which every handler and
    worker process reads, is a LOGIN member of activity_runtime. With ACTIVITY_TEST_START=legacy the database is
    first built by the previous version's migrations, so that the whole suite runs on an adopted database."""
    import secrets

    url = os.environ.get("ACTIVITY_TEST_ADMIN_URL") or embedded_pg.database_url()
    os.environ["ACTIVITY_TEST_ADMIN_URL"] = url  # worker processes inherit it
    get_settings.cache_clear()
    conn = db.open_connection(db.params_from_url(url))
    if (
        os.environ.get("ACTIVITY_TEST_START") == "legacy"
        and not conn.run(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL OR to_regnamespace('activity') IS NOT NULL"
        )[0][0]
    ):
        build_legacy_database(conn)
    migrate(conn)
    password = secrets.token_urlsafe(16)
    ensure_runtime_login(conn, RUNTIME_USER, password)
    conn.close()
    os.environ["DATABASE_URL"] = embedded_pg.url_as(url, RUNTIME_USER, password)
    return url


@pytest.fixture
def runtime_url(database_url: str) -> str:
    """The service's own URL: a LOGIN member of activity_runtime."""
    return os.environ["DATABASE_URL"]


@pytest.fixture
def conn(database_url: str) -> Iterator[Any]:
    """A separate autocommit connection for building rows and checking the database."""
    connection = db.open_connection(harness_params(database_url))
    yield connection
    connection.close()


@pytest.fixture
def world(conn: Any) -> World:
    return World(conn)


PLATFORM_TABLES = (
    "problems",
    "grants",
    "logins",
    "sessions",
    "api_keys",
    "profile_roles",
    "profile_departments",
    "profiles",
    "departments",
)
SERVICE_TABLES = ("activity.audit_log", "activity.idempotency_records", "activity.uploads")


@pytest.fixture
def empty_db(conn: Any) -> Any:
    """An empty database (refreshed views), for tests whose answers cover every profile."""
    conn.run(f"TRUNCATE {', '.join(PLATFORM_TABLES + SERVICE_TABLES)} CASCADE")
    refresh_views(conn, "cli")
    return conn


@pytest.fixture(autouse=True)
def _fresh_container_state() -> Iterator[None]:
    """Each test starts like a new container: settings re-read, Powertools metrics cleared."""
    get_settings.cache_clear()
    yield
    from glow_activity.observability import metrics

    metrics.clear_metrics()
    db.reset_connections()


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    raw: dict[str, Any]

    @property
    def body(self) -> Any:
        text = self.raw.get("body") or ""
        if self.raw.get("isBase64Encoded"):
            import base64

            data = base64.b64decode(text)
            if self.headers.get("content-encoding") == "gzip":
                data = gzip.decompress(data)
            text = data.decode()
        return json.loads(text) if text else None


Invoke = Callable[..., Result]


@functools.cache
def _openapi() -> dict[str, Any]:
    from activity_dev import REPO_ROOT

    return json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))


def assert_matches_openapi(operation: str, result: Result, method: str = "post", path: str | None = None) -> None:
    """Every response the suite sees must be one the OpenAPI document declares, with a valid body. `path`: the
    event's own, when it is another route of the operation's function (the MCP endpoint's metadata)."""
    from jsonschema import Draft202012Validator

    document = _openapi()
    routes = sorted((p for p in document["paths"] if path and path.endswith(p)), key=len)  # a stage's prefix aside
    path = routes[-1] if routes else f"{API_PREFIX}/{operation}"
    responses = document["paths"][path][method]["responses"]
    declared = responses.get(str(result.status))
    assert declared is not None, f"{operation} answered {result.status}, which openapi.json does not declare"
    schema = (declared.get("content") or {}).get("application/json", {}).get("schema")
    if schema is None:
        assert not result.raw.get("body"), f"{operation} {result.status} should have no body"
        return
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = sorted(validator.iter_errors(result.body), key=str)
    assert not errors, f"{operation} {result.status} body does not match openapi.json: {errors[0].message}"


_in_process = threading.Lock()


def _result(operation: str, raw: dict[str, Any], method: str = "POST", path: str | None = None) -> Result:
    if "statusCode" not in raw:  # a non-HTTP invocation (schedule, async job) returns a plain dict
        return Result(0, {}, raw)
    result = Result(raw["statusCode"], {k.lower(): v for k, v in (raw.get("headers") or {}).items()}, raw)
    assert_matches_openapi(operation, result, method.lower(), path)
    return result


def invoke_handler(
    operation: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw_body: bytes | str | None = None,
    event: dict[str, Any] | None = None,
) -> Result:
    """One invocation in this process, as its own Lambda container would run it. Only one at a time: the
    Powertools resolver keeps the invocation's event on its class and its route on the module's `app`,
    which two invocations at once in one process would overwrite for each other (Lambda never runs two in
    one container). Calls that must overlap go through `invoke_concurrently`."""
    handler = lambdas.load_handler(lambdas.by_operation(operation))
    event = event or http_event(f"{API_PREFIX}/{operation}", body, headers, raw_body=raw_body)
    if not _in_process.acquire(blocking=False):
        raise AssertionError("two in-process invocations at once; use invoke_concurrently")
    try:
        raw = handler(event, LambdaContext(operation))
    finally:
        _in_process.release()
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
    return _result(operation, raw, method, event.get("rawPath"))


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    return invoke_handler


Call = tuple[str, Any, dict[str, str]]  # operation, body, headers
CONTAINERS = 20


@pytest.fixture(scope="session")
def containers(database_url: str, s3_server: str) -> Iterator[Any]:
    """Lambda containers for calls that run at the same time: worker processes (spawned, with this
    environment), each loading its handlers and keeping its own connections, as the local gateway's do."""
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(CONTAINERS)
    yield pool
    pool.terminate()


@contextmanager
def local_gateway(workers: int = 1) -> Iterator[str]:
    """The local gateway (what `activity serve` runs) on a free loopback port, its workers spawned with this
    process's environment (the runtime user's DATABASE_URL); yields its base URL."""
    from activity_dev.gateway import Gateway, make_server

    os.environ["ACTIVITY_GATEWAY_QUIET"] = "1"
    gateway = Gateway(workers=workers)
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        gateway.close()


def migrate_function() -> Any:
    """The migration function's handler, as template.yaml names it."""
    return lambdas.load_handler(next(s for s in lambdas.functions() if s.logical_id == "MigrateFunction"))


@pytest.fixture
def invoke_concurrently(containers: Any) -> Callable[..., list[Result]]:
    """Run `calls` at the same time, one per container (up to CONTAINERS at once); results in call order."""

    def run(calls: list[Call], timeout: float = 120) -> list[Result]:
        return run_in_containers(containers, calls, timeout)

    return run


def run_in_containers(pool: Any, calls: list[Call], timeout: float = 120) -> list[Result]:
    """`calls` at the same time in `pool`'s containers (worker processes); results in call order."""
    from activity_dev.gateway import invoke_in_worker

    by_id = {spec.operation: spec.logical_id for spec in lambdas.functions()}
    jobs = [
        (by_id[operation], http_event(f"{API_PREFIX}/{operation}", body, headers)) for operation, body, headers in calls
    ]
    raws = pool.starmap_async(invoke_in_worker, jobs, chunksize=1).get(timeout)
    return [_result(operation, raw) for (operation, _, _), raw in zip(calls, raws, strict=True)]


@pytest.fixture
def refresh(conn: Any) -> Callable[[], None]:
    def run() -> None:
        refresh_views(conn, "cli")

    return run


@pytest.fixture(scope="session", autouse=True)
def s3_server() -> Iterator[str]:
    """moto in server mode on loopback, so presigned URLs really download."""
    from activity_dev import local_s3

    server = local_s3.start(bucket="glow-activity-exports-test")
    yield os.environ["EXPORT_BUCKET"]
    server.stop()


@pytest.fixture
def admin(world: World) -> Any:
    """An admin of its own (modules that need another admin define their own fixture)."""
    return world.profile(roles=["admin"])
