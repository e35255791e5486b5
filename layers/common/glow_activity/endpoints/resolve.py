"""The route of POST /api/v5/artifacts/activity/resolve — resolve or reopen a problem."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.db import connection
from glow_activity.endpoints.problem_resolution import set_resolved
from glow_activity.invocation import invocation
from glow_activity.models import ResolveProblemRequest, ResolveProblemResponse
from glow_activity.responses import json_response
from glow_activity.routes import SECURITY, create_app, operation_responses, path_of

app = create_app()


@app.post(
    path_of("resolve"),
    summary="Resolve Problem",
    operation_id="activity.resolve",
    description="Resolve or unresolve a problem entry.",
    responses=operation_responses(ResolveProblemResponse, 404),
    security=SECURITY,
    tags=["Problems"],
)
def resolve_route(request: Annotated[ResolveProblemRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    inv.authenticated.require_reader("Resolving a problem")
    return json_response(set_resolved(connection(), inv, request))
