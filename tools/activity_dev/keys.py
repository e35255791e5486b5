"""API keys for local development and first deployments: only a key's hash is stored, the raw key is printed once."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from glow_activity.auth import hash_api_key


def create_key(conn: Any, profile_id: str | None, name: str = "cli", raw: str | None = None) -> str:
    """A new raw key acting as `profile_id`, or, with None, an application's key (such as the Glow web client's),
    valid only together with a user's Bearer token. `raw` registers a key that already exists elsewhere (the
    client's own constant) instead of making one."""
    raw = raw or "glow_" + secrets.token_urlsafe(32)
    conn.run(
        "INSERT INTO api_keys (id, name, key_hash, profile_id) VALUES (CAST(:id AS uuid), :name, :hash,"
        " CAST(:profile AS uuid))",
        id=str(uuid.uuid4()),
        name=name,
        hash=hash_api_key(raw),
        profile=profile_id,
    )
    return raw
