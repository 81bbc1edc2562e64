// Helper of bench/sandbox_session_bench.sh: new MCP sessions against airlockd's /mcp, each
// timed on its first tool call (the sandbox it gets, its shell, the call), and sessions kept
// open for the memory measurement. Loopback only; every loop is bounded.
//   node sandbox_sessions.mjs first-call URL KEY TOOL COUNT PAUSE_MS   -> JSON line
//   node sandbox_sessions.mjs hold URL KEY TOOL COUNT                  -> "ready", then waits
const [, , mode, url, key, tool, countText, pauseText] = process.argv;
const count = Math.min(Number(countText), 2000);
const headers = { Authorization: `Bearer ${key}`, "Content-Type": "application/json",
                  Accept: "application/json, text/event-stream" };

async function rpc(session, body) {
  const h = { ...headers };
  if (session) { h["Mcp-Session-Id"] = session; h["MCP-Protocol-Version"] = "2025-11-25"; }
  const r = await fetch(url, { method: "POST", headers: h, body: JSON.stringify(body),
                               signal: AbortSignal.timeout(30000) });
  const text = await r.text();
  return { session: r.headers.get("mcp-session-id"), text, status: r.status };
}

async function open() {
  const init = await rpc(null, { jsonrpc: "2.0", id: 1, method: "initialize", params: {
    protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "bench", version: "1" } } });
  await rpc(init.session, { jsonrpc: "2.0", method: "notifications/initialized" });
  return init.session;
}

const callBody = { jsonrpc: "2.0", id: 2, method: "tools/call",
                   params: { name: tool, arguments: tool === "bash" ? { command: "true" } : { message: "hi" } } };

if (mode === "first-call") {
  const us = [];
  let errors = 0;
  for (let i = 0; i < count; i++) {
    const session = await open();
    const t0 = process.hrtime.bigint();
    const r = await rpc(session, callBody);
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
    if (r.status !== 200 || r.text.includes('"isError":true')) errors++;
    if (process.env.SECOND) {
      const t1 = process.hrtime.bigint();
      await rpc(session, { ...callBody, id: 3 });
      console.error(`first ${Math.round(us.at(-1))} us, second ${Math.round(Number(process.hrtime.bigint() - t1) / 1000)} us`);
    }
    await fetch(url, { method: "DELETE", headers: { ...headers, "Mcp-Session-Id": session } });
    await new Promise((res) => setTimeout(res, Number(pauseText ?? 0)));
  }
  us.sort((a, b) => a - b);
  const q = (p) => Math.round(us[Math.min(us.length - 1, Math.floor(p * us.length))]);
  console.log(JSON.stringify({ sessions: count, pause_ms: Number(pauseText ?? 0), p50_us: q(0.5),
                               p90_us: q(0.9), p99_us: q(0.99), max_us: Math.round(us.at(-1)), errors }));
} else if (mode === "hold") {
  for (let i = 0; i < count; i++) {
    const session = await open();
    const r = await rpc(session, callBody);
    if (r.status !== 200) throw new Error(r.text);
  }
  console.log("ready");
  await new Promise((res) => setTimeout(res, 120000));  // killed by the script long before
}
