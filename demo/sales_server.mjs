// The demo's private MCP server: a small sales-data service (official MCP SDK) speaking
// newline-delimited JSON-RPC on a loopback TCP port, as a private server inside a customer
// network would. Usage: node demo/sales_server.mjs PORT
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

// The SDK is installed with the test peers (scripts/setup).
const require = createRequire(path.resolve(import.meta.dirname, "../test/mcp/package.json"));
const { McpServer } = await import(require.resolve("@modelcontextprotocol/sdk/server/mcp.js"));
const { StdioServerTransport } = await import(require.resolve("@modelcontextprotocol/sdk/server/stdio.js"));
const { z } = await import(require.resolve("zod"));

const regions = { emea: 1240000, amer: 2310000, apac: 980000 };

function makeServer() {
  const server = new McpServer({ name: "demo-sales", version: "1.0.0" });
  server.registerTool("fetch-sales-data", {
    title: "Fetch sales data",
    description: "Quarterly revenue by region (demo data)",
    inputSchema: { region: z.enum(["emea", "amer", "apac"]).optional() },
  }, async ({ region }) => {
    const rows = region ? { [region]: regions[region] } : regions;
    return { content: [{ type: "text", text: JSON.stringify({ quarter: "2026-Q3", revenue: rows }) }] };
  });
  return server;
}

const port = Number(process.argv[2] ?? 18080);
net.createServer((sock) => {
  sock.on("error", () => {});
  makeServer().connect(new StdioServerTransport(sock, sock));
}).listen(port, "127.0.0.1", () => console.error(`demo sales MCP server on tcp://127.0.0.1:${port}`));
