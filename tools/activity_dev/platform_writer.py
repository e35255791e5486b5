"""The platform at work, for the tests and the bench that migrate its database: a login inserted and a session
updated every few milliseconds, each write timed, so that any stall a migration causes shows."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PlatformWriter:
    conn: Any  # its own connection to the platform's database
    sessions: list[str]  # the sessions it updates
    profiles: list[str]  # whose logins it inserts
    pause_seconds: float = 0.003
    stop: threading.Event = field(default_factory=threading.Event)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                self.conn.run(
                    "INSERT INTO logins (id, profile_id, logged_in_at, method)"
                    " VALUES (gen_random_uuid(), CAST(:p AS uuid), now(), 'writer')",
                    p=self.profiles[i % len(self.profiles)],
                )
                self.conn.run(
                    "UPDATE sessions SET run_count = run_count + 1, last_run_at = now(), updated_at = now()"
                    " WHERE id = CAST(:s AS uuid)",
                    s=self.sessions[i % len(self.sessions)],
                )
            except Exception as exc:  # a write the platform could not make: callers fail on it
                self.errors.append(repr(exc))
            self.latencies.append(time.perf_counter() - started)
            i += 1
            time.sleep(self.pause_seconds)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "writes": len(ordered),
            "longest_ms": round(ordered[-1] * 1000, 1) if ordered else None,
            "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1) if ordered else None,
            "errors": len(self.errors),
        }
