// The credential boundary, tried adversarially: private MCP servers over stdio, tcp and http
// that echo the credential mcp-tunnel injected (or, for tcp, was merely loaded with) back in
// every encoding Airlock promises to catch — in results, errors, progress, log notifications,
// resource contents, a server's stderr — with messages split at every offset of each form;
// plus server-everything's get-env with a secret in its environment. Then every byte that
// crossed the connector link (captured by a proxy this test runs), airlockd's database, every
// log and every byte the MCP client received are searched for every form of every secret:
// zero hits. Also: leak events with their counts, per-agent credentials, --allowed-credentials,
// and secret rotation (file change and SIGHUP) without dropping the link or a call in flight.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { Stack, Checks, assert, freePort, waitFor, PEERS, EVERYTHING } from "./lib/stack.mjs";
import { findLeaks } from "./lib/secret_forms.mjs";
import { startLinkCapture } from "./lib/link_capture.mjs";

const checks = new Checks("credential boundary");
const stack = new Stack();
const LEAKY = path.join(PEERS, "leaky_server.mjs");
const procs = [];
let capture;

// Secrets with characters that JSON-escaping and percent-encoding change.
const mint = (tag) => `${tag}-${crypto.randomBytes(12).toString("base64")}"/\\~`;
const secrets = {
  "leak-stdio": mint("stdio"),
  "leak-tcp": mint("tcp"),
  "leak-http": mint("http"),
  "crm-alice": mint("alice"),
  "crm-bob": mint("bob"),
  "crm-inv-a": mint("inventory-a"),
  "crm-inv-b": mint("inventory-b"),
  "everything-key": mint("everything"),
  "forbidden-token": mint("forbidden"),
};
const retired = {};  // values rotated away: they must not leak either
const sha = (v) => "sha256:" + crypto.createHash("sha256").update(v).digest("hex");
const text = (r) => (r.content ?? []).map((c) => c.text ?? "").join("");
const received = [];  // every byte of every HTTP response the MCP clients got

function allSecrets() {
  const all = { ...secrets };
  for (const [k, v] of Object.entries(retired)) all[`${k} (earlier value)`] = v;
  return all;
}

async function connect(key) {
  const fetchAndKeep = async (url, init) => {
    const res = await fetch(url, init);
    if (!res.body) return res;
    const [mine, theirs] = res.body.tee();
    (async () => {
      const reader = mine.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received.push(Buffer.from(value));
      }
    })().catch(() => {});
    return new Response(theirs, { status: res.status, statusText: res.statusText,
                                  headers: res.headers });
  };
  const client = new Client({ name: "boundary-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } }, fetch: fetchAndKeep }));
  return client;
}

async function callError(client, name, args = {}) {
  try {
    const r = await client.callTool({ name, arguments: args });
    return r.isError ? text(r) : `no error: ${text(r)}`;
  } catch (e) {
    return e.message;
  }
}

// The connectors' redaction reports, as the audit log keeps them.
function events() {
  return stack.audit("--type", "secret_redacted").map((r) => ({
    tool: r.target, agent: r.actor,
    detail: { secret: r.detail.secret, server: r.server, count: r.redactions,
              tunnel: r.connector.replace(/^tunnel\//, "") },
  }));
}

try {
  const d = stack.dir;
  const sdir = path.join(d, "secrets");
  fs.mkdirSync(path.join(sdir, "agents"), { recursive: true, mode: 0o700 });
  const put = (file, value) => {  // as an operator would: write aside, then rename over
    fs.writeFileSync(file + ".tmp", value + "\n", { mode: 0o600 });
    fs.renameSync(file + ".tmp", file);
  };
  for (const n of ["leak-stdio", "leak-http", "everything-key", "forbidden-token"]) put(path.join(sdir, n), secrets[n]);
  for (const n of ["crm-alice", "crm-bob", "crm-inv-a", "crm-inv-b"]) put(path.join(sdir, "agents", n), secrets[n]);

  const tcpPort = await freePort();
  const httpPort = await freePort();
  const start = (args, env = {}) => {
    const p = spawn(process.execPath, [LEAKY, ...args], { stdio: "ignore", env: { ...process.env, ...env } });
    procs.push(p);
  };
  start(["tcp", String(tcpPort)], { LEAKY_SECRET: secrets["leak-tcp"] });
  start(["http", String(httpPort)]);

  await stack.startAirlockd(`audit: {jsonl_file: ${path.join(d, "audit.jsonl")}}\n`);
  capture = await startLinkCapture(stack.url.replace(/^http/, "ws") + "/v1/connect");
  const http = `http://127.0.0.1:${httpPort}/mcp`;
  stack.startTunnel("leak", `secrets:
  - {name: leak-stdio, from: "file:${sdir}/leak-stdio"}
  - {name: leak-tcp, from: "env:LEAK_TCP_SECRET"}
  - {name: leak-http, from: "file:${sdir}/leak-http"}
  - {name: everything-key, from: "file:${sdir}/everything-key"}
  - {name: forbidden-token, from: "file:${sdir}/forbidden-token"}
  - {from: "dir:${sdir}/agents"}
servers:
  - name: leaky-stdio
    url: stdio:${process.execPath}
    args: ["${LEAKY}", stdio]
    env: {LEAKY_SECRET: "\${secret:leak-stdio}"}
  - name: leaky-tcp
    url: tcp://127.0.0.1:${tcpPort}
  - name: leaky-http
    url: ${http}
    headers: {Authorization: "Bearer \${secret:leak-http}"}
  - name: crm-template
    url: ${http}
    headers: {Authorization: "Bearer \${agent_secret}"}
    agent_credentials: ["crm-*"]
    inventory_credential: crm-inv-a
  - name: crm-table
    url: ${http}
    headers: {Authorization: "Bearer \${agent_secret}"}
    agent_credentials: ["crm-*"]
    inventory_credential: crm-inv-b
  - name: everything
    url: stdio:${process.execPath}
    args: ["${EVERYTHING}", stdio]
    env: {API_KEY: "\${secret:everything-key}"}
  - name: forbidden
    url: ${http}
    headers: {Authorization: "Bearer \${secret:forbidden-token}"}
`, { endpoint: capture.endpoint, allowed: ["leak-*", "crm-*", "everything-key"],
     env: { LEAK_TCP_SECRET: secrets["leak-tcp"] } });
  stack.applyTools(`tools:
  - {name: stdio, mcp_tunnel: leak, server: leaky-stdio, prefix: stdio.}
  - {name: tcp, mcp_tunnel: leak, server: leaky-tcp, prefix: tcp.}
  - {name: http, mcp_tunnel: leak, server: leaky-http, prefix: http.}
  - {name: crm, mcp_tunnel: leak, server: crm-template, prefix: crm., agent_credential: "crm-\${agent}"}
  - name: crmt
    mcp_tunnel: leak
    server: crm-table
    prefix: crmt.
    agent_credential: {alice: crm-alice, bob: crm-bob}
  - {name: get-env, mcp_tunnel: leak, server: everything, tool: get-env}
  - {name: forbidden-whoami, mcp_tunnel: leak, server: forbidden, tool: whoami}
`);
  for (const b of ["stdio", "tcp", "http", "crm", "crmt", "get-env"]) await stack.waitAvailable(b);
  const alice = await connect(stack.agentKey("alice", "*"));
  const bob = await connect(stack.agentKey("bob", "*"));
  const carol = await connect(stack.agentKey("carol", "*"));

  await checks.check("the catalog (the tunnel's inventory) reaches agents redacted", async () => {
    const tools = (await alice.listTools()).tools;
    for (const via of ["stdio", "tcp", "http"]) {
      const t = tools.find((x) => x.name === `${via}.describe`);
      assert(t && t.description === `Calls the API with key [REDACTED:leak-${via}]`,
             `${via}: ${JSON.stringify(t)}`);
    }
  });

  for (const via of ["stdio", "tcp", "http"]) {
    const name = `leak-${via}`;
    await checks.check(`${via}: every encoding, split at every offset, is redacted in results, progress and logs`, async () => {
      let progress = [];
      const r = await alice.callTool({ name: `${via}.leak`, arguments: {} }, undefined,
                                     { onprogress: (p) => progress.push(p.message ?? "") });
      const body = JSON.stringify(r);
      assert(findLeaks(body, allSecrets()).length === 0, `leaked: ${findLeaks(body, allSecrets())}`);
      assert(text(r).includes(`[REDACTED:${name}]`), `no marker in ${text(r).slice(0, 300)}`);
      assert(progress.length > 5 && progress.every((m) => m.includes(`[REDACTED:${name}]`)),
             `progress: ${progress.slice(0, 3)}`);
    });
    await checks.check(`${via}: error messages and resource contents are redacted`, async () => {
      const e = await callError(alice, `${via}.leak-error`);
      assert(e.includes(`[REDACTED:${name}]`), e.slice(0, 300));
      assert(findLeaks(e, allSecrets()).length === 0, `leaked: ${findLeaks(e, allSecrets())} in ${e}`);
      const resources = (await alice.listResources()).resources.filter((x) => x.name === `${via}.secret`);
      assert(resources.length === 1, `resources: ${JSON.stringify(resources)}`);
      // Read without the SDK's schema: a redacted blob is no longer valid base64, which the
      // SDK would rightly reject; here the bytes themselves are examined.
      const rr = await alice.request({ method: "resources/read", params: { uri: resources[0].uri } },
                                     z.any());
      const body = JSON.stringify(rr);
      assert(body.includes(`[REDACTED:${name}]`) && findLeaks(body, allSecrets()).length === 0, body.slice(0, 300));
      // The blob was base64 of the value alone: what remains is no longer valid base64.
      assert(!rr.contents.some((c) => c.blob && Buffer.from(c.blob, "base64").toString() === secrets[name]),
             "blob still decodes to the secret");
    });
    await checks.check(`${via}: five occurrences raise leak events counting five`, async () => {
      const r = await alice.callTool({ name: `${via}.leak-n`, arguments: { n: 5 } });
      assert(text(r).split(`[REDACTED:${name}]`).length === 6, text(r));
      await waitFor("leak events", () => {
        const mine = events().filter((e) => e.tool === "leak-n" && e.detail.secret === name &&
                                            e.detail.server === `leaky-${via}`);
        const total = mine.reduce((n, e) => n + Number(e.detail.count), 0);
        if (total > 5) throw new Error(`counted ${total}`);
        return total === 5 && mine.every((e) => e.agent === "alice" && e.detail.tunnel === "leak");
      }, 10000);
      // The call's own audit record counts what was replaced in its answer.
      const calls = stack.audit("--type", "call", "--target", `${via}.leak-n`, "--actor", "alice");
      assert(calls.length > 0 && calls.at(-1).redactions === 5 && calls.at(-1).outcome === "ok",
             JSON.stringify(calls.at(-1)));
    });
  }

  await checks.check("a private server's stderr reaches mcp-tunnel's log redacted", async () => {
    await waitFor("stderr line", () => stack.log("leak").includes("leaky server starting with credential [REDACTED:leak-stdio]"));
  });

  await checks.check("server-everything get-env: the injected key is redacted, env: secrets are not inherited", async () => {
    const r = await alice.callTool({ name: "get-env", arguments: {} });
    const t = text(r);
    assert(t.includes("API_KEY") && t.includes("[REDACTED:everything-key]"), t.slice(0, 400));
    assert(!t.includes("LEAK_TCP_SECRET"), "an env: secret was inherited by a stdio server");
    assert(findLeaks(JSON.stringify(r), allSecrets()).length === 0, "get-env leaked");
  });

  await checks.check("per-agent credentials: each agent's calls carry its own credential only", async () => {
    assert(text(await alice.callTool({ name: "crm.whoami", arguments: {} })) === sha(secrets["crm-alice"]), "alice, template");
    assert(text(await bob.callTool({ name: "crm.whoami", arguments: {} })) === sha(secrets["crm-bob"]), "bob, template");
    assert(text(await alice.callTool({ name: "crmt.whoami", arguments: {} })) === sha(secrets["crm-alice"]), "alice, table");
    assert(text(await bob.callTool({ name: "crmt.whoami", arguments: {} })) === sha(secrets["crm-bob"]), "bob, table");
  });

  await checks.check("an agent with no credential is refused, never handed another's", async () => {
    const viaTemplate = await callError(carol, "crm.whoami");
    assert(viaTemplate.includes("crm-carol") && viaTemplate.includes("not loaded"), viaTemplate);
    const viaTable = await callError(carol, "crmt.whoami");
    assert(viaTable.includes("maps no credential to agent 'carol'"), viaTable);
    const refusals = stack.audit("--type", "tool_refused");
    assert(refusals.some((e) => e.actor === "carol"), "refusal not recorded");
  });

  await checks.check("--allowed-credentials: the server is unavailable with the reason; calls name server, credential and flag", async () => {
    const list = JSON.parse(stack.cli("--json", "tools", "list")).bindings;
    const b = list.find((x) => x.name === "forbidden-whoami");
    const why = JSON.stringify(b);
    assert(b.status !== "available" && why.includes("forbidden-token") && why.includes("--allowed-credentials"), why);
    const e = await callError(alice, "forbidden-whoami");
    assert(e.includes("forbidden") && e.includes("forbidden-token") && e.includes("--allowed-credentials"), e);
    assert(text(await alice.callTool({ name: "http.whoami", arguments: {} })) === sha(secrets["leak-http"]),
           "the tunnel stopped serving its other servers");
  });

  await checks.check("rotation by file: new value used at once, old one still redacted, link and call in flight kept", async () => {
    const connected = () => (stack.log("airlockd").match(/tunnel 'leak' connected/g) ?? []).length;
    const links = connected();
    const inflight = alice.callTool({ name: "http.sleep", arguments: { ms: 1500 } });
    await new Promise((r) => setTimeout(r, 200));
    retired["leak-http"] = secrets["leak-http"];
    secrets["leak-http"] = mint("http-rotated");
    put(path.join(sdir, "leak-http"), secrets["leak-http"]);
    await waitFor("reload", () => /secrets reloaded \(a secret file changed\): leak-http changed/.test(stack.log("leak")));
    assert(text(await inflight) === "slept", "the call in flight failed");
    assert(text(await alice.callTool({ name: "http.whoami", arguments: {} })) === sha(secrets["leak-http"]), "old credential still injected");
    const echo = text(await alice.callTool({ name: "http.echo", arguments: { text: `${retired["leak-http"]} ${secrets["leak-http"]}` } }));
    assert(echo === "[REDACTED:leak-http] [REDACTED:leak-http]", echo);
    assert(connected() === links, "the link was dropped");
  });

  await checks.check("a bad rotation keeps the previous values; SIGHUP reloads", async () => {
    const tunnel = stack.procs.find((p) => p.spawnargs.some((a) => a.endsWith("leak.yaml")));
    fs.writeFileSync(path.join(sdir, "leak-http"), "short\n");
    await waitFor("refusal", () => /secrets not reloaded .*leak-http.*5 bytes/.test(stack.log("leak")));
    assert(text(await alice.callTool({ name: "http.whoami", arguments: {} })) === sha(secrets["leak-http"]), "value lost");
    put(path.join(sdir, "leak-http"), secrets["leak-http"]);
    await new Promise((r) => setTimeout(r, 300));
    tunnel.kill("SIGHUP");
    await waitFor("SIGHUP reload", () => stack.log("leak").includes("secrets reloaded (SIGHUP)"));
    assert(tunnel.exitCode === null, "SIGHUP stopped mcp-tunnel");
    assert(text(await alice.callTool({ name: "http.whoami", arguments: {} })) === sha(secrets["leak-http"]), "after SIGHUP");
  });

  await checks.check("rotation by file reaches a stdio server when it next starts", async () => {
    retired["leak-stdio"] = secrets["leak-stdio"];
    secrets["leak-stdio"] = mint("stdio-rotated");
    put(path.join(sdir, "leak-stdio"), secrets["leak-stdio"]);
    await waitFor("reload", () => /secrets reloaded \(a secret file changed\): leak-stdio changed/.test(stack.log("leak")));
    const dave = await connect(stack.agentKey("dave", "*"));  // a new session: a new process
    const who = text(await dave.callTool({ name: "stdio.whoami", arguments: {} }));
    await dave.close();
    assert(who === sha(secrets["leak-stdio"]), "the new stdio server was given the old value");
  });

  await checks.check("zero hits: every byte that crossed the connector link", async () => {
    await new Promise((r) => setTimeout(r, 500));  // leak events flushed
    assert(capture.frames > 100 && capture.bytes() > 100000,
           `only ${capture.frames} frames, ${capture.bytes()} bytes captured`);
    const hits = capture.all().flatMap((b) => findLeaks(b, allSecrets()));
    assert(hits.length === 0, `leaked over the link: ${hits.slice(0, 5)}`);
    console.log(`# searched ${capture.bytes()} bytes in ${capture.messages.length} messages, ` +
                `${capture.frames} frames, ${capture.streams.size} streams`);
  });

  await checks.check("zero hits: airlockd's databases (audit log included), every log, the audit's JSON Lines, every byte the MCP clients received", async () => {
    await alice.close(); await bob.close(); await carol.close();
    // The audit log is not vacuous: it holds every call made above, successes included.
    const calls = stack.audit("--type", "call");
    assert(calls.length >= 20 && calls.some((r) => r.outcome === "ok" && r.redactions > 0),
           `${calls.length} call records`);
    const jsonl = fs.readFileSync(path.join(d, "audit.jsonl"));
    assert(jsonl.length > 1000, "the JSON Lines sink is empty");
    const inSink = findLeaks(jsonl, allSecrets());
    assert(inSink.length === 0, `audit.jsonl: ${inSink}`);
    const state = path.join(d, "state");
    const files = fs.readdirSync(state).filter((f) => /\.(db|sqlite)(-wal|-shm)?$|\.db/.test(f));
    assert(files.includes("audit.db") && files.includes("airlockd.db"), `databases: ${files}`);
    for (const f of files) {
      const hits = findLeaks(fs.readFileSync(path.join(state, f)), allSecrets());
      assert(hits.length === 0, `${f}: ${hits}`);
    }
    for (const log of ["airlockd", "leak"]) {
      const hits = findLeaks(stack.log(log), allSecrets());
      assert(hits.length === 0, `${log}.log: ${hits}`);
    }
    assert(received.length > 0, "nothing captured on the client side");
    const hits = findLeaks(Buffer.concat(received), allSecrets());
    assert(hits.length === 0, `the MCP client received: ${hits}`);
  });
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "leak"], async () => {
    for (const p of procs) p.kill("SIGKILL");
    if (capture) await capture.close();
  });
}
