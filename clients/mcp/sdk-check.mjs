// Drives the official MCP TypeScript SDK's client (the one inside most agent hosts and the MCP Inspector) against
// our MCP endpoint, as an agent host would: connect, list the tools, call them. tests/test_mcp_clients.py writes a
// plan to stdin and checks what this prints:
//   in:  {"url": "...", "sessions": [{"headers": {...}, "calls": [{"name": "...", "arguments": {...}}]}]}
//   out: [{"protocolVersion", "instructions", "tools": [names], "results": [{name, isError, structuredContent,
//          text, exception}]}]
// A call that makes the SDK throw (a protocol error, or structured content it rejects) is reported as `exception`.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const report = [];
for (const session of plan.sessions) {
  const client = new Client({ name: "glow-activity-sdk-check", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(plan.url), {
    requestInit: { headers: session.headers },
  });
  await client.connect(transport);
  const tools = await client.listTools();
  const results = [];
  for (const call of session.calls) {
    try {
      const result = await client.callTool({ name: call.name, arguments: call.arguments });
      const text = result.content?.find((item) => item.type === "text")?.text ?? null;
      results.push({
        name: call.name,
        isError: result.isError === true,
        structuredContent: result.structuredContent ?? null,
        contentItems: result.content?.length ?? 0,
        text,
        exception: null,
      });
    } catch (error) {
      results.push({ name: call.name, exception: String(error?.message ?? error) });
    }
  }
  report.push({
    protocolVersion: transport.protocolVersion ?? null,
    instructions: client.getInstructions() ?? null,
    tools: tools.tools.map((tool) => tool.name),
    results,
  });
  await client.close();
}
process.stdout.write(JSON.stringify(report));
