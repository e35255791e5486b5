"""The seven operations in one table: who may call them, which models they take and return, where their route
lives, and their policy (read-only, idempotent, run again on a lost connection).

Docs (`api_operations`, `permissions`, `entries`), the route checks, the request path (`api`) and the MCP tools
(their hints, their routes) read this, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from . import API_PREFIX
from .models import (
    ActivityDocsResponse,
    CreateProblemRequest,
    CreateProblemResponse,
    DocsRequest,
    ExportRequest,
    ExportResponse,
    GetActivityRequest,
    GetActivityResponse,
    RefreshRequest,
    RefreshResponse,
    ResolveProblemRequest,
    ResolveProblemResponse,
    SearchActivityRequest,
    SearchActivityResponse,
)
from .settings import get_settings

# Who may call an operation, by the scope the caller's roles give (ROLE_SCOPES in settings).
EVERYONE = ("all", "departments", "self")
READERS = ("all", "departments")


@dataclass(frozen=True)
class Operation:
    name: str
    title: str
    description: str
    request: type[BaseModel]
    response: type[BaseModel]
    scopes: tuple[str, ...]
    # Changes nothing the caller could see (MCP's readOnlyHint).
    read_only: bool = False
    # The same call twice leaves what once did (MCP's idempotentHint).
    idempotent: bool = False
    # Run once more on a new connection when its own turns out dead (an Aurora failover, a proxy restart, an
    # idle-connection reaper): the reads, resolve (setting the same state twice is harmless) and problem (its id is
    # chosen before the insert, docs/DECISIONS.md; a keyed one is not: the Idempotency-Key is the client's own
    # retry). Not export (it has started an upload; its failure path cleans up and answers 503) or refresh (long,
    # and the schedule retries it).
    retried_on_lost_connection: bool = False
    # The module whose `app` serves it (its function's handler, and the MCP tool, load it).
    route: str = ""

    @property
    def route_module(self) -> str:
        return self.route or f"glow_activity.endpoints.{self.name}"

    @property
    def path(self) -> str:
        return f"{API_PREFIX}/{self.name}"

    @property
    def method(self) -> str:
        return "POST"

    @property
    def qualified_name(self) -> str:
        return f"activity.{self.name}"

    @property
    def roles(self) -> tuple[str, ...]:
        """The platform's roles that may call it under this container's ROLE_SCOPES."""
        return get_settings().roles_with_scope(*self.scopes)


OPERATION_CATALOG: tuple[Operation, ...] = (
    Operation(
        "get",
        "Get Activity",
        "Summary counts, per-profile summary and filter facets over the caller's scope and a date window.",
        GetActivityRequest,
        GetActivityResponse,
        READERS,
        read_only=True,
        idempotent=True,
        retried_on_lost_connection=True,
    ),
    Operation(
        "search",
        "Search Activity",
        "Get activity session history (bottom table, paginated; 0-based pages or a keyset cursor).",
        SearchActivityRequest,
        SearchActivityResponse,
        READERS,
        read_only=True,
        idempotent=True,
        retried_on_lost_connection=True,
    ),
    Operation(
        "problem",
        "Create Problem",
        "Create new problem entry about the caller's own activity or a visible session.",
        CreateProblemRequest,
        CreateProblemResponse,
        EVERYONE,
        retried_on_lost_connection=True,
    ),
    Operation(
        "resolve",
        "Resolve Problem",
        "Resolve or unresolve a problem entry.",
        ResolveProblemRequest,
        ResolveProblemResponse,
        READERS,
        idempotent=True,
        retried_on_lost_connection=True,
    ),
    Operation(
        "refresh",
        "Activity Refresh",
        "Bring the activity rollups up to date and invalidate caches. Admins refresh now; anyone else's call is "
        "debounced (answered by the last refresh when it is recent enough). An admin's call is a full pass; the "
        "schedule's and debounced runs recompute what changed since yesterday.",
        RefreshRequest,
        RefreshResponse,
        EVERYONE,
        idempotent=True,
    ),
    Operation(
        "export",
        "Export Activity",
        "Export all activity data as a clean, denormalized ZIP of CSVs in S3, handed out by a presigned URL.",
        ExportRequest,
        ExportResponse,
        READERS,
        read_only=True,
        idempotent=True,
        route="glow_activity.export.route",
    ),
    Operation(
        "docs",
        "Get Activity Docs Endpoint",
        "Get composed documentation for the activity analytics.",
        DocsRequest,
        ActivityDocsResponse,
        EVERYONE,
        read_only=True,
        idempotent=True,
        retried_on_lost_connection=True,
    ),
)


def operation_named(name: str) -> Operation | None:
    """The operation of that name; None for what is not one of the seven (the MCP endpoint's own messages)."""
    return next((op for op in OPERATION_CATALOG if op.name == name), None)


def allowed(op: Operation, scope: str) -> bool:
    """May a caller of this scope call `op`?"""
    return scope in op.scopes
