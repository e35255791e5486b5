"""The environment's settings: every field read from its variable, bad values refused with the variable's name."""

from __future__ import annotations

import dataclasses

import pytest

from glow_activity.settings import _READERS, Settings


def test_every_setting_is_read_from_its_variable() -> None:
    assert set(_READERS) == {f.name for f in dataclasses.fields(Settings)}


def test_values_are_typed_and_unset_ones_keep_their_defaults() -> None:
    settings = Settings.from_environ(
        {
            "DB_PORT": "5433",
            "DB_CONNECT_TIMEOUT": "2.5",
            "DB_HOST": "",  # set but empty: unset
            "EXPORT_URL_TTL_SECONDS": "86400",
            "JWT_IDENTITY_CLAIMS": "sub, email",
            "ROLE_SCOPES": '{"all": ["admin"], "departments": ["custom"]}',
            "UNRELATED": "x",
        }
    )
    assert settings.db_port == 5433 and settings.db_connect_timeout == 2.5 and settings.db_host is None
    assert settings.export_url_ttl_seconds == 3600  # never more than an hour
    assert settings.jwt_identity_claims == ("sub", "email")
    assert settings.role_scopes == {"admin": "all", "custom": "departments"}
    assert settings.scope_of(["member", "custom"]) == "departments" and settings.scope_of(["guest"]) == "self"
    many = Settings.from_environ(
        {
            "CALLER_REQUESTS_PER_MINUTE": "0",
            "REFRESH_WAIT_SECONDS": "2.5",
            "EXPORT_MAX_RUNNING": "2",
            "DB_CONNECTION_LIMIT": "40",
            "JWT_AUDIENCE": "glow-web, activity-mcp,,",
        }
    )
    assert many.caller_requests_per_minute == 0 and many.refresh_wait_seconds == 2.5
    assert many.export_max_running == 2 and many.db_connection_limit == 40
    assert many.jwt_audience == ("glow-web", "activity-mcp")
    defaults = Settings()
    assert (defaults.caller_requests_per_minute, defaults.refresh_wait_seconds, defaults.export_max_running) == (
        600,
        20,
        4,
    )
    assert Settings.from_environ({}) == Settings()
    assert Settings().role_scopes == {"superadmin": "all", "admin": "all", "instructional": "departments"}


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DB_PORT", "5432x", "DB_PORT: '5432x' is not an integer"),
        ("DB_CONNECT_TIMEOUT", "0", "DB_CONNECT_TIMEOUT: must be greater than 0, not 0"),
        ("DB_CONNECT_ATTEMPTS", "0", "DB_CONNECT_ATTEMPTS: must be at least 1, not 0"),
        ("DB_RANDOM_PAGE_COST", "cheap", "DB_RANDOM_PAGE_COST: 'cheap' is not a number"),
        ("JWT_IDENTITY_CLAIMS", "uid", "JWT_IDENTITY_CLAIMS: a comma-separated list of profile_id, email, sub"),
        ("CALLER_REQUESTS_PER_MINUTE", "-1", "CALLER_REQUESTS_PER_MINUTE: must be at least 0, not -1"),
        ("EXPORT_MAX_RUNNING", "0", "EXPORT_MAX_RUNNING: must be at least 1, not 0"),
        ("REFRESH_WAIT_SECONDS", "soon", "REFRESH_WAIT_SECONDS: 'soon' is not a number"),
        ("DB_CONNECTION_LIMIT", "-2", "DB_CONNECTION_LIMIT: must be at least -1, not -2"),
        ("ROLE_SCOPES", "{", "ROLE_SCOPES is not JSON"),
        ("ROLE_SCOPES", '{"all": ["ta"]}', "ROLE_SCOPES names 'ta'"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.from_environ({variable: value})
    assert str(refused.value).startswith(message)
