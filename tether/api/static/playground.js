// Tether playground: streams /v1/chat/completions token by token, tints each token by its
// probability (alternatives on hover or tap), and shows the last answer's chunks as sent.
// Plain browser JavaScript, no build step and no dependencies.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'tether.apiKey'; // the session's tab only: never written to disk

const state = {
  model: null,
  history: [], // the conversation as sent: {role, content}
  controller: null, // AbortController of the answer in flight
};

class ApiError extends Error {}

// --- the server ------------------------------------------------------------------------------

function headers() {
  const result = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

function describe(status, body, responseHeaders) {
  const error = (body && body.error) || {};
  const message = error.message || `HTTP ${status}`;
  const hints = {
    400: 'The server refused the request',
    401: 'The server wants an API key (top right)',
    413: 'The request is too large',
    429: 'Rate limited',
    503: 'The server is busy, loading or shutting down',
  };
  let text = `${status} — ${hints[status] || 'Server error'}: ${message}`;
  if (error.param) text += ` (field: ${error.param})`;
  const retry = responseHeaders && responseHeaders.get('retry-after');
  if (retry) text += ` Retry after ${retry} s.`;
  return text;
}

async function loadModel() {
  try {
    const response = await fetch('/v1/models', { headers: headers() });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $('model').textContent = '(no access)';
      showError(describe(response.status, body, response.headers));
      return;
    }
    const card = (Array.isArray(body) ? body : body.data)[0];
    state.model = card.id;
    $('model').textContent = card.id;
    hideError();
    if (card.sampling_defaults) {
      const pairs = Object.entries(card.sampling_defaults).map(([k, v]) => `${k} ${v}`);
      $('defaults').textContent = `Empty fields use the server's defaults: ${pairs.join(', ')}.`;
    }
  } catch (error) {
    showError(`Cannot reach the server: ${error.message}`);
  }
}

// --- the request -----------------------------------------------------------------------------

function numberField(id, parse) {
  const text = $(id).value.trim();
  if (text === '') return null;
  const value = parse(text);
  if (Number.isNaN(value)) throw new ApiError(`${id}: not a number`);
  return value;
}

function responseFormat() {
  const kind = $('format').value;
  const spec = $('format-spec').value.trim();
  if (kind === 'text') return null;
  if (kind === 'json_object') return { type: 'json_object' };
  if (kind === 'regex') return { type: 'regex', pattern: spec };
  let schema;
  try {
    schema = JSON.parse(spec || '{}');
  } catch (error) {
    throw new ApiError(`The JSON schema does not parse: ${error.message}`);
  }
  return { type: 'json_schema', json_schema: { name: 'playground', schema } };
}

function requestBody() {
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...state.history);
  const body = {
    model: state.model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    // Together's integer form: every chunk carries the token's logprob and its alternatives.
    logprobs: numberField('top_logprobs', (t) => parseInt(t, 10)) ?? 0,
  };
  for (const [id, parse] of [
    ['temperature', parseFloat],
    ['top_p', parseFloat],
    ['top_k', (t) => parseInt(t, 10)],
    ['min_p', parseFloat],
    ['max_tokens', (t) => parseInt(t, 10)],
    ['seed', (t) => parseInt(t, 10)],
  ]) {
    const value = numberField(id, parse);
    if (value !== null) body[id] = value;
  }
  const stop = $('stop_strings').value.split('\n').filter((line) => line !== '');
  if (stop.length) body.stop = stop;
  const format = responseFormat();
  if (format) body.response_format = format;
  if ($('ignore_eos').checked) body.ignore_eos = true;
  return body;
}

// --- the stream ------------------------------------------------------------------------------

// Server-sent events as Together sends them: `data: <json>` events, `:` comments
// (keep-alives), then `data: [DONE]`.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      yield buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
    }
  }
}

async function ask(text) {
  hideError();
  // This conversation: "New chat" while an answer streams must not receive its end.
  const history = state.history;
  let body;
  try {
    history.push({ role: 'user', content: text });
    body = requestBody();
  } catch (error) {
    history.pop();
    showError(error.message);
    return;
  }
  addMessage('user', text);
  const bubble = addMessage('assistant', '');
  const wire = [];
  $('wire').textContent = '';
  const answer = { text: '', tokens: 0, usage: null, finish: null, first: null, failed: false };
  const started = performance.now();
  state.controller = new AbortController();
  setBusy(true);
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers(),
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      throw new ApiError(describe(response.status, error, response.headers));
    }
    for await (const event of events(response)) {
      wire.push(event);
      $('wire').textContent += `${event}\n\n`;
      if (!event.startsWith('data: ')) continue; // a keep-alive comment
      const data = event.slice(6);
      if (data === '[DONE]') break;
      onChunk(JSON.parse(data), bubble, answer);
    }
  } catch (error) {
    if (error.name === 'AbortError') answer.finish = 'stopped';
    else {
      answer.failed = true;
      showError(error.message);
    }
  } finally {
    state.controller = null;
    setBusy(false);
    if (answer.failed && !answer.text) history.pop(); // the turn never happened
    else history.push({ role: 'assistant', content: answer.text });
    showStats(bubble, answer, started);
  }
}

function onChunk(chunk, bubble, answer) {
  if (chunk.error) throw new ApiError(`The answer failed: ${chunk.error.message}`);
  if (chunk.usage) answer.usage = chunk.usage;
  const choice = chunk.choices && chunk.choices[0];
  if (!choice) return;
  const delta = choice.delta || {};
  const reasoning = delta.reasoning || '';
  const content = delta.content || '';
  for (const [piece, thinking] of [[reasoning, true], [content, false]]) {
    if (!piece) continue;
    if (answer.first === null) answer.first = performance.now();
    answer.tokens += 1;
    if (!thinking) answer.text += piece;
    addToken(bubble.querySelector('.text'), piece, chunk.token, choice.top_logprobs, thinking);
  }
  if (choice.finish_reason) answer.finish = choice.finish_reason;
}

// --- the page --------------------------------------------------------------------------------

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  div.appendChild(body);
  $('messages').appendChild(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

function addToken(container, text, token, alternatives, thinking) {
  const span = document.createElement('span');
  span.className = thinking ? 'tok reasoning' : 'tok';
  span.textContent = text;
  if (token && typeof token.logprob === 'number') {
    const p = Math.exp(token.logprob);
    // Red for unlikely, green for likely tokens.
    span.style.background = `hsla(${Math.round(120 * p)}, 75%, 55%, 0.35)`;
    span.dataset.logprob = String(token.logprob);
    span.tokenInfo = { text: token.text, logprob: token.logprob, alternatives: alternatives || {} };
  }
  if (thinking) span.style.fontStyle = 'italic';
  container.appendChild(span);
}

function percent(logprob) {
  return `${(100 * Math.exp(logprob)).toFixed(2).padStart(6)}%`;
}

function showTooltip(span, x, y) {
  const info = span.tokenInfo;
  if (!info) return;
  const tip = $('tooltip');
  tip.textContent = '';
  const chosen = document.createElement('div');
  chosen.className = 'chosen';
  chosen.textContent = `${percent(info.logprob)}  ${JSON.stringify(info.text)}  (sampled)`;
  tip.appendChild(chosen);
  const ranked = Object.entries(info.alternatives).sort((a, b) => b[1] - a[1]);
  for (const [text, logprob] of ranked) {
    const row = document.createElement('div');
    row.className = 'alternative';
    row.textContent = `${percent(logprob)}  ${JSON.stringify(text)}`;
    tip.appendChild(row);
  }
  tip.hidden = false;
  tip.style.left = `${Math.min(x + 12, window.innerWidth - tip.offsetWidth - 8)}px`;
  tip.style.top = `${y + 14}px`;
}

function showStats(bubble, answer, started) {
  const stats = document.createElement('span');
  stats.className = 'stats';
  const parts = [];
  if (answer.first !== null) {
    parts.push(`first token ${Math.round(answer.first - started)} ms`);
    const seconds = (performance.now() - answer.first) / 1000;
    const tokens = answer.usage ? answer.usage.completion_tokens : answer.tokens;
    if (tokens > 1 && seconds > 0) parts.push(`${((tokens - 1) / seconds).toFixed(1)} tokens/s`);
    parts.push(`${tokens} tokens`);
  }
  parts.push(answer.finish || 'no answer');
  stats.textContent = parts.join(' · ');
  bubble.appendChild(stats);
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
}

function hideError() {
  $('error').hidden = true;
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
  document.body.dataset.busy = busy ? 'true' : 'false';
}

// --- wiring ----------------------------------------------------------------------------------

$('api-key').value = sessionStorage.getItem(KEY_STORE) || '';
$('api-key').addEventListener('input', () => sessionStorage.setItem(KEY_STORE, $('api-key').value));
$('api-key').addEventListener('change', loadModel);

$('ask').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || state.controller) return;
  $('prompt').value = '';
  if (!state.model) {
    loadModel().then(() => state.model && ask(text));
    return;
  }
  ask(text);
});
$('prompt').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('ask').requestSubmit();
  }
});
$('stop').addEventListener('click', () => state.controller && state.controller.abort());
$('reset').addEventListener('click', () => {
  if (state.controller) state.controller.abort();
  state.history = [];
  $('messages').textContent = '';
  $('wire').textContent = '';
  hideError();
});
$('format').addEventListener('change', () => {
  $('format-spec-label').hidden = !['json_schema', 'regex'].includes($('format').value);
});

$('messages').addEventListener('mouseover', (event) => {
  if (event.target.classList.contains('tok')) showTooltip(event.target, event.clientX, event.clientY);
});
$('messages').addEventListener('mouseout', (event) => {
  if (event.target.classList.contains('tok')) $('tooltip').hidden = true;
});
$('messages').addEventListener('click', (event) => {
  // A tap on a touch screen shows the alternatives too.
  if (event.target.classList.contains('tok')) {
    const box = event.target.getBoundingClientRect();
    showTooltip(event.target, box.left, box.bottom);
  }
});

setBusy(false);
loadModel();
