"""A Docker-free stand-in for API Gateway (HTTP API, payload 2.0) in front of the Lambda handlers.

Every route in template.yaml is served by turning the HTTP request into an HTTP API v2 event for that
function's handler. As on Lambda, a worker process runs one invocation at a time and keeps its own
module state and database connection; concurrency means more workers.

The workers are plain processes, each with a pipe of its own, not a multiprocessing.Pool: a Ctrl-C reaches the
whole process group, and a Pool worker killed by it while holding the pool's shared queue lock left
`pool.terminate()` waiting for that lock for ever. Here workers ignore SIGINT (the parent stops them), nothing
is shared between them, and stopping is: ask, wait a moment, kill what is left.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any

from . import lambdas
from .events import LambdaContext, http_event

_handlers: dict[str, Any] = {}


def invoke_in_worker(logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run in a worker process (a container): its handlers are loaded once and keep their state."""
    handler = _handlers.get(logical_id)
    if handler is None:
        spec = next(s for s in lambdas.functions() if s.logical_id == logical_id)
        handler = _handlers[logical_id] = lambdas.load_handler(spec)
    return handler(event, LambdaContext(logical_id))


def _worker_main(pipe: Connection) -> None:
    """A container: invocations in, answers out, until the pipe closes or says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the gateway stops its workers
    # Locally the metrics go nowhere (POWERTOOLS_METRICS_DISABLED): Powertools still warns, once per worker, that an
    # invocation published none, which is only noise in a developer's terminal.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    while True:
        try:
            job = pipe.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            pipe.send(("ok", invoke_in_worker(*job)))
        except Exception as exc:  # the gateway answers 502; the worker goes on, as a container would
            traceback.print_exc()  # the function's log
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))


class WorkerDied(RuntimeError):
    pass


class _Worker:
    def __init__(self, context: Any) -> None:
        self.stopping = threading.Lock()  # stopped once: by the gateway closing, or by the thread that saw it die
        self.stopped = False
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def call(self, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        try:
            self.pipe.send((logical_id, event))
            status, value = self.pipe.recv()
        except Exception as exc:  # the pipe broke: the worker died, or the gateway is stopping and closed it
            raise WorkerDied(f"the worker for {logical_id} died") from exc
        if status == "error":
            raise RuntimeError(value)
        return value  # type: ignore[no-any-return]

    def stop(self, timeout: float) -> None:
        with self.stopping:
            if self.stopped:
                return
            self.stopped = True
            try:
                self.pipe.send(None)
            except (OSError, ValueError):
                pass  # it is gone already
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout)
            try:
                self.pipe.close()
            except OSError:
                pass


class WorkerPool:
    """Worker processes, each running one invocation at a time (a Lambda container each)."""

    def __init__(self, workers: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.lock = threading.Lock()
        self.closing = False
        # a Ctrl-C while they start (importing for a second or two) would print a traceback from each: they are
        # started with SIGINT ignored, which they keep, as the gateway stops them itself
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            self.workers = [_Worker(self.context) for _ in range(workers)]
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        self.idle: queue.Queue[_Worker] = queue.Queue()
        for worker in self.workers:
            self.idle.put(worker)

    def apply(self, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        worker = self.idle.get()
        try:
            return worker.call(logical_id, event)
        except WorkerDied:
            worker = self._replace(worker)
            raise
        finally:
            self.idle.put(worker)

    def _replace(self, dead: _Worker) -> _Worker:
        dead.stop(0.1)
        if self.closing:
            return dead
        fresh = _Worker(self.context)
        with self.lock:
            self.workers = [fresh if w is dead else w for w in self.workers]
        return fresh

    def close(self, timeout: float = 2.0) -> None:
        with self.lock:
            self.closing = True
            workers, self.workers = self.workers, []
        for worker in workers:
            worker.stop(timeout)


# What an HTTP API answers, by itself, to a method and path that match no route (a GET on /get too: every operation's
# route is POST only; the MCP endpoint has GET and DELETE routes, and its function answers them 405).
NOT_FOUND = b'{"message":"Not Found"}'


def error(status: int, message: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """The gateway's own answers use the contract's error body too."""
    body = json.dumps({"statusCode": status, "message": message}).encode()
    return status, {"Content-Type": "application/json", **headers}, body


class Cors:
    """What the HTTP API's CorsConfiguration (template.yaml) does: answer preflights itself, and add the allow and
    expose headers to the answers of an allowed origin. Origins: the template's default, plus CORS_ALLOW_ORIGINS
    (comma-separated) for a local front-end such as the Glow web client on localhost."""

    def __init__(self) -> None:
        config = lambdas.cors_configuration()
        extra = [o.strip() for o in os.environ.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()]
        self.origins = [*config.get("AllowOrigins", []), *extra]
        self.methods = ",".join(config.get("AllowMethods", []))
        self.allow_headers = ",".join(config.get("AllowHeaders", []))
        self.expose_headers = ",".join(config.get("ExposeHeaders", []))
        self.max_age = str(config.get("MaxAge", 0))

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and (origin in self.origins or "*" in self.origins)

    def preflight(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        origin = headers.get("origin")
        if not self.allows(origin) or "access-control-request-method" not in headers:
            return 204, {}, b""
        return (
            204,
            {
                "Access-Control-Allow-Origin": str(origin),
                "Access-Control-Allow-Methods": self.methods,
                "Access-Control-Allow-Headers": self.allow_headers,
                "Access-Control-Max-Age": self.max_age,
                "Vary": "Origin",
            },
            b"",
        )

    def decorate(self, headers: dict[str, str], request_headers: dict[str, str]) -> dict[str, str]:
        origin = request_headers.get("origin")
        if not self.allows(origin):
            return headers
        return {
            **headers,
            "Access-Control-Allow-Origin": str(origin),
            "Access-Control-Expose-Headers": self.expose_headers,
            "Vary": "Origin",
        }


class Gateway:
    def __init__(self, workers: int = 2) -> None:
        self.routes = lambdas.routes()
        self.pool = WorkerPool(workers)
        self.extra_get: dict[str, tuple[str, bytes]] = {}
        self.cors = Cors()

    def invoke(
        self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        status, out_headers, data = self._route(method, path, headers, body, source_ip)
        return status, self.cors.decorate(out_headers, headers), data

    def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        allowed = sorted({m for (m, p) in self.routes if p == path})
        if method == "OPTIONS" and allowed:
            return self.cors.preflight(headers)
        spec = self.routes.get((method, path))
        if spec is None:  # no route for this method and path: the HTTP API's own answer, word for word
            return 404, {"Content-Type": "application/json"}, NOT_FOUND
        event = http_event(
            path,
            headers=headers,
            raw_body=body if body else None,
            method=method,
            source_ip=source_ip,
            add_default_headers=False,
        )
        try:
            result = self.pool.apply(spec.logical_id, event)
        except RuntimeError:  # what API Gateway answers when the function itself fails (its log says why)
            return error(502, "The function failed; its log has the details.")
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        out_headers = {k: v for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        return int(result.get("statusCode", 200)), out_headers, data

    def close(self) -> None:
        self.pool.close()


def make_server(gateway: Gateway, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path, _, query = self.path.partition("?")
            if self.command == "GET" and path == "/swagger" and "format=json" in query.split("&"):
                path = "/openapi.json"  # Swagger UI's own link to the document it shows
            if self.command == "GET" and path in gateway.extra_get:
                content_type, data = gateway.extra_get[path]
                self._send(200, {"Content-Type": content_type}, data)
                return
            if self.command in ("GET", "HEAD") and path == "/":
                message = {"message": "Glow Activity API v5", "swagger": "/swagger", "openapi": "/openapi.json"}
                self._send(
                    302, {"Location": "/swagger", "Content-Type": "application/json"}, json.dumps(message).encode()
                )
                return
            status, out_headers, data = gateway.invoke(self.command, path, headers, body, self.client_address[0])
            self._send(status, out_headers, data)

        def __getattr__(self, name: str) -> Any:
            # Any method reaches the router, which answers 404/405 as API Gateway would (never a 501).
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            if os.environ.get("ACTIVITY_GATEWAY_QUIET") != "1":
                super().log_message(format, *args)

    return _Server((host, port), Handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # stopping never waits for a request in flight: its worker is stopped anyway

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer (a closed tab, a stopped script), or a connection cut while the
        gateway stops, is not the server's error: socket errors are not reported."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    # socketserver's default backlog is 5: a sixth client connecting at once had its SYN dropped and retried a
    # second later (the concurrency benchmark's p99 of ~1 s with 16 clients)
    request_queue_size = 128
