"""Attached to the platform's own database: a database that already holds Glow's tables and data, with objects of
the platform's own (extra columns, a view over sessions, a trigger, tables that share our names), and millions of
logins. `activity db migrate --attached` runs while a platform writer inserts logins and updates sessions every few
milliseconds: the writer is never held up for a second, and afterwards the platform's columns, constraints, views
and functions and its rows are as they were, no index is left invalid, and all that is new in `public` is indexes.
Then the functions, connected as the runtime user, answer from it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from databases import catalog, new_database, platform_schema_of_record, url_of

from activity_dev import embedded_pg
from activity_dev.platform_writer import PlatformWriter
from glow_activity import db, platform
from glow_activity.migrate import ensure_runtime_login
from glow_activity.settings import get_settings

LOGINS = 2_500_000  # "a few million"
SESSIONS = 60_000
PROFILES = 3_000
WRITER_SESSIONS = 200  # the sessions the writer updates (its rows are left out of the before/after comparison)

# The platform's own objects, beside its contract tables.
PLATFORM_EXTRAS = """
ALTER TABLE profiles ADD COLUMN locale text NOT NULL DEFAULT 'en';
ALTER TABLE sessions ADD COLUMN course_id text;
CREATE INDEX sessions_course_idx ON sessions (course_id);
CREATE VIEW session_overview AS
    SELECT s.id, s.profile_id, p.name, s.run_count, s.last_run_at - s.first_run_at AS duration
    FROM sessions s JOIN profiles p ON p.id = s.profile_id;
CREATE TABLE session_changes (session_id uuid NOT NULL, changed_at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION record_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_changes (session_id) VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER sessions_changed AFTER UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION record_session_change();
-- tables of the platform's own that share names with ours: never touched, never adopted
CREATE TABLE audit_log (id bigserial PRIMARY KEY, what text NOT NULL);
INSERT INTO audit_log (what) VALUES ('platform audit row');
CREATE TABLE schema_migrations (version text PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20260101000000');
"""

PLATFORM_DATA = """
INSERT INTO departments SELECT 'dept-' || i, 'Department ' || i FROM generate_series(1, 20) i;
INSERT INTO profiles (id, name, email, created_at, deleted_at)
SELECT md5('p' || i)::uuid, 'Person ' || i, 'person' || i || '@example.edu', now() - interval '3 years',
       CASE WHEN i % 97 = 0 THEN now() END
FROM generate_series(1, :profiles) i;
INSERT INTO profile_departments
SELECT md5('p' || i)::uuid, 'dept-' || (1 + i % 20) FROM generate_series(1, :profiles) i;
INSERT INTO profile_roles (profile_id, role)
SELECT md5('p' || i)::uuid, CASE WHEN i = 1 THEN 'admin' WHEN i % 50 = 0 THEN 'instructional' ELSE 'member' END
FROM generate_series(1, :profiles) i;
INSERT INTO sessions (id, profile_id, created_at, updated_at, active, run_count, first_run_at, last_run_at,
                      total_tokens, total_cost, course_id)
SELECT md5('s' || i)::uuid, md5('p' || (1 + i % :profiles))::uuid, t, t + interval '1 hour', i % 7 = 0, i % 5,
       CASE WHEN i % 5 > 0 THEN t + interval '1 minute' END, CASE WHEN i % 5 > 0 THEN t + interval '40 minutes' END,
       i % 1000, (i % 1000) / 100.0, 'course-' || (i % 30)
FROM (SELECT i, now() - (i % 700) * interval '1 day' - (i % 86400) * interval '1 second' AS t
      FROM generate_series(1, :sessions) i) g;
INSERT INTO logins (id, profile_id, logged_in_at, method)
SELECT md5('l' || i)::uuid, md5('p' || (1 + (i * 7) % :profiles))::uuid,
       now() - (i % 700) * interval '1 day' - (i % 86400) * interval '1 second', 'sso'
FROM generate_series(1, :logins) i;
INSERT INTO grants SELECT md5('g' || i)::uuid, md5('p' || (1 + i % :profiles))::uuid, md5('p1')::uuid,
       CASE WHEN i % 3 = 0 THEN 'emulation' ELSE 'access' END, now() - (i % 600) * interval '1 day'
FROM generate_series(1, 3000) i;
INSERT INTO problems (id, type, message, session_id, profile_id, reported_by, created_at, updated_at)
SELECT md5('x' || i)::uuid, 'bug', 'Problem ' || i, md5('s' || i)::uuid, md5('p' || (1 + i % :profiles))::uuid,
       md5('p1')::uuid, now() - (i % 500) * interval '1 day', now() - (i % 500) * interval '1 day'
FROM generate_series(1, 1500) i;
INSERT INTO api_keys (id, name, key_hash, profile_id)
VALUES (md5('k1')::uuid, 'admin key', encode(sha256('attached-admin-key'::bytea), 'hex'), md5('p1')::uuid);
ANALYZE;
"""

# An order-independent checksum of each platform table's rows, leaving out what the writer itself writes.
CHECKSUM_SQL = """
SELECT '{table}', count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint)
FROM {table} t WHERE {where}
"""
WRITER_ROWS = {"logins": "method <> 'writer'", "sessions": "NOT (id = ANY(CAST(:writer AS uuid[])))"}


def checksums(conn: Any, writer_sessions: list[str]) -> list[list[Any]]:
    rows = []
    for table in platform.contract_columns():
        where = WRITER_ROWS.get(table, "true")
        params = {"writer": writer_sessions} if ":writer" in where else {}
        rows += conn.run(CHECKSUM_SQL.format(table=table, where=where), **params)
    return rows


def platform_catalog(conn: Any) -> set[str]:
    """The catalog less what the service adds: its schema, its indexes, and the privileges it grants."""
    ours = tuple(index.name for index in platform.INDEXES)
    return {
        line
        for line in catalog(conn)
        if "activity." not in line and not line.startswith(("acl ", "role ")) and not any(name in line for name in ours)
    }


@pytest.fixture(scope="module")
def platform_db(database_url: str) -> Iterator[tuple[Any, str]]:
    """Glow's database as the service finds it: the platform schema, the platform's own objects, and data."""
    with new_database(database_url) as conn:
        conn.run(platform_schema_of_record())  # the platform's schema as published, not our copy of it
        conn.run(PLATFORM_EXTRAS)
        for statement in PLATFORM_DATA.split(";\n"):
            if statement.strip():
                conn.run(statement, **{k: v for k, v in PARAMS.items() if f":{k}" in statement})
        yield conn, url_of(database_url, conn.run("SELECT current_database()")[0][0])


PARAMS = {"profiles": PROFILES, "sessions": SESSIONS, "logins": LOGINS}


def activity_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "activity_dev.cli", *args], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_migrate_attached_to_a_live_platform_database(
    platform_db: tuple[Any, str], invoke: Any, monkeypatch: Any
) -> None:
    conn, url = platform_db
    writer_sessions = [str(r[0]) for r in conn.run("SELECT id FROM sessions ORDER BY id LIMIT :n", n=WRITER_SESSIONS)]
    catalog_before, rows_before = platform_catalog(conn), checksums(conn, writer_sessions)
    everything_before = catalog(conn)

    # GIVEN the plan, which changes nothing
    planned = activity_cli(url, "db", "migrate", "--plan", "--attached")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.startswith("mode: attached;") and "build index activity_logins_time_idx" in planned.stdout
    assert "create the platform tables" not in planned.stdout and "ADD COLUMN" not in planned.stdout
    assert catalog(conn) == everything_before

    # WHEN the migration runs while the platform writes
    writer_conn = db.open_connection(db.params_from_url(url))
    profiles = [str(r[0]) for r in conn.run("SELECT id FROM profiles LIMIT 100")]
    writer = PlatformWriter(writer_conn, writer_sessions, profiles)
    thread = writer.start()
    try:
        time.sleep(0.5)
        started = time.perf_counter()
        migrated = activity_cli(url, "db", "migrate", "--attached")
        seconds = time.perf_counter() - started
        time.sleep(0.5)
    finally:
        writer.stop.set()
        thread.join(timeout=30)
        writer_conn.close()
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout
    print(
        f"\nattached migration: {seconds:.1f} s; writer: {len(writer.latencies)} writes, "
        f"longest {max(writer.latencies) * 1000:.0f} ms"
    )

    # THEN the writer was never held up for a second, and never failed
    assert writer.errors == []
    assert len(writer.latencies) > 100
    assert max(writer.latencies) < 1.0
    # AND the platform's columns, constraints, views, functions, triggers and rows are as they were
    assert platform_catalog(conn) == catalog_before
    assert checksums(conn, writer_sessions) == rows_before
    assert conn.run("SELECT what FROM public.audit_log") == [["platform audit row"]]
    assert conn.run("SELECT version FROM public.schema_migrations") == [["20260101000000"]]
    # AND no index is invalid, and all that is new in public is an index
    assert conn.run("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [[0]]
    new_in_public = {line for line in catalog(conn) - everything_before if line.startswith("rel public.")}
    assert new_in_public and all(line.endswith(" i") for line in new_in_public)
    functions_in_public = {line for line in catalog(conn) - everything_before if line.startswith("fn public.")}
    assert functions_in_public == set()
    # AND migrating again does nothing
    again = activity_cli(url, "db", "migrate", "--attached")
    assert again.returncode == 0 and again.stdout.strip() == "nothing to do (up to date)"

    # WHEN the functions connect to it as the runtime user  THEN they answer, and exactly
    ensure_runtime_login(conn, "activity_app_attached", "attached-password")
    monkeypatch.setenv("DATABASE_URL", embedded_pg.url_as(url, "activity_app_attached", "attached-password"))
    get_settings.cache_clear()
    db.reset_connections()
    headers = {"X-Api-Key": "attached-admin-key"}
    assert invoke("refresh", {}, headers).status == 200
    got = invoke("get", {"summary_limit": 1}, headers)
    assert got.status == 200
    expected = conn.run(
        "SELECT count(*) FROM logins l JOIN profiles p ON p.id = l.profile_id WHERE p.deleted_at IS NULL"
    )[0][0]
    assert got.body["logins_count"] == expected
    page = invoke("search", {"page_size": 5}, headers)
    assert page.status == 200 and len(page.body["data"]) == 5
    assert (
        page.body["total_count"]
        == conn.run(
            "SELECT count(*) FROM sessions s JOIN profiles p ON p.id = s.profile_id WHERE p.deleted_at IS NULL"
        )[0][0]
    )
    db.reset_connections()
    conn.run("DROP ROLE activity_app_attached")
