"""Domain exceptions and the one mapping from them to the contract's error body.

Body: {"statusCode": <code>, "message": "<plain sentence>", "detail": [...]} with `detail` only on 422.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    status_code = 500
    default_message = "The request failed."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.headers = headers or {}


class BadRequest(ApiError):
    status_code = 400
    default_message = "The request body is not valid JSON."


class Unauthorized(ApiError):
    status_code = 401
    default_message = "Authentication is required."

    def __init__(self) -> None:
        # Never say which part of the credentials failed.
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(Unauthorized):
    """Credentials were sent but do not hold: still without saying which part failed."""

    default_message = "The credentials are not valid or have expired."


class Forbidden(ApiError):
    status_code = 403
    default_message = "You do not have permission to do this."


class NotFound(ApiError):
    status_code = 404
    default_message = "Not found."


class MethodNotAllowed(ApiError):
    status_code = 405
    default_message = "This path takes POST."

    def __init__(self, message: str | None = None, allow: str = "POST") -> None:
        super().__init__(message, headers={"Allow": allow})


class NotAcceptable(ApiError):
    status_code = 406
    default_message = "The Accept header must include application/json."


class Conflict(ApiError):
    status_code = 409
    default_message = "The request conflicts with an earlier one."


class PayloadTooLarge(ApiError):
    status_code = 413
    default_message = "The request body is larger than 1 MiB."


class UnsupportedMediaType(ApiError):
    status_code = 415
    default_message = "The request body must be JSON (Content-Type: application/json)."


class Unprocessable(ApiError):
    status_code = 422
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or []


class TooManyRequests(ApiError):
    """Over a limit (the caller's requests a minute, or the exports running at once): nothing ran."""

    status_code = 429
    default_message = "Too many requests; try again after Retry-After seconds."

    def __init__(self, message: str | None = None, retry_after: int = 1, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={**(headers or {}), "Retry-After": str(max(1, int(retry_after)))})


class InternalError(ApiError):
    """What nobody foresaw: the answer carries only the request id (the log has the rest)."""

    status_code = 500

    def __init__(self, request_id: str) -> None:
        super().__init__(f"Internal error. Quote request id {request_id} to support.")


class UpstreamFailed(ApiError):
    status_code = 502
    default_message = "A storage service failed; nothing was saved. Try again."


class ServiceUnavailable(ApiError):
    status_code = 503
    default_message = "The database is not reachable right now. Try again shortly."

    def __init__(self, message: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def error_body(status_code: int, message: str, detail: list[dict[str, Any]] | None = None) -> str:
    body: dict[str, Any] = {"statusCode": status_code, "message": message}
    if status_code == 422:
        body["detail"] = detail or []
    return json.dumps(body, separators=(",", ":"))


# pydantic puts these before the message of a ValueError or assert raised by a validator: ours are plain sentences
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def plain_message(msg: str) -> str:
    for prefix in _PYDANTIC_PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def validation_detail(errors: list[dict[str, Any]] | Any) -> list[dict[str, Any]]:
    """pydantic / Powertools errors as the contract's `{loc, msg, type}` list (no input echoed)."""
    out = []
    for err in errors:
        loc = [part for part in err.get("loc", ()) if part != "body"] or ["body"]
        out.append(
            {
                "loc": ["body", *loc] if loc != ["body"] else loc,
                "msg": plain_message(str(err.get("msg", ""))),
                "type": str(err.get("type", "")),
            }
        )
    return out


def first_problem(detail: list[dict[str, Any]]) -> str:
    if not detail:
        return "The request is not valid."
    first = detail[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "body"
    return f"Invalid request: {where}: {first['msg'].rstrip('.')}."
