"""The route of POST /api/v5/artifacts/activity/problem — flag a problem (idempotent with an Idempotency-Key)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.db import connection
from glow_activity.endpoints.problem_reports import create_problem
from glow_activity.errors import Conflict, Unprocessable
from glow_activity.invocation import invocation
from glow_activity.models import CreateProblemRequest, CreateProblemResponse
from glow_activity.responses import json_response
from glow_activity.routes import SECURITY, create_app, operation_responses, path_of

app = create_app()
IN_PROGRESS_WAIT_SECONDS = 10.0
MAX_KEY_LENGTH = 255


@cache
def _keyed_create() -> tuple[Callable[..., dict[str, Any]], Any, tuple[type[Exception], type[Exception]]]:
    """Powertools idempotency around create_problem, built on the first keyed request (it imports boto3)."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    from glow_activity.idempotency import PostgresPersistenceLayer, idempotency_config

    config = idempotency_config()

    @idempotent_function(
        data_keyword_argument="data", persistence_store=PostgresPersistenceLayer(connection), config=config
    )
    def create_once(data: dict[str, Any]) -> dict[str, Any]:
        request = CreateProblemRequest.model_validate(data["body"])
        return create_problem(connection(), invocation(), request).model_dump()

    return create_once, config, (IdempotencyValidationError, IdempotencyAlreadyInProgressError)


def _idempotent_create(key: str, request: CreateProblemRequest) -> dict[str, Any]:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise Unprocessable(
            "Invalid request: Idempotency-Key must be 1 to 255 characters.",
            [{"loc": ["header", "Idempotency-Key"], "msg": "must be 1 to 255 characters", "type": "value_error"}],
        )
    create_once, config, (other_body, in_progress) = _keyed_create()
    data = {"caller": invocation().authenticated.profile_id, "key": key, "body": request.model_dump(mode="json")}
    config.register_lambda_context(app.lambda_context)
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while True:
        try:
            return create_once(data=data)
        except other_body:
            raise Conflict("This Idempotency-Key was used with a different request body.") from None
        except in_progress:
            # The first request with this key is still running: wait for its answer.
            if time.monotonic() > deadline:
                raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly.") from None
            time.sleep(0.05)


@app.post(
    path_of("problem"),
    summary="Create Problem",
    operation_id="activity.problem",
    description="Create new problem entry. Send an Idempotency-Key header to make retries safe.",
    responses=operation_responses(CreateProblemResponse, 404, 409),
    security=SECURITY,
    tags=["Problems"],
)
def create_problem_route(request: Annotated[CreateProblemRequest, Body()]):  # type: ignore[no-untyped-def]
    key = invocation().headers.get("idempotency-key")
    if key is None:
        result = create_problem(connection(), invocation(), request).model_dump()
    else:
        result = _idempotent_create(key, request)
    return json_response(CreateProblemResponse.model_validate(result))
