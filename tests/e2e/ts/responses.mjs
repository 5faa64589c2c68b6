// The Responses API with the TypeScript `openai` SDK: a plain response, a streamed one, a
// function tool round trip through previous_response_id, and a background stream that is
// dropped after a few events and resumed. One JSON line out.
// Env: TOGETHER_BASE_URL (the server's /v1 URL), TETHER_MODEL.
import OpenAI from 'openai';

const client = new OpenAI({
  apiKey: 'unused',
  baseURL: process.env.TOGETHER_BASE_URL,
  maxRetries: 0,
  timeout: 60_000,
});
const model = process.env.TETHER_MODEL;

const plain = await client.responses.create({ model, input: 'Hello!', max_output_tokens: 8 });
const retrieved = await client.responses.retrieve(plain.id);

let streamed = '';
let streamedFinal = null;
const stream = await client.responses.create({
  model, input: 'Name a colour.', max_output_tokens: 8, stream: true,
});
for await (const event of stream) {
  if (event.type === 'response.output_text.delta') streamed += event.delta;
  if (event.type === 'response.incomplete' || event.type === 'response.completed') {
    streamedFinal = event.response.output_text ?? event.response.output[0].content[0].text;
  }
}

const weather = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const asked = await client.responses.create({
  model, input: 'What is the weather in Paris?', tools: [weather], tool_choice: 'required',
});
const call = asked.output.find((item) => item.type === 'function_call');
const answered = await client.responses.create({
  model,
  previous_response_id: asked.id,
  input: [{ type: 'function_call_output', call_id: call.call_id, output: 'Sunny' }],
  tools: [weather],
  max_output_tokens: 8,
});

const background = await client.responses.create({
  model, input: 'Tell me a story.', max_output_tokens: 32, background: true, stream: true,
});
const seen = [];
for await (const event of background) {
  seen.push(event);
  if (seen.length === 6) break; // leaving the loop drops the connection
}
const id = seen[0].response.id;
const last = seen[seen.length - 1].sequence_number;
const rest = await client.responses.retrieve(id, { stream: true, starting_after: last });
const events = [...seen];
for await (const event of rest) events.push(event);
const resumed = events
  .filter((event) => event.type === 'response.output_text.delta')
  .map((event) => event.delta)
  .join('');
const stored = await client.responses.retrieve(id);

console.log(JSON.stringify({
  plain: plain.output_text,
  retrieved: retrieved.output_text,
  streamed,
  streamed_final: streamedFinal,
  resumed,
  resumed_final: stored.output_text,
  tool: call.name,
  tool_arguments: JSON.parse(call.arguments),
  answered_previous: answered.previous_response_id === asked.id,
  answered_cached: answered.usage.input_tokens_details.cached_tokens,
}));
