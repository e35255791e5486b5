"""Rows for tests: every id is unique per test, every value explicit, so assertions can be exact."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt

JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"  # the suite's JWT_SECRET


def ts(text: str) -> datetime:
    """'2025-03-01T08:30:00' (UTC unless an offset is given) -> aware datetime."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Profile:
    id: str
    name: str
    email: str | None
    roles: list[str]
    departments: list[str]
    key: str | None = None
    key_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        assert self.key, "profile has no api key"
        return {"X-Api-Key": self.key}

    def bearer(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_jwt(self.id, **claims)}"}


def make_jwt(sub: str, *, secret: str = JWT_SECRET, exp_in: int = 3600, algorithm: str = "HS256", **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + exp_in, "iat": int(time.time()), **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


@dataclass
class World:
    """Builds rows through a real connection; `tag` keeps this test's departments and names apart."""

    conn: Any
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def department(self, name: str | None = None) -> str:
        dept_id = f"dept-{self.tag}-{uuid.uuid4().hex[:6]}"
        self.conn.run("INSERT INTO departments (id, name) VALUES (:id, :name)", id=dept_id, name=name or dept_id)
        return dept_id

    def profile(
        self,
        name: str | None = None,
        *,
        roles: list[str] | tuple[str, ...] = ("member",),
        departments: list[str] | tuple[str, ...] = (),
        inactive_roles: list[str] | tuple[str, ...] = (),
        email: str | None = "",
        deleted: bool = False,
        key: bool = True,
    ) -> Profile:
        pid = str(uuid.uuid4())
        name = name or f"Profile {self.tag} {pid[:6]}"
        email = f"{pid[:8]}@test.example" if email == "" else email
        self.conn.run(
            "INSERT INTO profiles (id, name, email, deleted_at) VALUES (CAST(:id AS uuid), :name, :email,"
            " CASE WHEN :deleted THEN now() END)",
            id=pid,
            name=name,
            email=email,
            deleted=deleted,
        )
        for role in roles:
            self.conn.run(
                "INSERT INTO profile_roles (profile_id, role, active) VALUES (CAST(:p AS uuid), :r, true)",
                p=pid,
                r=role,
            )
        for role in inactive_roles:
            self.conn.run(
                "INSERT INTO profile_roles (profile_id, role, active) VALUES (CAST(:p AS uuid), :r, false)",
                p=pid,
                r=role,
            )
        for dept in departments:
            self.conn.run(
                "INSERT INTO profile_departments (profile_id, department_id) VALUES (CAST(:p AS uuid), :d)",
                p=pid,
                d=dept,
            )
        profile = Profile(pid, name, email, list(roles), list(departments))
        if key and not deleted:
            profile.key, profile.key_id = self.api_key(pid)
        return profile

    def api_key(self, profile_id: str, *, expires_at: datetime | None = None, revoked: bool = False) -> tuple[str, str]:
        raw = "test_" + secrets.token_urlsafe(24)
        key_id = str(uuid.uuid4())
        self.conn.run(
            "INSERT INTO api_keys (id, name, key_hash, profile_id, expires_at, revoked_at) VALUES (CAST(:id AS uuid),"
            " 'test', :h, CAST(:p AS uuid), :exp, CASE WHEN :revoked THEN now() END)",
            id=key_id,
            h=hashlib.sha256(raw.encode()).hexdigest(),
            p=profile_id,
            exp=expires_at,
            revoked=revoked,
        )
        return raw, key_id

    def session(
        self,
        profile: Profile | str,
        created_at: str | datetime,
        *,
        active: bool = False,
        updated_at: str | datetime | None = None,
        first_run_at: str | datetime | None = None,
        last_run_at: str | datetime | None = None,
        **counters: Any,
    ) -> str:
        sid = str(uuid.uuid4())
        created = ts(created_at) if isinstance(created_at, str) else created_at
        first_run = ts(first_run_at) if isinstance(first_run_at, str) else first_run_at
        last_run = ts(last_run_at) if isinstance(last_run_at, str) else last_run_at
        updated = (ts(updated_at) if isinstance(updated_at, str) else updated_at) or created + timedelta(minutes=5)
        values = {
            "group_count": 0,
            "run_count": 0,
            "chat_count": 0,
            "attempt_count": 0,
            "message_count": 0,
            "total_tokens": 0,
            "total_cost": Decimal("0"),
            **counters,
        }
        self.conn.run(
            "INSERT INTO sessions (id, profile_id, created_at, updated_at, active, group_count, run_count,"
            " first_run_at, last_run_at, chat_count, attempt_count, message_count, total_tokens, total_cost) VALUES"
            " (CAST(:id AS uuid), CAST(:p AS uuid), :c, :u, :a, :group_count, :run_count, :first_run, :last_run,"
            " :chat_count, :attempt_count, :message_count, :total_tokens, CAST(:total_cost AS numeric))",
            id=sid,
            p=_pid(profile),
            c=created,
            u=updated,
            a=active,
            first_run=first_run,
            last_run=last_run,
            **{**values, "total_cost": str(values["total_cost"])},
        )
        return sid

    def login(self, profile: Profile | str, at: str | datetime, method: str = "password") -> str:
        lid = str(uuid.uuid4())
        self.conn.run(
            "INSERT INTO logins (id, profile_id, logged_in_at, method) VALUES (CAST(:id AS uuid),"
            " CAST(:p AS uuid), :at, :m)",
            id=lid,
            p=_pid(profile),
            at=_at(at),
            m=method,
        )
        return lid

    def grant(
        self, profile: Profile | str, at: str | datetime, kind: str = "access", granted_by: Profile | str | None = None
    ) -> str:
        gid = str(uuid.uuid4())
        self.conn.run(
            "INSERT INTO grants (id, profile_id, granted_by, kind, created_at) VALUES (CAST(:id AS uuid),"
            " CAST(:p AS uuid), CAST(:by AS uuid), :k, :at)",
            id=gid,
            p=_pid(profile),
            by=_pid(granted_by) if granted_by else None,
            k=kind,
            at=_at(at),
        )
        return gid

    def problem(
        self,
        profile: Profile | str | None,
        at: str | datetime,
        *,
        session_id: str | None = None,
        type: str = "bug",
        message: str = "test problem",
        resolved: bool = False,
    ) -> str:
        qid = str(uuid.uuid4())
        self.conn.run(
            "INSERT INTO problems (id, type, message, session_id, profile_id, reported_by, created_at, updated_at,"
            " resolved) VALUES (CAST(:id AS uuid), :t, :m, CAST(:s AS uuid), CAST(:p AS uuid), CAST(:p AS uuid),"
            " :at, :at, :r)",
            id=qid,
            t=type,
            m=message,
            s=session_id,
            p=_pid(profile) if profile else None,
            at=_at(at),
            r=resolved,
        )
        return qid


def _pid(profile: Profile | str) -> str:
    return profile.id if isinstance(profile, Profile) else profile


def _at(value: str | datetime) -> datetime:
    return ts(value) if isinstance(value, str) else value
