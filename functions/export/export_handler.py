"""POST /api/v5/artifacts/activity/export — a ZIP of CSVs in S3 with a presigned download link.

Small exports answer 200 with the link; large ones answer 202 and finish asynchronously; a body with
`upload_id` polls one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity.api import handle
from glow_activity.export.jobs import ASYNC_EVENT_KEY, run_async_job
from glow_activity.export.route import app
from glow_activity.observability import logger, metrics

__all__ = ["app", "lambda_handler"]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if ASYNC_EVENT_KEY in event:
        return run_async_job(event[ASYNC_EVENT_KEY])
    return handle(app, "export", event, context)
