"""`activity bench`: handler latencies, their SQL floors and peers, export throughput and memory, refresh
time and cold starts — all measured in one run on one database, so ratios hold on a noisy machine.

Timings are printed and written to bench/results/latest.json; nothing here asserts a timing.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import REPO_ROOT, cold_start, embedded_pg, lambdas, local_s3, null_s3
from .events import LambdaContext, http_event
from .seed import DEMO_ADMIN_INDEX, SCALES, demo_profile_id, seed

ITERATIONS = {"small": 60, "medium": 100, "large": 200, "history": 100, "xlarge": 100}

# What a developer would write without rollups: the contract's definitions straight over the base tables.
BASE_TABLE_GET_SQL = """
WITH scope AS (SELECT p.id FROM profiles p WHERE p.deleted_at IS NULL),
per AS (
    SELECT s.id,
      (SELECT count(*) FROM sessions x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) ss,
      (SELECT count(*) FROM logins x WHERE x.profile_id = s.id AND x.logged_in_at >= :lo AND x.logged_in_at < :hi) ll,
      (SELECT count(*) FROM grants x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) gg,
      (SELECT count(*) FROM grants x WHERE x.profile_id = s.id AND x.kind = 'emulation'
         AND x.created_at >= :lo AND x.created_at < :hi) ee,
      (SELECT count(*) FROM problems x WHERE x.profile_id = s.id AND x.created_at >= :lo AND x.created_at < :hi) pp
    FROM scope s
)
SELECT sum(ss), sum(ll), sum(ee), count(*) FILTER (WHERE ss + ll > 0),
       (SELECT json_agg(t) FROM (SELECT id, ss + ll + gg + pp AS act FROM per WHERE ss + ll + gg + pp > 0
                                 ORDER BY act DESC, id LIMIT 1000) t)
FROM per
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 interpolated between the nearest samples (numpy's default). A p99 needs some hundreds of
    samples to be more than the slowest one: hence the iterations above."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else samples * 99

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 2)

    return {"p50_ms": ms(cuts[49]), "p95_ms": ms(cuts[94]), "p99_ms": ms(cuts[98]), "n": len(samples)}


def timed_pair(
    first: Callable[[], Any], second: Callable[[], Any], iterations: int, warmup: int = 3
) -> tuple[dict[str, float], dict[str, float]]:
    """Two things timed in alternation, so that a slow phase of a noisy machine falls on both alike and
    their ratio holds."""
    for _ in range(warmup):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(iterations):
        for fn, into in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            fn()
            into.append(time.perf_counter() - started)
    return percentiles(samples[0]), percentiles(samples[1])


def timed(fn: Callable[[], Any], iterations: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


class Harness:
    concurrency = 0  # clients of the concurrency run; 0 skips it

    def __init__(self, url: str, scale: str, iterations: int) -> None:
        from glow_activity.db import open_connection, params_from_url, runtime_session
        from glow_activity.settings import get_settings

        self.url, self.scale, self.iterations = url, scale, iterations
        # the handlers' own SQL runs with the API connections' settings; the base-table floor gets the server's
        self.conn = open_connection(
            dataclasses.replace(params_from_url(url), application_name="glow-bench"),  # not the service's
            # the API connections' settings, without their statement timeout (the base-table floor runs long)
            session=dataclasses.replace(runtime_session(get_settings()), statement_timeout_ms=0),
        )
        self.results: dict[str, Any] = {}
        self.admin_key = self._key(demo_profile_id(self.conn, 42, DEMO_ADMIN_INDEX))
        self.coordinators = {which: self._coordinator(which) for which in ("median", "largest")}

    def _coordinator(self, which: str) -> tuple[str, int]:
        """The API key of a coordinator (not admin) of exactly one department, and how many profiles that
        department holds: the department whose size is nearest the median of all departments' (the typical
        coordinator's dashboard), or the largest one such a coordinator has. Chosen by size, then by id, so
        that every run on the same data measures the same caller."""
        order = "abs(m.members - median.size)" if which == "median" else "m.members DESC"
        profile_id, members = self.conn.run(
            f"""
            WITH sizes AS (
                SELECT d.department_id, count(*) AS members FROM profile_departments d
                JOIN profiles p ON p.id = d.profile_id WHERE p.deleted_at IS NULL GROUP BY 1
            ),
            median AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY members) AS size FROM sizes),
            single AS (
                SELECT r.profile_id, min(d.department_id) AS department_id
                FROM profile_roles r JOIN profiles p ON p.id = r.profile_id
                JOIN profile_departments d ON d.profile_id = p.id
                WHERE r.role = 'instructional' AND r.active AND p.deleted_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM profile_roles a WHERE a.profile_id = p.id AND a.role = 'admin'
                                  AND a.active)
                GROUP BY 1 HAVING count(*) = 1
            )
            SELECT c.profile_id::text, m.members FROM single c JOIN sizes m USING (department_id) CROSS JOIN median
            ORDER BY {order}, c.department_id, c.profile_id LIMIT 1"""
        )[0]
        return self._key(profile_id), members

    def _key(self, profile_id: str) -> str:
        from .keys import create_key

        return create_key(self.conn, profile_id, "bench")

    def handler(self, operation: str) -> Callable[..., dict[str, Any]]:
        return lambdas.load_handler(lambdas.by_operation(operation))

    def call(self, operation: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        result = self.handler(operation)(
            http_event(f"/api/v5/artifacts/activity/{operation}", body, {"X-Api-Key": key}), LambdaContext(operation)
        )
        assert result["statusCode"] == 200, result
        return result

    def record(self, name: str, value: Any) -> None:
        self.results[name] = value
        print(f"  {name:<42} {json.dumps(value)}", flush=True)


def own_sql(h: Harness, operation: str, key: str, read: Callable[[Any], None]) -> None:
    """Every statement a handler sends for one request, run back to back without the handler: the caller's
    authentication, the read itself (`read(caller)`), and the audit row."""
    from glow_activity.audit import write_audit
    from glow_activity.auth import authenticate

    caller = authenticate(h.conn, {"x-api-key": key})
    read(caller)
    write_audit(
        h.conn,
        operation=operation,
        profile_id=caller.profile_id,
        api_key_id=caller.api_key_id,
        channel="api",
        status_code=200,
        request_id="bench",
    )


def window_shapes(today: Any) -> dict[str, dict[str, Any]]:
    """The windows a dashboard asks for: all time, the last 30 and 90 days, ten months picked with a date-time
    picker (ends inside days, starting eleven months back: its loose days are old), and a role filter over 90
    days."""
    last = {
        days: {"date_from": (today - timedelta(days=days)).isoformat(), "date_to": today.isoformat()}
        for days in (30, 90)
    }
    ten_months = {
        "date_from": f"{(today - timedelta(days=335)).isoformat()}T10:17:23.000Z",
        "date_to": f"{(today - timedelta(days=30)).isoformat()}T15:42:10.999Z",
    }
    return {
        "all-time": {},
        "last 30 days": last[30],
        "last 90 days": last[90],
        "ten months, date-time edges": ten_months,
        "role=member last 90 days": {**last[90], "roles": ["member"]},
    }


def bench_get_and_search(h: Harness) -> None:
    import glow_activity.session_history as session_history
    from glow_activity.db import BULK_PLANNER_SQL, transaction
    from glow_activity.models import GetActivityRequest, SearchActivityRequest
    from glow_activity.rollups import window_snapshot

    activity_summary = importlib.import_module("glow_activity.endpoints.activity_summary")

    shapes = window_shapes(datetime.now(UTC).date())
    median_key, median_size = h.coordinators["median"]
    largest_key, largest_size = h.coordinators["largest"]
    callers = {
        "admin": (h.admin_key, {}),
        "coordinator median dept": (median_key, {"department_profiles": median_size}),
        "coordinator largest dept": (largest_key, {"department_profiles": largest_size}),
    }
    page_load = {
        **shapes["ten months, date-time edges"],
        "page_limit": 50,
        "page_offset": 0,
        "history_page": 0,
        "history_page_size": 50,
        "history_sort_by": "date",
        "history_sort_order": "desc",
    }
    scenarios: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
        f"get {who} {shape}": (body, key, about)
        for who, (key, about) in callers.items()
        for shape, body in shapes.items()
    }
    scenarios["get admin Glow client page load (ten months, history, problems)"] = (page_load, h.admin_key, {})
    for name, (body, key, about) in scenarios.items():
        request = GetActivityRequest.model_validate(body)

        def read_get(caller: Any, request: GetActivityRequest = request) -> None:
            with window_snapshot(h.conn, request, statements=2 if request.wants_history else 1) as coverage:
                sql, params = activity_summary.get_sql(caller, request, coverage)
                h.conn.run(sql, **params)
                if request.wants_history:
                    session_history.session_page(h.conn, caller, request.history_request(), coverage)

        handler, raw = timed_pair(
            functools.partial(h.call, "get", body, key),
            functools.partial(own_sql, h, "get", key, read_get),
            h.iterations,
        )
        h.record(name, {**handler, **about})
        h.record(name + " [own SQL]", raw)
    lo = datetime(1, 1, 1, tzinfo=UTC)
    hi = datetime(9999, 1, 1, tzinfo=UTC)
    with transaction(h.conn):
        h.conn.run(BULK_PLANNER_SQL)  # the floor at its best, on the server's own planner settings (parallel plans)
        h.record(
            "get admin all-time [base-table SQL floor]",
            timed(lambda: h.conn.run(BASE_TABLE_GET_SQL, lo=lo, hi=hi), max(3, h.iterations // 10), warmup=1),
        )

    searches: dict[str, tuple[dict[str, Any], str]] = {}
    for shape, filters in shapes.items():
        body = {**filters, "page_size": 50}
        searches[f"search {shape} first page"] = (body, h.admin_key)
        searches[f"search {shape} deep page by cursor (90% in)"] = (
            {**body, "cursor": deep_cursor(h, body)},
            h.admin_key,
        )
        searches[f"search {shape} page 100 by offset"] = ({**body, "page": 100}, h.admin_key)
    searches["search coordinator median dept first page"] = ({"page_size": 50}, median_key)
    searches["search coordinator median dept page 100 by offset"] = ({"page_size": 50, "page": 100}, median_key)
    for name, (body, key) in searches.items():
        search_request = SearchActivityRequest.model_validate(body)

        def read_search(caller: Any, request: SearchActivityRequest = search_request) -> None:
            after = session_history.decode_cursor(request)[:2] if request.cursor else None
            with window_snapshot(h.conn, request) as coverage:
                sql, params = session_history.search_sql(caller, request, coverage, after)
                h.conn.run(sql, **params)

        handler, raw = timed_pair(
            functools.partial(h.call, "search", body, key),
            functools.partial(own_sql, h, "search", key, read_search),
            h.iterations,
        )
        h.record(name, handler)
        h.record(name + " [own SQL]", raw)


def bench_mcp(h: Harness) -> None:
    """A tools/call of activity_get next to the HTTP get on the same body and data, in alternation: what the MCP
    layer adds (JSON-RPC, a second pass through the request plumbing, the answer embedded twice)."""
    body = window_shapes(datetime.now(UTC).date())["last 90 days"]
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "activity_get", "arguments": body}}
    mcp = lambdas.load_handler(lambdas.by_operation("mcp"))

    def call_tool() -> None:
        event = http_event(
            "/api/v5/artifacts/activity/mcp", message, {"X-Api-Key": h.admin_key, "Accept": "application/json"}
        )
        result = mcp(event, LambdaContext("mcp"))
        assert result["statusCode"] == 200 and '"isError":false' in result["body"], result

    http, tool = timed_pair(functools.partial(h.call, "get", body, h.admin_key), call_tool, h.iterations)
    h.record("mcp: get admin last 90 days over HTTP", http)
    h.record(
        "mcp: tools/call activity_get admin last 90 days",
        {**tool, "vs_http_p50": round(tool["p50_ms"] / http["p50_ms"], 2)},
    )


def deep_cursor(h: Harness, body: dict[str, Any]) -> str:
    """A cursor 90% of the way into an admin's search over these filters (as the API would issue it)."""
    import glow_activity.session_history as session_history
    from glow_activity.models import SearchActivityRequest

    request = SearchActivityRequest.model_validate(body)
    lo, hi = request.window()
    where = "p.deleted_at IS NULL AND s.created_at >= :lo AND s.created_at < :hi"
    if request.roles:
        where += (
            " AND EXISTS (SELECT 1 FROM profile_roles r WHERE r.profile_id = p.id AND r.active"
            " AND r.role = ANY(CAST(:roles AS text[])))"
        )
    params = {
        "lo": lo or datetime(1, 1, 1, tzinfo=UTC),
        "hi": hi or datetime(9999, 1, 1, tzinfo=UTC),
        "roles": request.roles,
    }
    total = h.conn.run(
        f"SELECT count(*) FROM sessions s JOIN profiles p ON p.id = s.profile_id WHERE {where}", **params
    )[0][0]
    offset = max(0, total * 9 // 10 - 1)
    row = h.conn.run(
        f"SELECT s.created_at, s.id::text FROM sessions s JOIN profiles p ON p.id = s.profile_id WHERE {where}"
        " ORDER BY s.created_at DESC, s.id DESC OFFSET :o LIMIT 1",
        o=offset,
        **params,
    )[0]
    return session_history.encode_cursor(request, row[0], row[1], offset // request.page_size + 1)


EXPORT_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from activity_dev import lambdas
    from activity_dev.events import LambdaContext, http_event
    handler = lambdas.load_handler(lambdas.by_operation("export"))
    path, headers = "/api/v5/artifacts/activity/export", {"X-Api-Key": sys.argv[1]}
    started = time.perf_counter()
    result = handler(http_event(path, {}, headers), LambdaContext("export"))
    body = json.loads(result["body"])
    while result["statusCode"] == 202:  # a large export: its job runs in this process's thread; polled as a client
        time.sleep(0.5)
        result = handler(http_event(path, {"upload_id": body["upload_id"]}, headers), LambdaContext("export"))
    seconds = time.perf_counter() - started
    body = json.loads(result["body"])
    # VmHWM is this process's own peak; ru_maxrss also counts the parent's peak at the exec (Linux keeps the
    # forked address space's high-water mark), and the parent holds the local S3's earlier exports
    try:
        status = open("/proc/self/status").read()
        rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"status": result["statusCode"], "seconds": seconds, "rows": body.get("row_count"),
                      "upload_id": body.get("upload_id"), "peak_rss_mb": rss_mb}))
""")


# Scales whose whole export the local S3 cannot hold (moto keeps every part in memory, several times over: at
# xlarge it ran this 24 GiB machine out of memory): their exports go answered as the service answers a large export
# (a job, polled) to an S3 endpoint that keeps nothing but the bytes' count (null_s3).
BEYOND_LOCAL_S3 = ("xlarge",)


def export_once(h: Harness) -> dict[str, Any]:
    """One whole export through the handler, in a fresh process (its peak RSS is the export's): answered at once,
    whatever its size, as earlier rounds measured it; at BEYOND_LOCAL_S3's scales as the service answers a large
    export, by a job polled until it is done (EXPORT_ASYNC=thread: the job runs in that process)."""
    import boto3

    large = h.scale in BEYOND_LOCAL_S3
    env = {
        **os.environ,
        "EXPORT_SYNC_ROW_BUDGET": str(1_500_000 if large else 10**12),
        "EXPORT_ASYNC": "thread",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    sink = null_s3.start() if large else None
    if sink is not None:
        env["AWS_ENDPOINT_URL"] = null_s3.url(sink)
    out = subprocess.run(
        [sys.executable, "-c", EXPORT_CHILD, h.admin_key],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    size, key = h.conn.run(
        "SELECT size_bytes, s3_key FROM activity.uploads WHERE id = CAST(:id AS uuid)", id=stats["upload_id"]
    )[0]
    if sink is not None:
        assert sink.bytes_received == size, (sink.bytes_received, size)  # every byte of the ZIP went out
        sink.shutdown()
    else:
        boto3.client("s3").delete_object(Bucket=os.environ["EXPORT_BUCKET"], Key=key)  # the local S3 keeps it in memory
    return {
        "rows": stats["rows"],
        "seconds": round(stats["seconds"], 2),
        "rows_per_s": round(stats["rows"] / stats["seconds"]),
        "peak_rss_mb": round(stats["peak_rss_mb"], 1),
        "zip_bytes": size,
    }


def bench_export(h: Harness) -> None:
    """Export and its COPY floor in alternation, three pairs at the large scale: the median pair is reported,
    and the ratio is the median of the pairs' ratios (a slow phase of the machine falls on both of a pair)."""
    pairs = []
    for _ in range(3 if h.scale == "large" else 1):
        pairs.append((export_once(h), copy_floor(h)))
    pairs.sort(key=lambda pair: pair[0]["seconds"])
    export, floor = pairs[len(pairs) // 2]
    ratios = sorted(e["seconds"] / f["seconds"] for e, f in pairs)
    h.record("export everything", {**export, "runs": len(pairs)})
    h.record("export everything [COPY floor]", {**floor, "export_vs_floor": round(ratios[len(ratios) // 2], 2)})
    if h.scale in BEYOND_LOCAL_S3:
        return  # the parts went to the null S3, which completes an upload at once
    # The export waits for the upload's completion, which the local S3 (moto) does by joining and hashing every
    # part in memory, seconds for hundreds of MB on this machine's CPU (S3 does it on its side). Timed on its
    # own so that the ratio can be read without it.
    complete = local_s3_complete_seconds(export["zip_bytes"])
    h.record(
        "export everything [local S3 completing the upload]",
        {
            "seconds": round(complete, 2),
            "export_vs_floor_without": round((export["seconds"] - complete) / floor["seconds"], 2),
        },
    )


def local_s3_complete_seconds(size: int) -> float:
    """How long the local S3 takes to complete a multipart upload of `size` bytes in the export's part size."""
    import boto3

    part_size = importlib.import_module("glow_activity.export.s3_stream").PART_SIZE
    client, bucket, key = boto3.client("s3"), os.environ["EXPORT_BUCKET"], "bench/complete-probe"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = os.urandom(part_size)
    parts: list[Any] = []
    for number in range(1, -(-size // part_size) + 1):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part)["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    started = time.perf_counter()
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    seconds = time.perf_counter() - started
    client.delete_object(Bucket=bucket, Key=key)
    return seconds


def copy_floor(h: Harness) -> dict[str, Any]:
    """The same five COPY statements, deflated at the same level, with no Python in between (psql | gzip)."""
    export_writer = importlib.import_module("glow_activity.export.writer")
    from glow_activity.auth import load_caller
    from glow_activity.models import ExportRequest

    admin_id = h.conn.run("SELECT profile_id::text FROM api_keys WHERE name = 'bench' ORDER BY created_at LIMIT 1")[0][
        0
    ]
    queries, params = export_writer.file_queries(load_caller(h.conn, admin_id, None), ExportRequest())
    settings = "".join(f"SET glow_export.{k} = '{v}';\n" for k, v in params.items())
    one_line = [" ".join(export_writer.settings_sql(sql, params).split()) for _, sql in queries]  # \copy: one line
    script = settings + "".join(f"\\copy ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)\n" for sql in one_line)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(script)
    started = time.perf_counter()
    psql = subprocess.run(  # noqa: S602 - a fixed pipeline of our own; the floor must have no Python in it
        f"psql '{h.url}' -q -X -f {fh.name} | gzip -{export_writer.DEFLATE_LEVEL} | wc -c",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "compressed_bytes": int(psql.stdout.strip())}


# A typical five minutes of the platform's writes (issue 28): new sessions and logins, session counters updated (most
# of them recent sessions', a few of any age), a few grants and problems written, a problem deleted. The rows it
# writes are recorded in bench_delta (table, id), so that the bench can take them out again.
DELTA_SQL = (
    """WITH new AS (INSERT INTO sessions (id, profile_id, created_at, updated_at, active)
       SELECT gen_random_uuid(), p.id, now() - random() * interval '5 minutes', now(), random() < 0.5
       FROM (SELECT id FROM profiles ORDER BY random() LIMIT 300) p RETURNING id)
       INSERT INTO bench_delta SELECT 'sessions', id FROM new""",
    """WITH new AS (INSERT INTO logins (id, profile_id, logged_in_at, method)
       SELECT gen_random_uuid(), p.id, now() - random() * interval '5 minutes', 'sso'
       FROM (SELECT id FROM profiles ORDER BY random() LIMIT 3000) p RETURNING id)
       INSERT INTO bench_delta SELECT 'logins', id FROM new""",
    """UPDATE sessions SET run_count = run_count + 1, active = NOT active, updated_at = now()
       WHERE id IN (SELECT id FROM sessions WHERE created_at > now() - interval '2 days'
                    ORDER BY random() LIMIT 200)""",
    """UPDATE sessions SET message_count = message_count + 1, updated_at = now()
       WHERE id IN (SELECT id FROM sessions TABLESAMPLE SYSTEM (1) LIMIT 20)""",
    """WITH new AS (INSERT INTO grants (id, profile_id, kind, created_at)
       SELECT gen_random_uuid(), p.id, 'access', now() FROM (SELECT id FROM profiles ORDER BY random() LIMIT 10) p
       RETURNING id)
       INSERT INTO bench_delta SELECT 'grants', id FROM new""",
    """WITH new AS (INSERT INTO problems (id, type, message, profile_id, created_at, updated_at)
       SELECT gen_random_uuid(), 'bug', 'bench', p.id, now(), now()
       FROM (SELECT id FROM profiles ORDER BY random() LIMIT 5) p RETURNING id)
       INSERT INTO bench_delta SELECT 'problems', id FROM new""",
    """DELETE FROM problems WHERE id IN (SELECT id FROM problems WHERE message = 'bench' LIMIT 1)""",
)


def bench_refresh(h: Harness) -> None:
    """The schedule's light pass with nothing changed and after a typical five-minute delta, and the full pass (an
    admin's call, and the schedule's at least daily). The deltas are taken out again afterwards (a full pass then
    leaves the rollups as they were), so that runs on one database measure the same data."""
    from glow_activity.refresh import Pass, refresh_views

    rounds = 3 if h.scale in ("large", "history", "xlarge") else 5

    def seconds(full_pass: bool, before: Callable[[], None] = lambda: None) -> dict[str, float]:
        samples = []
        for _ in range(rounds):
            before()
            started = time.perf_counter()
            refresh_views(h.conn, "schedule", kind=Pass.FULL if full_pass else Pass.LIGHT)
            samples.append(time.perf_counter() - started)
        return {"median_s": round(statistics.median(samples), 3), "max_s": round(max(samples), 3), "n": rounds}

    def delta() -> None:
        for sql in DELTA_SQL:
            h.conn.run(sql)

    h.conn.run("CREATE TEMP TABLE IF NOT EXISTS bench_delta (tab text, id uuid)")
    refresh_views(h.conn, "cli")
    try:
        h.record("refresh light, nothing changed", seconds(False))
        h.record("refresh light, after a five-minute delta", seconds(False, delta))
        h.record("refresh full pass", seconds(True))
    finally:
        for table in ("problems", "grants", "logins", "sessions"):
            h.conn.run(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM bench_delta WHERE tab = :t)",
                t=table,
            )
        h.conn.run("DROP TABLE bench_delta")
        refresh_views(h.conn, "cli")


def bench_cold_starts(h: Harness) -> None:
    """Each function's import and first invocation in fresh interpreters, on the layer as `sam build` ships it
    and without its bytecode, next to bare peers (`cold_start.measure`): 15 pairs at the large scale, 5 otherwise."""
    functions = []
    for spec in lambdas.functions():
        if not spec.operation:
            continue
        event = http_event(spec.path or "", {"cold_start_probe": 1}, {"X-Api-Key": h.admin_key})
        if spec.operation == "mcp":
            call = {"name": "activity_docs", "arguments": {"cold_start_probe": 1}}
            event = http_event(
                spec.path or "",
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call},
                {"X-Api-Key": h.admin_key, "Accept": "application/json"},
            )
        functions.append((spec.operation, spec.code_uri, spec.handler.rsplit(".", 1)[0], json.dumps(event)))
    cold_start.measure(functions, 15 if h.scale == "large" else 5, h.record)


def bench_concurrency(h: Harness) -> None:
    """`--concurrency N`: N clients against the local gateway with 8 workers (what `activity serve --workers 8`
    runs), mixed reads for 60 s (get 50%, search 40%, docs 10%): throughput, latency percentiles, errors, and the
    most connections the service held at once."""
    import random
    import urllib.error
    import urllib.request

    from glow_activity import db

    from .gateway import Gateway, make_server

    clients, workers, seconds = h.concurrency, 8, 60.0
    os.environ["ACTIVITY_GATEWAY_QUIET"] = "1"
    db.reset_connections()  # this process's own handler calls above held one; only the gateway's workers count
    gateway = Gateway(workers)
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v5/artifacts/activity"
    shapes = list(window_shapes(datetime.now(UTC).date()).values())
    keys = [h.admin_key, h.coordinators["median"][0], h.coordinators["largest"][0]]
    latencies: list[float] = []
    errors: list[str] = []
    most_connections = 0
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            draw = rng.random()
            operation = "get" if draw < 0.5 else "search" if draw < 0.9 else "docs"
            body = {} if operation == "docs" else dict(rng.choice(shapes))
            request = urllib.request.Request(  # noqa: S310 - loopback http
                f"{base}/{operation}",
                data=json.dumps(body).encode(),
                headers={"X-Api-Key": rng.choice(keys), "Content-Type": "application/json"},
                method="POST",
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
                    response.read()
                    ok = response.status == 200
            except urllib.error.HTTPError as exc:
                ok, detail = False, f"{operation} {exc.code}: {exc.read()[:300]!r}"
            except Exception as exc:
                ok, detail = False, f"{operation}: {exc!r}"
            else:
                detail = ""
            with lock:
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors.append(detail or operation)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        rows = h.conn.run("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'glow-activity'")
        most_connections = max(most_connections, int(rows[0][0]))
        time.sleep(0.5)
    server.shutdown()
    gateway.close()
    h.record(
        f"concurrency {clients} clients, {workers} workers, 60 s mixed reads",
        {
            **percentiles(latencies),
            "requests_per_s": round(len(latencies) / seconds, 1),
            "errors": len(errors),
            "error_samples": sorted(set(errors))[:5],
            "max_connections": most_connections,
            "workers": workers,
        },
    )


def bench_attach(h: Harness) -> None:
    """`activity db migrate --attached` on this scale's data in a database that holds only the platform's tables
    (Glow's, as the service first finds it), while a platform writer inserts a login and updates a session every
    3 ms: the migration's wall time and the longest any write waited."""
    from glow_activity.db import open_connection, params_from_url
    from glow_activity.migrate import migrate
    from glow_activity.platform import platform_sql

    from .platform_writer import PlatformWriter

    name = f"bench_attach_{os.getpid()}"
    h.conn.run(f"CREATE DATABASE {name}")
    params = dataclasses.replace(params_from_url(h.url), application_name="glow-bench", database=name)
    conn = open_connection(params)
    writer_conn = open_connection(params)
    try:
        conn.run(platform_sql())
        print(f"attach: seeding {h.scale} into a platform-only database ...", flush=True)
        seed(conn, h.scale)
        conn.run("ANALYZE")
        sessions = [str(r[0]) for r in conn.run("SELECT id FROM sessions ORDER BY id LIMIT 500")]
        profiles = [str(r[0]) for r in conn.run("SELECT id FROM profiles ORDER BY id LIMIT 500")]
        writer = PlatformWriter(writer_conn, sessions, profiles)
        thread = writer.start()
        time.sleep(1)
        started = time.perf_counter()
        steps = migrate(conn, attached=True)
        seconds = time.perf_counter() - started
        time.sleep(1)
        writer.stop.set()
        thread.join()
        h.record(
            "migrate --attached, platform writer every 3 ms",
            {"seconds": round(seconds, 1), "steps": len(steps), "writer": writer.summary()},
        )
    finally:
        for c in (conn, writer_conn):
            c.close()
        h.conn.run(f"DROP DATABASE {name} WITH (FORCE)")


class StepClock:
    """Each step's seconds, from a `progress` callback called as each step starts (migrate, build_rollups)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __call__(self, step: str) -> None:
        self.marks.append((step, time.perf_counter()))

    def steps(self, ended: float) -> list[tuple[str, float]]:
        """(step, seconds) of every step, the last one ending at `ended` (a perf_counter)."""
        ends = [t for _, t in self.marks[1:]] + [ended]
        return [(step, end - begun) for (step, begun), end in zip(self.marks, ends, strict=True)]


def bench_attach_in_place(h: Harness) -> None:
    """The attached first deploy at this scale without a second copy of its data (at xlarge another 30 GB): what the
    service made in this database is dropped (schema activity, the indexes it asks of the platform's tables), so that
    it holds what Glow's database holds before the service's first deploy; then `migrate --attached` runs while a
    platform writer inserts a login and updates a session every 3 ms: each step's seconds (the first build's months
    among them), the longest any write waited. The rollups are built again by the migration."""
    from glow_activity.db import open_connection, params_from_url, reset_connections
    from glow_activity.migrate import migrate
    from glow_activity.platform import INDEXES, SCHEMA

    from .platform_writer import PlatformWriter

    conn = h.conn
    reset_connections()  # the harness's handlers' connections hold nothing across the drop
    for index in INDEXES:
        conn.run(f"DROP INDEX IF EXISTS public.{index.name}")
    conn.run(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.run("CHECKPOINT")
    writer_conn = open_connection(dataclasses.replace(params_from_url(h.url), application_name="glow-bench-writer"))
    sessions = [str(r[0]) for r in conn.run("SELECT id FROM sessions ORDER BY id LIMIT 500")]
    profiles = [str(r[0]) for r in conn.run("SELECT id FROM profiles ORDER BY id LIMIT 500")]
    writer = PlatformWriter(writer_conn, sessions, profiles)
    clock = StepClock()

    def progress(step: str) -> None:
        clock(step)
        print(f"attach in place: {step}", flush=True)

    thread = writer.start()
    time.sleep(1)
    started = time.perf_counter()
    try:
        steps = migrate(conn, attached=True, progress=progress)
    finally:
        seconds = time.perf_counter() - started
        time.sleep(1)
        writer.stop.set()
        thread.join()
        writer_conn.close()
    timings = [(step, round(t, 1)) for step, t in clock.steps(started + seconds)]
    build = [t for step, t in timings if step.startswith("build the rollups:")]
    h.record(
        "migrate --attached in place, platform writer every 3 ms",
        {
            "seconds": round(seconds, 1),
            "steps": len(steps),
            "longest_steps": sorted(timings, key=lambda x: -x[1])[:8],
            "first_build": {"steps": len(build), "seconds": round(sum(build), 1), "longest_step": max(build or [0])},
            "writer": writer.summary(),
        },
    )


# What a cold start runs to get the runtime user's credentials, each way (the secret's ARN is filled in).
CREDENTIAL_PATHS = {
    "secret": """
import json, time; t = time.perf_counter()
from aws_lambda_powertools.utilities import parameters
json.loads(parameters.get_secret({arn!r}, max_age=3600))
print((time.perf_counter() - t) * 1000)
""",
    "iam token": """
import time; t = time.perf_counter()
import boto3
boto3.client("rds").generate_db_auth_token("glow-db.cluster-x.us-east-1.rds.amazonaws.com", 5432, "activity_app")
print((time.perf_counter() - t) * 1000)
""",
}


def bench_credentials(h: Harness) -> None:
    """The runtime user's credentials in a fresh interpreter (a cold start's share): its own secret read through
    Powertools from the local Secrets Manager, against an IAM database-authentication token (boto3's RDS signer)."""
    import boto3

    arn = boto3.client("secretsmanager").create_secret(
        Name=f"bench-runtime-{os.getpid()}", SecretString=json.dumps({"username": "activity_app", "password": "x" * 40})
    )["ARN"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "layers" / "common")}
    for name, template in CREDENTIAL_PATHS.items():
        code = template.format(arn=arn)
        times = [
            float(
                subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
            )
            for _ in range(15)
        ]
        h.record(f"runtime credentials: {name} (fresh interpreter)", percentiles([t / 1000 for t in times]))


def bench_many_callers(h: Harness) -> None:
    """Many callers at once: the per-caller limit's cost per request (get, in process, with and without it, in
    alternation), its own SQL round trip, and a noisy neighbour through the local gateway (8 workers, the limit at
    120 a minute): three coordinators reading once a second, alone and then beside one key flooding every operation
    from four threads and an anonymous script; the readers' latencies, what each side was answered, and the most
    connections the service held."""
    from glow_activity import api, db
    from glow_activity.limits import take_request
    from glow_activity.settings import get_settings

    from . import noisy
    from .gateway import Gateway, make_server

    key = h.coordinators["median"][0]
    body = window_shapes(datetime.now(UTC).date())["last 90 days"]
    limited = dataclasses.replace(get_settings(), caller_requests_per_minute=10**9)
    unlimited = dataclasses.replace(limited, caller_requests_per_minute=0)
    real_settings = api.get_settings

    def with_settings(settings: Any) -> Callable[[], None]:
        def call() -> None:
            api.get_settings = lambda: settings  # type: ignore[assignment]
            try:
                h.call("get", body, key)
            finally:
                api.get_settings = real_settings

        return call

    on, off = timed_pair(with_settings(limited), with_settings(unlimited), h.iterations)
    h.record("limiter: get coordinator 90 days, limit on", on)
    h.record("limiter: get coordinator 90 days, limit off", off)
    caller = "00000000-0000-4000-8000-00000000beef"
    h.record(
        "limiter: activity.take_request round trip",
        timed(
            lambda: take_request(h.conn, caller, 10**9, operation="get", channel="api", request_id="b"), h.iterations
        ),
    )

    workers, seconds = 8, 20.0
    limit = os.environ.get("CALLER_REQUESTS_PER_MINUTE")
    os.environ.update({"ACTIVITY_GATEWAY_QUIET": "1", "CALLER_REQUESTS_PER_MINUTE": "120"})
    db.reset_connections()
    gateway = Gateway(workers)
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    readers = [{"X-Api-Key": k} for k in (h.coordinators["median"][0], h.coordinators["largest"][0], h.admin_key)]

    def connections() -> int:
        return int(h.conn.run("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'glow-activity'")[0][0])

    # the flooder: another admin (a profile of its own, so a bucket of its own)
    other_admin = h.conn.run(
        "SELECT profile_id::text FROM profile_roles WHERE role = 'admin' AND active AND profile_id <> CAST(:p AS uuid)"
        " ORDER BY profile_id LIMIT 1",
        p=demo_profile_id(h.conn, 42, DEMO_ADMIN_INDEX),
    )[0][0]
    flood_key = {"X-Api-Key": h._key(other_admin)}
    try:
        # every worker warm (each operation loaded, its connection open), the readers' queries planned, then measured
        noisy.run(base, readers=[], flooder=flood_key, seconds=5, reader_pause=0)
        noisy.run(base, readers=readers, flooder=None, seconds=3, reader_pause=0.3)
        alone = noisy.run(
            base, readers=readers, flooder=None, seconds=seconds, reader_pause=1.0, connections=connections
        )
        beside = noisy.run(
            base, readers=readers, flooder=flood_key, seconds=seconds, reader_pause=1.0, connections=connections
        )
    finally:
        server.shutdown()
        gateway.close()
        if limit is None:
            os.environ.pop("CALLER_REQUESTS_PER_MINUTE")
        else:
            os.environ["CALLER_REQUESTS_PER_MINUTE"] = limit
    storm = connection_storm(h, readers)
    for name, outcome in (("alone", alone), ("beside the flood", beside)):
        h.record(
            f"noisy neighbour: readers {name}",
            {**percentiles(outcome.readers.latencies), "statuses": dict(outcome.readers.statuses)},
        )
    h.record(
        "noisy neighbour: the flooder and the anonymous script",
        {
            "flooder": dict(beside.flooder.statuses),
            "flooder_requests_per_s": round(sum(beside.flooder.statuses.values()) / seconds, 1),
            "anonymous": dict(beside.anonymous.statuses),
            "max_connections_alone": alone.most_connections,
            "max_connections_beside": beside.most_connections,
            "workers": workers,
        },
    )
    h.record(
        "connection budget spent: 8 workers, CONNECTION LIMIT 4",
        {
            "statuses": dict(storm.readers.statuses),
            **{f"{status}_{k}": v for status, t in storm.readers.by_status.items() for k, v in percentiles(t).items()},
            "max_connections": storm.most_connections,
        },
    )


def connection_storm(h: Harness, readers: list[dict[str, str]]) -> Any:
    """What a spent connection budget looks like: the gateway's 8 workers as a LOGIN user whose CONNECTION LIMIT is
    4, read by six unpaced readers for 10 s: the workers that got no connection answer 503 with Retry-After."""
    import secrets

    from glow_activity import db
    from glow_activity.migrate import ensure_runtime_login

    from . import noisy
    from .gateway import Gateway, make_server

    user, password = "activity_bench_limited", secrets.token_urlsafe(16)
    ensure_runtime_login(h.conn, user, password, connection_limit=4)
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "DB_CONNECT_ATTEMPTS")}
    os.environ.update({"DATABASE_URL": embedded_pg.url_as(h.url, user, password), "DB_CONNECT_ATTEMPTS": "1"})
    db.reset_connections()
    gateway = Gateway(8)
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def connections() -> int:
        return int(h.conn.run("SELECT count(*) FROM pg_stat_activity WHERE usename = :u", u=user)[0][0])

    try:
        return noisy.run(
            f"http://127.0.0.1:{server.server_port}",
            readers=readers * 2,
            flooder=None,
            seconds=10,
            reader_pause=0,
            connections=connections,
        )
    finally:
        server.shutdown()
        gateway.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


PARTS: dict[str, Callable[[Harness], None]] = {
    "get_search": bench_get_and_search,
    "export": bench_export,
    "refresh": bench_refresh,
    "cold": bench_cold_starts,
    "mcp": bench_mcp,
    "concurrency": bench_concurrency,
    "many_callers": bench_many_callers,
    "attach": bench_attach,
    "attach_in_place": bench_attach_in_place,
    "credentials": bench_credentials,
}
# Parts that run only when asked for by --only (attach seeds a database of its own, attach_in_place drops this one's
# rollups and indexes)
ON_REQUEST = ("attach", "attach_in_place", "credentials")


def first_build_steps(conn: Any) -> dict[str, Any]:
    """The first refresh after seeding: the rollups' first build (rollup_build), a month per transaction; its steps'
    count, total and longest (each must fit what is left of a refresh or migration invocation)."""
    from glow_activity.refresh import build_rollups

    clock = StepClock()
    started = time.perf_counter()
    build_rollups(conn, trigger="cli", progress=clock)
    ended = time.perf_counter()
    steps = [seconds for _, seconds in clock.steps(ended)]
    return {
        "seconds": round(ended - started, 1),
        "steps": len(steps),
        "longest_step_seconds": round(max(steps or [0.0]), 1),
    }


def main(
    scale: str = "small",
    iterations: int = 0,
    output: Path | None = None,
    data_dir: Path | None = None,
    only: tuple[str, ...] = (),
    concurrency: int = 0,
    shape: str = "steady",
) -> dict[str, Any]:
    os.environ.setdefault("JWT_SECRET", "bench-secret-bench-secret-bench-secret")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # The limit per caller is on (its cost is part of every request) but never reached: the bench calls thousands of
    # times a minute as one caller. bench_many_callers measures the limit itself.
    os.environ.setdefault("CALLER_REQUESTS_PER_MINUTE", str(10**9))
    from glow_activity.db import open_connection, params_from_url
    from glow_activity.migrate import migrate
    from glow_activity.refresh import ROLLUPS, refresh_views

    url = os.environ.get("DATABASE_URL") or embedded_pg.database_url(data_dir)
    conn = open_connection(dataclasses.replace(params_from_url(url), application_name="glow-bench"))
    migrate(conn)
    seed_seconds = first_build = None
    if not conn.run("SELECT EXISTS (SELECT 1 FROM profiles)")[0][0]:
        print(f"seeding {scale} ...", flush=True)
        started = time.perf_counter()
        seed(conn, scale, shape=shape)
        seed_seconds = round(time.perf_counter() - started, 1)
        first_build = first_build_steps(conn)
    refresh_views(conn, "cli")  # as the schedule keeps it: current rollups and planner statistics
    # and as autovacuum keeps the rollup tables (their visibility map current: index-only scans), which a database
    # migrated or seeded a moment ago has not had time for
    conn.run(f"VACUUM (ANALYZE) {', '.join(f'activity.{view}' for view in ROLLUPS)}")
    s3 = local_s3.start("glow-activity-bench")
    counts = {
        t: conn.run(f"SELECT count(*) FROM {t}")[0][0]
        for t in ("profiles", "departments", "sessions", "logins", "grants", "problems")
    }
    h = Harness(url, scale, iterations or ITERATIONS[scale])
    h.concurrency = concurrency
    print(f"scale={scale} rows={counts}", flush=True)
    try:
        for part, run in PARTS.items():
            if (part == "concurrency" and not concurrency) or (part in ON_REQUEST and part not in only):
                continue
            if not only or part in only:
                run(h)
    finally:
        s3.stop()
    report = {
        "parts": list(only or PARTS),
        "generated_at": datetime.now(UTC).isoformat(),
        "scale": scale,
        "shape": shape,
        "rows": counts,
        "seed_seconds": seed_seconds,
        "first_build": first_build,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "postgres": conn.run("SHOW server_version")[0][0],
        "results": h.results,
        "scales": {k: v.__dict__ for k, v in SCALES.items()},
    }
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return report
