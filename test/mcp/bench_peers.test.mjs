// The gateway benchmark's native peers (bench/mcp_echo_server.cc, bench/tcp_relay.cc) are what
// the published numbers rest on: the official MCP SDK client must list and call `echo` on the
// echo server over stdio and Streamable HTTP, the tcp:// mode must speak newline-delimited
// JSON-RPC (also through two relays), and bad input must get JSON-RPC errors, not silence.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { BIN, Checks, assert, freePort, waitFor } from "./lib/stack.mjs";

const checks = new Checks("bench peers");
const procs = [];
const start = (file, ...args) => {
  const p = spawn(path.join(BIN, file), args, { stdio: "ignore" });
  p.on("error", (e) => console.error(`${file}: ${e.message}`));
  procs.push(p);
  return p;
};
const connectable = (port) => new Promise((resolve) => {
  const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
  s.on("error", () => resolve(false));
});

// Sends NDJSON lines on one connection; resolves with the first `count` answer lines.
function ndjson(port, lines, count) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let buf = "";
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no ${count} answers: ${buf}`)); }, 5000);
    s.on("data", (d) => {
      buf += d;
      const got = buf.split("\n").filter(Boolean);
      if (got.length >= count) {
        clearTimeout(timer);
        s.destroy();
        resolve(got.map((l) => JSON.parse(l)));
      }
    });
    s.on("error", reject);
    s.write(lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l)) + "\n").join(""));
  });
}

const init = { jsonrpc: "2.0", id: 1, method: "initialize",
               params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const call = (id, message) => ({ jsonrpc: "2.0", id, method: "tools/call",
                                 params: { name: "echo", arguments: { message } } });

async function sdkRoundTrip(transport) {
  const client = new Client({ name: "bench-peers", version: "1.0.0" });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    assert(tools.length === 1 && tools[0].name === "echo", JSON.stringify(tools));
    const r = await client.callTool({ name: "echo", arguments: { message: "héllo \"quoted\"\n" } });
    assert(r.content[0].text === "héllo \"quoted\"\n", JSON.stringify(r));
  } finally {
    await client.close();
  }
}

try {
  const tcpPort = await freePort(), httpPort = await freePort(), modernPort = await freePort();
  const relay1 = await freePort(), relay2 = await freePort();
  start("mcp_echo_server", "tcp", String(tcpPort));
  start("mcp_echo_server", "http", String(httpPort));
  start("mcp_echo_server", "http2026", String(modernPort));
  start("tcp_relay", String(relay2), String(tcpPort));
  start("tcp_relay", String(relay1), String(relay2));
  for (const p of [tcpPort, httpPort, modernPort, relay1, relay2]) await waitFor(`port ${p}`, () => connectable(p));

  await checks.check("SDK client over stdio: tools/list and tools/call echo", async () => {
    await sdkRoundTrip(new StdioClientTransport({ command: path.join(BIN, "mcp_echo_server"), args: ["stdio"] }));
  });
  await checks.check("SDK client over Streamable HTTP: tools/list and tools/call echo", async () => {
    await sdkRoundTrip(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${httpPort}/mcp`)));
  });
  await checks.check("http2026: the SDK v2 client finds 2026-07-28 and calls echo without a session", async () => {
    const seen = [];
    const client = new ClientV2({ name: "bench-peers", version: "1.0.0" },
                                { versionNegotiation: { mode: "auto" } });
    await client.connect(new TransportV2(new URL(`http://127.0.0.1:${modernPort}/mcp`), {
      fetch: async (url, init) => {
        const r = await fetch(url, init);
        seen.push({ method: init?.body ? JSON.parse(init.body).method : init?.method,
                    session: r.headers.get("mcp-session-id") });
        return r;
      } }));
    const r = await client.callTool({ name: "echo", arguments: { message: "modern" } });
    assert(r.content[0].text === "modern", JSON.stringify(r));
    await client.close();
    assert(seen[0]?.method === "server/discover" && !seen.some((x) => x.method === "initialize" || x.session),
           JSON.stringify(seen));
    // Without the revision's envelope: refused, never served as 2025.
    const old = await fetch(`http://127.0.0.1:${modernPort}/mcp`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(init) });
    assert(old.status === 400 && (await old.json()).error.code === -32022, `initialize: ${old.status}`);
  });
  await checks.check("tcp: pipelined calls are answered in order", async () => {
    const r = await ndjson(tcpPort, [init, call(2, "a"), call(3, "b")], 3);
    assert(r[0].result.protocolVersion === "2025-11-25", JSON.stringify(r[0]));
    assert(r[1].id === 2 && r[1].result.content[0].text === "a", JSON.stringify(r[1]));
    assert(r[2].id === 3 && r[2].result.content[0].text === "b", JSON.stringify(r[2]));
  });
  await checks.check("tcp through two relays gives the same answers", async () => {
    const r = await ndjson(relay1, [init, call(7, "through")], 2);
    assert(r[1].id === 7 && r[1].result.content[0].text === "through", JSON.stringify(r));
  });
  await checks.check("bad input: malformed JSON, unknown method, unknown tool", async () => {
    const r = await ndjson(tcpPort, ["{not json", { jsonrpc: "2.0", id: 5, method: "nope" },
                                     { jsonrpc: "2.0", id: 6, method: "tools/call", params: { name: "rm" } }], 3);
    assert(r[0].error.code === -32700 && r[0].id === null, JSON.stringify(r[0]));
    assert(r[1].error.code === -32601 && /nope/.test(r[1].error.message), JSON.stringify(r[1]));
    assert(r[2].error.code === -32602 && r[2].id === 6, JSON.stringify(r[2]));
  });
  await checks.check("http: a notification gets 202, GET gets 405", async () => {
    const post = await fetch(`http://127.0.0.1:${httpPort}/mcp`, { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    assert(post.status === 202, `POST notification: ${post.status}`);
    const get = await fetch(`http://127.0.0.1:${httpPort}/mcp`);
    assert(get.status === 405, `GET: ${get.status}`);
  });
} catch (e) {
  checks.setupFailed(e);
} finally {
  for (const p of procs) p.kill("SIGTERM");
  process.exit(checks.done());
}
