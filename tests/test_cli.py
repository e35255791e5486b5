"""The `activity` CLI against the test database: keys for a profile and for an application."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from factories import World

from activity_dev.cli import main


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)


def key_row(conn: Any, raw: str) -> list[Any]:
    return conn.run(
        "SELECT name, profile_id::text FROM api_keys WHERE key_hash = :h", h=hashlib.sha256(raw.encode()).hexdigest()
    )


def test_key_create_for_a_profile(cli_env: None, world: World, conn: Any, invoke: Any, capsys: Any) -> None:
    admin = world.profile(roles=["admin"], key=False)
    main(["key", "create", "--profile", admin.id, "--name", "laptop"])
    raw = capsys.readouterr().out.strip()
    assert key_row(conn, raw) == [["laptop", admin.id]]
    assert invoke("get", {}, {"X-Api-Key": raw}).status == 200


def test_key_create_for_an_application(cli_env: None, world: World, conn: Any, invoke: Any, capsys: Any) -> None:
    # GIVEN the Glow web client's own constant key, registered as an application's key
    client_key = f"glw_client_{world.tag}"
    main(["key", "create", "--app", "glow-web", "--key", client_key])
    assert capsys.readouterr().out.strip() == client_key
    assert key_row(conn, client_key) == [["glow-web", None]]
    # THEN alone it identifies no one; with a user's token the caller is the token's profile
    member = world.profile(roles=["member"], key=False)
    assert invoke("docs", {}, {"X-Api-Key": client_key}).status == 401
    assert invoke("docs", {}, {"X-Api-Key": client_key, **member.bearer()}).status == 200
    assert invoke("get", {}, {"X-Api-Key": client_key, **member.bearer()}).status == 403


def test_key_create_refuses_what_is_not_a_profile(cli_env: None, capsys: Any) -> None:
    with pytest.raises(SystemExit, match="profile id"):
        main(["key", "create", "--profile", "ada"])
    with pytest.raises(SystemExit, match="no such profile"):
        main(["key", "create", "--profile", "00000000-0000-4000-8000-000000000000"])
    with pytest.raises(SystemExit):
        main(["key", "create", "--profile", "00000000-0000-4000-8000-000000000000", "--app", "x"])


def test_migrate_plan_and_migrate(cli_env: None, capsys: Any) -> None:
    # the test database is up to date: the plan is empty, and so is a migration
    main(["db", "migrate", "--plan", "--attached"])
    assert capsys.readouterr().out.strip() == "mode: attached; nothing to do"
    main(["db", "migrate"])
    assert capsys.readouterr().out.strip() == "nothing to do (up to date)"


def test_runtime_user_is_a_login_member_of_activity_runtime_only(
    cli_env: None, conn: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with pytest.raises(SystemExit, match="ACTIVITY_RUNTIME_PASSWORD"):
        main(["db", "runtime-user", "activity_cli_test"])
    monkeypatch.setenv("ACTIVITY_RUNTIME_PASSWORD", "s3cret'; DROP TABLE profiles; --")
    try:
        main(["db", "runtime-user", "activity_cli_test"])
        main(["db", "runtime-user", "activity_cli_test"])  # again: the same user, its password set anew
        assert conn.run(
            "SELECT rolcanlogin, rolsuper, pg_has_role('activity_cli_test', 'activity_runtime', 'MEMBER')"
            " FROM pg_roles WHERE rolname = 'activity_cli_test'"
        ) == [[True, False, True]]
        assert conn.run("SELECT to_regclass('public.profiles') IS NOT NULL") == [[True]]
    finally:
        conn.run("DROP ROLE IF EXISTS activity_cli_test")
