// MCP 2026-07-28 on /mcp, beside 2025-11-25: the official TypeScript SDK v2 client
// (@modelcontextprotocol/client) and the v1 client side by side against one airlockd, through
// mcp-tunnel to the project's fixture server (a 2025-11-25 server over stdio). Then the
// revision's rules one by one over plain HTTP: server/discover, the per-request _meta, the
// request headers and what happens when they disagree with the body (including a refusal from
// the headers alone, before the body is read), unsupported versions, removed methods, cache
// hints and resultType, resource-not-found as -32602, requests that reuse an id or a progress
// token concurrently, the per-request log level, and subscriptions/listen. Then a private
// server on the SDK v2 (@modelcontextprotocol/server), which asks for input the 2026 way: a
// 2025 agent gets an ordinary elicitation request, a 2026 agent a clear refusal. Last, an
// http server that speaks only 2026-07-28 (v2_http_server.mjs): mcp-tunnel finds that out with
// server/discover and uses it without a session — envelope and headers on every request, its
// credential injected and redacted, its input requests asked of 2025 and 2026 agents alike,
// cancellation by closing the request's stream, list changes through subscriptions/listen.
import { Client } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import crypto from "node:crypto";
import path from "node:path";
import { Stack, Checks, assert, waitFor, PEERS } from "./lib/stack.mjs";
import { startModernServer } from "./v2_http_server.mjs";

const checks = new Checks("mcp 2026-07-28");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "fixture_server.mjs");
const V2_SERVER = path.join(PEERS, "v2_server.mjs");
const V = "2026-07-28";
const meta = (extra = {}) => ({
  "io.modelcontextprotocol/protocolVersion": V,
  "io.modelcontextprotocol/clientInfo": { name: "mcp-2026-test", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
  ...extra,
});

// One POST: `headers` overrides the ones derived from the body; `raw` sends that text instead.
async function post(key, body, { headers = {}, raw } = {}) {
  const h = { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
              Authorization: `Bearer ${key}`, "MCP-Protocol-Version": V };
  if (body?.method) h["Mcp-Method"] = body.method;
  const name = body?.params?.name ?? body?.params?.uri;
  if (name && ["tools/call", "prompts/get", "resources/read"].includes(body.method)) h["Mcp-Name"] = name;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) delete h[k]; else h[k] = v;
  }
  const r = await fetch(stack.mcpUrl, { method: "POST", headers: h, body: raw ?? JSON.stringify(body) });
  const text = await r.text();
  let messages = [];
  if ((r.headers.get("content-type") ?? "").includes("text/event-stream")) {
    messages = text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim())
      .filter((d) => d).map((d) => JSON.parse(d));
  } else if (text) {
    messages = [JSON.parse(text)];
  }
  return { status: r.status, headers: r.headers, text, messages, json: messages.at(-1) };
}

const call = (id, name, args, extraMeta = {}) =>
  ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: meta(extraMeta) } });

const MODERN_TOKEN = `mdn_${crypto.randomBytes(12).toString("hex")}`;
let modern = null;

try {
  // Short keep-alives: a modern call unanswered this long switches to SSE (tested below).
  await stack.startAirlockd("mcp: {sse_keepalive: 500ms}\n");
  modern = await startModernServer(MODERN_TOKEN);
  stack.startTunnel("fx", `servers:
  - name: fixture
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
`);
  stack.startTunnel("v2", `servers:
  - name: v2
    url: stdio:${process.execPath}
    args: ["${V2_SERVER}"]
`);
  stack.startTunnel("m", `secrets:
  - {name: modern-token, from: "env:MODERN_TOKEN"}
servers:
  - name: modern
    url: ${modern.url}
    headers: {Authorization: "Bearer \${secret:modern-token}"}
`, { env: { MODERN_TOKEN } });
  const toolsYaml = "tools:\n  - {name: fx, mcp_tunnel: fx, server: fixture}\n" +
                "  - {name: v2, mcp_tunnel: v2, server: v2, prefix: v2.}\n" +
                "  - {name: m, mcp_tunnel: m, server: modern, prefix: m.}\n";
  stack.applyTools(toolsYaml);
  await stack.waitAvailable("fx");
  await stack.waitAvailable("v2");
  await stack.waitAvailable("m");
  const key = stack.agentKey("agent-2026", "*");
  const narrow = stack.agentKey("agent-narrow", "echo");
  const narrowish = stack.agentKey("agent-other", "*");

  // The SDK v2 client ('auto': it probes the era, as current clients do) declaring
  // `capabilities`, with a handler per server request method it answers.
  const v2Client = async (capabilities, handlers) => {
    const v2 = new Client({ name: "sdk-v2", version: "1" },
                          { versionNegotiation: { mode: "auto" }, capabilities });
    for (const [method, handler] of Object.entries(handlers)) v2.setRequestHandler(method, handler);
    await v2.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    return v2;
  };

  await checks.check("the SDK v2 client works without a session, beside a v1 client in one", async () => {
    const seen = [];
    const recording = (url, init) => {
      const h = new Headers(init?.headers);
      seen.push({ version: h.get("mcp-protocol-version"), session: h.get("mcp-session-id"),
                  method: init?.body ? JSON.parse(init.body).method : init?.method });
      return fetch(url, init);
    };
    // 'auto': probes the server's era, as current clients do.
    const v2 = new Client({ name: "sdk-v2", version: "1" }, { versionNegotiation: { mode: "auto" } });
    await v2.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } }, fetch: recording }));
    const v1 = new ClientV1({ name: "sdk-v1", version: "1" });
    await v1.connect(new TransportV1(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    const [a, b] = await Promise.all([
      v2.callTool({ name: "echo", arguments: { message: "from v2" } }),
      v1.callTool({ name: "echo", arguments: { message: "from v1" } }),
    ]);
    assert(a.content[0].text === "from v2", JSON.stringify(a));
    assert(b.content[0].text === "from v1", JSON.stringify(b));
    const names = (await v2.listTools()).tools.map((t) => t.name);
    assert(names.includes("echo") && names.includes("slow"), names.join(","));
    assert(seen.length > 0 && seen.every((s) => s.version === V && !s.session),
           `v2 requests: ${JSON.stringify(seen)}`);
    assert(!seen.some((s) => s.method === "initialize"), `v2 sent initialize: ${JSON.stringify(seen)}`);
    await v2.close();
    await v1.close();
  });

  await checks.check("server/discover: versions, capabilities, identity, cache hints", async () => {
    const r = await post(key, { jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: meta() } });
    assert(r.status === 200, r.text);
    const res = r.json.result;
    assert(res.resultType === "complete", r.text);
    assert(res.supportedVersions.includes(V) && res.supportedVersions.includes("2025-11-25"), r.text);
    assert(res.capabilities.tools && typeof res.ttlMs === "number" && res.cacheScope, r.text);
    assert(res._meta["io.modelcontextprotocol/serverInfo"].name === "airlock", r.text);
    assert(!r.headers.get("mcp-session-id"), "a session id was minted");
  });

  await checks.check("lists say resultType and how long they stay fresh, for this key only", async () => {
    const r = await post(key, { jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: meta() } });
    const res = r.json?.result ?? {};
    assert(res.resultType === "complete" && res.ttlMs > 0 && res.cacheScope === "private", r.text);
    const n = await post(narrow, { jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: meta() } });
    assert(n.json.result.tools.map((t) => t.name).join() === "echo", n.text);
    const read = await post(key, { jsonrpc: "2.0", id: 3, method: "resources/read",
                                   params: { uri: "fixture://status", _meta: meta() } });
    const rr = read.json.result;
    assert(rr.resultType === "complete" && rr.ttlMs === 0 && rr.cacheScope === "private", read.text);
    assert(rr.contents[0].text === "fixture ok", read.text);
  });

  await checks.check("a request without the required _meta is 400 / -32602, naming what is missing", async () => {
    const none = await post(key, { jsonrpc: "2.0", id: 4, method: "tools/list", params: {} });
    assert(none.status === 400 && none.json.error.code === -32602 && none.json.id === 4, none.text);
    const m = meta();
    delete m["io.modelcontextprotocol/clientCapabilities"];
    const caps = await post(key, { jsonrpc: "2.0", id: 5, method: "tools/list", params: { _meta: m } });
    assert(caps.status === 400 && /clientCapabilities/.test(caps.json.error.message), caps.text);
    const noInfo = meta();
    delete noInfo["io.modelcontextprotocol/clientInfo"];
    const ok = await post(key, { jsonrpc: "2.0", id: 6, method: "tools/list", params: { _meta: noInfo } });
    assert(ok.status === 200 && ok.json.result, "clientInfo is optional: " + ok.text);
  });

  await checks.check("headers that disagree with the body: 400 / -32020", async () => {
    const body = call(7, "echo", { message: "x" });
    const cases = [
      [{ "MCP-Protocol-Version": undefined }, /MCP-Protocol-Version header is missing/],
      [{ "Mcp-Method": undefined }, /Mcp-Method header is missing/],
      [{ "Mcp-Method": "tools/list" }, /does not match the body's method/],
      [{ "Mcp-Name": undefined }, /Mcp-Name header is missing/],
      [{ "Mcp-Name": "add" }, /Mcp-Name header 'add' does not match/],
      [{ "Mcp-Name": "=?base64?!!?=" }, /not valid/],
    ];
    for (const [headers, says] of cases) {
      const r = await post(key, body, { headers });
      assert(r.status === 400 && r.json.error.code === -32020 && says.test(r.json.error.message),
             `${JSON.stringify(headers)}: ${r.status} ${r.text}`);
    }
    // The Base64 form of Mcp-Name is decoded before it is compared.
    const enc = await post(key, body, { headers: { "Mcp-Name": `=?base64?${Buffer.from("echo").toString("base64")}?=` } });
    assert(enc.status === 200 && enc.json?.result?.content[0].text === "x", enc.text);
  });

  await checks.check("the key's scope is checked from Mcp-Name before the body, and again after", async () => {
    // The body is not even JSON: the refusal came from the headers alone.
    const r = await post(narrow, null, { headers: { "Mcp-Method": "tools/call", "Mcp-Name": "add" }, raw: "{not json" });
    assert(r.status === 403 && r.json.error.code === -32602 && /'add'/.test(r.json.error.message), r.text);
    const refused = stack.audit("--type", "tool_refused").filter((a) => a.actor === "agent-narrow");
    assert(refused.some((a) => a.target === "add"), JSON.stringify(refused));
    // In scope by the header, out of it by the body: the mismatch is refused.
    const lie = await post(narrow, call(8, "add", { a: 1, b: 2 }), { headers: { "Mcp-Name": "echo" } });
    assert(lie.status === 400 && lie.json.error.code === -32020, lie.text);
  });

  await checks.check("an unsupported version is 400 / -32022 with what is supported", async () => {
    const old = { ...meta(), "io.modelcontextprotocol/protocolVersion": "1900-01-01" };
    const r = await post(key, { jsonrpc: "2.0", id: 9, method: "tools/list", params: { _meta: old } },
                         { headers: { "MCP-Protocol-Version": "1900-01-01" } });
    assert(r.status === 400 && r.json.error.code === -32022, r.text);
    assert(r.json.error.data.requested === "1900-01-01" && r.json.error.data.supported.includes(V), r.text);
  });

  await checks.check("ping, logging/setLevel and initialize are gone: 404 / -32601", async () => {
    for (const method of ["ping", "logging/setLevel", "resources/subscribe", "no/such"]) {
      const r = await post(key, { jsonrpc: "2.0", id: 10, method, params: { _meta: meta() } });
      assert(r.status === 404 && r.json.error.code === -32601 && r.json.id === 10, `${method}: ${r.text}`);
    }
  });

  await checks.check("a resource that is not there is -32602", async () => {
    const r = await post(key, { jsonrpc: "2.0", id: 11, method: "resources/read",
                                params: { uri: "nothing://here", _meta: meta() } });
    assert(r.json.error.code === -32602 && r.json.error.data.uri === "nothing://here", r.text);
  });

  await checks.check("requests that share an id and a progress token are told apart", async () => {
    const [a, b] = await Promise.all([
      post(key, call(1, "slow", { ms: 300, progress: true }, { progressToken: "p" })),
      post(key, call(1, "slow", { ms: 150, progress: true }, { progressToken: "p" })),
    ]);
    for (const [r, ms] of [[a, 300], [b, 150]]) {
      assert(r.json.id === 1 && r.json.result.content[0].text === `slept ${ms} ms`, r.text);
      const progress = r.messages.filter((m) => m.method === "notifications/progress");
      assert(progress.length === 10 && progress.every((p) => p.params.progressToken === "p"),
             `${ms}: ${progress.length} progress: ${r.text.slice(0, 400)}`);
    }
  });

  await checks.check("log messages only for a request that asked, from its level up", async () => {
    const quiet = await post(key, call(12, "log", { text: "hello", level: "info" }));
    assert(!quiet.messages.some((m) => m.method === "notifications/message"), quiet.text);
    const loud = await post(key, call(13, "log", { text: "hello", level: "info" },
                                      { "io.modelcontextprotocol/logLevel": "debug" }));
    assert(loud.messages.some((m) => m.method === "notifications/message" && m.params.data === "hello"), loud.text);
    const above = await post(key, call(14, "log", { text: "hello", level: "info" },
                                       { "io.modelcontextprotocol/logLevel": "error" }));
    assert(!above.messages.some((m) => m.method === "notifications/message"), above.text);
  });

  await checks.check("subscriptions/listen: acknowledged first, then only what was asked", async () => {
    const open = async (notifications) => {
      const ac = new AbortController();
      const r = await fetch(stack.mcpUrl, { method: "POST", signal: ac.signal, headers: {
        "Content-Type": "application/json", Accept: "application/json, text/event-stream",
        Authorization: `Bearer ${key}`, "MCP-Protocol-Version": V, "Mcp-Method": "subscriptions/listen" },
        body: JSON.stringify({ jsonrpc: "2.0", id: "sub", method: "subscriptions/listen",
                               params: { _meta: meta(), notifications } }) });
      assert(r.status === 200 && r.headers.get("content-type").includes("text/event-stream"), r.status);
      const reader = r.body.getReader();
      const got = [];
      let buf = "";
      (async () => {
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ done: true }));
          if (done) return;
          buf += new TextDecoder().decode(value);
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line.startsWith("data:") && line.length > 5) got.push(JSON.parse(line.slice(5)));
          }
        }
      })();
      return { got, close: () => ac.abort() };
    };
    const tools = await open({ toolsListChanged: true });
    const prompts = await open({ promptsListChanged: true });
    await waitFor("both acknowledged", () => tools.got.length >= 1 && prompts.got.length >= 1, 5000);
    const ack = tools.got[0];
    assert(ack.method === "notifications/subscriptions/acknowledged" &&
           ack.params._meta["io.modelcontextprotocol/subscriptionId"] === "sub" &&
           ack.params.notifications.toolsListChanged === true, JSON.stringify(ack));
    // A second binding exposes the server's tools again under a prefix: the catalog changes.
    stack.applyTools(toolsYaml + "  - {name: echo2, mcp_tunnel: fx, server: fixture, tool: echo}\n");
    await waitFor("tools/list_changed on the tools stream",
                  () => tools.got.some((m) => m.method === "notifications/tools/list_changed"), 15000);
    const changed = tools.got.find((m) => m.method === "notifications/tools/list_changed");
    assert(changed.params._meta["io.modelcontextprotocol/subscriptionId"] === "sub", JSON.stringify(changed));
    assert(!prompts.got.some((m) => m.method === "notifications/tools/list_changed"),
           "sent to a listener that did not ask: " + JSON.stringify(prompts.got));
    tools.close();
    prompts.close();
  });

  await checks.check("closing a modern call's response stream cancels the call at the server", async () => {
    const ac = new AbortController();
    const body = call(40, "slow", { ms: 3000, progress: true }, { progressToken: "gone" });
    const r = await fetch(stack.mcpUrl, { method: "POST", signal: ac.signal, body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
                 Authorization: `Bearer ${key}`, "MCP-Protocol-Version": V, "Mcp-Method": "tools/call",
                 "Mcp-Name": "slow" } });
    assert(r.headers.get("content-type").includes("text/event-stream"), r.headers.get("content-type"));
    const reader = r.body.getReader();
    let seen = "";
    while (!seen.includes("notifications/progress")) {
      const { value, done } = await reader.read();
      assert(!done, "the stream ended before any progress: " + seen);
      seen += new TextDecoder().decode(value);
    }
    ac.abort();
    await waitFor("the call audited as cancelled", () => stack.audit("--type", "call").some(
      (a) => a.actor === "agent-2026" && a.target === "slow" && a.error_class === "cancelled"), 10000);
  });

  await checks.check("a call still unanswered after sse_keepalive switches to SSE, so leaving cancels it", async () => {
    const cancelled = () => stack.audit("--type", "call").filter(
      (a) => a.actor === "agent-2026" && a.target === "slow" && a.error_class === "cancelled").length;
    const before = cancelled();
    const ac = new AbortController();
    const body = call(41, "slow", { ms: 4000 });  // no progress: nothing to stream
    const started = Date.now();
    const r = await fetch(stack.mcpUrl, { method: "POST", signal: ac.signal, body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
                 Authorization: `Bearer ${key}`, "MCP-Protocol-Version": V, "Mcp-Method": "tools/call",
                 "Mcp-Name": "slow" } });
    assert(r.headers.get("content-type").includes("text/event-stream") && Date.now() - started < 3500,
           `${r.headers.get("content-type")} after ${Date.now() - started} ms`);
    ac.abort();
    await waitFor("the call audited as cancelled", () => cancelled() > before, 10000);
  });

  await checks.check("an Mcp-Session-Id on a modern request is ignored, never echoed", async () => {
    const r = await post(key, { jsonrpc: "2.0", id: 16, method: "tools/list", params: { _meta: meta() } },
                         { headers: { "Mcp-Session-Id": "f".repeat(64) } });
    assert(r.status === 200 && !r.headers.get("mcp-session-id"), r.text);
  });

  await checks.check("a 2025 server's elicitation reaches the SDK v2 client as input_required", async () => {
    // The client fulfils input_required results through its elicitation handler and retries
    // with inputResponses and the requestState, all inside one callTool().
    const asked = [];
    const v2 = await v2Client({ elicitation: {} }, { "elicitation/create": async (req) => {
      asked.push(req.params.message);
      return { action: "accept", content: { answer: "blue" } };
    } });
    const r = await v2.callTool({ name: "ask", arguments: { question: "Favourite colour?" } });
    assert(r.content[0].text === "answer: blue", JSON.stringify(r));
    assert(asked.join() === "Favourite colour?", JSON.stringify(asked));
    await v2.close();
    const relayed = stack.audit("--type", "server_request").filter((a) => a.actor === "agent-2026");
    assert(relayed.some((a) => a.method === "elicitation/create" && a.target === "ask" && a.outcome === "ok"),
           JSON.stringify(relayed));
  });

  await checks.check("a 2025 server's sampling request reaches the SDK v2 client as input_required", async () => {
    const prompts = [];
    const v2 = await v2Client({ sampling: {} }, { "sampling/createMessage": async (req) => {
      prompts.push(req.params.messages[0].content.text);
      return { role: "assistant", model: "test-model", content: { type: "text", text: "forty-two" } };
    } });
    const r = await v2.callTool({ name: "ask", arguments: { question: "The answer?", via: "sampling" } });
    assert(r.content[0].text === "model: forty-two", JSON.stringify(r));
    assert(prompts.join() === "The answer?", JSON.stringify(prompts));
    await v2.close();
    const relayed = stack.audit("--type", "server_request").filter((a) => a.actor === "agent-2026");
    assert(relayed.some((a) => a.method === "sampling/createMessage" && a.target === "ask" && a.outcome === "ok"),
           JSON.stringify(relayed));
  });

  await checks.check("a requestState that was altered, reused or taken to another tool is refused", async () => {
    const ask = (id, extra = {}) => call(id, "ask", { question: "Again?" },
                                          { "io.modelcontextprotocol/clientCapabilities": { elicitation: {} } });
    const first = await post(key, ask(20));
    const res = first.json.result;
    assert(res.resultType === "input_required" && res.requestState, first.text);
    const [inputKey] = Object.keys(res.inputRequests);
    assert(res.inputRequests[inputKey].method === "elicitation/create", first.text);
    const retry = (id, state, name = "ask") => {
      const b = call(id, name, name === "ask" ? { question: "Again?" } : { message: "x" },
                     { "io.modelcontextprotocol/clientCapabilities": { elicitation: {} } });
      b.params.requestState = state;
      b.params.inputResponses = { [inputKey]: { action: "accept", content: { answer: "red" } } };
      return post(key, b);
    };
    const flipped = res.requestState.slice(0, 5) + (res.requestState[5] === "A" ? "B" : "A") +
                    res.requestState.slice(6);
    const altered = await retry(21, flipped);
    assert(altered.json.error?.code === -32602 && /requestState/.test(altered.json.error.message), altered.text);
    const elsewhere = await retry(22, res.requestState, "echo");
    assert(elsewhere.json.error?.code === -32602 && /another request/.test(elsewhere.json.error.message),
           elsewhere.text);
    const other = narrowish;
    const stolen = await (async () => {
      const b = call(23, "ask", { question: "Again?" }, { "io.modelcontextprotocol/clientCapabilities": { elicitation: {} } });
      b.params.requestState = res.requestState;
      b.params.inputResponses = {};
      return post(other, b);
    })();
    assert(stolen.json.error?.code === -32602 && /another agent/.test(stolen.json.error.message), stolen.text);
    const ok = await retry(24, res.requestState);
    assert(ok.json.id === 24 && ok.json.result?.content?.[0]?.text === "answer: red", ok.text);
    const again = await retry(25, res.requestState);
    assert(again.json.error?.code === -32602, again.text);
  });

  await checks.check("without the capability in its request, the call is refused with -32021", async () => {
    const before = stack.audit("--type", "call").length;
    const r = await post(key, call(26, "ask", { question: "Q?" }));
    const streamed = (r.headers.get("content-type") ?? "").includes("text/event-stream");
    assert((r.status === 400 || streamed) && r.json.error?.code === -32021 &&
           typeof r.json.error.data?.requiredCapabilities?.elicitation === "object", r.text);
    await waitFor("the refusal's audit record", () =>
      stack.audit("--type", "call").slice(before).some((a) => a.target === "ask" &&
                                                              a.error_class === "missing_capability"));
  });

  await checks.check("a 2025 agent drives an SDK v2 server's input request as an elicitation", async () => {
    const v1 = new ClientV1({ name: "sdk-v1", version: "1" }, { capabilities: { elicitation: {} } });
    let asked = null;
    v1.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked = req.params.message;
      return { action: "accept", content: { ok: true } };
    });
    await v1.connect(new TransportV1(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    const r = await v1.callTool({ name: "v2.confirm", arguments: { what: "the deploy" } });
    assert(asked === "Go ahead with the deploy?", `asked: ${asked}`);
    assert(r.content[0].text === "done: the deploy", JSON.stringify(r));
    await v1.close();
  });

  await checks.check("a 2026 agent that did not declare elicitation is refused with -32021 when that server asks", async () => {
    const r = await post(key, call(17, "v2.confirm", { what: "the deploy" }));
    // 400 when the refusal is the answer's first word; the v2 server's first start may take
    // longer than this airlockd's short sse_keepalive, and then it comes on the SSE stream.
    const streamed = (r.headers.get("content-type") ?? "").includes("text/event-stream");
    assert((r.status === 400 || streamed) && r.json.error?.code === -32021 &&
           typeof r.json.error.data?.requiredCapabilities?.elicitation === "object", r.text);
  });

  const v1Client = async (capabilities = {}) => {
    const c = new ClientV1({ name: "sdk-v1", version: "1" }, { capabilities });
    await c.connect(new TransportV1(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    return c;
  };

  await checks.check("an http server of 2026-07-28 only is used without a session", async () => {
    const v1 = await v1Client();
    const r = await v1.callTool({ name: "m.hello", arguments: {} });
    assert(r.content[0].text === "hello from a 2026-only server", JSON.stringify(r));
    // Its credential is injected by the tunnel and never reaches the agent.
    const t = await v1.callTool({ name: "m.token", arguments: {} });
    assert(!JSON.stringify(t).includes(MODERN_TOKEN) && /REDACTED:modern-token/.test(t.content[0].text),
           JSON.stringify(t));
    await v1.close();
    const posts = modern.seen.filter((s) => s.method === "POST");
    const bodies = posts.map((s) => s.body);
    assert(bodies[0]?.method === "server/discover", `first: ${JSON.stringify(bodies[0])}`);
    assert(!bodies.some((b) => b?.method === "initialize" || b?.method?.startsWith("notifications/")),
           `a session was begun: ${JSON.stringify(bodies.map((b) => b?.method))}`);
    assert(!modern.seen.some((s) => s.method !== "POST" || s.headers["mcp-session-id"]),
           `GET, DELETE or a session id: ${JSON.stringify(modern.seen.map((s) => [s.method, s.headers["mcp-session-id"]]))}`);
    for (const s of posts) {
      const b = s.body;
      assert(s.headers["mcp-protocol-version"] === V &&
             b.params?._meta?.["io.modelcontextprotocol/protocolVersion"] === V &&
             s.headers["mcp-method"] === b.method &&
             (b.method !== "tools/call" || s.headers["mcp-name"] === b.params.name) &&
             s.headers.authorization === `Bearer ${MODERN_TOKEN}`,
             `request without the revision's envelope or headers: ${JSON.stringify(s)}`);
    }
    assert(bodies.some((b) => b.method === "tools/call" && b.params.name === "hello"), JSON.stringify(bodies));
  });

  await checks.check("an argument its tool mirrors in a header reaches it in Mcp-Param-*", async () => {
    const v1 = await v1Client();
    for (const region of ["eu-west1", "zürich"]) {
      const r = await v1.callTool({ name: "m.region", arguments: { region } });
      assert(r.content?.[0]?.text === `ran in ${region}`, JSON.stringify(r));
    }
    await v1.close();
    const sent = modern.seen.filter((s) => s.body?.params?.name === "region")
      .map((s) => s.headers["mcp-param-region"]);
    assert(sent[0] === "eu-west1" &&
           sent[1] === `=?base64?${Buffer.from("zürich").toString("base64")}?=`, JSON.stringify(sent));
    // airlockd checks the header of a 2026 agent's call against its argument.
    const body = call(40, "m.region", { region: "eu-west1" });
    const wrong = await post(key, body, { headers: { "Mcp-Param-Region": "us-east1" } });
    assert(wrong.status === 400 && wrong.json.error?.code === -32020 &&
           /Mcp-Param-Region/.test(wrong.json.error.message), wrong.text);
    const missing = await post(key, body);
    assert(missing.status === 400 && /Mcp-Param-Region header is missing/.test(missing.json.error?.message),
           missing.text);
    const right = await post(key, body, { headers: { "Mcp-Param-Region": "eu-west1" } });
    assert(right.json.result?.content?.[0]?.text === "ran in eu-west1", right.text);
  });

  await checks.check("its input requests reach a 2025 agent as elicitation, a 2026 agent as input_required", async () => {
    const v1 = await v1Client({ elicitation: {} });
    let asked = null;
    v1.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked = req.params.message;
      return { action: "accept", content: { ok: true } };
    });
    const r = await v1.callTool({ name: "m.confirm", arguments: { what: "the release" } });
    assert(asked === "Go ahead with the release?", `asked: ${asked}`);
    assert(r.content[0].text === "done: the release", JSON.stringify(r));
    await v1.close();
    // A 2026 agent: airlockd asks it through input_required in turn, and the SDK v2 client
    // answers through its handler; the server's requestState travels back to it intact.
    const prompts = [];
    const v2 = await v2Client({ elicitation: {} }, { "elicitation/create": async (req) => {
      prompts.push(req.params.message);
      return { action: "accept", content: { ok: false } };
    } });
    const r2 = await v2.callTool({ name: "m.confirm", arguments: { what: "the rollback" } });
    assert(r2.content[0].text === "not done: the rollback", JSON.stringify(r2));
    assert(prompts.join() === "Go ahead with the rollback?", JSON.stringify(prompts));
    await v2.close();
    const retries = modern.seen.filter((s) => s.body?.params?.name === "confirm" && s.body.params.inputResponses);
    assert(retries.length === 2 && retries.every((s) => s.body.params.inputResponses.ok?.action === "accept"),
           JSON.stringify(retries.map((s) => s.body.params)));
  });

  await checks.check("a cancelled call's request is closed at that server", async () => {
    const before = modern.state.cancelled;
    const v1 = await v1Client();
    const ac = new AbortController();
    const pending = v1.callTool({ name: "m.wait", arguments: {} }, undefined, { signal: ac.signal })
      .then(() => "answered", (e) => `failed: ${e.message}`);
    await waitFor("the wait call at the server", () =>
      modern.seen.some((s) => s.body?.params?.name === "wait"), 10000);
    ac.abort();
    assert((await pending).startsWith("failed"), "the call was not cancelled at the client");
    await waitFor("the server to see its request aborted", () => modern.state.cancelled > before, 10000);
    await v1.close();
  });

  await checks.check("its list changes arrive through subscriptions/listen", async () => {
    assert(modern.seen.some((s) => s.body?.method === "subscriptions/listen" &&
                                   s.body.params.notifications?.toolsListChanged === true),
           "the tunnel opened no subscriptions/listen");
    modern.addTool();
    const v1 = await v1Client();
    // Well before the tunnel's 10-minute refresh.
    await waitFor("m.added in the catalog", async () =>
      (await v1.listTools()).tools.some((t) => t.name === "m.added"), 15000);
    await v1.close();
  });

  await checks.check("every modern call is in the audit log as the agent's", async () => {
    const calls = stack.audit("--type", "call").filter((a) => a.actor === "agent-2026" && a.target === "slow");
    // Two answered (the shared id and token), one cancelled by closing its stream.
    assert(calls.filter((c) => c.outcome === "ok").length >= 2 &&
           calls.every((c) => c.connector === "tunnel/fx" &&
                              (c.outcome === "ok" || c.error_class === "cancelled")),
           JSON.stringify(calls));
  });
} catch (e) {
  checks.setupFailed(e);
}
await modern?.close();
await stack.finish(checks, ["airlockd", "fx", "v2", "m"]);
