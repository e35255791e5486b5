"""POST /export: a ZIP of CSVs in S3 (moto server mode), downloaded through its presigned URL."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from factories import World

from activity_dev import lambdas
from glow_activity.settings import get_settings


def download(url: str) -> zipfile.ZipFile:
    res = requests.get(url, timeout=30)
    assert res.status_code == 200, res.text[:500]
    return zipfile.ZipFile(io.BytesIO(res.content))


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with archive.open(name) as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))


@pytest.fixture
def data(world: World, refresh: Any) -> dict[str, Any]:
    dept, other = world.department("Export dept"), world.department("Other dept")
    admin = world.profile(roles=["admin"])
    coord = world.profile(roles=["instructional"], departments=[dept])
    ana = world.profile(
        '=HYPERLINK("http://evil")',
        departments=[dept],
        roles=["member", "custom"],
        inactive_roles=["guest"],
        email="ana@example.org",
    )
    bo = world.profile('Bo "the, quoted" Ünïcødé 🎓', departments=[dept, other], email="+bo@example.org")
    far = world.profile("Far", departments=[other])
    s1 = world.session(ana, "2025-02-01T10:00:00", total_tokens=123, total_cost="0.000246", message_count=7)
    s2 = world.session(bo, "2025-02-02T10:00:00", active=True)
    world.session(far, "2025-02-03T10:00:00")
    world.session(ana, "2024-12-31T23:59:59")  # outside the window used below
    l1 = world.login(ana, "2025-02-01T09:00:00", method="@sso")
    g1 = world.grant(bo, "2025-02-05T00:00:00", kind="emulation", granted_by=admin)
    q1 = world.problem(ana, "2025-02-01T11:00:00", session_id=s1, message='-1+1\tline\nbreak, "quoted"')
    refresh()
    return {
        "dept": dept,
        "admin": admin,
        "coord": coord,
        "ana": ana,
        "bo": bo,
        "far": far,
        "s1": s1,
        "s2": s2,
        "l1": l1,
        "g1": g1,
        "q1": q1,
        "world": world,
    }


def test_export_downloads_through_the_presigned_url(invoke: Any, data: dict[str, Any], conn: Any) -> None:
    window = {"department_ids": [data["dept"]], "date_from": "2025-01-01", "date_to": "2025-12-31"}
    res = invoke("export", window, data["admin"].headers)
    assert res.status == 200, res.body
    body = res.body
    assert body["file_name"].startswith("activity_export_") and body["file_name"].endswith(".zip")
    datetime.strptime(body["file_name"], "activity_export_%Y-%m-%d_%H%M%S.zip")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    archive = download(body["download_url"])
    assert sorted(archive.namelist()) == [
        "grants.csv",
        "logins.csv",
        "manifest.json",
        "problems.csv",
        "profiles.csv",
        "sessions.csv",
    ]
    profiles = read_csv(archive, "profiles.csv")
    sessions = sorted(read_csv(archive, "sessions.csv"), key=lambda row: row["created_at"])
    logins = read_csv(archive, "logins.csv")
    grants = read_csv(archive, "grants.csv")
    problems = read_csv(archive, "problems.csv")
    assert {p["profile_id"] for p in profiles} == {data["coord"].id, data["ana"].id, data["bo"].id}
    assert [s["session_id"] for s in sessions] == [data["s1"], data["s2"]]
    s1 = sessions[0]
    assert s1["profile_id"] == data["ana"].id
    assert s1["profile_name"] == "'" + data["ana"].name  # formula neutralised
    assert s1["profile_email"] == "ana@example.org"
    assert s1["department_ids"] == data["dept"]
    assert s1["roles"] == "custom;member"
    assert (s1["created_at"], s1["total_tokens"], s1["total_cost"], s1["active"]) == (
        "2025-02-01T10:00:00.000000Z",
        "123",
        "0.000246",
        "false",
    )
    assert sessions[1]["active"] == "true"
    bo_row = sessions[1]
    assert bo_row["profile_name"] == 'Bo "the, quoted" Ünïcødé 🎓'  # quotes, commas, unicode round-trip
    assert bo_row["profile_email"] == "'+bo@example.org"
    assert bo_row["department_ids"] == ";".join(
        sorted(
            [
                data["dept"],
                data["world"].conn.run(
                    "SELECT department_id FROM profile_departments"
                    " WHERE profile_id = CAST(:p AS uuid) AND department_id <> :d",
                    p=data["bo"].id,
                    d=data["dept"],
                )[0][0],
            ]
        )
    )
    assert [(x["login_id"], x["method"]) for x in logins] == [(data["l1"], "'@sso")]
    assert [(x["grant_id"], x["kind"], x["granted_by"]) for x in grants] == [
        (data["g1"], "emulation", data["admin"].id)
    ]
    assert [(x["problem_id"], x["message"], x["session_id"]) for x in problems] == [
        (data["q1"], '\'-1+1\tline\nbreak, "quoted"', data["s1"])
    ]
    manifest = json.loads(archive.read("manifest.json"))
    counts = {"profiles.csv": 3, "sessions.csv": 2, "logins.csv": 1, "grants.csv": 1, "problems.csv": 1}
    assert manifest["row_counts"] == counts
    assert manifest["schema_version"] == "3"
    assert manifest["format"]["encoding"] == "UTF-8, no byte-order mark"
    assert "CRLF" in manifest["format"]["csv"] and "leading '" in manifest["format"]["formula_guard"]
    # RFC 4180's line ends: every row ends in CRLF; the message's own line break (quoted) stays LF
    raw_problems = archive.read("problems.csv")
    assert raw_problems.count(b"\r\n") == 2 and raw_problems.endswith(b"\r\n")
    assert b'line\nbreak, ""quoted""' in raw_problems
    assert not archive.read("sessions.csv").startswith(b"\xef\xbb\xbf")
    assert [row["resolved"] for row in problems] == ["false"]
    assert manifest["caller"]["profile_id"] == data["admin"].id
    assert manifest["filters"]["department_ids"] == [data["dept"]]
    assert body["row_count"] == sum(counts.values()) == manifest["row_count"]
    stored = conn.run(
        "SELECT status, row_count, requested_by::text, size_bytes > 0, row_counts FROM activity.uploads"
        " WHERE id = CAST(:id AS uuid)",
        id=body["upload_id"],
    )
    assert stored == [["succeeded", 8, data["admin"].id, True, counts]]


def test_coordinator_exports_only_its_departments(invoke: Any, data: dict[str, Any]) -> None:
    res = invoke("export", {}, data["coord"].headers)
    assert res.status == 200
    archive = download(res.body["download_url"])
    assert data["far"].id not in {p["profile_id"] for p in read_csv(archive, "profiles.csv")}
    assert {s["profile_id"] for s in read_csv(archive, "sessions.csv")} == {data["ana"].id, data["bo"].id}
    assert invoke("export", {"department_ids": ["not-mine"]}, data["coord"].headers).status == 403
    assert invoke("export", {}, data["ana"].headers).status == 403


def test_export_reads_one_snapshot(invoke: Any, data: dict[str, Any], monkeypatch: Any) -> None:
    from glow_activity.export import writer as export_writer

    original = export_writer.settings_sql
    calls: list[int] = []
    late: dict[str, str] = {}

    def write_between_files(sql: str, params: dict[str, Any]) -> str:
        calls.append(1)
        if len(calls) == 2:  # profiles.csv is written; the snapshot is taken
            late["session"] = data["world"].session(data["ana"], "2025-02-10T10:00:00")
            late["profile"] = data["world"].profile("Late", departments=[data["dept"]]).id
        return original(sql, params)

    monkeypatch.setattr(export_writer, "settings_sql", write_between_files)
    res = invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers)
    archive = download(res.body["download_url"])
    assert late["session"] not in {s["session_id"] for s in read_csv(archive, "sessions.csv")}
    assert late["profile"] not in {p["profile_id"] for p in read_csv(archive, "profiles.csv")}


class PartsRefused:
    """An S3 client that refuses every part of a multipart upload and does everything else."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def upload_part(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "UploadPart")


def test_s3_failure_leaves_nothing(invoke: Any, data: dict[str, Any], conn: Any, monkeypatch: Any) -> None:
    from glow_activity.export import jobs as export_jobs

    s3 = boto3.client("s3")
    bucket = get_settings().export_bucket

    monkeypatch.setattr(export_jobs, "s3_client", lambda: PartsRefused(s3))
    uploads_before = conn.run("SELECT count(*) FROM activity.uploads")[0][0]
    res = invoke("export", {}, data["admin"].headers)
    assert res.status == 502
    assert res.body == {"statusCode": 502, "message": res.body["message"]}
    assert conn.run("SELECT count(*) FROM activity.uploads")[0][0] == uploads_before
    prefix = f"exports/{data['admin'].id}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0
    assert not [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"].startswith(prefix)]


@pytest.fixture
def many_sessions(data: dict[str, Any], conn: Any) -> Iterator[int]:
    """~5 MB of sessions.csv for one profile: an export still has rows on the wire when its upload fails."""
    rows = 20_000
    conn.run(
        "INSERT INTO sessions (id, profile_id, created_at, updated_at, active)"
        " SELECT gen_random_uuid(), CAST(:p AS uuid), t, t + interval '5 minutes', false"
        " FROM generate_series(1, :n) g, LATERAL (SELECT timestamptz '2019-06-01' + g * interval '1 minute') at(t)",
        p=data["ana"].id,
        n=rows,
    )
    yield rows
    conn.run("DELETE FROM sessions WHERE profile_id = CAST(:p AS uuid) AND created_at < '2020-01-01'", p=data["ana"].id)


def fail_uploads_midway(monkeypatch: Any) -> list[Any]:
    """S3 refuses every part, and parts are small enough to be sent while the COPY is still streaming. Returns
    the connections the export dropped for it."""
    from glow_activity.export import copy_stream, s3_stream
    from glow_activity.export import jobs as export_jobs

    real_client = export_jobs.s3_client
    monkeypatch.setattr(export_jobs, "s3_client", lambda: PartsRefused(real_client()))
    monkeypatch.setitem(s3_stream.S3MultipartWriter.__init__.__kwdefaults__, "part_size", 64 * 1024)
    dropped: list[Any] = []
    discard = copy_stream.discard

    def spy(conn: Any) -> None:
        dropped.append(conn)
        discard(conn)

    monkeypatch.setattr(copy_stream, "discard", spy)
    return dropped


def test_an_upload_failing_midway_leaves_nothing_and_the_next_export_works(
    invoke: Any, data: dict[str, Any], conn: Any, monkeypatch: Any, many_sessions: int
) -> None:
    body = {"department_ids": [data["dept"]]}
    dropped = fail_uploads_midway(monkeypatch)
    uploads_before = conn.run("SELECT count(*) FROM activity.uploads")[0][0]
    res = invoke("export", body, data["admin"].headers)
    assert res.status == 502
    assert len(dropped) == 1  # the COPY was cut short: its connection could not be used again
    assert conn.run("SELECT count(*) FROM activity.uploads")[0][0] == uploads_before
    s3, bucket, prefix = boto3.client("s3"), get_settings().export_bucket, f"exports/{data['admin'].id}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0
    assert not [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"].startswith(prefix)]
    monkeypatch.undo()  # S3 works again; the same container serves the next call
    again = invoke("export", body, data["admin"].headers)
    assert again.status == 200
    sessions = read_csv(download(again.body["download_url"]), "sessions.csv")
    assert len(sessions) == many_sessions + 3  # the fixture's three sessions of the department


def test_an_async_export_failing_midway_is_marked_failed(
    invoke: Any, data: dict[str, Any], monkeypatch: Any, many_sessions: int
) -> None:
    dropped = fail_uploads_midway(monkeypatch)
    monkeypatch.setenv("EXPORT_SYNC_ROW_BUDGET", "0")
    get_settings.cache_clear()
    started = invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers)
    assert started.status == 202
    deadline = time.monotonic() + 60
    while (polled := invoke("export", {"upload_id": started.body["upload_id"]}, data["admin"].headers)).status == 202:
        assert time.monotonic() < deadline, "the failed job was never marked failed"
        time.sleep(0.1)
    assert polled.status == 502 and "failed" in polled.body["message"]
    assert len(dropped) == 1


def test_the_deflate_thread_hands_on_failures_and_stops(monkeypatch: Any) -> None:
    lambdas.load_handler(lambdas.by_operation("export"))
    from glow_activity.export import writer as export_writer

    monkeypatch.setattr(export_writer, "CHUNK", 4)

    class Sink:
        def __init__(self, fail_at: int | None = None) -> None:
            self.pieces: list[bytes] = []
            self.fail_at = fail_at

        def write(self, data: bytes) -> int:
            if len(self.pieces) == self.fail_at:
                raise OSError("disk full")
            self.pieces.append(bytes(data))
            return len(data)

    whole = Sink()
    with export_writer._DeflateThread(whole) as deflating:
        for i in range(1000):
            deflating.write(b"%d," % i)
    assert b"".join(whole.pieces) == b"".join(b"%d," % i for i in range(1000))  # all of it, in order

    failing = Sink(fail_at=3)
    with pytest.raises(OSError, match="disk full"), export_writer._DeflateThread(failing) as deflating:
        for i in range(1000):
            deflating.write(b"%d," % i)
    assert len(failing.pieces) == 3  # nothing written after the failure

    stopped = Sink()
    with pytest.raises(KeyError), export_writer._DeflateThread(stopped) as deflating:
        deflating.write(b"12345678")
        raise KeyError("the reading side failed")
    assert not deflating.thread.is_alive()


def test_large_exports_run_asynchronously_and_are_polled(
    invoke: Any, data: dict[str, Any], monkeypatch: Any, world: World
) -> None:
    monkeypatch.setenv("EXPORT_SYNC_ROW_BUDGET", "0")
    get_settings.cache_clear()
    started = invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers)
    assert started.status == 202
    assert started.body["status"] == "running"
    upload_id = started.body["upload_id"]
    deadline = time.monotonic() + 60
    while True:
        polled = invoke("export", {"upload_id": upload_id}, data["admin"].headers)
        if polled.status == 200:
            break
        assert polled.status == 202 and polled.body["status"] == "running"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert polled.body["upload_id"] == upload_id and polled.body["row_count"] == 9  # all-time: +1 session
    assert "sessions.csv" in download(polled.body["download_url"]).namelist()
    # someone else's upload and an unknown one are both 404
    assert invoke("export", {"upload_id": upload_id}, data["coord"].headers).status == 404
    assert invoke("export", {"upload_id": str(uuid.uuid4())}, data["admin"].headers).status == 404
    assert invoke("export", {"upload_id": "nope"}, data["admin"].headers).status == 422


def test_url_lifetime_follows_settings_and_is_capped(invoke: Any, data: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.setenv("EXPORT_URL_TTL_SECONDS", "60")
    get_settings.cache_clear()
    body = invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers).body
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) <= timedelta(seconds=60)
    assert "Expires=" in body["download_url"] or "X-Amz-Expires=" in body["download_url"]
    monkeypatch.setenv("EXPORT_URL_TTL_SECONDS", "7200")  # misconfigured: capped at one hour
    get_settings.cache_clear()
    capped = invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers).body
    capped_expiry = datetime.fromisoformat(capped["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < capped_expiry - datetime.now(UTC) <= timedelta(hours=1)
    assert "X-Amz-Expires=3600" in capped["download_url"] or "Expires=" in capped["download_url"]


@pytest.mark.parametrize(
    "refusal, status",
    [("AccessDeniedException", 502), ("TooManyRequestsException", 503), (None, 502)],
    ids=["no-permission", "throttled", "no-such-function"],
)
def test_an_async_export_that_cannot_start_leaves_nothing(
    invoke: Any, data: dict[str, Any], conn: Any, monkeypatch: Any, refusal: str | None, status: int
) -> None:
    """Too large for the synchronous path, and Lambda refuses the self-invocation: a clear 502/503, no upload row
    left claiming to run, nothing in S3."""
    from botocore.stub import Stubber

    from glow_activity.export import jobs as export_jobs

    monkeypatch.setenv("EXPORT_SYNC_ROW_BUDGET", "0")
    monkeypatch.setenv("EXPORT_ASYNC", "lambda")  # as deployed: the job goes to a self-invocation
    get_settings.cache_clear()
    client = boto3.client("lambda")  # the local moto server, which has no such function
    if refusal is not None:
        stubber = Stubber(client)
        stubber.add_client_error(
            "invoke", service_error_code=refusal, http_status_code=429 if "Many" in refusal else 403
        )
        stubber.activate()
    monkeypatch.setattr(export_jobs, "lambda_client", lambda: client)
    uploads_before = conn.run("SELECT count(*) FROM activity.uploads")[0][0]
    res = invoke("export", {}, data["admin"].headers)
    assert res.status == status
    assert res.body["statusCode"] == status and "nothing" in res.body["message"]
    if status == 503:
        assert res.headers["retry-after"] == "30"
    assert conn.run("SELECT count(*) FROM activity.uploads")[0][0] == uploads_before
    assert conn.run("SELECT count(*) FROM activity.uploads WHERE status = 'running'")[0][0] == 0
    s3 = boto3.client("s3")
    bucket = get_settings().export_bucket
    prefix = f"exports/{data['admin'].id}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0
    assert not [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"].startswith(prefix)]


class SlowParts:
    """An S3 client whose parts take a while, so that an export's COPY is still streaming when its connection dies."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def upload_part(self, **kwargs: Any) -> Any:
        import time

        time.sleep(0.05)
        return self.real.upload_part(**kwargs)


def test_a_connection_killed_midway_through_an_export_leaves_nothing(
    invoke: Any, data: dict[str, Any], conn: Any, monkeypatch: Any, many_sessions: int
) -> None:
    import threading
    import time

    from glow_activity.export import jobs as export_jobs
    from glow_activity.export import s3_stream

    real_client = export_jobs.s3_client
    monkeypatch.setattr(export_jobs, "s3_client", lambda: SlowParts(real_client()))
    monkeypatch.setitem(s3_stream.S3MultipartWriter.__init__.__kwdefaults__, "part_size", 64 * 1024)
    uploads_before = conn.run("SELECT count(*) FROM activity.uploads")[0][0]
    results: list[Any] = []
    caller = threading.Thread(
        target=lambda: results.append(invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers))
    )
    caller.start()
    # WHEN the export's connection is killed while its COPY streams (a failover, a proxy restart)
    killed, deadline = 0, time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        killed = len(
            conn.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'glow-activity'"
                " AND query LIKE 'COPY%' AND state = 'active'"
            )
        )
        time.sleep(0.01)
    caller.join(60)
    assert killed == 1
    # THEN the caller is told to come back later, and nothing is left: no upload row, no object, no open upload
    (res,) = results
    assert res.status == 503 and res.headers["retry-after"], res.body
    assert conn.run("SELECT count(*) FROM activity.uploads")[0][0] == uploads_before
    s3, bucket, prefix = boto3.client("s3"), get_settings().export_bucket, f"exports/{data['admin'].id}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0
    assert not [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"].startswith(prefix)]
    # AND the same container's next export works
    monkeypatch.undo()
    assert invoke("export", {"department_ids": [data["dept"]]}, data["admin"].headers).status == 200
