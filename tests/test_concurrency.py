"""Many calls at once: nothing lost, nothing duplicated."""

from __future__ import annotations

import uuid
from typing import Any

from factories import World


def test_fifty_parallel_invocations_lose_and_duplicate_nothing(
    invoke_concurrently: Any, world: World, conn: Any
) -> None:
    dept = world.department()
    admin = world.profile(roles=["admin"], departments=[dept])
    ta = world.profile(roles=["member"], departments=[dept])
    problems = [world.problem(ta, "2025-01-01T00:00:00") for _ in range(5)]
    key = f"parallel-{uuid.uuid4()}"
    calls: list[tuple[str, Any, dict[str, str]]] = []
    for i in range(50):
        kind = i % 8
        if kind == 0:
            calls.append(("get", {"department_ids": [dept]}, admin.headers))
        elif kind == 1:
            calls.append(("search", {"department_ids": [dept]}, admin.headers))
        elif kind == 2:
            calls.append(("problem", {"type": "bug", "message": f"unique {i}"}, ta.headers))
        elif kind == 3:
            calls.append(("problem", {"type": "bug", "message": "same"}, {**ta.headers, "Idempotency-Key": key}))
        elif kind == 4:
            calls.append(("resolve", {"problem_id": problems[i % 5], "resolved": i % 3 == 0}, admin.headers))
        elif kind == 5:
            calls.append(("refresh", None, admin.headers))
        elif kind == 6:
            calls.append(("export", {"department_ids": [dept]}, admin.headers))
        else:
            calls.append(("docs", {}, ta.headers))
    results = invoke_concurrently(calls)
    # the admin's six exports at once: one runs at a time for a caller, and a request while it runs answers it (202
    # as polling it would, or 200 once it is done): each answer names an export some answer started
    exports = [r for c, r in zip(calls, results, strict=True) if c[0] == "export"]
    assert {r.status for r in exports} <= {200, 202}
    assert all(r.body["upload_id"] in {e.body["upload_id"] for e in exports if e.status == 200} for r in exports)
    assert [r.status for c, r in zip(calls, results, strict=True) if c[0] != "export"] == [200] * 44, [
        (c[0], r.status, r.body) for c, r in zip(calls, results, strict=True) if r.status not in (200, 202)
    ]
    unique = [c for c in calls if c[0] == "problem" and "Idempotency-Key" not in c[2]]
    messages = [
        r[0]
        for r in conn.run(
            "SELECT message FROM problems WHERE reported_by = CAST(:p AS uuid) AND message <> 'test problem'", p=ta.id
        )
    ]
    assert sorted(messages) == sorted([c[1]["message"] for c in unique] + ["same"])
    request_ids = [r.headers["x-request-id"] for r in results]
    audited = conn.run(
        "SELECT request_id, count(*) FROM activity.audit_log"
        " WHERE request_id = ANY(CAST(:ids AS text[])) GROUP BY request_id",
        ids=request_ids,
    )
    assert len(audited) == 50 and all(n == 1 for _, n in audited)
    for qid in problems:
        resolved, at = conn.run("SELECT resolved, resolved_at FROM problems WHERE id = CAST(:id AS uuid)", id=qid)[0]
        assert (at is not None) == resolved
