"""Migrations: the platform schema exactly; everything of the service's own in schema `activity`; a plan that
changes nothing; idempotent runs; invalid indexes rebuilt; lock waits retried; a database built by the previous
layout adopted with its data; the custom resource answers CloudFormation SUCCESS or FAILED and never hangs."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import migrate_function
from databases import catalog, new_database, platform_schema_of_record, public_objects_of_our_own, url_of
from factories import World
from legacy import build_legacy_database

from activity_dev import lambdas
from activity_dev.events import LambdaContext
from glow_activity import db, platform
from glow_activity.migrate import MigrationRefused, migrate, migrate_until, migration_files, plan, repeatable_files
from glow_activity.refresh import ROLLUPS


def test_the_platform_tables_are_the_platform_schema_exactly() -> None:
    assert platform.platform_sql() == platform_schema_of_record()


def test_the_platform_columns_the_service_reads() -> None:
    assert "first_run_at" in platform.contract_columns()["sessions"]
    assert platform.contract_columns()["profile_roles"] == ("profile_id", "role", "active")


def test_migrations_are_ordered_recorded_and_idempotent(conn: Any) -> None:
    names = [name for name, _ in migration_files()]
    assert names == sorted(names) and names
    recorded = [r[0] for r in conn.run("SELECT name FROM activity.schema_migrations ORDER BY name")]
    assert recorded == names
    assert plan(conn).steps == []
    assert migrate(conn) == []


def _rollup_rows(conn: Any) -> dict[str, Any]:
    """Each rollup table's rows, as a count and an order-independent checksum of their text, and its file node (a
    rebuilt table gets a new one)."""
    return {
        table: conn.run(
            f"SELECT count(*), sum(hashtext(t::text)), pg_relation_filenode('activity.{table}') FROM activity.{table} t"
        )[0]
        for table in ROLLUPS
    }


def test_the_refresh_is_code_reapplied_when_its_file_changes_without_rebuilding_the_rollups(
    conn: Any, world: Any, refresh: Any
) -> None:
    member = world.profile(roles=["member"])
    world.session(member, "2025-03-01T10:00:00")
    refresh()
    before = _rollup_rows(conn)
    repeatables = [name for name, _ in repeatable_files()]
    assert {"views/event_tally.sql", "functions/refresh.sql"} <= set(repeatables)
    # GIVEN a database whose recorded refresh is another version of the file (an edit since it was applied)
    conn.run("UPDATE activity.schema_repeatables SET sha256 = 'an older version' WHERE name = 'functions/refresh.sql'")
    # WHEN it is planned and migrated, THEN only that file runs again: no table is rebuilt, no row changes
    assert plan(conn).lines()[1:] == ["1. apply functions/refresh.sql (repeatable, changed; one transaction)"]
    migrate(conn)
    assert plan(conn).steps == []
    assert _rollup_rows(conn) == before
    # and the refresh still works, through the one entry point the runtime role may call
    world.session(member, "2025-03-02T10:00:00")
    refresh()
    assert _rollup_rows(conn)["activity_daily"][0] == before["activity_daily"][0] + 1


def test_a_new_database_builds_its_rollups_once(database_url: str) -> None:
    with new_database(database_url) as fresh:
        # GIVEN a new database whose platform tables already hold activity (a step at a time: the first one makes them)
        migrate_until(fresh, -math.inf)
        world = World(fresh)
        member = world.profile(roles=["member"])
        world.session(member, "2025-03-01T10:00:00")
        world.login(member, "2025-03-02T10:00:00")
        while (
            not fresh.run("SELECT to_regclass('activity.schema_migrations') IS NOT NULL")[0][0]
            or not fresh.run("SELECT count(*) FROM activity.schema_migrations WHERE name = '0001_activity_schema'")[0][
                0
            ]
        ):
            migrate_until(fresh, -math.inf)
        # WHEN the baseline has run THEN it built no rollup (its views empty, no day), only their shapes
        assert fresh.run(
            "SELECT bool_or(relispopulated) FROM pg_class WHERE oid IN ('activity.activity_monthly'::regclass,"
            " 'activity.activity_monthly_running'::regclass, 'activity.activity_profile_totals'::regclass)"
        ) == [[False]]
        assert fresh.run("SELECT count(*) FROM activity.activity_daily") == [[0]]
        # AND the rest of the migration builds them, once, from the events
        migrate(fresh)
        assert fresh.run("SELECT sum(sessions), sum(logins) FROM activity.activity_daily") == [[1, 1]]
        assert fresh.run("SELECT sessions, logins FROM activity.activity_profile_totals") == [[1, 1]]


def test_a_fresh_database_gets_everything_of_ours_in_schema_activity(database_url: str) -> None:
    with new_database(database_url) as fresh:
        # GIVEN an empty database  WHEN it is planned, then migrated
        before = catalog(fresh)
        steps = plan(fresh).lines()
        assert catalog(fresh) == before  # planning changed nothing
        assert any("create the platform tables" in line for line in steps)
        done = migrate(fresh)
        # THEN the plan was what ran, the platform tables exist, and public holds nothing else of ours
        assert [f"{i}. {d}" for i, d in enumerate(done, 1)] == steps[1:]
        assert public_objects_of_our_own(fresh) == []
        ours = {
            r[0] for r in fresh.run("SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'activity'::regnamespace")
        }
        assert {
            "audit_log",
            "uploads",
            "refresh_runs",
            "idempotency_records",
            "schema_migrations",
            "activity_daily",
            "activity_monthly",
            "activity_weekly_running",
            "activity_platform_daily",
            "activity_platform_left_out",
            "activity_profile_totals",
            "activity_events",
        } <= ours
        indexes = {r[0] for r in fresh.run("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {index.name for index in platform.INDEXES} <= indexes
        # AND a second run does nothing
        assert migrate(fresh) == []


def test_plan_prints_what_a_migration_would_do_and_changes_nothing(database_url: str) -> None:
    with new_database(database_url) as fresh:
        migrate(fresh)
        fresh.run("DROP INDEX public.activity_logins_time_idx")
        fresh.run("REVOKE SELECT ON public.grants FROM activity_runtime")
        before = catalog(fresh)
        lines = plan(fresh).lines()
        assert lines[0] == "mode: standalone; 2 step(s)"
        assert lines[1].startswith(
            "1. build index activity_logins_time_idx CONCURRENTLY ON public.logins (logged_in_at)"
            " INCLUDE (profile_id): "
        )
        assert lines[2] == "2. grant activity_runtime SELECT on grants (public)"
        assert catalog(fresh) == before
        assert len(migrate(fresh)) == 2 and plan(fresh).steps == []


def test_an_invalid_index_left_by_an_interrupted_build_is_dropped_and_built_again(database_url: str) -> None:
    with new_database(database_url) as fresh:
        migrate(fresh)
        # GIVEN a concurrent build of one of our indexes that failed halfway (here: a unique index over duplicates)
        fresh.run("DROP INDEX public.activity_grants_profile_idx")
        pid = str(uuid.uuid4())
        fresh.run("INSERT INTO profiles (id, name) VALUES (CAST(:p AS uuid), 'P')", p=pid)
        for _ in range(2):
            fresh.run("INSERT INTO grants VALUES (gen_random_uuid(), CAST(:p AS uuid), NULL, 'access', now())", p=pid)
        with pytest.raises(Exception, match="could not create unique index"):
            fresh.run("CREATE UNIQUE INDEX CONCURRENTLY activity_grants_profile_idx ON grants (profile_id)")
        assert fresh.run(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'activity_grants_profile_idx'::regclass"
        ) == [[False]]
        # WHEN the migration runs  THEN it says it rebuilds it, and does: valid, with its own definition
        assert "rebuild the invalid index activity_grants_profile_idx" in plan(fresh).lines()[1]
        migrate(fresh)
        assert fresh.run(
            "SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indexrelid = 'activity_grants_profile_idx'::regclass"
        ) == [[True, "CREATE INDEX activity_grants_profile_idx ON public.grants USING btree (profile_id, created_at)"]]


def test_an_index_build_that_meets_a_lock_waits_briefly_retries_and_leaves_nothing_invalid(database_url: str) -> None:
    with new_database(database_url) as fresh:
        migrate(fresh)
        fresh.run("DROP INDEX public.activity_logins_profile_idx")
        params = db.params_from_url(database_url)
        holder = db.open_connection(
            db.ConnectParams(**{**params.__dict__, "database": fresh.run("SELECT current_database()")[0][0]})
        )
        # GIVEN a transaction holding a lock that CREATE INDEX CONCURRENTLY must wait for (a VACUUM's, say)
        holder.run("BEGIN")
        holder.run("LOCK TABLE logins IN SHARE UPDATE EXCLUSIVE MODE")
        release = threading.Timer(1.5, lambda: holder.run("COMMIT"))
        release.start()
        try:
            # WHEN the migration runs with a short lock timeout  THEN it gives up its wait, retries, and succeeds
            started = time.perf_counter()
            done = migrate(fresh, lock_timeout_ms=200, attempts=20)
            assert time.perf_counter() - started >= 1.0
            assert len(done) == 1 and "activity_logins_profile_idx" in done[0]
        finally:
            release.join()
            holder.close()
        assert fresh.run("SELECT count(*) FROM pg_index WHERE NOT indisvalid")[0][0] == 0


def test_attached_mode_refuses_a_platform_without_the_contract_columns_and_changes_nothing(database_url: str) -> None:
    with new_database(database_url) as platform_db:
        platform_db.run(platform.platform_sql())
        platform_db.run("ALTER TABLE sessions DROP COLUMN last_run_at")
        before = catalog(platform_db)
        with pytest.raises(MigrationRefused, match=r"column sessions\.last_run_at"):
            migrate(platform_db, attached=True)
        assert catalog(platform_db) == before
        # standalone, the same database gets the column (a later contract version's addition)
        assert any("ADD COLUMN IF NOT EXISTS last_run_at" in step for step in migrate(platform_db))


def test_a_database_built_by_the_previous_layout_is_adopted_with_its_data(database_url: str) -> None:
    with new_database(database_url) as old:
        # GIVEN a database the previous version built and used: rows, rollups, audit, an export record
        build_legacy_database(old)
        pid, sid = str(uuid.uuid4()), str(uuid.uuid4())
        old.run("INSERT INTO profiles (id, name) VALUES (CAST(:p AS uuid), 'Old')", p=pid)
        old.run(
            "INSERT INTO sessions (id, profile_id, created_at, updated_at, active) VALUES"
            " (CAST(:s AS uuid), CAST(:p AS uuid), '2025-03-04T10:00:00Z', '2025-03-04T11:00:00Z', false)",
            s=sid,
            p=pid,
        )
        old.run(
            "INSERT INTO audit_log (operation, channel, status_code, request_id)"
            " VALUES ('activity.get', 'api', 200, 'r1')"
        )
        old.run("REFRESH MATERIALIZED VIEW activity_monthly")
        old.run("INSERT INTO activity_daily VALUES (CAST(:p AS uuid), '2025-03-04', 1, 0, 0, 0, 0, 0)", p=pid)
        runs_before = old.run("SELECT count(*) FROM refresh_runs")[0][0]
        # WHEN the new version migrates it
        lines = plan(old).lines()
        assert any(
            line.startswith("3. adopt the previous layout") or "adopt the previous layout" in line for line in lines
        )
        migrate(old)
        # THEN everything of ours is in activity with its rows, public holds only the platform's, and the rollups
        # were built again as tables from the events (0002's tables, the first build's months), a run recorded beside
        # the old ones
        assert old.run("SELECT request_id FROM activity.audit_log") == [["r1"]]
        assert old.run("SELECT profile_id::text, sessions FROM activity.activity_daily") == [[pid, 1]]
        assert old.run("SELECT count(*) FROM activity.refresh_runs")[0][0] == runs_before + 1
        assert old.run("SELECT trigger, built FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [
            ["migration", True]
        ]
        assert old.run("SELECT sessions FROM activity.activity_monthly WHERE profile_id = CAST(:p AS uuid)", p=pid) == [
            [1]
        ]
        assert public_objects_of_our_own(old) == []
        assert len(old.run("SELECT name FROM activity.legacy_schema_migrations")) == 12
        # AND the platform indexes carry their new names (no second copy), the new columns are there
        indexes = {r[0] for r in old.run("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {index.name for index in platform.INDEXES} <= indexes
        assert not indexes & set(platform.LEGACY_INDEX_NAMES)
        assert old.run("SELECT first_run_at, last_run_at FROM sessions") == [[None, None]]
        assert migrate(old) == []


class _CloudFormation(BaseHTTPRequestHandler):
    replies: list[dict[str, Any]] = []

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).replies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


CFN_RESPONSE_URL = (
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3Acloudformation/glow"
    "?X-Amz-Signature=test"
)


@pytest.fixture
def response_url(monkeypatch: Any) -> Iterator[str]:
    """CloudFormation's response URL; the function's PUT to it reaches a local server instead (the one seam: the
    URL the function accepts is CloudFormation's own)."""
    _CloudFormation.replies = []
    server = HTTPServer(("127.0.0.1", 0), _CloudFormation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    module = lambdas.load_module(next(s for s in lambdas.functions() if s.logical_id == "MigrateFunction"))
    real_put = module.put

    def put_locally(url: str, body: bytes) -> int:
        assert url == CFN_RESPONSE_URL
        return real_put(f"http://127.0.0.1:{server.server_port}/cfn-response", body)

    monkeypatch.setattr(module, "put", put_locally)
    yield CFN_RESPONSE_URL
    server.shutdown()


def cfn_event(request_type: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:stack/glow",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:fn", "LayerVersion": "arn:layer:1"},
    }


migrate_handler = migrate_function


@pytest.fixture
def as_migrator(database_url: str, monkeypatch: Any) -> None:
    """The migration function holds the master (migration) credentials; every other function the runtime user's."""
    from glow_activity.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_custom_resource_reports_success(as_migrator: None, response_url: str, request_type: str) -> None:
    result = migrate_handler()(cfn_event(request_type, response_url), LambdaContext("migrate", 600_000))
    assert result["Status"] == "SUCCESS"
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "SUCCESS" and reply["LogicalResourceId"] == "Migrations"
    assert reply["PhysicalResourceId"] == "glow-activity-migrations"


def test_custom_resource_sets_the_runtime_users_password_from_its_own_secret(
    as_migrator: None, response_url: str, monkeypatch: Any, conn: Any
) -> None:
    import boto3

    # GIVEN the stack's secret of the functions' LOGIN user (in the local Secrets Manager)
    user = f"activity_app_{uuid.uuid4().hex[:6]}"
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"glow-runtime-{user}", SecretString=json.dumps({"username": user, "password": "first-password"})
    )
    monkeypatch.setenv("DB_RUNTIME_SECRET_ARN", secret["ARN"])
    try:
        # WHEN the custom resource runs  THEN that user logs in with that password, a member of activity_runtime only
        result = migrate_handler()(cfn_event("Create", response_url), LambdaContext("migrate", 600_000))
        assert result["Status"] == "SUCCESS"
        role = conn.run(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolpassword IS NOT NULL,"
            " array(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid"
            "       WHERE m.member = a.oid)"
            " FROM pg_authid a WHERE rolname = :u",
            u=user,
        )
        assert role == [[True, False, False, False, True, ["activity_runtime"]]]
    finally:
        conn.run(f"DROP ROLE IF EXISTS {user}")


def test_custom_resource_reports_failure_of_a_broken_migration(
    as_migrator: None, response_url: str, monkeypatch: Any, tmp_path: Path
) -> None:
    import glow_activity.migrate as migrate_module

    broken = [*migration_files(), ("9999_broken", "SELECT * FROM table_that_does_not_exist;")]
    monkeypatch.setattr(migrate_module, "migration_files", lambda: broken)
    result = migrate_handler()(cfn_event("Update", response_url), LambdaContext("migrate", 600_000))
    assert result["Status"] == "FAILED"
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "FAILED" and "table_that_does_not_exist" in reply["Reason"]


def test_custom_resource_never_hangs_when_the_database_is_away(response_url: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    from glow_activity.settings import get_settings

    get_settings.cache_clear()
    result = migrate_handler()(cfn_event("Create", response_url), LambdaContext("migrate", 30_000))
    assert result["Status"] == "FAILED"
    assert [r["Status"] for r in _CloudFormation.replies] == ["FAILED"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # the instance metadata service
        "https://attacker.example/cloudformation-custom-resource-response-useast1/x",
        "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",  # not https
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.attacker.example/x",
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com:8443/x",
    ],
)
def test_a_custom_resource_request_answers_only_cloudformations_own_response_urls(
    as_migrator: None, url: str, monkeypatch: Any
) -> None:
    module = lambdas.load_module(next(s for s in lambdas.functions() if s.logical_id == "MigrateFunction"))
    sent: list[str] = []
    monkeypatch.setattr(module, "put", lambda target, body: sent.append(target) or 200)
    result = migrate_handler()(cfn_event("Create", url), LambdaContext("migrate", 60_000))
    assert result["Status"] == "FAILED" and sent == []
    assert module.is_cloudformation_event(cfn_event("Create", CFN_RESPONSE_URL))


# ---------------------------------------------------------------- a migration longer than one invocation


class _LambdaApi:
    """The Lambda API as the migration function calls it to go on in a fresh invocation: a real boto3 client (its
    request checked against the API's model by botocore's Stubber), whose accepted requests are kept to be run."""

    def __init__(self) -> None:
        import boto3
        from botocore.stub import Stubber

        self.client = boto3.client("lambda")
        self.stubber = Stubber(self.client)
        self.stubber.activate()
        self.events: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> Any:
        self.stubber.add_response("invoke", {"StatusCode": 202}, request)
        answer = self.client.invoke(**request)
        assert request["InvocationType"] == "Event"
        self.events.append(json.loads(request["Payload"]))
        return answer


@dataclass
class ShortInvocations:
    """The migration function with a tiny time budget (every invocation may start one step, then must hand the rest
    over), its Lambda API, and a fresh database it migrates."""

    module: Any
    lambda_api: _LambdaApi
    fresh: Any


@pytest.fixture
def short_invocations(database_url: str, response_url: str, monkeypatch: Any) -> Iterator[ShortInvocations]:
    from glow_activity.settings import get_settings

    module = lambdas.load_module(next(s for s in lambdas.functions() if s.logical_id == "MigrateFunction"))
    lambda_api = _LambdaApi()
    monkeypatch.setattr(module, "lambda_client", lambda: lambda_api)
    monkeypatch.setenv("MIGRATION_STEP_MARGIN_SECONDS", str(10**6))
    with new_database(database_url) as fresh:
        monkeypatch.setenv("DATABASE_URL", url_of(database_url, fresh.run("SELECT current_database()")[0][0]))
        get_settings.cache_clear()
        db.reset_connections()
        yield ShortInvocations(module, lambda_api, fresh)
        db.reset_connections()


def test_a_migration_too_long_for_one_invocation_goes_on_in_fresh_ones_and_answers_once(
    database_url: str, response_url: str, short_invocations: ShortInvocations, monkeypatch: Any
) -> None:
    monkeypatch.setattr(short_invocations.module, "MAX_INVOCATIONS", 100)
    fresh, lambda_api = short_invocations.fresh, short_invocations.lambda_api
    steps = len(plan(fresh).steps)
    # WHEN CloudFormation creates the resource, and each handed-over request runs in its own invocation
    event, invocations = cfn_event("Create", response_url), 0
    while event is not None:
        invocations += 1
        answer = migrate_handler()(event, LambdaContext("migrate", 900_000))
        event = lambda_api.events.pop() if answer["Status"] == "CONTINUED" else None
        if event is not None:
            assert _CloudFormation.replies == []  # nothing said to CloudFormation before the end
    # THEN it went on in fresh invocations, one step each, and CloudFormation heard SUCCESS once, at the end
    assert invocations == steps > 5
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "SUCCESS"
    # AND the end state is one run's: the same catalog, no invalid index, nothing left to do
    with new_database(database_url) as reference:
        migrate(reference)
        assert catalog(fresh) == catalog(reference)
    assert fresh.run("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [[0]]
    assert plan(fresh).steps == [] and migrate(fresh) == []


def test_a_migration_that_cannot_finish_in_its_invocations_fails_instead_of_waiting(
    response_url: str, short_invocations: ShortInvocations
) -> None:
    module = short_invocations.module
    event = {**cfn_event("Create", response_url), module.CONTINUATION_KEY: module.MAX_INVOCATIONS}
    answer = migrate_handler()(event, LambdaContext("migrate", 900_000))
    assert answer["Status"] == "FAILED" and short_invocations.lambda_api.events == []
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "FAILED" and "invocations" in reply["Reason"]


def test_a_first_deploy_over_the_platforms_events_builds_the_rollups_a_month_per_invocation(
    database_url: str, response_url: str, short_invocations: ShortInvocations, monkeypatch: Any
) -> None:
    from glow_activity.refresh import refresh_views

    monkeypatch.setattr(short_invocations.module, "MAX_INVOCATIONS", 100)
    fresh, lambda_api = short_invocations.fresh, short_invocations.lambda_api
    # GIVEN a database whose platform tables hold seven months of activity before the service's first deploy
    migrate_until(fresh, -math.inf)
    world = World(fresh)
    people = [world.profile(roles=["member"]) for _ in range(3)]
    for month in range(1, 8):
        world.session(people[month % 3], f"2025-{month:02d}-03T10:00:00", active=month == 7)
        world.login(people[(month + 1) % 3], f"2025-{month:02d}-28T23:30:00")
    world.grant(people[0], "2025-02-10T08:00:00", kind="emulation")
    world.problem(people[1], "2025-05-05T05:00:00")
    steps = len(plan(fresh).steps)
    assert plan(fresh).lines()[-1].endswith("then running and all-time totals")
    # WHEN CloudFormation creates the resource, each handed-over request in its own invocation of one step
    event, invocations = cfn_event("Create", response_url), 0
    while event is not None:
        invocations += 1
        answer = migrate_handler()(event, LambdaContext("migrate", 900_000))
        event = lambda_api.events.pop() if answer["Status"] == "CONTINUED" else None
    # THEN the build went a month per invocation (then running totals, then totals) and SUCCESS came once, at the end
    assert invocations == (steps - 1) + 7 + 2
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "SUCCESS"
    assert fresh.run("SELECT trigger, built FROM activity.refresh_runs ORDER BY id DESC LIMIT 1") == [
        ["migration", True]
    ]
    assert fresh.run(
        "SELECT sum(sessions), sum(active_sessions), sum(logins), sum(emulations), sum(problems)"
        " FROM activity.activity_profile_totals"
    ) == [[7, 1, 7, 1, 1]]
    # AND what it built is what a full pass finds right: the pass changes no row of any rollup

    def rows() -> list[Any]:
        return [fresh.run(f"SELECT * FROM activity.{table} ORDER BY 1, 2") for table in ROLLUPS]

    built = rows()
    refresh_views(fresh, "cli")
    assert rows() == built and all(built)
    assert plan(fresh).steps == [] and migrate(fresh) == []
