"""The route of POST /api/v5/artifacts/activity/search — paginated session history."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from glow_activity.freshness import CACHE_TAGS_SEARCH
from glow_activity.models import SearchActivityRequest, SearchActivityResponse
from glow_activity.routes import SECURITY, cached_read, create_app, operation_responses, path_of
from glow_activity.session_history import session_history

app = create_app()


@app.post(
    path_of("search"),
    summary="Search Activity",
    operation_id="activity.search",
    description="Get activity session history (bottom table, paginated).",
    responses=operation_responses(SearchActivityResponse, 304),
    security=SECURITY,
    tags=["Activity"],
)
def search_activity(request: Annotated[SearchActivityRequest, Body()]):  # type: ignore[no-untyped-def]
    return cached_read(request, lambda conn, caller: session_history(conn, caller, request), CACHE_TAGS_SEARCH)
