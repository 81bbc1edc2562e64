// No stdio server process outlives mcp-tunnel, whatever way it ends. Agent sessions are opened
// the way Claude Code opens them — the official SDK client, its GET stream open, and never a
// DELETE — against server-everything and the project's fixture over stdio, each process
// marked by an environment variable (as it would hold an injected credential); the fixture
// ignores the end of its stdin and SIGTERM, as a badly behaved server would. Then one
// shutdown path per run: SIGTERM to mcp-tunnel and airlockd together, SIGINT, airlockd killed
// first (links lost) and the tunnel stopped later, the drain timeout running out on a call in
// flight, and SIGKILL (no clean-up: the kernel's parent-death signal). After the tunnel
// exits, no process on the machine carries the marker. Also: a server's process count stays
// within its max_processes, the least recently used session's process ending first.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Stack, Checks, assert, waitFor, EVERYTHING, PEERS } from "./lib/stack.mjs";

const checks = new Checks("stdio children");
const FIXTURE = path.join(PEERS, "fixture_server.mjs");

// Every process whose environment holds `marker`, with its parent.
function marked(marker) {
  const found = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!fs.readFileSync(`/proc/${d}/environ`).includes(marker)) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;  // a zombie holds nothing any more
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").join(" ").trim();
      found.push({ pid: Number(d), ppid: Number(fields[1]), cmd });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return await new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => { clearTimeout(t); resolve(true); });
  });
}

// A stack with `sessions` agent sessions open on both servers; returns what the paths need.
async function openStack(sessions, opts = {}) {
  const stack = new Stack();
  try {
    return await startStack(stack, sessions, opts);
  } catch (e) {
    await stack.stop();  // nothing this test started outlives it either
    throw e;
  }
}

async function startStack(stack, sessions, { maxProcesses, drain, metrics } = {}) {
  const marker = "AIRLOCK_CHILD_MARK_" + crypto.randomBytes(8).toString("hex");
  await stack.startAirlockd();
  const limit = maxProcesses ? `    max_processes: ${maxProcesses}\n` : "";
  const tunnel = stack.startTunnel("kids", `servers:
  - name: everything
    url: stdio:${process.execPath}
    args: ["${EVERYTHING}", "stdio"]
    env: {MARK: "${marker}"}
${limit}  - name: fixture
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
    env: {MARK: "${marker}", FIXTURE_STUBBORN: "1"}
${limit}`, { args: [...(drain ? ["--drain-timeout", drain] : []),
                      ...(metrics ? ["--metrics-addr", "127.0.0.1:0"] : [])] });
  stack.applyTools(`tools:
  - {name: e, mcp_tunnel: kids, server: everything, prefix: e_}
  - {name: f, mcp_tunnel: kids, server: fixture, prefix: f_}
`);
  await stack.waitAvailable("e");
  await stack.waitAvailable("f");
  const key = stack.agentKey("agent-k", "*");
  const clients = [];
  for (let i = 0; i < sessions; i++) {
    const client = new Client({ name: `claude-code-like-${i}`, version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    await client.callTool({ name: "e_echo", arguments: { message: `hi ${i}` } });
    await client.callTool({ name: "f_echo", arguments: { message: `hi ${i}` } });
    clients.push(client);
  }
  return { stack, tunnel, marker, clients };
}

// Waits until the tunnel has exited, then asserts nothing it started is left. `dying`: how long
// the kernel may take to finish off processes it signalled (after SIGKILL: no clean-up ran).
async function expectNoneLeft(stack, tunnel, marker, within, dying = 0) {
  assert(await exited(tunnel, within), `mcp-tunnel still running ${within} ms later\n` +
         stack.log("kids").slice(-3000));
  const until = Date.now() + dying;
  while (marked(marker).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const left = marked(marker);
  assert(left.length === 0, `still running after mcp-tunnel exited: ${JSON.stringify(left)}\n` +
         stack.log("kids").slice(-2000));
}

const paths = [
  ["SIGTERM to mcp-tunnel and airlockd together (4 sessions)", 4, async ({ stack, tunnel }) => {
    stack.airlockd.kill("SIGTERM");
    tunnel.kill("SIGTERM");
  }],
  ["SIGTERM (2 sessions)", 2, async ({ tunnel }) => { tunnel.kill("SIGTERM"); }],
  ["SIGINT", 2, async ({ tunnel }) => { tunnel.kill("SIGINT"); }],
  ["airlockd gone first, the links lost, the tunnel stopped later", 2, async ({ stack, tunnel }) => {
    stack.airlockd.kill("SIGKILL");
    await exited(stack.airlockd, 5000);
    await waitFor("links lost", () => /link .*(closed|lost|ended)|reconnect/i.test(stack.log("kids")), 20000);
    tunnel.kill("SIGTERM");
  }],
  ["the drain timeout runs out on a call in flight", 2, async ({ tunnel, clients }) => {
    clients[0].callTool({ name: "f_slow", arguments: { ms: 60000 } }, undefined,
                        { timeout: 120000 }).catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    tunnel.kill("SIGTERM");
  }, { drain: "1s" }],
  ["SIGKILL (the kernel's parent-death signal)", 2, async ({ tunnel }) => { tunnel.kill("SIGKILL"); },
   { dying: 2000 }],
];

for (const [name, sessions, act, opts] of paths) {
  let env;
  await checks.check(`${name}: no server process survives mcp-tunnel`, async () => {
    env = await openStack(sessions, opts);
    const before = marked(env.marker);
    // One process per session and server, plus each server's catalog session.
    assert(before.length >= 2 * sessions, `only ${before.length} marked processes`);
    assert(before.every((p) => p.ppid === env.tunnel.pid), `not the tunnel's: ${JSON.stringify(before)}`);
    await act(env);
    await expectNoneLeft(env.stack, env.tunnel, env.marker, 15000, opts?.dying);
  });
  if (env) {
    for (const c of env.clients) c.close().catch(() => {});
    await env.stack.stop();
  }
}

await checks.check("max_processes bounds a server's processes; the least recently used goes first", async () => {
  const env = await openStack(0, { maxProcesses: 3, metrics: true });
  const { stack, marker } = env;
  try {
    const key = stack.agentKey("agent-m", "*");
    const count = () => marked(marker).filter((p) => p.ppid === env.tunnel.pid).length;
    const clients = [];
    for (let i = 0; i < 5; i++) {
      const client = new Client({ name: `never-ends-${i}`, version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
      const r = await client.callTool({ name: "f_echo", arguments: { message: `n${i}` } });
      assert(r.content[0].text === `n${i}`, JSON.stringify(r));
      clients.push(client);
      // everything: its catalog session; fixture: at most 3 in use (its catalog session
      // included), those ended to make room gone within their stop grace.
      await waitFor("old processes to end", () => count() <= 1 + 3, 10000);
    }
    const log = stack.log("kids");
    assert((log.match(/runs max_processes \(3\) processes/g) ?? []).length >= 2, log.slice(-2000));
    // The newest session works; an evicted one gets a fresh process on its next call.
    const again = await clients[0].callTool({ name: "f_echo", arguments: { message: "back" } });
    assert(again.content[0].text === "back", JSON.stringify(again));
    await waitFor("bounded after a reuse", () => count() <= 1 + 3, 10000);
    // The tunnel's /metrics shows the count, the limit and the sessions ended to make room.
    const url = stack.log("kids").match(/metrics and readiness on (http:\/\/[^ ]+\/metrics)/)[1];
    const text = await (await fetch(url)).text();
    const metric = (name) => Number(text.match(new RegExp(`^${name}\\{server="fixture"\\} (\\d+)$`, "m"))?.[1]);
    assert(metric("airlock_tunnel_server_processes_limit") === 3, text);
    assert(metric("airlock_tunnel_server_processes") <= 3 + 2, text);  // 2: still stopping
    assert(metric("airlock_tunnel_server_process_evictions_total") >= 3, text);
    for (const c of clients) c.close().catch(() => {});
  } finally {
    await stack.stop();
  }
});

process.exit(checks.done());
