"""POST /api/v5/artifacts/activity/mcp — the seven operations as MCP tools for AI agents (Streamable HTTP,
stateless, JSON answers). GET and DELETE reach it too, to be told 405. The protocol: mcp_server.py; the tools:
mcp_tools.py; the protected-resource metadata that leads agent hosts to Glow's Keycloak (its GET routes under
/.well-known/oauth-protected-resource): mcp_oauth.py."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mcp_oauth import metadata_response, metadata_route
from mcp_server import serve_mcp

from glow_activity.export.jobs import ASYNC_EVENT_KEY, run_async_job
from glow_activity.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if ASYNC_EVENT_KEY in event:  # activity_export's large export, handed to this function's own invocation
        return run_async_job(event[ASYNC_EVENT_KEY])
    route = metadata_route(event)
    if route is not None:  # public, no database: what an agent host reads before it has anyone to sign in
        return metadata_response(event, route)
    return serve_mcp(event, context)
