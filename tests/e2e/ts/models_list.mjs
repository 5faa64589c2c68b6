// Lists models with the TypeScript `together-ai` SDK and prints them as one JSON line:
// [{"id", "context_length"}]. Env: TOGETHER_BASE_URL (ending in /v1), TOGETHER_API_KEY.
import Together from 'together-ai';

const client = new Together({
  apiKey: process.env.TOGETHER_API_KEY ?? 'unused',
  baseURL: process.env.TOGETHER_BASE_URL,
  maxRetries: 0,
  timeout: 60_000,
});

const models = await client.models.list();
console.log(JSON.stringify(models.map((m) => ({ id: m.id, context_length: m.context_length }))));
