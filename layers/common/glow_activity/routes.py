"""What a route needs: its resolver (`create_app`), its path, its OpenAPI responses and security, and get's and
search's read (permissions, one snapshot, ETag/304)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from . import API_PREFIX, db
from .auth import Caller
from .errors import ApiError, Unprocessable, first_problem, validation_detail
from .invocation import invocation
from .models import ActivityFilters, ErrorResponse, iso
from .responses import JSON, cacheable_response, error_response
from .scope import scope_key
from .settings import get_settings


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
