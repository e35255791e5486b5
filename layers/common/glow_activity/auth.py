"""Who is calling: X-Api-Key and/or Bearer JWT.

Authentication has two halves. `credentials_of` checks everything that needs no database (a credential header at
all, the header's form, a token's signature, expiry, issuer, audience and identity claim) and so refuses garbage
before any connection is opened; `caller_of` then looks the key and the profile up. Permissions always come from
the caller's active roles and departments in the database (their scope through ROLE_SCOPES), never from token
claims. A request without credentials and one whose credentials fail get two different 401 messages, never a hint
of which part failed.
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

_CALLER_BY_ID_SQL = f"""
SELECT {_CALLER_COLUMNS}
FROM profiles p
WHERE p.id = CAST(:profile_id AS uuid) AND p.deleted_at IS NULL
"""
# The profiles whose e-mail equals the token's but for the case of ASCII letters. lower() finds them through the
# platform index on lower(email); translate() then keeps only those that differ in ASCII letters alone, so that
# look-alike characters (a Kelvin sign for a K, a dotted capital I) that lower() would fold never match.
_ASCII_UPPER, _ASCII_LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
_BY_EMAIL = f"""
FROM profiles p
WHERE lower(p.email) = lower(:email) AND p.deleted_at IS NULL
  AND translate(p.email, '{_ASCII_UPPER}', '{_ASCII_LOWER}') = :folded
LIMIT 2
"""
_CALLER_BY_EMAIL_SQL = f"SELECT {_CALLER_COLUMNS}{_BY_EMAIL}"
_FOLD = str.maketrans(_ASCII_UPPER, _ASCII_LOWER)


def live_profiles_with_email(conn: Connection, email: str) -> list[str]:
    """The ids (at most two) of the non-deleted profiles whose e-mail is `email` but for the case of ASCII letters:
    how a token's e-mail claim, and the operator's commands, name a profile."""
    return [str(r[0]) for r in conn.run(f"SELECT p.id::text{_BY_EMAIL}", email=email, folded=email.translate(_FOLD))]


# The key and its holder's permissions in one round trip (the common case: an API key alone). An application's
# key has no holder: its profile columns are NULL.
_API_KEY_SQL = f"""
SELECT k.id::text, {_CALLER_COLUMNS}
FROM api_keys k LEFT JOIN profiles p ON p.id = k.profile_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
  AND (k.expires_at IS NULL OR k.expires_at > now())
  AND (k.profile_id IS NULL OR p.deleted_at IS NULL)
"""

MAX_KEY_LENGTH = 512
MAX_CLAIM_LENGTH = 320


@dataclass(frozen=True)
class Credentials:
    """What a request's headers claim, checked as far as it can be without the database: the hash of its API key
    (if any) and the profile its token names (`claim` is profile_id, sub or email; None without a token)."""

    key_hash: str | None
    claim: str | None = None
    value: str | None = None


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
    """The one non-deleted profile with this e-mail, ignoring the case of ASCII letters; none or several: 401."""
    rows = conn.run(_CALLER_BY_EMAIL_SQL, email=email, folded=email.translate(_FOLD))
    if len(rows) != 1:
        raise Unauthorized()
    return _caller(rows[0], api_key_id)


def _api_key(conn: Connection, key_hash: str) -> tuple[str, Caller | None]:
    """The key's id and the profile it acts as (None for an application's key)."""
    rows = conn.run(_API_KEY_SQL, key_hash=key_hash)
    if not rows:
        raise Unauthorized()
    key_id, pid = rows[0][0], rows[0][1]
    return key_id, (_caller(rows[0][1:], key_id) if pid is not None else None)


# A rotated HS256 secret takes effect within this long: Powertools keeps the secret for max_age, then reads it again.
JWT_SECRET_MAX_AGE_SECONDS = 900


def _jwt_secret(settings: Settings) -> str | None:
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.jwt_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(settings.jwt_secret_arn, max_age=JWT_SECRET_MAX_AGE_SECONDS))
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
    secret = _jwt_secret(settings)
    if not secret:
        raise Unauthorized()
    return secret, ["HS256"]


# `exp` may be this many seconds past: the clocks of the identity provider and of Lambda differ a little.
EXP_LEEWAY_SECONDS = 5


def token_claims(token: str, settings: Settings) -> dict[str, Any]:
    """The claims of a token whose signature and `exp` verify, and its `iss` and `aud` when configured (always with
    a JWKS: settings.check); else 401."""
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
            audience=list(settings.jwt_audience) or None,
            issuer=settings.jwt_issuer,
            leeway=EXP_LEEWAY_SECONDS,
        )
    except Unauthorized:
        raise
    except Exception:
        raise Unauthorized() from None
    if not isinstance(claims, dict):
        raise Unauthorized()
    return claims


def identity_claim(claims: dict[str, Any], settings: Settings) -> tuple[str, str]:
    """The claim that names the caller's profile: the first of JWT_IDENTITY_CLAIMS that the token carries.
    `profile_id` and `sub` must be a profile id; `email` counts only when the identity provider vouches for it
    (`email_verified: true`): an unverified address names no one."""
    for name in settings.jwt_identity_claims:
        value = claims.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > MAX_CLAIM_LENGTH:
            raise Unauthorized()
        if name == "email":
            if claims.get("email_verified") is not True:
                raise Unauthorized()
            return name, value.strip()
        try:
            return name, str(UUID(value))
        except ValueError:
            raise Unauthorized() from None
    raise Unauthorized()


def credentials_of(headers: dict[str, str]) -> Credentials:
    """The request's credentials (header names lower-case, as API Gateway v2 sends them), refused with a 401 here
    whenever that needs no database: no credential header, a malformed one, a token that does not verify or names
    no profile."""
    raw_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if raw_key is None and authorization is None:
        raise Unauthorized()
    try:
        return _credentials(raw_key, authorization)
    except Unauthorized:
        raise InvalidCredentials() from None


def _credentials(raw_key: str | None, authorization: str | None) -> Credentials:
    key_hash = None
    if raw_key is not None:
        raw_key = raw_key.strip()
        if not raw_key or len(raw_key) > MAX_KEY_LENGTH:
            raise Unauthorized()
        key_hash = hash_api_key(raw_key)
    if authorization is None:
        return Credentials(key_hash)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    settings = get_settings()
    claim, value = identity_claim(token_claims(token.strip(), settings), settings)
    return Credentials(key_hash, claim, value)


def caller_of(conn: Connection, credentials: Credentials) -> Caller:
    """The caller the credentials name, from the database. A person's key alone names its profile. With a Bearer
    token, the token names the caller and a key sent with it must be valid too (its id goes into the audit row);
    an application's key (no profile) is valid only that way."""
    try:
        return _caller_of(conn, credentials)
    except Unauthorized:
        raise InvalidCredentials() from None


def _caller_of(conn: Connection, credentials: Credentials) -> Caller:
    key_id, key_caller = _api_key(conn, credentials.key_hash) if credentials.key_hash else (None, None)
    if credentials.claim is None or credentials.value is None:
        if key_caller is None:  # an application's key alone identifies no one
            raise Unauthorized()
        return key_caller
    if credentials.claim == "email":
        return _caller_by_email(conn, credentials.value, key_id)
    return load_caller(conn, credentials.value, key_id)


def authenticate(conn: Connection, headers: dict[str, str]) -> Caller:
    """Both halves at once, for tools that hold a connection already."""
    return caller_of(conn, credentials_of(headers))
