// The reference environment worker: the official TypeScript SDK's EnvironmentWorker with its
// own agent toolset and one custom tool, run (under Node 22) against the API named by
// ANTHROPIC_BASE_URL. Tests compare what it posts with what sandbox-agent worker posts.
import Anthropic from '@anthropic-ai/sdk';
import { betaTool } from '@anthropic-ai/sdk/helpers/beta/json-schema';
import { betaAgentToolset20260401 } from '@anthropic-ai/sdk/tools/agent-toolset/node';

const client = new Anthropic({ apiKey: null, authToken: null, baseURL: process.env.ANTHROPIC_BASE_URL,
                               logLevel: 'warn' });
const greet = betaTool({
  name: 'greet',
  description: 'Greets someone',
  inputSchema: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'] },
  run: async ({ who }) => `hello ${who}`,
});
const worker = client.beta.environments.work.worker({
  environmentId: process.env.ANTHROPIC_ENVIRONMENT_ID,
  environmentKey: process.env.ANTHROPIC_ENVIRONMENT_KEY,
  workdir: process.env.WORKDIR,
  maxIdleMs: Number(process.env.MAX_IDLE_MS ?? 2000),
  memorySyncIntervalMs: null,
  tools: (ctx) => [...betaAgentToolset20260401(ctx), greet],
});
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
await worker.run(stop.signal);
