// The web console in headless Chromium (Debian's, driven by playwright-core): sign-in, the
// Sandboxes / Tunnels / Tools / Agents / Audit pages, creating a sandbox and a tunnel and
// starting them with the commands the page shows, a call through /mcp appearing in Audit,
// revocation from the console, and the attacks a browser brings: no token, a cross-site form
// post, markup in names, descriptions and YAML errors. Also /metrics parsed, and the audit
// database edited behind airlockd's back. Screenshots of each page are kept in the build tree
// (console-screenshots/); with AIRLOCK_UPDATE_SCREENSHOTS=1 they also replace docs/images/.
import { chromium } from "playwright-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawn, execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { Stack, Checks, assert, waitFor, BIN, PEERS } from "./lib/stack.mjs";

const checks = new Checks("web console");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "fixture_server.mjs");
const SHOTS = path.join(BIN, "console-screenshots");
const DOC_IMAGES = path.resolve(PEERS, "../../docs/images");
const procs = [];
let browser, evil;

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `console-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.AIRLOCK_UPDATE_SCREENSHOTS === "1") {
    fs.mkdirSync(DOC_IMAGES, { recursive: true });
    fs.copyFileSync(file, path.join(DOC_IMAGES, `console-${name}.png`));
  }
}

// Starts a command line exactly as the page shows it, in `dir` (where its config file is).
function runShown(command, dir, log) {
  // setpriv: it ends with the test, however the test ends.
  const p = spawn("setpriv", ["--pdeathsig", "KILL", "bash", "-c", command], {
    cwd: dir, env: { ...process.env, PATH: `${BIN}:${process.env.PATH}` },
    stdio: ["ignore", fs.openSync(log, "a"), fs.openSync(log, "a")],
  });
  procs.push(p);
  return p;
}

async function statusOf(page, name) {
  const cell = page.locator(`tr[data-name="${name}"] td.status`);
  return (await cell.count()) ? (await cell.textContent()).trim() : "";
}

const admin = () => fs.readFileSync(path.join(stack.state, "admin.token"), "utf8").trim();
async function adminGet(p) {
  return fetch(stack.url + p, { headers: { Authorization: `Bearer ${admin()}` } });
}

// The status /v1/connect answers a connector's WebSocket upgrade with this token: 101 when it
// is accepted (the socket is then closed), 401 when refused.
function connectStatus(token) {
  return new Promise((resolve, reject) => {
    const req = http.request(stack.url + "/v1/connect", { headers: {
      Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "airlock-protocol": "1",
      Authorization: `Bearer ${token}` } });
    req.on("upgrade", (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on("response", (res) => { res.resume(); resolve(res.statusCode); });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("no answer from /v1/connect")));
    req.end();
  });
}

try {
  await stack.startAirlockd();
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("dialog", (d) => d.accept());
  

  await checks.check("without the token every API refuses and the page offers only sign-in", async () => {
    for (const [m, p] of [["GET", "/v1/status"], ["GET", "/v1/sandboxes"], ["GET", "/v1/audit"],
                          ["GET", "/metrics"], ["POST", "/v1/agents"], ["GET", "/v1/tools"],
                          ["POST", "/v1/console/deployment"]]) {
      const r = await fetch(stack.url + p, { method: m });
      assert(r.status === 401, `${m} ${p}: ${r.status}`);
    }
    const r = await fetch(stack.url + "/");
    const csp = r.headers.get("content-security-policy") ?? "";
    assert(r.status === 200 && csp.includes("default-src 'none'") && csp.includes("script-src 'self'") &&
           csp.includes("frame-ancestors 'none'"), csp);
    const html = await r.text();
    assert(!/(src|href)="(https?:)?\/\//.test(html), "the page loads something from elsewhere");
    await page.goto(stack.url + "/");
    await page.waitForSelector("#signin");
    assert(await page.locator("#nav").isHidden(), "navigation shown before sign-in");
    assert((await page.locator("table").count()) === 0, "data shown before sign-in");
    await shot(page, "sign-in");
  });

  await checks.check("a wrong token is refused and recorded", async () => {
    await page.fill("#admin-token", "alk_000000000000_" + "x".repeat(43));
    await page.click("#signin-button");
    await page.waitForSelector("#signin-error:not([hidden])");
    const fails = stack.audit("--type", "auth_failure");
    assert(fails.some((f) => f.target === "console sign-in"), JSON.stringify(fails.slice(-2)));
  });

  await checks.check("sign-in with the admin token: an HttpOnly, SameSite=Strict session cookie", async () => {
    await page.fill("#admin-token", admin());
    await page.click("#signin-button");
    await page.waitForSelector("#sandboxes-table");
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === "airlock_session");
    assert(c && c.httpOnly && c.sameSite === "Strict", JSON.stringify(cookies));
    const inPage = await page.evaluate(() => document.cookie);
    assert(!inPage.includes("airlock_session"), "the session cookie is readable by scripts");
  });

  await checks.check("a YAML error containing <script> is shown as text, at its line", async () => {
    await page.click("#create");
    await page.fill("#new-name", "console-box");
    await page.fill("#new-config", "sandbox:\n  type: self-hosted\n  image: host\n  \"<script>window.__xss=1</script>\": 1\n");
    await page.click("#create-submit");
    await page.waitForSelector("#create-error:not([hidden])");
    const text = await page.locator("#create-error").textContent();
    assert(text.includes("<script>window.__xss=1</script>") && text.includes("line 4"), text);
    assert((await page.locator("#config-lines .bad-line").textContent()).includes("<script>"), "line not marked");
    assert(await page.evaluate(() => window.__xss === undefined && document.scripts.length === 1), "markup ran");
    await shot(page, "sandbox-yaml-error");
  });

  await checks.check("a sandbox name containing <script> is refused, shown as text", async () => {
    await page.fill("#new-name", "<script>window.__xss=2</script>");
    await page.fill("#new-config", "sandbox:\n  type: self-hosted\n  image: host\n");
    await page.click("#create-submit");
    await page.waitForFunction(() => document.querySelector("#create-error").textContent.includes("name must be"));
    assert(await page.evaluate(() => window.__xss === undefined && document.scripts.length === 1), "markup ran");
  });

  const sandboxDir = path.join(stack.dir, "box");
  fs.mkdirSync(sandboxDir);
  const sandboxYaml = `sandbox:
  type: self-hosted
  name: console-box
  image: host
  resources:
    cpu: "1"
    memory: "256Mi"
  max_sessions: 2
  custom_tools:
    - name: greet
      description: "<script>window.__xss=3</script>Greets someone"
      input_schema:
        type: object
        properties:
          who: {type: string, maxLength: 64}
        required: [who]
      command: ["/bin/echo", "hello,", "{{who}}"]
`;

  await checks.check("Create New Sandbox: token once, the commands; the shown command makes it Active within 5 s", async () => {
    await page.fill("#new-name", "console-box");
    await page.fill("#new-config", sandboxYaml);
    await page.click("#create-submit");
    await page.waitForSelector("#created");
    const token = (await page.locator("#new-token").textContent()).trim();
    const command = (await page.locator("#deploy-command").textContent()).trim();
    const manifest = await page.locator("#deploy-manifest").textContent();
    assert(/^alk_/.test(token), token);
    assert(command.startsWith("AIRLOCK_TOKEN='alk_") && command.includes("sandbox-agent start --endpoint ws://") &&
           command.includes("--config sandbox.yaml"), command);
    assert(manifest.includes(token) && manifest.includes("name: console-box") &&
           manifest.includes("ws://127.0.0.1") && !manifest.includes("airlock.example.com:8443"), manifest.slice(0, 400));
    await shot(page, "sandbox-created");
    fs.writeFileSync(path.join(sandboxDir, "sandbox.yaml"), sandboxYaml);
    const started = Date.now();
    runShown(command, sandboxDir, path.join(stack.dir, "box.log"));
    await page.click('a[href="#/sandboxes"]');
    await page.waitForSelector('tr[data-name="console-box"]');
    await waitFor("console-box Active", async () => (await statusOf(page, "console-box")) === "Active", 5000);
    console.log(`# Active on the page ${Date.now() - started} ms after the command started`);
    await shot(page, "sandboxes");
  });

  const tunnelDir = path.join(stack.dir, "tun");
  fs.mkdirSync(tunnelDir);
  const tunnelYaml = `servers:
  - name: fixture
    url: stdio:${process.execPath}
    args: ["${FIXTURE}", "stdio"]
`;
  await checks.check("Create New Tunnel: the mcp-tunnel line with --allowed-credentials; Active within 5 s; its servers", async () => {
    await page.click('a[href="#/tunnels"]');
    await page.waitForSelector("#tunnels-table");
    await page.click("#create");
    await page.fill("#new-name", "console-tunnel");
    // A tunnel.yaml error is shown at its line before anything is created.
    await page.fill("#new-config", "servers:\n  - name: x\n    url: tcp://127.0.0.1:1\n    colour: red\n");
    await page.click("#create-submit");
    await page.waitForSelector("#create-error:not([hidden])");
    assert(await page.locator("#config-lines .bad-line").count() === 1, "line not marked");
    const none = JSON.parse(stack.cli("--json", "tunnel", "list"));
    assert(!none.some((t) => t.name === "console-tunnel"), "created despite the error");
    await page.fill("#new-config", tunnelYaml);
    await page.click("#create-submit");
    await page.waitForSelector("#created");
    const command = (await page.locator("#deploy-command").textContent()).trim();
    assert(command.includes("mcp-tunnel start --endpoint ws://") && command.includes('--allowed-credentials "*"'), command);
    fs.writeFileSync(path.join(tunnelDir, "tunnel.yaml"), tunnelYaml);
    runShown(command, tunnelDir, path.join(stack.dir, "tun.log"));
    await page.click('a[href="#/tunnels"]');
    await waitFor("console-tunnel Active", async () => (await statusOf(page, "console-tunnel")) === "Active", 5000);
    await waitFor("its server listed", async () =>
      (await page.locator('tr[data-name="console-tunnel"]').textContent()).includes("fixture"), 5000);
    await shot(page, "tunnels");
  });

  await checks.check("Tools: apply bindings; a tool description containing <script> is shown as text", async () => {
    await page.click('a[href="#/tools"]');
    await page.waitForSelector("#bindings-yaml");
    await page.waitForFunction(() => document.querySelector("#bindings-yaml").value.startsWith("tools:"));
    await page.fill("#bindings-yaml", `tools:
  - {name: fx, mcp_tunnel: console-tunnel, server: fixture, prefix: fx_}
  - {name: box, sandbox: console-box}
`);
    await page.click("#apply-bindings");
    await page.waitForSelector("#bindings-ok:not([hidden])");
    await waitFor("bindings available", async () => {
      const t = await page.locator("#tools-table").textContent();
      return t.includes("fx_echo") && t.includes("greet") && !t.includes("unavailable");
    }, 30000);
    const tools = await page.locator("#tools-table").textContent();
    assert(tools.includes("<script>window.__xss=3</script>Greets someone"), tools.slice(0, 500));
    assert(await page.evaluate(() => window.__xss === undefined && document.scripts.length === 1), "markup ran");
    await shot(page, "tools");
  });

  let key;
  await checks.check("Agents: create a key, shown once", async () => {
    await page.click('a[href="#/agents"]');
    await page.fill("#agent-name", "console-agent");
    await page.fill("#agent-tools", "fx_*, greet");
    await page.click("#agent-create");
    await page.waitForSelector("#new-key");
    key = (await page.locator("#new-key").textContent()).trim();
    assert(/^alk_/.test(key), key);
    await page.waitForSelector('tr[data-name="console-agent"]');
    await shot(page, "agents");
  });

  await checks.check("a call made through /mcp appears in Audit, live", async () => {
    await page.click('a[href="#/audit"]');
    await page.waitForSelector("#audit-table");
    const client = new Client({ name: "console-test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl),
      { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    const r = await client.callTool({ name: "fx_echo", arguments: { message: "seen in audit" } });
    assert(!r.isError, JSON.stringify(r));
    const g = await client.callTool({ name: "greet", arguments: { who: "console" } });
    assert(JSON.stringify(g).includes("hello, console"), JSON.stringify(g));
    await client.close();
    await waitFor("the calls on the Audit page", async () => {
      const t = await page.locator("#audit-table").textContent();
      return t.includes("tools/call fx_echo") && t.includes("tools/call greet") && t.includes("console-agent");
    }, 8000);
    const seqs = await page.$$eval("#audit-table tbody tr", (rows) => rows.map((r) => Number(r.dataset.seq)));
    assert(seqs.length > 5 && seqs.every((n, i) => i === 0 || n < seqs[i - 1]),
           `the table is not newest first, each record once: ${seqs}`);
    await page.click("#audit-verify");
    await page.waitForFunction(() => document.querySelector("#audit-verdict").textContent.includes("Intact"));
    await shot(page, "audit");
  });

  await checks.check("a cross-site form post is refused; a change without the CSRF token is refused", async () => {
    const before = JSON.parse(stack.cli("--json", "agent-key", "list")).agents.length;
    evil = http.createServer((req, res) => {
      res.setHeader("Content-Type", "text/html");
      res.end(`<form id="f" method="POST" action="${stack.url}/v1/agents" enctype="text/plain">
<input name='{"name":"evil","tools":["*"],"x":"' value='"}'></form>
<script>document.getElementById("f").submit()</script>`);
    });
    await new Promise((r) => evil.listen(0, "127.0.0.2", r));
    const other = await context.newPage();
    const answered = other.waitForResponse((resp) => resp.url().endsWith("/v1/agents"));
    await other.goto(`http://127.0.0.2:${evil.address().port}/`);
    const resp = await answered;
    assert([401, 403].includes(resp.status()), `cross-site post answered ${resp.status()}`);
    await other.close();
    // From the console's own origin but without the session's CSRF token.
    const status = await page.evaluate(async () => (await fetch("/v1/agents", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "no-csrf", tools: ["*"] }) })).status);
    assert(status === 403, `without CSRF: ${status}`);
    const after = JSON.parse(stack.cli("--json", "agent-key", "list")).agents.map((a) => a.name);
    assert(after.length === before && !after.includes("evil") && !after.includes("no-csrf"), after);
    // Signing in from another origin, even with the right token, gets no session: neither as
    // the form another site can post, nor as JSON carrying that site's Origin.
    const signIn = (headers, body) => fetch(stack.url + "/console/session", { method: "POST", headers, body });
    const crossOrigin = `http://127.0.0.2:${evil.address().port}`;
    for (const r of [
      await signIn({ "Content-Type": "text/plain", Origin: crossOrigin }, JSON.stringify({ token: admin() })),
      await signIn({ "Content-Type": "application/json", Origin: crossOrigin }, JSON.stringify({ token: admin() })),
    ]) {
      assert(r.status === 403 && !r.headers.get("set-cookie"), `cross-origin sign-in: ${r.status}`);
    }
    const own = await signIn({ "Content-Type": "application/json", Origin: stack.url }, JSON.stringify({ token: admin() }));
    assert(own.status === 200 && own.headers.get("set-cookie"), `same-origin sign-in: ${own.status}`);
  });

  await checks.check("revoke from the console: the sandbox disconnects", async () => {
    await page.click('a[href="#/sandboxes"]');
    await page.waitForSelector('tr[data-name="console-box"] button[data-action="revoke"]');
    await page.click('tr[data-name="console-box"] button[data-action="revoke"]');
    await waitFor("console-box Disconnected", async () => (await statusOf(page, "console-box")) === "Disconnected", 5000);
    const admins = stack.audit("--type", "admin", "--actor", "console");
    assert(admins.some((a) => a.method === "POST /v1/sandboxes/console-box/revoke" && a.outcome === "ok"),
           JSON.stringify(admins.slice(-3)));
  });

  await checks.check("no page raised a script error", async () => {
    assert(pageErrors.length === 0, pageErrors.join("\n"));
  });

  await checks.check("/metrics parses and counts calls by tool and outcome, auth failures, the audit backlog", async () => {
    const r = await adminGet("/metrics");
    const text = await r.text();
    assert(r.status === 200 && r.headers.get("content-type").startsWith("text/plain"), r.status);
    const samples = new Map();
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (-?[0-9.e+-]+|NaN|\+Inf)$/);
      assert(m, `not the text format: ${line}`);
      samples.set(m[1] + (m[2] ?? ""), Number(m[4]));
    }
    const get = (k) => samples.get(k);
    const calls = [...samples.keys()].filter((k) => k.startsWith("airlock_mcp_calls_total{") &&
                                                    k.includes('tool="fx_echo"') && k.includes('outcome="ok"'));
    assert(calls.length === 1 && get(calls[0]) >= 1, calls);
    assert(get('airlock_auth_failures_total{endpoint="admin"}') >= 1, "admin auth failures");
    assert(get("airlock_audit_backlog") >= 0 && get("airlock_audit_records_written_total") > 5, "audit");
    assert([...samples.keys()].some((k) => k.startsWith("airlock_mcp_call_duration_seconds_bucket{")), "histogram");
    assert(get('airlock_resources{kind="tunnel",status="Active"}') === 1, "resources");
    const ready = await fetch(stack.url + "/readyz");
    assert(ready.status === 200 && (await ready.json()).checks.audit === "ok", "readyz");
  });

  await checks.check("the admin API and CLI: update, delete (an agent, a binding, a tunnel, a sandbox), one binding, connections, unknown fields", async () => {
    const cli = (...a) => spawnSync(path.join(BIN, "airlock"), ["--state-dir", stack.state, ...a], { encoding: "utf8" });
    let r = cli("tunnel", "update", "console-tunnel", "--description", "the CRM's servers");
    assert(r.status === 0 && r.stdout.includes("the CRM's servers"), r.stdout + r.stderr);
    r = cli("agent-key", "update", "console-agent", "--tools", "fx_echo");
    assert(r.status === 0 && r.stdout.includes("tools fx_echo"), r.stdout + r.stderr);
    fs.writeFileSync(path.join(stack.dir, "one.yaml"), "{mcp_tunnel: console-tunnel, server: fixture, prefix: fx2_}\n");
    r = cli("tools", "set", "fx", "-f", path.join(stack.dir, "one.yaml"));
    assert(r.status === 0 && r.stdout.includes("fx2_echo"), r.stdout + r.stderr);
    r = cli("tools", "delete", "fx");
    assert(r.status === 0, r.stderr);
    r = cli("tools", "show", "fx");
    assert(r.status === 1 && r.stderr.includes("no binding named 'fx'"), r.stderr);
    const conns = JSON.parse(cli("--json", "connections", "list").stdout).connections;
    const link = conns.find((c) => c.name === "console-tunnel");
    assert(link, JSON.stringify(conns));
    r = cli("connections", "close", link.id);
    assert(r.status === 0 && r.stdout.includes(link.id), r.stdout + r.stderr);
    const bad = await fetch(stack.url + "/v1/agents", { method: "POST",
      headers: { Authorization: `Bearer ${admin()}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "x", tools: ["*"], colour: "red" }) });
    const e = (await bad.json()).error;
    assert(bad.status === 400 && e.code === "unknown_field" && e.message.includes("'colour'"), JSON.stringify(e));
    const q = await adminGet("/v1/audit?colour=red");
    assert(q.status === 400 && (await q.text()).includes("unknown parameter 'colour'"), q.status);
    r = cli("agent-key", "delete", "console-agent");
    assert(r.status === 0, r.stderr);
    r = cli("agent-key", "show", "console-agent");
    assert(r.status === 1 && r.stderr.includes("no agent named"), r.stderr);
    // A tunnel and a sandbox deleted: gone from the API, and their tokens with them.
    for (const kind of ["tunnel", "sandbox"]) {
      const made = JSON.parse(cli("--json", kind, "create", `doomed-${kind}`).stdout);
      assert(await connectStatus(made.token) === 101, `${kind}: its new token does not open /v1/connect`);
      r = cli(kind, "delete", `doomed-${kind}`);
      assert(r.status === 0, r.stdout + r.stderr);
      r = cli(kind, "show", `doomed-${kind}`);
      assert(r.status === 1 && r.stderr.includes(`no ${kind} named 'doomed-${kind}'`), r.stderr);
      const listed = JSON.parse(cli("--json", kind, "list").stdout);
      assert(!JSON.stringify(listed).includes(`doomed-${kind}`), JSON.stringify(listed));
      assert(await connectStatus(made.token) === 401, `${kind}: its token still opens /v1/connect`);
    }
    const recorded = stack.audit("--type", "admin", "--actor", "admin").map((a) => a.method);
    for (const m of ["DELETE /v1/agents/console-agent", "PATCH /v1/tunnels/console-tunnel",
                     "DELETE /v1/tunnels/doomed-tunnel", "DELETE /v1/sandboxes/doomed-sandbox"]) {
      assert(recorded.includes(m), `${m} not in ${recorded.join(", ")}`);
    }
  });

  await checks.check("the audit database edited behind airlockd's back: `airlock audit verify` names the record", async () => {
    const db = path.join(stack.state, "audit.db");
    const verify = () => spawnSync(path.join(BIN, "airlock"), ["--state-dir", stack.state, "audit", "verify"],
                                   { encoding: "utf8" });
    let v = verify();
    assert(v.status === 0 && v.stdout.startsWith("intact"), v.stdout + v.stderr);
    const original = execFileSync("sqlite3", [db, "SELECT actor FROM audit WHERE seq=5"], { encoding: "utf8" }).trim();
    execFileSync("sqlite3", [db, "UPDATE audit SET actor='mallory' WHERE seq=5"]);
    v = verify();
    assert(v.status === 1 && v.stdout.includes("BROKEN at record 5 ") && v.stdout.includes("(edited)"), v.stdout);
    execFileSync("sqlite3", [db, `UPDATE audit SET actor='${original}' WHERE seq=5`]);
    v = verify();
    assert(v.status === 0, "restoring the record did not restore the chain: " + v.stdout);
    execFileSync("sqlite3", [db, "DELETE FROM audit WHERE seq=7"]);
    v = verify();
    assert(v.status === 1 && v.stdout.includes("BROKEN at record 8 (removed)") && v.stdout.includes("record 7 before"),
           v.stdout);
    // An export is checked the same way, offline.
    const exported = path.join(stack.dir, "audit.jsonl");
    stack.cli("audit", "export", "-o", exported);
    const off = spawnSync(path.join(BIN, "airlock"), ["audit", "verify", "--file", exported], { encoding: "utf8" });
    assert(off.status === 1 && off.stdout.includes("(removed)"), off.stdout + off.stderr);
  });

  await checks.check("over TLS the session cookie is also Secure", async () => {
    const tlsStack = new Stack();
    tlsStack.dir = fs.mkdtempSync(path.join(stack.dir, "tls-"));
    tlsStack.state = path.join(tlsStack.dir, "state");
    const cfg = path.join(tlsStack.dir, "airlockd.yaml");
    fs.writeFileSync(cfg, `listen: 127.0.0.1:0\nstate_dir: ${tlsStack.state}\n`);
    // setpriv: it ends with the test, however the test ends.
    const p = spawn("setpriv", ["--pdeathsig", "KILL", path.join(BIN, "airlockd"), "--config", cfg],
                    { stdio: "ignore" });
    procs.push(p);
    const urlFile = path.join(tlsStack.state, "airlockd.url");
    const url = await waitFor("airlockd.url", () => fs.existsSync(urlFile) && fs.readFileSync(urlFile, "utf8").trim());
    const u = new URL(url);
    const body = JSON.stringify({ token: fs.readFileSync(path.join(tlsStack.state, "admin.token"), "utf8").trim() });
    const setCookie = await new Promise((resolve, reject) => {
      const req = https.request({ host: u.hostname, port: u.port, path: "/console/session", method: "POST",
        ca: fs.readFileSync(path.join(tlsStack.state, "ca.pem")),
        headers: { "Content-Type": "application/json", Origin: url, Host: u.host } }, (res) => {
        res.resume();
        resolve(res.headers["set-cookie"]?.[0] ?? `status ${res.statusCode}`);
      });
      req.on("error", reject);
      req.end(body);
    });
    assert(/HttpOnly/.test(setCookie) && /SameSite=Strict/.test(setCookie) && /Secure/.test(setCookie), setCookie);
  });
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "box", "tun"], async () => {
    if (browser) await browser.close();
    if (evil) evil.close();
    for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.exitCode !== null ? null :
      new Promise((r) => { const t = setTimeout(() => { p.kill("SIGKILL"); r(); }, 5000); p.on("exit", () => { clearTimeout(t); r(); }); })));
  });
}
