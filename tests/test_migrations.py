"""Migrations: the first is the platform schema exactly; the runner is ordered, recorded and locked; the
custom resource answers CloudFormation SUCCESS or FAILED and never hangs."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from activity_dev import REPO_ROOT, lambdas
from activity_dev.events import LambdaContext
from glow_activity import db
from glow_activity.migrate import migrate, migration_files

SHARED_SCHEMA = REPO_ROOT.parent / "shared" / "spec" / "platform-schema.sql"


def test_first_migration_is_the_platform_schema_exactly() -> None:
    name, sql = migration_files()[0]
    assert name == "0001_platform_schema"
    if SHARED_SCHEMA.exists():
        assert sql == SHARED_SCHEMA.read_text(encoding="utf-8")
    assert "CREATE TABLE IF NOT EXISTS api_keys" in sql


def test_migrations_are_ordered_and_recorded(conn: Any) -> None:
    names = [name for name, _ in migration_files()]
    assert names == sorted(names)
    recorded = [r[0] for r in conn.run("SELECT name FROM schema_migrations ORDER BY name")]
    assert recorded == names
    assert migrate(conn) == []  # idempotent


@contextmanager
def new_database(database_url: str) -> Iterator[Any]:
    """A connection to a brand-new, empty database on the test server, dropped afterwards."""
    admin = db.open_connection(db.params_from_url(database_url))
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin.run(f"CREATE DATABASE {name}")
    try:
        params = db.params_from_url(database_url)
        conn = db.open_connection(db.ConnectParams(**{**params.__dict__, "database": name}))
        try:
            yield conn
        finally:
            conn.close()
    finally:
        admin.run(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_migrations_build_a_fresh_database_and_run_on_postgres_15_features_only(database_url: str) -> None:
    """A brand-new database gets every migration in one transaction."""
    with new_database(database_url) as fresh:
        assert migrate(fresh) == [n for n, _ in migration_files()]
        tables = {r[0] for r in fresh.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"profiles", "sessions", "audit_log", "uploads", "refresh_runs", "schema_migrations"} <= tables


def test_a_database_of_the_old_role_names_is_moved_to_glows(database_url: str) -> None:
    """A database migrated before the platform schema took Glow's role names and application keys: 0009 maps
    ta -> member, head_ta -> custom, instructor -> guest, coordinator -> instructional, and admits keys without
    a profile."""
    with new_database(database_url) as old:
        migrate(old)
        # GIVEN the schema as it was: the old CHECK, api_keys.profile_id NOT NULL, 0009 not applied
        old.run("ALTER TABLE profile_roles DROP CONSTRAINT profile_roles_role_check")
        old.run(
            "ALTER TABLE profile_roles ADD CONSTRAINT profile_roles_role_check"
            " CHECK (role IN ('ta', 'head_ta', 'instructor', 'coordinator', 'admin'))"
        )
        old.run("ALTER TABLE api_keys ALTER COLUMN profile_id SET NOT NULL")
        old.run("DELETE FROM schema_migrations WHERE name = '0009_glow_roles_and_application_keys'")
        pid = str(uuid.uuid4())
        old.run("INSERT INTO profiles (id, name) VALUES (CAST(:id AS uuid), 'Old')", id=pid)
        for role, active in (
            ("ta", True),
            ("head_ta", False),
            ("instructor", True),
            ("coordinator", True),
            ("admin", True),
        ):
            old.run("INSERT INTO profile_roles VALUES (CAST(:p AS uuid), :r, :a)", p=pid, r=role, a=active)
        # WHEN the service migrates it
        assert migrate(old) == ["0009_glow_roles_and_application_keys"]
        # THEN every role has its Glow name (activity kept), and the new CHECK and nullable key hold
        roles = old.run("SELECT role, active FROM profile_roles ORDER BY role")
        assert roles == [["admin", True], ["custom", False], ["guest", True], ["instructional", True], ["member", True]]
        with pytest.raises(Exception, match="profile_roles_role_check"):
            old.run("INSERT INTO profile_roles VALUES (CAST(:p AS uuid), 'ta', true)", p=pid)
        old.run("INSERT INTO api_keys (id, name, key_hash) VALUES (gen_random_uuid(), 'app', 'h')")
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


@pytest.fixture
def response_url() -> Iterator[str]:
    _CloudFormation.replies = []
    server = HTTPServer(("127.0.0.1", 0), _CloudFormation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cfn-response"
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


def migrate_handler() -> Any:
    return lambdas.load_handler(next(s for s in lambdas.functions() if s.logical_id == "MigrateFunction"))


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_custom_resource_reports_success(database_url: str, response_url: str, request_type: str) -> None:
    result = migrate_handler()(cfn_event(request_type, response_url), LambdaContext("migrate", 600_000))
    assert result["Status"] == "SUCCESS"
    (reply,) = _CloudFormation.replies
    assert reply["Status"] == "SUCCESS" and reply["LogicalResourceId"] == "Migrations"
    assert reply["PhysicalResourceId"] == "glow-activity-migrations"


def test_custom_resource_reports_failure_of_a_broken_migration(
    database_url: str, response_url: str, monkeypatch: Any, tmp_path: Path
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
