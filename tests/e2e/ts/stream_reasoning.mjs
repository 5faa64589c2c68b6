// Streams one chat from a reasoning model with the TypeScript `together-ai` SDK, as one JSON
// line: {"reasoning", "content", "reasoning_tokens"}. The history makes the small model close
// its reasoning (see tests/e2e/test_reasoning.py).
// Env: TOGETHER_BASE_URL (ending in /v1), TOGETHER_API_KEY, TETHER_MODEL.
import Together from 'together-ai';

const client = new Together({
  apiKey: process.env.TOGETHER_API_KEY ?? 'unused',
  baseURL: process.env.TOGETHER_BASE_URL,
  maxRetries: 0,
  timeout: 60_000,
});

const stream = await client.chat.completions.create({
  model: process.env.TETHER_MODEL,
  messages: [
    { role: 'user', content: 'What is 1+1?' },
    { role: 'assistant', content: '2', reasoning: 'The user adds one and one.' },
    { role: 'user', content: 'What is 3+3?' },
    { role: 'assistant', content: '6', reasoning: 'The user adds three and three.' },
    { role: 'user', content: 'What is 2+2?' },
  ],
  temperature: 0,
  max_tokens: 14,
  stream: true,
});

let reasoning = '';
let content = '';
let usage = null;
for await (const chunk of stream) {
  const delta = chunk.choices[0]?.delta;
  reasoning += delta?.reasoning ?? '';
  content += delta?.content ?? '';
  usage = chunk.usage ?? usage;
}
const reasoningTokens = usage?.completion_tokens_details?.reasoning_tokens ?? -1;
console.log(JSON.stringify({ reasoning, content, reasoning_tokens: reasoningTokens }));
