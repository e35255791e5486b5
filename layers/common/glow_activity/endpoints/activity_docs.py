"""The composed documentation of the activity artifact, generated from the models and the catalog.

Nothing here is a hand-kept copy: fields come from the pydantic models that validate requests, the
operations from the catalog that the routes use, and table columns live from the database catalog.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC
from typing import Any, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel

from glow_activity.auth import Caller
from glow_activity.catalog import OPERATION_CATALOG, Operation, allowed
from glow_activity.db import Connection
from glow_activity.errors import NotFound
from glow_activity.models import (
    ActivityDocsResponse,
    DocsApiResponse,
    DocsField,
    DocsResponse,
    OperationInfo,
    OperationParam,
    PageText,
    iso,
)
from glow_activity.platform import SCHEMA
from glow_activity.scope import visible_conditions, visible_problem_conditions

# Tables the artifact reads, in the order a reader meets them, and what each column means. The columns
# themselves are read live from the database catalog (a comment there wins over these words); a column the
# catalog has and this table does not describe says so, and a test keeps the two in step.
COLUMN_MEANINGS: dict[str, dict[str, str]] = {
    "profiles": {
        "id": "The profile's id: what profile_id means everywhere else.",
        "name": "Display name.",
        "email": "E-mail address; a token's `email` claim is matched against it, in any letter case.",
        "created_at": "When the profile was created.",
        "deleted_at": "When it was soft-deleted: a deleted profile is invisible everywhere. Empty: active.",
    },
    "departments": {
        "id": "Stable slug of the department (what department_ids filter by).",
        "name": "Display name (the label of the department filter).",
    },
    "profile_departments": {
        "profile_id": "A profile ...",
        "department_id": "... belongs to this department. A coordinator sees the profiles sharing a department.",
    },
    "profile_roles": {
        "profile_id": "A profile ...",
        "role": "... has this Glow role: superadmin, admin, instructional, member, guest or custom.",
        "active": "Only active roles count, for the roles filter and for permissions.",
    },
    "sessions": {
        "id": "The session's id.",
        "profile_id": "The TA (profile) who trained in it.",
        "created_at": "When it started: the time get, search and export filter sessions by.",
        "updated_at": "Its last activity.",
        "active": "Still open.",
        "group_count": "AI generation groups in it.",
        "run_count": "AI generation runs in it.",
        "first_run_at": "Its first AI run; empty when it has none yet.",
        "last_run_at": "Its latest AI run (the Glow client's Duration is last_run_at - first_run_at).",
        "chat_count": "Chats in it.",
        "attempt_count": "Attempts in it.",
        "message_count": "Messages in it.",
        "total_tokens": "AI tokens it used.",
        "total_cost": "What its AI use cost, in US dollars.",
    },
    "logins": {
        "id": "The login's id.",
        "profile_id": "Who logged in.",
        "logged_in_at": "When: the time logins are counted by.",
        "method": "How: password, sso, magic_link, ...",
    },
    "grants": {
        "id": "The grant's id.",
        "profile_id": "The profile access was granted to, or that was emulated (where it is counted).",
        "granted_by": "The admin who granted or emulated.",
        "kind": "access, or emulation (an admin viewing the platform as that profile).",
        "created_at": "When: the time grants are counted by.",
    },
    "problems": {
        "id": "The problem's id (what resolve takes).",
        "type": "feature, bug, question or other.",
        "message": "What is wrong, as reported.",
        "session_id": "The session it is about, if any.",
        "profile_id": "Whose activity it concerns (the session's TA, or the reporter).",
        "reported_by": "Who reported it.",
        "created_at": "When it was reported: the time problems are counted by.",
        "updated_at": "Its last change.",
        "resolved": "Resolved (true) or open (false).",
        "resolved_at": "When it was resolved; empty while open.",
        "resolved_by": "Who resolved it; empty while open.",
    },
    "api_keys": {
        "id": "The key's id (recorded in the audit row of every call made with it).",
        "name": "A label for the key.",
        "key_hash": "Lowercase hex SHA-256 of the raw key; the key itself is never stored.",
        "profile_id": "The profile the key acts as; empty for an application's key (valid only with a user's token).",
        "created_at": "When it was issued.",
        "expires_at": "When it stops working; empty: never.",
        "revoked_at": "When it was revoked; empty: not revoked.",
    },
    "uploads": {
        "id": "The export's upload_id.",
        "s3_key": "Where its ZIP is in the export bucket.",
        "file_name": "The ZIP's name, activity_export_<UTC date and time>.zip.",
        "status": "running, succeeded or failed.",
        "size_bytes": "The ZIP's size.",
        "row_counts": "Data rows per CSV file.",
        "row_count": "Data rows over all CSV files.",
        "requested_by": "Who asked for it (only they may poll it).",
        "filters": "The filters it was made with.",
        "created_at": "When it was asked for.",
        "completed_at": "When it finished.",
        "expires_at": "When its download link expires.",
        "error": "Why it failed, for a failed export.",
        "claimed_at": "When its asynchronous job took it up (a job is claimed once; empty for a synchronous export "
        "or one not started yet).",
    },
}
RESOURCE_TABLES = tuple(COLUMN_MEANINGS)
SERVICE_TABLES = ("uploads",)  # in schema activity; the others are the platform's, in public
# What each scope may read about: the tables its operations touch (a member needs neither keys nor uploads).
TABLES_BY_SCOPE = {
    "all": RESOURCE_TABLES,
    "departments": tuple(t for t in RESOURCE_TABLES if t != "api_keys"),
    "self": ("profiles", "sessions", "problems"),
}

DESCRIPTION = (
    "Engagement of teaching assistants with the Glow AI trainer: sessions, logins, access grants and "
    "emulations, and problems flagged on that activity, summarised per profile for program coordinators. "
    "Admins see every profile, coordinators the profiles sharing one of their departments."
)


def type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in get_args(annotation))
    if origin is typing.Annotated:
        return type_name(get_args(annotation)[0])
    if origin is typing.Literal:
        return " | ".join(repr(v) for v in get_args(annotation))
    if origin in (list, tuple):
        return f"{type_name(get_args(annotation)[0])}[]"
    if origin is dict:
        return f"object<{type_name(get_args(annotation)[1])}>"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return {str: "string", int: "integer", bool: "boolean", float: "number", UUID: "string (uuid)"}.get(
            annotation, annotation.__name__
        )
    return str(annotation)


def model_fields(model: type[BaseModel]) -> list[DocsField]:
    return [
        DocsField(
            name=name, type=type_name(info.annotation), required=info.is_required(), description=info.description or ""
        )
        for name, info in model.model_fields.items()
    ]


def model_params(model: type[BaseModel]) -> list[OperationParam]:
    params = []
    for name, info in model.model_fields.items():
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        params.append(
            OperationParam(name=name, type=type_name(info.annotation), required=info.is_required(), default=default)
        )
    return params


def operation_info(op: Operation) -> OperationInfo:
    return OperationInfo(
        name=op.qualified_name,
        description=op.description,
        params=model_params(op.request),
        returns=op.response.__name__,
        method=op.method,
        path=op.path,
        roles=list(op.roles),
    )


def _table(fields: list[DocsField]) -> str:
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | `{f.type}` | {'yes' if f.required else 'no'} | {f.description} |" for f in fields]
    return "\n".join(lines)


def operation_entry(op: Operation) -> DocsResponse:
    request_fields, response_fields = model_fields(op.request), model_fields(op.response)
    content = "\n\n".join(
        [
            f"## {op.title}\n\n`{op.method} {op.path}`\n\n{op.description}",
            f"Roles: {', '.join(op.roles)}. Authenticate with `X-Api-Key` or `Authorization: Bearer <JWT>`; "
            "AI agents add `X-MCP: 1`.",
            "### Request body\n\n"
            + (_table(request_fields) if request_fields else "No fields (send `{}` or nothing)."),
            f"### Response `{op.response.__name__}`\n\n" + _table(response_fields),
        ]
    )
    fields = [f.model_copy(update={"name": f"request.{f.name}"}) for f in request_fields]
    fields += [f.model_copy(update={"name": f"response.{f.name}"}) for f in response_fields]
    return DocsResponse(
        name=op.qualified_name, type="operation", description=op.description, content=content, fields=fields
    )


_COLUMNS_SQL = """
SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable = 'NO',
       coalesce(col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position), '')
FROM information_schema.columns c
WHERE (c.table_schema, c.table_name) IN (SELECT * FROM unnest(CAST(:schemas AS text[]), CAST(:tables AS text[])))
ORDER BY c.table_name, c.ordinal_position
"""


def resource_entries(conn: Connection, scope: str) -> list[DocsResponse]:
    tables = TABLES_BY_SCOPE[scope]
    columns: dict[str, list[DocsField]] = {}
    schemas = [SCHEMA if table in SERVICE_TABLES else "public" for table in tables]
    for table, column, data_type, not_null, comment in conn.run(_COLUMNS_SQL, schemas=schemas, tables=list(tables)):
        meaning = comment or COLUMN_MEANINGS[table].get(column, "Not described yet.")
        columns.setdefault(table, []).append(
            DocsField(name=column, type=data_type, required=bool(not_null), description=meaning)
        )
    entries = []
    for table in tables:
        fields = columns.get(table, [])
        content = f"## Table `{table}`\n\n" + _table(fields)
        entries.append(
            DocsResponse(
                name=table,
                type="table",
                description=f"Columns of `{table}`, read live from the database catalog.",
                content=content,
                fields=fields,
            )
        )
    return entries


_PROFILE_SQL = "SELECT p.name FROM profiles p WHERE p.id = CAST(:entity AS uuid) AND {visible}"
_SESSION_SQL = """
SELECT p.name, s.created_at FROM sessions s JOIN profiles p ON p.id = s.profile_id
WHERE s.id = CAST(:entity AS uuid) AND {visible}"""


def entity_detail(conn: Connection, caller: Caller, entity_id: str) -> PageText:
    """The detail page's text for a profile, a session or a problem the caller can see; 404 for anything else
    (unknown, invisible and malformed alike: existence is not revealed)."""
    try:
        entity = str(UUID(entity_id))
    except ValueError:
        raise NotFound("No such profile, session or problem.") from None
    visible, params = visible_conditions(caller)
    rows = conn.run(_PROFILE_SQL.format(visible=visible), entity=entity, **params)
    if rows:
        name = rows[0][0]
        return PageText(title=f"Activity of {name}", description=f"Sessions, logins, grants and problems of {name}.")
    rows = conn.run(_SESSION_SQL.format(visible=visible), entity=entity, **params)
    if rows:
        name, created_at = rows[0]
        day = created_at.astimezone(UTC).date().isoformat()
        return PageText(
            title=f"Session of {name} on {day}",
            description=f"A training session of {name} with the AI, started {iso(created_at)}.",
        )
    problem_visible, problem_params = visible_problem_conditions(caller)
    rows = conn.run(
        "SELECT q.type, p.name, q.resolved FROM problems q LEFT JOIN profiles p ON p.id = q.profile_id"
        f" WHERE q.id = CAST(:entity AS uuid) AND {problem_visible}",
        entity=entity,
        **problem_params,
    )
    if rows:
        kind, name, resolved = rows[0]
        state = "resolved" if resolved else "open"
        about = f" about {name}" if name else ""
        return PageText(title=f"Problem ({kind}){about}", description=f"A {state} {kind} problem{about}.")
    raise NotFound("No such profile, session or problem.")


def compose_docs(conn: Connection, caller: Caller, entity_id: str | None) -> ActivityDocsResponse:
    detail = PageText(
        title="Activity detail", description="One profile's, session's or problem's activity and problems."
    )
    if entity_id is not None:
        detail = entity_detail(conn, caller, entity_id)
    operations = [operation_info(op) for op in OPERATION_CATALOG]
    permitted = [info for op, info in zip(OPERATION_CATALOG, operations, strict=True) if allowed(op, caller.scope)]
    artifact = DocsResponse(
        name="activity",
        type="analytics",
        description=DESCRIPTION,
        content="# Activity\n\n"
        + DESCRIPTION
        + "\n\n"
        + "\n".join(f"- `{op.qualified_name}` — {op.description}" for op in OPERATION_CATALOG),
        fields=[],
    )
    pages = DocsApiResponse(
        list=PageText(title="Activity", description="Engagement of TAs: counts, per-profile summary, history."),
        detail=detail,
        new=PageText(title="Report a problem", description="Flag a problem on a session or on your activity."),
    )
    return ActivityDocsResponse(
        name="activity",
        type="analytics",
        description=DESCRIPTION,
        artifact=artifact,
        entries=[operation_entry(op) for op in OPERATION_CATALOG],
        resources=resource_entries(conn, caller.scope),
        permissions=permitted,
        api_operations=operations,
        page_metadata=pages,
        list=pages.list,
        detail=pages.detail,
        new=pages.new,
    )
