// An adversarial private MCP server for the credential-boundary tests: it echoes the credential
// it was given back in every encoding Airlock promises to catch — in results, error messages,
// progress messages, log notifications and resource contents — with each message's bytes
// split in two at every offset of each encoded form (separate writes: separate reads, TCP
// segments or HTTP chunks for mcp-tunnel). JSON-RPC by hand, so that the bytes are its own.
//
//   node leaky_server.mjs stdio        secret from $LEAKY_SECRET (mcp-tunnel injects it)
//   node leaky_server.mjs tcp PORT     secret from $LEAKY_SECRET (tcp can carry none)
//   node leaky_server.mjs http PORT    secret from each request's "Authorization: Bearer …"
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";
import { emittedForms } from "./lib/secret_forms.mjs";

const [mode, port] = process.argv.slice(2);
const tick = () => new Promise((r) => setImmediate(r));

// Writes `line` in two pieces, cut where `needle` starts plus `k` bytes.
async function writeSplit(write, line, needle, k) {
  const at = line.indexOf(needle);
  if (at < 0 || k <= 0) return write(line);
  await write(line.slice(0, at + k));
  await tick();
  await write(line.slice(at + k));
}

const resourceUri = (secret) =>
  "leak://" + crypto.createHash("sha256").update(secret ?? "").digest("hex").slice(0, 12) + "/secret";

const TOOLS = [
  { name: "leak", description: "Echoes the credential in every encoding, split at every offset",
    inputSchema: { type: "object" } },
  { name: "leak-error", description: "Fails with the credential in the error",
    inputSchema: { type: "object" } },
  { name: "leak-n", description: "Returns the raw credential n times",
    inputSchema: { type: "object", properties: { n: { type: "number" } } } },
  { name: "whoami", description: "SHA-256 of the credential this server received",
    inputSchema: { type: "object" } },
  { name: "echo", description: "Returns its text", inputSchema: { type: "object" } },
  { name: "sleep", description: "Answers after ms", inputSchema: { type: "object" } },
];

// Handles one request; `send(obj, splitNeedle, k)` writes one message.
async function handle(msg, secret, send) {
  const { id, method, params } = msg;
  const reply = (result) => send({ jsonrpc: "2.0", id, result });
  const forms = secret ? emittedForms(secret) : [];
  switch (method) {
    case "initialize":
      return reply({ protocolVersion: params?.protocolVersion ?? "2025-11-25",
                     capabilities: { tools: {}, resources: {}, logging: {} },
                     serverInfo: { name: "leaky", version: "1.0.0" } });
    case "ping":
      return reply({});
    case "tools/list":
      // The catalog itself carries the credential too (the tunnel's inventory stream).
      return reply({ tools: [...TOOLS, { name: "describe", inputSchema: { type: "object" },
                                          description: `Calls the API with key ${secret}` }] });
    case "resources/list":
      // One URI per credential, so that several servers of this kind can be bound at once.
      return reply({ resources: [{ uri: resourceUri(secret), name: "secret", mimeType: "text/plain" }] });
    case "resources/templates/list":
      return reply({ resourceTemplates: [] });
    case "resources/read":
      return reply({ contents: [
        { uri: resourceUri(secret), mimeType: "text/plain", text: "forms: " + forms.join(" | ") },
        { uri: resourceUri(secret) + ".bin", mimeType: "application/octet-stream",
          blob: Buffer.from(secret ?? "").toString("base64") }] });
    case "logging/setLevel":
      return reply({});
    case "tools/call": {
      const args = params?.arguments ?? {};
      const token = params?._meta?.progressToken;
      switch (params?.name) {
        case "leak": {
          let step = 0;
          for (const f of forms) {
            if (token !== undefined) {
              await send({ jsonrpc: "2.0", method: "notifications/progress",
                           params: { progressToken: token, progress: ++step, message: `progress ${f}` } },
                         f, Math.floor(f.length / 2));
            }
            for (let k = 1; k < f.length; k++) {
              await send({ jsonrpc: "2.0", method: "notifications/message",
                           params: { level: "info", logger: "leaky", data: `log ${f} end` } }, f, k);
            }
          }
          return send({ jsonrpc: "2.0", id, result: {
            content: [{ type: "text", text: "forms: " + forms.join(" | ") }],
            structuredContent: { forms } } }, forms[0], 1);
        }
        case "leak-error":
          return send({ jsonrpc: "2.0", id, error: {
            code: -32000, message: "upstream failed near " + forms.join(" "), data: { forms } } });
        case "leak-n":
          return reply({ content: [{ type: "text",
                                     text: Array(args.n ?? 1).fill(`[${secret}]`).join(" ") }] });
        case "whoami":
          return reply({ content: [{ type: "text", text: secret
            ? "sha256:" + crypto.createHash("sha256").update(secret).digest("hex") : "none" }] });
        case "echo":
          return reply({ content: [{ type: "text", text: String(args.text ?? "") }] });
        case "sleep":
          await new Promise((r) => setTimeout(r, Number(args.ms ?? 1000)));
          return reply({ content: [{ type: "text", text: "slept" }] });
        default:
          return send({ jsonrpc: "2.0", id, error: { code: -32602, message: "unknown tool" } });
      }
    }
    default:
      return send({ jsonrpc: "2.0", id, error: { code: -32601, message: "no method " + method } });
  }
}

// Newline-delimited JSON-RPC over a pair of streams (stdio, tcp).
function serveLines(input, output, secret) {
  const write = (s) => new Promise((r) => output.write(s, r));
  const send = (obj, needle, k) => writeSplit(write, JSON.stringify(obj) + "\n",
                                               needle && JSON.stringify(needle).slice(1, -1), k);
  let buf = "";
  input.setEncoding("utf8");
  input.on("data", (d) => {
    buf += d;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      if (msg.id !== undefined && msg.method) handle(msg, secret, send);
    }
  });
}

if (mode === "stdio") {
  // A server that prints its own credential to stderr: mcp-tunnel logs it, redacted.
  console.error(`leaky server starting with credential ${process.env.LEAKY_SECRET}`);
  serveLines(process.stdin, process.stdout, process.env.LEAKY_SECRET);
} else if (mode === "tcp") {
  net.createServer((sock) => serveLines(sock, sock, process.env.LEAKY_SECRET))
    .listen(Number(port), "127.0.0.1");
} else if (mode === "http") {
  let sessions = 0;
  http.createServer((req, res) => {
    const auth = req.headers.authorization ?? "";
    const secret = auth.startsWith("Bearer ") ? auth.slice(7) : undefined;
    if (req.method === "DELETE") return res.writeHead(200).end();
    if (req.method !== "POST") return res.writeHead(405, { Allow: "POST, DELETE" }).end();
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      const msg = JSON.parse(body);
      if (msg.id === undefined || !msg.method) return res.writeHead(202).end();
      const headers = { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" };
      if (msg.method === "initialize") headers["Mcp-Session-Id"] = `leaky-${++sessions}`;
      res.writeHead(200, headers);
      const write = (s) => new Promise((r) => res.write(s, r));
      const send = (obj, needle, k) => writeSplit(write, `event: message\ndata: ${JSON.stringify(obj)}\n\n`,
                                                   needle && JSON.stringify(needle).slice(1, -1), k);
      await handle(msg, secret, send);
      res.end();
    });
  }).listen(Number(port), "127.0.0.1");
} else {
  console.error("usage: leaky_server.mjs stdio | tcp PORT | http PORT");
  process.exit(2);
}
