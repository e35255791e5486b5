"""The route of POST /api/v5/artifacts/activity/refresh (anyone; debounced for non-admins), and the EventBridge
schedule's refresh, with the housekeeping that rides on it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity import db
from glow_activity.audit import write_audit
from glow_activity.errors import ServiceUnavailable
from glow_activity.invocation import invocation
from glow_activity.limits import operator_gauges
from glow_activity.models import RefreshRequest, RefreshResponse
from glow_activity.observability import logger, metrics, refresh_duration
from glow_activity.refresh import (
    BUILD_RETRY_AFTER_SECONDS,
    BUSY_RETRY_AFTER_SECONDS,
    BuildUnderWay,
    RefreshBusy,
    RefreshResult,
    debounced_refresh,
    delete_expired_idempotency_records,
    refresh_views,
    scheduled_refresh_run,
)
from glow_activity.responses import json_response
from glow_activity.routes import SECURITY, create_app, operation_responses, path_of
from glow_activity.settings import get_settings

app = create_app()


def _response(result: RefreshResult) -> RefreshResponse:
    return RefreshResponse(
        success=True, refreshed_views=result.refreshed_views, invalidated_tags=result.invalidated_tags
    )


def _ran(result: RefreshResult, ran: bool) -> None:
    if ran:
        logger.info(
            "refreshed",
            extra={"run_id": result.run_id, "full_pass": result.full_pass, "seconds": result.seconds},
        )
        metrics.add_metric(name="RefreshSucceeded", unit="Count", value=1)
        if result.seconds is not None:
            refresh_duration(result.seconds, full_pass=bool(result.full_pass))
    else:
        logger.info("refresh answered by another", extra={"run_id": result.run_id})
        metrics.add_metric(name="RefreshDebounced", unit="Count", value=1)


@app.post(
    path_of("refresh"),
    summary="Activity Refresh",
    operation_id="activity.refresh",
    description="Bring the activity rollups up to date and invalidate caches. Any signed-in caller. An admin's "
    "call refreshes now: a full pass (get and search are then exact for every row), after any refresh already "
    "running, waiting for it at most REFRESH_WAIT_SECONDS (default 20; past it 503 with Retry-After, nothing "
    "runs); a full pass that took its snapshot after the call was made answers it instead. Anyone else's is "
    "debounced and never waits: a refresh that succeeded less than REFRESH_MIN_INTERVAL_SECONDS (default 300) ago "
    "answers it; when one is running, the last successful refresh answers it at once; otherwise one runs. The "
    "schedule's and debounced runs recompute what changed since yesterday, with a full pass at least daily.",
    responses=operation_responses(RefreshResponse),
    security=SECURITY,
    tags=["Operations"],
)
def refresh_route(request: Annotated[RefreshRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    caller = inv.authenticated
    settings = get_settings()
    conn = db.connection()
    try:
        if caller.is_admin:
            result, ran = (
                refresh_views(
                    conn,
                    inv.channel,
                    caller.profile_id,
                    wait_seconds=settings.refresh_wait_seconds,
                    statement_timeout_ms=settings.refresh_statement_timeout_ms,
                ),
                True,
            )
        else:
            result, ran = debounced_refresh(
                conn,
                inv.channel,
                caller.profile_id,
                settings.refresh_min_interval_seconds,
                settings.refresh_statement_timeout_ms,
            )
    except BuildUnderWay as exc:
        metrics.add_metric(name="RefreshBusy", unit="Count", value=1)
        raise ServiceUnavailable(
            f"The rollups are being built for the first time ({exc.months_left} month(s) of history left); this call "
            "went on with it. Try again in a few minutes.",
            retry_after=BUILD_RETRY_AFTER_SECONDS,
        ) from None
    except RefreshBusy:
        metrics.add_metric(name="RefreshBusy", unit="Count", value=1)
        raise ServiceUnavailable(
            "A refresh is running and did not finish within REFRESH_WAIT_SECONDS; nothing was started. "
            "Try again shortly.",
            retry_after=BUSY_RETRY_AFTER_SECONDS,
        ) from None
    except Exception:
        metrics.add_metric(name="RefreshFailed", unit="Count", value=1)
        raise
    _ran(result, ran)
    if ran:
        _housekeeping(conn)
    return json_response(_response(result))


def is_scheduled(event: dict[str, Any]) -> bool:
    return "requestContext" not in event and event.get("detail-type") is not None


def _housekeeping(conn: db.Connection) -> None:
    """What rides on every refresh that ran: expired idempotency records, the per-caller limit's finished minutes
    (one audit row per caller and minute of refusals), and the operator's gauges (connections, exports running)."""
    expired = delete_expired_idempotency_records(conn)
    flushed = int(conn.run("SELECT activity.flush_refusals()")[0][0])
    logger.info("housekeeping", extra={"expired_idempotency_records": expired, "refusal_rows_written": flushed})
    operator_gauges(conn)


def _schedule_request_id(event: dict[str, Any]) -> str:
    """Each run's own id: the Scheduler's execution id (template.yaml's Input), else one made for it."""
    value = str(event.get("id") or "")
    return value if value and not value.startswith("<") else f"schedule-{uuid.uuid4()}"


def scheduled_refresh(event: dict[str, Any]) -> dict[str, Any]:
    """Run by EventBridge Scheduler: a light pass unless a full one is due, skipped when a refresh is running (the
    next run is minutes away). A failure is logged, counted and re-raised so the schedule's retry policy and
    dead-letter queue see it."""
    request_id = _schedule_request_id(event)
    logger.append_keys(request_id=request_id, operation="refresh", channel="schedule")
    status = 200
    try:
        conn = db.connection()
        result, ran = scheduled_refresh_run(conn, get_settings().refresh_statement_timeout_ms)
        if ran:
            _ran(result, ran)
        else:
            logger.info("scheduled refresh skipped: one is running")
            metrics.add_metric(name="RefreshSkipped", unit="Count", value=1)
        _housekeeping(conn)
        return _response(result).model_dump()
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
