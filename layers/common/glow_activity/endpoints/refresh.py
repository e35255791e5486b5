"""The route of POST /api/v5/artifacts/activity/refresh (anyone; debounced for non-admins), and the EventBridge
schedule's refresh."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity import db
from glow_activity.api import SECURITY, create_app, invocation, json_response, operation_responses, path_of
from glow_activity.audit import write_audit
from glow_activity.models import RefreshRequest, RefreshResponse
from glow_activity.observability import logger, metrics
from glow_activity.refresh import debounced_refresh, delete_expired_idempotency_records, refresh_views
from glow_activity.settings import get_settings

app = create_app()


def _refresh(
    trigger: str, requested_by: str | None, *, debounce: bool = False, full_pass: bool | None = True
) -> RefreshResponse:
    """`full_pass`: True for an admin's call; None (light unless a full pass is due) for the schedule. A debounced
    call is always the latter."""
    conn = db.connection()
    if debounce:
        result, ran = debounced_refresh(conn, trigger, requested_by, get_settings().refresh_min_interval_seconds)
    else:
        result, ran = refresh_views(conn, trigger, requested_by, full_pass=full_pass), True
    if ran:
        expired = delete_expired_idempotency_records(conn)  # housekeeping rides on the refreshes
        logger.info(
            "refreshed",
            extra={"run_id": result.run_id, "views": result.refreshed_views, "expired_idempotency_records": expired},
        )
        metrics.add_metric(name="RefreshSucceeded", unit="Count", value=1)
    else:
        logger.info("refresh debounced", extra={"run_id": result.run_id})
        metrics.add_metric(name="RefreshDebounced", unit="Count", value=1)
    return RefreshResponse(
        success=True, refreshed_views=result.refreshed_views, invalidated_tags=result.invalidated_tags
    )


@app.post(
    path_of("refresh"),
    summary="Activity Refresh",
    operation_id="activity.refresh",
    description="Refresh activity materialized views and invalidate caches. Any signed-in caller. An admin's "
    "call refreshes now (after any refresh already running). Anyone else's is debounced: a refresh that "
    "succeeded less than REFRESH_MIN_INTERVAL_SECONDS (default 300) ago answers it and nothing runs; a running "
    "one is waited for and answers it; otherwise one runs. An admin's call is a full pass (get and search are "
    "then exact for every row); the schedule's and debounced runs recompute what changed since yesterday, with a "
    "full pass at least daily.",
    responses=operation_responses(RefreshResponse),
    security=SECURITY,
    tags=["Operations"],
)
def refresh_route(request: Annotated[RefreshRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    caller = inv.authenticated
    try:
        return json_response(_refresh(inv.channel, caller.profile_id, debounce=not caller.is_admin))
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
        return _refresh("schedule", None, full_pass=None).model_dump()
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
