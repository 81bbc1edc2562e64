// The connected sandbox agent through airlockd's /mcp, with the official MCP SDK client:
// sandbox-agent start (real namespaces, cgroups, seccomp; image "host"), its toolset, sessions,
// limits, credentials and failures. Needs root (the sandbox), iproute2 and dnsmasq.
//
// The private API the sandbox may reach is an HTTPS server in a network namespace this test
// creates (198.18.N.2 on a veth pair), named api.internal.test by a DNS server of the test's own
// (dnsmasq on a loopback address) that the agent asks: it runs in a mount namespace whose
// /etc/resolv.conf names that server.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Stack, Checks, assert, waitFor, freePort, PEERS } from "./lib/stack.mjs";
import { emittedForms, findLeaks } from "./lib/secret_forms.mjs";

const checks = new Checks("sandbox agent");
const stack = new Stack();
const pid = process.pid;
const NS = `airlock-sbx-${pid}`;
const VETH = `asb${pid % 100000}`;
const NET = `198.18.${pid % 250}`;
const DNS = `127.${1 + (pid % 250)}.${Math.floor(pid / 250) % 250}.53`;
const SECRET = `sbx-secret-${pid}-Zq9/x+Y=`;
const HOST_KEY = `sbx-host-key-${pid}-4Rt8/w+Q=`;
const MARKER = `host-only-marker-${pid}`;
const hostDir = `/var/tmp/airlock-escape-${pid}`;
const procs = [];
let httpsPort;
let privateApiGone = null;
const privateApiUp = () => assert(privateApiGone === null, privateApiGone);

const sh = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const text = (r) => r.content.map((c) => c.text).join("");

async function connect(key) {
  const client = new Client({ name: "sandbox-test", version: "1" });
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } } });
  await client.connect(transport);
  client.transportRef = transport;
  return client;
}

// An agent of MCP 2026-07-28 (the SDK v2 client, which finds the revision by server/discover):
// it has no session, so a sandbox carries over between its calls only by handle.
async function connectStateless(key) {
  const client = new ClientV2({ name: "sandbox-test-2026", version: "1" },
                              { versionNegotiation: { mode: "auto" } });
  await client.connect(new TransportV2(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  return client;
}

const call = (client, name, args, opts) =>
  client.callTool({ name, arguments: args }, undefined, { timeout: 60000, ...opts });
const bash = (client, command, opts) => call(client, "bash", { command }, opts);

function sandboxYaml(name, extra = "", moreEnv = "") {
  return `secrets:
  - name: api-key
    from: env:SBX_API_KEY
sandbox:
  type: self-hosted
  name: ${name}
  image: host
  resources:
    cpu: "1"
    memory: "256Mi"
    pids: 128
  network:
    allowed_outbound: ["*.internal.test", "${NET}.2"]
  credentials:
    - secret: "api-key"
      env_var: "API_KEY"
  env:
    SSL_CERT_FILE: /workspace/ca.pem
${moreEnv}  warm_pool: 1
  custom_tools:
    - name: greet
      description: Greets someone, through argv (never a shell)
      input_schema:
        type: object
        properties:
          who: {type: string, maxLength: 64}
        required: [who]
        additionalProperties: false
      command: ["/bin/echo", "hello,", "{{who}}"]
${extra}`;
}

// Under a mount namespace whose resolver is the test's dnsmasq.
const resolverPrefix = () => ["/usr/bin/unshare", "-m", "sh", "-c",
  'mount --bind "$0/hosts" /etc/hosts && mount --bind "$0/resolv.conf" /etc/resolv.conf && exec "$@"',
  stack.dir];

async function setUpNetwork() {
  // The private API: a network namespace with one veth end, an HTTPS server in it.
  sh("ip", ["netns", "add", NS]);
  sh("ip", ["link", "add", `${VETH}h`, "type", "veth", "peer", "name", `${VETH}n`]);
  sh("ip", ["link", "set", `${VETH}n`, "netns", NS]);
  sh("ip", ["addr", "add", `${NET}.1/30`, "dev", `${VETH}h`]);
  sh("ip", ["link", "set", `${VETH}h`, "up"]);
  sh("ip", ["netns", "exec", NS, "ip", "addr", "add", `${NET}.2/30`, "dev", `${VETH}n`]);
  sh("ip", ["netns", "exec", NS, "ip", "link", "set", `${VETH}n`, "up"]);
  sh("ip", ["netns", "exec", NS, "ip", "link", "set", "lo", "up"]);
  // Its certificate, from a CA the sandbox is told to trust (SSL_CERT_FILE).
  const d = stack.dir;
  sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", `${d}/ca.key`, "-out", `${d}/ca.pem`, "-days", "2", "-subj", "/CN=test CA"]);
  sh("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", `${d}/api.key`, "-out", `${d}/api.csr`, "-subj", "/CN=api.internal.test"]);
  fs.writeFileSync(`${d}/san.ext`, "subjectAltName=DNS:api.internal.test\n");
  sh("openssl", ["x509", "-req", "-in", `${d}/api.csr`, "-CA", `${d}/ca.pem`, "-CAkey", `${d}/ca.key`,
                 "-CAcreateserial", "-out", `${d}/api.pem`, "-days", "2", "-extfile", `${d}/san.ext`]);
  // (Under setpriv --pdeathsig: it ends with the test, however the test ends.)
  const server = spawn("setpriv", ["--pdeathsig", "KILL", "--", "ip", "netns", "exec", NS, process.execPath,
                              path.join(PEERS, "../sandbox/upstream_server.mjs"), `${NET}.2`,
                              `${d}/api.pem`, `${d}/api.key`, `${d}/upstream.log`],
                       { stdio: ["ignore", "pipe", "pipe"] });
  procs.push(server);
  // If it ends before the test does, the checks that need it say so, with what it printed.
  let serverErr = "";
  server.stderr.on("data", (b) => { serverErr += b; });
  server.on("exit", (code, signal) => {
    privateApiGone = `the private API (pid ${server.pid}) exited: code ${code}, signal ${signal}; ` +
                     `its stderr: ${serverErr.slice(-2000) || "(empty)"}`;
  });
  let out = "";
  server.stdout.on("data", (b) => { out += b; });
  await waitFor("the private API", () => /listening (\d+)/.test(out));
  httpsPort = out.match(/listening (\d+)/)[1];
  // The resolver.
  fs.writeFileSync(`${d}/resolv.conf`, `nameserver ${DNS}\noptions timeout:2\n`);
  fs.writeFileSync(`${d}/hosts`, "127.0.0.1 localhost\n");
  const dns = spawn("setpriv", ["--pdeathsig", "KILL", "--", "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
    "--no-hosts", "--bind-interfaces", `--listen-address=${DNS}`, "--port=53", "--log-facility=-",
    "--pid-file=", `--address=/api.internal.test/${NET}.2`, `--address=/denied.example.test/${NET}.2`],
    { stdio: ["ignore", "pipe", "pipe"] });
  procs.push(dns);
  let dnsOut = "";
  dns.stderr.on("data", (b) => { dnsOut += b; });
  await waitFor("dnsmasq", () => /started/.test(dnsOut));
  // A file on the host that no tool may reach.
  fs.mkdirSync(hostDir, { recursive: true });
  fs.writeFileSync(`${hostDir}/secret.txt`, MARKER + "\n");
}

async function tearDownNetwork() {
  if (privateApiGone) console.log(privateApiGone);
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  try { sh("ip", ["netns", "del", NS]); } catch {}
  try { sh("ip", ["link", "del", `${VETH}h`]); } catch {}
  fs.rmSync(hostDir, { recursive: true, force: true });
}

function sandboxStatus(name) {
  const v = JSON.parse(stack.cli("--json", "status"));
  return v.sandboxes.find((s) => s.name === name);
}

try {
  await stack.startAirlockd();
  await setUpNetwork();
  const env = { SBX_API_KEY: SECRET };
  let agent = stack.startSandbox("box", sandboxYaml("box"), { env, prefix: resolverPrefix() });
  const metricsPort = await freePort();
  const idleAgent = stack.startSandbox("idle-box", sandboxYaml("idle-box", "  session_idle_timeout: 2s\n"),
                                       { env, args: ["--metrics-addr", `127.0.0.1:${metricsPort}`] });
  // A sandbox whose only credential is host-bound: the proxy adds it, the sandbox never has it.
  stack.startSandbox("cred-box", `secrets:
  - {name: host-key, from: env:SBX_HOST_KEY}
sandbox:
  name: cred-box
  image: host
  network:
    allowed_outbound: ["*.internal.test", "${NET}.2"]
  http_credentials:
    - host: "*.internal.test"
      header: Authorization
      value: "Bearer \${secret:host-key}"
      ca_file: ${stack.dir}/ca.pem
  warm_pool: 0
`, { env: { SBX_HOST_KEY: HOST_KEY }, prefix: resolverPrefix() });
  stack.applyTools(`tools:
  - {name: tool-box, sandbox: box}
  - {name: idle, sandbox: idle-box, prefix: idle_}
  - {name: cred, sandbox: cred-box, prefix: cred_}
`);
  await stack.waitAvailable("tool-box");
  await stack.waitAvailable("idle");
  await stack.waitAvailable("cred");
  const key = stack.agentKey("sbx-agent", "*");
  const a = await connect(key);
  const b = await connect(key);
  // The CA for web_fetch, written by the agent like any file.
  await call(a, "write", { file_path: "ca.pem", content: fs.readFileSync(`${stack.dir}/ca.pem`, "utf8") });

  await checks.check("the sandbox shows Active with what it runs", async () => {
    const s = sandboxStatus("box");
    assert(s.status === "Active", JSON.stringify(s));
    assert(s.image === "host" && s.resources.memory === "256Mi" && s.resources.cpu === "1",
           JSON.stringify(s));
    assert(s.allowed_outbound.includes("*.internal.test"), JSON.stringify(s));
    assert(s.max_sessions === 16 && s.replicas.length === 1, JSON.stringify(s));
    const table = stack.cli("status");
    assert(/sandbox\s+box\s+Active/.test(table) && /sessions \d+\/16 in use/.test(table), table);
  });

  await checks.check("sandbox create -f checks sandbox.yaml first and creates nothing when it is wrong", async () => {
    const bad = path.join(stack.dir, "bad.sandbox.yaml");
    fs.writeFileSync(bad, sandboxYaml("bad").replace('memory: "256Mi"', 'memory: "256GB"'));
    const refused = (() => {
      try { stack.cli("sandbox", "create", "bad-box", "-f", bad); return null; } catch (e) { return e; }
    })();
    assert(refused && refused.status === 2 && /sandbox\.resources\.memory '256GB'/.test(refused.stderr),
           refused ? refused.stderr : "accepted");
    const listed = JSON.parse(stack.cli("--json", "sandbox", "list"));
    assert(!JSON.stringify(listed).includes("bad-box"), JSON.stringify(listed));
  });

  await checks.check("tools/list offers the agent toolset with Managed Agents' schemas", async () => {
    const { tools } = await a.listTools();
    const names = tools.map((t) => t.name);
    for (const n of ["bash", "read", "write", "edit", "glob", "grep", "web_fetch", "greet", "idle_bash"]) {
      assert(names.includes(n), `${n} missing from ${names}`);
    }
    const bashTool = tools.find((t) => t.name === "bash");
    assert(JSON.stringify(bashTool.inputSchema.required) === '["command"]', JSON.stringify(bashTool));
  });

  await checks.check("the agents listen on nothing but an opt-in loopback /ready and /metrics", async () => {
    const listeners = sh("ss", ["-Hltnup"]);
    const of = (pid) => listeners.split("\n").filter((l) => l.includes(`pid=${pid},`));
    assert(of(agent.pid).length === 0, `box listens: ${of(agent.pid).join("; ")}`);
    const idle = of(idleAgent.pid);
    assert(idle.length === 1 && idle[0].includes(`127.0.0.1:${metricsPort}`), idle.join("; "));
    const ready = await fetch(`http://127.0.0.1:${metricsPort}/ready`);
    assert(ready.status === 200, `/ready ${ready.status}`);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert(/airlock_sandbox_sessions_limit 16/.test(metrics) && /airlock_sandbox_links_active 2/.test(metrics),
           metrics);
  });

  await checks.check("a key scoped to read-only tools cannot call bash", async () => {
    const reader = await connect(stack.agentKey("sbx-reader", "read,glob,grep"));
    const names = (await reader.listTools()).tools.map((t) => t.name);
    assert(!names.includes("bash") && names.includes("read"), names.join(","));
    const refused = await bash(reader, "id").catch((e) => e);
    assert(refused instanceof Error && /not available to this agent key/.test(refused.message), String(refused));
    const r = await call(reader, "glob", { pattern: "*" });
    assert(!r.isError, text(r));
    await reader.transportRef.terminateSession();
  });

  await checks.check("a custom tool gets its arguments as argv, never through a shell", async () => {
    let r = await call(a, "greet", { who: "x; touch /workspace/pwned $(id)" });
    assert(!r.isError && text(r).startsWith("hello, x; touch /workspace/pwned $(id)\n"), text(r));
    r = await bash(a, "ls /workspace/pwned 2>&1; true");
    assert(/No such file/.test(text(r)), text(r));
    r = await call(a, "greet", { who: "y".repeat(65) });
    assert(r.isError && /who: must be at most 64 characters/.test(text(r)), text(r));
  });

  await checks.check("a long bash call reports progress", async () => {
    const seen = [];
    const r = await call(a, "bash", { command: "sleep 2.5; echo done" }, { onprogress: (p) => seen.push(p) });
    assert(text(r).startsWith("done"), text(r));
    assert(seen.length >= 1 && seen[0].progress >= 2000, JSON.stringify(seen));
  });

  await checks.check("bash runs inside: own hostname, its own PID 1, a few processes", async () => {
    const r = await bash(a, "hostname; cat /proc/1/comm; ps -e --no-headers | wc -l; id -u");
    const [host, init, count] = text(r).split("\n");
    assert(host === "box", text(r));
    assert(init !== fs.readFileSync("/proc/1/comm", "utf8").trim(), `PID 1 is the host's: ${init}`);
    assert(Number(count) < 10, `sees ${count} processes`);
  });

  await checks.check("the shell persists: cd and export carry over", async () => {
    await bash(a, "mkdir -p /workspace/proj && cd /workspace/proj && export GREETING=hello");
    const r = await bash(a, 'pwd; echo "$GREETING"');
    assert(text(r).startsWith("/workspace/proj\nhello\n"), text(r));
    assert(/\[exit status 0\]/.test(text(r)), text(r));
    const failing = await bash(a, "false");
    assert(/\[exit status 1\]/.test(text(failing)), text(failing));
  });

  await checks.check("write, read, edit, glob and grep in one session", async () => {
    let r = await call(a, "write", { file_path: "/workspace/proj/notes.txt", content: "alpha\nbeta\ngamma\n" });
    assert(!r.isError && /Wrote 17 bytes/.test(text(r)), text(r));
    r = await call(a, "read", { file_path: "proj/notes.txt", view_range: [2, -1] });
    assert(text(r) === "     2\tbeta\n     3\tgamma\n", JSON.stringify(text(r)));
    r = await call(a, "edit", { file_path: "proj/notes.txt", old_string: "zeta", new_string: "x" });
    assert(r.isError && /0 matches/.test(text(r)), text(r));
    r = await call(a, "edit", { file_path: "proj/notes.txt", old_string: "a", new_string: "A" });
    assert(r.isError && /matches 5 times/.test(text(r)), text(r));
    r = await call(a, "edit", { file_path: "proj/notes.txt", old_string: "beta", new_string: "BETA" });
    assert(!r.isError, text(r));
    r = await bash(a, "cat notes.txt");  // the shell is still in /workspace/proj
    assert(text(r).startsWith("alpha\nBETA\ngamma\n"), text(r));
    await call(a, "write", { file_path: "proj/sub/later.txt", content: "gamma ray\n" });
    r = await call(a, "glob", { pattern: "**/*.txt" });
    assert(text(r) === "/workspace/proj/sub/later.txt\n/workspace/proj/notes.txt\n", JSON.stringify(text(r)));
    r = await call(a, "grep", { pattern: "^gam+a", path: "proj" });
    assert(text(r).includes("/workspace/proj/notes.txt:3:gamma") &&
           text(r).includes("/workspace/proj/sub/later.txt:1:gamma ray"), text(r));
    r = await call(a, "grep", { pattern: "(unclosed" });
    assert(r.isError && /not a valid regular expression/.test(text(r)), text(r));
  });

  await checks.check("another session has a sandbox of its own", async () => {
    const r = await call(b, "read", { file_path: "/workspace/proj/notes.txt" });
    assert(r.isError && /No such file/.test(text(r)), text(r));
    const g = await call(b, "glob", { pattern: "**/*" });
    assert(!text(g).includes("notes.txt"), text(g));
    const e = await bash(b, 'echo "[$GREETING]"');
    assert(text(e).startsWith("[]\n"), text(e));
  });

  await checks.check("no file tool reaches the host: absolute paths, .., symlinks, hard links, /proc/*/root", async () => {
    const target = `${hostDir}/secret.txt`;
    await bash(a, `ln -s ${target} /workspace/link; ln ${target} /workspace/hard 2>&1; ` +
                  `ln -s / /workspace/rootlink; true`);
    const attempts = [
      ["read", { file_path: target }],
      ["read", { file_path: `../../..${target}` }],
      ["read", { file_path: "link" }],
      ["read", { file_path: "hard" }],
      ["read", { file_path: `rootlink${target}` }],
      ["read", { file_path: `/proc/self/root${target}` }],
      ["read", { file_path: `/proc/1/root${target}` }],
      ["read", { file_path: "/etc/shadow" }],
      // (Patterns that match the marker without spelling it: a "no match" names the pattern.)
      ["grep", { pattern: "host-only-marke[r]", path: hostDir }],
      ["grep", { pattern: "host-only-marke[r]", path: "/proc/1/root/var" }],
      ["grep", { pattern: "host-only-marke[r]", path: "/proc/self/root/var/tmp" }],
      ["glob", { pattern: `${hostDir}/*` }],
      ["glob", { pattern: "**/secret.txt", path: "/" }],
      ["write", { file_path: `${hostDir}/planted.txt`, content: "x" }],
      ["write", { file_path: "/usr/local/bin/planted", content: "x" }],
      ["edit", { file_path: target, old_string: "host", new_string: "sbx" }],
      ["bash", { command: `cat ${target} /proc/1/root${target} /proc/self/root${target}` }],
    ];
    for (const [tool, args] of attempts) {
      const r = await call(a, tool, args);
      assert(!text(r).includes(MARKER), `${tool} ${JSON.stringify(args)} reached the host: ${text(r)}`);
    }
    assert(fs.readFileSync(target, "utf8") === MARKER + "\n", "the host file changed");
    assert(!fs.existsSync(`${hostDir}/planted.txt`) && !fs.existsSync("/usr/local/bin/planted"),
           "a file was planted on the host");
  });

  await checks.check("web_fetch and curl reach the allowed HTTPS API and nothing else", async () => {
    privateApiUp();
    let r = await call(a, "web_fetch", { url: `https://api.internal.test:${httpsPort}/report` });
    assert(!r.isError && /^HTTP 200/.test(text(r)) && /"url":"\/report"/.test(text(r)), text(r));
    r = await call(a, "web_fetch", { url: `https://denied.example.test:${httpsPort}/` });
    assert(r.isError && /not in allowed_outbound/.test(text(r)), text(r));
    r = await call(a, "web_fetch", { url: "https://169.254.169.254/latest/meta-data/" });
    assert(r.isError && /refused by the sandbox's egress proxy/.test(text(r)), text(r));
    r = await call(a, "web_fetch", { url: "file:///etc/passwd" });
    assert(r.isError && /only http/.test(text(r)), text(r));
    r = await bash(a, `curl -sS https://api.internal.test:${httpsPort}/via-curl; echo; ` +
                      `curl -sS --noproxy '*' --max-time 3 https://${NET}.2:${httpsPort}/ 2>&1; ` +
                      `curl -sS --max-time 5 https://denied.example.test:${httpsPort}/ 2>&1`);
    const out = text(r);
    assert(/"url":"\/via-curl"/.test(out), out);
    assert((out.match(/"url"/g) ?? []).length === 1, `reached more than the allowed host: ${out}`);
  });

  await checks.check("host-bound credential: web_fetch and curl get the header from the proxy, never in the sandbox", async () => {
    const api = `https://api.internal.test:${httpsPort}`;
    privateApiUp();
    let r = await call(a, "cred_web_fetch", { url: `${api}/cred-fetch` });
    assert(!r.isError && /"url":"\/cred-fetch"/.test(text(r)), text(r));
    // The API echoes the header it got: redacted before it entered the sandbox.
    assert(text(r).includes('"authorization":"Bearer [REDACTED:host-key]"'), text(r));
    r = await call(a, "cred_bash", { command:
      `curl -sS -H 'Authorization: Bearer set-by-the-tool' ${api}/cred-curl; echo; ` +
      `curl -sSk https://${NET}.2:${httpsPort}/cred-literal >/dev/null; ` +  // no credential names it
      `env | grep -c '^SSL_CERT_FILE=/run/airlock/ca-bundle.pem$'; ` +
      `curl -sS --cacert /run/airlock/egress-ca.pem ${api}/cred-own-ca >/dev/null && echo own-ca-ok; ` +
      `ls /run/airlock` });
    const out = text(r);
    assert(/"url":"\/cred-curl"/.test(out) && /\n1\n/.test(out) && /own-ca-ok/.test(out), out);
    assert(!/PRIVATE KEY|\.key/.test(out), `a key in the sandbox: ${out}`);
    const log = fs.readFileSync(`${stack.dir}/upstream.log`, "utf8").split("\n");
    for (const url of ["/cred-fetch", "/cred-curl", "/cred-own-ca"]) {
      const line = log.find((l) => l.includes(`"url":"${url}"`)) ?? "(none)";
      assert(line.includes(`"authorization":"Bearer ${HOST_KEY}"`) && line.includes('"authorizations":1'),
             `${url}: ${line}`);
    }
    const literal = log.find((l) => l.includes('"url":"/cred-literal"')) ?? "(none)";
    assert(literal.includes('"authorization":null'), literal);
    // The other sandbox (no http_credentials) sends nothing of it.
    const plain = log.find((l) => l.includes('"url":"/via-curl"')) ?? "";
    assert(!plain.includes(HOST_KEY), plain);
  });

  await checks.check("a secret bash prints in every encoding comes back redacted, and is recorded", async () => {
    const emitter = `const s = process.env.API_KEY;\n${emittedForms.toString()}\n${percentSource()}\n` +
                    "for (const f of emittedForms(s)) console.log(f);\n";
    await call(a, "write", { file_path: "emit.js", content: emitter });
    const r = await bash(a, "node /workspace/emit.js; printf '%s' \"$API_KEY\" | base64");
    const leaks = findLeaks(text(r), { "api-key": SECRET });
    assert(leaks.length === 0, `leaked: ${leaks.join(", ")}\n${text(r)}`);
    assert(/\[REDACTED:api-key\]/.test(text(r)), text(r));
    await waitFor("a redaction event", () => {
      const ev = stack.audit("--type", "secret_redacted");
      return ev.some((e) => e.target === "bash" && e.actor === "sbx-agent" &&
                            e.connector === "sandbox/box");
    });
    const logs = stack.log("airlockd") + fs.readFileSync(path.join(stack.state, "airlockd.db"), "latin1");
    assert(findLeaks(logs, { "api-key": SECRET }).length === 0, "the secret reached airlockd");
  });

  await checks.check("a cancelled call's processes are gone and the shell survives", async () => {
    const controller = new AbortController();
    const pending = bash(a, "sleep 301 & sleep 302; echo never", { signal: controller.signal })
      .catch((e) => e);
    await waitFor("the command to start", async () => {
      const r = await bash(b, "true");  // another session is not blocked meanwhile
      return !r.isError;
    });
    await new Promise((r) => setTimeout(r, 500));
    controller.abort("test");
    await pending;
    const after = await waitFor("the processes to go", async () => {
      const r = await bash(a, 'ps -e -o comm= | grep -c "^sleep" ; echo "g=$GREETING"');
      return /(^|\n)0\n/.test(text(r)) ? text(r) : false;
    }, 10000);
    assert(/g=hello/.test(after), `the shell did not survive: ${after}`);
  });

  await checks.check("a timed-out command is killed, with its children", async () => {
    const r = await call(a, "bash", { command: "sleep 303 & sleep 304", timeout_ms: 700 });
    assert(r.isError && /timed out after 700 ms/.test(text(r)), text(r));
    const ps = await bash(a, 'ps -e -o comm= | grep -c "^sleep"; true');
    assert(/(^|\n)0\n/.test(text(ps)), text(ps));
    const loop = await call(a, "bash", { command: "while :; do :; done", timeout_ms: 500 });
    assert(loop.isError && /shell did not come back and was restarted/.test(text(loop)), text(loop));
    const fresh = await bash(a, 'echo "[$GREETING]"; pwd');
    assert(text(fresh).startsWith("[]\n/workspace\n"), text(fresh));
    await bash(a, "cd /workspace/proj && export GREETING=hello");
  });

  await checks.check("bad tool input is a clear tool error, and nothing else is disturbed", async () => {
    let r = await call(a, "bash", {});
    assert(r.isError && text(r) === "Invalid arguments for tool 'bash': the arguments: 'command' is required", text(r));
    r = await call(a, "read", { file_path: 42 });
    assert(r.isError && /file_path: must be string \(got an integer\)/.test(text(r)), text(r));
    r = await call(a, "edit", { file_path: "x", old_string: "a", new_string: "b", extra: 1 });
    assert(r.isError && /'extra' is not an allowed property/.test(text(r)), text(r));
    const unknown = await call(a, "no_such_tool", {}).catch((e) => e);
    assert(unknown instanceof Error && /Unknown tool 'no_such_tool'/.test(unknown.message), String(unknown));
    const big = await call(a, "write", { file_path: "big", content: "x".repeat(10 * 1024 * 1024) })
      .catch((e) => e);
    assert(big instanceof Error && /body_too_large|exceeds \d+ bytes/.test(big.message), String(big));
    // Invalid UTF-8 inside a JSON string, sent as raw bytes.
    const session = a.transportRef.sessionId;
    const body = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"bash","arguments":{"command":"echo '),
                                Buffer.from([0xff, 0xfe]), Buffer.from('"}}}')]);
    const raw = await fetch(stack.mcpUrl, { method: "POST", body, headers: {
      Authorization: `Bearer ${key}`, "Content-Type": "application/json",
      Accept: "application/json, text/event-stream", "Mcp-Session-Id": session,
      "MCP-Protocol-Version": "2025-11-25" } });
    const answer = await raw.text();
    assert(raw.status === 400 && /UTF-8|utf8|Parse error/i.test(answer), `${raw.status} ${answer}`);
    // Bytes that are not UTF-8 in a command's output arrive as U+FFFD.
    r = await bash(a, "printf 'ok \\377\\376 end'");
    assert(text(r).startsWith("ok \uFFFD\uFFFD end"), JSON.stringify(text(r)));
    r = await bash(a, 'echo "still $GREETING"');
    assert(text(r).startsWith("still hello"), text(r));
    r = await bash(b, "echo b-alive");
    assert(text(r).startsWith("b-alive"), text(r));
  });

  await checks.check("output is capped at 100 KiB with a marker", async () => {
    const r = await bash(a, "head -c 300000 /dev/zero | tr '\\0' y");
    assert(text(r).length < 110 * 1024 && /output truncated at 100 KiB/.test(text(r)), text(r).length);
  });

  await checks.check("the 17th session gets 'busy', never a hang; a freed one is reused", async () => {
    const extra = [];
    for (let i = 0; i < 14; i++) {  // a and b hold two
      const c = await connect(key);
      extra.push(c);
      const r = await bash(c, "echo ok");
      assert(text(r).startsWith("ok"), `session ${i + 3}: ${text(r)}`);
    }
    assert(sandboxStatus("box").sessions_in_use === 16, JSON.stringify(sandboxStatus("box")));
    const c17 = await connect(key);
    const busy = await bash(c17, "echo never");
    assert(busy.isError && /busy: all 16 sessions \(max_sessions\) are in use/.test(text(busy)), text(busy));
    await extra.pop().transportRef.terminateSession();
    const ok = await waitFor("a free session", async () => {
      const r = await bash(c17, "echo room");
      return text(r).startsWith("room") ? r : false;
    }, 15000);
    assert(!ok.isError, text(ok));
    for (const c of extra) await c.transportRef.terminateSession();
    await c17.transportRef.terminateSession();
  });

  await checks.check("an idle session is removed and the agent is told so once", async () => {
    const c = await connect(key);
    let r = await call(c, "idle_bash", { command: "touch /workspace/was-here; echo made" });
    assert(text(r).startsWith("made"), text(r));
    await new Promise((res) => setTimeout(res, 3500));
    r = await call(c, "idle_bash", { command: "ls /workspace" });
    assert(r.isError && /idle for 2s \(session_idle_timeout\)/.test(text(r)), text(r));
    r = await call(c, "idle_bash", { command: "ls -A /workspace; echo listed" });
    assert(!r.isError && !text(r).includes("was-here") && text(r).includes("listed"), text(r));
    assert(/idle for 2s/.test(stack.log("idle-box")), "not logged by the agent");
  });

  await checks.check("a 2026 agent keeps a sandbox by handle; another agent cannot use it", async () => {
    const m = await connectStateless(key);
    const { tools } = await m.listTools();
    const bashTool = tools.find((t) => t.name === "bash");
    assert(bashTool.inputSchema.properties.sandbox_id?.type === "string" &&
           JSON.stringify(bashTool.inputSchema.required) === '["command"]', JSON.stringify(bashTool));
    assert(tools.some((t) => t.name === "sandbox_open") && tools.some((t) => t.name === "sandbox_close"),
           tools.map((t) => t.name).join());
    // Without a session there is no sandbox to fall back on: the error says what to do.
    const none = await bash(m, "echo hi");
    assert(none.isError && /no MCP session.*sandbox_open/.test(text(none)), text(none));
    const opened = await call(m, "sandbox_open", {});
    const id = opened.structuredContent?.sandbox_id;
    assert(!opened.isError && /^sbx_[0-9a-f]{32}$/.test(id ?? ""), JSON.stringify(opened));
    let r = await call(m, "bash", { command: "cd /tmp && export MARK=kept && echo one > /workspace/h.txt", sandbox_id: id });
    assert(!r.isError, text(r));
    r = await call(m, "bash", { command: "pwd; echo $MARK; cat /workspace/h.txt", sandbox_id: id });
    assert(text(r).startsWith("/tmp\nkept\none"), text(r));
    r = await call(m, "read", { file_path: "h.txt", sandbox_id: id });
    assert(!r.isError && /one/.test(text(r)), text(r));
    // A second handle is a second sandbox.
    const id2 = (await call(m, "sandbox_open", {})).structuredContent.sandbox_id;
    assert(id2 && id2 !== id, id2);
    r = await call(m, "bash", { command: "ls -A /workspace; echo listed", sandbox_id: id2 });
    assert(!text(r).includes("h.txt") && text(r).includes("listed"), text(r));
    // The same agent in a 2025 session may name it too; its session sandbox stays its own.
    r = await call(a, "bash", { command: "cat /workspace/h.txt", sandbox_id: id });
    assert(text(r).startsWith("one"), text(r));
    r = await bash(a, "ls /workspace/h.txt 2>&1; echo done");
    assert(/No such file/.test(text(r)), text(r));
    // A handle is a name, not a capability: another agent is told exactly what it would be
    // told of a handle that never existed.
    const other = await connectStateless(stack.agentKey("sbx-other", "*"));
    const stolen = await call(other, "bash", { command: "cat /workspace/h.txt", sandbox_id: id });
    const madeUp = await call(other, "bash", { command: "true", sandbox_id: "sbx_" + "0".repeat(32) });
    assert(stolen.isError && !text(stolen).includes("one\n"), text(stolen));
    assert(text(stolen).replace(id, "X") === text(madeUp).replace("sbx_" + "0".repeat(32), "X"),
           `${text(stolen)} | ${text(madeUp)}`);
    const closeStolen = await call(other, "sandbox_close", { sandbox_id: id });
    assert(closeStolen.isError, text(closeStolen));
    r = await call(m, "bash", { command: "cat /workspace/h.txt", sandbox_id: id });
    assert(text(r).startsWith("one"), "another agent's sandbox_close took effect: " + text(r));
    // Closing ends it; naming it afterwards is a clear tool error.
    for (const h of [id, id2]) {
      const closed = await call(m, "sandbox_close", { sandbox_id: h });
      assert(!closed.isError && /Closed sandbox/.test(text(closed)), text(closed));
    }
    r = await call(m, "bash", { command: "true", sandbox_id: id });
    assert(r.isError && /sandbox_open/.test(text(r)), text(r));
    const bad = await call(m, "bash", { command: "true", sandbox_id: 7 });
    assert(bad.isError && /sandbox_id: must be string/.test(text(bad)), text(bad));
    await m.close();
    await other.close();
  });

  await checks.check("a sandbox held by handle idles out like a session", async () => {
    const m = await connectStateless(key);
    const id = (await call(m, "idle_sandbox_open", {})).structuredContent?.sandbox_id;
    assert(id, "no sandbox_id");
    let r = await call(m, "idle_bash", { command: "echo made > /workspace/x; cat /workspace/x", sandbox_id: id });
    assert(text(r).startsWith("made"), text(r));
    await new Promise((res) => setTimeout(res, 3500));
    r = await call(m, "idle_bash", { command: "cat /workspace/x", sandbox_id: id });
    assert(r.isError && /no sandbox .* is open/.test(text(r)), text(r));
    assert(new RegExp(`sandbox ${id} was idle for 2s`).test(stack.log("idle-box")), "not logged by the agent");
    await m.close();
  });

  await checks.check("the agent restarts: its sessions are lost (and said so), its tools return", async () => {
    agent.kill("SIGTERM");
    await new Promise((r) => agent.on("exit", r));
    await waitFor("Disconnected", () => sandboxStatus("box").status === "Disconnected");
    agent = stack.startSandbox("box", sandboxYaml("box"), { env, prefix: resolverPrefix() });
    await stack.waitAvailable("tool-box");
    let r = await bash(a, "cat /workspace/proj/notes.txt");
    assert(r.isError && /sandbox session of this MCP session is gone/.test(text(r)), text(r));
    r = await bash(a, "ls -A /workspace; echo fresh");
    assert(!r.isError && !text(r).includes("proj") && text(r).includes("fresh"), text(r));
    assert(/stopped/.test(stack.log("box")), "the agent did not stop cleanly");
  });

  await checks.check("two replicas of one sandbox: sessions go to the freer one and stay; losing one loses only its sessions", async () => {
    const replica = (n) => sandboxYaml("box", "", `    REPLICA: ${n}\n`);
    agent.kill("SIGTERM");
    await new Promise((r) => agent.on("exit", r));
    agent = stack.startSandbox("box", replica("one"), { env, file: "box-one" });
    await waitFor("replica one", () => sandboxStatus("box")?.replicas?.length === 1);
    const two = stack.startSandbox("box", replica("two"), { env, file: "box-two" });
    await waitFor("two replicas", () => sandboxStatus("box").replicas?.length === 2);
    const sessions = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(key);
      const r = await bash(c, 'echo "$REPLICA"; export MINE=kept');
      sessions.push({ c, on: text(r).split("\n")[0] });
    }
    const on = (n) => sessions.filter((x) => x.on === n).length;
    assert(on("one") === 3 && on("two") === 3, `placed ${sessions.map((x) => x.on)}`);
    const st = sandboxStatus("box");
    assert(st.sessions_in_use === 6 && st.max_sessions === 32 &&
           st.replicas.every((r) => r.sessions_in_use === 3), JSON.stringify(st));
    const table = stack.cli("status");
    assert(/sessions 6\/32 in use over 2 replicas/.test(table) &&
           (table.match(/^ +replica [0-9a-f]+ .* sessions 3\/16$/gm) ?? []).length === 2, table);
    two.kill("SIGKILL");
    await waitFor("one replica", () => sandboxStatus("box").replicas?.length === 1);
    for (const { c, on: where } of sessions) {
      const r = await bash(c, 'echo "$REPLICA $MINE"');
      if (where === "one") {
        assert(!r.isError && text(r).startsWith("one kept"), `lost a session on replica one: ${text(r)}`);
      } else {
        assert(r.isError && /gone/.test(text(r)), `a session of the lost replica: ${text(r)}`);
      }
      await c.transportRef.terminateSession();
    }
  });

  await checks.check("a revoked sandbox's token is refused at once", async () => {
    stack.cli("sandbox", "revoke", "box");
    await waitFor("Disconnected", () => sandboxStatus("box").status === "Disconnected", 5000);
    const c = await connect(key);
    const r = await bash(c, "echo never").catch((e) => e);
    const msg = r instanceof Error ? r.message : text(r);
    assert(/not connected|unavailable/.test(msg), msg);
    await waitFor("the refusal in the agent's log", () => /revoked/.test(stack.log("box-one")));
  });
} catch (e) {
  checks.setupFailed(e);
}
await stack.finish(checks, ["airlockd", "box", "idle-box", "cred-box", "box-one", "box-two"], tearDownNetwork);

// The helper emittedForms() calls, as source for the script written into the sandbox.
function percentSource() {
  return `function percent(buf, upper) {
  let out = "";
  for (const c of buf) {
    const ch = String.fromCharCode(c);
    if (/[A-Za-z0-9\\-._~]/.test(ch)) out += ch;
    else { const h = c.toString(16).padStart(2, "0"); out += "%" + (upper ? h.toUpperCase() : h); }
  }
  return out;
}`;
}
