"""The route of POST /api/v5/artifacts/activity/export — a ZIP of CSVs in S3 with a presigned download link.

Small exports answer 200 with the link; large ones answer 202 and finish asynchronously; a body with
`upload_id` polls one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.db import connection
from glow_activity.export.jobs import (
    claim_slot,
    dispatcher,
    estimated_rows,
    export_status,
    run_sync,
    start_async,
)
from glow_activity.invocation import invocation
from glow_activity.models import ExportPending, ExportRequest, ExportResponse
from glow_activity.responses import json_response
from glow_activity.routes import SECURITY, create_app, operation_responses, path_of
from glow_activity.settings import get_settings

app = create_app()


@app.post(
    path_of("export"),
    summary="Export Activity",
    operation_id="activity.export",
    description="Export all activity data as a clean, denormalized ZIP (CSV files + manifest.json) in S3. "
    "Answers 200 with a presigned download_url, or 202 {upload_id, status} for a large export; "
    "POST {upload_id} to poll it. A caller has one export running at most: a request while its previous one runs "
    "answers that one, as polling it would. At most EXPORT_MAX_RUNNING (default 4) run at once in the whole "
    "service; beyond, 429 with Retry-After.",
    responses={
        **operation_responses(ExportResponse, 404, 502),  # 429: ERROR_RESPONSES
        202: {
            "description": "Running asynchronously; poll with upload_id.",
            "content": {"application/json": {"model": ExportPending}},
        },
    },
    security=SECURITY,
    tags=["Activity"],
)
def export_route(request: Annotated[ExportRequest, Body()]):  # type: ignore[no-untyped-def]
    inv = invocation()
    caller = inv.authenticated
    caller.require_reader("Exporting activity")
    conn = connection()
    if request.upload_id is not None:
        status = export_status(conn, caller, str(request.upload_id))
        return json_response(status, status_code=202 if isinstance(status, ExportPending) else 200)
    caller.check_department_filter(request.department_ids)
    asynchronous = estimated_rows(conn, caller, request) > get_settings().export_sync_row_budget
    upload_id, created_at = str(uuid.uuid4()), datetime.now(UTC)
    running = claim_slot(conn, caller, request, upload_id, created_at, synchronous=not asynchronous)
    if running is not None:  # this caller's export already running answers, as polling it would
        status = export_status(conn, caller, running)
        return json_response(status, status_code=202 if isinstance(status, ExportPending) else 200)
    if asynchronous:
        dispatch = dispatcher(get_settings().export_async, app.lambda_context)
        return json_response(start_async(conn, caller, upload_id, created_at, dispatch), status_code=202)
    return json_response(run_sync(conn, caller, request, upload_id, created_at))
