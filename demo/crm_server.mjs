// The demo's second private MCP server: a CRM lookup service (official MCP SDK over stdio)
// that needs an API key, which mcp-tunnel injects as CRM_API_KEY from a secret it holds. Like
// many real services it is careless: its answer quotes the request it made, key included —
// Airlock redacts the key before anything leaves the tunnel. Usage: node demo/crm_server.mjs
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.resolve(import.meta.dirname, "../test/mcp/package.json"));
const { McpServer } = await import(require.resolve("@modelcontextprotocol/sdk/server/mcp.js"));
const { StdioServerTransport } = await import(require.resolve("@modelcontextprotocol/sdk/server/stdio.js"));
const { z } = await import(require.resolve("zod"));

const key = process.env.CRM_API_KEY;
if (!key) {
  console.error("CRM_API_KEY is not set");
  process.exit(1);
}
const customers = {
  acme: { name: "Acme Corp", tier: "enterprise", owner: "j.doe", open_deals: 3 },
  globex: { name: "Globex", tier: "mid-market", owner: "a.smith", open_deals: 1 },
};

const server = new McpServer({ name: "demo-crm", version: "1.0.0" });
server.registerTool("lookup-customer", {
  title: "Look up a customer",
  description: "CRM record of a customer (demo data)",
  inputSchema: { name: z.enum(["acme", "globex"]) },
}, async ({ name }) => ({
  content: [{ type: "text", text: JSON.stringify({
    customer: customers[name],
    request: `GET https://crm.internal/v2/customers/${name} Authorization: Bearer ${key}`,
  }) }],
}));
await server.connect(new StdioServerTransport());
