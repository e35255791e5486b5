"""`activity serve`: everything a developer needs to call the API on localhost."""

from __future__ import annotations

import os
from pathlib import Path

from . import embedded_pg, local_s3
from .gateway import Gateway, make_server

DEMO_JWT_SECRET = "local-development-secret-change-me"  # noqa: S105 - local only, printed to the developer


def prepare_database(scale: str, data_dir: Path) -> str:
    """Migrate, seed demo data when empty; returns a fresh demo admin API key."""
    from glow_activity.db import open_connection, params_from_url
    from glow_activity.migrate import migrate
    from glow_activity.refresh import refresh_views

    from .keys import create_key
    from .seed import DEMO_ADMIN_INDEX, demo_profile_id, seed

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
    key = create_key(conn, admin, "activity serve demo")
    conn.close()
    return key


def serve(port: int = 3000, workers: int = 2, scale: str = "small", data_dir: Path | None = None) -> None:
    os.environ.setdefault("JWT_SECRET", DEMO_JWT_SECRET)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_DEV", "false")
    key = prepare_database(scale, data_dir or Path(".local/pgdata"))
    s3 = local_s3.start()
    gateway = Gateway(workers)
    try:
        from .openapi import install_swagger

        install_swagger(gateway)
    except ImportError:  # pragma: no cover - docs tooling is optional for serving
        pass
    server = make_server(gateway, "127.0.0.1", port)
    base = f"http://localhost:{port}/api/v5/artifacts/activity"
    print(
        f"""
Glow Activity API v5 on http://localhost:{port}  (Ctrl-C to stop)
  database : {os.environ["DATABASE_URL"]}
  local S3 : {os.environ["AWS_ENDPOINT_URL"]} bucket {os.environ["EXPORT_BUCKET"]}
  Swagger  : http://localhost:{port}/swagger
  demo admin API key: {key}

  curl -s -X POST {base}/get -H 'X-Api-Key: {key}'
  curl -s -X POST {base}/search -H 'X-Api-Key: {key}' -H 'Content-Type: application/json' -d '{{"page_size": 5}}'
  curl -s -X POST {base}/refresh -H 'X-Api-Key: {key}'
""",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        gateway.close()
        s3.stop()
