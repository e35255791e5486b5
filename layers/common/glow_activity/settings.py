"""Environment, read once per container into one typed, frozen dataclass."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ROLES = ("superadmin", "admin", "instructional", "member", "guest", "custom")  # profile_roles' CHECK
SCOPES = ("all", "departments", "self")  # widest first
DEFAULT_ROLE_SCOPES = {"all": ["superadmin", "admin"], "departments": ["instructional"]}


@dataclass(frozen=True)
class Settings:
    """The environment's settings: each field is read from the variable of its name in upper case
    (`from_environ`), checked by its reader in `_READERS`. A plain dataclass, not a pydantic model: one reader per
    variable says plainly what each accepts, and it costs the import nothing (docs/DECISIONS.md)."""

    database_url: str | None = None
    db_secret_arn: str | None = None
    # Only the migration function has these: whether the database is the platform's own (attached: its tables are
    # never created or altered), and the secret of the functions' LOGIN user, whose password it sets.
    db_attached: bool = False
    db_runtime_secret_arn: str | None = None
    db_host: str | None = None
    db_reader_host: str | None = None
    db_name: str = "glow"
    db_port: int = 5432
    db_sslrootcert: str | None = None
    db_connect_timeout: float = 10.0  # > 0
    db_connect_attempts: int = 3  # >= 1
    db_statement_timeout_ms: int = 25_000  # >= 0; API work; refresh and export lift it
    # Parallel workers per query on the API's connections: 0 = serial plans. An API query is tens of ms;
    # starting workers for it cost more than they saved (docs/PERFORMANCE.md), and under concurrent
    # requests the cores are better spent on other requests. Refresh and export restore the server's default.
    db_parallel_workers: int = 0  # >= 0
    # The planner's cost of a page read out of order, on the API's connections. PostgreSQL's 4 is for disks;
    # the API's reads find their pages in the buffer cache, and with 4 the planner hashed 60,000 monthly
    # rollup rows for a 1,015-profile department instead of looking its profiles up (get 55 -> 43 ms p50,
    # docs/PERFORMANCE.md). Bulk work (refresh, export) reads whole tables: it restores the server's value.
    db_random_page_cost: float = 1.1  # > 0
    # Memory each sort or hash of an API query may take before it spills to disk, on the API's connections (MB).
    # PostgreSQL's 4 MB spilled an admin's window at ten times Glow's size: a per-profile aggregate of 200,000
    # profiles and the join of their running totals hold about 30 MB (docs/PERFORMANCE.md). A limit, not an
    # allocation: a coordinator's read takes what its few hundred profiles need.
    db_work_mem_mb: int = 64  # >= 1
    export_bucket: str | None = None
    export_url_ttl_seconds: int = 900  # >= 1, capped at 3600: never more than an hour
    # ~9 s at the 177k rows/s measured on 2 cores: headroom for a 1024 MB Lambda's ~0.6 vCPU (docs/PERFORMANCE.md)
    export_sync_row_budget: int = 1_500_000  # >= 0
    # How a large export reaches its asynchronous half: "lambda" (the function invokes itself; the template sets it)
    # or "thread" (a background thread: make dev and the tests).
    export_async: str = "thread"
    jwt_secret: str | None = None
    jwt_secret_arn: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    # One or more audiences (comma-separated): a token's `aud` must name one of them (an access token minted for the
    # MCP resource and an id token minted for the web client can both be valid).
    jwt_audience: tuple[str, ...] = ()
    # Which claim names the caller's profile: the first of these that the token carries (CONTRACT.md).
    jwt_identity_claims: tuple[str, ...] = ("profile_id", "email", "sub")
    # The scopes an agent host asks Glow's Keycloak for (the MCP resource's protected-resource metadata); none: omitted.
    mcp_scopes: tuple[str, ...] = ()
    # The identity provider's JWKS: how long its keys are trusted before a re-fetch, the least time between two
    # fetches (a token with an unknown `kid` re-fetches at most this often), and how long one fetch may take.
    jwt_jwks_ttl_seconds: float = 3600  # > 0
    jwt_jwks_min_fetch_interval_seconds: float = 60  # >= 0
    jwt_jwks_timeout_seconds: float = 3  # > 0
    # role -> scope ('all' | 'departments'); every other role gives 'self'
    role_scopes: dict[str, str] = field(default_factory=lambda: _role_scope_map(DEFAULT_ROLE_SCOPES))
    refresh_min_interval_seconds: int = 300  # >= 0
    # How long an admin's refresh waits for one already running before it answers 503 (inside the gateway's 30 s).
    refresh_wait_seconds: float = 20  # >= 0
    # A refresh is cancelled past this (0: never), inside the refresh function's 300 s timeout: a refresh that
    # outlived its function could never commit, and would only hold the lock and the database.
    refresh_statement_timeout_ms: int = 280_000  # >= 0
    max_body_bytes: int = 1024 * 1024  # >= 1
    # Requests one caller (a profile) may have served in any 60 seconds, across every function and container;
    # 0 turns the limit off.
    caller_requests_per_minute: int = 600  # >= 0
    # Exports running at once in the whole service (one per caller in any case).
    export_max_running: int = 4  # >= 1
    # An asynchronous export is cancelled past this (0: never), inside its function's 900 s timeout; a synchronous
    # one keeps the API's DB_STATEMENT_TIMEOUT_MS.
    export_statement_timeout_ms: int = 840_000  # >= 0
    # The migration function sets these on the functions' LOGIN user (ALTER ROLE ... CONNECTION LIMIT / SET).
    db_connection_limit: int = -1  # -1: no limit of the role's own
    # The migration function starts no migration step with less than this left of its invocation (the longest step
    # expected: an index on the largest table); the rest goes on in a fresh invocation.
    migration_step_margin_seconds: float = 300  # >= 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings that `environ` sets (a variable set to "" is unset); ValueError naming the variable when
        one is not valid, so that the container's start fails instead of every request."""
        values: dict[str, Any] = {}
        for name, read in _READERS.items():
            raw = environ.get(name.upper())
            if raw:
                try:
                    values[name] = read(raw)
                except ValueError as exc:
                    message = str(exc)
                    raise ValueError(
                        message if message.startswith(name.upper()) else f"{name.upper()}: {message}"
                    ) from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """What no single variable says alone: a JWKS signs tokens for every client of its realm, so a token is
        trusted only with the issuer and an audience of ours named (CONTRACT.md, Authentication)."""
        if self.jwt_jwks_url:
            missing = [
                name
                for name, value in (("JWT_ISSUER", self.jwt_issuer), ("JWT_AUDIENCE", self.jwt_audience))
                if not value
            ]
            if missing:
                raise ValueError(
                    f"JWT_JWKS_URL is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                    "a realm signs tokens for many clients, and one issued to another of them must not pass"
                )

    def scope_of(self, roles: tuple[str, ...] | list[str]) -> str:
        """The widest scope that any of these roles gives ('self' when none gives more)."""
        given = {self.role_scopes.get(role, "self") for role in roles}
        return next(scope for scope in SCOPES if scope in given or scope == "self")

    def roles_with_scope(self, *scopes: str) -> tuple[str, ...]:
        """The platform's roles whose scope is one of these, in the platform's order."""
        return tuple(role for role in ROLES if self.role_scopes.get(role, "self") in scopes)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment; tests call `get_settings.cache_clear()` after changing it."""
    return Settings.from_environ(os.environ)


def _number(
    kind: Callable[[str], Any], *, above: float | None = None, least: float | None = None
) -> Callable[[str], Any]:
    def read(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not {'an integer' if kind is int else 'a number'}") from None
        if above is not None and not value > above:
            raise ValueError(f"must be greater than {above:g}, not {raw}")
        if least is not None and not value >= least:
            raise ValueError(f"must be at least {least:g}, not {raw}")
        return value

    return read


def _flag(raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise ValueError(f"must be true or false, not {raw!r}")
    return raw.lower() == "true"


def _choice(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _names(raw: str, variable: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise ValueError(f"{variable}: a comma-separated list of names")
    return names


def _identity_claims(raw: str) -> tuple[str, ...]:
    claims = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not claims or any(name not in ("profile_id", "email", "sub") for name in claims):
        raise ValueError("a comma-separated list of profile_id, email, sub")
    return claims


def _role_scopes(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"ROLE_SCOPES is not JSON: {exc}") from None  # (the message names its variable)
    return _role_scope_map(value)


# How each setting is read from its environment variable (the dataclass's fields, every one).
_READERS: dict[str, Callable[[str], Any]] = {
    "database_url": str,
    "db_secret_arn": str,
    "db_attached": lambda raw: _flag(raw),
    "db_runtime_secret_arn": str,
    "db_host": str,
    "db_reader_host": str,
    "db_name": str,
    "db_port": _number(int, least=1),
    "db_sslrootcert": str,
    "db_connect_timeout": _number(float, above=0),
    "db_connect_attempts": _number(int, least=1),
    "db_statement_timeout_ms": _number(int, least=0),
    "db_parallel_workers": _number(int, least=0),
    "db_random_page_cost": _number(float, above=0),
    "db_work_mem_mb": _number(int, least=1),
    "export_bucket": str,
    "export_url_ttl_seconds": lambda raw: min(_number(int, least=1)(raw), 3600),
    "export_sync_row_budget": _number(int, least=0),
    "export_async": lambda raw: _choice(raw, ("lambda", "thread")),
    "jwt_secret": str,
    "jwt_secret_arn": str,
    "jwt_jwks_url": str,
    "jwt_issuer": str,
    "jwt_audience": lambda raw: _names(raw, "JWT_AUDIENCE"),
    "jwt_identity_claims": _identity_claims,
    "mcp_scopes": lambda raw: _names(raw, "MCP_SCOPES"),
    "jwt_jwks_ttl_seconds": _number(float, above=0),
    "jwt_jwks_min_fetch_interval_seconds": _number(float, least=0),
    "jwt_jwks_timeout_seconds": _number(float, above=0),
    "role_scopes": _role_scopes,
    "refresh_min_interval_seconds": _number(int, least=0),
    "refresh_wait_seconds": _number(float, least=0),
    "refresh_statement_timeout_ms": _number(int, least=0),
    "max_body_bytes": _number(int, least=1),
    "caller_requests_per_minute": _number(int, least=0),
    "migration_step_margin_seconds": _number(float, least=0),
    "export_max_running": _number(int, least=1),
    "export_statement_timeout_ms": _number(int, least=0),
    "db_connection_limit": _number(int, least=-1),
}


def _role_scope_map(value: Any) -> dict[str, str]:
    """ROLE_SCOPES' `{"all": [roles], "departments": [roles]}` as role -> scope. Anything else is refused,
    so that a typo fails the container's start instead of silently narrowing (or widening) who sees what."""
    if not isinstance(value, dict) or set(value) - {"all", "departments"}:
        raise ValueError('ROLE_SCOPES must be an object with keys "all" and/or "departments"')
    mapping: dict[str, str] = {}
    for scope in ("all", "departments"):
        roles = value.get(scope, [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise ValueError(f"ROLE_SCOPES.{scope} must be a list of role names")
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"ROLE_SCOPES names {role!r}, which is not one of the platform's roles {ROLES}")
            if role in mapping:
                raise ValueError(f"ROLE_SCOPES gives {role!r} two scopes")
            mapping[role] = scope
    return mapping
