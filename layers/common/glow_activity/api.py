"""HTTP plumbing shared by the seven functions.

`handle()` is what each Lambda handler calls: request id, body limits, authentication (what needs no database
first), the per-caller limit, JSON checks, the Powertools resolver (routing, request validation, gzip), the
contract's error body, and the audit row. Routes read the authenticated caller from `invocation()`.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from . import API_PREFIX, db
from .audit import write_audit
from .auth import Caller, caller_of, credentials_of
from .catalog import operation_named
from .errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
    UnsupportedMediaType,
    error_body,
    first_problem,
    validation_detail,
)
from .limits import take_request
from .models import ActivityFilters, ErrorResponse, iso
from .observability import logger, metrics
from .scope import scope_key
from .settings import get_settings

JSON = content_types.APPLICATION_JSON


@dataclass
class Invocation:
    operation: str
    request_id: str
    headers: dict[str, str]
    channel: str
    caller: Caller | None = None
    audited: bool = False
    # The id a write of this invocation creates, chosen once before its first attempt: a retry on a new connection
    # inserts the same id, so it can never make a second row (problem_reports.create_problem).
    write_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Headers every answer to this invocation carries (the caller's RateLimit fields).
    response_headers: dict[str, str] = field(default_factory=dict)
    # An operation run from inside another invocation (an MCP tools/call): its caller was authenticated and counted
    # against the limit once, by the outer request.
    nested: bool = False

    @property
    def authenticated(self) -> Caller:
        assert self.caller is not None, "route ran before authentication"
        return self.caller


_current: ContextVar[Invocation] = ContextVar("glow_activity_invocation")


def invocation() -> Invocation:
    return _current.get()


def path_of(operation: str) -> str:
    return f"{API_PREFIX}/{operation}"


ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    code: {"description": text, "content": {JSON: {"model": ErrorResponse}}}
    for code, text in (
        (400, "The body is not valid JSON."),
        (401, "Missing or invalid credentials."),
        (403, "The caller's roles do not allow this."),
        (413, "The body is larger than 1 MiB."),
        (415, "The body is not JSON."),
        (422, "The body does not match the schema."),
        (
            429,
            "Over the caller's limit of requests a minute (or, for export, of exports running); nothing ran. "
            "Retry after Retry-After seconds.",
        ),
        (500, "Internal error; the body carries only the request id."),
        (
            503,
            "The database is unreachable or its connections are used up (or, for an admin's refresh, another "
            "refresh did not finish in time); nothing ran. Retry after Retry-After seconds.",
        ),
    )
}


def operation_responses(model: Any, *extra: int, description: str = "Success") -> dict[int, OpenAPIResponse]:
    responses: dict[int, OpenAPIResponse] = {200: {"description": description, "content": {JSON: {"model": model}}}}
    responses.update(ERROR_RESPONSES)
    for code in extra:
        responses[code] = {
            "description": {
                404: "Not found or not visible to the caller.",
                409: "Idempotency-Key reused with another body.",
                502: "Storage failed; nothing was saved.",
                304: "Not modified (If-None-Match matched the ETag).",
            }[code],
            "content": {} if code == 304 else {JSON: {"model": ErrorResponse}},
        }
    return responses


SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def create_app() -> APIGatewayHttpResolver:
    """The function's resolver. Built at import, in the Lambda's init phase, which is also when the settings are
    first read: an invalid environment (ROLE_SCOPES, JWT_IDENTITY_CLAIMS, ...) fails the container's start loudly
    instead of every request."""
    get_settings()
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        detail = validation_detail(exc.errors())
        return error_response(Unprocessable(first_problem(detail), detail))

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc)

    return app


def error_response(exc: ApiError) -> Response:
    detail = exc.detail if isinstance(exc, Unprocessable) else None
    return Response(
        status_code=exc.status_code,
        content_type=JSON,
        body=error_body(exc.status_code, exc.message, detail),
        headers=dict(exc.headers),
    )


def json_response(model: Any, headers: dict[str, str] | None = None, status_code: int = 200) -> Response:
    body = model.model_dump_json() if hasattr(model, "model_dump_json") else json.dumps(model)
    return Response(status_code=status_code, content_type=JSON, body=body, headers=headers or {})


def cacheable_response(model: Any, *, scope_key: str, tags: str, data_as_of: str | None) -> Response:
    """A 200 with a strong ETag over the caller's scope and the exact body (a response model, or its JSON
    already rendered), or a 304 when it matches."""
    body = model if isinstance(model, str) else model.model_dump_json()
    etag = '"' + hashlib.sha256((scope_key + "\n" + body).encode()).hexdigest()[:40] + '"'
    headers = {"ETag": etag, "X-Cache-Tags": tags, "Cache-Control": "private, no-cache"}
    if data_as_of:
        headers["X-Data-As-Of"] = data_as_of
    if_none_match = invocation().headers.get("if-none-match", "")
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    if etag in candidates or "*" in candidates:
        return Response(status_code=304, headers=headers, body="")
    return Response(status_code=200, content_type=JSON, body=body, headers=headers)


def cached_read(
    request: ActivityFilters, compute: Callable[[db.Connection, Caller], tuple[Any, datetime | None]], tags: str
) -> Response:
    """get and search: permission checks, then `compute` on the reader (one consistent snapshot, and the time
    of the refresh its numbers come from), then ETag/304."""
    caller = invocation().authenticated
    caller.require_reader()
    caller.check_department_filter(request.department_ids)
    result, as_of = compute(db.connection(reader=True), caller)
    return cacheable_response(
        result, scope_key=scope_key(caller), tags=tags, data_as_of=iso(as_of) if as_of is not None else None
    )


def audit_with_write(conn: db.Connection, inv: Invocation) -> None:
    """Inside a write's transaction: its audit row commits (or rolls back) with the write."""
    caller = inv.authenticated
    write_audit(
        conn,
        operation=inv.operation,
        profile_id=caller.profile_id,
        api_key_id=caller.api_key_id,
        channel=inv.channel,
        status_code=200,
        request_id=inv.request_id,
    )
    inv.audited = True


def _lower_headers(event: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The request body is not valid base64.") from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _normalised_body(event: dict[str, Any], headers: dict[str, str]) -> str:
    raw = raw_body(event)
    if len(raw) > get_settings().max_body_bytes:
        raise PayloadTooLarge()
    if not raw.strip():
        return "{}"
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType()
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest() from None
    if not isinstance(parsed, dict):
        raise Unprocessable(
            "The request body must be a JSON object.",
            [{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    return json.dumps(parsed)


def _accepts_gzip(headers: dict[str, str]) -> bool:
    for coding in headers.get("accept-encoding", "").lower().split(","):
        name, _, quality = coding.strip().partition(";q=")
        if name in ("gzip", "*") and quality.strip() not in ("0", "0.0", "0.00", "0.000"):
            return True
    return False


# zlib's fastest level: a 390 KB get answer in 4 ms (97 KB) instead of 19 ms (80 KB) at gzip's default 9.
GZIP_LEVEL = 1


def _finish(result: dict[str, Any], inv: Invocation) -> dict[str, Any]:
    """Every response: the request id, the caller's RateLimit fields, no body on 304, and gzip whenever the client
    accepts it (one place for successes and errors alike)."""
    headers = result.setdefault("headers", {})
    headers["X-Request-Id"] = inv.request_id
    for name, value in inv.response_headers.items():
        headers.setdefault(name, value)
    if result.get("statusCode") == 304:
        result["body"] = ""
        result["isBase64Encoded"] = False
        headers.pop("Content-Type", None)
        headers.pop("Content-Encoding", None)
        return result
    body = result.get("body")
    if body and not result.get("isBase64Encoded") and _accepts_gzip(inv.headers):
        result["body"] = base64.b64encode(gzip.compress(body.encode("utf-8"), GZIP_LEVEL)).decode("ascii")
        result["isBase64Encoded"] = True
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return result


def _error_result(exc: ApiError) -> dict[str, Any]:
    detail = exc.detail if isinstance(exc, Unprocessable) else None
    return {
        "statusCode": exc.status_code,
        "isBase64Encoded": False,
        "headers": {"Content-Type": JSON, **exc.headers},
        "body": error_body(exc.status_code, exc.message, detail),
    }


def _audit(inv: Invocation, status_code: int) -> None:
    if inv.caller is None or inv.audited:
        return
    caller = inv.caller
    for attempt in (1, 2):  # once more on a new connection when this one turns out dead
        try:
            write_audit(
                db.connection(),
                operation=inv.operation,
                profile_id=caller.profile_id,
                api_key_id=caller.api_key_id,
                channel=inv.channel,
                status_code=status_code,
                request_id=inv.request_id,
            )
            return
        except Exception as exc:  # a failed audit never turns a served request into an error
            if db.is_unavailable(exc):
                db.reset_connections()
                if attempt == 1:
                    continue
            logger.exception("audit write failed", extra={"operation": inv.operation})
            metrics.add_metric(name="AuditWriteFailed", unit="Count", value=1)
            return


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
        body = _normalised_body(event, inv.headers)
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
    headers = _lower_headers(event)
    request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())
    outer = _current.get(None)
    inv = Invocation(
        operation=operation,
        request_id=request_id,
        headers=headers,
        channel=channel or ("mcp" if headers.get("x-mcp", "").strip() else "api"),
        nested=outer is not None,
    )
    token = _current.set(inv)
    logger.append_keys(request_id=request_id, operation=operation, channel=inv.channel)
    try:
        if before_auth is not None:
            before_auth(headers, event)
        inv.caller = outer.caller if outer is not None and outer.caller is not None else _authenticate(headers)
        logger.append_keys(caller=inv.caller.profile_id)
        _limit(inv)
        result = _respond_retrying(inv, event, respond)
    except ApiError as exc:
        result = _error_result(exc)
    except Exception as exc:
        # a lost connection, or an error that struck midway through a statement's reply (a value that would not
        # convert) with the rest still on the wire: the container's next calls start on fresh connections
        db.reset_connections()
        if db.is_unavailable(exc):
            logger.warning("database unavailable", extra={"error": type(exc).__name__})
            metrics.add_metric(name="DatabaseUnavailable", unit="Count", value=1)
            result = _error_result(ServiceUnavailable())
        elif db.is_statement_timeout(exc):  # refused by the database's time bound: nothing changed, try later
            logger.warning("statement timeout", extra={"error": type(exc).__name__})
            metrics.add_metric(name="StatementTimeout", unit="Count", value=1)
            result = _error_result(ServiceUnavailable(STATEMENT_TIMEOUT_MESSAGE, retry_after=30))
        else:
            logger.exception("unhandled error")
            metrics.add_metric(name="UnhandledError", unit="Count", value=1)
            result = {
                "statusCode": 500,
                "isBase64Encoded": False,
                "headers": {"Content-Type": JSON},
                "body": error_body(500, f"Internal error. Quote request id {request_id} to support."),
            }
    finally:
        _current.reset(token)
    status = int(result.get("statusCode", 500))
    if status == 503:  # the operator's alarm: the database unreachable, its connections spent, a refresh queue full
        metrics.add_metric(name="ServiceUnavailable", unit="Count", value=1)
    _audit(inv, status)
    # one line per request: the dashboard's top callers, by requests and by 429s, are read from these
    logger.info("request", extra={"status": status, "ms": round((time.perf_counter() - started) * 1000, 1)})
    logger.remove_keys(["caller"])
    return _finish(result, inv)
