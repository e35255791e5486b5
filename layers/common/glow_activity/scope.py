"""The one place that turns a caller and the request's filters into the profiles a query may see.

Fragments are composed in Python so each query gets a plan for exactly its case; every value is a
bound parameter, never formatted into the text.
"""

from __future__ import annotations

from typing import Any

from .auth import Caller
from .models import ActivityFilters
from .sql import Sql


def visible_conditions(caller: Caller) -> Sql:
    """Conditions on `profiles p` for the profiles the caller may see (admin: all non-deleted;
    coordinator: sharing a department; anyone else: itself)."""
    params: dict[str, Any] = {}
    where = ["p.deleted_at IS NULL"]
    if caller.scope == "departments":
        where.append(
            "EXISTS (SELECT 1 FROM profile_departments vd WHERE vd.profile_id = p.id"
            " AND vd.department_id = ANY(CAST(:scope_caller_departments AS text[])))"
        )
        params["scope_caller_departments"] = list(caller.department_ids)
    elif caller.scope == "self":
        where.append("p.id = CAST(:scope_caller AS uuid)")
        params["scope_caller"] = caller.profile_id
    return Sql(" AND ".join(where), params)


def visible_problem_conditions(caller: Caller) -> Sql:
    """Conditions on `problems q` for the problems the caller may see: those about a profile it can see, and
    for an admin also those about no profile."""
    where, params = visible_conditions(caller)
    orphan = " OR q.profile_id IS NULL" if caller.is_admin else ""
    return Sql(f"(EXISTS (SELECT 1 FROM profiles p WHERE p.id = q.profile_id AND {where}){orphan})", params)


def in_scope_conditions(caller: Caller, filters: ActivityFilters) -> Sql:
    """Visible profiles that also pass the department and role filters (both must hold when both given)."""
    sql, params = visible_conditions(caller)
    if filters.department_ids:
        sql += (
            " AND EXISTS (SELECT 1 FROM profile_departments fd WHERE fd.profile_id = p.id"
            " AND fd.department_id = ANY(CAST(:scope_departments AS text[])))"
        )
        params["scope_departments"] = sorted(set(filters.department_ids))
    if filters.roles:
        sql += (
            " AND EXISTS (SELECT 1 FROM profile_roles fr WHERE fr.profile_id = p.id AND fr.active"
            " AND fr.role = ANY(CAST(:scope_roles AS text[])))"
        )
        params["scope_roles"] = sorted(set(filters.roles))
    return Sql(sql, params)


def is_everyone(caller: Caller, filters: ActivityFilters) -> bool:
    """An admin without filters sees every profile but the few deleted ones."""
    return caller.scope == "all" and not filters.department_ids and not filters.roles


def not_deleted_sql(profile_id_column: str, *, early_stop: bool = False) -> str:
    """`is_everyone`'s scope as a condition on a profile_id column: an anti-join with the deleted profiles
    (a few hundred) instead of a join with all the others (tens of thousands): half the time of an admin's
    totals. (A problem may have no profile: it is in no one's counts.) For a walk in index order that stops
    after a few thousand rows (search's pages), the deleted ids are hashed once instead: one look-up per row walked
    cost 4.0 ms of page 100, the hashed set 1.5 ms (docs/PERFORMANCE.md)."""
    if early_stop:  # NULL NOT IN (an empty set) is true: a problem without a profile must be kept out by name
        return (
            f"{profile_id_column} IS NOT NULL AND"
            f" {profile_id_column} NOT IN (SELECT gone.id FROM profiles gone WHERE gone.deleted_at IS NOT NULL)"
        )
    return (
        f"{profile_id_column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM profiles gone"
        f" WHERE gone.id = {profile_id_column} AND gone.deleted_at IS NOT NULL)"
    )


def hashed_scope_sql(profile_id_column: str, caller: Caller, filters: ActivityFilters) -> Sql:
    """An admin's scope as hashed sets on a profile_id column, for a read of thousands of rows (search's deep pages,
    get's count of the window's problems): the deleted profiles (`not_deleted_sql(early_stop=True)`) and, per
    filter, the holders of the roles and the members of the departments, each read once from its index instead of
    looked up per row. A NULL profile_id passes none of them."""
    assert caller.scope == "all", "only an admin sees every profile but the deleted ones"
    params: dict[str, Any] = {}
    where = [not_deleted_sql(profile_id_column, early_stop=True)]
    if filters.department_ids:
        where.append(
            f"{profile_id_column} IN (SELECT fd.profile_id FROM profile_departments fd"
            " WHERE fd.department_id = ANY(CAST(:scope_departments AS text[])))"
        )
        params["scope_departments"] = sorted(set(filters.department_ids))
    if filters.roles:
        where.append(
            f"{profile_id_column} IN (SELECT fr.profile_id FROM profile_roles fr WHERE fr.active"
            " AND fr.role = ANY(CAST(:scope_roles AS text[])))"
        )
        params["scope_roles"] = sorted(set(filters.roles))
    return Sql(" AND ".join(where), params)


def scope_key(caller: Caller) -> str:
    """What, besides the request, decides what a caller sees: part of every ETag."""
    return "|".join((caller.profile_id, ",".join(caller.roles), ",".join(caller.department_ids)))
