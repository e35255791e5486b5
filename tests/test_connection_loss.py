"""Dropped database connections under load: clients read (get, search, docs) and write (problem, resolve) through
the local gateway while every service connection is terminated again and again (what an Aurora failover, a proxy
restart or an idle-connection reaper does). Reads never fail, and a problem is never made twice."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import local_gateway
from factories import World

from glow_activity import API_PREFIX

# A few seconds in the suite; docs/SECURITY.md's longer run sets these (ACTIVITY_LOSS_SECONDS=60 ...).
SECONDS = float(os.environ.get("ACTIVITY_LOSS_SECONDS", "6"))
CLIENTS = int(os.environ.get("ACTIVITY_LOSS_CLIENTS", "6"))
KILL_EVERY = float(os.environ.get("ACTIVITY_LOSS_KILL_EVERY", "0.5"))


@pytest.fixture(scope="module")
def gateway_url(database_url: str) -> Iterator[str]:
    with local_gateway(workers=3) as url:
        yield f"{url}{API_PREFIX}"


def test_reads_and_writes_survive_connections_killed_every_half_second(
    gateway_url: str, world: World, conn: Any, refresh: Any
) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ta = world.profile(roles=["member"], departments=[dept])
    for day in range(1, 8):
        world.session(ta, f"2026-03-0{day}T10:00:00")
    refresh()
    target = world.problem(ta, "2026-03-02T10:00:00")
    marker = f"connection loss {uuid.uuid4()}"
    calls = itertools.cycle(
        [
            ("get", {"department_ids": [dept]}),
            ("search", {"department_ids": [dept], "page_size": 3}),
            ("docs", {}),
            ("get", {"date_from": "2026-03-01"}),
            ("problem", {"type": "bug", "message": marker}),
            ("resolve", {"problem_id": target}),
        ]
    )
    lock = threading.Lock()
    answers: list[tuple[str, int, Any]] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            with lock:
                operation, body = next(calls)
            res = session.post(f"{gateway_url}/{operation}", json=body, headers=admin.headers, timeout=60)
            with lock:
                answers.append((operation, res.status_code, res.json()))

    kills = 0

    def killer() -> None:
        nonlocal kills
        while not stop.wait(KILL_EVERY):
            kills += len(
                conn.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'glow-activity' AND pid <> pg_backend_pid()"
                )
            )

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)] + [threading.Thread(target=killer)]
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(60)
    statuses = Counter((operation, status) for operation, status, _ in answers)
    print(f"\n{len(answers)} requests, {kills} connections killed: {dict(statuses)}")
    # THEN connections were really killed, under load, and nobody saw a failure
    assert kills >= 5 and len(answers) >= 50
    assert {status for _, status, _ in answers} == {200}, statuses
    # AND every problem answered 200 is one row, made once
    made = [body["problem_id"] for operation, _, body in answers if operation == "problem"]
    rows = conn.run("SELECT id::text FROM problems WHERE message = :m", m=marker)
    assert sorted(made) == sorted(r[0] for r in rows) and len(set(made)) == len(made) > 0
