"""No key, token, signature or password reaches the logs, at the most verbose level."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bodies import ENDPOINTS, body_for
from factories import World, make_jwt

from activity_dev.events import scheduled_event
from glow_activity.observability import logger


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """The service's own log lines, at DEBUG. The Logger's level and stream were fixed when it was imported, so
    setting POWERTOOLS_LOG_LEVEL now would change nothing: the level is set on it and its handler's stream swapped."""
    handler, level, lines = logger.registered_handler, logger.log_level, io.StringIO()
    stream = handler.setStream(lines)  # type: ignore[attr-defined]
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.setLevel(level)
    handler.setStream(stream)  # type: ignore[attr-defined]


def test_no_secret_reaches_the_logs(invoke: Any, world: World, service_log: io.StringIO, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)  # the libraries' own loggers (Powertools' resolver, botocore, urllib3)
    admin = world.profile(roles=["admin"])
    token = make_jwt(admin.id)
    secrets_seen = [admin.key, token, token.split(".")[2]]
    export = invoke("export", {}, {**admin.headers, "Authorization": f"Bearer {token}"})
    signature = export.body["download_url"].split("Signature=")[-1].split("&")[0]
    secrets_seen.append(signature)
    for operation in ENDPOINTS:
        invoke(operation, body_for(operation, str(uuid.uuid4())), {"X-Api-Key": admin.key})
        invoke(operation, body_for(operation, str(uuid.uuid4())), {"Authorization": f"Bearer {token}"})
        invoke(operation, {}, {"X-Api-Key": admin.key + "-wrong"})
    invoke("refresh", event=scheduled_event())
    ours = [json.loads(line) for line in service_log.getvalue().splitlines()]
    # the service's own lines ran: one per request, the refresh's, its housekeeping's
    assert {"request", "refreshed", "housekeeping"} <= {line["message"] for line in ours}
    everything = service_log.getvalue() + "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets_seen:
        assert secret not in everything
    assert "password=" not in everything.lower()
