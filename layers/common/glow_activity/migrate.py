"""Migrations that are safe on the platform's live database.

A migration is planned from the database's catalog, then carried out step by step:
1. the platform tables: created when absent (standalone), required when attached (never altered there);
2. schema `activity` and the NOLOGIN role `activity_runtime`;
3. adoption of a standalone database built by the previous layout (its objects move from `public` to
   `activity`, nothing is rebuilt);
4. the service's SQL migrations (`migrations/NNNN_*.sql`, each in one transaction, recorded in
   `activity.schema_migrations`; everything in them lives in schema `activity`): DDL and data moves, run once;
4b. the SQL objects that are code (`migrations/views/*.sql`, then `migrations/functions/*.sql`): repeatable,
   `CREATE OR REPLACE`, applied again whenever a file's content differs from what `activity.schema_repeatables`
   recorded (Flyway's repeatable migrations), so that a fix to a function is an edit of its one file;
5. the indexes the service asks of the platform's tables (`platform.INDEXES`), each built CONCURRENTLY outside
   a transaction; an invalid one left by an interrupted build is dropped (CONCURRENTLY) and built again;
6. the runtime role's privileges on the platform's tables;
7. the rollups' first build, when they hold nothing and the platform has events (an attached database's first
   deploy): a month per transaction (rollup_build), so that it too stops between two steps when time is up.

Every step that takes a lock does so under a short `lock_timeout` and is retried, so a platform writer never
queues behind the migration for longer than that. `plan()` is what `activity db migrate --plan` prints: it reads
the catalog and changes nothing. Running `migrate()` twice is a no-op the second time (its plan is empty).
docs/DECISIONS.md says why this is our own small runner rather than a migration library.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from pg8000.exceptions import DatabaseError

from . import platform
from .db import Connection, runtime_session, session_lock
from .observability import logger
from .platform import RUNTIME_ROLE, SCHEMA
from .refresh import build_rollups
from .settings import Settings, get_settings

MIGRATION_LOCK_KEY = 0x61637469  # "acti": one migrator at a time, whichever process runs it
LOCK_TIMEOUT_MS = 500  # how long a step may wait for a lock (and so hold up writers queued behind it)
ATTEMPTS = 8  # tries of a step that timed out on a lock, with backoff between them
# SQLSTATEs after which a step is tried again: lock_timeout, deadlock, a statement cancelled
_RETRYABLE = ("55P03", "40P01", "57014")

# The previous layout's objects of the service's own in `public`, and what each is.
LEGACY_OBJECTS = (
    ("TABLE", "audit_log"),
    ("TABLE", "refresh_runs"),
    ("TABLE", "idempotency_records"),
    ("TABLE", "uploads"),
    ("TABLE", "activity_daily"),
    ("TABLE", "activity_daily_months"),
    ("VIEW", "activity_events"),
    ("MATERIALIZED VIEW", "activity_monthly"),
    ("MATERIALIZED VIEW", "activity_profile_totals"),
    ("MATERIALIZED VIEW", "activity_monthly_running"),
)
LEGACY_FIRST, LEGACY_LAST = "0001_platform_schema", "0012_monthly_running_totals"


class MigrationRefused(Exception):
    """The database is not one this migration may change as it is (said in plain words, before any change)."""


@dataclass(frozen=True)
class Step:
    """One unit of a migration. `statements` run in one transaction unless `concurrent_index` is set."""

    description: str
    statements: tuple[str, ...] = ()
    migration: str | None = None  # a migration file's name, recorded once its transaction commits
    repeatable: tuple[str, str] | None = None  # a repeatable file's (name, sha256), recorded likewise
    concurrent_index: platform.PlatformIndex | None = None
    build_rollups: bool = False  # the rollups' first build: many transactions, as many as time allows


@dataclass
class Plan:
    mode: str
    steps: list[Step] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"mode: {self.mode}; " + (f"{len(self.steps)} step(s)" if self.steps else "nothing to do")
        return [head] + [f"{i}. {step.description}" for i, step in enumerate(self.steps, 1)]


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("glow_activity") / "migrations"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name[:4].isdigit() and entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in names]


# Folders of repeatable SQL (code, not history), applied in this order after the numbered migrations.
REPEATABLE_FOLDERS = ("views", "functions")


def repeatable_files() -> list[tuple[str, str]]:
    """(`folder/name.sql`, text) of every repeatable file, in the order they are applied."""
    root = resources.files("glow_activity") / "migrations"
    files = []
    for folder in REPEATABLE_FOLDERS:
        directory = root / folder
        names = sorted(entry.name for entry in directory.iterdir() if entry.name.endswith(".sql"))
        files += [(f"{folder}/{name}", (directory / name).read_text(encoding="utf-8")) for name in names]
    return files


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _scalar(conn: Connection, sql: str, **params: object) -> object:
    return conn.run(sql, **params)[0][0]


def _exists(conn: Connection, relation: str) -> bool:
    """Whether a schema-qualified table, view or index exists."""
    return bool(_scalar(conn, "SELECT to_regclass(:r) IS NOT NULL", r=relation))


def _role_exists(conn: Connection, role: str) -> bool:
    return bool(_scalar(conn, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r)", r=role))


def _index_valid(conn: Connection, index: platform.PlatformIndex) -> bool | None:
    """True for a usable index, False for one an interrupted CREATE INDEX CONCURRENTLY left invalid, None if absent."""
    rows = conn.run(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(:name)", name=f"public.{index.name}"
    )
    return bool(rows[0][0]) if rows else None


def _platform_columns(conn: Connection) -> dict[str, set[str]]:
    rows = conn.run(
        "SELECT c.relname::text, a.attname::text FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(CAST(:tables AS text[]))",
        tables=list(platform.contract_columns()),
    )
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def _platform_steps(conn: Connection, attached: bool) -> list[Step]:
    present = _platform_columns(conn)
    contract = platform.contract_columns()
    missing_tables = [t for t in contract if t not in present]
    added = {(table, column): sql_type for table, column, sql_type in platform.ADDED_COLUMNS}
    missing_columns = [(t, c) for t in contract if t in present for c in contract[t] if c not in present[t]]
    if attached and (missing_tables or missing_columns):
        lacks = [f"table {t}" for t in missing_tables] + [f"column {t}.{c}" for t, c in missing_columns]
        raise MigrationRefused(
            "The attached database lacks what platform-schema.sql says the platform has: "
            + ", ".join(lacks)
            + ". An attached migration never creates or alters a platform table; bring the platform up to date first."
        )
    unknown = [f"{t}.{c}" for t, c in missing_columns if (t, c) not in added]
    if unknown:
        raise MigrationRefused(f"The platform tables lack columns no migration adds: {', '.join(unknown)}.")
    steps = []
    if missing_tables:
        steps.append(
            Step(f"create the platform tables {', '.join(missing_tables)} (platform.sql)", (platform.platform_sql(),))
        )
    by_table: dict[str, list[str]] = {}
    for table, column in missing_columns:
        by_table.setdefault(table, []).append(f"ADD COLUMN IF NOT EXISTS {column} {added[(table, column)]}")
    for table, additions in by_table.items():
        sql = f"ALTER TABLE public.{table} {', '.join(additions)}"
        steps.append(Step(f"{sql} (nullable, no rewrite; standalone only)", (sql,)))
    return steps


def _role_steps(conn: Connection) -> list[Step]:
    steps = []
    schema_exists = bool(_scalar(conn, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :s)", s=SCHEMA))
    if not schema_exists:
        steps.append(Step(f"create schema {SCHEMA}", (f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",)))
    role_exists = _role_exists(conn, RUNTIME_ROLE)
    if not role_exists:
        steps.append(Step(f"create role {RUNTIME_ROLE} (NOLOGIN)", (f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN",)))
    grants = []
    schema_usage = (
        role_exists
        and schema_exists
        and _scalar(conn, "SELECT has_schema_privilege(:r, :s, 'USAGE')", r=RUNTIME_ROLE, s=SCHEMA)
    )
    if not schema_usage:
        grants.append(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {RUNTIME_ROLE}")
    if not role_exists or not _scalar(
        conn, "SELECT has_database_privilege(:r, current_database(), 'CONNECT')", r=RUNTIME_ROLE
    ):
        grants.append(
            f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {RUNTIME_ROLE}', current_database()); END $$"
        )
    if grants:
        steps.append(Step(f"grant {RUNTIME_ROLE} usage of schema {SCHEMA} and connect to this database", tuple(grants)))
    return steps


def _legacy_history(conn: Connection) -> set[str] | None:
    """The previous layout's migration history, when this is a database it built (else None)."""
    if _exists(conn, f"{SCHEMA}.schema_migrations"):
        return None
    has_names = _scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('public.schema_migrations')"
        " AND attname = 'name' AND NOT attisdropped)",
    )
    if not has_names:
        return None  # none, or the platform's own table of that name
    names = {str(r[0]) for r in conn.run("SELECT name::text FROM public.schema_migrations")}
    return names if LEGACY_FIRST in names else None


def _adoption_steps(conn: Connection) -> list[Step]:
    history = _legacy_history(conn)
    if history is None:
        return []
    if LEGACY_LAST not in history:
        raise MigrationRefused(
            "This database was built by an older layout than the previous version's (its last migration is not "
            f"{LEGACY_LAST}): migrate it with the previous version first."
        )
    statements = [
        f"ALTER {kind} public.{name} SET SCHEMA {SCHEMA}"
        for kind, name in LEGACY_OBJECTS
        if _exists(conn, f"public.{name}")
    ]
    statements += [
        f"ALTER INDEX public.{old} RENAME TO {new}"
        for old, new in platform.LEGACY_INDEX_NAMES.items()
        if _exists(conn, f"public.{old}") and not _exists(conn, f"public.{new}")
    ]
    statements += [
        f"ALTER TABLE public.schema_migrations SET SCHEMA {SCHEMA}",
        f"ALTER TABLE {SCHEMA}.schema_migrations RENAME TO legacy_schema_migrations",
    ]
    return [
        Step(
            f"adopt the previous layout: move its {len(LEGACY_OBJECTS)} objects from public to {SCHEMA} (data and "
            "rollups kept), give its platform indexes their new names, keep its history as "
            f"{SCHEMA}.legacy_schema_migrations",
            tuple(statements),
        )
    ]


def _migration_steps(conn: Connection) -> list[Step]:
    done: set[str] = set()
    if _exists(conn, f"{SCHEMA}.schema_migrations"):
        done = {str(r[0]) for r in conn.run(f"SELECT name FROM {SCHEMA}.schema_migrations")}
    return [
        Step(f"apply {name} (one transaction, objects in schema {SCHEMA})", (sql,), migration=name)
        for name, sql in migration_files()
        if name not in done
    ]


def _repeatable_steps(conn: Connection) -> list[Step]:
    applied: dict[str, str] = {}
    if _exists(conn, f"{SCHEMA}.schema_repeatables"):
        applied = {str(r[0]): str(r[1]) for r in conn.run(f"SELECT name, sha256 FROM {SCHEMA}.schema_repeatables")}
    steps = []
    for name, sql in repeatable_files():
        digest = _sha256(sql)
        if applied.get(name) == digest:
            continue
        why = "new" if name not in applied else "changed"
        steps.append(Step(f"apply {name} (repeatable, {why}; one transaction)", (sql,), repeatable=(name, digest)))
    return steps


def _index_steps(conn: Connection) -> list[Step]:
    steps = []
    for index in platform.INDEXES:
        valid = _index_valid(conn, index)
        if valid:
            continue
        verb = "build index" if valid is None else "rebuild the invalid index"
        steps.append(
            Step(
                f"{verb} {index.name} CONCURRENTLY ON public.{index.table} {index.columns}: {index.why}",
                concurrent_index=index,
            )
        )
    return steps


def _grant_steps(conn: Connection) -> list[Step]:
    role_exists = _role_exists(conn, RUNTIME_ROLE)
    grants, missing = [], []
    wanted = [(table, "SELECT") for table in platform.READS]
    wanted += [(table, privilege) for table, privileges in platform.WRITES.items() for privilege in privileges]
    for table, privilege in wanted:
        held = role_exists and _scalar(
            conn,
            "SELECT to_regclass(:t) IS NOT NULL AND has_table_privilege(:r, :t, :p)",
            r=RUNTIME_ROLE,
            t=f"public.{table}",
            p=privilege,
        )
        if not held:
            grants.append(f"GRANT {privilege} ON public.{table} TO {RUNTIME_ROLE}")
            missing.append(f"{privilege} on {table}")
    if not grants:
        return []
    return [Step(f"grant {RUNTIME_ROLE} " + ", ".join(missing) + " (public)", tuple(grants))]


_EVENT_TABLES = ("sessions", "logins", "grants", "problems")
_BUILD_STEP = Step(
    "build the rollups from the platform's events: a month per transaction, then running and all-time totals",
    build_rollups=True,
)


def _build_steps(conn: Connection) -> list[Step]:
    """The rollups' first build, when one is under way, or when they hold nothing (or are yet to be made, by
    migration 0002) and the platform has events."""
    if not all(_exists(conn, f"public.{table}") for table in _EVENT_TABLES):
        return []  # a new standalone database: the platform's tables come with this plan, empty
    under_way = f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.rollup_build)"
    if _exists(conn, f"{SCHEMA}.rollup_build") and _scalar(conn, under_way):
        return [_BUILD_STEP]
    monthly_is_table = _scalar(
        conn,
        "SELECT coalesce((SELECT relkind = 'r' FROM pg_class WHERE oid = to_regclass(:r)), false)",
        r=f"{SCHEMA}.activity_monthly",
    )
    if monthly_is_table and _scalar(conn, f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.activity_monthly)"):
        return []
    events = " OR ".join(f"EXISTS (SELECT 1 FROM public.{table})" for table in _EVENT_TABLES)
    return [_BUILD_STEP] if _scalar(conn, f"SELECT {events}") else []


def plan(conn: Connection, attached: bool = False) -> Plan:
    """What a migration would do to this database now, reading its catalog (and whether the rollups need a build)."""
    steps = _platform_steps(conn, attached)
    steps += _role_steps(conn)
    steps += _adoption_steps(conn)
    steps += _migration_steps(conn)
    steps += _repeatable_steps(conn)
    steps += _index_steps(conn)
    steps += _grant_steps(conn)
    steps += _build_steps(conn)
    return Plan("attached" if attached else "standalone", steps)


def _sqlstate(exc: BaseException) -> str:
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("C", ""))
    return ""


def _with_retries(run: Callable[[], None], description: str, attempts: int, on_failure: Callable[[], None]) -> None:
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            run()
            return
        except DatabaseError as exc:
            on_failure()
            if attempt == attempts or _sqlstate(exc) not in _RETRYABLE:
                raise
            logger.warning(
                "migration step waited too long for a lock; trying again",
                extra={"step": description, "attempt": attempt, "sqlstate": _sqlstate(exc)},
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _run_in_transaction(conn: Connection, step: Step, lock_timeout_ms: int) -> None:
    conn.run("BEGIN")
    conn.run(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    for statement in step.statements:
        conn.run(statement)
    if step.migration:
        conn.run(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.run(f"INSERT INTO {SCHEMA}.schema_migrations (name) VALUES (:name)", name=step.migration)
    if step.repeatable:
        conn.run(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_repeatables ("
            " name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        name, digest = step.repeatable
        conn.run(
            f"INSERT INTO {SCHEMA}.schema_repeatables (name, sha256) VALUES (:name, :sha)"
            " ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
            name=name,
            sha=digest,
        )
    conn.run("COMMIT")


def _rollback(conn: Connection) -> None:
    try:
        conn.run("ROLLBACK")
    except Exception:  # noqa: S110 - nothing was begun, or the connection is gone (the caller sees the error)
        pass


def _drop_if_invalid(conn: Connection, index: platform.PlatformIndex) -> None:
    """An interrupted CREATE INDEX CONCURRENTLY leaves an invalid index, which IF NOT EXISTS would keep."""
    if _index_valid(conn, index) is False:
        conn.run(f"DROP INDEX CONCURRENTLY IF EXISTS public.{index.name}")


def _build_index(conn: Connection, index: platform.PlatformIndex, lock_timeout_ms: int) -> None:
    conn.run(f"SET lock_timeout = {int(lock_timeout_ms)}")
    try:
        _drop_if_invalid(conn, index)
        conn.run(index.create_sql())
    finally:
        conn.run("RESET lock_timeout")


def apply_step(conn: Connection, step: Step, lock_timeout_ms: int = LOCK_TIMEOUT_MS, attempts: int = ATTEMPTS) -> None:
    if step.concurrent_index is not None:
        index = step.concurrent_index

        def cleanup() -> None:
            try:
                conn.run("RESET lock_timeout")
                _drop_if_invalid(conn, index)
            except DatabaseError:
                logger.warning("could not drop an invalid index yet", extra={"index": index.name})

        _with_retries(lambda: _build_index(conn, index, lock_timeout_ms), step.description, attempts, cleanup)
    else:
        _with_retries(
            lambda: _run_in_transaction(conn, step, lock_timeout_ms),
            step.description,
            attempts,
            lambda: _rollback(conn),
        )


def migrate(
    conn: Connection,
    attached: bool = False,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    attempts: int = ATTEMPTS,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Bring the database up to date; returns what was done (empty when it already was). One migrator at a time,
    and building rollups or indexes on a large database takes what it takes (`db.session_lock`)."""
    done, _ = migrate_until(conn, math.inf, attached, lock_timeout_ms, attempts, progress)
    return done


def migrate_until(
    conn: Connection,
    until: float,
    attached: bool = False,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    attempts: int = ATTEMPTS,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[str], bool]:
    """As `migrate`, but starts no step once `time.monotonic()` has passed `until` (after at least one, so that
    every call gets somewhere): (what was done, whether the database is now up to date). Stopping between steps
    loses nothing: each step leaves its mark in the catalog (a migration's or repeatable's row, an index, a grant),
    and the next call plans the rest from there."""
    with session_lock(conn, MIGRATION_LOCK_KEY):
        done: list[str] = []
        steps = plan(conn, attached).steps
        for step in steps:
            if done and time.monotonic() >= until:
                logger.info("migration paused between steps", extra={"done": len(done), "left": len(steps) - len(done)})
                return done, False
            if progress:
                progress(step.description)
            started = time.perf_counter()
            if step.build_rollups:
                finished = build_rollups(conn, until, "migration", progress)
                done.append(step.description)
                if not finished:
                    logger.info("migration paused in the rollups' first build")
                    return done, False
                continue
            apply_step(conn, step, lock_timeout_ms, attempts)
            logger.info(
                "migration step done",
                extra={"step": step.description, "seconds": round(time.perf_counter() - started, 3)},
            )
            done.append(step.description)
        return done, True


def ensure_runtime_login(
    conn: Connection, user: str, password: str, *, settings: Settings | None = None, connection_limit: int | None = None
) -> None:
    """A LOGIN member of activity_runtime and nothing else (the functions' user), with this password, the runtime's
    settings as role defaults (its connections then need no SET: db.Session), and at most `connection_limit`
    connections at once (DB_CONNECTION_LIMIT by default; -1: no limit of its own), so that the service never takes
    the platform's last connections."""
    settings = settings or get_settings()
    limit = settings.db_connection_limit if connection_limit is None else connection_limit
    verb = "ALTER" if _role_exists(conn, user) else "CREATE"
    statement = _scalar(
        conn,
        f"SELECT format('{verb} ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT"
        f" CONNECTION LIMIT {int(limit)} PASSWORD %L', CAST(:u AS text), CAST(:p AS text))",
        u=user,
        p=password,
    )
    conn.run(str(statement))
    conn.run(str(_scalar(conn, f"SELECT format('GRANT {RUNTIME_ROLE} TO %I', CAST(:u AS text))", u=user)))
    for name, value in runtime_session(settings).values().items():
        conn.run(
            str(
                _scalar(
                    conn,
                    f"SELECT format('ALTER ROLE %I SET {name} = %L', CAST(:u AS text), CAST(:v AS text))",
                    u=user,
                    v=value,
                )
            )
        )
