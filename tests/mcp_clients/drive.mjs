// Drive a real `lattice serve` through one of the official TypeScript MCP clients; print one JSON report.
//
//   node drive.mjs sdk1 URL            @modelcontextprotocol/sdk 1.x (the handshake era, 2025-11-25)
//   node drive.mjs sdk2 URL MODE       @modelcontextprotocol/client 2.x; MODE: legacy | auto | 2026-07-28
//
// The calls: initialize (or discover), list the tools, a call that succeeds (agent_create, agent_request
// with wait), one whose job FAILED (agent_info of an unknown agent) and one whose arguments violate the
// input schema (agent_info with a number for agentId). Each client validates every structuredContent
// against the tool's outputSchema; a mismatch throws, and is reported as an error.
const [kind, url, mode = "legacy"] = process.argv.slice(2);

async function connect() {
  const info = { name: `lattice-test-${kind}`, version: "0" };
  if (kind === "sdk1") {
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
    const client = new Client(info);
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    return client;
  }
  const { Client, StreamableHTTPClientTransport } = await import("@modelcontextprotocol/client");
  const negotiation = mode === "legacy" || mode === "auto" ? { mode } : { mode: { pin: mode } };
  const client = new Client(info, { versionNegotiation: negotiation });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

function summary(r) {
  const text = r.content?.[0]?.type === "text" ? r.content[0].text : null;
  return { isError: r.isError ?? false, structuredContent: r.structuredContent ?? null, text };
}

async function call(client, name, args) {
  try {
    return summary(await client.callTool({ name, arguments: args }));
  } catch (e) {
    return { thrown: `${e.name}: ${e.message}`, code: e.code ?? null };
  }
}

const report = { kind, mode };
try {
  const client = await connect();
  report.protocolVersion = client.getNegotiatedProtocolVersion?.() ?? client.transport?.protocolVersion ?? null;
  report.server = client.getServerVersion()?.name ?? null;
  const { tools } = await client.listTools();
  report.tools = tools.map((t) => t.name);
  const agent = `A-${kind}-${mode}`;
  report.create = await call(client, "agent_create", { agentId: agent, config: { model: { provider: "echo" } } });
  report.request = await call(client, "agent_request", { agentId: agent, input: "hello", wait: true });
  report.failed = await call(client, "agent_info", { agentId: "Nobody" });
  report.invalid = await call(client, "agent_info", { agentId: 7 });
  await client.close();
} catch (e) {
  report.error = `${e.name}: ${e.message}`;
}
console.log(JSON.stringify(report));
