// A private server on the TypeScript SDK v2 (@modelcontextprotocol/server), over stdio: it
// serves both eras, and its `confirm` tool asks for input the 2026-07-28 way, returning an
// input_required result; for a client in a 2025 session the SDK turns that into an ordinary
// elicitation/create request. Used by mcp_2026.test.mjs.
import { McpServer } from "@modelcontextprotocol/server";
import { StdioServerTransport } from "@modelcontextprotocol/server/stdio";
import { object, registerConfirm } from "./lib/v2_tools.mjs";

const server = new McpServer({ name: "airlock-v2-fixture", version: "1.0.0" });
registerConfirm(server);
server.registerTool("hello", { description: "Says hello", inputSchema: object({}) },
  async () => ({ content: [{ type: "text", text: "hello from v2" }] }));
await server.connect(new StdioServerTransport());
