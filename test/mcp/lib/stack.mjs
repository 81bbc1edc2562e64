// Starts a real Airlock stack for the MCP tests: airlockd (plain HTTP on loopback, a fresh
// state directory), mcp-tunnel with a given tunnel.yaml, agent keys and tool bindings, all
// through the real binaries and the airlock CLI. Every wait has a deadline.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const BIN = process.env.AIRLOCK_BIN_DIR ?? path.resolve(import.meta.dirname, "../../../build");
export const PEERS = path.resolve(import.meta.dirname, "..");
export const EVERYTHING = path.join(
  PEERS, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export async function freePort() {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor(what, fn, timeoutMs = 20000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

function startProcess(name, file, args, logFile, env = {}) {
  const out = fs.openSync(logFile, "a");
  const child = spawn(file, args, { stdio: ["ignore", out, out], env: { ...process.env, ...env } });
  child.on("error", (e) => console.error(`${name}: ${e.message}`));
  return child;
}

export class Stack {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "airlock-mcp-"));
    this.procs = [];
  }

  cli(...args) {
    return execFileSync(path.join(BIN, "airlock"), ["--state-dir", this.state, ...args], {
      encoding: "utf8",
    });
  }

  // Audit records, newest last: `airlock audit tail --json` with the given filters.
  audit(...filters) {
    const out = this.cli("--json", "audit", "tail", "--limit", "1000", ...filters);
    return out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  }

  async startAirlockd(extraYaml = "") {
    this.state = path.join(this.dir, "state");
    const cfg = path.join(this.dir, "airlockd.yaml");
    fs.writeFileSync(cfg, `listen: 127.0.0.1:0\nstate_dir: ${this.state}\ntls: {plaintext: true}\n${extraYaml}`);
    this.airlockd = startProcess("airlockd", path.join(BIN, "airlockd"), ["--config", cfg],
                                 path.join(this.dir, "airlockd.log"));
    this.procs.push(this.airlockd);
    const urlFile = path.join(this.state, "airlockd.url");
    this.url = await waitFor("airlockd.url", () =>
      fs.existsSync(urlFile) && fs.readFileSync(urlFile, "utf8").trim());
    this.mcpUrl = this.url + "/mcp";
    return this;
  }

  createTunnel(name) {
    const out = this.cli("tunnel", "create", name);
    const token = out.match(/alk_[A-Za-z0-9_-]+/)[0];
    const file = path.join(this.dir, `${name}.token`);
    fs.writeFileSync(file, token + "\n", { mode: 0o600 });
    return file;
  }

  // `endpoint` overrides airlockd's (a capture proxy in between); `allowed` replaces "*" as
  // --allowed-credentials; `env` is added to the tunnel's environment; `args` to its flags.
  startTunnel(name, tunnelYaml, { endpoint, allowed = ["*"], env = {}, args = [] } = {}) {
    const tokenFile = this.createTunnel(name);
    const cfg = path.join(this.dir, `${name}.yaml`);
    fs.writeFileSync(cfg, tunnelYaml);
    endpoint ??= this.url.replace(/^http/, "ws") + "/v1/connect";
    const p = startProcess("mcp-tunnel", path.join(BIN, "mcp-tunnel"),
                           ["start", "--endpoint", endpoint, "--token-file", tokenFile,
                            "--config", cfg, ...allowed.flatMap((a) => ["--allowed-credentials", a]),
                            "--log-level", process.env.AIRLOCK_TEST_LOG_LEVEL ?? "info", ...args],
                           path.join(this.dir, `${name}.log`), env);
    this.procs.push(p);
    return p;
  }

  // Registers sandbox `name` (the CLI checks `sandboxYaml` first) and starts `sandbox-agent
  // start` for it. `prefix` is a command the agent is started under (e.g. unshare and mounts
  // for a resolver of the test's own); `env` is added to its environment.
  startSandbox(name, sandboxYaml, { env = {}, prefix = [], args = [], file = name } = {}) {
    const cfg = path.join(this.dir, `${file}.sandbox.yaml`);
    fs.writeFileSync(cfg, sandboxYaml);
    if (!this.sandboxTokens?.[name]) {
      const out = this.cli("sandbox", "create", name, "-f", cfg);
      const token = out.match(/alk_[A-Za-z0-9_-]+/)[0];
      this.sandboxTokens = { ...this.sandboxTokens, [name]: path.join(this.dir, `${name}.token`) };
      fs.writeFileSync(this.sandboxTokens[name], token + "\n", { mode: 0o600 });
    }
    const endpoint = this.url.replace(/^http/, "ws") + "/v1/connect";
    const agentArgs = ["start", "--endpoint", endpoint, "--token-file", this.sandboxTokens[name],
                       "--config", cfg, "--drain-timeout", "2s",
                       "--log-level", process.env.AIRLOCK_TEST_LOG_LEVEL ?? "info", ...args];
    const [cmd, ...rest] = prefix.length ? [...prefix, path.join(BIN, "sandbox-agent"), ...agentArgs]
                                         : [path.join(BIN, "sandbox-agent"), ...agentArgs];
    const p = startProcess("sandbox-agent", cmd, rest, path.join(this.dir, `${file}.log`), env);
    this.procs.push(p);
    return p;
  }

  agentKey(name, tools) {
    const out = this.cli("agent-key", "create", name, "--tools", tools);
    return out.match(/alk_[A-Za-z0-9_-]+/)[0];
  }

  applyTools(yaml) {
    const file = path.join(this.dir, "tools.yaml");
    fs.writeFileSync(file, yaml);
    return this.cli("tools", "apply", "-f", file);
  }

  async waitAvailable(binding, timeoutMs = 30000) {
    await waitFor(`binding ${binding} available`, () => {
      const v = JSON.parse(this.cli("--json", "tools", "list"));
      return v.bindings.some((b) => b.name === binding && b.status === "available");
    }, timeoutMs);
  }

  log(name) {
    const f = path.join(this.dir, `${name}.log`);
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  }

  // Ends a test script: when anything failed, prints the tail of the named logs; then stops
  // the stack, runs `cleanup` (for processes the test started itself) and exits with the result.
  async finish(checks, logs, cleanup = () => {}) {
    if (checks.failed) {
      for (const name of logs) console.log(`--- ${name}.log ---\n` + this.log(name).slice(-4000));
    }
    await this.stop();
    await cleanup();
    process.exit(checks.done());
  }

  async stop() {
    for (const p of this.procs.reverse()) {
      if (p.exitCode === null) p.kill("SIGTERM");
    }
    await Promise.all(this.procs.map((p) => p.exitCode !== null ? null :
      new Promise((r) => { const t = setTimeout(() => { p.kill("SIGKILL"); r(); }, 5000);
                           p.on("exit", () => { clearTimeout(t); r(); }); })));
    if (!process.env.AIRLOCK_KEEP_TEST_DIR) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// A loopback proxy in front of `mcpUrl` that adds `Authorization: Bearer <key>` and passes
// everything else (Host and Origin included) through: for clients, such as the conformance
// suite, that send no Authorization header. Returns its URL and a close().
export async function keyProxy(mcpUrl, key) {
  const target = new URL(mcpUrl);
  const server = http.createServer((req, res) => {
    const up = http.request({ host: target.hostname, port: target.port, path: req.url,
                              method: req.method,
                              headers: { ...req.headers, authorization: `Bearer ${key}` } },
      (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on("error", () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}${target.pathname}`,
           close: () => server.close() };
}

// Minimal TAP-ish runner: every check prints a line; any failure makes the exit code 1.
export class Checks {
  constructor(title) {
    this.title = title;
    this.passed = 0;
    this.failed = 0;
  }
  async check(name, fn) {
    const t0 = Date.now();
    try {
      await fn();
      this.passed++;
      console.log(`ok - ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      this.failed++;
      console.log(`not ok - ${name}: ${e.stack ?? e}`);
    }
  }
  setupFailed(e) {
    this.failed++;
    console.log(`not ok - setup: ${e.stack ?? e}`);
  }
  done() {
    console.log(`${this.title}: ${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0 ? 0 : 1;
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
