/*
 * queue.mjs — the producer: a Queue is what a Worker knows as its queue
 * binding (`env.MY_QUEUE.send(...)`), talking to Wharf's REST API.
 *
 * The queue is addressed by name, as in wrangler.toml; its id is looked up
 * once (GET …/queues?name=) and kept. Content types follow the Workers API:
 * "json" (the default; any JSON-serializable value), "text" (a string) and
 * "bytes" (an ArrayBuffer or typed array, sent base64) and "v8" (V8's
 * structured clone, what a Worker's send() writes by default before
 * 2024-03-18: Dates, Maps, Sets, typed arrays…), so a Node producer and a
 * Worker consumer (wharf dev) can share a queue. Limits are the server's to
 * check; its error message is thrown as is.
 */
import v8 from 'node:v8';

const DEFAULT_URL = 'http://127.0.0.1:8787';
const MAX_DELAY_SECONDS = 43200;

function apiRoot(baseURL) {
  const root = String(baseURL).replace(/\/+$/, '');
  return root.endsWith('/client/v4') ? root : `${root}/client/v4`;
}

function checkDelay(delaySeconds, what) {
  if (delaySeconds === undefined) return;
  if (!Number.isInteger(delaySeconds) || delaySeconds < 0 || delaySeconds > MAX_DELAY_SECONDS) {
    throw new RangeError(`${what}: delaySeconds must be an integer from 0 to ${MAX_DELAY_SECONDS}`);
  }
}

/* The bytes workerd writes and reads: the plain v8.Serializer, not
 * v8.serialize(), whose Node-only host-object encoding of typed arrays and
 * Buffers a Worker cannot read. Throws (DataCloneError) on functions and
 * the like, before anything is sent. */
function v8Serialize(body) {
  const serializer = new v8.Serializer();
  serializer.writeHeader();
  serializer.writeValue(body);
  return serializer.releaseBuffer();
}

/* One message as the REST API takes it: {body, content_type}. */
function encodeMessage(body, contentType = 'json') {
  switch (contentType) {
    case 'json':
      if (body === undefined || typeof body === 'function' || typeof body === 'symbol') {
        throw new TypeError('a json message needs a JSON-serializable body');
      }
      JSON.stringify(body); /* throws on cycles and BigInt, before anything is sent */
      return { body, content_type: 'json' };
    case 'text':
      if (typeof body !== 'string') throw new TypeError('a text message needs a string body');
      return { body, content_type: 'text' };
    case 'bytes': {
      let bytes;
      if (body instanceof ArrayBuffer) bytes = new Uint8Array(body);
      else if (ArrayBuffer.isView(body)) bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
      else throw new TypeError('a bytes message needs an ArrayBuffer or a typed array body');
      return { body: Buffer.from(bytes).toString('base64'), content_type: 'bytes' };
    }
    case 'v8':
      return { body: v8Serialize(body).toString('base64'), content_type: 'v8' };
    default:
      throw new TypeError(`unknown contentType ${JSON.stringify(contentType)}: use json, text, bytes or v8`);
  }
}

export class Queue {
  /* Each option falls back to the environment: WHARF_URL, WHARF_ACCOUNT_ID,
   * WHARF_API_TOKEN. Without an account id the token's one account is used. */
  constructor({ baseURL, accountId, apiToken, queueName } = {}) {
    if (!queueName) throw new TypeError('Queue needs a queueName');
    this.apiURL = apiRoot(baseURL ?? process.env.WHARF_URL ?? DEFAULT_URL);
    this.accountId = accountId ?? process.env.WHARF_ACCOUNT_ID ?? '';
    this.apiToken = apiToken ?? process.env.WHARF_API_TOKEN ?? '';
    this.queueName = queueName;
    this.queuePath = null;
  }

  async request(method, path, body) {
    const headers = { 'content-type': 'application/json' };
    if (this.apiToken) headers.authorization = `Bearer ${this.apiToken}`;
    const res = await fetch(this.apiURL + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${path}: HTTP ${res.status}, not a JSON envelope: ${text.slice(0, 200)}`);
    }
    if (!res.ok || envelope.success === false) {
      const first = envelope.errors?.[0];
      const err = new Error(first ? `${first.message} [code: ${first.code}]` : `HTTP ${res.status}`);
      err.status = res.status;
      err.code = first?.code;
      throw err;
    }
    return envelope.result;
  }

  async resolve() {
    if (this.queuePath) return this.queuePath;
    if (!this.accountId) {
      const memberships = await this.request('GET', '/memberships');
      if (memberships?.length !== 1) {
        throw new Error('the token sees no account or several: set accountId or WHARF_ACCOUNT_ID');
      }
      this.accountId = memberships[0].account.id;
    }
    const account = `/accounts/${encodeURIComponent(this.accountId)}`;
    const found = await this.request('GET', `${account}/queues?name=${encodeURIComponent(this.queueName)}`);
    if (!found?.length) {
      const err = new Error(`queue "${this.queueName}" not found [code: 11000]`);
      err.code = 11000;
      throw err;
    }
    this.queuePath = `${account}/queues/${found[0].queue_id}`;
    return this.queuePath;
  }

  /* send(body, {contentType, delaySeconds}) — resolves when the server has
   * stored the message. */
  async send(body, { contentType, delaySeconds } = {}) {
    checkDelay(delaySeconds, 'send');
    const message = encodeMessage(body, contentType);
    if (delaySeconds !== undefined) message.delay_seconds = delaySeconds;
    await this.request('POST', `${await this.resolve()}/messages`, message);
  }

  /* sendBatch([{body, contentType, delaySeconds}], {delaySeconds}) — all
   * stored or none. */
  async sendBatch(messages, { delaySeconds } = {}) {
    checkDelay(delaySeconds, 'sendBatch');
    const encoded = Array.from(messages, (m, i) => {
      checkDelay(m.delaySeconds, `message ${i}`);
      const message = encodeMessage(m.body, m.contentType);
      if (m.delaySeconds !== undefined) message.delay_seconds = m.delaySeconds;
      return message;
    });
    const request = { messages: encoded };
    if (delaySeconds !== undefined) request.delay_seconds = delaySeconds;
    await this.request('POST', `${await this.resolve()}/messages/batch`, request);
  }
}
