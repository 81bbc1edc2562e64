// A private server on the TypeScript SDK v2 (@modelcontextprotocol/server), over stdio: it
// serves both eras, and its `confirm` tool asks for input the 2026-07-28 way, returning an
// input_required result; for a client in a 2025 session the SDK turns that into an ordinary
// elicitation/create request. Used by mcp_2026.test.mjs.
import { McpServer, acceptedContent, fromJsonSchema, inputRequired } from "@modelcontextprotocol/server";
import { StdioServerTransport } from "@modelcontextprotocol/server/stdio";

// JSON Schema, not zod: the SDK v2 wants zod 4, and this project's zod is 3.
const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: "object", properties, required });
const okSchema = object({ ok: { type: "boolean" } });

const server = new McpServer({ name: "airlock-v2-fixture", version: "1.0.0" });
server.registerTool("confirm", { description: "Asks the user to confirm, then answers",
                                 inputSchema: object({ what: { type: "string" } }) },
  async ({ what }, ctx) => {
    const answer = acceptedContent(ctx.mcpReq.inputResponses, "ok", okSchema);
    if (answer === undefined) {
      return inputRequired({ inputRequests: { ok: inputRequired.elicit({
        message: `Go ahead with ${what}?`,
        requestedSchema: okSchema }) } });
    }
    return { content: [{ type: "text", text: answer.ok ? `done: ${what}` : `not done: ${what}` }] };
  });
server.registerTool("hello", { description: "Says hello", inputSchema: object({}) },
  async () => ({ content: [{ type: "text", text: "hello from v2" }] }));
await server.connect(new StdioServerTransport());
