"""Who is calling: X-Api-Key and/or Bearer JWT, checked against the database.

Permissions always come from the caller's active roles and departments in the database, never from
token claims. Every failure is the same 401, with no hint of which part failed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from .db import Connection
from .errors import Forbidden, Unauthorized
from .settings import Settings, get_settings

ADMIN = "admin"
COORDINATOR = "coordinator"


@dataclass(frozen=True)
class Caller:
    profile_id: str
    roles: tuple[str, ...]
    department_ids: tuple[str, ...]
    api_key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def is_coordinator(self) -> bool:
        return COORDINATOR in self.roles and not self.is_admin

    @property
    def scope(self) -> str:
        """'all' (admin), 'departments' (coordinator) or 'self' (anyone else)."""
        return "all" if self.is_admin else "departments" if self.is_coordinator else "self"

    def require_reader(self) -> None:
        """get, search and export are for admins and coordinators."""
        if self.scope == "self":
            raise Forbidden("Only admins and coordinators may read activity.")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Only admins may do this.")

    def check_department_filter(self, department_ids: list[str]) -> None:
        if self.is_coordinator:
            foreign = sorted(set(department_ids) - set(self.department_ids))
            if foreign:
                raise Forbidden("You may filter only by your own departments.")


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


_CALLER_COLUMNS = """p.id::text,
       ARRAY(SELECT r.role FROM profile_roles r WHERE r.profile_id = p.id AND r.active ORDER BY r.role),
       ARRAY(SELECT d.department_id FROM profile_departments d WHERE d.profile_id = p.id
             ORDER BY d.department_id)"""

_CALLER_SQL = f"""
SELECT {_CALLER_COLUMNS}
FROM profiles p
WHERE p.id = CAST(:profile_id AS uuid) AND p.deleted_at IS NULL
"""

# The key and its holder's permissions in one round trip (the common case: an API key alone).
_API_KEY_SQL = f"""
SELECT k.id::text, {_CALLER_COLUMNS}
FROM api_keys k JOIN profiles p ON p.id = k.profile_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
  AND (k.expires_at IS NULL OR k.expires_at > now()) AND p.deleted_at IS NULL
"""


def load_caller(conn: Connection, profile_id: str, api_key_id: str | None) -> Caller:
    rows = conn.run(_CALLER_SQL, profile_id=profile_id)
    if not rows:
        raise Unauthorized()
    pid, roles, departments = rows[0]
    return Caller(pid, tuple(roles or ()), tuple(departments or ()), api_key_id)


def _api_key_caller(conn: Connection, raw_key: str) -> Caller:
    if not raw_key or len(raw_key) > 512:
        raise Unauthorized()
    rows = conn.run(_API_KEY_SQL, key_hash=hash_api_key(raw_key))
    if not rows:
        raise Unauthorized()
    key_id, pid, roles, departments = rows[0]
    return Caller(pid, tuple(roles or ()), tuple(departments or ()), key_id)


@lru_cache(maxsize=1)
def _jwt_secret(secret: str | None, secret_arn: str | None) -> str | None:
    if secret:
        return secret
    if secret_arn:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(secret_arn, max_age=3600))
    return None


@lru_cache(maxsize=1)
def _jwks_client(url: str) -> Any:
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600)


def _token_subject(token: str, settings: Settings) -> str:
    import jwt  # only Bearer callers pay for this import

    options: Any = {
        "require": ["exp", "sub"],
        "verify_aud": bool(settings.jwt_audience),
        "verify_iss": bool(settings.jwt_issuer),
    }
    try:
        if settings.jwt_jwks_url:
            key: Any = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
            algorithms = ["RS256"]
        else:
            key = _jwt_secret(settings.jwt_secret, settings.jwt_secret_arn)
            algorithms = ["HS256"]
            if not key:
                raise Unauthorized()
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options=options,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=5,
        )
        return str(UUID(str(claims["sub"])))
    except Unauthorized:
        raise
    except Exception:
        raise Unauthorized() from None


def authenticate(conn: Connection, headers: dict[str, str]) -> Caller:
    """The caller of a request whose header names are lower-case (as API Gateway v2 sends them)."""
    raw_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if raw_key is None and authorization is None:
        raise Unauthorized()
    key_caller = _api_key_caller(conn, raw_key.strip()) if raw_key is not None else None
    if authorization is None:
        assert key_caller is not None
        return key_caller
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    # with both headers, both must be valid and the token names the caller
    key_id = key_caller.api_key_id if key_caller is not None else None
    return load_caller(conn, _token_subject(token.strip(), get_settings()), key_id)
