"""The route of POST /api/v5/artifacts/activity/get — summary counts, per-profile summary and filter facets."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.endpoints.activity_summary import activity_summary
from glow_activity.freshness import CACHE_TAGS_GET
from glow_activity.models import GetActivityRequest, GetActivityResponse
from glow_activity.routes import SECURITY, cached_read, create_app, operation_responses, path_of

app = create_app()


@app.post(
    path_of("get"),
    summary="Get Activity",
    operation_id="activity.get",
    description="Summary counts, the per-profile summary and the filter facets over the caller's scope.",
    responses=operation_responses(GetActivityResponse, 304),
    security=SECURITY,
    tags=["Activity"],
)
def get_activity(request: Annotated[GetActivityRequest, Body()]):  # type: ignore[no-untyped-def]
    return cached_read(request, lambda conn, caller: activity_summary(conn, caller, request), CACHE_TAGS_GET)
