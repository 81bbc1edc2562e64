// A small MCP server (official SDK) used as a private server in Airlock's tests and benchmark:
// over stdio (`node fixture_server.mjs stdio`), newline-delimited JSON-RPC on TCP
// (`node fixture_server.mjs tcp PORT`, one session per connection) or Streamable HTTP with JSON
// answers (`node fixture_server.mjs http PORT`).
// Over stdio, FIXTURE_STUBBORN=1 makes it ignore the end of its stdin and SIGTERM.
// Tools: echo, add, slow (sleeps ms, reporting progress), big (bytes of text), notify (logs a
// message after answering), crash (ends the process or the connection in the middle of the call).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import fs from "node:fs";
import net from "node:net";
import { z } from "zod";
import { serveStreamableHttp } from "./lib/serve_http.mjs";

// Every live server instance of this process: `add-tool` adds a tool to all of them, as a
// server whose tool set changes would, so each session gets notifications/tools/list_changed.
const live = new Set();

function makeServer(onCrash) {
  const server = new McpServer({ name: "airlock-fixture", version: "1.0.0" },
                               { capabilities: { logging: {} } });
  server.registerTool("echo", { description: "Echoes its input",
                                inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: "text", text: message }] }));
  server.registerTool("add", { description: "Adds two numbers",
                               inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }));
  server.registerTool("slow", { description: "Answers after ms milliseconds",
                                inputSchema: { ms: z.number(), progress: z.boolean().optional() } },
    async ({ ms, progress }, extra) => {
      const token = extra._meta?.progressToken;
      const steps = 10;
      for (let i = 1; i <= steps; i++) {
        await new Promise((r) => setTimeout(r, ms / steps));
        if (progress && token !== undefined) {
          await extra.sendNotification({ method: "notifications/progress",
                                         params: { progressToken: token, progress: i, total: steps } });
        }
      }
      return { content: [{ type: "text", text: `slept ${ms} ms` }] };
    });
  server.registerTool("big", { description: "Returns bytes characters of text",
                               inputSchema: { bytes: z.number() } },
    async ({ bytes }) => ({ content: [{ type: "text", text: "x".repeat(bytes) }] }));
  server.registerTool("notify", { description: "Answers, then logs `text` 100 ms later",
                                  inputSchema: { text: z.string() } },
    async ({ text }) => {
      setTimeout(() => server.sendLoggingMessage({ level: "info", data: text }).catch(() => {}), 100);
      return { content: [{ type: "text", text: "will notify" }] };
    });
  server.registerTool("log", { description: "Logs `text` at `level` during the call",
                               inputSchema: { text: z.string(), level: z.string() } },
    async ({ text, level }, extra) => {
      await extra.sendNotification({ method: "notifications/message", params: { level, data: text } });
      return { content: [{ type: "text", text: "logged" }] };
    });
  server.registerTool("ask", { description: "Asks the user `question` (elicitation), or the " +
                                              "client's model with `via: sampling`, then answers",
                               inputSchema: { question: z.string(),
                                              via: z.enum(["elicitation", "sampling"]).optional() } },
    async ({ question, via }, extra) => {
      if (via === "sampling") {
        const m = await extra.sendRequest({ method: "sampling/createMessage", params: {
          messages: [{ role: "user", content: { type: "text", text: question } }], maxTokens: 50 } },
          z.object({ content: z.any() }).passthrough());
        return { content: [{ type: "text", text: `model: ${m.content?.text}` }] };
      }
      const r = await extra.sendRequest({ method: "elicitation/create", params: {
        message: question, requestedSchema: { type: "object",
          properties: { answer: { type: "string" } }, required: ["answer"] } } },
        z.object({ action: z.string(), content: z.any() }).passthrough());
      return { content: [{ type: "text",
                           text: r.action === "accept" ? `answer: ${r.content.answer}` : r.action }] };
    });
  server.registerResource("status", "fixture://status", { description: "The fixture's status",
                                                         mimeType: "text/plain" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: "fixture ok" }] }));
  server.registerTool("add-tool", { description: "Adds an echo-like tool to every session",
                                    inputSchema: { name: z.string() } },
    async ({ name }) => {
      for (const s of live) {
        try {
          s.registerTool(name, { description: `added at run time`,
                                 inputSchema: { message: z.string() } },
            async ({ message }) => ({ content: [{ type: "text", text: `${name}: ${message}` }] }));
        } catch {
          // already there
        }
      }
      return { content: [{ type: "text", text: `added ${name}` }] };
    });
  live.add(server);
  server.server.onclose = () => live.delete(server);
  server.registerTool("crash", { description: "Dies in the middle of the call",
                                 inputSchema: {} },
    async () => {
      setTimeout(onCrash, 50);
      return await new Promise(() => {});
    });
  return server;
}

const mode = process.argv[2] ?? "stdio";
if (mode === "stdio") {
  const server = makeServer(() => process.exit(3));
  await server.connect(new StdioServerTransport());
  if (process.env.FIXTURE_STUBBORN) {
    // A badly behaved server: it outlives its stdin and ignores SIGTERM, so that only SIGKILL
    // (the tunnel's last step, or the kernel's parent-death signal) ends it.
    process.on("SIGTERM", () => {});
    setInterval(() => {}, 1000);
  }
} else if (mode === "tcp") {
  const port = Number(process.argv[3]);
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    const server = makeServer(() => sock.destroy());
    sock.on("error", () => {});
    server.connect(new StdioServerTransport(sock, sock));
  });
  srv.listen(port, "127.0.0.1", () => console.error(`fixture listening on ${port}`));
} else if (mode === "http" || mode === "https") {
  // Streamable HTTP with JSON answers, one session per initialize. https: PORT CERT KEY.
  const tls = mode === "https" ? { cert: fs.readFileSync(process.argv[4]),
                                   key: fs.readFileSync(process.argv[5]) } : null;
  serveStreamableHttp({ port: Number(process.argv[3]), makeServer: () => makeServer(() => {}),
                        tls, label: "fixture", transport: { enableJsonResponse: true } });
} else {
  console.error(`usage: fixture_server.mjs stdio | tcp PORT | http PORT | https PORT CERT KEY`);
  process.exit(2);
}
