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
        ("ROLE_SCOPES", "{", "ROLE_SCOPES is not JSON"),
        ("ROLE_SCOPES", '{"all": ["ta"]}', "ROLE_SCOPES names 'ta'"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.from_environ({variable: value})
    assert str(refused.value).startswith(message)
