"""The operator's path to a deployed stack's database, with no bastion: commands run by the migration function
(the only one with the owner's credentials), invoked the way `aws lambda invoke` does, and the `activity operator`
command that invokes it. The first admin and key, keys for profiles and for the Glow web client, revocation,
the migration plan; on an attached database only the plan."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import migrate_function

from activity_dev.cli import main
from activity_dev.events import LambdaContext
from glow_activity.settings import get_settings


@pytest.fixture
def operator(database_url: str, monkeypatch: Any) -> Any:
    """Invoke the migration function with an operator's command, as Lambda would (it holds the owner's URL)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()

    def invoke(command: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = migrate_function()({"command": command, **fields}, LambdaContext("migrate", 60_000))
        json.dumps(result)  # what Lambda returns must be JSON
        return result

    return invoke


def as_runtime(monkeypatch: Any, runtime_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", runtime_url)
    get_settings.cache_clear()


def test_bootstrap_makes_the_first_admin_and_a_key_that_works(
    operator: Any, invoke: Any, conn: Any, monkeypatch: Any, runtime_url: str
) -> None:
    email = f"first.admin.{uuid.uuid4().hex[:6]}@glow.example"
    # WHEN the operator bootstraps the first admin of a new stack
    first = operator("bootstrap", email=email, name="First Admin")
    assert first["ok"] is True and first["profile_created"] is True and first["api_key"].startswith("glow_")
    # THEN the profile is an active admin, and its key (stored only as a hash) opens the API as that admin
    assert conn.run(
        "SELECT p.name, r.role, r.active FROM profiles p JOIN profile_roles r ON r.profile_id = p.id"
        " WHERE p.id = CAST(:p AS uuid)",
        p=first["profile_id"],
    ) == [["First Admin", "admin", True]]
    assert not conn.run("SELECT 1 FROM api_keys WHERE key_hash = :k", k=first["api_key"])
    as_runtime(monkeypatch, runtime_url)
    got = invoke("get", {}, {"X-Api-Key": first["api_key"]})
    assert got.status == 200
    # AND a second bootstrap with the same e-mail reuses the profile (any letter case) and adds a key
    again = operator("bootstrap", email=email.upper())
    assert again["profile_id"] == first["profile_id"] and again["profile_created"] is False
    assert again["api_key"] != first["api_key"]


def test_keys_for_profiles_and_for_the_glow_client_and_revocation(
    operator: Any, invoke: Any, world: Any, monkeypatch: Any, runtime_url: str
) -> None:
    member = world.profile("Key Holder", roles=["member"], email=f"holder.{world.tag}@glow.example", key=False)
    by_email = operator("create-key", email=member.email, name="laptop")
    by_id = operator("create-key", profile_id=member.id)
    client_key = f"glw_client_{world.tag}"
    app = operator("app-key", name="glow-web", key=client_key)
    assert by_email["ok"] and by_id["ok"] and app == {"ok": True, "key_id": app["key_id"], "api_key": client_key}
    as_runtime(monkeypatch, runtime_url)
    assert invoke("docs", {}, {"X-Api-Key": by_email["api_key"]}).status == 200
    assert invoke("docs", {}, {"X-Api-Key": client_key}).status == 401  # an application's key alone is no one
    assert invoke("docs", {}, {"X-Api-Key": client_key, **member.bearer()}).status == 200
    # revoked: the key stops working at once; the other keeps working
    revoked = operator("revoke-key", key_id=by_email["key_id"])
    assert revoked["ok"] is True and revoked["revoked_at"]
    assert invoke("docs", {}, {"X-Api-Key": by_email["api_key"]}).status == 401
    assert invoke("docs", {}, {"X-Api-Key": by_id["api_key"]}).status == 200


@pytest.mark.parametrize(
    "command, fields, error",
    [
        ("create-key", {"email": "nobody@nowhere.example"}, "No live profile"),
        ("create-key", {}, "profile_id or email"),
        ("create-key", {"profile_id": "ada"}, "uuid"),
        ("revoke-key", {"key_id": str(uuid.uuid4())}, "No key"),
        ("bootstrap", {}, "email"),
        ("drop-everything", {}, "Unknown command"),
    ],
)
def test_commands_that_cannot_be_done_say_why_and_change_nothing(
    operator: Any, conn: Any, command: str, fields: dict[str, Any], error: str
) -> None:
    keys = conn.run("SELECT count(*) FROM api_keys")[0][0]
    result = operator(command, **fields)
    assert result["ok"] is False and error in result["error"]
    assert conn.run("SELECT count(*) FROM api_keys")[0][0] == keys


def test_an_attached_database_gets_only_the_plan(operator: Any, conn: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DB_ATTACHED", "true")
    get_settings.cache_clear()
    assert operator("plan") == {"ok": True, "plan": ["mode: attached; nothing to do"]}
    refused = operator("bootstrap", email="someone@glow.example")
    assert refused["ok"] is False and "Glow issues" in refused["error"]
    assert not conn.run("SELECT 1 FROM profiles WHERE email = 'someone@glow.example'")


def test_the_activity_operator_command_invokes_the_function(
    operator: Any, monkeypatch: Any, capsys: Any, conn: Any
) -> None:
    """`activity operator ...` sends the function the command (the Lambda invoke itself is AWS's: here the
    function is called in this process with the payload the command sends)."""
    import activity_dev.cli as cli

    sent: list[tuple[str, dict[str, Any], str | None]] = []

    def invoke(function: str, payload: dict[str, Any], region: str | None) -> dict[str, Any]:
        sent.append((function, payload, region))
        return dict(operator(**payload))

    monkeypatch.setattr(cli, "lambda_invoke", invoke)
    email = f"cli.admin.{uuid.uuid4().hex[:6]}@glow.example"
    main(
        [
            "operator",
            "bootstrap",
            "--function",
            "glow-prod-MigrateFunction",
            "--region",
            "eu-west-1",
            "--email",
            email,
            "--name",
            "CLI Admin",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert sent == [
        ("glow-prod-MigrateFunction", {"command": "bootstrap", "email": email, "name": "CLI Admin"}, "eu-west-1")
    ]
    assert printed["ok"] is True and conn.run(
        "SELECT name FROM profiles WHERE id = CAST(:p AS uuid)", p=printed["profile_id"]
    ) == [["CLI Admin"]]
    # a command that cannot be done prints why and exits non-zero
    with pytest.raises(SystemExit):
        main(["operator", "revoke-key", "--function", "f", "--key-id", str(uuid.uuid4())])
    assert "No key has that id" in json.loads(capsys.readouterr().out)["error"]
    main(["operator", "plan", "--function", "f"])
    assert json.loads(capsys.readouterr().out) == {"ok": True, "plan": ["mode: standalone; nothing to do"]}


def test_every_operator_command_is_audited_with_channel_operator(operator: Any, conn: Any) -> None:
    before = conn.run("SELECT coalesce(max(id), 0) FROM activity.audit_log")[0][0]
    assert operator("plan")["ok"] is True
    assert operator("revoke-key", key_id=str(uuid.uuid4()))["ok"] is False  # refused: audited too
    rows = conn.run(
        "SELECT operation, channel, status_code, profile_id FROM activity.audit_log WHERE id > :id ORDER BY id",
        id=before,
    )
    assert [r[:2] for r in rows] == [["plan", "operator"], ["revoke-key", "operator"]]
    assert rows[0][2] == 200 and rows[1][2] >= 400 and {r[3] for r in rows} == {None}
