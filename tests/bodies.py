"""A valid body for each of the seven operations: what the tests that call every endpoint alike send."""

from __future__ import annotations

from typing import Any

ENDPOINTS = ("get", "search", "problem", "resolve", "refresh", "export", "docs")
VALID_BODIES: dict[str, Any] = {
    "get": {},
    "search": {},
    "problem": {"type": "bug", "message": "hello"},
    "resolve": {"problem_id": None},
    "refresh": None,
    "export": {},
    "docs": {},
}


def body_for(operation: str, problem_id: str) -> Any:
    body = VALID_BODIES[operation]
    return {"problem_id": problem_id} if operation == "resolve" else body
