"""Every answer is built here: a route's JSON, get's and search's ETag/304, the contract's error body (for a route's
refusal, the request path's, and a 500), and what every response then gets (the request id, the caller's RateLimit
fields, gzip when the client accepts it)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from .errors import ApiError, Unprocessable, error_body
from .invocation import Invocation, invocation

JSON = content_types.APPLICATION_JSON
# zlib's fastest level: a 390 KB get answer in 4 ms (97 KB) instead of 19 ms (80 KB) at gzip's default 9.
GZIP_LEVEL = 1


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


def error_result(exc: ApiError) -> dict[str, Any]:
    """The contract's error body for `exc`, as the Lambda's answer."""
    detail = exc.detail if isinstance(exc, Unprocessable) else None
    return {
        "statusCode": exc.status_code,
        "isBase64Encoded": False,
        "headers": {"Content-Type": JSON, **exc.headers},
        "body": error_body(exc.status_code, exc.message, detail),
    }


def error_response(exc: ApiError) -> Response:
    """The same, as a route's Powertools response (a refusal raised inside the resolver)."""
    result = error_result(exc)
    return Response(status_code=result["statusCode"], content_type=JSON, body=result["body"], headers=dict(exc.headers))


def _accepts_gzip(headers: dict[str, str]) -> bool:
    for coding in headers.get("accept-encoding", "").lower().split(","):
        name, _, quality = coding.strip().partition(";q=")
        if name in ("gzip", "*") and quality.strip() not in ("0", "0.0", "0.00", "0.000"):
            return True
    return False


def finish(result: dict[str, Any], inv: Invocation) -> dict[str, Any]:
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
