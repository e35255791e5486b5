"""Databases of their own for the tests that migrate one, and what their catalogs say."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from activity_dev import REPO_ROOT
from glow_activity import db, platform

# The platform's schema as the platform publishes it (shared/ beside the clone, as on the developers' machines and CI)
SHARED_SCHEMA = REPO_ROOT.parent / "shared" / "spec" / "platform-schema.sql"


def platform_schema_of_record() -> str:
    """The platform's published schema, never the service's own copy of it: without shared/ a comparison would hold
    the copy against itself. Missing, CI fails and elsewhere the test is skipped, saying why."""
    if SHARED_SCHEMA.exists():
        return SHARED_SCHEMA.read_text(encoding="utf-8")
    message = f"{SHARED_SCHEMA} is not beside this clone: nothing to hold the service's copy of the schema to"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


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


def url_of(database_url: str, name: str) -> str:
    """The URL of another database on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


# What the catalog says of a database: every relation, column, constraint, index, view, function and trigger.
CATALOG_SQL = """
SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
UNION ALL
SELECT 'col ' || c.oid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname IN ('public', 'activity') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'activity'))
UNION ALL
SELECT 'idx ' || indexrelid::regclass::text || ' ' || indisvalid || ' ' || pg_get_indexdef(indexrelid) FROM pg_index
  WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace IN
                     (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'activity')))
UNION ALL
SELECT 'view ' || c.oid::regclass::text || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
  WHERE c.relkind IN ('v', 'm')
  AND c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'activity'))
UNION ALL
SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p
  WHERE p.pronamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'activity'))
UNION ALL
SELECT 'trg ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'acl ' || c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '') FROM pg_class c
  WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'activity'))
UNION ALL
SELECT 'role ' || rolname FROM pg_roles WHERE rolname = 'activity_runtime'
"""


def catalog(conn: Any) -> set[str]:
    return {r[0] for r in conn.run(CATALOG_SQL)}


def public_objects_of_our_own(conn: Any) -> list[str]:
    """What stands in public that is not a platform table, its own sequence or constraint index, or an index."""
    tables = list(platform.contract_columns())
    return [
        r[0]
        for r in conn.run(
            "SELECT c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind <> 'i' AND NOT (c.relkind = 'r' AND c.relname = ANY(:t))"
            " UNION ALL SELECT p.proname || ' f' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public'",
            t=tables,
        )
    ]
