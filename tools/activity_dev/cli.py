"""`activity`: the developer CLI (database, keys, local gateway, OpenAPI, benchmarks)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from . import REPO_ROOT
from .bench import PARTS as BENCH_PARTS
from .seed import SCALES, SHAPES

SHAPE_HELP = (
    "how activity spreads: steady (a power law over profiles, smooth over time; default), seasonal (2%% of "
    "profiles hold 60%% of the events; weekends, summer and the winter break quiet; bursty days) or powerlaw "
    "(profile 1 + floor((P-1) u^3), uniform over two years)"
)


def _connect():  # type: ignore[no-untyped-def]
    from glow_activity.db import open_connection, params_from_url

    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set (use `activity serve` for an embedded database)")
    return open_connection(params_from_url(url))


def cmd_migrate(args: argparse.Namespace) -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # its progress is printed below, step by step
    from glow_activity.migrate import MigrationRefused, migrate, plan

    conn = _connect()
    try:
        if args.plan:
            print("\n".join(plan(conn, attached=args.attached).lines()))
            return
        done = migrate(conn, attached=args.attached, progress=lambda step: print(f"- {step}", flush=True))
    except MigrationRefused as exc:
        sys.exit(f"refused: {exc}")
    print(f"done: {len(done)} step(s)" if done else "nothing to do (up to date)")


def cmd_runtime_user(args: argparse.Namespace) -> None:
    from glow_activity.migrate import ensure_runtime_login

    password = os.environ.get("ACTIVITY_RUNTIME_PASSWORD")
    if not password:
        sys.exit(
            "set ACTIVITY_RUNTIME_PASSWORD to the password the user should have (it is not taken on the command line)"
        )
    ensure_runtime_login(_connect(), args.name, password)
    print(f"{args.name}: LOGIN, member of activity_runtime only")


def cmd_seed(args: argparse.Namespace) -> None:
    from glow_activity.migrate import migrate
    from glow_activity.refresh import refresh_views

    from .seed import seed

    conn = _connect()
    migrate(conn)
    started = time.perf_counter()
    timings = seed(conn, args.scale, args.seed, progress=lambda line: print(line, flush=True), shape=args.shape)
    seeded = time.perf_counter() - started
    refresh_started = time.perf_counter()
    refresh_views(conn, "cli")
    timings["refresh"] = round(time.perf_counter() - refresh_started, 2)
    from glow_activity.platform import READS

    counts = {t: conn.run(f"SELECT count(*) FROM {t}")[0][0] for t in READS}
    print(
        json.dumps(
            {
                "scale": args.scale,
                "shape": args.shape,
                "seed": args.seed,
                "rows": counts,
                "seconds": timings,
                "seed_seconds": round(seeded, 1),
            },
            indent=2,
        )
    )


def cmd_refresh(_: argparse.Namespace) -> None:
    from glow_activity.refresh import refresh_views

    started = time.perf_counter()
    result = refresh_views(_connect(), "cli")
    print(f"refreshed {', '.join(result.refreshed_views)} in {time.perf_counter() - started:.2f}s")


def cmd_key_create(args: argparse.Namespace) -> None:
    from .keys import create_key

    conn = _connect()
    if args.app is not None:
        print(create_key(conn, None, args.app, args.key))
        return
    try:
        uuid.UUID(args.profile)
    except ValueError:
        sys.exit(f"--profile takes a profile id (uuid), not {args.profile!r}")
    if not conn.run("SELECT 1 FROM profiles WHERE id = CAST(:id AS uuid) AND deleted_at IS NULL", id=args.profile):
        sys.exit(f"no such profile: {args.profile}")
    print(create_key(conn, args.profile, args.name, args.key))


def lambda_invoke(function: str, payload: dict[str, object], region: str | None) -> dict[str, object]:
    """Invoke a deployed function synchronously with the caller's AWS credentials (IAM decides who may)."""
    import boto3

    client = boto3.client("lambda", region_name=region) if region else boto3.client("lambda")
    answer = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    result = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        return {"ok": False, "error": f"the function failed: {result}"}
    return dict(result)


def cmd_operator(args: argparse.Namespace) -> None:
    payload: dict[str, object] = {"command": args.operator}
    for field in ("email", "name", "profile_id", "key_id", "key"):
        value = getattr(args, field, None)
        if value:
            payload[field] = value
    result = lambda_invoke(args.function, payload, args.region)
    print(json.dumps(result, indent=2))
    if not result.get("ok"):
        sys.exit(1)


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve import serve

    serve(port=args.port, workers=args.workers, scale=args.scale, data_dir=Path(args.data_dir))


def cmd_openapi(args: argparse.Namespace) -> None:
    from .openapi import openapi_json

    Path(args.output).write_text(openapi_json(), encoding="utf-8")
    print(f"wrote {args.output}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import main as bench_main

    bench_main(
        scale=args.scale,
        iterations=args.iterations,
        output=Path(args.output),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        only=tuple(args.only),
        concurrency=args.concurrency,
        shape=args.shape,
    )


def cmd_bench_table(args: argparse.Namespace) -> None:
    from .bench_table import main as table_main

    print(table_main([Path(path) for path in args.results]), end="")


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of `activity` (tests/test_docs_true.py holds README to them)."""
    parser = argparse.ArgumentParser(prog="activity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database: migrate, seed, refresh").add_subparsers(dest="db", required=True)
    migrate = db.add_parser(
        "migrate",
        help="bring DATABASE_URL up to date: the service's schema `activity`, the runtime role, indexes built "
        "CONCURRENTLY on the platform's tables (never blocking its writers for more than a moment)",
    )
    migrate.add_argument("--plan", action="store_true", help="print what it would do, step by step, and change nothing")
    migrate.add_argument(
        "--attached",
        action="store_true",
        help="the database is Glow's own: its platform tables must already be there, and are never created or "
        "altered (without it, missing platform tables are created: a standalone database)",
    )
    migrate.set_defaults(func=cmd_migrate)
    runtime = db.add_parser(
        "runtime-user",
        help="create (or set the password of) the LOGIN user the functions connect as: a member of activity_runtime "
        "and nothing else; the password comes from ACTIVITY_RUNTIME_PASSWORD",
    )
    runtime.add_argument("name", help="the user's name, e.g. activity_app")
    runtime.set_defaults(func=cmd_runtime_user)
    seed = db.add_parser("seed", help="deterministic synthetic data (then a refresh)")
    seed.add_argument(
        "--scale",
        choices=tuple(SCALES),
        default="small",
        help="how much: small 200 profiles / 5k sessions, medium 2k / 200k, large 20k / 2M, history 2k / 2M, "
        "xlarge 200k / 20M (default: small)",
    )
    seed.add_argument("--shape", choices=SHAPES, default="steady", help=SHAPE_HELP)
    seed.add_argument(
        "--seed", type=int, default=42, help="random seed: the same seed gives the same rows (default 42)"
    )
    seed.set_defaults(func=cmd_seed)
    db.add_parser("refresh", help="refresh the rollups (a full pass)").set_defaults(func=cmd_refresh)

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="key", required=True)
    create = key.add_parser("create", help="print a new raw API key; only its hash is stored")
    holder = create.add_mutually_exclusive_group(required=True)
    holder.add_argument("--profile", metavar="UUID", help="the profile id (uuid) the key acts as")
    holder.add_argument(
        "--app",
        metavar="NAME",
        help="an application's key named NAME (e.g. the Glow web client's): it identifies no one and is valid only "
        "with a user's Bearer token",
    )
    create.add_argument("--name", default="cli", help="a label stored with a profile's key (default: cli)")
    create.add_argument(
        "--key",
        metavar="RAW",
        help="register this raw key instead of making a new one (e.g. the key the Glow web client already sends)",
    )
    create.set_defaults(func=cmd_key_create)

    operator = sub.add_parser(
        "operator",
        help="a deployed stack's database, without a bastion: runs a command in its migration function (the only one "
        "with the database's owner credentials) with your AWS credentials (aws lambda invoke)",
    )
    commands = operator.add_subparsers(dest="operator", required=True)
    for name, text in (
        ("plan", "what a migration would do to the database (changes nothing)"),
        ("bootstrap", "the first admin (a profile with the admin role, by e-mail) and an API key for it"),
        ("create-key", "an API key for a live profile (--profile-id or --email)"),
        ("app-key", "an application's key, e.g. the Glow web client's (--key registers the one it already sends)"),
        ("revoke-key", "revoke a key (--key-id)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--function", required=True, help="the stack's migration function (output OperatorFunctionName)"
        )
        command.add_argument("--region", help="its AWS region (default: your AWS configuration's)")
        if name in ("bootstrap", "create-key"):
            command.add_argument("--email", help="the profile's e-mail")
            command.add_argument("--name", help="bootstrap: the admin's name; create-key: the key's label")
        if name == "create-key":
            command.add_argument("--profile-id", help="the profile's id (instead of --email)")
        if name == "app-key":
            command.add_argument("--name", default="glow-web", help="a label for the key (default glow-web)")
            command.add_argument("--key", help="the raw key the application already sends (default: make a new one)")
        if name == "revoke-key":
            command.add_argument("--key-id", required=True, help="the key's id")
        command.set_defaults(func=cmd_operator)

    serve = sub.add_parser("serve", help="local API Gateway + embedded PostgreSQL + local S3")
    serve.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1 (default 3000; `make dev PORT=...`)")
    serve.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes, each one Lambda container running one invocation at a time (default 2)",
    )
    serve.add_argument(
        "--scale",
        choices=tuple(SCALES),
        default="small",
        help="demo data seeded into an empty database (default small; see `activity db seed --help`)",
    )
    serve.add_argument(
        "--data-dir",
        default=str(REPO_ROOT / ".local" / "pgdata"),
        help="the embedded PostgreSQL's data directory, kept between runs (default .local/pgdata); "
        "ignored when DATABASE_URL is set",
    )
    serve.set_defaults(func=cmd_serve)

    openapi = sub.add_parser("openapi", help="write the OpenAPI 3.1 document")
    openapi.add_argument("--output", default=str(REPO_ROOT / "openapi.json"), help="where (default openapi.json)")
    openapi.set_defaults(func=cmd_openapi)

    bench = sub.add_parser("bench", help="benchmarks (see docs/PERFORMANCE.md)")
    bench.add_argument("--scale", choices=tuple(SCALES), default="small", help="data to measure on (default small)")
    bench.add_argument("--shape", choices=SHAPES, default="steady", help=SHAPE_HELP)
    bench.add_argument("--iterations", type=int, default=0, help="0 = default for the scale")
    bench.add_argument(
        "--output",
        default=str(REPO_ROOT / "bench" / "results" / "latest.json"),
        help="where the JSON results go (default bench/results/latest.json)",
    )
    bench.add_argument("--data-dir", default="", help="keep the embedded database here (reused when seeded)")
    bench.add_argument(
        "--only",
        action="append",
        default=[],
        choices=tuple(BENCH_PARTS),
        help="run only this part (repeatable; --output is then worth pointing elsewhere); attach runs only when "
        "named: it seeds a database of the platform's tables alone and migrates it --attached under a writer; so "
        "does attach_in_place, on this database: it drops what the service made here and migrates it --attached",
    )
    bench.add_argument(
        "--concurrency",
        type=int,
        default=0,
        metavar="N",
        help="also run N clients against the local gateway with 8 workers for 60 s of mixed reads (default: skip)",
    )
    bench.set_defaults(func=cmd_bench)

    table = sub.add_parser("bench-table", help="a Markdown table of several bench results side by side (by scale)")
    table.add_argument("results", nargs="+", help="JSON files written by `activity bench`, smallest scale first")
    table.set_defaults(func=cmd_bench_table)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
