"""POST /api/v5/artifacts/activity/refresh (admins) and the EventBridge schedule: the same refresh."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity import db
from glow_activity.api import SECURITY, create_app, handle, invocation, json_response, operation_responses, path_of
from glow_activity.audit import write_audit
from glow_activity.models import RefreshRequest, RefreshResponse
from glow_activity.observability import logger, metrics, tracer
from glow_activity.refresh import delete_expired_idempotency_records, refresh_views

app = create_app()


def _refresh(trigger: str, requested_by: str | None) -> RefreshResponse:
    conn = db.connection()
    result = refresh_views(conn, trigger, requested_by)
    expired = delete_expired_idempotency_records(conn)  # housekeeping rides on the schedule
    logger.info(
        "refreshed",
        extra={"run_id": result.run_id, "views": result.refreshed_views, "expired_idempotency_records": expired},
    )
    metrics.add_metric(name="RefreshSucceeded", unit="Count", value=1)
    return RefreshResponse(
        success=True, refreshed_views=result.refreshed_views, invalidated_tags=result.invalidated_tags
    )


@app.post(
    path_of("refresh"),
    summary="Activity Refresh",
    operation_id="activity.refresh",
    description="Refresh activity materialized views and invalidate caches. Admins only. A second refresh "
    "waits for the running one, then runs.",
    responses=operation_responses(RefreshResponse),
    security=SECURITY,
    tags=["Operations"],
)
def refresh_route(request: Annotated[RefreshRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    inv.authenticated.require_admin()
    try:
        return json_response(_refresh(inv.channel, inv.authenticated.profile_id))
    except Exception:
        metrics.add_metric(name="RefreshFailed", unit="Count", value=1)
        raise


def is_scheduled(event: dict[str, Any]) -> bool:
    return "requestContext" not in event and event.get("detail-type") is not None


def scheduled_refresh(event: dict[str, Any]) -> dict[str, Any]:
    """Run by EventBridge Scheduler. A failure is logged, counted and re-raised so the schedule's retry
    policy and dead-letter queue see it."""
    request_id = str(event.get("id") or "schedule")
    status = 200
    try:
        return _refresh("schedule", None).model_dump()
    except Exception:
        status = 500
        logger.exception("scheduled refresh failed")
        metrics.add_metric(name="RefreshFailed", unit="Count", value=1)
        db.reset_connections()
        raise
    finally:
        try:
            write_audit(
                db.connection(),
                operation="refresh",
                profile_id=None,
                api_key_id=None,
                channel="schedule",
                status_code=status,
                request_id=request_id,
            )
        except Exception:
            logger.exception("audit write failed", extra={"operation": "refresh"})
            metrics.add_metric(name="AuditWriteFailed", unit="Count", value=1)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_scheduled(event):
        return scheduled_refresh(event)
    return handle(app, "refresh", event, context)
