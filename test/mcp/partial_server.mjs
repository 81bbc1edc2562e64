// A private MCP server (the official SDK's low-level Server, over stdio) that declares the
// tools, resources and prompts capabilities but serves only some of their lists: the methods
// named in PARTIAL_LACKS (comma-separated, e.g. "resources/templates/list") are not
// registered, so the SDK answers them with -32601, as many servers in the wild do.
// When the file PARTIAL_CHANGED_FILE is written, every process of the server sends
// notifications/tools/list_changed, so that the tunnel fetches its catalog again.
import fs from "node:fs";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema, GetPromptRequestSchema, ListPromptsRequestSchema,
  ListResourcesRequestSchema, ListResourceTemplatesRequestSchema, ListToolsRequestSchema,
  ReadResourceRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const lacks = new Set((process.env.PARTIAL_LACKS ?? "").split(",").filter(Boolean));
const name = process.env.PARTIAL_NAME ?? "partial";
const server = new Server({ name, version: "1.0.0" },
                          { capabilities: { tools: { listChanged: true }, resources: {}, prompts: {} } });
const handlers = [
  [ListToolsRequestSchema, "tools/list", () => ({
    tools: [{ name: "hello", description: `Says hello from ${name}`,
              inputSchema: { type: "object", properties: {} } },
] })],
  [CallToolRequestSchema, "tools/call", async (req) => ({
    content: [{ type: "text", text: `${req.params.name} from ${name}` }] })],
  [ListResourcesRequestSchema, "resources/list", () => ({
    resources: [{ uri: `partial://${name}/status`, name: "status", mimeType: "text/plain" }] })],
  [ReadResourceRequestSchema, "resources/read", (req) => ({
    contents: [{ uri: req.params.uri, mimeType: "text/plain", text: "ok" }] })],
  [ListResourceTemplatesRequestSchema, "resources/templates/list", () => ({
    resourceTemplates: [{ uriTemplate: `partial://${name}/items/{id}`, name: "item" }] })],
  [ListPromptsRequestSchema, "prompts/list", () => ({
    prompts: [{ name: "greet", description: "A greeting" }] })],
  [GetPromptRequestSchema, "prompts/get", () => ({
    messages: [{ role: "user", content: { type: "text", text: "hello" } }] })],
];
for (const [schema, method, handler] of handlers) {
  if (!lacks.has(method)) server.setRequestHandler(schema, handler);
}
await server.connect(new StdioServerTransport());
// The file watch below would keep the process alive past the end of its stdin.
process.stdin.on("end", () => process.exit(0));
if (process.env.PARTIAL_CHANGED_FILE) {
  fs.watchFile(process.env.PARTIAL_CHANGED_FILE, { interval: 100 }, () => {
    server.sendToolListChanged().catch(() => {});
  });
}
