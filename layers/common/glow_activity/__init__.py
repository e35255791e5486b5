"""Shared code of the Glow Activity API v5 functions (shipped as the `common` Lambda layer)."""

API_PREFIX = "/api/v5/artifacts/activity"
OPERATIONS = ("get", "search", "problem", "resolve", "refresh", "export", "docs")
