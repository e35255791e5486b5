"""POST /get against hand-computed answers (real PostgreSQL, handler from template.yaml)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from factories import World

from glow_activity.refresh import refresh_views


def summary_by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["profile_id"]: row for row in body["profile_summary"]}


@pytest.fixture
def dept_world(world: World, refresh: Any) -> dict[str, Any]:
    """One department, an admin outside it, three TAs inside with activity around 2025-03-10."""
    dept = world.department("Physics")
    admin = world.profile("Admin", roles=["admin"])
    ana = world.profile("Ana", departments=[dept])
    bo = world.profile("Bo", departments=[dept], roles=["custom"])
    cy = world.profile("Cy", departments=[dept], roles=["guest"], inactive_roles=["member"])
    # Ana: sessions at the very edges of 2025-03-10
    world.session(ana, "2025-03-10T00:00:00")
    world.session(ana, "2025-03-10T23:59:59.999999")
    world.session(ana, "2025-03-11T00:00:00")
    world.login(ana, "2025-03-10T12:00:00")
    world.grant(ana, "2025-03-10T13:00:00", kind="emulation", granted_by=admin)
    # Bo: one session inside, logins outside, a problem inside
    world.session(bo, "2025-03-10T08:00:00")
    world.login(bo, "2025-03-09T23:59:59")
    world.problem(bo, "2025-03-10T09:00:00")
    world.grant(bo, "2025-03-10T10:00:00", kind="access")
    # Cy: only a login on 03-10
    world.login(cy, "2025-03-10T06:00:00")
    refresh()
    return {"dept": dept, "admin": admin, "ana": ana, "bo": bo, "cy": cy, "world": world}


def test_counts_for_a_date_only_window_include_the_whole_last_day(invoke: Any, dept_world: dict[str, Any]) -> None:
    # GIVEN activity on and around 2025-03-10  WHEN an admin asks for that day in the department
    w = dept_world
    res = invoke(
        "get", {"date_from": "2025-03-10", "date_to": "2025-03-10", "department_ids": [w["dept"]]}, w["admin"].headers
    )
    # THEN 23:59:59.999999 counts and 00:00 of the next day does not
    assert res.status == 200, res.body
    body = res.body
    assert body["sessions_count"] == 3  # Ana x2 + Bo
    assert body["logins_count"] == 2  # Ana + Cy (Bo's is the day before)
    assert body["emulations_count"] == 1
    assert body["active_profiles_count"] == 3
    rows = summary_by_id(body)
    assert rows[w["ana"].id] == {
        "profile_id": w["ana"].id,
        "profile_name": "Ana",
        "sessions_count": 2,
        "logins_count": 1,
        "grants_count": 1,
        "problems_count": 0,
        "activity_count": 4,
    }
    assert rows[w["bo"].id]["activity_count"] == 3  # session + problem + grant
    assert rows[w["bo"].id]["problems_count"] == 1
    assert rows[w["cy"].id]["activity_count"] == 1
    assert [r["profile_name"] for r in body["profile_summary"]] == ["Ana", "Bo", "Cy"]
    assert body["profile_summary_total"] == 3


def test_date_time_bounds_inside_a_day_are_exact_and_inclusive(invoke: Any, dept_world: dict[str, Any]) -> None:
    w = dept_world
    filters = {"department_ids": [w["dept"]]}
    res = invoke(
        "get",
        {**filters, "date_from": "2025-03-10T08:00:00Z", "date_to": "2025-03-10T23:59:59.999999"},
        w["admin"].headers,
    )
    body = res.body
    assert body["sessions_count"] == 2  # Bo 08:00 (inclusive lower) + Ana 23:59:59.999999 (inclusive upper)
    assert body["logins_count"] == 1  # Ana 12:00
    # An offset moves the instant: 10:00+02:00 is 08:00Z
    res = invoke(
        "get",
        {**filters, "date_from": "2025-03-10T10:00:00+02:00", "date_to": "2025-03-10T09:59:59+01:00"},
        w["admin"].headers,
    )
    assert res.body["sessions_count"] == 1  # only Bo at 08:00Z
    assert res.body["logins_count"] == 0


def test_open_ended_windows(invoke: Any, dept_world: dict[str, Any]) -> None:
    w = dept_world
    all_time = invoke("get", {"department_ids": [w["dept"]]}, w["admin"].headers).body
    assert (all_time["sessions_count"], all_time["logins_count"]) == (4, 3)
    since = invoke(
        "get", {"department_ids": [w["dept"]], "date_from": "2025-03-10T23:59:59.999999Z"}, w["admin"].headers
    ).body
    assert since["sessions_count"] == 2
    until = invoke("get", {"department_ids": [w["dept"]], "date_to": "2025-03-09"}, w["admin"].headers).body
    assert until["sessions_count"] == 0
    assert until["logins_count"] == 1  # Bo 03-09 23:59:59


def test_role_filter_uses_active_roles_only_and_combines_with_departments(
    invoke: Any, dept_world: dict[str, Any]
) -> None:
    w = dept_world
    world: World = w["world"]
    other = world.department()
    outsider = world.profile("Outsider", departments=[other], roles=["member"])
    world.session(outsider, "2025-03-10T12:00:00")
    body = invoke("get", {"roles": ["member"], "department_ids": [w["dept"]]}, w["admin"].headers).body
    # Cy's ta role is inactive: only Ana (ta) in the department
    assert set(summary_by_id(body)) == {w["ana"].id}
    # without the department filter the outsider's session is there; names either department -> both
    refresh_views(world.conn, "cli")
    both = invoke("get", {"roles": ["member"], "department_ids": [w["dept"], other]}, w["admin"].headers).body
    assert set(summary_by_id(both)) == {w["ana"].id, outsider.id}
    instructors = invoke("get", {"roles": ["guest", "custom"], "department_ids": [w["dept"]]}, w["admin"].headers).body
    assert set(summary_by_id(instructors)) == {w["bo"].id, w["cy"].id}


def test_deleted_profiles_are_invisible(invoke: Any, dept_world: dict[str, Any], refresh: Any) -> None:
    w = dept_world
    w["world"].conn.run("UPDATE profiles SET deleted_at = now() WHERE id = CAST(:id AS uuid)", id=w["ana"].id)
    body = invoke("get", {"department_ids": [w["dept"]]}, w["admin"].headers).body
    assert w["ana"].id not in summary_by_id(body)
    assert body["sessions_count"] == 1  # Bo only
    assert w["ana"].id not in body["resources"]["profiles"]


def test_ordering_ties_break_by_name_then_id(invoke: Any, world: World, refresh: Any) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    names = ["bob", "Alice", "alice", "Bob"]
    profiles = [world.profile(n, departments=[dept]) for n in names]
    twins = [world.profile("Same", departments=[dept]) for _ in range(2)]
    busy = world.profile("Zed", departments=[dept])
    for p in [*profiles, *twins]:
        world.login(p, "2025-01-01T00:00:00")
    world.login(busy, "2025-01-01T00:00:00")
    world.login(busy, "2025-01-02T00:00:00")
    quiet = world.profile("Quiet", departments=[dept])  # no activity: not listed
    refresh()
    body = invoke("get", {"department_ids": [dept]}, admin.headers).body
    got = [(r["profile_name"], r["profile_id"]) for r in body["profile_summary"]]
    expected_rest = sorted([(p.name, p.id) for p in [*profiles, *twins]])
    assert got == [("Zed", busy.id), *expected_rest]
    assert quiet.id not in body["resources"]["profiles"]
    # the window: summary_limit / summary_offset, and the total of listed profiles
    page = invoke("get", {"department_ids": [dept], "summary_limit": 2, "summary_offset": 1}, admin.headers).body
    assert [r["profile_id"] for r in page["profile_summary"]] == [pid for _, pid in expected_rest[:2]]
    assert page["profile_summary_total"] == 7
    assert set(page["resources"]["profiles"]) == {pid for _, pid in expected_rest[:2]}


def test_resources_describe_listed_profiles(invoke: Any, world: World, refresh: Any) -> None:
    d1, d2 = world.department("B dept"), world.department("A dept")
    admin = world.profile(roles=["admin"])
    p = world.profile("Res", departments=[d1, d2], roles=["member", "custom"], inactive_roles=["guest"], email=None)
    world.session(p, "2025-05-05T05:05:05")
    refresh()
    body = invoke("get", {"department_ids": [d1]}, admin.headers).body
    assert body["resources"]["profiles"][p.id] == {
        "id": p.id,
        "name": "Res",
        "email": None,
        "department_ids": sorted([d1, d2]),
        "roles": ["custom", "member"],
    }


def test_coordinator_sees_only_shared_departments(invoke: Any, world: World, refresh: Any) -> None:
    mine, shared, foreign = world.department("Mine"), world.department("Shared"), world.department("Foreign")
    coord = world.profile("Coord", roles=["instructional"], departments=[mine, shared])
    inside = world.profile("Inside", departments=[mine])
    both = world.profile("Both", departments=[shared, foreign])
    outside = world.profile("Outside", departments=[foreign])
    twice = world.profile("Twice", departments=[mine, shared])  # a member of both: counted once
    gone = world.profile("Gone", departments=[mine], deleted=True)
    for p in (inside, both, outside, twice, gone):
        world.session(p, "2025-02-02T02:02:02")
    refresh()
    for window in ({}, {"date_from": "2025-02-01", "date_to": "2025-02-28"}):
        body = invoke("get", window, coord.headers).body
        assert set(summary_by_id(body)) == {inside.id, both.id, twice.id}
        assert body["sessions_count"] == 3 and body["active_profiles_count"] == 3
        assert summary_by_id(body)[twice.id]["sessions_count"] == 1
    facets = body["analytics"]
    assert facets["department_options"] == [{"value": mine, "label": "Mine"}, {"value": shared, "label": "Shared"}]
    # filtering by its own department narrows; naming a foreign one is forbidden
    only_mine = invoke("get", {"department_ids": [mine]}, coord.headers).body
    assert set(summary_by_id(only_mine)) == {inside.id, twice.id}
    forbidden = invoke("get", {"department_ids": [mine, foreign]}, coord.headers)
    assert forbidden.status == 403
    assert forbidden.body["statusCode"] == 403 and forbidden.body["message"]


def test_admin_may_name_unknown_departments(invoke: Any, world: World, refresh: Any) -> None:
    admin = world.profile(roles=["admin"])
    body = invoke("get", {"department_ids": ["no-such-department"]}, admin.headers).body
    assert body["sessions_count"] == 0 and body["profile_summary"] == []


@pytest.mark.parametrize("roles", [["member"], ["custom", "guest"], []])
def test_non_readers_get_403(invoke: Any, world: World, roles: list[str]) -> None:
    p = world.profile(roles=roles)
    res = invoke("get", {}, p.headers)
    assert res.status == 403
    assert res.body == {"statusCode": 403, "message": res.body["message"]}


def test_inactive_admin_role_grants_nothing(invoke: Any, world: World) -> None:
    p = world.profile(roles=["member"], inactive_roles=["admin", "instructional"])
    assert invoke("get", {}, p.headers).status == 403


def test_totals_and_facets_over_everything(invoke: Any, empty_db: Any, refresh: Any) -> None:
    world = World(empty_db)
    d1, d2, empty_dept = world.department("Zoology"), world.department("Art"), world.department("Empty")
    admin = world.profile("Admin", roles=["admin"], departments=[d1])
    a = world.profile("A", departments=[d1], roles=["member"])
    b = world.profile("B", departments=[d2], roles=["custom"], inactive_roles=["guest"])
    gone = world.profile("Gone", departments=[empty_dept], roles=["guest"], deleted=True)
    world.session(a, "2024-12-31T23:00:00")
    world.login(b, "2025-06-30T10:00:00")
    world.grant(b, "2025-07-15T10:00:00", kind="emulation", granted_by=admin)  # not a session/login day
    world.session(gone, "2023-01-01T00:00:00")
    refresh()
    body = invoke("get", {"roles": ["member"]}, admin.headers).body
    assert (body["sessions_count"], body["logins_count"], body["emulations_count"]) == (1, 0, 0)
    facets = body["analytics"]  # ignores the role filter, covers visible (non-deleted) profiles
    assert facets["department_options"] == [{"value": d2, "label": "Art"}, {"value": d1, "label": "Zoology"}]
    assert facets["role_options"] == ["admin", "custom", "member"]
    assert facets["date_range_earliest"] == "2024-12-31"
    assert facets["date_range_latest"] == "2025-06-30"
    assert facets["fields"]["cohorts"]["visible"] is False and facets["fields"]["attempts"]["visible"] is False
    assert facets["cohort_options"] == [] and facets["attempt_options"] == []
    everything = invoke("get", {}, admin.headers).body
    assert everything["emulations_count"] == 1
    assert everything["active_profiles_count"] == 2


def test_empty_database_has_null_date_range(invoke: Any, empty_db: Any) -> None:
    admin = World(empty_db).profile(roles=["admin"])
    body = invoke("get", None, admin.headers).body
    assert body["analytics"]["date_range_earliest"] is None
    assert body["sessions_count"] == 0 and body["profile_summary_total"] == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"date_from": "2025-03-02", "date_to": "2025-03-01"}, "body"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2025-02-30"}, "date_to"),
        ({"summary_limit": 0}, "summary_limit"),
        ({"summary_limit": 5001}, "summary_limit"),
        ({"summary_offset": -1}, "summary_offset"),
        ({"department_ids": "dept-1"}, "department_ids"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_bodies_are_422_with_detail(invoke: Any, world: World, body: dict[str, Any], field: str) -> None:
    admin = world.profile(roles=["admin"])
    res = invoke("get", body, admin.headers)
    assert res.status == 422
    assert res.body["statusCode"] == 422
    assert any(field in [str(p) for p in d["loc"]] for d in res.body["detail"]), res.body
    assert all(set(d) == {"loc", "msg", "type"} for d in res.body["detail"])
    # plain sentences: no pydantic prefix, one full stop
    texts = [res.body["message"], *(d["msg"] for d in res.body["detail"])]
    assert not any(text.startswith(("Value error", "Assertion failed")) or "Value error, " in text for text in texts)
    assert res.body["message"].endswith(".") and not res.body["message"].endswith("..")


def test_a_window_backwards_says_so_plainly(invoke: Any, world: World) -> None:
    admin = world.profile(roles=["admin"])
    res = invoke("get", {"date_from": "2025-03-02", "date_to": "2025-03-01"}, admin.headers)
    assert res.status == 422
    assert res.body["message"] == "Invalid request: body: date_from must not be after date_to."
    assert res.body["detail"][0]["msg"] == "date_from must not be after date_to"


def test_bad_json_is_400(invoke: Any, world: World) -> None:
    admin = world.profile(roles=["admin"])
    res = invoke("get", headers=admin.headers, raw_body="{not json")
    assert res.status == 400
    assert res.body == {"statusCode": 400, "message": res.body["message"]}


def test_gzip_when_accepted(invoke: Any, world: World) -> None:
    admin = world.profile(roles=["admin"])
    plain = invoke("get", {}, admin.headers)
    zipped = invoke("get", {}, {**admin.headers, "Accept-Encoding": "gzip, deflate"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.body == plain.body


def test_every_response_is_gzipped_when_accepted(invoke: Any, world: World) -> None:
    admin = world.profile(roles=["admin"])
    accept = {**admin.headers, "Accept-Encoding": "br;q=1, gzip;q=0.8"}
    for operation, body in (("docs", {}), ("problem", {"type": "bug", "message": "zip"}), ("refresh", None)):
        res = invoke(operation, body, accept)
        assert res.status == 200 and res.headers["content-encoding"] == "gzip", operation
        assert res.body
    error = invoke("get", {"nope": 1}, accept)
    assert error.status == 422 and error.headers["content-encoding"] == "gzip"
    assert error.body["statusCode"] == 422
    unauthorized = invoke("get", {}, {"Accept-Encoding": "gzip"})
    assert unauthorized.headers["content-encoding"] == "gzip" and unauthorized.body["statusCode"] == 401
    refused = invoke("docs", {}, {**admin.headers, "Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers


def test_json_parts_are_spliced_only_where_the_empty_field_is() -> None:
    from glow_activity.models import ActivityResources, ProfileResource, dump_with_json_parts

    tricky = 'x","profiles":{}'  # the marker's text inside a value is escaped, so it never matches
    model = ActivityResources(profiles={})
    body = dump_with_json_parts(
        model,
        {"profiles": json.dumps({"p": {"id": "p", "name": tricky, "email": None, "department_ids": [], "roles": []}})},
    )
    assert ActivityResources.model_validate_json(body).profiles["p"].name == tricky
    named = ActivityResources(
        profiles={"p": ProfileResource(id="p", name=tricky, email=None, department_ids=[], roles=[])}
    )
    with pytest.raises(ValueError, match="not one empty field"):
        dump_with_json_parts(named, {"profiles": "{}"})


def test_a_problem_without_a_profile_is_in_no_ones_counts(invoke: Any, dept_world: dict[str, Any]) -> None:
    """The admin's unfiltered scope reads the event tables with an anti-join on deleted profiles; a problem the
    platform stored without a profile must not turn into a profile of its own. (The admin sees every test's
    data, so the answers are compared before and after the problem.)"""
    w = dept_world
    windows = ({"date_from": "2025-03-10T08:00:00Z", "date_to": "2025-03-10T20:00:00Z"}, {})
    before = [invoke("get", window, w["admin"].headers).body for window in windows]
    w["world"].problem(None, "2025-03-10T09:30:00")
    for window, earlier in zip(windows, before, strict=True):
        body = invoke("get", window, w["admin"].headers).body
        assert None not in summary_by_id(body)
        assert body["profile_summary_total"] == earlier["profile_summary_total"]
        assert body["profile_summary"] == earlier["profile_summary"]


def test_problems_and_their_total_agree_right_after_a_write(invoke: Any, world: World, refresh: Any) -> None:
    # GIVEN a department with a problem, refreshed
    dept = world.department()
    coord = world.profile(roles=["instructional"], departments=[dept])
    ta = world.profile("Tia", roles=["member"], departments=[dept])
    world.problem(ta, "2026-11-02T10:00:00")
    refresh()
    body = {"department_ids": [dept], "date_from": "2026-11-01"}
    before = invoke("get", body, coord.headers).body
    assert before["problems_total"] == len(before["problems"]) == 1
    # WHEN three new problems are flagged, through the endpoint, with no refresh since
    for n in range(3):
        made = invoke("problem", {"type": "bug", "message": f"new {n}"}, ta.headers)
        assert made.status == 200
    # THEN the list shows them and the total counts them: one answer, one snapshot
    after = invoke("get", body, {**coord.headers, "X-Bypass-Cache": "1"}).body
    assert len(after["problems"]) == 4
    assert after["problems_total"] == 4
