"""POST /search: filters, ordering, 0-based pages, totals and the keyset cursor."""

from __future__ import annotations

import math
from typing import Any

import pytest
from factories import World


@pytest.fixture
def history(world: World, refresh: Any) -> dict[str, Any]:
    dept = world.department()
    admin = world.profile(roles=["admin"])
    ana = world.profile("Ana", departments=[dept], roles=["member"])
    bo = world.profile("Bo", departments=[dept], roles=["custom"])
    sessions = []
    for i in range(7):
        owner = ana if i % 2 == 0 else bo
        sid = world.session(
            owner,
            f"2025-04-0{i + 1}T10:00:00",
            active=i % 3 == 0,
            group_count=i,
            run_count=2 * i,
            chat_count=3,
            attempt_count=1,
            message_count=10 + i,
            total_tokens=1000 * i,
            total_cost=f"{i}.125000",
            # odd sessions have had AI runs (the Glow client's Duration column); even ones none yet
            first_run_at=f"2025-04-0{i + 1}T10:01:00.250" if i % 2 else None,
            last_run_at=f"2025-04-0{i + 1}T10:{10 + i}:30" if i % 2 else None,
        )
        sessions.append((f"2025-04-0{i + 1}T10:00:00.000000Z", sid, owner))
    # three sessions at the same instant: ties broken by session_id
    for _ in range(3):
        sid = world.session(bo, "2025-04-04T10:00:00")
        sessions.append(("2025-04-04T10:00:00.000000Z", sid, bo))
    q1 = world.problem(ana, "2025-04-01T11:00:00", session_id=sessions[0][1])
    world.problem(ana, "2025-04-01T12:00:00", session_id=sessions[0][1])
    refresh()
    return {"dept": dept, "admin": admin, "ana": ana, "bo": bo, "sessions": sessions, "problem": q1}


def ordered(history: dict[str, Any], order: str) -> list[str]:
    keyed = sorted(((at, sid) for at, sid, _ in history["sessions"]), reverse=order == "desc")
    return [sid for _, sid in keyed]


def test_rows_carry_every_field(invoke: Any, history: dict[str, Any]) -> None:
    res = invoke(
        "search", {"department_ids": [history["dept"]], "sort_order": "asc", "page_size": 1}, history["admin"].headers
    )
    assert res.status == 200
    row = res.body["data"][0]
    assert row == {
        "session_id": history["sessions"][0][1],
        "profile_id": history["ana"].id,
        "profile_name": "Ana",
        "session_created_at": "2025-04-01T10:00:00Z",
        "session_updated_at": "2025-04-01T10:05:00Z",
        "active": True,
        "group_count": 0,
        "run_count": 0,
        "first_run_at": None,
        "last_run_at": None,
        "chat_count": 3,
        "attempt_count": 1,
        "message_count": 10,
        "total_tokens": 0,
        "total_cost": 0.125,
        "problem_count": 2,
    }
    assert res.headers["x-cache-tags"] == "artifacts,activity,list"
    # a session with runs carries their times (RFC 3339, UTC)
    second = invoke(
        "search",
        {"department_ids": [history["dept"]], "sort_order": "asc", "page_size": 1, "page": 1},
        history["admin"].headers,
    ).body["data"][0]
    assert second["session_id"] == history["sessions"][1][1]
    assert (second["first_run_at"], second["last_run_at"]) == ("2025-04-02T10:01:00.250000Z", "2025-04-02T10:11:30Z")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_in_both_orders_with_ties(invoke: Any, history: dict[str, Any], order: str) -> None:
    expected = ordered(history, order)
    base = {"department_ids": [history["dept"]], "sort_order": order, "page_size": 3}
    seen = []
    for page in range(4):
        body = invoke("search", {**base, "page": page}, history["admin"].headers).body
        assert body["total_count"] == 10 and body["total_pages"] == 4 and body["page"] == page
        seen += [r["session_id"] for r in body["data"]]
    assert seen == expected
    past = invoke("search", {**base, "page": 9}, history["admin"].headers).body
    assert past["data"] == [] and past["total_count"] == 10 and past["total_pages"] == 4


def test_default_order_is_newest_first(invoke: Any, history: dict[str, Any]) -> None:
    body = invoke("search", {"department_ids": [history["dept"]]}, history["admin"].headers).body
    assert [r["session_id"] for r in body["data"]] == ordered(history, "desc")
    assert body["page"] == 0 and body["page_size"] == 50 and body["total_pages"] == 1


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_continuation_equals_offset_pages(invoke: Any, history: dict[str, Any], order: str) -> None:
    base = {"department_ids": [history["dept"]], "sort_order": order, "page_size": 4}
    offset_pages = [
        [r["session_id"] for r in invoke("search", {**base, "page": p}, history["admin"].headers).body["data"]]
        for p in range(3)
    ]
    body = invoke("search", base, history["admin"].headers).body
    cursor_pages = [[r["session_id"] for r in body["data"]]]
    while body["next_cursor"]:
        body = invoke("search", {**base, "cursor": body["next_cursor"]}, history["admin"].headers).body
        cursor_pages.append([r["session_id"] for r in body["data"]])
        assert body["total_count"] == 10
    assert cursor_pages == offset_pages
    assert body["page"] == 2


def test_cursor_from_other_filters_is_rejected(invoke: Any, history: dict[str, Any]) -> None:
    base = {"department_ids": [history["dept"]], "page_size": 2}
    cursor = invoke("search", base, history["admin"].headers).body["next_cursor"]
    assert invoke("search", {**base, "sort_order": "asc", "cursor": cursor}, history["admin"].headers).status == 422
    assert invoke("search", {**base, "cursor": "garbage!"}, history["admin"].headers).status == 422


def test_filters_window_active_and_roles(invoke: Any, history: dict[str, Any]) -> None:
    h, dept = history, history["dept"]
    window = invoke(
        "search", {"department_ids": [dept], "date_from": "2025-04-02", "date_to": "2025-04-04"}, h["admin"].headers
    ).body
    assert window["total_count"] == 6  # 02, 03, 04 (+3 ties)
    active = invoke("search", {"department_ids": [dept], "active": True}, h["admin"].headers).body
    assert {r["session_id"] for r in active["data"]} == {h["sessions"][i][1] for i in (0, 3, 6)}
    inactive = invoke("search", {"department_ids": [dept], "active": False}, h["admin"].headers).body
    assert inactive["total_count"] == 7
    tas = invoke("search", {"department_ids": [dept], "roles": ["member"]}, h["admin"].headers).body
    assert {r["profile_id"] for r in tas["data"]} == {h["ana"].id}
    assert tas["total_count"] == 4
    assert tas["total_pages"] == math.ceil(4 / 50)


def test_empty_result_has_zero_pages(invoke: Any, history: dict[str, Any]) -> None:
    body = invoke(
        "search", {"department_ids": [history["dept"]], "date_from": "2030-01-01"}, history["admin"].headers
    ).body
    assert body == {"data": [], "total_count": 0, "page": 0, "page_size": 50, "total_pages": 0, "next_cursor": None}


def test_coordinator_scope_and_ta_forbidden(invoke: Any, history: dict[str, Any], world: World) -> None:
    coord = world.profile(roles=["instructional"], departments=[history["dept"]])
    body = invoke("search", {}, coord.headers).body
    assert body["total_count"] == 10
    assert invoke("search", {}, history["ana"].headers).status == 403
    assert invoke("search", {"department_ids": ["elsewhere"]}, coord.headers).status == 403


def test_coordinator_pages_equal_the_admins_view_of_its_departments(
    invoke: Any, history: dict[str, Any], world: World, refresh: Any
) -> None:
    """A coordinator's page is read member by member (session_history.page_sql), an admin's by time: for every
    order, page, cursor and filter the rows are the same as the admin's with the coordinator's departments."""
    second, elsewhere = world.department(), world.department()
    coord = world.profile(roles=["instructional"], departments=[history["dept"], second])
    cy = world.profile("Cy", departments=[second, history["dept"]], roles=["member"])  # in both: listed once
    for at in ("2025-04-04T10:00:00", "2025-04-05T09:00:00", "2025-04-08T00:00:00"):
        world.session(cy, at, active=at.endswith("09:00:00"))
    world.session(world.profile("Out", departments=[elsewhere]), "2025-04-04T10:00:00")
    world.session(world.profile("Gone", departments=[second], deleted=True), "2025-04-04T10:00:00")
    refresh()
    mine = {"department_ids": [history["dept"], second]}
    shapes = [
        {"sort_order": order, "page_size": 3, **extra}
        for order in ("asc", "desc")
        for extra in (
            {},
            {"active": True},
            {"active": False},
            {"date_from": "2025-04-03", "date_to": "2025-04-05"},
            {"roles": ["member"]},
            {"department_ids": [second]},
        )
    ]
    for shape in shapes:
        pages = []
        for page in range(5):
            body = invoke("search", {**shape, "page": page}, coord.headers).body
            admins = invoke("search", {**mine, **shape, "page": page}, history["admin"].headers).body
            assert body["data"] == admins["data"] and body["total_count"] == admins["total_count"], shape
            pages.append([r["session_id"] for r in body["data"]])
        body, by_cursor = invoke("search", shape, coord.headers).body, []
        by_cursor.append([r["session_id"] for r in body["data"]])
        while body["next_cursor"]:
            body = invoke("search", {**shape, "cursor": body["next_cursor"]}, coord.headers).body
            by_cursor.append([r["session_id"] for r in body["data"]])
        assert by_cursor == [p for p in pages if p], shape
    everything = invoke("search", {"page_size": 50}, coord.headers).body["data"]
    assert len(everything) == 13 and len({r["session_id"] for r in everything}) == 13


@pytest.mark.parametrize(
    "body, field",
    [
        ({"sort_order": "sideways"}, "sort_order"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page": -1}, "page"),
        ({"page": "1"}, "page"),
        ({"active": "yes"}, "active"),
        ({"colour": "red"}, "colour"),
        ({"date_from": "2025-03-02", "date_to": "2025-03-01T23:00:00Z"}, "body"),
    ],
)
def test_invalid_search_is_422(invoke: Any, world: World, body: dict[str, Any], field: str) -> None:
    admin = world.profile(roles=["admin"])
    res = invoke("search", body, admin.headers)
    assert res.status == 422, res.body
    assert any(field in [str(p) for p in d["loc"]] for d in res.body["detail"]), res.body


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_deep_page_with_filters_walks_a_hashed_scope_and_finds_the_same_rows(
    invoke: Any, history: dict[str, Any], world: World, refresh: Any, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From HASHED_SCOPE_FROM_OFFSET rows passed over, an admin's filtered walk checks rows against the hashed set of
    out-of-scope profiles instead of looking each one up: the pages must not change (a deleted member, another
    department's member and an inactive role are all left out either way)."""
    from glow_activity import session_history

    gone = world.profile("Gone", departments=[history["dept"]], roles=["member"], deleted=True)
    outside = world.profile("Outside", departments=[world.department()], roles=["member"])
    lapsed = world.profile("Lapsed", departments=[history["dept"]], roles=["guest"], inactive_roles=["member"])
    for who in (gone, outside, lapsed):
        world.session(who, "2025-04-03T09:00:00")
    refresh()
    filters = [
        {"department_ids": [history["dept"]]},
        {"roles": ["member"]},
        {"department_ids": [history["dept"]], "roles": ["member", "custom"]},
    ]
    for body in filters:
        base = {**body, "sort_order": order, "page_size": 2, "date_to": "2025-05-01"}

        def pages(base: dict[str, Any] = base) -> list[list[str]]:
            return [
                [r["session_id"] for r in invoke("search", {**base, "page": p}, history["admin"].headers).body["data"]]
                for p in range(6)
            ]

        looked_up = pages()
        monkeypatch.setattr(session_history, "HASHED_SCOPE_FROM_OFFSET", 1)
        assert pages() == looked_up
        monkeypatch.setattr(session_history, "HASHED_SCOPE_FROM_OFFSET", 10**9)
        assert sum(len(page) for page in looked_up) > 2
