"""Database access: one lazy pg8000 connection per container and role, re-opened after a failure.

`DATABASE_URL` (local, tests) wins; in AWS the host, name and RDS-managed secret come from
`DB_HOST`/`DB_READER_HOST`/`DB_NAME`/`DB_SECRET_ARN`, always over TLS.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.native
from pg8000.converters import date_in, timestamptz_in
from pg8000.exceptions import DatabaseError, InterfaceError
from pg8000.native import Connection

from .errors import ServiceUnavailable
from .observability import logger
from .settings import Settings, get_settings

# pg8000 translates a statement's :name placeholders on every run, with a per-character loop in Python
# (~0.3 ms for search's statement, ~1 ms for get's); the translation depends on the text alone, and the
# service has a few dozen statement shapes.
pg8000.native.to_statement = functools.lru_cache(maxsize=512)(pg8000.native.to_statement)  # type: ignore[assignment]

# SQLSTATE classes that mean "the server is not there for us right now", not "your SQL is wrong".
TOO_MANY_CONNECTIONS = "53300"
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", TOO_MANY_CONNECTIONS)


@dataclass(frozen=True)
class ConnectParams:
    user: str
    password: str | None
    database: str
    host: str | None = None
    port: int = 5432
    unix_sock: str | None = None
    ssl_context: ssl.SSLContext | bool | None = None
    timeout: float = 10.0
    application_name: str = "glow-activity"

    def kwargs(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "timeout": self.timeout,
            "application_name": self.application_name,
        }
        if self.unix_sock:
            args["unix_sock"] = self.unix_sock
        else:
            args.update(host=self.host, port=self.port)
        if self.ssl_context is not None:
            args["ssl_context"] = self.ssl_context
        return args


def params_from_url(url: str, timeout: float = 10.0) -> ConnectParams:
    """Parse a libpq-style URL, including `?host=/socket/dir` for a Unix socket (the embedded server)."""
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    host = query.get("host") or parsed.hostname
    port = parsed.port or int(query.get("port", 5432))
    unix_sock = f"{host}/.s.PGSQL.{port}" if host and host.startswith("/") else None
    # pg8000: None tries TLS and falls back (what libpq calls prefer), False never tries it. Without False a
    # local connection loaded the system's CA bundle (~50 ms of every cold start) to be told "no".
    ssl_context: ssl.SSLContext | bool | None = None
    sslmode = query.get("sslmode", "disable" if unix_sock or host in ("localhost", "127.0.0.1") else "prefer")
    if sslmode == "disable":
        ssl_context = False
    elif sslmode in ("require", "verify-ca", "verify-full"):
        ssl_context = ssl.create_default_context(cafile=query.get("sslrootcert"))
        if sslmode == "require":
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
    return ConnectParams(
        user=unquote(parsed.username or query.get("user", "postgres")),
        password=unquote(parsed.password) if parsed.password else query.get("password"),
        database=(parsed.path or "/postgres").lstrip("/") or "postgres",
        host=None if unix_sock else (host or "localhost"),
        port=port,
        unix_sock=unix_sock,
        ssl_context=ssl_context,
        timeout=timeout,
    )


def read_secret(arn: str) -> dict[str, Any]:
    """A database secret's JSON ({username, password, ...}), cached for an hour per container."""
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(arn, max_age=3600)
    return json.loads(secret) if isinstance(secret, str) else dict(secret)


def _aws_params(settings: Settings, host: str) -> ConnectParams:
    creds = read_secret(settings.db_secret_arn or "")
    if not settings.db_sslrootcert or not os.path.exists(settings.db_sslrootcert):
        logger.error("RDS CA bundle missing; see README 'Deploy to AWS'", extra={"path": settings.db_sslrootcert})
        raise ServiceUnavailable("The database is not configured.")
    context = ssl.create_default_context(cafile=settings.db_sslrootcert)  # verify-full against the RDS CA
    return ConnectParams(
        user=creds["username"],
        password=creds["password"],
        database=settings.db_name,
        host=host,
        port=settings.db_port,
        ssl_context=context,
        timeout=settings.db_connect_timeout,
    )


def connect_params(settings: Settings, *, reader: bool = False) -> ConnectParams:
    if settings.database_url:
        return params_from_url(settings.database_url, settings.db_connect_timeout)
    host = (settings.db_reader_host if reader else None) or settings.db_host
    if not host or not settings.db_secret_arn:
        raise ServiceUnavailable("The database is not configured.")
    return _aws_params(settings, host)


@dataclass(frozen=True)
class Session:
    """A connection's settings. The functions' LOGIN user carries them as role defaults (`ALTER ROLE ... SET`, set by
    whoever creates that user: `migrate.ensure_runtime_login`), so that its connections need no `SET` and carry no
    session state (docs/DECISIONS.md, "Connections without session state"); every other connection sets them."""

    statement_timeout_ms: int = 0
    parallel_workers: int | None = None
    random_page_cost: float | None = None
    work_mem_mb: int | None = None
    # A transaction left open and idle (a client that died between two statements) is ended after this long, so that
    # it never holds back vacuum on the platform's tables. 0: never.
    idle_in_transaction_timeout_ms: int = 0

    def values(self) -> dict[str, str]:
        """Setting -> value, as `SET` and `ALTER ROLE ... SET` take them."""
        values = {"TimeZone": "UTC", "search_path": "public", "statement_timeout": str(int(self.statement_timeout_ms))}
        if self.parallel_workers is not None:
            values["max_parallel_workers_per_gather"] = str(int(self.parallel_workers))
        if self.random_page_cost is not None:
            values["random_page_cost"] = str(float(self.random_page_cost))
        if self.work_mem_mb is not None:
            values["work_mem"] = f"{int(self.work_mem_mb)}MB"
        if self.idle_in_transaction_timeout_ms:
            values["idle_in_transaction_session_timeout"] = str(int(self.idle_in_transaction_timeout_ms))
        return values

    def set_sql(self) -> str:
        # The platform's tables are named plainly and live in public; the service's own are always written
        # activity.<name>. A pinned search_path keeps a schema named after the login user out of the way.
        return "; ".join(f"SET {name} = '{value}'" for name, value in self.values().items())


def runtime_session(settings: Settings) -> Session:
    """The functions' settings (the role defaults of their LOGIN user)."""
    return Session(
        statement_timeout_ms=settings.db_statement_timeout_ms,
        parallel_workers=settings.db_parallel_workers,
        random_page_cost=settings.db_random_page_cost,
        work_mem_mb=settings.db_work_mem_mb,
        idle_in_transaction_timeout_ms=IDLE_IN_TRANSACTION_TIMEOUT_MS,
    )


IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000


def has_role_defaults(conn: Connection) -> bool:
    """Whether this connection's role carries the runtime's settings as defaults, read from what the server reported
    at startup (no round trip): a user made by `ensure_runtime_login` starts in UTC and is never a superuser. Any
    other user (a developer's own superuser in DATABASE_URL, a server whose time zone is not UTC) sets them."""
    statuses = conn.parameter_statuses
    return statuses.get("TimeZone") == "UTC" and statuses.get("is_superuser") == "off"


def open_connection(
    params: ConnectParams,
    attempts: int = 1,
    statement_timeout_ms: int = 0,
    parallel_workers: int | None = None,
    random_page_cost: float | None = None,
    *,
    session: Session | None = None,
    role_defaults: bool = False,
) -> Connection:
    """Connect, retrying with backoff (an Aurora cluster resuming from 0 ACU takes ~15-30 s). The session's settings
    are SET in one round trip, unless `role_defaults` says the login carries them (and the server confirms it)."""
    session = session or Session(statement_timeout_ms, parallel_workers, random_page_cost)
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            conn = pg8000.native.Connection(**params.kwargs())
            # pg8000's timeout is the socket's for every read; it is meant for connecting only. Long work is
            # bounded by statement_timeout on the server instead.
            conn._usock.settimeout(None)
            _register_fast_parsers(conn)
            if not (role_defaults and has_role_defaults(conn)):
                conn.run(session.set_sql())  # one round trip (simple protocol)
            return conn
        except (InterfaceError, OSError, DatabaseError) as exc:
            # the role's CONNECTION LIMIT is spent (53300): a retry would only add to the storm; fail fast, shed load
            if attempt == attempts or not is_unavailable(exc) or _sqlstate(exc) == TOO_MANY_CONNECTIONS:
                raise ServiceUnavailable() from exc
            logger.warning(
                "database connect failed, retrying",
                extra={"attempt": attempt, "error": type(exc).__name__, "sqlstate": _sqlstate(exc)},
            )
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
    raise ServiceUnavailable()  # pragma: no cover - loop always returns or raises


_TIMESTAMPTZ_OID, _DATE_OID = 1184, 1082


def _fast_timestamptz(text: str) -> datetime | str:
    """pg8000 parses with strptime (~15 µs a value); `fromisoformat` reads PostgreSQL's ISO output in ~0.2 µs.
    Infinities, BC dates and years past 9999 fall through to pg8000's own parser."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return timestamptz_in(text)  # type: ignore[no-any-return]


def _fast_date(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return date_in(text)  # type: ignore[no-any-return]


def _register_fast_parsers(conn: Connection) -> None:
    conn.register_in_adapter(_TIMESTAMPTZ_OID, _fast_timestamptz)
    conn.register_in_adapter(_DATE_OID, _fast_date)


class _PerContainer(threading.local):
    """Lambda runs one invocation at a time per container; a thread here stands for one container."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}


_state = _PerContainer()


def connection(*, reader: bool = False, owner: bool = False) -> Connection:
    """The container's connection (reader endpoint for read-only work when one is configured). `owner`: the migration
    function's, as the master or migration user, with no statement timeout (building an index takes what it takes)."""
    settings = get_settings()
    role = (
        "owner" if owner else "reader" if reader and settings.db_reader_host and not settings.database_url else "writer"
    )
    conn = _state.connections.get(role)
    if conn is None:
        conn = open_connection(
            connect_params(settings, reader=role == "reader"),
            settings.db_connect_attempts,
            session=Session() if owner else runtime_session(settings),
            role_defaults=not owner,
        )
        _state.connections[role] = conn
    return conn


def reset_connections() -> None:
    """Drop every cached connection; the next `connection()` opens a fresh one."""
    for conn in list(_state.connections.values()):
        discard(conn)


def discard(conn: Connection) -> None:
    """Close `conn` and forget it, when nothing more can be said on it: its socket failed, or a statement was
    left midway (a COPY whose reader stopped still has its rows on the wire). The next `connection()` opens
    a fresh one."""
    for role, cached in list(_state.connections.items()):
        if cached is conn:
            del _state.connections[role]
    try:
        conn.close()
    except Exception:  # noqa: S110 - a broken socket may not close cleanly; it is dropped anyway
        pass


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (InterfaceError, OSError, ServiceUnavailable)):
        return True
    code = _sqlstate(exc)
    return bool(code) and code.startswith(_UNAVAILABLE_SQLSTATES)


def _sqlstate(exc: BaseException) -> str:
    """The SQLSTATE the server reported with `exc` ("" when it is not a server's error)."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("C", ""))
    return ""


def is_statement_timeout(exc: BaseException) -> bool:
    """A statement cancelled by statement_timeout (SQLSTATE 57014): the work was refused, nothing of it was kept."""
    return _sqlstate(exc) == "57014"


@contextmanager
def _begun(conn: Connection, begin: str) -> Iterator[list[list[Any]] | None]:
    """Run `begin` (a BEGIN, maybe followed by a first query), yield its rows; COMMIT after the block, ROLLBACK
    when it raises."""
    rows = conn.run(begin)
    try:
        yield rows
    except BaseException:
        try:
            conn.run("ROLLBACK")
        except Exception:  # noqa: S110 - the connection itself may be gone; the caller resets it
            pass
        raise
    conn.run("COMMIT")


@contextmanager
def read_snapshot(conn: Connection, first_query: str) -> Iterator[list[list[Any]]]:
    """A REPEATABLE READ, READ ONLY transaction begun in the same round trip as its first query, whose rows
    are yielded. `first_query` takes no parameters (the simple protocol carries both statements)."""
    with _begun(conn, f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {first_query}") as rows:
        yield rows or []


# The API's connections are set for short reads over cached pages (settings.db_parallel_workers and
# db_random_page_cost, the runtime role's defaults); bulk work (refresh, export) reads whole tables and takes
# PostgreSQL's own planner values for its transaction. Written out, not `TO DEFAULT`: that would be the role's.
BULK_PLANNER_SQL = "SET LOCAL max_parallel_workers_per_gather = 2; SET LOCAL random_page_cost = 4"


class LockNotAvailable(Exception):
    """Another session holds the lock, and waiting for it would take longer than allowed."""


_LOCK_NOT_AVAILABLE = "55P03"


def take_session_lock(conn: Connection, key: int, *, wait_seconds: float | None = None) -> bool:
    """Take the session advisory lock `key`: at once or not at all (`wait_seconds=0`: True or False), waiting at most
    `wait_seconds` (LockNotAvailable past it), or as long as it takes (None). The wait's lock_timeout and the lifted
    statement timeout are the transaction's own (SET LOCAL), so the connection carries no setting afterwards; the
    lock itself stays the session's until `release_session_lock` (or the connection's end)."""
    key = int(key)
    if wait_seconds == 0:
        return bool(conn.run("SELECT pg_try_advisory_lock(:key)", key=key)[0][0])
    lock_timeout_ms = 0 if wait_seconds is None else max(1, int(wait_seconds * 1000))
    try:
        conn.run(
            f"BEGIN; SET LOCAL lock_timeout = {lock_timeout_ms}; SET LOCAL statement_timeout = 0;"
            f" SELECT pg_advisory_lock({key}); COMMIT"
        )
    except DatabaseError as exc:
        _rollback_quietly(conn)
        if exc.args and isinstance(exc.args[0], dict) and exc.args[0].get("C") == _LOCK_NOT_AVAILABLE:
            raise LockNotAvailable() from None
        raise
    return True


def release_session_lock(conn: Connection, key: int) -> None:
    try:
        conn.run("SELECT pg_advisory_unlock(:key)", key=int(key))
    except Exception:  # noqa: S110 - a dead connection has released the lock already
        pass


def _rollback_quietly(conn: Connection) -> None:
    try:
        conn.run("ROLLBACK")
    except Exception:  # noqa: S110 - nothing was begun, or the connection is gone (the caller sees the error)
        pass


@contextmanager
def session_lock(conn: Connection, key: int, *, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the session advisory lock `key` for the block (`take_session_lock` says how long it may wait). Released
    here, or by PostgreSQL when the connection dies. Long work under it sets its own statement timeout."""
    take_session_lock(conn, key, wait_seconds=wait_seconds)
    try:
        yield
    finally:
        release_session_lock(conn, key)


@contextmanager
def transaction(conn: Connection, isolation: str | None = None, read_only: bool = False) -> Iterator[Connection]:
    mode = " ISOLATION LEVEL " + isolation if isolation else ""
    mode += " READ ONLY" if read_only else ""
    with _begun(conn, "BEGIN" + mode):
        yield conn
