// The MCP Inspector's CLI (npx @modelcontextprotocol/inspector --cli) against airlockd's /mcp
// with an agent key in a header: tools/list and tools/call, through a tunnel to the fixture
// server over stdio.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Stack, Checks, assert, PEERS } from "./lib/stack.mjs";

const run = promisify(execFile);
const checks = new Checks("inspector cli");
const stack = new Stack();

async function inspector(key, ...args) {
  const { stdout } = await run("npx", ["--no-install", "@modelcontextprotocol/inspector", "--cli",
                                       stack.mcpUrl, "--transport", "http",
                                       "--header", `Authorization: Bearer ${key}`, ...args],
                               { cwd: PEERS, timeout: 60000 });
  return JSON.parse(stdout);
}

try {
  await stack.startAirlockd("mcp:\n  session_idle_timeout: 1s\n");
  stack.startTunnel("inspected", `servers:
  - name: fixture
    url: stdio:${process.execPath}
    args: ["${path.join(PEERS, "fixture_server.mjs")}", "stdio"]
`);
  stack.applyTools("tools:\n  - {name: fx, mcp_tunnel: inspected, server: fixture}\n");
  await stack.waitAvailable("fx");
  const key = stack.agentKey("inspector", "*");
  await checks.check("inspector --method tools/list", async () => {
    const r = await inspector(key, "--method", "tools/list");
    const names = r.tools.map((t) => t.name);
    assert(names.includes("echo") && names.includes("add"), names.join(","));
  });
  await checks.check("inspector --method tools/call", async () => {
    const r = await inspector(key, "--method", "tools/call", "--tool-name", "add",
                              "--tool-arg", "a=40", "b=2");
    assert(r.content[0].text === "42", JSON.stringify(r));
  });
  await checks.check("inspector with a wrong key fails", async () => {
    const r = await inspector("alk_000000000000_wrong", "--method", "tools/list").catch((e) => e);
    assert(r instanceof Error, "a wrong key was accepted");
  });
  await checks.check("an idle session ends after mcp.session_idle_timeout", async () => {
    const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream",
                      Authorization: `Bearer ${key}` };
    const init = await fetch(stack.mcpUrl, { method: "POST", headers, body: JSON.stringify({
      jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "idle", version: "1" } } }) });
    const session = init.headers.get("mcp-session-id");
    const ping = async () => (await fetch(stack.mcpUrl, { method: "POST",
      headers: { ...headers, "Mcp-Session-Id": session },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }) })).status;
    assert(await ping() === 200, "the new session does not answer");
    // Any request would keep the session alive, so this waits without asking: the timeout
    // (1 s) plus one sweep of the idle-session sweeper (every 5 s) plus slack.
    await new Promise((r) => setTimeout(r, 7500));
    assert(await ping() === 404, "the idle session still answers");
  });
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd"]);
}
