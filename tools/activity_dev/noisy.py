"""A noisy neighbour against the local gateway (what `activity serve` runs): one caller's key flooding every
operation from several threads, anonymous requests, and well-behaved readers beside them, while the connections
the service holds are sampled. The test suite checks what each side was answered (tests/test_many_callers.py);
`activity bench` reports the readers' latencies beside the flood against alone (docs/PERFORMANCE.md)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from glow_activity import API_PREFIX

# What the flooder sends, round and round: every operation, with a body each accepts.
FLOOD: tuple[tuple[str, dict[str, object]], ...] = (
    ("get", {}),
    ("search", {}),
    ("docs", {}),
    ("problem", {"type": "bug", "message": "flood"}),
    ("resolve", {"problem_id": "00000000-0000-4000-8000-000000000000"}),
    ("refresh", {}),
    ("export", {}),
)
READS: tuple[tuple[str, dict[str, object]], ...] = (("get", {}), ("search", {}))


def post(base: str, operation: str, body: object, headers: dict[str, str]) -> tuple[int, float]:
    """One POST through the gateway: its status and its latency in seconds."""
    request = urllib.request.Request(  # noqa: S310 - loopback http
        f"{base}{API_PREFIX}/{operation}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    return status, time.perf_counter() - started


@dataclass
class Side:
    """What one side of the load was answered."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    by_status: dict[int, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)
            self.by_status.setdefault(status, []).append(seconds)


@dataclass
class Outcome:
    readers: Side
    flooder: Side
    anonymous: Side
    most_connections: int


def run(
    base: str,
    *,
    readers: list[dict[str, str]],
    flooder: dict[str, str] | None,
    seconds: float,
    reader_pause: float,
    flood_threads: int = 4,
    connections: Callable[[], int] = lambda: 0,
) -> Outcome:
    """Readers (one thread each, a read every `reader_pause` s) for `seconds`; beside them, when `flooder` is given,
    `flood_threads` threads sending FLOOD with its headers as fast as they are answered and one anonymous thread.
    `connections` is sampled every 0.2 s."""
    outcome = Outcome(Side(), Side(), Side(), 0)
    deadline = time.monotonic() + seconds

    def read(headers: dict[str, str]) -> None:
        for operation, body in itertools.cycle(READS):
            if time.monotonic() >= deadline:
                return
            outcome.readers.add(*post(base, operation, body, headers))
            time.sleep(reader_pause)

    def flood(start: int, headers: dict[str, str], into: Side) -> None:
        for operation, body in itertools.islice(itertools.cycle(FLOOD), start, None):
            if time.monotonic() >= deadline:
                return
            if operation == "problem":
                body = {**body, "message": f"flood {uuid.uuid4()}"}
            into.add(*post(base, operation, body, headers))

    threads = [threading.Thread(target=read, args=(headers,)) for headers in readers]
    if flooder is not None:
        threads += [threading.Thread(target=flood, args=(n, flooder, outcome.flooder)) for n in range(flood_threads)]
        threads.append(threading.Thread(target=flood, args=(0, {}, outcome.anonymous)))
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        outcome.most_connections = max(outcome.most_connections, connections())
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    return outcome
