"""The seven operations: each one's Powertools resolver with its route (`endpoints/<operation>.py`) and the logic
behind it. A function's handler (functions/<operation>/) serves its operation's resolver; the MCP function serves
all seven through the same resolvers, so the HTTP API and the MCP tools share one code path."""
