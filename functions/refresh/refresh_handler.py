"""POST /api/v5/artifacts/activity/refresh (anyone; debounced for non-admins) and the EventBridge schedule."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity.api import handle
from glow_activity.endpoints.refresh import app, is_scheduled, scheduled_refresh
from glow_activity.observability import logger, metrics

__all__ = ["app", "lambda_handler"]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_scheduled(event):
        return scheduled_refresh(event)
    return handle(app, "refresh", event, context)
