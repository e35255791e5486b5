"""What a request carries, read once: its headers (lower-cased) and its body, checked the contract's way (413 over
MAX_BODY_BYTES, 400 for bad base64 or JSON, 415 for a content type that is not JSON, 422 for a body that is not an
object; an empty body is `{}`)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from .settings import get_settings


def lower_headers(event: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The request body is not valid base64.") from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def bounded_body(event: dict[str, Any]) -> bytes:
    """The body's bytes, refused (413) past MAX_BODY_BYTES: every endpoint's bound, MCP's included."""
    raw = raw_body(event)
    if len(raw) > get_settings().max_body_bytes:
        raise PayloadTooLarge()
    return raw


def normalised_body(event: dict[str, Any], headers: dict[str, str]) -> str:
    """The body as the JSON object text the route's model validates."""
    raw = bounded_body(event)
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
