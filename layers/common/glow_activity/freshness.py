"""When the rollups were last refreshed: the `X-Data-As-Of` of get and search."""

from __future__ import annotations

from datetime import datetime

from .db import Connection
from .models import iso

LATEST_REFRESH_SQL = """
SELECT finished_at FROM refresh_runs WHERE outcome = 'success' ORDER BY id DESC LIMIT 1
"""

CACHE_TAGS_GET = "artifacts,activity"
CACHE_TAGS_SEARCH = "artifacts,activity,list"
INVALIDATED_TAGS = ["artifacts", "activity", "list"]


def data_as_of(conn: Connection) -> str | None:
    rows = conn.run(LATEST_REFRESH_SQL)
    finished: datetime | None = rows[0][0] if rows else None
    return iso(finished) if finished else None
