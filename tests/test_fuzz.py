"""Fuzzing with schemathesis: generated requests for every operation, through the local gateway (the same
one `activity serve` runs), with each role's credentials and with none.

Per operation: 4 credential sets x FUZZ_EXAMPLES (default 250) = 1,000 generated requests. No 5xx, every
response valid against openapi.json, a rejected request changes no row, and a schema-valid request is refused
with 400/422 only for a reason the schema cannot express (docs/DECISIONS.md lists them). Then the stateful
phase follows the document's links (problem -> resolve, search -> its next page, export -> polling) for every
role, FUZZ_STATEFUL_EXAMPLES (default 25) scenarios each.
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
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "25"))
ROLES = ("none", "member", "instructional", "admin")

# The only reasons a schema-valid body may be refused (the 422's `detail[].msg`, docs/DECISIONS.md): what JSON
# Schema cannot say.
LISTED_REASONS = (
    "date_from must not be after date_to",  # an order between two fields
    "is not a day of the calendar",  # 2025-02-30 matches the pattern
    "not a cursor returned by this endpoint",  # only cursors we issued
    "it belongs to other filters, sort_order or page_size",  # a cursor from other filters
    "page_limit and summary_limit name the same thing; they differ",  # two fields' values
    "page_offset and summary_offset name the same thing; they differ",
    "past the 100,000 an offset may skip",  # a product of two fields (page x page_size)
)


def refused_only_for_listed_reasons(ctx: Any, response: Any, case: Any) -> None:
    """Positive conformance: a request generated from the schema is accepted, or refused for permissions (401,
    403), existence (404) or a listed reason, never for something the schema said was fine."""
    if (
        case.meta is None
        or not case.meta.generation.mode.is_positive
        or response.status_code not in (400, 413, 415, 422)
    ):
        return
    body = response.json()
    messages = [item.get("msg", "") for item in body.get("detail") or []] or [body.get("message", "")]
    unlisted = [m for m in messages if not any(reason in m for reason in LISTED_REASONS)]
    if unlisted:
        raise AssertionError(f"a schema-valid request was refused with {response.status_code}: {unlisted}")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    refused_only_for_listed_reasons,
]
WATCHED = (
    "problems",
    "activity.uploads",
    "activity.idempotency_records",
    "activity.refresh_runs",
    "profiles",
    "sessions",
    "api_keys",
)


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


@pytest.mark.parametrize("role", ROLES)
def test_stateful_links(role: str, gateway: str, fuzz_world: dict[str, Any]) -> None:
    """Sequences that follow the document's links: a reported problem is resolved, a search page leads to the
    next one with its cursor, a running export is polled."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": gateway, "headers": fuzz_world["headers"][role]}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
