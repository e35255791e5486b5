"""POST /api/v5/artifacts/activity/get — summary counts, per-profile summary and filter facets."""

from __future__ import annotations

from typing import Annotated, Any

from activity_summary import activity_summary
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity.api import SECURITY, cached_read, create_app, handle, operation_responses, path_of
from glow_activity.freshness import CACHE_TAGS_GET
from glow_activity.models import GetActivityRequest, GetActivityResponse
from glow_activity.observability import logger, metrics, tracer

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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, "get", event, context)
