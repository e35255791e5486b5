"""`activity serve` (what `make dev` runs) as a newcomer meets it: started as a process, its banner's curl
examples run as printed, the gateway's own answers, and SIGTERM stopping everything it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from activity_dev.local_s3 import free_port

OPERATIONS = ("get", "search", "problem", "resolve", "refresh", "export", "docs")


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, data_dir: Path) -> None:
        self.process, self.port, self.data_dir = process, port, data_dir
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Keys for other roles"):
                self.ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, headers=headers or {})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("serve") / "pgdata"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_ENDPOINT_URL", "EXPORT_BUCKET")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "activity"),
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            *("--data-dir", str(data_dir)),
        ],
        cwd=tmp_path_factory.mktemp("cwd"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(process, port, data_dir)
    if not served.ready.wait(240):
        process.kill()
        pytest.fail("activity serve did not print its banner:\n" + served.output)
    yield served
    if process.poll() is None:
        process.kill()
    for proc in postgres_processes(data_dir):
        proc.kill()


def test_the_banners_examples_run_as_printed(served: Served) -> None:
    # GIVEN the banner's bash block, as a newcomer would paste it
    text = served.output
    block = text.split("Try it (bash):", 1)[1].split("Keys for other roles", 1)[0]
    for operation in OPERATIONS:
        assert f"$A/{operation} " in block, operation
    script = (
        "set -euo pipefail\ncd "
        + str(served.data_dir.parent)
        + "\n"
        + block.replace(f"localhost:{served.port}", f"127.0.0.1:{served.port}")
    )
    # WHEN it runs  THEN every command succeeds, the next page and the resolve use what came before, and the
    # downloaded ZIP lists the export's files
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"sessions_count"' in out and '"api_operations"' in out
    assert '"resolved":true' in out.replace(" ", "")
    assert "manifest.json" in out and "sessions.csv" in out
    assert '"statusCode"' not in out, out
    # and the keys for other roles name real profiles of the demo data
    assert text.count("activity key create --profile") == 2


def test_the_gateways_own_answers(served: Served) -> None:
    status, headers, _ = served.request("GET", "/")
    assert status == 302 and headers["Location"] == "/swagger"
    status, headers, body = served.request("GET", "/swagger?format=json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["openapi"].startswith("3.1")
    # what matches no route is the HTTP API's own 404, another method on an operation's path included
    status, _, body = served.request("POST", "/api/v5/artifacts/activity/nope")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    status, headers, body = served.request("GET", "/api/v5/artifacts/activity/get")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    status, headers, body = served.request("GET", "/api/v5/artifacts/activity/mcp")  # a route: the function's 405
    assert status == 405 and headers["Allow"] == "POST" and json.loads(body)["statusCode"] == 405
    # a browser's preflight from an allowed origin, answered as the HTTP API's CorsConfiguration would
    preflight = {"Origin": "https://admin.glow.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = served.request("OPTIONS", "/api/v5/artifacts/activity/get", preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://admin.glow.example"
    assert "x-api-key" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = served.request(
        "OPTIONS", "/api/v5/artifacts/activity/get", {**preflight, "Origin": "https://x.example"}
    )
    assert status == 204 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = served.request(
        "POST", "/api/v5/artifacts/activity/docs", {"Origin": "https://admin.glow.example"}
    )
    assert status == 401 and "x-request-id" in headers["Access-Control-Expose-Headers"]


def test_sigterm_stops_everything_it_started(served: Served) -> None:
    # GIVEN the serving process, its worker processes and the embedded PostgreSQL
    parent = psutil.Process(served.process.pid)
    started = parent.children(recursive=True) + postgres_processes(served.data_dir)
    assert postgres_processes(served.data_dir), "no embedded postgres found for the data dir"
    # WHEN it gets SIGTERM
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=60)
    # THEN nothing it started is left running
    deadline = time.monotonic() + 30
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started):
        assert time.monotonic() < deadline, f"left running: {[p.pid for p in started if p.is_running()]}"
        time.sleep(0.2)
    assert not postgres_processes(served.data_dir)
    assert "leaked semaphore" not in served.output, served.output


# ---------------------------------------------------------------- stopping, every time
def start_serve(data_dir: Path, cwd: Path) -> Served:
    """`activity serve` in a process group of its own, as a terminal runs `make dev`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_ENDPOINT_URL", "EXPORT_BUCKET")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "activity"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    served = Served(process, port, data_dir)
    if not served.ready.wait(240):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("activity serve did not print its banner:\n" + served.output)
    return served


def call_quietly(served: Served, key: str) -> None:
    """A request in flight while the server stops: its connection may be cut, as it may be."""
    try:
        served.request("POST", "/api/v5/artifacts/activity/get", {"X-Api-Key": key})
    except OSError:
        pass


def everything_of(served: Served) -> list[psutil.Process]:
    return psutil.Process(served.process.pid).children(recursive=True) + postgres_processes(served.data_dir)


def wait_gone(processes: list[psutil.Process], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left:
            return []
        time.sleep(0.1)
    return left


@pytest.mark.slow
def test_a_signal_to_the_whole_process_group_stops_everything_every_time(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    # several runs: Ctrl-C and SIGTERM, idle and with requests in flight
    for sig, busy in ((signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGTERM, True)):
        served = start_serve(data_dir, tmp_path)
        started = everything_of(served)
        assert postgres_processes(data_dir) and len(started) >= 3
        key = served.output.split("demo admin API key: ", 1)[1].split()[0]
        callers = []
        if busy:
            for _ in range(12):
                caller = threading.Thread(target=call_quietly, args=(served, key), daemon=True)
                caller.start()
                callers.append(caller)
            time.sleep(0.2)
        # WHEN the whole group gets the signal (what a terminal's Ctrl-C and `kill -- -<pgid>` send)
        os.killpg(served.process.pid, sig)
        # THEN it exits within a few seconds, with no traceback, and nothing it started is left
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(served.process.pid, signal.SIGKILL)
            pytest.fail(f"{sig.name} (busy={busy}) did not stop it:\n{served.output[-3000:]}")
        assert wait_gone(started, 10) == [], (sig.name, busy, served.output[-2000:])
        assert not postgres_processes(data_dir)
        assert "Traceback" not in served.output, served.output[-4000:]
        assert "No application metrics to publish" not in served.output
        assert "stopping ..." in served.output, served.output[-500:]


@pytest.mark.slow
def test_a_hard_killed_runs_stale_handle_does_not_keep_postgres_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    # GIVEN a run killed hard: its pid stays in the embedded server's handle list, PostgreSQL keeps running
    first = start_serve(data_dir, tmp_path)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    assert first.process.pid in json.loads((data_dir / ".handle_pids.json").read_text())
    # WHEN the next run starts and is stopped cleanly
    second = start_serve(data_dir, tmp_path)
    assert first.process.pid not in json.loads((data_dir / ".handle_pids.json").read_text())
    started = everything_of(second)
    os.killpg(second.process.pid, signal.SIGTERM)
    second.process.wait(timeout=15)
    # THEN the stale handle was forgotten, and PostgreSQL stopped with it
    assert wait_gone(started, 10) == []
    assert not postgres_processes(data_dir)
