"""The Glow web client's own requests (../shared/spec/GLOW-CLIENT.md), replayed as it sends them: its application
key in X-Api-Key and the user's Keycloak id token (RS256, `kid`, served as JWKS by a local identity provider) in
Authorization. Every field the client reads is checked against straightforward SQL over the base tables."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from factories import World
from identity_provider import IdentityProvider, identity_provider, new_rsa_key

# The activity page's window: JavaScript toISOString() values for March 2026 in US Eastern time.
DATE_FROM, DATE_TO = "2026-03-01T05:00:00.000Z", "2026-03-31T04:59:59.999Z"
LO, HI = "2026-03-01 05:00:00+00", "2026-03-31 04:59:59.999+00"
PAGE_LOAD = {
    "date_from": DATE_FROM,
    "date_to": DATE_TO,
    "page_limit": 50,
    "page_offset": 0,
    "history_page": 0,
    "history_page_size": 50,
    "history_sort_by": "date",
    "history_sort_order": "desc",
}


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    with identity_provider(monkeypatch) as provider:
        yield provider


@pytest.fixture
def glow(empty_db: Any, idp: IdentityProvider, refresh: Any) -> dict[str, Any]:
    """Two departments, an admin, a coordinator of the first known to Keycloak by e-mail only, members with
    sessions, logins, grants and problems in and around March 2026, and the client's application key."""
    world = World(empty_db)
    physics, chemistry = world.department("Physics"), world.department("Chemistry")
    admin = world.profile("Ada Admin", roles=["admin"], key=False)
    coord = world.profile(
        "Cora Coordinator", roles=["instructional"], departments=[physics], email="Cora.Coord@glow.example", key=False
    )
    ana = world.profile("Ana", roles=["member"], departments=[physics], key=False)
    bo = world.profile("Bo", roles=["guest"], inactive_roles=["member"], departments=[physics], key=False)
    cy = world.profile("Cy", roles=["member"], departments=[chemistry], key=False)
    gone = world.profile("Gone", roles=["member"], departments=[physics], deleted=True, key=False)
    sessions = {}
    for person, days in ((ana, (2, 9, 9, 20)), (bo, (3, 31)), (cy, (5, 28)), (gone, (6,))):
        for day in days:
            # sessions on odd days have had AI runs (the page's Duration column); the others none yet
            runs = {"first_run_at": f"2026-03-{day:02d}T12:01:00", "last_run_at": f"2026-03-{day:02d}T12:{day:02d}:30"}
            sessions[(person.name, day)] = world.session(
                person,
                f"2026-03-{day:02d}T12:00:00",
                active=day == 20,
                message_count=day,
                total_cost="0.25",
                **(runs if day % 2 else {}),
            )
    world.session(ana, "2026-03-01T04:59:59")  # before the window (it starts at 05:00 UTC)
    world.session(cy, "2026-03-31T05:00:00")  # after it
    world.login(ana, "2026-03-02T08:00:00")
    world.login(cy, "2026-03-15T08:00:00")
    world.login(coord, "2026-03-16T08:00:00")
    world.grant(ana, "2026-03-04T08:00:00", kind="emulation", granted_by=admin)
    world.grant(cy, "2026-03-04T09:00:00", kind="access", granted_by=admin)
    problems = [
        world.problem(ana if i % 3 else cy, f"2026-03-{1 + i % 29:02d}T{10 + i % 12:02d}:00:00", type="bug")
        for i in range(55)
    ]
    world.problem(ana, "2026-02-27T10:00:00")  # outside the window
    app_key, app_key_id = world.api_key(None)  # type: ignore[arg-type]
    refresh()
    return {
        "conn": empty_db,
        "world": world,
        "physics": physics,
        "chemistry": chemistry,
        "admin": admin,
        "coord": coord,
        "ana": ana,
        "bo": bo,
        "cy": cy,
        "gone": gone,
        "sessions": sessions,
        "problems": problems,
        "app_key": app_key,
        "app_key_id": app_key_id,
    }


def client_headers(glow: dict[str, Any], idp: IdentityProvider, **claims: Any) -> dict[str, str]:
    """What the client's Next.js server sends: its application key and the signed-in user's token."""
    return {"X-Api-Key": glow["app_key"], "Content-Type": "application/json", **idp.bearer(**claims)}


def as_admin(glow: dict[str, Any], idp: IdentityProvider) -> dict[str, str]:
    return client_headers(glow, idp, profile_id=glow["admin"].id, email="ada@glow.example")


def as_coordinator(glow: dict[str, Any], idp: IdentityProvider) -> dict[str, str]:
    """A token from an external identity provider: only `email` (in another letter case) and Keycloak's own sub."""
    return client_headers(glow, idp, email="cora.COORD@glow.example")


# ---------------------------------------------------------------- straightforward SQL
SCOPE_SQL = """SELECT p.id FROM profiles p WHERE p.deleted_at IS NULL
    AND (CAST(:depts AS text[]) IS NULL
         OR p.id IN (SELECT profile_id FROM profile_departments WHERE department_id = ANY(CAST(:depts AS text[]))))
    AND (CAST(:roles AS text[]) IS NULL
         OR p.id IN (SELECT profile_id FROM profile_roles WHERE active AND role = ANY(CAST(:roles AS text[]))))"""
WINDOW = "BETWEEN CAST(:lo AS timestamptz) AND CAST(:hi AS timestamptz)"


def expected(conn: Any, departments: list[str] | None = None, roles: list[str] | None = None) -> dict[str, Any]:
    """The contract's definitions, over the base tables, for the page's window (None = no filter)."""

    def run(sql: str) -> list[list[Any]]:
        return conn.run(sql.format(scope=SCOPE_SQL, window=WINDOW), lo=LO, hi=HI, depts=departments, roles=roles)

    def count(sql: str) -> int:
        return int(run(sql)[0][0])

    summary = run("""
        SELECT p.id::text, p.name, s, l, g, q, s + l + g + q AS a FROM profiles p
        CROSS JOIN LATERAL (SELECT
            (SELECT count(*) FROM sessions x WHERE x.profile_id = p.id AND x.created_at {window}) AS s,
            (SELECT count(*) FROM logins x WHERE x.profile_id = p.id AND x.logged_in_at {window}) AS l,
            (SELECT count(*) FROM grants x WHERE x.profile_id = p.id AND x.created_at {window}) AS g,
            (SELECT count(*) FROM problems x WHERE x.profile_id = p.id AND x.created_at {window}) AS q) c
        WHERE p.id IN ({scope}) AND s + l + g + q > 0
        ORDER BY a DESC, p.name COLLATE "C", p.id""")
    problems = run("""
        SELECT q.id::text, q.type, q.message, q.resolved, p.name FROM problems q JOIN profiles p ON p.id = q.profile_id
        WHERE q.profile_id IN ({scope}) AND q.created_at {window} ORDER BY q.created_at DESC, q.id DESC""")
    return {
        "sessions_count": count("SELECT count(*) FROM sessions WHERE profile_id IN ({scope}) AND created_at {window}"),
        "logins_count": count("SELECT count(*) FROM logins WHERE profile_id IN ({scope}) AND logged_in_at {window}"),
        "emulations_count": count(
            "SELECT count(*) FROM grants WHERE kind = 'emulation' AND profile_id IN ({scope}) AND created_at {window}"
        ),
        "active_profiles_count": count(
            "SELECT count(*) FROM ({scope}) p WHERE"
            " EXISTS (SELECT 1 FROM sessions x WHERE x.profile_id = p.id AND x.created_at {window})"
            " OR EXISTS (SELECT 1 FROM logins x WHERE x.profile_id = p.id AND x.logged_in_at {window})"
        ),
        "profile_summary": [
            dict(
                zip(
                    (
                        "profile_id",
                        "profile_name",
                        "sessions_count",
                        "logins_count",
                        "grants_count",
                        "problems_count",
                        "activity_count",
                    ),
                    row,
                    strict=True,
                )
            )
            for row in summary
        ],
        "problems": [
            dict(zip(("problem_id", "type", "message", "resolved", "profile_name"), row, strict=True))
            for row in problems
        ],
    }


def client_view_of_problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("problem_id", "type", "message", "resolved", "profile_name")
    return [{k: item[k] for k in keys} for item in body["problems"]]


# ---------------------------------------------------------------- the activity page
def test_admins_page_load(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    # GIVEN the client's page-load request, as it sends it on a hard refresh
    headers = {**as_admin(glow, idp), "X-Bypass-Cache": "1"}
    res = invoke("get", PAGE_LOAD, headers)
    # THEN every field the page reads is there and equals the base tables
    assert res.status == 200, res.body
    body, want = res.body, expected(glow["conn"])
    for card in ("sessions_count", "active_profiles_count", "logins_count", "emulations_count"):
        assert body[card] == want[card], card
    assert (
        want["sessions_count"] == 7 and want["emulations_count"] == 1
    )  # Ana 4, Bo 1 (31st noon is past the end), Cy 2
    assert body["profile_summary"] == want["profile_summary"]
    assert body["profile_summary_total"] == len(want["profile_summary"])
    # history: the same page as search's for the same filters, page, page size and order
    search = invoke(
        "search", {"date_from": DATE_FROM, "date_to": DATE_TO, "page": 0, "page_size": 50}, as_admin(glow, idp)
    ).body
    history = body["history"]
    assert history == {
        "items": search["data"],
        "total_count": search["total_count"],
        "page": 0,
        "page_size": 50,
        "total_pages": search["total_pages"],
    }
    assert history["total_count"] == 7 and history["total_pages"] == 1
    assert [item["session_created_at"] for item in history["items"]] == sorted(
        (item["session_created_at"] for item in history["items"]), reverse=True
    )
    # the sessions table's Duration column: each item's run times equal the session's, null when it has none
    runs = {
        str(sid): (first, last)
        for sid, first, last in glow["conn"].run(
            "SELECT id, first_run_at, last_run_at FROM sessions WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=[item["session_id"] for item in history["items"]],
        )
    }
    for item in history["items"]:
        first, last = runs[item["session_id"]]
        assert item["first_run_at"] == (first.astimezone(UTC).isoformat().replace("+00:00", "Z") if first else None)
        assert item["last_run_at"] == (last.astimezone(UTC).isoformat().replace("+00:00", "Z") if last else None)
    with_runs = [item for item in history["items"] if item["first_run_at"]]
    assert 0 < len(with_runs) < len(history["items"])
    item = history["items"][0]
    assert set(item) >= {
        "session_id",
        "profile_id",
        "profile_name",
        "session_created_at",
        "active",
        "group_count",
        "run_count",
        "first_run_at",
        "last_run_at",
        "chat_count",
        "attempt_count",
        "message_count",
        "problem_count",
        "total_tokens",
        "total_cost",
    }
    # problems: the 50 newest of the window, newest first, and exactly how many there are
    assert len(want["problems"]) == 55
    assert body["problems_total"] == 55
    assert client_view_of_problems(body) == want["problems"][:50]
    assert all(item["created_at"].endswith("Z") for item in body["problems"])
    # the filter card
    analytics = body["analytics"]
    assert {name: state["visible"] for name, state in analytics["fields"].items()} == {
        "date_range": True,
        "departments": True,
        "cohorts": False,
        "roles": True,
        "attempts": False,
    }
    assert analytics["department_options"] == [
        {"value": glow["chemistry"], "label": "Chemistry"},
        {"value": glow["physics"], "label": "Physics"},
    ]
    assert analytics["cohort_options"] == [] and analytics["attempt_options"] == []
    assert analytics["date_range_earliest"] == "2026-03-01"
    assert analytics["role_options"] == ["admin", "guest", "instructional", "member"]


def test_history_pages_and_order_follow_the_request(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    body = {**PAGE_LOAD, "history_page": 1, "history_page_size": 3, "history_sort_order": "asc"}
    history = invoke("get", body, as_admin(glow, idp)).body["history"]
    search = invoke(
        "search",
        {"date_from": DATE_FROM, "date_to": DATE_TO, "page": 1, "page_size": 3, "sort_order": "asc"},
        as_admin(glow, idp),
    ).body
    assert history["items"] == search["data"] and len(history["items"]) == 3
    assert (history["page"], history["page_size"], history["total_pages"]) == (1, 3, math.ceil(7 / 3))
    # without any history_* field, there is no history (the page then says "No sessions found")
    plain = {k: v for k, v in PAGE_LOAD.items() if not k.startswith("history_")}
    assert invoke("get", plain, as_admin(glow, idp)).body["history"] is None


def test_legacy_paging(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    want = expected(glow["conn"])["profile_summary"]
    body = invoke("get", {**PAGE_LOAD, "page_limit": 2, "page_offset": 1}, as_admin(glow, idp)).body
    assert body["profile_summary"] == want[1:3]
    assert body["profile_summary_total"] == len(want)
    assert set(body["resources"]["profiles"]) == {row["profile_id"] for row in want[1:3]}
    # the same value under both names is fine; two different values are refused
    same = invoke("get", {**PAGE_LOAD, "page_limit": 2, "summary_limit": 2}, as_admin(glow, idp))
    assert same.status == 200
    both = invoke("get", {**PAGE_LOAD, "page_limit": 2, "summary_limit": 3}, as_admin(glow, idp))
    assert both.status == 422 and "page_limit" in both.body["message"]


def test_summary_profile_id(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    full = invoke("get", PAGE_LOAD, as_admin(glow, idp)).body
    want = {row["profile_id"]: row for row in expected(glow["conn"])["profile_summary"]}
    picked = invoke("get", {**PAGE_LOAD, "summary_profile_id": glow["cy"].id}, as_admin(glow, idp)).body
    assert picked["profile_summary"] == [want[glow["cy"].id]]
    assert picked["profile_summary_total"] == 1
    assert list(picked["resources"]["profiles"]) == [glow["cy"].id]
    for unchanged in ("sessions_count", "logins_count", "emulations_count", "active_profiles_count", "analytics"):
        assert picked[unchanged] == full[unchanged], unchanged
    # a profile with no activity in the window, or one out of scope: nothing listed
    for pid in (glow["gone"].id, str(uuid.uuid4())):
        none = invoke("get", {**PAGE_LOAD, "summary_profile_id": pid}, as_admin(glow, idp)).body
        assert (none["profile_summary"], none["profile_summary_total"], none["resources"]["profiles"]) == ([], 0, {})


def test_admin_with_a_role_filter(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    # an admin's newest problems are walked newest first, each profile checked against the filters on its own
    body = invoke("get", {**PAGE_LOAD, "roles": ["member"]}, as_admin(glow, idp)).body
    want = expected(glow["conn"], roles=["member"])
    assert want["problems"] and len(want["profile_summary"]) < len(expected(glow["conn"])["profile_summary"])
    assert body["profile_summary"] == want["profile_summary"]
    assert body["problems_total"] == len(want["problems"])
    assert client_view_of_problems(body) == want["problems"][:50]


def test_coordinator_by_email_with_a_role_filter(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    # GIVEN a coordinator whose token carries only an e-mail, in another letter case than the profile's
    res = invoke("get", {**PAGE_LOAD, "roles": ["member"]}, as_coordinator(glow, idp))
    assert res.status == 200, res.body
    body = res.body
    # THEN it sees its department's profiles with an active `member` role: Ana (Bo's member role is inactive)
    want = expected(glow["conn"], departments=[glow["physics"]], roles=["member"])
    for card in ("sessions_count", "active_profiles_count", "logins_count", "emulations_count"):
        assert body[card] == want[card], card
    assert body["profile_summary"] == want["profile_summary"]
    assert [row["profile_name"] for row in body["profile_summary"]] == ["Ana"]
    assert body["problems_total"] == len(want["problems"])
    assert client_view_of_problems(body) == want["problems"][:50]
    assert {item["profile_name"] for item in body["history"]["items"]} == {"Ana"}
    assert body["analytics"]["department_options"] == [{"value": glow["physics"], "label": "Physics"}]
    # and the audit row names the coordinator's profile and the client's application key
    row = glow["conn"].run(
        "SELECT profile_id::text, api_key_id::text FROM activity.audit_log WHERE request_id = :r",
        r=res.headers["x-request-id"],
    )
    assert row == [[glow["coord"].id, glow["app_key_id"]]]


# ---------------------------------------------------------------- page titles
def test_docs_page_titles(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    activity = invoke("docs", {}, as_admin(glow, idp)).body
    assert activity["list"]["title"] and activity["list"]["description"]
    assert activity["list"] == activity["page_metadata"]["list"]
    sid = glow["sessions"][("Ana", 9)]
    session = invoke("docs", {"entity_id": sid}, as_coordinator(glow, idp))
    assert session.status == 200, session.body
    assert "Ana" in session.body["detail"]["title"] and "2026-03-09" in session.body["detail"]["title"]
    assert session.body["detail"]["description"]
    assert session.body["detail"] == session.body["page_metadata"]["detail"]
    # a session of a department the coordinator does not share: as if it did not exist
    foreign = invoke("docs", {"entity_id": glow["sessions"][("Cy", 5)]}, as_coordinator(glow, idp))
    assert foreign.status == 404
    assert invoke("docs", {"entity_id": str(uuid.uuid4())}, as_admin(glow, idp)).status == 404
    # a problem: its type and its profile's name
    problem = invoke("docs", {"entity_id": glow["problems"][1]}, as_admin(glow, idp)).body["detail"]
    assert "bug" in problem["title"] and "Ana" in problem["title"]


# ---------------------------------------------------------------- the Refresh button
def test_refresh_button_pressed_by_a_member(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    conn = glow["conn"]
    runs = lambda: conn.run("SELECT count(*) FROM activity.refresh_runs")[0][0]  # noqa: E731
    before = runs()
    for _ in range(2):
        res = invoke("refresh", {}, client_headers(glow, idp, profile_id=glow["ana"].id))
        assert res.status == 200, res.body
        assert res.body["success"] is True
    assert runs() == before  # the fixture's refresh is recent: debounced, nothing ran


# ---------------------------------------------------------------- refusals
def test_refusals_are_401(invoke: Any, glow: dict[str, Any], idp: IdentityProvider) -> None:
    world: World = glow["world"]
    world.profile("Twin One", roles=["admin"], email="twin@glow.example", key=False)
    world.profile("Twin Two", roles=["member"], email="TWIN@glow.example", key=False)
    key = {"X-Api-Key": glow["app_key"]}
    cases = {
        "application key alone": key,
        "unknown e-mail": client_headers(glow, idp, email="nobody@glow.example"),
        "e-mail shared by two profiles": client_headers(glow, idp, email="twin@glow.example"),
        "foreign signer": {**key, **idp.bearer(profile_id=glow["admin"].id, key=new_rsa_key())},
        "unknown kid": {**key, **idp.bearer(profile_id=glow["admin"].id, kid="kid-unknown")},
        "expired": client_headers(glow, idp, profile_id=glow["admin"].id, exp_in=-60),
        "deleted profile": client_headers(glow, idp, profile_id=glow["gone"].id),
        "profile_id not a uuid": client_headers(glow, idp, profile_id="ada"),
        "wrong application key": {"X-Api-Key": "glow_wrong", **idp.bearer(profile_id=glow["admin"].id)},
    }
    for name, headers in cases.items():
        res = invoke("get", PAGE_LOAD, headers)
        assert res.status == 401, name
        assert res.headers["www-authenticate"] == "Bearer", name
        assert res.body == {"statusCode": 401, "message": "The credentials are not valid or have expired."}, name


def test_identity_claims_are_configurable(
    invoke: Any, glow: dict[str, Any], idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glow_activity.settings import get_settings

    # `sub` first: Keycloak's own user id is not a profile id, so Glow's usual token is refused
    monkeypatch.setenv("JWT_IDENTITY_CLAIMS", "sub")
    get_settings.cache_clear()
    assert invoke("get", PAGE_LOAD, as_admin(glow, idp)).status == 401
    ok = client_headers(glow, idp, sub=glow["admin"].id, profile_id=str(uuid.uuid4()))
    assert invoke("get", PAGE_LOAD, ok).status == 200
