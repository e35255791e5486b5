"""Deterministic synthetic data over every platform table, generated inside PostgreSQL.

Rows are produced by `INSERT ... SELECT generate_series(...)` after `setseed()`: the same seed and
anchor day give the same rows, and the large scale (millions of rows) takes minutes, not hours, because
no row crosses the wire. Activity is skewed: `power(random(), k)` picks profiles, so a few TAs are very
active and most are quiet.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from glow_activity.db import Connection, transaction
from glow_activity.platform import INDEXES

# Our own indexes on the big tables (glow_activity.platform.INDEXES): dropped for the bulk load and built again after
# it from their own definitions, which is several times faster than maintaining them row by row.
BULK_LOAD_INDEXES = tuple(
    index.name for index in INDEXES if index.table in ("sessions", "logins", "grants", "problems")
)


@dataclass(frozen=True)
class Scale:
    departments: int
    profiles: int
    sessions: int
    logins: int
    grants: int
    problems: int
    api_keys: int
    periods: int = 1  # the history is this many consecutive HISTORY_DAYS periods, each with its share of the rows


SCALES = {
    "small": Scale(8, 200, 5_000, 12_000, 500, 250, 20),
    "medium": Scale(40, 2_000, 200_000, 500_000, 10_000, 5_000, 200),
    "large": Scale(150, 20_000, 2_000_000, 5_000_000, 100_000, 50_000, 2_000),
    # medium's profiles and medium's two years of activity, ten times over: twenty years of history, each two years
    # like medium's (what grows with history alone)
    "history": Scale(40, 2_000, 2_000_000, 5_000_000, 100_000, 50_000, 200, periods=10),
    # ten times Glow at large's shape: 200k profiles, 20M sessions, 50M logins, 1M grants, 500k problems
    "xlarge": Scale(600, 200_000, 20_000_000, 50_000_000, 1_000_000, 500_000, 20_000),
}

# How activity spreads over profiles and time:
# - steady: a power law over profiles (`power(random(), k)`), event times drawn smoothly over two years;
# - seasonal: 2% of profiles hold 60% of the events (each about 75 times the median profile), and time is uneven:
#   weekends a quarter of a weekday, summer a fifth and the winter break a tenth of term time, and one day in
#   twenty a burst of four times its share;
# - powerlaw: profile 1 + floor((P - 1) * u^3) of P (the busiest tenth holds ~46% of the events), event times
#   uniform over the two years (the shape of an independent check of round three).
SHAPES = ("steady", "seasonal", "powerlaw")
HISTORY_DAYS = 730


def seasonal_thresholds(anchor: datetime, seed_value: int) -> list[float]:
    """The cumulative share of events on each of the HISTORY_DAYS days before `anchor` (day 1 first), from 0: for
    `width_bucket(random(), thresholds)`, which picks day i with that day's share."""
    bursts = random.Random(seed_value)
    weights = []
    for back in range(1, HISTORY_DAYS + 1):
        day = (anchor - timedelta(days=back)).date()
        weight = 0.25 if day.weekday() >= 5 else 1.0
        if day.month in (6, 7, 8):
            weight *= 0.2
        elif (day.month == 12 and day.day >= 20) or (day.month == 1 and day.day <= 5):
            weight *= 0.1
        if bursts.random() < 0.05:
            weight *= 4
        weights.append(weight)
    total, running, thresholds = sum(weights), 0.0, []
    for weight in weights:
        thresholds.append(running / total)
        running += weight
    return thresholds


def _profile_pick(power: float, shape: str) -> str:
    """SQL for the index of the profile an event belongs to (never the three demo profiles' own indexes first)."""
    if shape == "seasonal":
        pick = "CASE WHEN random() < 0.6 THEN random() * CAST(:n AS int) * 0.02 ELSE random() * CAST(:n AS int) END"
        return f"((({pick})::int + 3) % CAST(:n AS int))"
    if shape == "powerlaw":
        return "((floor((CAST(:n AS int) - 1) * power(random(), 3))::int + 3) % CAST(:n AS int))"
    return f"(((power(random(), {power}) * CAST(:n AS int))::int + 3) % CAST(:n AS int))"


def _instant(power: float, shape: str, periods: int) -> str:
    """SQL for the time of event number `j` before the anchor: in period `j % periods` (0: the last HISTORY_DAYS)."""
    period = f" - (j % {periods}) * interval '{HISTORY_DAYS} days'" if periods > 1 else ""
    if shape == "seasonal":
        return (
            "CAST(:anchor AS timestamptz) - (width_bucket(random(), CAST(:days AS float8[])) - 1) * interval '1 day'"
            f" - random() * interval '1 day'{period}"
        )
    if shape == "powerlaw":
        return f"CAST(:anchor AS timestamptz) - random() * interval '{HISTORY_DAYS} days'{period}"
    return f"CAST(:anchor AS timestamptz) - power(random(), {power}) * interval '{HISTORY_DAYS} days'{period}"


# Profile 0 is always "Demo Admin" (active admin), 1 "Demo Coordinator" (instructional, departments 0 and 1),
# 2 "Demo TA" (member).
DEMO_ADMIN_INDEX = 0
DEMO_COORDINATOR_INDEX = 1
DEMO_MEMBER_INDEX = 2


def profile_id_sql(index: str) -> str:
    """SQL for the deterministic uuid of profile number `index` (an SQL expression)."""
    return f"md5(:seed || ':p:' || ({index}))::uuid"


def session_id_sql(index: str) -> str:
    return f"md5(:seed || ':s:' || ({index}))::uuid"


def demo_profile_id(conn: Connection, seed: int, index: int) -> str:
    return str(conn.run(f"SELECT {profile_id_sql(':i')}::text", seed=str(seed), i=index)[0][0])


FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Tim",
    "Shafi",
    "Leslie",
    "Lynn",
    "John",
    "Katherine",
    "Guido",
    "Anita",
    "Niklaus",
    "José",
    "Zoë",
    "Łukasz",
    "Chloé",
    "Søren",
    "Ngozi",
    "Mei",
    "Arjun",
    "Fatima",
    "Oluwaseun",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Berners-Lee",
    "Goldwasser",
    "Lamport",
    "Conway",
    "McCarthy",
    "Johnson",
    "van Rossum",
    "Borg",
    "Wirth",
    "O'Brien",
    "Núñez",
    "Kowalski",
    "Okafor",
    "Chen",
    "Patel",
]
DEPARTMENTS = [
    "Computer Science",
    "Mathematics",
    "Physics",
    "Chemistry",
    "Biology",
    "History",
    "Economics",
    "Philosophy",
    "Linguistics",
    "Psychology",
    "Statistics",
    "Engineering",
    "Music",
    "Art",
    "Law",
]


def seed(
    conn: Connection,
    scale: str = "small",
    seed_value: int = 42,
    anchor: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    shape: str = "steady",
) -> dict[str, float]:
    """Fill the platform tables; returns seconds per table. Refuses a database that already has profiles."""
    size = SCALES[scale]
    anchor = (anchor or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    if conn.run("SELECT EXISTS (SELECT 1 FROM profiles)")[0][0]:
        raise RuntimeError("the database already has profiles; seed a fresh database")
    p: dict[str, object] = {"seed": str(seed_value), "anchor": anchor}
    if shape == "seasonal":
        p["days"] = seasonal_thresholds(anchor, seed_value)
    timings: dict[str, float] = {}

    def step(name: str, sql: str, **params: object) -> None:
        started = time.perf_counter()
        conn.run(sql, **p, **params)
        timings[name] = round(time.perf_counter() - started, 2)
        if progress:
            progress(f"{name}: {timings[name]} s")

    with transaction(conn):
        conn.run("SET LOCAL synchronous_commit = off")
        conn.run("SET LOCAL work_mem = '256MB'")
        conn.run("SET LOCAL maintenance_work_mem = '1GB'")
        definitions = [
            row[0]
            for row in conn.run(
                "SELECT indexdef FROM pg_indexes WHERE indexname = ANY(CAST(:names AS text[]))",
                names=list(BULK_LOAD_INDEXES),
            )
        ]
        for index in BULK_LOAD_INDEXES:
            conn.run(f"DROP INDEX IF EXISTS {index}")
        conn.run("SELECT setseed(:s)", s=(seed_value % 1000) / 1000.0)
        step(
            "departments",
            """
            INSERT INTO departments (id, name)
            SELECT 'dept-' || lpad(i::text, 3, '0'),
                   (CAST(:names AS text[]))[1 + i % cardinality(CAST(:names AS text[]))]
                   || CASE WHEN i >= cardinality(CAST(:names AS text[]))
                           THEN ' ' || (1 + i / cardinality(CAST(:names AS text[])))::text ELSE '' END
            FROM generate_series(0, CAST(:n AS int) - 1) i""",
            names=DEPARTMENTS,
            n=size.departments,
        )
        step(
            "profiles",
            f"""
            INSERT INTO profiles (id, name, email, created_at, deleted_at)
            SELECT {profile_id_sql("i")},
                   CASE i WHEN 0 THEN 'Demo Admin' WHEN 1 THEN 'Demo Coordinator' WHEN 2 THEN 'Demo TA'
                        ELSE (CAST(:first AS text[]))[1 + (random() * (cardinality(CAST(:first AS text[])) - 1))::int]
                             || ' ' || (CAST(:last AS text[]))[1 + (random() * (cardinality(CAST(:last AS text[])) - 1))::int]
                   END,
                   CASE WHEN random() < 0.05 THEN NULL ELSE 'user' || i || '@glow.example' END,
                   CAST(:anchor AS timestamptz) - interval '800 days' + random() * interval '60 days',
                   CASE WHEN i > 2 AND random() < 0.02 THEN CAST(:anchor AS timestamptz) - random() * interval '300 days' END
            FROM generate_series(0, CAST(:n AS int) - 1) i""",
            first=FIRST_NAMES,
            last=LAST_NAMES,
            n=size.profiles,
        )
        step(
            "profile_departments",
            f"""
            INSERT INTO profile_departments (profile_id, department_id)
            SELECT DISTINCT {profile_id_sql("i")},
                   'dept-' || lpad((CASE WHEN i < 2 THEN k % 2
                                         ELSE (power(random(), 1.5) * CAST(:d AS int))::int % CAST(:d AS int) END)::text, 3, '0')
            FROM generate_series(0, CAST(:n AS int) - 1) i
            CROSS JOIN LATERAL generate_series(0, CASE WHEN i < 2 THEN 1 ELSE (random() * 2.2)::int END) k
            """,
            n=size.profiles,
            d=size.departments,
        )
        step(
            "profile_roles",
            f"""
            INSERT INTO profile_roles (profile_id, role, active)
            SELECT DISTINCT ON (1, 2) {profile_id_sql("i")}, r.role, r.active
            FROM generate_series(0, CAST(:n AS int) - 1) i
            CROSS JOIN LATERAL (
                SELECT CASE WHEN i = 0 THEN 'admin' WHEN i = 1 THEN 'instructional' WHEN i = 2 THEN 'member'
                            WHEN x < 0.80 THEN 'member' WHEN x < 0.90 THEN 'custom' WHEN x < 0.95 THEN 'guest'
                            WHEN x < 0.99 THEN 'instructional' ELSE 'admin' END AS role,
                       i < 3 OR random() > 0.04 AS active
                FROM (SELECT random() AS x) roll
                UNION ALL
                SELECT 'member', false FROM (SELECT random() AS y) extra WHERE i > 2 AND y < 0.08
            ) r
            ORDER BY 1, 2, r.active DESC""",
            n=size.profiles,
        )
        step(
            "sessions",
            f"""
            INSERT INTO sessions (id, profile_id, created_at, updated_at, active, group_count, run_count,
                                  chat_count, attempt_count, message_count, total_tokens, total_cost,
                                  first_run_at, last_run_at)
            SELECT {session_id_sql("j")}, {profile_id_sql(_profile_pick(3, shape))}, t.at,
                   t.at + t.span, t.at > CAST(:anchor AS timestamptz) - interval '2 days' AND random() < 0.6,
                   t.g, t.runs, t.c, (random() * 5)::int, t.c * 4 + (random() * 10)::int,
                   t.tokens, round((t.tokens * 0.000002)::numeric, 6),
                   -- the first and the latest AI run: none without runs, else inside the session, first <= last
                   CASE WHEN t.runs > 0 THEN t.at + t.span * t.first_at END,
                   CASE WHEN t.runs > 0 THEN t.at + t.span * (t.first_at + (1 - t.first_at) * t.last_at) END
            FROM generate_series(0, CAST(:m AS int) - 1) j
            CROSS JOIN LATERAL (SELECT {_instant(1.3, shape, size.periods)} AS at,
                                       random() * interval '3 hours' AS span,
                                       (random() * 6)::int AS g, (random() * 12)::int AS c,
                                       (random() * random() * 200000)::bigint AS tokens,
                                       random() * 0.3 AS first_at, random() AS last_at WHERE j >= 0) t0
            CROSS JOIN LATERAL (SELECT t0.*, t0.g * 2 + (random() * 3)::int AS runs) t
            ORDER BY 1
            """,
            n=size.profiles,
            m=size.sessions,
        )
        step(
            "logins",
            f"""
            INSERT INTO logins (id, profile_id, logged_in_at, method)
            SELECT md5(:seed || ':l:' || j)::uuid, {profile_id_sql(_profile_pick(2.5, shape))},
                   {_instant(1.2, shape, size.periods)},
                   (ARRAY['password', 'sso', 'sso', 'magic_link'])[1 + (random() * 3)::int]
            FROM generate_series(0, CAST(:m AS int) - 1) j
            ORDER BY 1""",
            n=size.profiles,
            m=size.logins,
        )
        step(
            "grants",
            f"""
            INSERT INTO grants (id, profile_id, granted_by, kind, created_at)
            SELECT md5(:seed || ':g:' || j)::uuid, {profile_id_sql(_profile_pick(2, shape))},
                   {profile_id_sql("0")}, CASE WHEN random() < 0.35 THEN 'emulation' ELSE 'access' END,
                   {_instant(1, shape, size.periods)}
            FROM generate_series(0, CAST(:m AS int) - 1) j""",
            n=size.profiles,
            m=size.grants,
        )
        step(
            "problems",
            f"""
            INSERT INTO problems (id, type, message, session_id, profile_id, reported_by, created_at, updated_at,
                                  resolved, resolved_at, resolved_by)
            SELECT md5(:seed || ':q:' || j)::uuid,
                   (ARRAY['feature', 'bug', 'question', 'other'])[1 + (random() * 3)::int],
                   (ARRAY['The AI answer quoted a student''s grade (FERPA)', 'Inappropriate tone in feedback',
                          'Session froze, "retry" did nothing', 'Rubric, comma; and =formula-like text'])
                       [1 + (random() * 3)::int],
                   s.id, s.profile_id, s.profile_id, s.created_at + interval '10 minutes',
                   s.created_at + interval '10 minutes', r.resolved,
                   CASE WHEN r.resolved THEN s.created_at + interval '2 days' END,
                   CASE WHEN r.resolved THEN {profile_id_sql("0")} END
            FROM generate_series(0, CAST(:m AS int) - 1) j
            CROSS JOIN LATERAL (SELECT random() < 0.4 AS resolved,
                                       (random() * (CAST(:sessions AS int) - 1))::int AS k WHERE j >= 0) r
            CROSS JOIN LATERAL (SELECT x.id, x.profile_id, x.created_at FROM sessions x
                                WHERE x.id = {session_id_sql("r.k")}) s""",
            m=size.problems,
            sessions=size.sessions,
        )
        step(
            "api_keys",
            f"""
            INSERT INTO api_keys (id, name, key_hash, profile_id, created_at, expires_at, revoked_at)
            SELECT md5(:seed || 'CAST(:k AS int):' || j)::uuid, 'seed key ' || j, encode(sha256(convert_to(
                       'seed-key-' || :seed || '-' || j, 'UTF8')), 'hex'),
                   {profile_id_sql("(j * 7) % CAST(:n AS int)")}, CAST(:anchor AS timestamptz) - interval '100 days',
                   CASE WHEN j % 10 = 3 THEN CAST(:anchor AS timestamptz) - interval '1 day' END,
                   CASE WHEN j % 10 = 5 THEN CAST(:anchor AS timestamptz) - interval '2 days' END
            FROM generate_series(3, CAST(:k AS int) + 2) j""",
            n=size.profiles,
            k=size.api_keys,
        )
        started = time.perf_counter()
        for definition in definitions:
            conn.run(definition)
        timings["indexes"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    conn.run("ANALYZE")
    timings["analyze"] = round(time.perf_counter() - started, 2)
    return timings
