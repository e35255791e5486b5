"""The numbers behind POST /get: per-profile counts from `glow_activity.rollups`, then totals, the ordered
profile_summary window with its resources, and the facets. Right after a refresh the result equals the
contract's definitions for any window."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from glow_activity.auth import Caller
from glow_activity.db import Connection
from glow_activity.models import (
    ActivityResources,
    AnalyticsFacets,
    FacetOption,
    FieldState,
    GetActivityRequest,
    GetActivityResponse,
    ProfileResource,
    ProfileSummaryItem,
)
from glow_activity.rollups import per_profile_counts_sql, plan_window, recent_coverage
from glow_activity.scope import in_scope_conditions, visible_conditions, visible_profiles_sql

KINDS = ("sessions", "logins", "grants", "emulations", "problems")
PROFILE_ROLES = ("admin", "coordinator", "head_ta", "instructor", "ta")  # profile_roles' CHECK constraint


def per_profile_sql(
    caller: Caller, request: GetActivityRequest, recent_from: date | None
) -> tuple[str, dict[str, Any]]:
    """`SELECT profile_id, sessions, logins, grants, emulations, problems` for the in-scope profiles with
    activity in the window."""
    where, params = in_scope_conditions(caller, request)
    plan = plan_window(*request.window(), recent_from)
    return per_profile_counts_sql(where, params, plan, KINDS), params


def summary_sql(caller: Caller, request: GetActivityRequest, recent_from: date | None) -> tuple[str, dict[str, Any]]:
    """Totals and one window of profile_summary (with each listed profile's resource) in one statement."""
    per_profile, params = per_profile_sql(caller, request, recent_from)
    params.update(summary_limit=request.summary_limit, summary_offset=request.summary_offset)
    sql = f"""
WITH per_profile AS ({per_profile}),
scored AS (
    SELECT *, sessions + logins + grants + problems AS activity FROM per_profile
),
totals AS (
    SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
           coalesce(sum(logins), 0)::bigint AS logins,
           coalesce(sum(emulations), 0)::bigint AS emulations,
           count(*) FILTER (WHERE sessions > 0 OR logins > 0) AS active_profiles,
           count(*) FILTER (WHERE activity > 0) AS summary_total
    FROM scored
),
page AS (
    SELECT s.profile_id, p.name, p.email, s.sessions, s.logins, s.grants, s.problems, s.activity,
           ARRAY(SELECT pd.department_id FROM profile_departments pd WHERE pd.profile_id = p.id
                 ORDER BY pd.department_id COLLATE "C") AS department_ids,
           ARRAY(SELECT pr.role FROM profile_roles pr WHERE pr.profile_id = p.id AND pr.active
                 ORDER BY pr.role COLLATE "C") AS roles
    FROM scored s JOIN profiles p ON p.id = s.profile_id
    WHERE s.activity > 0
    ORDER BY s.activity DESC, p.name COLLATE "C", s.profile_id
    LIMIT :summary_limit OFFSET :summary_offset
)
SELECT t.sessions, t.logins, t.emulations, t.active_profiles, t.summary_total,
       pg.profile_id::text, pg.name, pg.email, pg.sessions, pg.logins, pg.grants, pg.problems, pg.activity,
       pg.department_ids, pg.roles
FROM totals t LEFT JOIN LATERAL (SELECT * FROM page ORDER BY activity DESC, name COLLATE "C", profile_id) pg
    ON true
"""
    return sql, params


def facets_sql(caller: Caller) -> tuple[str, dict[str, Any]]:
    visible, params = visible_profiles_sql(caller)
    visible_where, _ = visible_conditions(caller)
    if caller.is_admin:
        departments = (
            "SELECT d.id, d.name FROM departments d WHERE EXISTS (SELECT 1 FROM profile_departments pd"
            " JOIN profiles p ON p.id = pd.profile_id WHERE pd.department_id = d.id AND " + visible_where + ")"
        )
    else:
        departments = "SELECT d.id, d.name FROM departments d WHERE d.id = ANY(CAST(:facet_departments AS text[]))"
        params["facet_departments"] = list(caller.department_ids)
    sql = f"""
WITH visible AS ({visible})
SELECT
  (SELECT coalesce(json_agg(json_build_object('value', o.id, 'label', o.name)
                            ORDER BY o.name COLLATE "C", o.id COLLATE "C"), '[]')
   FROM ({departments}) o)::text AS departments,
  -- the roles are the schema's five: probe each (stops at the first visible holder) instead of a DISTINCT
  ARRAY(SELECT role FROM unnest(CAST(:facet_roles AS text[])) role
        WHERE EXISTS (SELECT 1 FROM profile_roles r JOIN visible v ON v.id = r.profile_id
                      WHERE r.role = role.role AND r.active)
        ORDER BY role) AS roles,
  dates.earliest, dates.latest
FROM (SELECT min(t.first_active_day) AS earliest, max(t.last_active_day) AS latest
      FROM activity_profile_totals t JOIN visible v ON v.id = t.profile_id) dates
"""
    params["facet_roles"] = list(PROFILE_ROLES)
    return sql, params


def _facets(conn: Connection, caller: Caller) -> AnalyticsFacets:
    sql, params = facets_sql(caller)
    departments_json, roles, earliest, latest = conn.run(sql, **params)[0]
    shown, hidden = FieldState(visible=True, disabled=False), FieldState(visible=False, disabled=True)
    return AnalyticsFacets(
        fields={"date_range": shown, "departments": shown, "cohorts": hidden, "roles": shown, "attempts": hidden},
        department_options=[FacetOption(**option) for option in json.loads(departments_json)],
        cohort_options=[],
        attempt_options=[],
        role_options=list(roles or []),
        date_range_earliest=earliest.isoformat() if earliest else None,
        date_range_latest=latest.isoformat() if latest else None,
    )


def activity_summary(conn: Connection, caller: Caller, request: GetActivityRequest) -> GetActivityResponse:
    open_window = request.date_from is None and request.date_to is None
    sql, params = summary_sql(caller, request, None if open_window else recent_coverage(conn))
    rows = conn.run(sql, **params)
    sessions, logins, emulations, active_profiles, summary_total = rows[0][:5]
    summary, profiles = [], {}
    for row in rows:
        pid, name, email, s, lg, g, pr, act, departments, roles = row[5:]
        if pid is None:
            continue
        summary.append(
            ProfileSummaryItem(
                profile_id=pid,
                profile_name=name,
                sessions_count=s,
                logins_count=lg,
                grants_count=g,
                problems_count=pr,
                activity_count=act,
            )
        )
        profiles[pid] = ProfileResource(
            id=pid, name=name, email=email, department_ids=list(departments or []), roles=list(roles or [])
        )
    return GetActivityResponse(
        sessions_count=sessions,
        active_profiles_count=active_profiles,
        logins_count=logins,
        emulations_count=emulations,
        profile_summary=summary,
        profile_summary_total=summary_total,
        resources=ActivityResources(profiles=profiles),
        analytics=_facets(conn, caller),
    )
