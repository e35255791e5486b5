"""The route of POST /api/v5/artifacts/activity/docs — composed documentation for humans and AI agents."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.db import connection
from glow_activity.endpoints.activity_docs import compose_docs
from glow_activity.invocation import invocation
from glow_activity.models import ActivityDocsResponse, DocsRequest
from glow_activity.responses import json_response
from glow_activity.routes import SECURITY, create_app, operation_responses, path_of

app = create_app()


@app.post(
    path_of("docs"),
    summary="Get Activity Docs Endpoint",
    operation_id="activity.docs",
    description="Get composed documentation for the activity analytics.",
    responses=operation_responses(ActivityDocsResponse, 404),
    security=SECURITY,
    tags=["Docs"],
)
def docs_route(request: Annotated[DocsRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    return json_response(compose_docs(connection(reader=True), inv.authenticated, request.entity_id))
