"""Fuzzing with schemathesis: generated requests for every operation, through the local gateway (the same
one `activity serve` runs), with each role's credentials and with none.

Per operation: 4 credential sets x FUZZ_EXAMPLES (default 250) = 1,000 generated requests. No 5xx, every
response valid against openapi.json, and a rejected request changes no row.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import harness_params
from factories import World
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from activity_dev import REPO_ROOT
from activity_dev.gateway import Gateway, make_server
from glow_activity import db

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_path(str(REPO_ROOT / "openapi.json"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
ROLES = ("none", "member", "instructional", "admin")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
WATCHED = ("problems", "uploads", "idempotency_records", "refresh_runs", "profiles", "sessions", "api_keys")


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[str]:
    os.environ["ACTIVITY_GATEWAY_QUIET"] = "1"
    gw = Gateway(workers=2)
    server = make_server(gw, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    gw.close()


@pytest.fixture(scope="module")
def fuzz_world(database_url: str) -> Iterator[dict[str, Any]]:
    conn = db.open_connection(harness_params(database_url))
    world = World(conn)
    dept = world.department()
    people = {role: world.profile(roles=[role], departments=[dept]) for role in ("member", "instructional", "admin")}
    yield {"conn": conn, "headers": {"none": {}, **{role: p.headers for role, p in people.items()}}}
    conn.close()


def fingerprint(conn: Any) -> tuple[Any, ...]:
    counts = tuple(conn.run(f"SELECT count(*) FROM {table}")[0][0] for table in WATCHED)
    problems = conn.run("SELECT coalesce(max(updated_at)::text, '') FROM problems")[0][0]
    return (*counts, problems)


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_generated_requests(case: Any, role: str, gateway: str, fuzz_world: dict[str, Any]) -> None:
    conn = fuzz_world["conn"]
    before = fingerprint(conn)
    response = case.call_and_validate(base_url=gateway, headers=fuzz_world["headers"][role], checks=CHECKS)
    if response.status_code >= 400:
        assert fingerprint(conn) == before, f"a rejected request ({response.status_code}) changed the database"
