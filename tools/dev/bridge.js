/*
 * bridge.js — the Worker that `wharf dev` runs inside workerd beside the
 * user's Worker, so that Worker's queue code runs unmodified against Wharf.
 *
 * It owns both translations, statelessly:
 * - Producer: the user's queue bindings point here, each with ctx.props =
 *   {queue_id, queue_name}, and workerd's binding protocol (POST /message,
 *   POST /batch, GET /metrics; see shared/reference/workerd-queues.md)
 *   becomes Wharf REST calls through the WHARF service binding. It fails
 *   like a Worker on Cloudflare: a refused send rejects the user's promise
 *   with Wharf's error code and message (CF-Queues-Error-* headers).
 * - Consumer: it is the push endpoint Wharf POSTs batches to (the "queue"
 *   socket, no props; docs/workers.md). It checks X-Wharf-Signature against
 *   WHARF_SECRET, runs the user's queue() through the USER service binding's
 *   queue() method (workerd's own QueueEvent, so ack/retry/ackAll/retryAll
 *   and ctx.waitUntil are workerd's code; needs service_binding_extra_handlers
 *   and --experimental) and turns the event's result into Wharf's reply.
 * Runs in workerd's event loop.
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

/* The signature over the exact bytes received, checked in constant time by
 * WebCrypto's HMAC verify. */
async function signatureValid(env, raw, header) {
  const hex = /^sha256=([0-9a-f]{64})$/.exec(header || '')?.[1];
  if (!hex) return false;
  const mac = new Uint8Array(32);
  for (let i = 0; i < 32; i++) mac[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(env.WHARF_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'verify',
  ]);
  return crypto.subtle.verify('HMAC', key, mac, raw);
}

/* One pushed message as workerd's queue() call takes it: the body decoded
 * per its content type as Cloudflare hands it to queue() (json a value, text
 * a string, bytes an ArrayBuffer); v8 bytes go as serializedBody, which
 * workerd deserializes itself, so they reach the handler exactly as sent. */
function handlerMessage(m) {
  const message = { id: m.id, timestamp: new Date(m.timestamp_ms), attempts: m.attempts };
  if (m.content_type === 'v8') message.serializedBody = bytesFromBase64(m.body);
  else if (m.content_type === 'bytes') message.body = bytesFromBase64(m.body).buffer;
  else message.body = m.body;
  return message;
}

/* batch.metadata: the queue's backlog, as Cloudflare gives it. A queue this
 * Worker does not consume by config gets zeros rather than a failed batch. */
async function batchMetadata(env, queueName) {
  const id = JSON.parse(env.WHARF_QUEUES)[queueName];
  return { metrics: bindingMetrics(id ? await wharf(env, 'GET', `/queues/${id}/metrics`) : {}) };
}

/* workerd's QueueEvent result as Wharf's reply (docs/workers.md): the
 * explicit per-message calls, ackAll/retryAll, and the outcome as the
 * status, so Wharf applies Cloudflare's precedence to exactly what the
 * handler did. workerd already keeps a message's first call only. */
function wharfReply(result) {
  const delay = (d) => (d === undefined || d === null ? {} : { delay_seconds: d });
  const body = {
    acks: result.explicitAcks || [],
    retries: (result.retryMessages || []).map((r) => ({ id: r.msgId, ...delay(r.delaySeconds) })),
    ack_all: Boolean(result.ackAll),
    retry_all: result.retryBatch?.retry ? delay(result.retryBatch.delaySeconds) : null,
  };
  return Response.json(body, { status: result.outcome === 'ok' ? 200 : 500 });
}

async function consume(request, env) {
  if (request.method !== 'POST') return new Response('method not allowed', { status: 405 });
  const raw = new Uint8Array(await request.arrayBuffer());
  if (!(await signatureValid(env, raw, request.headers.get('x-wharf-signature')))) {
    return new Response('bad signature', { status: 401 });
  }
  const batch = JSON.parse(new TextDecoder().decode(raw));
  const metadata = await batchMetadata(env, batch.queue);
  const result = await env.USER.queue(batch.queue, batch.messages.map(handlerMessage), metadata);
  return wharfReply(result);
}

export default {
  async fetch(request, env, ctx) {
    if (!ctx.props?.queue_id) return consume(request, env);
    try {
      return await produce(request, env, ctx.props);
    } catch (err) {
      return errorResponse(err);
    }
  },
};
