"""API keys for local development: only a key's hash is stored, the raw key is printed once."""

from __future__ import annotations

from typing import Any

from glow_activity.operator import insert_key


def create_key(conn: Any, profile_id: str | None, name: str = "cli", raw: str | None = None) -> str:
    """A new raw key acting as `profile_id`, or, with None, an application's key (such as the Glow web client's),
    valid only together with a user's Bearer token. `raw` registers a key that already exists elsewhere (the
    client's own constant) instead of making one."""
    return insert_key(conn, profile_id, name, raw)[1]
