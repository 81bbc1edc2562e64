// The conformance fixture: an MCP server (official SDK) implementing the tools, resources and
// prompts that @modelcontextprotocol/conformance's server scenarios call. Runs over stdio (behind
// an Airlock tunnel) or directly over Streamable HTTP, so the suite can be run both ways and
// the results compared. Usage: node conformance_server.mjs stdio | http PORT
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { serveStreamableHttp } from "./lib/serve_http.mjs";
import { z } from "zod";

// 1x1 red PNG and a minimal WAV (44-byte header, no samples).
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV = Buffer.from("524946462400000057415645666d7420100000000100010044ac000088580100020010006461746100000000", "hex").toString("base64");

function makeServer() {
  const server = new McpServer({ name: "airlock-conformance-fixture", version: "1.0.0" },
                               { capabilities: { logging: {}, completions: {},
                                                 resources: { subscribe: true } } });
  const text = (t) => ({ content: [{ type: "text", text: t }] });
  server.registerTool("test_simple_text", { description: "Returns simple text" },
    async () => text("This is a simple text response for testing."));
  server.registerTool("test_image_content", { description: "Returns an image" },
    async () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] }));
  server.registerTool("test_audio_content", { description: "Returns audio" },
    async () => ({ content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] }));
  server.registerTool("test_embedded_resource", { description: "Returns an embedded resource" },
    async () => ({ content: [{ type: "resource", resource: { uri: "test://embedded-resource",
      mimeType: "text/plain", text: "This is an embedded resource content." } }] }));
  server.registerTool("test_multiple_content_types", { description: "Returns mixed content" },
    async () => ({ content: [
      { type: "text", text: "Multiple content types test:" },
      { type: "image", data: PNG, mimeType: "image/png" },
      { type: "resource", resource: { uri: "test://mixed-content-resource",
        mimeType: "application/json", text: JSON.stringify({ test: "data", value: 123 }) } }] }));
  server.registerTool("test_tool_with_logging", { description: "Logs while running" },
    async (extra) => {
      const log = (data) => extra.sendNotification({ method: "notifications/message",
                                                     params: { level: "info", data } });
      await log("Tool execution started");
      await new Promise((r) => setTimeout(r, 50));
      await log("Tool processing data");
      await new Promise((r) => setTimeout(r, 50));
      await log("Tool execution completed");
      return text("Tool with logging executed successfully");
    });
  // The 2026-07-28 suite's diagnostic tools (server-stateless): a tool that logs while it
  // runs, and one that asks for elicitation in the middle of its call.
  server.registerTool("test_logging_tool", { description: "Logs while running" },
    async (extra) => {
      await extra.sendNotification({ method: "notifications/message",
                                     params: { level: "info", data: "logging tool ran" } });
      return text("logged");
    });
  server.registerTool("test_streaming_elicitation", { description: "Asks the user mid-call" },
    async (extra) => {
      try {
        const r = await extra.sendRequest({ method: "elicitation/create", params: {
          message: "Continue?", requestedSchema: { type: "object", properties: {} } } },
          z.object({}).passthrough());
        return text(`User response: action=${r.action}`);
      } catch (e) {
        return text(`elicitation not available: ${e.message}`);
      }
    });
  server.registerTool("test_error_handling", { description: "Always fails" }, async () => {
    throw new Error("This tool intentionally returns an error for testing");
  });
  server.registerTool("test_tool_with_progress", { description: "Reports progress" },
    async (extra) => {
      const token = extra._meta?.progressToken;
      for (const p of [0, 50, 100]) {
        if (token !== undefined) {
          await extra.sendNotification({ method: "notifications/progress",
                                         params: { progressToken: token, progress: p, total: 100 } });
        }
        if (p < 100) await new Promise((r) => setTimeout(r, 50));
      }
      return text("Tool with progress executed successfully");
    });
  server.registerTool("test_sampling", { description: "Asks the client's LLM",
                                         inputSchema: { prompt: z.string() } },
    async ({ prompt }, extra) => {
      const r = await extra.sendRequest({ method: "sampling/createMessage", params: {
        messages: [{ role: "user", content: { type: "text", text: prompt } }], maxTokens: 100 } },
        z.object({ content: z.any() }).passthrough());
      return text(`LLM response: ${r.content?.text ?? JSON.stringify(r.content)}`);
    });
  // Needs sampling whatever its arguments: a 2026 client that does not declare it gets -32021
  // from airlockd, which bridges this 2025 server's request (SEP-2575).
  server.registerTool("test_missing_capability", { description: "Needs the client's LLM" },
    async (extra) => {
      const r = await extra.sendRequest({ method: "sampling/createMessage", params: {
        messages: [{ role: "user", content: { type: "text", text: "hi" } }], maxTokens: 10 } },
        z.object({ content: z.any() }).passthrough());
      return text(`LLM response: ${r.content?.text ?? JSON.stringify(r.content)}`);
    });
  server.registerTool("test_elicitation", { description: "Asks the user",
                                            inputSchema: { message: z.string() } },
    async ({ message }, extra) => {
      const r = await extra.sendRequest({ method: "elicitation/create", params: { message,
        requestedSchema: { type: "object", properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" } },
          required: ["username", "email"] } } }, z.object({}).passthrough());
      return text(`User response: action=${r.action}, content=${JSON.stringify(r.content)}`);
    });
  server.registerTool("test_elicitation_sep1034_defaults", { description: "Elicitation defaults" },
    async (extra) => {
      const r = await extra.sendRequest({ method: "elicitation/create", params: {
        message: "Please review and update the form fields with defaults",
        requestedSchema: { type: "object", properties: {
          name: { type: "string", description: "User name", default: "John Doe" },
          age: { type: "integer", description: "User age", default: 30 },
          score: { type: "number", description: "User score", default: 95.5 },
          status: { type: "string", description: "User status",
                    enum: ["active", "inactive", "pending"], default: "active" },
          verified: { type: "boolean", description: "Verification status", default: true } } } } },
        z.object({}).passthrough());
      return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
    });
  server.registerTool("test_elicitation_sep1330_enums", { description: "Elicitation enums" },
    async (extra) => {
      const r = await extra.sendRequest({ method: "elicitation/create", params: {
        message: "Please select options from the enum fields",
        requestedSchema: { type: "object", properties: {
          untitledSingle: { type: "string", description: "Select one option",
                            enum: ["option1", "option2", "option3"] },
          titledSingle: { type: "string", description: "Select one option with titles",
                          oneOf: [{ const: "value1", title: "First Option" },
                                  { const: "value2", title: "Second Option" },
                                  { const: "value3", title: "Third Option" }] },
          legacyEnum: { type: "string", description: "Select one option (legacy)",
                        enum: ["opt1", "opt2", "opt3"],
                        enumNames: ["Option One", "Option Two", "Option Three"] },
          untitledMulti: { type: "array", description: "Select multiple options",
                           items: { type: "string", enum: ["option1", "option2", "option3"] } },
          titledMulti: { type: "array", description: "Select multiple options with titles",
                         items: { anyOf: [{ const: "value1", title: "First Choice" },
                                          { const: "value2", title: "Second Choice" },
                                          { const: "value3", title: "Third Choice" }] } } } } } },
        z.object({}).passthrough());
      return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
    });
  // JSON Schema 2020-12 keywords must survive listing (SEP-1613): registered on the low-level
  // server's tools/list below, since the SDK's zod schemas cannot express $defs and $ref.
  const rawSchemaTool = {
    name: "json_schema_2020_12_tool", description: "Tool with JSON Schema 2020-12 features",
    inputSchema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object",
      $defs: { address: { $anchor: "address", type: "object",
                          properties: { street: { type: "string" }, city: { type: "string" } } } },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      // Keywords SEP-2106 (MCP 2026-07-28) says must reach the client unchanged.
      allOf: [{ anyOf: [{ required: ["name"] }, { required: ["address"] }] }],
      if: { properties: { name: { const: "home" } } }, then: { required: ["address"] }, else: {},
      additionalProperties: false } };
  server.registerTool("json_schema_2020_12_tool", { description: rawSchemaTool.description },
    async () => text("ok"));
  // An argument mirrored into an Mcp-Param-Region header (SEP-2243, MCP 2026-07-28): the
  // annotation is added in tools/list below, and airlockd checks the header against the body.
  server.registerTool("test_header_param", { description: "Runs a query in a region",
    inputSchema: { region: z.string().describe("Where to run it"), query: z.string().optional() } },
    async ({ region }) => text(`ran in ${region}`));

  server.registerResource("static-text", "test://static-text",
    { description: "A static text resource", mimeType: "text/plain" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain",
                                   text: "This is the content of the static text resource." }] }));
  server.registerResource("static-binary", "test://static-binary",
    { description: "A static binary resource", mimeType: "image/png" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "image/png", blob: PNG }] }));
  server.registerResource("watched-resource", "test://watched-resource",
    { description: "A resource that can be subscribed to", mimeType: "text/plain" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: "watched" }] }));
  server.registerResource("template", new ResourceTemplate("test://template/{id}/data",
    { list: undefined }), { description: "A resource template", mimeType: "application/json" },
    async (uri, { id }) => ({ contents: [{ uri: uri.href, mimeType: "application/json",
      text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }] }));
  const subscriptions = new Set();
  server.server.setRequestHandler(
    z.object({ method: z.literal("resources/subscribe"), params: z.object({ uri: z.string() }) }),
    async (req) => { subscriptions.add(req.params.uri); return {}; });
  server.server.setRequestHandler(
    z.object({ method: z.literal("resources/unsubscribe"), params: z.object({ uri: z.string() }) }),
    async (req) => { subscriptions.delete(req.params.uri); return {}; });

  server.registerPrompt("test_simple_prompt", { description: "A simple prompt" },
    async () => ({ messages: [{ role: "user", content: { type: "text",
                                                         text: "This is a simple prompt for testing." } }] }));
  server.registerPrompt("test_prompt_with_arguments", { description: "A prompt with arguments",
    argsSchema: { arg1: z.string().describe("First test argument"),
                  arg2: z.string().describe("Second test argument") } },
    async ({ arg1, arg2 }) => ({ messages: [{ role: "user", content: { type: "text",
      text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }] }));
  server.registerPrompt("test_prompt_with_embedded_resource", {
    description: "A prompt with an embedded resource",
    argsSchema: { resourceUri: z.string().describe("URI of the resource to embed") } },
    async ({ resourceUri }) => ({ messages: [
      { role: "user", content: { type: "resource", resource: { uri: resourceUri,
        mimeType: "text/plain", text: "Embedded resource content for testing." } } },
      { role: "user", content: { type: "text", text: "Please process the embedded resource above." } }] }));
  server.registerPrompt("test_prompt_with_image", { description: "A prompt with an image" },
    async () => ({ messages: [
      { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
      { role: "user", content: { type: "text", text: "Please analyze the image above." } }] }));

  // completion/complete: minimal but well-formed.
  server.server.registerCapabilities({ completions: {} });
  server.server.setRequestHandler(
    z.object({ method: z.literal("completion/complete"), params: z.any() }),
    async () => ({ completion: { values: [], total: 0, hasMore: false } }));

  // Serve the raw 2020-12 schema in tools/list.
  const listTools = server.server._requestHandlers.get("tools/list");
  server.server._requestHandlers.set("tools/list", async (req, extra) => {
    const r = await listTools(req, extra);
    r.tools = r.tools.map((t) => (t.name === rawSchemaTool.name ? rawSchemaTool : t));
    const headed = r.tools.find((t) => t.name === "test_header_param");
    if (headed) headed.inputSchema.properties.region["x-mcp-header"] = "Region";
    return r;
  });
  return server;
}

const mode = process.argv[2] ?? "stdio";
if (mode === "stdio") {
  await makeServer().connect(new StdioServerTransport());
} else if (mode === "http") {
  const port = Number(process.argv[3]);
  serveStreamableHttp({ port, makeServer, label: "conformance fixture", transport: {
    allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`],
    allowedOrigins: [`http://127.0.0.1:${port}`, `http://localhost:${port}`],
    enableDnsRebindingProtection: true } });
} else {
  console.error("usage: conformance_server.mjs stdio | http PORT");
  process.exit(2);
}
