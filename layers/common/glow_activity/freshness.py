"""When the rollups were last refreshed: the `X-Data-As-Of` of get and search."""

from __future__ import annotations

# A scalar subquery: each read selects it beside its numbers, in the same statement and snapshot.
LATEST_REFRESH_SQL = "SELECT finished_at FROM activity.refresh_runs WHERE outcome = 'success' ORDER BY id DESC LIMIT 1"

CACHE_TAGS_GET = "artifacts,activity"
CACHE_TAGS_SEARCH = "artifacts,activity,list"
INVALIDATED_TAGS = ["artifacts", "activity", "list"]
