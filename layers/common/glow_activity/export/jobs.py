"""Running an export: S3 key, uploads record, presigned URL, and the switch to asynchronous work.

Every export first claims a slot (`claim_slot`): its `running` upload row, written under a lock with the count of
those already running, so that a caller has one export running at most (a second request answers the first, as
polling it would) and the service EXPORT_MAX_RUNNING (429 beyond). Sync or async is decided before any work by the
rows the export will hold (from the rollups) against `EXPORT_SYNC_ROW_BUDGET`: measured throughput x the 20 s we
allow inside API Gateway's 30 s (see docs/PERFORMANCE.md). Above it, the function answers 202 and finishes in an
asynchronous invocation of itself (in Lambda) or a background thread (locally), as EXPORT_ASYNC says. That job
is claimed once, from its `running` row of that caller, and exports what the row says (a forged or replayed event
names no row it can claim, and does nothing).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from glow_activity import db
from glow_activity.auth import Caller
from glow_activity.db import Connection, transaction
from glow_activity.errors import NotFound, ServiceUnavailable, TooManyRequests, UpstreamFailed
from glow_activity.export.writer import ExportResult, write_export
from glow_activity.limits import EXPORT_STALE_SECONDS
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
    conn: Connection, caller: Caller, request: ExportRequest, key: str, file_name: str, statement_timeout_ms: int
) -> tuple[ExportResult, int]:
    """Write the ZIP into S3 from `conn` (the reader endpoint when there is one); on any failure abort the
    multipart upload and re-raise."""
    from botocore.exceptions import BotoCoreError, ClientError

    from glow_activity.export.s3_stream import S3MultipartWriter

    bucket = get_settings().export_bucket
    if not bucket:
        raise UpstreamFailed("Exports are not configured (EXPORT_BUCKET).")
    try:
        writer = S3MultipartWriter(s3_client(), bucket, key, content_disposition=f'attachment; filename="{file_name}"')
    except (BotoCoreError, ClientError) as exc:
        raise UpstreamFailed() from exc
    try:
        result = write_export(conn, caller, request, writer, statement_timeout_ms)
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


EXPORT_SLOTS_LOCK_KEY = 0x6578706F  # "expo": starts of exports one at a time, each counting the running ones
# What a caller over EXPORT_MAX_RUNNING is told to wait: exports that run asynchronously take minutes.
EXPORT_BUSY_RETRY_AFTER_SECONDS = 30


def key_for(caller: Caller, upload_id: str, file_name: str) -> str:
    return f"exports/{caller.profile_id}/{upload_id}/{file_name}"


def claim_slot(
    conn: Connection, caller: Caller, request: ExportRequest, upload_id: str, created_at: datetime, *, synchronous: bool
) -> str | None:
    """Write this export's `running` row (a synchronous one claimed at once: the caller's own invocation runs it;
    an asynchronous one is claimed by its job, once), or answer why not:
    the id of the caller's export already running (None when this one got its slot), or 429 when
    EXPORT_MAX_RUNNING run already. Rows older than any export can run are marked failed first."""
    settings = get_settings()
    with transaction(conn):
        conn.run("SELECT pg_advisory_xact_lock(:k)", k=EXPORT_SLOTS_LOCK_KEY)
        conn.run(
            "UPDATE activity.uploads SET status = 'failed', error = 'timed out', completed_at = now()"
            " WHERE status = 'running' AND created_at < now() - make_interval(secs => :stale)",
            stale=EXPORT_STALE_SECONDS,
        )
        mine, running = conn.run(
            "SELECT (SELECT id::text FROM activity.uploads WHERE status = 'running'"
            "        AND requested_by = CAST(:caller AS uuid)),"
            " (SELECT count(*) FROM activity.uploads WHERE status = 'running')",
            caller=caller.profile_id,
        )[0]
        if mine is not None:
            return str(mine)
        if int(running) >= settings.export_max_running:
            metrics.add_metric(name="ExportRefused", unit="Count", value=1)
            raise TooManyRequests(
                f"{int(running)} exports are running, the most that may run at once; nothing was started. "
                "Try again shortly.",
                EXPORT_BUSY_RETRY_AFTER_SECONDS,
            )
        file_name = file_name_for(created_at)
        conn.run(
            "INSERT INTO activity.uploads"
            " (id, s3_key, file_name, status, requested_by, filters, created_at, claimed_at)"
            " VALUES (CAST(:id AS uuid), :key, :file_name, 'running', CAST(:caller AS uuid), CAST(:filters AS jsonb),"
            " :created_at, CASE WHEN :synchronous THEN now() END)",
            id=upload_id,
            key=key_for(caller, upload_id, file_name),
            file_name=file_name,
            caller=caller.profile_id,
            filters=request.model_dump_json(exclude={"upload_id"}),
            created_at=created_at,
            synchronous=synchronous,
        )
    return None


def _succeeded(conn: Connection, upload_id: str, result: ExportResult, size: int, expires_at: datetime) -> None:
    """The record is complete only once the object is: no row ever claims a missing object."""
    conn.run(
        "UPDATE activity.uploads SET status = 'succeeded', size_bytes = :size, row_counts = CAST(:counts AS jsonb),"
        " row_count = :rows, completed_at = now(), expires_at = :expires_at"
        " WHERE id = CAST(:id AS uuid) AND status = 'running'",
        id=upload_id,
        size=size,
        counts=json.dumps(result.row_counts),
        rows=result.row_count,
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
    """Write the export of a claimed `running` row into S3 and mark it succeeded."""
    settings = get_settings()
    file_name = file_name_for(created_at)
    key = key_for(caller, upload_id, file_name)
    timeout = settings.export_statement_timeout_ms if async_job else settings.db_statement_timeout_ms
    result, size = stream_to_s3(db.connection(reader=True), caller, request, key, file_name, timeout)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.export_url_ttl_seconds)
    _succeeded(conn, upload_id, result, size, expires_at)
    metrics.add_metric(name="ExportRows", unit="Count", value=result.row_count)
    logger.info(
        "export written", extra={"upload_id": upload_id, "rows": result.row_count, "bytes": size, "async": async_job}
    )
    return _response(upload_id, key, file_name, result.row_count, expires_at)


def run_sync(
    conn: Connection, caller: Caller, request: ExportRequest, upload_id: str, created_at: datetime
) -> ExportResponse:
    """A synchronous export of a claimed slot; on any failure its row goes too (nothing was saved)."""
    try:
        return run_export(conn, caller, request, upload_id, created_at)
    except BaseException:
        try:
            db.connection().run("DELETE FROM activity.uploads WHERE id = CAST(:id AS uuid)", id=upload_id)
        except Exception:
            db.reset_connections()
            logger.exception("could not remove a failed export's row", extra={"upload_id": upload_id})
        raise


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


def start_async(
    conn: Connection, caller: Caller, upload_id: str, created_at: datetime, dispatch: Dispatch
) -> ExportPending:
    """Hand a claimed slot's export to the asynchronous half (`dispatch`). The job names only its row: what to
    export is read from the row when the job claims it."""
    job = {ASYNC_EVENT_KEY: {"upload_id": upload_id, "caller": caller.profile_id}}
    try:
        dispatch(job)
    except Exception as exc:
        # The job never started: no upload row may claim it runs (nothing was written to S3 yet).
        conn.run("DELETE FROM activity.uploads WHERE id = CAST(:id AS uuid)", id=upload_id)
        raise _start_refused(exc) from exc
    return ExportPending(upload_id=upload_id, status="running", file_name=file_name_for(created_at))


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


Dispatch = Callable[[dict[str, Any]], None]


def dispatcher(how: str, context: Any) -> Dispatch:
    """How a large export reaches its asynchronous half, as the deployment says (EXPORT_ASYNC): `lambda`, an
    asynchronous invocation of the function that took the request (its own handler runs the job: the export
    function's, or the MCP function's for its export tool); `thread`, a background thread of this process (make dev
    and the tests, where no Lambda API is there)."""
    if how == "lambda":
        arn = context.invoked_function_arn

        def invoke_self(job: dict[str, Any]) -> None:
            lambda_client().invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps(job).encode())

        return invoke_self

    def in_a_thread(job: dict[str, Any]) -> None:
        threading.Thread(target=run_async_job, args=(job[ASYNC_EVENT_KEY],), daemon=True).start()

    return in_a_thread


_CLAIM_SQL = """
UPDATE activity.uploads SET claimed_at = now()
WHERE id = CAST(:id AS uuid) AND requested_by = CAST(:caller AS uuid) AND status = 'running' AND claimed_at IS NULL
  AND created_at > now() - make_interval(secs => :stale)
RETURNING filters::text, created_at
"""


def run_async_job(job: Any) -> dict[str, Any]:
    """The asynchronous half: claim the job's `running` row of its caller (once), re-check the caller, write the
    export the row describes, or mark the row failed. An event that names no such row does nothing and says
    nothing more than that."""
    from glow_activity.auth import load_caller

    ignored = {"status": "ignored"}
    if not isinstance(job, dict):
        return ignored
    try:
        upload_id, caller_id = str(uuid.UUID(str(job.get("upload_id")))), str(uuid.UUID(str(job.get("caller"))))
    except ValueError:
        return ignored
    conn = db.connection()
    claimed = conn.run(_CLAIM_SQL, id=upload_id, caller=caller_id, stale=EXPORT_STALE_SECONDS)
    if not claimed:
        logger.warning("export job refused: no unclaimed running upload of that caller", extra={"upload_id": upload_id})
        metrics.add_metric(name="ExportJobRefused", unit="Count", value=1)
        return ignored
    filters, created_at = claimed[0]
    try:
        request = ExportRequest.model_validate_json(filters)
        caller = load_caller(conn, caller_id, None)
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
        return {"upload_id": upload_id, "status": "failed"}
