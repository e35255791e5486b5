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

EVERYONE = ("admin", "coordinator", "head_ta", "instructor", "ta")
READERS = ("admin", "coordinator")


@dataclass(frozen=True)
class Operation:
    name: str
    title: str
    description: str
    request: type[BaseModel]
    response: type[BaseModel]
    roles: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{API_PREFIX}/{self.name}"

    @property
    def method(self) -> str:
        return "POST"

    @property
    def qualified_name(self) -> str:
        return f"activity.{self.name}"


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
        "Refresh activity materialized views and invalidate caches.",
        RefreshRequest,
        RefreshResponse,
        ("admin",),
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


def allowed(op: Operation, roles: tuple[str, ...]) -> bool:
    """May a caller with these active roles call `op`? (Anyone may call problem and docs.)"""
    return op.roles == EVERYONE or any(role in op.roles for role in roles)
