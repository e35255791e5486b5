// An agent host signing its user in, with the official MCP TypeScript SDK's own helpers and its auth() flow, as
// Claude, VS Code, Cursor and the MCP Inspector do: connect, get 401, find the protected-resource metadata, discover
// the authorization server, authorize (PKCE), exchange the code, connect again with the token, list and call.
// tests/test_mcp_sign_in.py writes a plan to stdin and checks what this prints:
//   in:  {"url", "clientId", "redirectUrl", "call": {"name", "arguments"}}
//   out: {"unauthenticated", "resourceMetadataUrl", "byHeader", "pathAware", "authorizationUrl", "firstConnect",
//         "tokenType", "tools", "call"}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  UnauthorizedError,
  discoverOAuthProtectedResourceMetadata,
  extractResourceMetadataUrl,
} from "@modelcontextprotocol/sdk/client/auth.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const url = new URL(plan.url);
const report = {};
const client = () => new Client({ name: "glow-activity-sign-in-check", version: "1.0.0" });

// 1. Without credentials, the SDK's transport meets the 401 and, with no sign-in possible, fails as UnauthorizedError
const noSignIn = {
  get redirectUrl() { return plan.redirectUrl; },
  get clientMetadata() { return { redirect_uris: [plan.redirectUrl], client_name: "check", token_endpoint_auth_method: "none" }; },
  clientInformation: () => ({ client_id: plan.clientId }),
  tokens: () => undefined,
  saveTokens: () => {},
  redirectToAuthorization: () => {},
  saveCodeVerifier: () => {},
  codeVerifier: () => "unused",
};
try {
  await client().connect(new StreamableHTTPClientTransport(url, { authProvider: noSignIn }));
  report.unauthenticated = "connected";
} catch (error) {
  report.unauthenticated = error instanceof UnauthorizedError ? "UnauthorizedError" : `${error?.name}: ${error?.message}`;
}

// 2. The discovery helpers: the 401's header, then the document by that URL and path-aware
const refused = await fetch(url, {
  method: "POST",
  headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
});
report.status = refused.status;
const metadataUrl = extractResourceMetadataUrl(refused);
report.resourceMetadataUrl = metadataUrl ? String(metadataUrl) : null;
report.byHeader = metadataUrl ? await discoverOAuthProtectedResourceMetadata(url, { resourceMetadataUrl: metadataUrl }) : null;
report.pathAware = await discoverOAuthProtectedResourceMetadata(url);

// 3. The flow every signing-in host runs: auth() from the 401 to a token, then the tools with that token
const state = { tokens: undefined, verifier: undefined, authorizationUrl: undefined };
const provider = {
  get redirectUrl() { return plan.redirectUrl; },
  get clientMetadata() { return { redirect_uris: [plan.redirectUrl], client_name: "check", token_endpoint_auth_method: "none" }; },
  clientInformation: () => ({ client_id: plan.clientId }),
  tokens: () => state.tokens,
  saveTokens: (tokens) => { state.tokens = tokens; },
  redirectToAuthorization: (authorizationUrl) => { state.authorizationUrl = authorizationUrl; },
  saveCodeVerifier: (verifier) => { state.verifier = verifier; },
  codeVerifier: () => state.verifier,
};
const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
try {
  await client().connect(transport);
  report.firstConnect = "connected";
} catch (error) {
  report.firstConnect = error instanceof UnauthorizedError ? "UnauthorizedError" : `${error?.name}: ${error?.message}`;
}
report.authorizationUrl = state.authorizationUrl ? String(state.authorizationUrl) : null;
if (state.authorizationUrl) {
  // the user approves in the browser; the authorization server redirects back to the host with a code
  const approved = await fetch(state.authorizationUrl, { redirect: "manual" });
  const code = new URL(approved.headers.get("location")).searchParams.get("code");
  await transport.finishAuth(code);
  report.tokenType = state.tokens?.token_type ?? null;
  const signedIn = client();
  await signedIn.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
  report.tools = (await signedIn.listTools()).tools.map((tool) => tool.name);
  const result = await signedIn.callTool({ name: plan.call.name, arguments: plan.call.arguments });
  report.call = { isError: result.isError === true, structuredContent: result.structuredContent ?? null };
  await signedIn.close();
}
process.stdout.write(JSON.stringify(report));
