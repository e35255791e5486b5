"""What an operator does to a deployed stack's database without a bastion: the migration function (the only one
with the master or migration credentials) runs these when invoked with `{"command": ...}` (`aws lambda invoke`,
`sam remote invoke`, or `activity operator ...`, which does that). IAM decides who may: invoking the function.

- `plan`: what `activity db migrate --plan` prints.
- `bootstrap`: the first admin of a standalone stack (a profile with the `admin` role, or an existing one by
  e-mail) and an API key for it.
- `create-key`: a key for a live profile (by id or e-mail); `app-key`: an application's key (no profile; valid
  only with a user's token), new or an existing one registered; `revoke-key`: revoke one by id.

The platform's tables are the platform's: on an attached database (`DB_ATTACHED=true`) Glow issues profiles and
keys, so only `plan` runs there. A raw key is returned once and stored only as its hash.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from .auth import hash_api_key, live_profiles_with_email
from .db import Connection, transaction
from .migrate import plan

WRITES_PLATFORM = frozenset({"bootstrap", "create-key", "app-key", "revoke-key"})
COMMANDS = ("plan", *sorted(WRITES_PLATFORM))


class OperatorError(Exception):
    """A command that cannot be done as asked, in words for the operator."""


def new_raw_key() -> str:
    return "glow_" + secrets.token_urlsafe(32)


def insert_key(conn: Connection, profile_id: str | None, name: str, raw: str | None = None) -> tuple[str, str]:
    """A key acting as `profile_id`, or with None an application's key; `raw` registers a key that exists
    elsewhere (the Glow web client's own constant). Returns (key id, raw key)."""
    raw = raw or new_raw_key()
    key_id = str(uuid.uuid4())
    if conn.run("SELECT 1 FROM api_keys WHERE key_hash = :h", h=hash_api_key(raw)):
        raise OperatorError("That key is registered already.")
    conn.run(
        "INSERT INTO api_keys (id, name, key_hash, profile_id) VALUES (CAST(:id AS uuid), :name, :hash,"
        " CAST(:profile AS uuid))",
        id=key_id,
        name=name,
        hash=hash_api_key(raw),
        profile=profile_id,
    )
    return key_id, raw


def _profile(conn: Connection, event: dict[str, Any]) -> str:
    if event.get("profile_id"):
        try:
            profile_id = str(uuid.UUID(str(event["profile_id"])))
        except ValueError:
            raise OperatorError("profile_id must be a profile's uuid.") from None
        found = [
            str(r[0])
            for r in conn.run(
                "SELECT id::text FROM profiles WHERE id = CAST(:id AS uuid) AND deleted_at IS NULL", id=profile_id
            )
        ]
    elif event.get("email"):
        found = live_profiles_with_email(conn, str(event["email"]))
        if len(found) > 1:
            raise OperatorError("More than one live profile has that e-mail; name the profile by profile_id.")
    else:
        raise OperatorError("Name the profile: profile_id or email.")
    if not found:
        raise OperatorError("No live profile matches.")
    return found[0]


def _bootstrap(conn: Connection, event: dict[str, Any]) -> dict[str, Any]:
    email = str(event.get("email") or "").strip()
    if not email:
        raise OperatorError("bootstrap needs the first admin's email (and a name).")
    with transaction(conn):
        existing = live_profiles_with_email(conn, email)
        created = not existing
        profile_id = existing[0] if existing else str(uuid.uuid4())
        if created:
            conn.run(
                "INSERT INTO profiles (id, name, email) VALUES (CAST(:id AS uuid), :name, :email)",
                id=profile_id,
                name=str(event.get("name") or email),
                email=email,
            )
        conn.run(
            "INSERT INTO profile_roles (profile_id, role, active) VALUES (CAST(:id AS uuid), 'admin', true)"
            " ON CONFLICT (profile_id, role) DO UPDATE SET active = true",
            id=profile_id,
        )
        key_id, raw = insert_key(conn, profile_id, str(event.get("key_name") or "bootstrap"))
    return {"profile_id": profile_id, "profile_created": created, "key_id": key_id, "api_key": raw}


def run_command(conn: Connection, event: dict[str, Any], attached: bool) -> dict[str, Any]:
    command = event.get("command")
    if command not in COMMANDS:
        raise OperatorError(f"Unknown command {command!r}; one of: {', '.join(COMMANDS)}.")
    if command == "plan":
        return {"plan": plan(conn, attached).lines()}
    if attached:
        raise OperatorError(
            f"{command} writes the platform's profiles or keys, which Glow issues on an attached database; "
            "only plan runs here."
        )
    if command == "bootstrap":
        return _bootstrap(conn, event)
    if command == "create-key":
        with transaction(conn):
            key_id, raw = insert_key(conn, _profile(conn, event), str(event.get("name") or "operator"))
        return {"key_id": key_id, "api_key": raw}
    if command == "app-key":
        with transaction(conn):
            key_id, raw = insert_key(conn, None, str(event.get("name") or "glow-web"), event.get("key"))
        return {"key_id": key_id, "api_key": raw}
    # revoke-key
    try:
        key_id = str(uuid.UUID(str(event.get("key_id"))))
    except ValueError:
        raise OperatorError("revoke-key needs key_id, the key's uuid.") from None
    rows = conn.run(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = CAST(:id AS uuid)"
        " RETURNING id::text, revoked_at",
        id=key_id,
    )
    if not rows:
        raise OperatorError("No key has that id.")
    return {"key_id": rows[0][0], "revoked_at": rows[0][1].isoformat()}
