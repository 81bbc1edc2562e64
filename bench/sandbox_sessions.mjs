// Helper of bench/sandbox_session_bench.sh: opens COUNT MCP sessions against airlockd's /mcp,
// makes one `bash true` call in each (so each holds a sandbox), prints "ready", and keeps them
// open until it is killed — for the agent's memory per idle session. Loopback only; bounded.
//   node sandbox_sessions.mjs URL KEY COUNT
const [, , url, key, countText] = process.argv;
const count = Math.min(Number(countText), 256);
const headers = { Authorization: `Bearer ${key}`, "Content-Type": "application/json",
                  Accept: "application/json, text/event-stream" };

async function rpc(session, body) {
  const h = { ...headers };
  if (session) { h["Mcp-Session-Id"] = session; h["MCP-Protocol-Version"] = "2025-11-25"; }
  const r = await fetch(url, { method: "POST", headers: h, body: JSON.stringify(body),
                               signal: AbortSignal.timeout(60000) });
  const text = await r.text();
  if (r.status !== 200 && r.status !== 202) throw new Error(`${r.status} ${text}`);
  return { session: r.headers.get("mcp-session-id"), text };
}

for (let i = 0; i < count; i++) {
  const init = await rpc(null, { jsonrpc: "2.0", id: 1, method: "initialize", params: {
    protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "bench", version: "1" } } });
  await rpc(init.session, { jsonrpc: "2.0", method: "notifications/initialized" });
  const r = await rpc(init.session, { jsonrpc: "2.0", id: 2, method: "tools/call",
                                      params: { name: "bash", arguments: { command: "true" } } });
  if (r.text.includes('"isError":true')) throw new Error(r.text);
}
console.log("ready");
await new Promise((res) => setTimeout(res, 120000));  // killed by the script long before
