"""Ordered SQL migrations, applied in one transaction under an advisory lock and recorded in a table."""

from __future__ import annotations

from importlib import resources

from .db import Connection, transaction

MIGRATION_LOCK_KEY = 0x61637469  # "acti": one migrator at a time, whichever process runs it


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("glow_activity") / "migrations"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in names]


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    applied_now: list[str] = []
    with transaction(conn):
        conn.run("SELECT pg_advisory_xact_lock(:key)", key=MIGRATION_LOCK_KEY)
        conn.run(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.run("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            conn.run(sql)
            conn.run("INSERT INTO schema_migrations (name) VALUES (:name)", name=name)
            applied_now.append(name)
    return applied_now
