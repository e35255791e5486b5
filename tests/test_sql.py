"""SQL as values: the fragments of one statement are bound together, and a parameter name bound to two values is
refused instead of one fragment silently reading the other's value."""

from __future__ import annotations

import pytest

from glow_activity.sql import Sql, bind


def test_fragments_that_share_a_name_with_the_same_value_bind() -> None:
    scope = Sql("p.id = ANY(CAST(:scope_departments AS text[]))", {"scope_departments": ["d1"]})
    page = Sql("s.profile_id = :caller", {"scope_departments": ["d1"], "caller": "p1"})
    assert bind(scope.params, page.params) == {"scope_departments": ["d1"], "caller": "p1"}
    text, params = scope  # a fragment unpacks as (text, params)
    assert text.startswith("p.id") and params == {"scope_departments": ["d1"]}


def test_a_name_bound_to_two_values_is_refused() -> None:
    with pytest.raises(ValueError, match=":lo is bound to two values"):
        bind({"lo": "2025-01-01"}, {"hi": "2025-02-01"}, {"lo": "2025-01-02"})
