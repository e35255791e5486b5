"""The demo and benchmark data (`activity db seed`, what `make dev` shows): every shape seeds what the platform
would hold, session run times included, so that the Glow client's Duration column has something to show."""

from __future__ import annotations

from typing import Any

import pytest
from databases import new_database

from activity_dev.seed import SHAPES, seed
from glow_activity.migrate import migrate


@pytest.fixture(scope="module", params=SHAPES)
def seeded(request: Any, database_url: str) -> Any:
    with new_database(database_url) as conn:
        migrate(conn)
        seed(conn, "small", shape=request.param)
        yield request.param, conn


def test_run_times_are_null_without_runs_and_inside_the_session_with_them(seeded: Any) -> None:
    shape, conn = seeded
    without, with_runs, outside = conn.run(
        """
        SELECT count(*) FILTER (WHERE run_count = 0),
               count(*) FILTER (WHERE run_count > 0),
               count(*) FILTER (WHERE (run_count = 0) <> (first_run_at IS NULL)
                                   OR (first_run_at IS NULL) <> (last_run_at IS NULL)
                                   OR NOT (created_at <= first_run_at AND first_run_at <= last_run_at
                                           AND last_run_at <= updated_at))
        FROM sessions
        """
    )[0]
    assert without > 0 and with_runs > without, shape  # most sessions ran something; some ran nothing
    assert outside == 0, f"{shape}: {outside} sessions whose run times are missing, present without runs or outside"
    durations = conn.run("SELECT count(DISTINCT last_run_at - first_run_at) FROM sessions WHERE run_count > 1")[0][0]
    assert durations > 100, shape  # durations that differ, not one constant


@pytest.fixture(scope="module")
def powerlaw(database_url: str) -> Any:
    with new_database(database_url) as conn:
        migrate(conn)
        seed(conn, "small", shape="powerlaw")
        yield conn


def test_the_powerlaw_shape_puts_most_activity_on_few_profiles_uniformly_in_time(powerlaw: Any) -> None:
    conn = powerlaw
    top_tenth_share, first_half_share = conn.run(
        """
        WITH per AS (SELECT profile_id, count(*) AS n FROM sessions GROUP BY profile_id),
             ranked AS (SELECT n, ntile(10) OVER (ORDER BY n DESC) AS tenth FROM per),
             span AS (SELECT min(created_at) AS lo, max(created_at) AS hi FROM sessions)
        SELECT (SELECT sum(n) FILTER (WHERE tenth = 1)::float / sum(n) FROM ranked),
               (SELECT count(*) FILTER (WHERE created_at < lo + (hi - lo) / 2)::float / count(*) FROM sessions, span)
        """
    )[0]
    # u^3 over profiles: the busiest tenth of profiles holds about 46% of the sessions (a uniform pick: 10%)
    assert top_tenth_share > 0.35
    assert 0.45 < first_half_share < 0.55  # uniform in time: half of the sessions in each half of the two years
