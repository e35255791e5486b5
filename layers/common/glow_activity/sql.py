"""SQL as values: a fragment's text and the values of its `:named` parameters travel together (`Sql`), and the
fragments of one statement are bound with `bind`, which refuses a name bound to two different values (one
fragment would silently read the other's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Sql(NamedTuple):
    """A fragment of SQL (a condition, a subquery, CTEs) and its parameters. A tuple, so `text, params = ...`."""

    text: str
    params: dict[str, Any]


def bind(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of one statement from those of its fragments. Fragments built from the same scope share
    names (`scope_departments`, `caller`, ...) with the same values; a name with two values is a bug: ValueError."""
    bound: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name in bound and bound[name] != value:
                raise ValueError(f"parameter :{name} is bound to two values ({bound[name]!r} and {value!r})")
            bound[name] = value
    return bound
