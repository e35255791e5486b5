"""POST /docs and the OpenAPI document: generated from the models, consistent with the template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from factories import World
from openapi_spec_validator import validate
from test_mcp_sign_in import METADATA_PATHS

from activity_dev import REPO_ROOT, lambdas
from activity_dev.openapi import openapi_json
from glow_activity import API_PREFIX, OPERATIONS
from glow_activity.models import GetActivityRequest

ALL_OPS = [f"activity.{op}" for op in ("get", "search", "problem", "resolve", "refresh", "export", "docs")]


@pytest.fixture
def people(world: World) -> dict[str, Any]:
    dept = world.department()
    return {
        "admin": world.profile(roles=["admin"]),
        "coord": world.profile(roles=["instructional"], departments=[dept]),
        "member": world.profile("Tess the TA", roles=["member"], departments=[dept]),
        "stranger": world.profile("Stranger", roles=["member"], departments=[world.department()]),
    }


@pytest.mark.parametrize(
    "who, permitted",
    [
        ("admin", ALL_OPS),
        (
            "coord",
            [
                "activity.get",
                "activity.search",
                "activity.problem",
                "activity.resolve",
                "activity.refresh",
                "activity.export",
                "activity.docs",
            ],
        ),
        ("member", ["activity.problem", "activity.refresh", "activity.docs"]),
    ],
)
def test_docs_permissions_differ_by_role(invoke: Any, people: dict[str, Any], who: str, permitted: list[str]) -> None:
    res = invoke("docs", {}, people[who].headers)
    assert res.status == 200
    body = res.body
    assert (body["name"], body["type"]) == ("activity", "analytics")
    assert [op["name"] for op in body["api_operations"]] == ALL_OPS
    assert [op["name"] for op in body["permissions"]] == permitted
    get_op = body["api_operations"][0]
    assert get_op["method"] == "POST" and get_op["path"] == f"{API_PREFIX}/get"
    assert get_op["roles"] == ["superadmin", "admin", "instructional"]
    assert [p["name"] for p in get_op["params"]] == list(GetActivityRequest.model_fields)
    assert {p["name"]: p["default"] for p in get_op["params"]}["summary_limit"] == 1000


def test_entries_come_from_the_models(invoke: Any, people: dict[str, Any]) -> None:
    body = invoke("docs", None, people["admin"].headers).body
    entries = {e["name"]: e for e in body["entries"]}
    assert list(entries) == ALL_OPS
    search = entries["activity.search"]
    names = [f["name"] for f in search["fields"]]
    assert "request.cursor" in names and "response.next_cursor" in names and "request.page_size" in names
    assert "| `page_size` |" in search["content"]
    problem_fields = {f["name"]: f for f in entries["activity.problem"]["fields"]}
    assert problem_fields["request.type"]["required"] is True
    assert problem_fields["request.session_id"]["required"] is False


def test_resources_list_live_columns(invoke: Any, people: dict[str, Any]) -> None:
    body = invoke("docs", {}, people["coord"].headers).body
    resources = {r["name"]: r for r in body["resources"]}
    sessions = {f["name"]: f for f in resources["sessions"]["fields"]}
    assert sessions["total_tokens"]["type"] == "bigint" and sessions["total_tokens"]["required"] is True
    assert sessions["total_cost"]["type"] == "numeric"
    assert "deleted_at" in {f["name"] for f in resources["profiles"]["fields"]}


def test_every_live_column_says_what_it_means(invoke: Any, people: dict[str, Any]) -> None:
    body = invoke("docs", {}, people["admin"].headers).body
    for resource in body["resources"]:
        for field in resource["fields"]:
            # a meaning, not the column's type again (a column added to the schema must be described)
            assert field["description"] not in ("", field["type"], "Not described yet."), (resource["name"], field)
    fields = {r["name"]: {f["name"]: f for f in r["fields"]} for r in body["resources"]}
    assert "US dollars" in fields["sessions"]["total_cost"]["description"]


EVERY_TABLE = {
    "profiles",
    "departments",
    "profile_departments",
    "profile_roles",
    "sessions",
    "logins",
    "grants",
    "problems",
    "api_keys",
    "uploads",
}


@pytest.mark.parametrize(
    "who, tables",
    [
        ("admin", EVERY_TABLE),
        ("coord", EVERY_TABLE - {"api_keys"}),
        ("member", {"profiles", "sessions", "problems"}),
    ],
)
def test_resources_are_the_tables_a_role_reads_about(
    invoke: Any, people: dict[str, Any], who: str, tables: set[str]
) -> None:
    body = invoke("docs", {}, people[who].headers).body
    assert {r["name"] for r in body["resources"]} == tables


def test_entity_id_names_a_visible_profile(invoke: Any, people: dict[str, Any]) -> None:
    res = invoke("docs", {"entity_id": people["member"].id}, people["coord"].headers)
    assert res.status == 200
    assert "Tess the TA" in res.body["page_metadata"]["detail"]["title"]
    assert set(res.body["page_metadata"]) == {"list", "detail", "new"}
    assert invoke("docs", {"entity_id": people["stranger"].id}, people["coord"].headers).status == 404
    assert invoke("docs", {"entity_id": "00000000-0000-4000-8000-000000000000"}, people["admin"].headers).status == 404
    assert invoke("docs", {"entity_id": "not-a-uuid"}, people["admin"].headers).status == 404
    assert invoke("docs", {"entity_id": people["member"].id}, people["member"].headers).status == 200  # itself
    assert invoke("docs", {"entity_id": people["coord"].id}, people["member"].headers).status == 404


def test_committed_openapi_matches_the_code() -> None:
    committed = (REPO_ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_json(), "openapi.json is stale: run `make openapi`"


def test_openapi_is_valid_31_with_security() -> None:
    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_request_schemas_state_what_validation_accepts() -> None:
    """Every request body is inline (the client's generator makes defaulted fields optional there), speaks JSON
    Schema (pydantic's own `ge`/`le` would be ignored by every tool), and bounds its numbers, strings and lists."""
    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    for path in (f"{API_PREFIX}/{op}" for op in OPERATIONS):  # (the MCP endpoint's JSON-RPC body is not a model's)
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" not in body, path
        for node in _walk(body):
            assert not {"ge", "le", "gt", "lt"} & set(node), (path, node)
            if node.get("type") == "integer":
                assert "minimum" in node and "maximum" in node, (path, node)
            if node.get("type") == "string" and not {"enum", "const"} & set(node) and node.get("format") != "uuid":
                assert "maxLength" in node and "pattern" in node, (path, node)
            if node.get("type") == "array":
                assert "maxItems" in node, (path, node)
    get_fields = document["paths"][f"{API_PREFIX}/get"]["post"]["requestBody"]["content"]["application/json"]
    problem = document["paths"][f"{API_PREFIX}/problem"]["post"]["requestBody"]["content"]["application/json"]
    assert problem["schema"]["properties"]["type"]["enum"] == ["feature", "bug", "question", "other"]
    assert "pattern" in get_fields["schema"]["properties"]["date_from"]["anyOf"][0]


def test_links_say_what_feeds_what() -> None:
    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    responses = {op["operationId"]: op["responses"] for item in document["paths"].values() for op in item.values()}
    assert responses["activity.problem"]["200"]["links"]["ResolveTheProblem"]["requestBody"]["problem_id"] == (
        "$response.body#/problem_id"
    )
    next_page = responses["activity.search"]["200"]["links"]["NextPage"]
    assert next_page["operationId"] == "activity.search"
    assert next_page["requestBody"]["cursor"] == "$response.body#/next_cursor"
    assert next_page["requestBody"]["sort_order"] == "$request.body#/sort_order"
    poll = responses["activity.export"]["202"]["links"]["PollTheExport"]
    assert poll["requestBody"] == {"upload_id": "$response.body#/upload_id"}


def test_template_routes_api_operations_and_openapi_agree(invoke: Any, people: dict[str, Any]) -> None:
    """The seven operations agree everywhere; the MCP endpoint (JSON-RPC, no resolver) is in the template and
    openapi.json with its POST, and with the GET and DELETE it refuses."""
    mcp = {(method, f"{API_PREFIX}/mcp") for method in ("POST", "GET", "DELETE")}
    mcp |= {("GET", path) for path in METADATA_PATHS}  # its protected-resource metadata (agents that sign in)
    template = {route for s in lambdas.functions() for route in s.http_routes} - mcp
    assert {route for s in lambdas.functions() for route in s.http_routes} >= mcp
    resolvers = set()
    for spec in [s for s in lambdas.functions() if s.path and s.operation in OPERATIONS]:
        app = lambdas.load_module(spec).app
        paths = app.get_openapi_schema(
            security_schemes={
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            }
        ).paths
        resolvers |= {
            (m.upper(), p) for p, item in (paths or {}).items() for m in ("post", "get") if getattr(item, m) is not None
        }
    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    openapi = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    assert openapi >= mcp
    openapi -= mcp
    docs = {(op["method"], op["path"]) for op in invoke("docs", {}, people["admin"].headers).body["api_operations"]}
    expected = {("POST", f"{API_PREFIX}/{op}") for op in OPERATIONS}
    assert template == resolvers == openapi == docs == expected


def test_the_api_reference_names_every_operation_and_request_field() -> None:
    """docs/API.md is the project's own reference: every path of openapi.json has its section there, and every
    field of its request body is explained in that section."""
    import re

    from activity_dev import REPO_ROOT

    document = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
    reference = (REPO_ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## POST (/\w+)[^\n]*\n(.*?)(?=^## |\Z)", reference, re.S | re.M))
    schemas = document["components"]["schemas"]
    for path, methods in document["paths"].items():
        if path in METADATA_PATHS:
            assert "## GET /.well-known/oauth-protected-resource" in reference
            continue
        name = "/" + path.rsplit("/", 1)[1]
        assert name in sections, f"docs/API.md has no section '## POST {name}'"
        operation_id = methods["post"]["operationId"]
        assert operation_id == "activity.mcp" or f"`{operation_id}`" in reference, operation_id
        body = methods["post"].get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in body:
            body = schemas[body["$ref"].rsplit("/", 1)[1]]
        for field in body.get("properties", {}):
            assert f"`{field}`" in sections[name], f"docs/API.md's POST {name} does not explain `{field}`"
