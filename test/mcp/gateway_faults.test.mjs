// Bad input and faults at airlockd's /mcp, each with its expected answer: raw HTTP for the
// protocol errors, the official SDK client for upstream crash, connector loss and deadlines.
// Private servers: the project's fixture server over stdio and over tcp:// (NDJSON).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { spawn } from "node:child_process";
import path from "node:path";
import { Stack, Checks, assert, freePort, waitFor, PEERS } from "./lib/stack.mjs";

const checks = new Checks("gateway faults");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "fixture_server.mjs");
let tcpServer;

async function post(body, { key, session, version, origin, raw, headers = {} } = {}) {
  const h = { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
              ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (session) h["Mcp-Session-Id"] = session;
  if (version) h["MCP-Protocol-Version"] = version;
  if (origin) h.Origin = origin;
  const r = await fetch(stack.mcpUrl, { method: "POST", headers: h,
                                        body: raw ?? JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

const init = (id = 1) => ({ jsonrpc: "2.0", id, method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {},
            clientInfo: { name: "faults", version: "1" } } });

async function connect(key) {
  const client = new Client({ name: "faults", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  return client;
}

const text = (r) => r.content.map((c) => c.text).join("");

// Every tool name, over all pages (this test runs with mcp.page_size 3).
async function allTools(client) {
  const names = [];
  let cursor;
  do {
    const r = await client.listTools(cursor ? { cursor } : {});
    names.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
  } while (cursor);
  return names;
}

try {
  await stack.startAirlockd("max_request_body: 1MiB\nmcp:\n  allowed_origins: [\"https://console.example\"]\n  page_size: 3\n");
  const tcpPort = await freePort();
  tcpServer = spawn(process.execPath, [FIXTURE, "tcp", String(tcpPort)], { stdio: "ignore" });
  const tunnel = stack.startTunnel("faults", `servers:
  - name: fx-stdio
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
  - name: fx-tcp
    url: tcp://127.0.0.1:${tcpPort}
`);
  stack.applyTools(`tools:
  - {name: s, mcp_tunnel: faults, server: fx-stdio, prefix: s_, timeout: 1500ms, max_timeout: 4s}
  - {name: t, mcp_tunnel: faults, server: fx-tcp, prefix: t_}
`);
  await stack.waitAvailable("s");
  await stack.waitAvailable("t");
  const key = stack.agentKey("agent-f", "s_*,t_*");
  const narrow = stack.agentKey("agent-narrow", "s_echo");

  await checks.check("no credentials: 401 with WWW-Authenticate", async () => {
    const r = await post(init());
    assert(r.status === 401, r.status);
    assert(/Bearer/.test(r.headers.get("www-authenticate") ?? ""), "no WWW-Authenticate");
    const bad = await post(init(), { key: "alk_000000000000_notavalidkeyatall" });
    assert(bad.status === 401, bad.status);
  });
  const initR = await post(init(), { key });
  const session = initR.headers.get("mcp-session-id");
  await checks.check("initialize: a random session id, 202 for initialized", async () => {
    assert(initR.status === 200 && initR.json.result.protocolVersion === "2025-11-25", initR.text);
    assert(/^[0-9a-f]{64}$/.test(session ?? ""), `session id ${session}`);
    const r = await post({ jsonrpc: "2.0", method: "notifications/initialized" },
                         { key, session });
    assert(r.status === 202, r.status);
  });
  await checks.check("malformed JSON: 400, parse error", async () => {
    const r = await post(null, { key, session, raw: "{\"jsonrpc\": \"2.0\", " });
    assert(r.status === 400 && r.json.error.code === -32700, r.text);
  });
  await checks.check("a batch: 400 naming batches", async () => {
    const r = await post([{ jsonrpc: "2.0", id: 5, method: "ping" }], { key, session });
    assert(r.status === 400 && /batch/i.test(r.json.error.message), r.text);
  });
  await checks.check("unknown method: -32601", async () => {
    const r = await post({ jsonrpc: "2.0", id: 6, method: "tools/frobnicate" }, { key, session });
    assert(r.status === 200 && r.json.error.code === -32601, r.text);
  });
  await checks.check("wrong session id: 404; missing: 400", async () => {
    const r = await post({ jsonrpc: "2.0", id: 7, method: "ping" }, { key, session: "f".repeat(64) });
    assert(r.status === 404, r.status);
    const m = await post({ jsonrpc: "2.0", id: 8, method: "ping" }, { key });
    assert(m.status === 400 && /Mcp-Session-Id/.test(m.json.error.message), m.text);
  });
  await checks.check("a session is bound to its agent key", async () => {
    const r = await post({ jsonrpc: "2.0", id: 9, method: "ping" }, { key: narrow, session });
    assert(r.status === 404, r.status);
  });
  await checks.check("unsupported MCP-Protocol-Version: 400", async () => {
    const r = await post({ jsonrpc: "2.0", id: 10, method: "ping" },
                         { key, session, version: "1999-01-01" });
    assert(r.status === 400 && /1999-01-01/.test(r.json.error.message), r.text);
    const ok = await post({ jsonrpc: "2.0", id: 11, method: "ping" },
                          { key, session, version: "2025-06-18" });
    assert(ok.status === 200, ok.text);
  });
  await checks.check("Origin not allowed: 403; allowed: served", async () => {
    const r = await post({ jsonrpc: "2.0", id: 12, method: "ping" },
                         { key, session, origin: "https://evil.example" });
    assert(r.status === 403, r.status);
    const ok = await post({ jsonrpc: "2.0", id: 13, method: "ping" },
                          { key, session, origin: "https://console.example" });
    assert(ok.status === 200, ok.status);
    // Pages on the agent's own machine, and airlockd's own origin, need no listing.
    const port = new URL(stack.mcpUrl).port;
    for (const origin of ["http://127.0.0.1:6274", "http://localhost:3000", "http://[::1]:5173",
                          `http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const r2 = await post({ jsonrpc: "2.0", id: 15, method: "ping" }, { key, session, origin });
      assert(r2.status === 200, `${origin}: ${r2.status} ${r2.text}`);
    }
    // A name rebound to airlockd's address, with the Host header to match: refused.
    const rebound = await post({ jsonrpc: "2.0", id: 16, method: "ping" },
                               { key, session, origin: `http://evil.example:${port}` });
    assert(rebound.status === 403 && /mcp.allowed_origins/.test(rebound.text), rebound.text);
  });
  await checks.check("a method /mcp does not offer: 405 with Allow", async () => {
    const r = await fetch(stack.mcpUrl, { method: "PUT", headers: { Authorization: `Bearer ${key}` } });
    assert(r.status === 405 && /POST/.test(r.headers.get("allow") ?? ""), r.status);
  });
  await checks.check("body over the limit: 413", async () => {
    const r = await post({ jsonrpc: "2.0", id: 14, method: "tools/call",
                           params: { name: "s_echo", arguments: { message: "x".repeat(1100000) } } },
                         { key, session });
    assert(r.status === 413, r.status);
  });
  await checks.check("out-of-scope tool: refused and recorded", async () => {
    const init2 = await post(init(), { key: narrow });
    const s2 = init2.headers.get("mcp-session-id");
    const list = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, { key: narrow, session: s2 });
    const names = list.json.result.tools.map((t) => t.name);
    assert(names.length === 1 && names[0] === "s_echo", names.join(","));
    const r = await post({ jsonrpc: "2.0", id: 3, method: "tools/call",
                           params: { name: "t_add", arguments: { a: 1, b: 2 } } },
                         { key: narrow, session: s2 });
    assert(r.json.error && /not available to this agent key/.test(r.json.error.message), r.text);
    const ev = stack.audit("--type", "tool_refused");
    assert(ev.some((e) => e.actor === "agent-narrow" && e.target === "t_add" &&
                          e.outcome === "refused"), "no record");
  });
  await checks.check("DELETE ends the session; it is then 404", async () => {
    const i = await post(init(), { key });
    const s = i.headers.get("mcp-session-id");
    const d = await fetch(stack.mcpUrl, { method: "DELETE",
      headers: { Authorization: `Bearer ${key}`, "Mcp-Session-Id": s } });
    assert(d.status === 200, d.status);
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { key, session: s });
    assert(r.status === 404, r.status);
  });

  await checks.check("GET stream: priming event with id and retry, resumable with Last-Event-ID", async () => {
    const i = await post(init(), { key });
    const s = i.headers.get("mcp-session-id");
    await post({ jsonrpc: "2.0", method: "notifications/initialized" }, { key, session: s });
    const get = async (lastEventId, until) => {
      const ac = new AbortController();
      const headers = { Authorization: `Bearer ${key}`, "Mcp-Session-Id": s,
                        Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const r = await fetch(stack.mcpUrl, { headers, signal: ac.signal });
      assert(r.status === 200 && r.headers.get("content-type").startsWith("text/event-stream"),
             `GET answered ${r.status}`);
      const reader = r.body.getReader();
      let text = "";
      const deadline = Date.now() + 10000;
      while (!until(text) && Date.now() < deadline) {
        const { value, done } = await Promise.race([
          reader.read(), new Promise((res) => setTimeout(() => res({ value: undefined }), 500))]);
        if (done) break;
        if (value) text += new TextDecoder().decode(value);
      }
      ac.abort();
      return text;
    };
    const first = await get(undefined, (t) => t.includes("\n\n"));
    assert(/^id: g-0\nretry: \d+\ndata: \n\n/.test(first), `priming event: ${JSON.stringify(first)}`);
    // While no GET stream is open, a server message with no call in flight arrives.
    const call = await post({ jsonrpc: "2.0", id: 2, method: "tools/call",
                              params: { name: "s_notify", arguments: { text: "while-away" } } },
                            { key, session: s });
    assert(call.status === 200, call.text);
    await new Promise((r) => setTimeout(r, 600));
    const resumed = await get("g-0", (t) => t.includes("while-away"));
    assert(/id: g-1\ndata: .*while-away/.test(resumed), `resumed: ${JSON.stringify(resumed)}`);
    const again = await get("g-1", (t) => t.includes("\n\n"));
    assert(!again.includes("while-away"), "an event was replayed twice");
  });

  await checks.check("a revoked agent key is refused on its next request", async () => {
    const k = stack.agentKey("agent-revoked", "*");
    const i = await post(init(), { key: k });
    assert(i.status === 200, i.text);
    const s = i.headers.get("mcp-session-id");
    stack.cli("agent-key", "revoke", "agent-revoked");
    const r = await post({ jsonrpc: "2.0", id: 2, method: "ping" }, { key: k, session: s });
    assert(r.status === 401 && /revoked/.test(r.json.error.message), r.text);
  });

  const client = await connect(key);
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { listChanged++; });
  await checks.check("tcp:// and stdio upstreams answer", async () => {
    assert(text(await client.callTool({ name: "t_add", arguments: { a: 20, b: 22 } })) === "42");
    assert(text(await client.callTool({ name: "s_echo", arguments: { message: "hi" } })) === "hi");
  });
  await checks.check("pagination: opaque cursors cover every tool once", async () => {
    const all = await allTools(client);
    assert(new Set(all).size === all.length && all.length === 18, all.join(","));  // 9 fixture tools, two prefixes
    const bad = await client.listTools({ cursor: "not-a-cursor" }).catch((e) => e);
    assert(bad instanceof Error && /cursor/.test(bad.message), String(bad));
  });
  await checks.check("upstream crash mid-call: a clear error, not replayed; next call works", async () => {
    const r = await client.callTool({ name: "s_crash", arguments: {} }).catch((e) => e);
    assert(r instanceof Error && /ended its session while tools\/call was in flight/.test(r.message) &&
           /not retried/.test(r.message), String(r.message ?? JSON.stringify(r)));
    const after = await client.callTool({ name: "s_echo", arguments: { message: "again" } });
    assert(text(after) === "again", JSON.stringify(after));
    const tr = await client.callTool({ name: "t_crash", arguments: {} }).catch((e) => e);
    assert(tr instanceof Error && /not retried/.test(tr.message), String(tr.message));
    assert(text(await client.callTool({ name: "t_add", arguments: { a: 1, b: 1 } })) === "2");
  });
  await checks.check("deadline: timeout error, and progress extends the deadline", async () => {
    const r = await client.callTool({ name: "s_slow", arguments: { ms: 3000 } }).catch((e) => e);
    assert(r instanceof Error && /timed out after 1500 ms/.test(r.message), String(r.message));
    const p = await client.callTool({ name: "s_slow", arguments: { ms: 3000, progress: true } },
                                    undefined, { onprogress: () => {}, timeout: 20000 });
    assert(text(p) === "slept 3000 ms", JSON.stringify(p));
    const capped = await client.callTool({ name: "s_slow", arguments: { ms: 8000, progress: true } },
                                         undefined, { onprogress: () => {}, timeout: 20000 })
      .catch((e) => e);
    assert(capped instanceof Error && /timed out/.test(capped.message), "max_timeout not enforced");
  });
  await checks.check("a server's list_changed refreshes the catalog and reaches the agent", async () => {
    const before = listChanged;
    const r = await client.callTool({ name: "t_add-tool", arguments: { name: "late" } });
    assert(text(r) === "added late", JSON.stringify(r));
    await waitFor("t_late in tools/list", async () => (await allTools(client)).includes("t_late"),
                  15000);
    await waitFor("notifications/tools/list_changed", () => listChanged > before, 10000);
    const late = await client.callTool({ name: "t_late", arguments: { message: "hi" } });
    assert(text(late) === "late: hi", JSON.stringify(late));
  });
  await checks.check("connector gone mid-call: fails fast, says so; tools disappear", async () => {
    const pending = client.callTool({ name: "s_slow", arguments: { ms: 1400 } }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 300));
    tunnel.kill("SIGKILL");
    // Had the call waited for its answer it would have succeeded (1.4 s, under the deadline):
    // the disconnect message proves it ended when the link did.
    const r = await pending;
    assert(r instanceof Error && /disconnected while tools\/call/.test(r.message),
           String(r.message ?? JSON.stringify(r)));
    await waitFor("tools gone", async () => (await allTools(client)).length === 0, 10000);
    await waitFor("notifications/tools/list_changed on the GET stream", () => listChanged > 0, 10000);
    const after = await client.callTool({ name: "s_echo", arguments: { message: "x" } }).catch((e) => e);
    assert(after instanceof Error && /is unavailable: tunnel 'faults' is not connected/.test(after.message),
           String(after.message));
  });
  await client.close();
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "faults"], () => tcpServer?.kill("SIGTERM"));
}
