// @modelcontextprotocol/conformance (0.1.13) server scenarios, run twice with the same
// fixture (conformance_server.mjs): directly over Streamable HTTP, and through Airlock
// (airlockd's /mcp → mcp-tunnel → the fixture over stdio). Every check must pass through
// Airlock, except those named in conformance-expected-failures.yaml, and the two runs must
// agree check by check. airlockd runs with its default config (no mcp.allowed_origins), as a
// new user's would. The suite sends no Authorization header, so a loopback proxy in this test
// adds the agent key and passes everything else (Host, Origin included) through.
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Stack, Checks, assert, freePort, keyProxy, waitFor, PEERS } from "./lib/stack.mjs";

const run = promisify(execFile);
const checks = new Checks("conformance");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "conformance_server.mjs");
const EXPECTED = path.join(PEERS, "conformance-expected-failures.yaml");
let direct, proxy;

async function suite(url, outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const args = ["--no-install", "conformance", "server", "--url", url, "-o", outDir];
  await run("npx", args, { cwd: PEERS, timeout: 600000 }).catch((e) => e);  // exit code: ours
  const results = new Map();
  for (const d of fs.readdirSync(outDir)) {
    const file = path.join(outDir, d, "checks.json");
    if (!fs.existsSync(file)) continue;
    const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
    for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
      results.set(`${scenario}/${c.id}`, { status: c.status, error: c.errorMessage });
    }
  }
  return results;
}

// INFO: the suite skipped a check because the server made a valid choice (for instance,
// answering JSON where SSE is optional); it is not a failure.
const passed = (r) => r !== undefined && (r.status === "SUCCESS" || r.status === "INFO");

function expectedFailures() {
  // A list of "- scenario/check-id  # reason" lines; empty when everything passes.
  if (!fs.existsSync(EXPECTED)) return new Set();
  return new Set(fs.readFileSync(EXPECTED, "utf8").split("\n")
    .map((l) => l.replace(/#.*/, "").trim()).filter((l) => l.startsWith("- "))
    .map((l) => l.slice(2).trim()));
}

try {
  const directPort = await freePort();
  direct = spawn(process.execPath, [FIXTURE, "http", String(directPort)], { stdio: "ignore" });
  await waitFor("fixture on HTTP", async () =>
    (await fetch(`http://127.0.0.1:${directPort}/mcp`).catch(() => null)) !== null);
  await stack.startAirlockd();  // the default config: loopback origins are served
  stack.startTunnel("conformance", `servers:
  - name: fixture
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
`);
  stack.applyTools("tools:\n  - {name: conformance, mcp_tunnel: conformance, server: fixture}\n");
  await stack.waitAvailable("conformance");
  const key = stack.agentKey("conformance-suite", "*");
  proxy = await keyProxy(stack.mcpUrl, key);

  const out = path.join(stack.dir, "conformance");
  const viaDirect = await suite(`http://127.0.0.1:${directPort}/mcp`, path.join(out, "direct"));
  const viaAirlock = await suite(proxy.url, path.join(out, "airlock"));
  const expected = expectedFailures();

  await checks.check(`the fixture passes every check when run directly (${viaDirect.size} checks)`, async () => {
    assert(viaDirect.size >= 30, `only ${viaDirect.size} checks ran`);
    const failed = [...viaDirect].filter(([, r]) => !passed(r));
    assert(failed.length === 0, failed.map(([k, r]) => `${k}: ${r.error}`).join("; "));
  });
  await checks.check(`every check passes through Airlock (${viaAirlock.size} checks)`, async () => {
    const failed = [...viaAirlock].filter(([k, r]) => !passed(r) && !expected.has(k));
    assert(failed.length === 0, failed.map(([k, r]) => `${k}: ${r.error}`).join("; "));
    const stale = [...expected].filter((k) => passed(viaAirlock.get(k)));
    assert(stale.length === 0, `expected failures that now pass: ${stale.join(", ")}`);
  });
  await checks.check("DNS-rebinding protection holds with airlockd's default config", async () => {
    for (const id of ["localhost-host-rebinding-rejected", "localhost-host-valid-accepted"]) {
      const r = viaAirlock.get(`dns-rebinding-protection/${id}`);
      assert(passed(r), `dns-rebinding-protection/${id}: ${r ? r.error : "did not run"}`);
    }
  });
  await checks.check("both runs give the same results, check by check", async () => {
    const keys = new Set([...viaDirect.keys(), ...viaAirlock.keys()]);
    const diff = [...keys].filter((k) => !expected.has(k) &&
                                         passed(viaDirect.get(k)) !== passed(viaAirlock.get(k)));
    assert(diff.length === 0, `differ: ${diff.join(", ")}`);
    const info = [...keys].filter((k) => viaDirect.get(k)?.status !== viaAirlock.get(k)?.status);
    for (const k of info) {
      console.log(`# ${k}: direct ${viaDirect.get(k)?.status}, through Airlock ` +
                  `${viaAirlock.get(k)?.status} (${viaAirlock.get(k)?.error ?? "a valid choice"})`);
    }
  });
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd"], () => { proxy?.close(); direct?.kill("SIGTERM"); });
}
