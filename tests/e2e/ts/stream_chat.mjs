// Streams one chat with the TypeScript `together-ai` SDK and prints what a user would see,
// as one JSON line: {"text", "finish_reason", "chunks", "usage"}.
// Env: TOGETHER_BASE_URL (ending in /v1, as this SDK expects), TOGETHER_API_KEY, TETHER_MODEL.
import Together from 'together-ai';

const client = new Together({
  apiKey: process.env.TOGETHER_API_KEY ?? 'unused',
  baseURL: process.env.TOGETHER_BASE_URL,
  maxRetries: 0,
  timeout: 60_000,
});

const stream = await client.chat.completions.create({
  model: process.env.TETHER_MODEL,
  messages: [{ role: 'user', content: 'Name three colours.' }],
  max_tokens: 12,
  stream: true,
});

let text = '';
let finishReason = null;
let chunks = 0;
let usage = null;
for await (const chunk of stream) {
  chunks += 1;
  const choice = chunk.choices[0];
  text += choice?.delta?.content ?? '';
  finishReason = choice?.finish_reason ?? finishReason;
  usage = chunk.usage ?? usage;
}
console.log(JSON.stringify({ text, finish_reason: finishReason, chunks, usage }));
