"""Who is calling: X-Api-Key and/or Bearer JWT, checked against the database.

Permissions always come from the caller's active roles and departments in the database (their scope through
ROLE_SCOPES), never from token claims. A request without credentials and one whose credentials fail get two
different 401 messages, never a hint of which part failed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from .db import Connection
from .errors import Forbidden, InvalidCredentials, Unauthorized
from .jwks import JwksKeys
from .settings import Settings, get_settings


@dataclass(frozen=True)
class Caller:
    profile_id: str
    roles: tuple[str, ...]
    department_ids: tuple[str, ...]
    api_key_id: str | None = None
    scope: str = "self"  # 'all' (admin), 'departments' (coordinator) or 'self', from ROLE_SCOPES

    @property
    def is_admin(self) -> bool:
        return self.scope == "all"

    @property
    def is_coordinator(self) -> bool:
        return self.scope == "departments"

    def require_reader(self, action: str = "Reading activity") -> None:
        """get, search, export and resolve are for admins and coordinators."""
        if self.scope == "self":
            raise Forbidden(f"{action} needs an admin or coordinator role (instructional staff).")

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

# At most two rows, so that an e-mail shared by two profiles is told apart from one that names exactly one.
_CALLER_BY_ID_SQL = f"""
SELECT {_CALLER_COLUMNS}
FROM profiles p
WHERE p.id = CAST(:profile_id AS uuid) AND p.deleted_at IS NULL
"""
_CALLER_BY_EMAIL_SQL = f"""
SELECT {_CALLER_COLUMNS}
FROM profiles p
WHERE lower(p.email) = lower(:email) AND p.deleted_at IS NULL
LIMIT 2
"""

# The key and its holder's permissions in one round trip (the common case: an API key alone). An application's
# key has no holder: its profile columns are NULL.
_API_KEY_SQL = f"""
SELECT k.id::text, {_CALLER_COLUMNS}
FROM api_keys k LEFT JOIN profiles p ON p.id = k.profile_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
  AND (k.expires_at IS NULL OR k.expires_at > now())
  AND (k.profile_id IS NULL OR p.deleted_at IS NULL)
"""


def _caller(row: list[Any], api_key_id: str | None) -> Caller:
    pid, roles, departments = row
    roles = tuple(roles or ())
    return Caller(pid, roles, tuple(departments or ()), api_key_id, get_settings().scope_of(roles))


def load_caller(conn: Connection, profile_id: str, api_key_id: str | None) -> Caller:
    rows = conn.run(_CALLER_BY_ID_SQL, profile_id=profile_id)
    if not rows:
        raise Unauthorized()
    return _caller(rows[0], api_key_id)


def _caller_by_email(conn: Connection, email: str, api_key_id: str | None) -> Caller:
    """The one non-deleted profile with this e-mail, in any letter case; none or several: 401."""
    rows = conn.run(_CALLER_BY_EMAIL_SQL, email=email)
    if len(rows) != 1:
        raise Unauthorized()
    return _caller(rows[0], api_key_id)


def _api_key(conn: Connection, raw_key: str) -> tuple[str, Caller | None]:
    """The key's id and the profile it acts as (None for an application's key)."""
    if not raw_key or len(raw_key) > 512:
        raise Unauthorized()
    rows = conn.run(_API_KEY_SQL, key_hash=hash_api_key(raw_key))
    if not rows:
        raise Unauthorized()
    key_id, pid = rows[0][0], rows[0][1]
    return key_id, (_caller(rows[0][1:], key_id) if pid is not None else None)


@lru_cache(maxsize=1)
def _jwt_secret(secret: str | None, secret_arn: str | None) -> str | None:
    if secret:
        return secret
    if secret_arn:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(secret_arn, max_age=3600))
    return None


@lru_cache(maxsize=4)
def jwks_keys(url: str, ttl: float, min_interval: float, timeout: float) -> JwksKeys:
    """One key cache per container (and configuration)."""
    return JwksKeys(url, ttl=ttl, min_interval=min_interval, timeout=timeout)


def _signing_key(token: str, settings: Settings) -> tuple[Any, list[str]]:
    import jwt

    if settings.jwt_jwks_url:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise Unauthorized()
        keys = jwks_keys(
            settings.jwt_jwks_url,
            settings.jwt_jwks_ttl_seconds,
            settings.jwt_jwks_min_fetch_interval_seconds,
            settings.jwt_jwks_timeout_seconds,
        )
        key = keys.key(kid)
        if key is None:
            raise Unauthorized()
        return key, ["RS256"]
    secret = _jwt_secret(settings.jwt_secret, settings.jwt_secret_arn)
    if not secret:
        raise Unauthorized()
    return secret, ["HS256"]


def token_claims(token: str, settings: Settings) -> dict[str, Any]:
    """The claims of a token whose signature, `exp` and (when configured) `iss`/`aud` verify; else 401."""
    import jwt  # only Bearer callers pay for this import

    try:
        key, algorithms = _signing_key(token, settings)
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={
                "require": ["exp"],
                "verify_aud": bool(settings.jwt_audience),
                "verify_iss": bool(settings.jwt_issuer),
            },
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=5,
        )
    except Unauthorized:
        raise
    except Exception:
        raise Unauthorized() from None
    if not isinstance(claims, dict):
        raise Unauthorized()
    return claims


def token_caller(conn: Connection, claims: dict[str, Any], settings: Settings, api_key_id: str | None) -> Caller:
    """The profile a token names: the first claim of JWT_IDENTITY_CLAIMS that it carries. `profile_id` and `sub`
    are a profile id; `email` must name exactly one non-deleted profile, in any letter case."""
    for name in settings.jwt_identity_claims:
        value = claims.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 320:
            raise Unauthorized()
        if name == "email":
            return _caller_by_email(conn, value.strip(), api_key_id)
        try:
            profile_id = str(UUID(value))
        except ValueError:
            raise Unauthorized() from None
        return load_caller(conn, profile_id, api_key_id)
    raise Unauthorized()


def authenticate(conn: Connection, headers: dict[str, str]) -> Caller:
    """The caller of a request whose header names are lower-case (as API Gateway v2 sends them).

    A person's key alone names its profile. With a Bearer token, the token names the caller and a key sent
    with it must be valid too (its id goes into the audit row); an application's key (no profile) is valid
    only that way."""
    raw_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if raw_key is None and authorization is None:
        raise Unauthorized()
    try:
        return _authenticate(conn, raw_key, authorization)
    except Unauthorized:
        raise InvalidCredentials() from None


def _authenticate(conn: Connection, raw_key: str | None, authorization: str | None) -> Caller:
    key_id, key_caller = _api_key(conn, raw_key.strip()) if raw_key is not None else (None, None)
    if authorization is None:
        if key_caller is None:  # an application's key alone identifies no one
            raise Unauthorized()
        return key_caller
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    settings = get_settings()
    return token_caller(conn, token_claims(token.strip(), settings), settings, key_id)
