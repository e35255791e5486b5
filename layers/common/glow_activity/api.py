"""The one request path every function's answer takes.

`handle()` is what each Lambda handler calls (and the MCP tools, for each operation): `serve()` gives every request
its id, the checks that need no caller (body size and type, a token's signature: nothing that needs the database),
authentication, the caller's limit, the route (`handle`) or the MCP message (`serve`'s `respond`), one run more on a
new connection when the operation's catalog entry allows it, the contract's error body for every failure, one
audit row, and the finished response. Where each of those lives: `request_body`, `auth`, `limits`, `routes`,
`responses`, `audit`, `errors` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from . import db
from .audit import audit_call
from .auth import Caller, caller_of, credentials_of
from .catalog import operation_named
from .errors import ApiError, InternalError, ServiceUnavailable, TooManyRequests
from .invocation import Invocation, outer_invocation, serving
from .limits import take_request
from .observability import logger, metrics
from .request_body import lower_headers, normalised_body
from .responses import error_result, finish
from .settings import get_settings


def _authenticate(headers: dict[str, str]) -> Caller:
    """Authenticate: whatever needs no database first (a request without credentials, or with a token that does
    not verify, never opens a connection), then the key and the profile."""
    credentials = credentials_of(headers)
    return _on_live_connection(lambda conn: caller_of(conn, credentials))


def _on_live_connection[T](run: Callable[[db.Connection], T]) -> T:
    """`run` on the container's connection; one that died while idle (the cluster paused, a failover) is reopened
    once, for the request's first statements (authentication, the limit), instead of failing the request."""
    try:
        return run(db.connection())
    except ApiError:
        raise
    except Exception as exc:
        if not db.is_unavailable(exc):
            raise
        logger.info("stale database connection, reconnecting")
        db.reset_connections()
        return run(db.connection())


def _limit(inv: Invocation) -> None:
    """The caller's limit (CALLER_REQUESTS_PER_MINUTE across every function and container): a 429 runs nothing.
    The caller's first refusal in a minute is audited as any call; its others that minute become one audit row
    with their count (limits.take_request), never a row each."""
    per_minute = get_settings().caller_requests_per_minute
    if inv.nested or per_minute <= 0:
        return
    allowance = _on_live_connection(
        lambda conn: take_request(
            conn,
            inv.authenticated.profile_id,
            per_minute,
            operation=inv.operation,
            channel=inv.channel,
            request_id=inv.request_id,
        )
    )
    inv.response_headers.update(allowance.headers())
    if not allowance.allowed:
        inv.audited = not allowance.audit_refusal
        logger.info("caller over its limit", extra={"retry_after": allowance.reset_seconds})  # not a warning each
        metrics.add_metric(name="CallerThrottled", unit="Count", value=1)
        raise TooManyRequests(
            f"More than {per_minute} requests in a minute from this caller; nothing ran. "
            f"Try again in {allowance.reset_seconds} s.",
            allowance.reset_seconds,
        )


STATEMENT_TIMEOUT_MESSAGE = (
    "The database took longer than this request may take (DB_STATEMENT_TIMEOUT_MS) and nothing was changed. "
    "Try again shortly, or narrow the window."
)

Respond = Callable[[Invocation, dict[str, Any]], dict[str, Any]]


def _may_retry(inv: Invocation, exc: Exception) -> bool:
    """Run it once more on a new connection? Its catalog entry says (`retried_on_lost_connection`), but for a keyed
    problem: the Idempotency-Key is the client's own retry."""
    op = operation_named(inv.operation)
    if op is None or not op.retried_on_lost_connection or not db.is_unavailable(exc):
        return False
    return not (inv.operation == "problem" and "idempotency-key" in inv.headers)


def _respond_retrying(inv: Invocation, event: dict[str, Any], respond: Respond) -> dict[str, Any]:
    try:
        return respond(inv, event)
    except ApiError:
        raise
    except Exception as exc:
        if not _may_retry(inv, exc):
            raise
        logger.info("database connection lost mid-request; running it again on a new one")
        metrics.add_metric(name="DatabaseReconnected", unit="Count", value=1)
        db.reset_connections()
        inv.audited = False  # a write's audit row rolled back with it (or, committed, is found with its row)
        return respond(inv, event)


def handle(app: APIGatewayHttpResolver, operation: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one API Gateway HTTP API (payload 2.0) event with an operation's resolver."""

    def resolve(inv: Invocation, event: dict[str, Any]) -> dict[str, Any]:
        body = normalised_body(event, inv.headers)
        return app.resolve({**event, "body": body, "isBase64Encoded": False}, context)

    return serve(operation, event, resolve)


def serve(
    operation: str,
    event: dict[str, Any],
    respond: Respond,
    *,
    before_auth: Callable[[dict[str, str], dict[str, Any]], None] | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """What every request gets, whatever answers it: a request id, the checks of `before_auth` (protocol checks
    that need no caller), authentication, the contract's error body for every failure, one audit row, and the
    finished response (request id header, gzip). `respond` makes the answer for the authenticated invocation."""
    started = time.perf_counter()
    headers = lower_headers(event)
    request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())
    outer = outer_invocation()
    inv = Invocation(
        operation=operation,
        request_id=request_id,
        headers=headers,
        channel=channel or ("mcp" if headers.get("x-mcp", "").strip() else "api"),
        nested=outer is not None,
    )
    logger.append_keys(request_id=request_id, operation=operation, channel=inv.channel)
    with serving(inv):
        result = _answer(inv, event, respond, before_auth, outer)
    status = int(result.get("statusCode", 500))
    if status == 503:  # the operator's alarm: the database unreachable, its connections spent, a refresh queue full
        metrics.add_metric(name="ServiceUnavailable", unit="Count", value=1)
    audit_call(inv, status)
    # one line per request: the dashboard's top callers, by requests and by 429s, are read from these
    logger.info("request", extra={"status": status, "ms": round((time.perf_counter() - started) * 1000, 1)})
    logger.remove_keys(["caller"])
    return finish(result, inv)


def _answer(
    inv: Invocation,
    event: dict[str, Any],
    respond: Respond,
    before_auth: Callable[[dict[str, str], dict[str, Any]], None] | None,
    outer: Invocation | None,
) -> dict[str, Any]:
    """The answer before it is finished: the route's, or the contract's error body for whatever failed."""
    headers = inv.headers
    try:
        if before_auth is not None:
            before_auth(headers, event)
        inv.caller = outer.caller if outer is not None and outer.caller is not None else _authenticate(headers)
        logger.append_keys(caller=inv.caller.profile_id)
        _limit(inv)
        return _respond_retrying(inv, event, respond)
    except ApiError as exc:
        return error_result(exc)
    except Exception as exc:
        # a lost connection, or an error that struck midway through a statement's reply (a value that would not
        # convert) with the rest still on the wire: the container's next calls start on fresh connections
        db.reset_connections()
        if db.is_unavailable(exc):
            logger.warning("database unavailable", extra={"error": type(exc).__name__})
            metrics.add_metric(name="DatabaseUnavailable", unit="Count", value=1)
            return error_result(ServiceUnavailable())
        if db.is_statement_timeout(exc):  # refused by the database's time bound: nothing changed, try later
            logger.warning("statement timeout", extra={"error": type(exc).__name__})
            metrics.add_metric(name="StatementTimeout", unit="Count", value=1)
            return error_result(ServiceUnavailable(STATEMENT_TIMEOUT_MESSAGE, retry_after=30))
        logger.exception("unhandled error")
        metrics.add_metric(name="UnhandledError", unit="Count", value=1)
        return error_result(InternalError(inv.request_id))
