"""Running an export: S3 key, uploads record, presigned URL, and the switch to asynchronous work.

Sync or async is decided before any work by the rows the export will hold (from the rollups) against
`EXPORT_SYNC_ROW_BUDGET`: measured throughput x the 20 s we allow inside API Gateway's 30 s
(see docs/PERFORMANCE.md). Above it, the function answers 202 and finishes in an asynchronous
invocation of itself (in Lambda) or a background thread (locally).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from glow_activity import db
from glow_activity.auth import Caller
from glow_activity.db import Connection
from glow_activity.endpoints.export_writer import ExportResult, write_export
from glow_activity.errors import NotFound, ServiceUnavailable, UpstreamFailed
from glow_activity.models import ExportPending, ExportRequest, ExportResponse, iso
from glow_activity.observability import logger, metrics
from glow_activity.scope import in_scope_conditions
from glow_activity.settings import get_settings

ASYNC_EVENT_KEY = "glow_export_job"


def s3_client() -> Any:
    import boto3  # only the export function loads boto3, and only when it first needs it

    return boto3.client("s3")


def file_name_for(at: datetime) -> str:
    return f"activity_export_{at.astimezone(UTC).strftime('%Y-%m-%d_%H%M%S')}.zip"


def estimated_rows(conn: Connection, caller: Caller, request: ExportRequest) -> int:
    """Rows the export will write at most (all-time rollup totals of in-scope profiles, plus the profiles)."""
    where, params = in_scope_conditions(caller, request)
    sql = (
        f"SELECT count(*) + coalesce(sum(t.sessions + t.logins + t.grants + t.problems), 0)"
        f" FROM profiles p LEFT JOIN activity.activity_profile_totals t ON t.profile_id = p.id WHERE {where}"
    )
    return int(conn.run(sql, **params)[0][0])


def presign(key: str, file_name: str, ttl: int) -> str:
    return str(
        s3_client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": get_settings().export_bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{file_name}"',
            },
            ExpiresIn=ttl,
        )
    )


def _response(upload_id: str, key: str, file_name: str, row_count: int, expires_at: datetime) -> ExportResponse:
    ttl = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    return ExportResponse(
        upload_id=upload_id,
        file_name=file_name,
        row_count=row_count,
        download_url=presign(key, file_name, ttl),
        expires_at=iso(expires_at),
    )


def stream_to_s3(
    conn: Connection, caller: Caller, request: ExportRequest, key: str, file_name: str
) -> tuple[ExportResult, int]:
    """Write the ZIP into S3 from `conn` (the reader endpoint when there is one); on any failure abort the
    multipart upload and re-raise."""
    from botocore.exceptions import BotoCoreError, ClientError

    from glow_activity.endpoints.s3_stream import S3MultipartWriter

    bucket = get_settings().export_bucket
    if not bucket:
        raise UpstreamFailed("Exports are not configured (EXPORT_BUCKET).")
    try:
        writer = S3MultipartWriter(s3_client(), bucket, key, content_disposition=f'attachment; filename="{file_name}"')
    except (BotoCoreError, ClientError) as exc:
        raise UpstreamFailed() from exc
    try:
        result = write_export(conn, caller, request, writer)
        writer.complete()
        return result, writer.size
    except BaseException as exc:
        try:
            writer.abort()
        except Exception:
            logger.exception("abort of the multipart upload failed", extra={"key": key})
        metrics.add_metric(name="ExportFailed", unit="Count", value=1)
        if isinstance(exc, (BotoCoreError, ClientError)):
            raise UpstreamFailed() from exc
        raise


_RECORD_SQL = """
INSERT INTO activity.uploads (id, s3_key, file_name, status, size_bytes, row_counts, row_count, requested_by, filters,
                     created_at, completed_at, expires_at)
VALUES (CAST(:id AS uuid), :key, :file_name, :status, :size, CAST(:counts AS jsonb), :rows,
        CAST(:caller AS uuid), CAST(:filters AS jsonb), :created_at, :completed_at, :expires_at)
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, size_bytes = EXCLUDED.size_bytes,
    row_counts = EXCLUDED.row_counts, row_count = EXCLUDED.row_count, completed_at = EXCLUDED.completed_at,
    expires_at = EXCLUDED.expires_at
"""


def record(
    conn: Connection,
    *,
    upload_id: str,
    key: str,
    file_name: str,
    status: str,
    caller: Caller,
    request: ExportRequest,
    created_at: datetime,
    result: ExportResult | None = None,
    size: int | None = None,
    expires_at: datetime | None = None,
) -> None:
    conn.run(
        _RECORD_SQL,
        id=upload_id,
        key=key,
        file_name=file_name,
        status=status,
        size=size,
        counts=json.dumps(result.row_counts) if result else None,
        rows=result.row_count if result else None,
        caller=caller.profile_id,
        filters=request.model_dump_json(exclude={"upload_id"}),
        created_at=created_at,
        completed_at=datetime.now(UTC) if result else None,
        expires_at=expires_at,
    )


def run_export(
    conn: Connection,
    caller: Caller,
    request: ExportRequest,
    upload_id: str,
    created_at: datetime,
    *,
    async_job: bool = False,
) -> ExportResponse:
    settings = get_settings()
    file_name = file_name_for(created_at)
    key = f"exports/{caller.profile_id}/{upload_id}/{file_name}"
    result, size = stream_to_s3(db.connection(reader=True), caller, request, key, file_name)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.export_url_ttl_seconds)
    # The record is written only once the object is complete: no row ever claims a missing object.
    record(
        conn,
        upload_id=upload_id,
        key=key,
        file_name=file_name,
        status="succeeded",
        caller=caller,
        request=request,
        created_at=created_at,
        result=result,
        size=size,
        expires_at=expires_at,
    )
    metrics.add_metric(name="ExportRows", unit="Count", value=result.row_count)
    logger.info(
        "export written", extra={"upload_id": upload_id, "rows": result.row_count, "bytes": size, "async": async_job}
    )
    return _response(upload_id, key, file_name, result.row_count, expires_at)


def export_status(conn: Connection, caller: Caller, upload_id: str) -> ExportResponse | ExportPending:
    rows = conn.run(
        "SELECT status, s3_key, file_name, row_count, expires_at FROM activity.uploads"
        " WHERE id = CAST(:id AS uuid) AND requested_by = CAST(:caller AS uuid)",
        id=upload_id,
        caller=caller.profile_id,
    )
    if not rows:
        raise NotFound("Export not found.")
    status, key, file_name, row_count, expires_at = rows[0]
    if status == "succeeded":
        if expires_at <= datetime.now(UTC):
            raise NotFound("This export's download link has expired; start a new export.")
        return _response(upload_id, key, file_name, int(row_count), expires_at)
    if status == "failed":
        raise UpstreamFailed("The export failed and nothing was saved; start a new export.")
    return ExportPending(upload_id=upload_id, status="running", file_name=file_name)


def start_async(conn: Connection, caller: Caller, request: ExportRequest, context: Any) -> ExportPending:
    upload_id, created_at = str(uuid.uuid4()), datetime.now(UTC)
    file_name = file_name_for(created_at)
    record(
        conn,
        upload_id=upload_id,
        key=f"exports/{caller.profile_id}/{upload_id}/{file_name}",
        file_name=file_name,
        status="running",
        caller=caller,
        request=request,
        created_at=created_at,
    )
    job = {
        ASYNC_EVENT_KEY: {
            "upload_id": upload_id,
            "caller": caller.profile_id,
            "created_at": iso(created_at),
            "request": request.model_dump(mode="json", exclude={"upload_id"}),
        }
    }
    try:
        _dispatch(job, context)
    except Exception as exc:
        # The job never started: no upload row may claim it runs (nothing was written to S3 yet).
        conn.run("DELETE FROM activity.uploads WHERE id = CAST(:id AS uuid)", id=upload_id)
        raise _start_refused(exc) from exc
    return ExportPending(upload_id=upload_id, status="running", file_name=file_name)


_THROTTLED = ("TooManyRequestsException", "ThrottlingException", "Throttling", "EC2ThrottledException")


def _start_refused(exc: Exception) -> UpstreamFailed | ServiceUnavailable:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    logger.error("asynchronous export could not start", extra={"error": type(exc).__name__, "code": code})
    metrics.add_metric(name="ExportStartFailed", unit="Count", value=1)
    if code in _THROTTLED:
        return ServiceUnavailable("Too many exports are running; nothing was started. Try again shortly.", 30)
    return UpstreamFailed("The export could not be started; nothing was saved. Try again.")


def lambda_client() -> Any:
    import boto3

    return boto3.client("lambda")


def _dispatch(job: dict[str, Any], context: Any) -> None:
    """Hand the job to this function's own asynchronous invocation (on Lambda), or to a thread (locally)."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and context is not None:
        lambda_client().invoke(
            FunctionName=context.invoked_function_arn, InvocationType="Event", Payload=json.dumps(job).encode()
        )
    else:  # locally: a background thread stands in for the asynchronous invocation
        threading.Thread(target=run_async_job, args=(job[ASYNC_EVENT_KEY],), daemon=True).start()


def run_async_job(job: dict[str, Any]) -> dict[str, Any]:
    """The asynchronous half: re-check the caller, write the export, or mark the record failed."""
    from glow_activity.auth import load_caller

    conn = db.connection()
    upload_id = job["upload_id"]
    request = ExportRequest.model_validate(job["request"])
    created_at = datetime.fromisoformat(job["created_at"])
    try:
        caller = load_caller(conn, job["caller"], None)
        response = run_export(conn, caller, request, upload_id, created_at, async_job=True)
        return response.model_dump()
    except Exception as exc:
        logger.exception("asynchronous export failed", extra={"upload_id": upload_id})
        db.reset_connections()  # whatever failed, the job is marked on a fresh connection
        try:
            db.connection().run(
                "UPDATE activity.uploads SET status = 'failed', error = :error, completed_at = now()"
                " WHERE id = CAST(:id AS uuid)",
                id=upload_id,
                error=type(exc).__name__,
            )
        except Exception:
            logger.exception("could not mark the export failed", extra={"upload_id": upload_id})
        if isinstance(exc, ServiceUnavailable):
            raise
        return {"upload_id": upload_id, "status": "failed"}
