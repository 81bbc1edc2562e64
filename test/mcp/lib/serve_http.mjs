// Serves an MCP server factory over Streamable HTTP on 127.0.0.1 for the test fixtures: one
// SDK server and transport per session (created by initialize), 404 for an unknown session.
// `transport` adds StreamableHTTPServerTransport options; `tls` ({cert, key}) serves https.
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";

export function serveStreamableHttp({ port, makeServer, transport: extra = {}, tls = null, label }) {
  const transports = new Map();
  const handler = async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const parsed = body ? JSON.parse(body) : undefined;
    const sid = req.headers["mcp-session-id"];
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport && parsed && isInitializeRequest(parsed)) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => transports.set(id, transport),
        ...extra,
      });
      transport.onclose = () => transports.delete(transport.sessionId);
      await makeServer().connect(transport);
    }
    if (!transport) {
      res.writeHead(sid ? 404 : 400, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: null,
                               error: { code: -32000, message: "no valid session" } }));
      return;
    }
    await transport.handleRequest(req, res, parsed);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.listen(port, "127.0.0.1", () => console.error(`${label} on ${port}`));
  return server;
}
