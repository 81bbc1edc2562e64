// A private server that lacks an optional list (resources/templates/list, prompts/list,
// resources/list — answered -32601 by the official SDK) stays available with that list empty
// and everything else it serves; the debug line saying so is logged once per server and
// method, not at every fetch (the servers announce a changed tool list and are fetched
// again). A server that declares tools but does not list them is unavailable, with a reason
// naming tools/list.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import fs from "node:fs";
import path from "node:path";
import { Stack, Checks, assert, waitFor, PEERS } from "./lib/stack.mjs";

const checks = new Checks("optional lists");
const stack = new Stack();
const PARTIAL = path.join(PEERS, "partial_server.mjs");
const cases = {
  "no-templates": "resources/templates/list",
  "no-prompts": "prompts/list",
  "no-resources": "resources/list",
  "no-optional": "resources/templates/list,prompts/list,resources/list",
  "no-tools": "tools/list",
};
const changed = path.join(stack.dir, "changed");
const server = (name) => `  - name: ${name}
    url: stdio:${process.execPath}
    args: ["${PARTIAL}"]
    env: {PARTIAL_NAME: ${name}, PARTIAL_LACKS: "${cases[name]}", PARTIAL_CHANGED_FILE: "${changed}"}
`;

try {
  await stack.startAirlockd();
  process.env.AIRLOCK_TEST_LOG_LEVEL = "debug";
  stack.startTunnel("partial", "servers:\n" + Object.keys(cases).map(server).join(""));
  stack.applyTools("tools:\n" + Object.keys(cases).map(
    (n) => `  - {name: ${n}, mcp_tunnel: partial, server: ${n}, prefix: "${n}."}\n`).join(""));
  for (const n of Object.keys(cases).filter((n) => n !== "no-tools")) await stack.waitAvailable(n);
  const key = stack.agentKey("agent-p", "*");
  const client = new Client({ name: "optional-lists", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } } }));

  const tools = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ["no-templates", "no-prompts", "no-resources", "no-optional"]) {
    await checks.check(`${n}: available, its tools listed and callable`, async () => {
      assert(tools.includes(`${n}.hello`), `tools: ${tools}`);
      const r = await client.callTool({ name: `${n}.hello`, arguments: {} });
      assert(r.content[0].text === `hello from ${n}`, JSON.stringify(r));
    });
  }
  await checks.check("what each server does serve is still listed", async () => {
    const resources = (await client.listResources()).resources.map((r) => r.uri);
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    for (const n of ["no-templates", "no-prompts"]) {
      assert(resources.some((u) => u.includes(`partial://${n}/status`)), `resources: ${resources}`);
    }
    for (const n of ["no-prompts", "no-resources"]) {
      assert(templates.some((u) => u.includes(`partial://${n}/items`)), `templates: ${templates}`);
    }
    assert(!resources.concat(templates, prompts).some((u) => u.includes("no-optional")),
           `no-optional lists something: ${resources} ${templates} ${prompts}`);
    assert(prompts.filter((p) => p.endsWith("greet")).length === 2, `prompts: ${prompts}`);
  });
  await checks.check("a server that declares tools and cannot list them is unavailable, named", async () => {
    const v = JSON.parse(stack.cli("--json", "tools", "list"));
    const b = v.bindings.find((x) => x.name === "no-tools");
    assert(b && b.status !== "available", JSON.stringify(b));
    assert(/tools\/list/.test(JSON.stringify(b)), JSON.stringify(b));
    assert(!tools.some((t) => t.startsWith("no-tools.")), `tools: ${tools}`);
  });
  await checks.check("the missing list is logged once at debug level, not at every fetch", async () => {
    const before = (await client.listTools()).tools.length;
    fs.writeFileSync(changed, "now\n");
    // Every server fetched again (their catalog lines are logged twice), without new lines.
    await waitFor("second fetches", () =>
      ["no-templates", "no-prompts", "no-resources", "no-optional"].every((n) =>
        stack.log("partial").split(`server '${n}': catalog fetched`).length - 1 >= 2));
    const log = stack.log("partial");
    for (const [n, methods] of Object.entries(cases).filter(([n]) => n !== "no-tools")) {
      for (const m of methods.split(",")) {
        const line = `server '${n}' does not serve ${m}: taken as empty`;
        const count = log.split(line).length - 1;
        assert(count === 1, `"${line}" logged ${count} times`);
      }
    }
    assert(!/server 'no-(templates|prompts|resources|optional)' is unavailable/.test(log),
           "a server lacking an optional list was reported unavailable");
    assert((await client.listTools()).tools.length === before, "tools changed");
  });
  await client.close();
} catch (e) {
  checks.setupFailed(e);
}
await stack.finish(checks, ["airlockd", "partial"]);
