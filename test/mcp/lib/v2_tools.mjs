// Tools shared by the SDK v2 test servers (v2_server.mjs over stdio, v2_http_server.mjs over
// HTTP): JSON Schema helpers, and `confirm`, which asks for input the 2026-07-28 way — an
// input_required result on the first round, the answer on the retry.
import { acceptedContent, fromJsonSchema, inputRequired } from "@modelcontextprotocol/server";

// JSON Schema, not zod: the SDK v2 wants zod 4, and this project's zod is 3.
export const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: "object", properties, required });
const okSchema = object({ ok: { type: "boolean" } });

export function registerConfirm(server) {
  server.registerTool("confirm", { description: "Asks the user to confirm, then answers",
                                   inputSchema: object({ what: { type: "string" } }) },
    async ({ what }, ctx) => {
      const answer = acceptedContent(ctx.mcpReq.inputResponses, "ok", okSchema);
      if (answer === undefined) {
        return inputRequired({ inputRequests: { ok: inputRequired.elicit({
          message: `Go ahead with ${what}?`, requestedSchema: okSchema }) } });
      }
      return { content: [{ type: "text", text: answer.ok ? `done: ${what}` : `not done: ${what}` }] };
    });
}
