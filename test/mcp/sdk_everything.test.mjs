// The official MCP TypeScript SDK client, through airlockd's /mcp and mcp-tunnel, to the
// reference server-everything — over stdio (argv[2] = "stdio") or Streamable HTTP ("http").
// Exercises lists, every tool that needs no model, progress, cancellation, sampling,
// elicitation and roots answered by this client, resources, prompts, completion and logging.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema,
  LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { spawn } from "node:child_process";
import { Stack, Checks, assert, freePort, waitFor, EVERYTHING } from "./lib/stack.mjs";

const mode = process.argv[2] ?? "stdio";
const checks = new Checks(`server-everything over ${mode}`);
const stack = new Stack();
let upstream;

async function connect(key, caps = {}) {
  const client = new Client({ name: "airlock-sdk-test", version: "1.0.0" }, { capabilities: caps });
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");

try {
  await stack.startAirlockd();
  let serverYaml;
  if (mode === "stdio") {
    serverYaml = `servers:\n  - name: everything\n    url: stdio:${process.execPath}\n` +
                 `    args: ["${EVERYTHING}", "stdio"]\n`;
  } else {
    const port = await freePort();
    upstream = spawn(process.execPath, [EVERYTHING, "streamableHttp"], {
      env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
    await waitFor("server-everything on HTTP", async () => {
      const r = await fetch(`http://127.0.0.1:${port}/mcp`, { method: "GET" }).catch(() => null);
      return r !== null;
    });
    serverYaml = `servers:\n  - name: everything\n    url: http://127.0.0.1:${port}/mcp\n`;
  }
  stack.startTunnel("private-tools", serverYaml);
  stack.applyTools(`tools:\n  - name: everything\n    mcp_tunnel: private-tools\n    server: everything\n`);
  await stack.waitAvailable("everything");
  const key = stack.agentKey("agent-a", "*");

  const sampled = [];
  const elicited = [];
  const { client } = await connect(key, {
    sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } });
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    sampled.push(req.params);
    return { model: "test-model", role: "assistant",
             content: { type: "text", text: "sampled answer from the test client" } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    elicited.push(req.params);
    return { action: "accept", content: { name: "Ada", check: true, email: "ada@example.com",
                                          integer: 7, number: 1.5, enums: "Option 1" } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({
    roots: [{ uri: "file:///srv/airlock-test-root", name: "airlock test root" }] }));
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  const updates = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params));

  let tools;
  await checks.check("tools/list shows the server's tools", async () => {
    tools = (await client.listTools()).tools.map((t) => t.name);
    for (const t of ["echo", "get-sum", "get-tiny-image", "trigger-long-running-operation",
                     "get-structured-content", "get-annotated-message"]) {
      assert(tools.includes(t), `missing ${t} in ${tools}`);
    }
  });
  await checks.check("echo", async () => {
    const r = await client.callTool({ name: "echo", arguments: { message: "through the airlock" } });
    assert(text(r) === "Echo: through the airlock", text(r));
  });
  await checks.check("get-sum", async () => {
    const r = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } });
    assert(text(r).includes("42"), text(r));
  });
  await checks.check("get-tiny-image returns an image", async () => {
    const r = await client.callTool({ name: "get-tiny-image", arguments: {} });
    const img = r.content.find((c) => c.type === "image");
    assert(img && img.mimeType === "image/png" && img.data.length > 100, "no PNG");
  });
  await checks.check("get-annotated-message keeps annotations", async () => {
    const r = await client.callTool({ name: "get-annotated-message",
                                      arguments: { messageType: "error", includeImage: false } });
    assert(r.content[0].annotations && r.content[0].annotations.priority !== undefined,
           JSON.stringify(r.content[0]));
  });
  await checks.check("get-structured-content returns structuredContent", async () => {
    const r = await client.callTool({ name: "get-structured-content",
                                      arguments: { location: "New York" } });
    assert(r.structuredContent && typeof r.structuredContent === "object",
           JSON.stringify(r));
  });
  await checks.check("get-resource-links and get-resource-reference", async () => {
    const links = await client.callTool({ name: "get-resource-links", arguments: { count: 2 } });
    assert(links.content.some((c) => c.type === "resource_link"), JSON.stringify(links));
    const ref = await client.callTool({ name: "get-resource-reference",
                                       arguments: { resourceType: "Text", resourceId: 3 } });
    assert(ref.content.some((c) => c.type === "resource"), JSON.stringify(ref));
  });
  await checks.check("get-env runs", async () => {
    const r = await client.callTool({ name: "get-env", arguments: {} });
    assert(text(r).length > 0, "empty");
  });
  await checks.check("long-running operation reports progress", async () => {
    const progress = [];
    const r = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } },
      undefined, { onprogress: (p) => progress.push(p), timeout: 30000 });
    assert(text(r).includes("Long running operation completed"), text(r));
    assert(progress.length >= 4, `only ${progress.length} progress notifications`);
    assert(progress.at(-1).progress === 4 && progress.at(-1).total === 4,
           JSON.stringify(progress.at(-1)));
  });
  await checks.check("cancellation mid-call, and the session goes on", async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort("test cancels"), 700);
    let failed = false;
    try {
      await client.callTool({ name: "trigger-long-running-operation",
                              arguments: { duration: 20, steps: 20 } },
                            undefined, { signal: ac.signal, onprogress: () => {} });
    } catch (e) {
      failed = true;
    }
    assert(failed, "the cancelled call succeeded");
    assert(Date.now() - started < 5000, "cancellation took too long");
    const r = await client.callTool({ name: "echo", arguments: { message: "after cancel" } });
    assert(text(r) === "Echo: after cancel", text(r));
  });
  await checks.check("sampling request answered by the client", async () => {
    assert(tools.includes("trigger-sampling-request"), "tool not offered");
    const r = await client.callTool({ name: "trigger-sampling-request",
                                      arguments: { prompt: "say hi", maxTokens: 20 } });
    assert(sampled.length === 1, `sampling handler ran ${sampled.length} times`);
    assert(text(r).includes("sampled answer from the test client"), text(r));
  });
  await checks.check("elicitation request answered by the client", async () => {
    assert(tools.includes("trigger-elicitation-request"), "tool not offered");
    const r = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
    assert(elicited.length === 1, `elicitation handler ran ${elicited.length} times`);
    assert(text(r).includes("Ada"), text(r));
  });
  await checks.check("roots/list answered by the client", async () => {
    assert(tools.includes("get-roots-list"), "tool not offered");
    const r = await client.callTool({ name: "get-roots-list", arguments: {} });
    assert(text(r).includes("file:///srv/airlock-test-root"), text(r));
  });
  await checks.check("resources list, read, templates", async () => {
    const list = await client.listResources();
    assert(list.resources.length > 0, "no resources");
    const first = list.resources[0];
    const read = await client.readResource({ uri: first.uri });
    assert(read.contents.length > 0 && read.contents[0].uri === first.uri, JSON.stringify(read));
    const templates = await client.listResourceTemplates();
    assert(templates.resourceTemplates.length > 0, "no templates");
    const tmpl = templates.resourceTemplates[0].uriTemplate;
    const uri = tmpl.replace(/\{[^}]+\}/, "2");
    const dyn = await client.readResource({ uri });
    assert(dyn.contents.length > 0, `nothing read from ${uri}`);
  });
  await checks.check("prompts list and get, with arguments", async () => {
    const list = await client.listPrompts();
    const names = list.prompts.map((p) => p.name);
    assert(names.includes("simple-prompt") && names.includes("args-prompt"), names.join(","));
    const simple = await client.getPrompt({ name: "simple-prompt" });
    assert(simple.messages.length > 0, "no messages");
    const args = await client.getPrompt({ name: "args-prompt", arguments: { city: "Oslo" } });
    assert(JSON.stringify(args.messages).includes("Oslo"), JSON.stringify(args));
  });
  await checks.check("completion/complete for a prompt argument", async () => {
    const r = await client.complete({ ref: { type: "ref/prompt", name: "completable-prompt" },
                                      argument: { name: "department", value: "E" } });
    assert(r.completion.values.includes("Engineering"), JSON.stringify(r));
  });
  await checks.check("logging: setLevel and log notifications", async () => {
    await client.setLoggingLevel("debug");
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
    await waitFor("a log notification", () => logs.length > 0, 15000);
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
  });
  await checks.check("resources/subscribe delivers resources/updated", async () => {
    const uri = (await client.listResources()).resources[0].uri;
    await client.subscribeResource({ uri });
    await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
    await waitFor("resources/updated", () => updates.some((u) => u.uri === uri), 20000);
    await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
    await client.unsubscribeResource({ uri });
  });
  await checks.check("a second agent with a narrow key sees only its tools", async () => {
    const keyB = stack.agentKey("agent-b", "echo");
    const { client: b } = await connect(keyB);
    const names = (await b.listTools()).tools.map((t) => t.name);
    assert(names.length === 1 && names[0] === "echo", names.join(","));
    const r = await b.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } }).catch((e) => e);
    assert(r instanceof Error && /not available to this agent key/.test(r.message),
           `out-of-scope call was not refused: ${JSON.stringify(r)}`);
    const events = stack.audit("--type", "tool_refused");
    assert(events.some((e) => e.actor === "agent-b" && e.target === "get-sum"),
           "no refusal recorded");
    await b.close();
  });
  await client.close();
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "private-tools"], () => upstream?.kill("SIGTERM"));
}
