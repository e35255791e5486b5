"""Environment, read once per container through one typed model."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field, field_validator

ROLES = ("superadmin", "admin", "instructional", "member", "guest", "custom")  # profile_roles' CHECK
SCOPES = ("all", "departments", "self")  # widest first
DEFAULT_ROLE_SCOPES = {"all": ["superadmin", "admin"], "departments": ["instructional"]}


class Settings(BaseModel):
    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_reader_host: str | None = None
    db_name: str = "glow"
    db_port: int = 5432
    db_sslrootcert: str | None = None
    db_connect_timeout: float = Field(default=10.0, gt=0)
    db_connect_attempts: int = Field(default=3, ge=1)
    db_statement_timeout_ms: int = Field(default=25_000, ge=0)  # API work; refresh and export lift it
    # Parallel workers per query on the API's connections: 0 = serial plans. An API query is tens of ms;
    # starting workers for it cost more than they saved (docs/PERFORMANCE.md), and under concurrent
    # requests the cores are better spent on other requests. Refresh and export restore the server's default.
    db_parallel_workers: int = Field(default=0, ge=0)
    # The planner's cost of a page read out of order, on the API's connections. PostgreSQL's 4 is for disks;
    # the API's reads find their pages in the buffer cache, and with 4 the planner hashed 60,000 monthly
    # rollup rows for a 1,015-profile department instead of looking its profiles up (get 55 -> 43 ms p50,
    # docs/PERFORMANCE.md). Bulk work (refresh, export) reads whole tables: it restores the server's value.
    db_random_page_cost: float = Field(default=1.1, gt=0)
    export_bucket: str | None = None
    export_url_ttl_seconds: int = Field(default=900, ge=1)  # capped at 3600 below: never more than an hour
    # ~9 s at the 177k rows/s measured on 2 cores: headroom for a 1024 MB Lambda's ~0.6 vCPU (docs/PERFORMANCE.md)
    export_sync_row_budget: int = Field(default=1_500_000, ge=0)
    jwt_secret: str | None = None
    jwt_secret_arn: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Which claim names the caller's profile: the first of these that the token carries (CONTRACT.md).
    jwt_identity_claims: tuple[str, ...] = ("profile_id", "email", "sub")
    # The identity provider's JWKS: how long its keys are trusted before a re-fetch, the least time between two
    # fetches (a token with an unknown `kid` re-fetches at most this often), and how long one fetch may take.
    jwt_jwks_ttl_seconds: float = Field(default=3600, gt=0)
    jwt_jwks_min_fetch_interval_seconds: float = Field(default=60, ge=0)
    jwt_jwks_timeout_seconds: float = Field(default=3, gt=0)
    # role -> scope ('all' | 'departments'); every other role gives 'self'
    role_scopes: dict[str, str] = Field(default_factory=lambda: _role_scope_map(DEFAULT_ROLE_SCOPES))
    refresh_min_interval_seconds: int = Field(default=300, ge=0)
    max_body_bytes: int = 1024 * 1024

    @field_validator("jwt_identity_claims", mode="before")
    @classmethod
    def _claims(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(name.strip() for name in value.split(",") if name.strip())
        unknown = [name for name in value if name not in ("profile_id", "email", "sub")]
        if not value or unknown:
            raise ValueError("JWT_IDENTITY_CLAIMS: a comma-separated list of profile_id, email, sub")
        return value

    @field_validator("role_scopes", mode="before")
    @classmethod
    def _role_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"ROLE_SCOPES is not JSON: {exc}") from None
            return _role_scope_map(value)
        return value

    def scope_of(self, roles: tuple[str, ...] | list[str]) -> str:
        """The widest scope that any of these roles gives ('self' when none gives more)."""
        given = {self.role_scopes.get(role, "self") for role in roles}
        return next(scope for scope in SCOPES if scope in given or scope == "self")

    def roles_with_scope(self, *scopes: str) -> tuple[str, ...]:
        """The platform's roles whose scope is one of these, in the platform's order."""
        return tuple(role for role in ROLES if self.role_scopes.get(role, "self") in scopes)

    @field_validator("export_url_ttl_seconds")
    @classmethod
    def _at_most_an_hour(cls, value: int) -> int:
        return min(value, 3600)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment; tests call `get_settings.cache_clear()` after changing it."""
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if os.environ.get(name.upper())}
    return Settings.model_validate(values)


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
