// A private server that speaks only MCP 2026-07-28, over Streamable HTTP, on the TypeScript SDK
// v2 (@modelcontextprotocol/server's createMcpHandler with legacy requests rejected): there is
// no initialize and no session to fall back to. It admits only requests that carry the bearer
// token it was given (mcp-tunnel injects it), and records every request it receives so that a
// test can see what reached it. Used by mcp_2026.test.mjs, in the test's own process.
import http from "node:http";
import { McpServer, createMcpHandler, fromJsonSchema } from "@modelcontextprotocol/server";
import { object, registerConfirm } from "./lib/v2_tools.mjs";

// Starts it on a loopback port. `seen`: every request as { method, headers, body };
// `state.cancelled`: `wait` calls whose request was aborted; `addTool()` adds a tool and tells
// listeners the list changed.
export async function startModernServer(token) {
  const seen = [];
  const state = { cancelled: 0, extra: false };
  const factory = () => {
    const server = new McpServer({ name: "airlock-2026-only", version: "1.0.0" },
                                 { capabilities: { tools: { listChanged: true } } });
    server.registerTool("hello", { description: "Says hello", inputSchema: object({}) },
      async () => ({ content: [{ type: "text", text: "hello from a 2026-only server" }] }));
    server.registerTool("token", { description: "Shows the credential it was sent", inputSchema: object({}) },
      async () => ({ content: [{ type: "text", text: `you sent ${token}` }] }));
    registerConfirm(server);
    server.registerTool("region", { description: "Runs in a region, named in a header too",
                                    inputSchema: fromJsonSchema({ type: "object", required: ["region"],
                                      properties: { region: { type: "string", "x-mcp-header": "Region" } } }) },
      async ({ region }) => ({ content: [{ type: "text", text: `ran in ${region}` }] }));
    server.registerTool("wait", { description: "Waits until cancelled (20 s at most)", inputSchema: object({}) },
      async (_args, ctx) => {
        await new Promise((resolve) => {
          const t = setTimeout(resolve, 20000);
          ctx.mcpReq.signal.addEventListener("abort", () => {
            state.cancelled += 1;
            clearTimeout(t);
            resolve();
          });
        });
        return { content: [{ type: "text", text: "waited" }] };
      });
    if (state.extra) {
      server.registerTool("added", { description: "Added while running", inputSchema: object({}) },
        async () => ({ content: [{ type: "text", text: "added" }] }));
    }
    return server;
  };
  const handler = createMcpHandler(factory, { legacy: "reject" });
  const hop = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length"]);
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    let parsed = null;
    try { parsed = body.length ? JSON.parse(body) : null; } catch { parsed = body.toString(); }
    seen.push({ method: req.method, headers: { ...req.headers }, body: parsed });
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { "Content-Type": "text/plain" }).end("no or wrong credential");
      return;
    }
    const aborted = new AbortController();
    res.on("close", () => { if (!res.writableFinished) aborted.abort(); });
    const headers = Object.entries(req.headers).filter(([k]) => !hop.has(k));
    const response = await handler.fetch(new Request(`http://127.0.0.1${req.url}`, {
      method: req.method, headers, body: body.length ? body : undefined, signal: aborted.signal }));
    res.writeHead(response.status, Object.fromEntries(response.headers));
    try {
      if (response.body) for await (const chunk of response.body) res.write(chunk);
    } catch { /* the client left */ }
    res.end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/mcp`,
    seen,
    state,
    addTool() {
      state.extra = true;
      handler.notify.toolsChanged();
    },
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
