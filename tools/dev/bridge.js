/*
 * bridge.js — the Worker that `wharf dev` runs inside workerd beside the
 * user's Worker, so that Worker's queue code runs unmodified against Wharf.
 *
 * It owns the producer translation, statelessly: the user's queue bindings
 * point here, each with ctx.props = {queue_id, queue_name}, and workerd's
 * binding protocol (POST /message, POST /batch, GET /metrics; see
 * shared/reference/workerd-queues.md) becomes Wharf REST calls through the
 * WHARF service binding. (The consumer side — Wharf's signed push batches to
 * the user's queue() — is issue 17's next step and not here yet.)
 * Runs in workerd's event loop. It fails like a Worker on Cloudflare: a
 * refused send rejects the user's promise with Wharf's error code and
 * message (CF-Queues-Error-* headers).
 */

const FORMATS = new Set(['json', 'text', 'bytes', 'v8']);

function base64FromBytes(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function bytesFromBase64(b64) {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

/* One message as Wharf's REST API takes it, from the serialized bytes the
 * binding sent and its format (v8 when the binding named none). */
function wharfMessage(bytes, format, delaySecs) {
  const contentType = format || 'v8';
  if (!FORMATS.has(contentType)) throw new QueueError(10100, `Unknown content type ${contentType}`);
  let body;
  if (contentType === 'json') body = JSON.parse(new TextDecoder().decode(bytes));
  else if (contentType === 'text') body = new TextDecoder().decode(bytes);
  else body = base64FromBytes(bytes);
  const message = { body, content_type: contentType };
  if (delaySecs !== undefined && delaySecs !== null) message.delay_seconds = Number(delaySecs);
  return message;
}

class QueueError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/* A Wharf REST call; returns the envelope's result or throws its first error. */
async function wharf(env, method, path, body) {
  const res = await env.WHARF.fetch(`http://wharf/client/v4/accounts/${env.WHARF_ACCOUNT_ID}${path}`, {
    method,
    headers: { authorization: `Bearer ${env.WHARF_API_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    throw new QueueError(15000, `Wharf answered ${res.status}: ${text.slice(0, 200)}`);
  }
  if (!envelope.success) {
    const err = envelope.errors?.[0] || {};
    throw new QueueError(err.code || 15000, err.message || `Wharf answered ${res.status}`);
  }
  return envelope.result;
}

/* workerd's camelCase metrics object from Wharf's snake_case one. */
function bindingMetrics(m = {}) {
  return {
    backlogCount: m.backlog_count ?? 0,
    backlogBytes: m.backlog_bytes ?? 0,
    oldestMessageTimestamp: m.oldest_message_timestamp_ms ?? 0,
  };
}

async function produce(request, env, queue) {
  const path = new URL(request.url).pathname;
  const base = `/queues/${queue.queue_id}`;
  const delay = request.headers.get('x-msg-delay-secs') ?? undefined;
  if (request.method === 'GET' && path === '/metrics') {
    return Response.json(bindingMetrics(await wharf(env, 'GET', `${base}/metrics`)));
  }
  let result;
  if (request.method === 'POST' && path === '/message') {
    const bytes = new Uint8Array(await request.arrayBuffer());
    const message = wharfMessage(bytes, request.headers.get('x-msg-fmt'), delay);
    result = await wharf(env, 'POST', `${base}/messages`, message);
  } else if (request.method === 'POST' && path === '/batch') {
    const { messages } = await request.json();
    const body = {
      messages: messages.map((m) => wharfMessage(bytesFromBase64(m.body), m.contentType, m.delaySecs)),
    };
    if (delay !== undefined) body.delay_seconds = Number(delay);
    result = await wharf(env, 'POST', `${base}/messages/batch`, body);
  } else {
    throw new QueueError(15000, `the queue binding sent an unknown request ${request.method} ${path}`);
  }
  return Response.json({ metadata: { metrics: bindingMetrics(result?.metadata?.metrics) } });
}

function errorResponse(err) {
  const code = err instanceof QueueError ? err.code : 15000;
  return new Response(null, {
    status: 400,
    headers: { 'cf-queues-error-code': String(code), 'cf-queues-error-cause': err.message },
  });
}

export default {
  async fetch(request, env, ctx) {
    try {
      if (ctx.props?.queue_id) return await produce(request, env, ctx.props);
      return new Response('not found', { status: 404 });
    } catch (err) {
      return errorResponse(err);
    }
  },
};
