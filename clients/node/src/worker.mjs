/*
 * worker.mjs — serveQueueHandler(): a Workers `queue(batch, env, ctx)`
 * handler as a Wharf push endpoint (docs/workers.md).
 *
 * Wharf POSTs a signed batch; this module checks the signature over the raw
 * bytes (constant time; 401 otherwise, and the handler is not called),
 * builds the MessageBatch and Message objects Workers code expects, runs the
 * handler, waits for ctx.waitUntil() promises, and answers with the
 * decisions under the Workers precedence: per message the first of
 * ack()/retry() wins; a per-message call beats ackAll()/retryAll(); the
 * first of those two wins over the other. The reply lists every decided
 * message, precedence already applied. A handler that resolves is a success
 * (200: undecided messages are acked); one that throws or rejects is a
 * failed invocation (500: undecided messages are retried, decided ones keep
 * their decision).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import v8 from 'node:v8';

const MAX_BODY = 32 * 1024 * 1024;
const MAX_DELAY_SECONDS = 43200;

export function signatureValid(secret, raw, header) {
  const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(raw).digest('hex'));
  const given = Buffer.from(String(header ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function retryDelay(options) {
  const delay = options?.delaySeconds;
  if (delay === undefined) return undefined;
  if (!Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_SECONDS) {
    throw new RangeError(`delaySeconds must be an integer from 0 to ${MAX_DELAY_SECONDS}`);
  }
  return delay;
}

/* The body as Workers delivers it for each content type. */
function decodeBody(message) {
  switch (message.content_type) {
    case 'text':
      return message.body;
    case 'bytes': {
      const bytes = Buffer.from(message.body, 'base64');
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    }
    case 'v8': {
      const bytes = Buffer.from(message.body, 'base64');
      try {
        return v8.deserialize(bytes);
      } catch {
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      }
    }
    default:
      return message.body; /* json: already a JSON value */
  }
}

class Message {
  #decision = null;

  constructor(wire) {
    this.id = wire.id;
    this.timestamp = new Date(wire.timestamp_ms);
    this.body = decodeBody(wire);
    this.attempts = wire.attempts;
  }

  ack() {
    this.#decision ??= { ack: true };
  }

  /* retry({delaySeconds}); other options the seeds pass (maxRetries, delay)
   * are not part of the Workers API and are ignored. */
  retry(options) {
    const delaySeconds = retryDelay(options);
    this.#decision ??= { ack: false, delaySeconds };
  }

  get decision() {
    return this.#decision;
  }
}

class MessageBatch {
  #all = null;

  constructor(wire) {
    this.queue = wire.queue;
    this.messages = wire.messages.map((m) => new Message(m));
  }

  ackAll() {
    this.#all ??= { ack: true };
  }

  retryAll(options) {
    const delaySeconds = retryDelay(options);
    this.#all ??= { ack: false, delaySeconds };
  }

  reply() {
    const acks = [];
    const retries = [];
    for (const message of this.messages) {
      const decision = message.decision ?? this.#all;
      if (!decision) continue;
      if (decision.ack) acks.push(message.id);
      else retries.push(decision.delaySeconds === undefined ? { id: message.id } : { id: message.id, delay_seconds: decision.delaySeconds });
    }
    return { acks, retries };
  }
}

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/* Runs one invocation; returns [status, reply]. */
async function invoke(queue, wire, env, onError) {
  const batch = new MessageBatch(wire);
  const pending = [];
  const ctx = {
    waitUntil(promise) {
      pending.push(Promise.resolve(promise));
    },
    passThroughOnException() {},
  };
  let status = 200;
  try {
    await queue(batch, env, ctx);
  } catch (error) {
    status = 500;
    onError(error, batch);
  }
  await Promise.allSettled(pending);
  return [status, batch.reply()];
}

/*
 * serveQueueHandler(worker, {port, host, secret, env, onError})
 *   worker:  a Worker module's default export ({ async queue(batch, env, ctx) })
 *            or the queue function itself.
 *   port:    default 0 (any free port); host: default '127.0.0.1'.
 *   secret:  the signing secret of `wharf workers register`; default
 *            process.env.WHARF_WORKER_SECRET.
 *   env:     the handler's second argument (e.g. { MY_QUEUE: new Queue(…) }).
 *   onError: called with (error, batch) when the handler throws; by default
 *            the error is logged, as the Workers runtime does.
 * Resolves, once listening, to { port, url, close() }.
 */
export async function serveQueueHandler(worker, options = {}) {
  const queue = typeof worker === 'function' ? worker : worker?.queue?.bind(worker);
  if (typeof queue !== 'function') throw new TypeError('serveQueueHandler needs a queue(batch, env, ctx) handler');
  const secret = options.secret ?? process.env.WHARF_WORKER_SECRET;
  if (!secret) throw new TypeError('serveQueueHandler needs the signing secret (option or WHARF_WORKER_SECRET)');
  const env = options.env ?? {};
  const host = options.host ?? '127.0.0.1';
  const onError = options.onError ?? ((error) => console.error('queue handler failed:', error));

  const server = http.createServer(async (req, res) => {
    if (req.method !== 'POST') return answer(res, 405, { error: 'a worker only accepts POST' });
    const raw = await readBody(req);
    if (raw === null) return answer(res, 413, { error: 'batch too large' });
    if (!signatureValid(secret, raw, req.headers['x-wharf-signature'])) {
      return answer(res, 401, { error: 'bad or missing X-Wharf-Signature' });
    }
    let wire;
    try {
      wire = JSON.parse(raw.toString('utf8'));
    } catch {
      wire = null;
    }
    if (typeof wire?.queue !== 'string' || !Array.isArray(wire.messages)) {
      return answer(res, 400, { error: 'not a Wharf batch' });
    }
    const [status, reply] = await invoke(queue, wire, env, onError);
    answer(res, status, reply);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
