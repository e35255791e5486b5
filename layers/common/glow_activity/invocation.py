"""The invocation being served: its operation, request id, headers, channel and, once authenticated, its caller.
Set by the request path (`api.serve`) for the length of one request; routes read it with `invocation()`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .auth import Caller


@dataclass
class Invocation:
    operation: str
    request_id: str
    headers: dict[str, str]
    channel: str
    caller: Caller | None = None
    audited: bool = False
    # The id a write of this invocation creates, chosen once before its first attempt: a retry on a new connection
    # inserts the same id, so it can never make a second row (problem_reports.create_problem).
    write_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Headers every answer to this invocation carries (the caller's RateLimit fields).
    response_headers: dict[str, str] = field(default_factory=dict)
    # An operation run from inside another invocation (an MCP tools/call): its caller was authenticated and counted
    # against the limit once, by the outer request.
    nested: bool = False

    @property
    def authenticated(self) -> Caller:
        assert self.caller is not None, "route ran before authentication"
        return self.caller


_current: ContextVar[Invocation] = ContextVar("glow_activity_invocation")


def invocation() -> Invocation:
    return _current.get()


def outer_invocation() -> Invocation | None:
    """The invocation this one runs inside of (an MCP tools/call's), if any."""
    return _current.get(None)


@contextmanager
def serving(inv: Invocation) -> Iterator[Invocation]:
    token = _current.set(inv)
    try:
        yield inv
    finally:
        _current.reset(token)
