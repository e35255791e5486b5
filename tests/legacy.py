"""The previous version's layout, for the tests that migrate a database it built: its twelve migrations (kept
verbatim in tests/legacy_migrations/), applied the way its runner did, in one transaction, recorded in
public.schema_migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LEGACY_MIGRATIONS = Path(__file__).parent / "legacy_migrations"


def build_legacy_database(conn: Any) -> list[str]:
    names = []
    conn.run("BEGIN")
    conn.run("CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    for path in sorted(LEGACY_MIGRATIONS.glob("*.sql")):
        conn.run(path.read_text(encoding="utf-8"))
        conn.run("INSERT INTO schema_migrations (name) VALUES (:name)", name=path.stem)
        names.append(path.stem)
    conn.run("COMMIT")
    return names
