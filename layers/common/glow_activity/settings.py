"""Environment, read once per container through one typed model."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field, field_validator


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
    max_body_bytes: int = 1024 * 1024

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
