// mcp-tunnel's Streamable HTTP upstreams: TLS verified by default (a server whose CA is not
// trusted is reported unavailable, with the reason; with ca_file it works), and an upstream
// that restarts (its sessions gone: HTTP 404) is re-initialized by the tunnel — a read in
// flight is sent again, a tools/call is answered with an error and never replayed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Stack, Checks, assert, freePort, waitFor, PEERS } from "./lib/stack.mjs";

const checks = new Checks("http upstreams");
const stack = new Stack();
const FIXTURE = path.join(PEERS, "fixture_server.mjs");
const procs = [];

function startFixture(...args) {
  const p = spawn(process.execPath, [FIXTURE, ...args], { stdio: "ignore" });
  procs.push(p);
  return p;
}
async function listening(port) {
  await waitFor(`port ${port}`, async () => {
    const net = await import("node:net");
    return await new Promise((r) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); r(true); });
      s.on("error", () => r(false));
    });
  });
}
const text = (r) => r.content.map((c) => c.text).join("");

try {
  // A private CA and a certificate for 127.0.0.1, made here with openssl.
  const d = stack.dir;
  const ossl = (...a) => execFileSync("openssl", a, { cwd: d, stdio: "ignore" });
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=airlock test CA");
  ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1");
  // subjectAltName for the IP: host name verification needs it.
  fs.writeFileSync(path.join(d, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf");
  const httpsPort = await freePort();
  const httpPort = await freePort();
  startFixture("https", String(httpsPort), path.join(d, "srv.pem"), path.join(d, "srv.key"));
  let plain = startFixture("http", String(httpPort));
  await listening(httpsPort);
  await listening(httpPort);

  await stack.startAirlockd();
  stack.startTunnel("web", `servers:
  - name: trusted
    url: https://127.0.0.1:${httpsPort}/mcp
    ca_file: ${path.join(d, "ca.pem")}
  - name: untrusted
    url: https://127.0.0.1:${httpsPort}/mcp
  - name: plain
    url: http://127.0.0.1:${httpPort}/mcp
`);
  stack.applyTools(`tools:
  - {name: trusted, mcp_tunnel: web, server: trusted, prefix: tr_}
  - {name: untrusted, mcp_tunnel: web, server: untrusted, prefix: un_}
  - {name: plain, mcp_tunnel: web, server: plain, prefix: pl_}
`);
  await stack.waitAvailable("trusted");
  await stack.waitAvailable("plain");
  const key = stack.agentKey("web-agent", "*");
  const client = new Client({ name: "http-upstreams", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } } }));

  await checks.check("https with ca_file: verified and working", async () => {
    const r = await client.callTool({ name: "tr_echo", arguments: { message: "over tls" } });
    assert(text(r) === "over tls", JSON.stringify(r));
  });
  await checks.check("https without a trusted CA: unavailable, and the reason names the certificate", async () => {
    const v = JSON.parse(stack.cli("--json", "tools", "list"));
    const b = v.bindings.find((x) => x.name === "untrusted");
    assert(b.status === "unavailable" && /certificate|CA|verif/i.test(b.reason), JSON.stringify(b));
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert(!names.some((n) => n.startsWith("un_")), names.join(","));
  });
  await checks.check("upstream restart: a read is re-sent after re-initialization", async () => {
    assert(text(await client.callTool({ name: "pl_echo", arguments: { message: "a" } })) === "a");
    plain.kill("SIGKILL");
    await new Promise((r) => plain.on("exit", r));
    plain = startFixture("http", String(httpPort));
    await listening(httpPort);
    const r = await client.readResource({ uri: "fixture://status" });
    assert(r.contents[0].text === "fixture ok", JSON.stringify(r));
    assert(text(await client.callTool({ name: "pl_echo", arguments: { message: "b" } })) === "b");
  });
  await checks.check("upstream restart: a tools/call in flight is not replayed", async () => {
    // The call is in flight when the server dies; a replay would run it again on the new
    // server and succeed.
    const inflight = client.callTool({ name: "pl_slow", arguments: { ms: 2000 } }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 300));
    plain.kill("SIGKILL");
    await new Promise((r) => plain.on("exit", r));
    plain = startFixture("http", String(httpPort));
    await listening(httpPort);
    const r = await inflight;
    assert(r instanceof Error && /not retried/.test(r.message), String(r.message ?? JSON.stringify(r)));
    assert(text(await client.callTool({ name: "pl_echo", arguments: { message: "d" } })) === "d");
  });
  await client.close();
} catch (e) {
  checks.setupFailed(e);
} finally {
  await stack.finish(checks, ["airlockd", "web"], () => procs.forEach((p) => p.kill("SIGKILL")));
}

