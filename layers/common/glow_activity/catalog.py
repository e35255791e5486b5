"""The seven operations in one table: who may call them and which models they take and return.

Docs (`api_operations`, `permissions`, `entries`) and the route checks read this, so they cannot drift.
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
    ),
    Operation(
        "search",
        "Search Activity",
        "Get activity session history (bottom table, paginated; 0-based pages or a keyset cursor).",
        SearchActivityRequest,
        SearchActivityResponse,
        READERS,
    ),
    Operation(
        "problem",
        "Create Problem",
        "Create new problem entry about the caller's own activity or a visible session.",
        CreateProblemRequest,
        CreateProblemResponse,
        EVERYONE,
    ),
    Operation(
        "resolve",
        "Resolve Problem",
        "Resolve or unresolve a problem entry.",
        ResolveProblemRequest,
        ResolveProblemResponse,
        READERS,
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
    ),
    Operation(
        "export",
        "Export Activity",
        "Export all activity data as a clean, denormalized ZIP of CSVs in S3, handed out by a presigned URL.",
        ExportRequest,
        ExportResponse,
        READERS,
    ),
    Operation(
        "docs",
        "Get Activity Docs Endpoint",
        "Get composed documentation for the activity analytics.",
        DocsRequest,
        ActivityDocsResponse,
        EVERYONE,
    ),
)


def operation(name: str) -> Operation:
    return next(op for op in OPERATION_CATALOG if op.name == name)


def allowed(op: Operation, scope: str) -> bool:
    """May a caller of this scope call `op`?"""
    return scope in op.scopes
