"""The route of POST /api/v5/artifacts/activity/export — a ZIP of CSVs in S3 with a presigned download link.

Small exports answer 200 with the link; large ones answer 202 and finish asynchronously; a body with
`upload_id` polls one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.api import SECURITY, create_app, invocation, json_response, operation_responses, path_of
from glow_activity.db import connection
from glow_activity.endpoints.export_jobs import (
    estimated_rows,
    export_status,
    run_export,
    start_async,
)
from glow_activity.models import ExportPending, ExportRequest, ExportResponse
from glow_activity.settings import get_settings

app = create_app()


@app.post(
    path_of("export"),
    summary="Export Activity",
    operation_id="activity.export",
    description="Export all activity data as a clean, denormalized ZIP (CSV files + manifest.json) in S3. "
    "Answers 200 with a presigned download_url, or 202 {upload_id, status} for a large export; "
    "POST {upload_id} to poll it.",
    responses={
        **operation_responses(ExportResponse, 404, 502),
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
    if estimated_rows(conn, caller, request) > get_settings().export_sync_row_budget:
        return json_response(start_async(conn, caller, request, app.lambda_context), status_code=202)
    return json_response(run_export(conn, caller, request, str(uuid.uuid4()), datetime.now(UTC)))
