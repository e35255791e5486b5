"""`activity serve`: everything a developer needs to call the API on localhost."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import embedded_pg, local_s3
from .gateway import Gateway, make_server

DEMO_JWT_SECRET = "local-development-secret-change-me"  # noqa: S105 - local only, printed to the developer


RUNTIME_USER = "activity_app"  # the workers' LOGIN member of activity_runtime, as the functions' in AWS


@dataclass(frozen=True)
class Demo:
    key: str  # a fresh API key of the demo admin
    admin_url: str  # the database as its owner (migrations, keys); the workers connect as RUNTIME_USER
    coordinator_id: str  # profiles of the demo data to make keys for
    member_id: str


def prepare_database(scale: str, data_dir: Path) -> Demo:
    """Migrate, seed demo data when empty; returns a fresh demo admin API key and two other demo profiles. The
    workers then connect as a LOGIN member of activity_runtime (DATABASE_URL), as the functions do in AWS."""
    import secrets

    from glow_activity.db import open_connection, params_from_url
    from glow_activity.migrate import ensure_runtime_login, migrate
    from glow_activity.refresh import refresh_views

    from .keys import create_key
    from .seed import DEMO_ADMIN_INDEX, DEMO_COORDINATOR_INDEX, DEMO_MEMBER_INDEX, demo_profile_id, seed

    url = embedded_pg.database_url(data_dir)
    conn = open_connection(params_from_url(url))
    migrate(conn)
    if not conn.run("SELECT EXISTS (SELECT 1 FROM profiles)")[0][0]:
        print(f"seeding demo data ({scale}) ...", flush=True)
        seed(conn, scale)
        refresh_views(conn, "cli")
    admin = demo_profile_id(conn, 42, DEMO_ADMIN_INDEX)
    if not conn.run("SELECT 1 FROM profiles WHERE id = CAST(:id AS uuid)", id=admin):
        admin = conn.run(
            "SELECT r.profile_id::text FROM profile_roles r JOIN profiles p ON p.id = r.profile_id"
            " WHERE r.role = 'admin' AND r.active AND p.deleted_at IS NULL LIMIT 1"
        )[0][0]
    password = secrets.token_urlsafe(16)
    ensure_runtime_login(conn, RUNTIME_USER, password)
    os.environ["DATABASE_URL"] = embedded_pg.url_as(url, RUNTIME_USER, password)
    demo = Demo(
        key=create_key(conn, admin, "activity serve demo"),
        admin_url=url,
        coordinator_id=demo_profile_id(conn, 42, DEMO_COORDINATOR_INDEX),
        member_id=demo_profile_id(conn, 42, DEMO_MEMBER_INDEX),
    )
    conn.close()
    return demo


def banner(port: int, demo: Demo) -> str:
    """What `make dev` prints: where everything is, and a curl for each of the seven operations."""
    base = f"http://localhost:{port}/api/v5/artifacts/activity"
    json_field = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"
    return f"""
Glow Activity API v5 on http://localhost:{port}  (Ctrl-C or SIGTERM stops it, the database and the local S3)
  database : {os.environ["DATABASE_URL"]}  (the functions' runtime user)
  local S3 : {os.environ["AWS_ENDPOINT_URL"]} bucket {os.environ["EXPORT_BUCKET"]}
  Swagger  : http://localhost:{port}/swagger   (OpenAPI: http://localhost:{port}/openapi.json)
  demo admin API key: {demo.key}

Try it (bash):
  K='{demo.key}'; A={base}; J='Content-Type: application/json'
  curl -s -X POST $A/get -H "X-Api-Key: $K" -H "$J" -d '{{"date_from": "2025-01-01", "roles": ["member"]}}'
  curl -s -X POST $A/docs -H "X-Api-Key: $K"
  # search, then the next page: its next_cursor, with the same filters, sort order and page size
  C=$(curl -s -X POST $A/search -H "X-Api-Key: $K" -H "$J" -d '{{"page_size": 5}}' | {json_field} next_cursor)
  curl -s -X POST $A/search -H "X-Api-Key: $K" -H "$J" -d '{{"page_size": 5, "cursor": "'"$C"'"}}'
  # flag a problem, then resolve it
  P=$(curl -s -X POST $A/problem -H "X-Api-Key: $K" -H "$J" -d '{{"type": "bug", "message": "Tried it"}}' | {json_field} problem_id)
  curl -s -X POST $A/resolve -H "X-Api-Key: $K" -H "$J" -d '{{"problem_id": "'"$P"'"}}'
  curl -s -X POST $A/refresh -H "X-Api-Key: $K"
  # export everything, then download the ZIP from its presigned URL
  U=$(curl -s -X POST $A/export -H "X-Api-Key: $K" | {json_field} download_url)
  curl -s -o activity.zip "$U" && unzip -l activity.zip

Keys for other roles, against this database (demo profiles: an instructional coordinator and a member):
  DATABASE_URL='{demo.admin_url}' .venv/bin/activity key create --profile {demo.coordinator_id}
  DATABASE_URL='{demo.admin_url}' .venv/bin/activity key create --profile {demo.member_id}
"""


def _stop_on_signals() -> None:
    """SIGINT (Ctrl-C, to the whole process group) and SIGTERM end `activity serve` the same way, so that everything
    it started is stopped on the way out. SIGINT's handler is set here too: a process started in the background by
    a shell without job control inherits SIGINT ignored."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _stopping() -> None:
    """Once stopping, a second Ctrl-C or SIGTERM (a group signal, an impatient user) must not cut the clean-up
    short with a traceback: it is under way, and takes a few seconds at most."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def serve(port: int = 3000, workers: int = 2, scale: str = "small", data_dir: Path | None = None) -> None:
    os.environ.setdefault("JWT_SECRET", DEMO_JWT_SECRET)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_DEV", "false")
    _stop_on_signals()
    s3 = gateway = server = None
    try:
        demo = prepare_database(scale, data_dir or Path(".local/pgdata"))
        s3 = local_s3.start()
        gateway = Gateway(workers)
        from .openapi import install_swagger

        install_swagger(gateway)
        server = make_server(gateway, "127.0.0.1", port)
        print(banner(server.server_port, demo), flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        _stopping()
        print("stopping ...", flush=True)
    finally:
        _stopping()
        if server is not None:
            server.server_close()
        if gateway is not None:
            gateway.close()
        if s3 is not None:
            s3.stop()
        embedded_pg.stop_all()
