/*
 * worker.test.mjs — serveQueueHandler() without a Wharf server: this file
 * plays the server, signing batches itself, and checks the endpoint's
 * answers: signature checks (401, handler not called), the MessageBatch and
 * Message objects (decoded bodies per content type, Date timestamps), the
 * Workers precedence in the reply, failed invocations (500 with the explicit
 * decisions), ctx.waitUntil awaited before the reply, and bad requests.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { serveQueueHandler } from '../src/index.mjs';

const SECRET = 'ab'.repeat(32);
const servers = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(worker, options = {}) {
  const s = await serveQueueHandler(worker, { secret: SECRET, onError: () => {}, ...options });
  servers.push(s);
  return s;
}

function wireBatch(n, queue = 'q') {
  return {
    queue,
    batch_id: 'b'.repeat(32),
    messages: Array.from({ length: n }, (_, i) => ({
      id: `m${i}`, timestamp_ms: 1_700_000_000_000 + i, attempts: i + 1, content_type: 'json', body: { i },
    })),
  };
}

async function post(s, batch, { secret = SECRET, method = 'POST', raw } = {}) {
  const body = raw ?? JSON.stringify(batch);
  const headers = { 'content-type': 'application/json' };
  if (secret) headers['x-wharf-signature'] = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
  const res = await fetch(s.url, { method, headers, body: method === 'POST' ? body : undefined });
  return { status: res.status, json: await res.json() };
}

describe('serveQueueHandler', () => {
  test('a bad or missing signature is a 401 and the handler is not called', async () => {
    let calls = 0;
    const s = await serve({ async queue() { calls++; } });
    assert.equal((await post(s, wireBatch(1), { secret: SECRET + 'x' })).status, 401);
    assert.equal((await post(s, wireBatch(1), { secret: null })).status, 401);
    assert.equal(calls, 0);
    assert.equal((await post(s, wireBatch(1))).status, 200);
    assert.equal(calls, 1);
  });

  test('messages look like Workers messages, bodies decoded per content type', async () => {
    let seen;
    const s = await serve({ async queue(batch, env) { seen = { batch, env }; } }, { env: { X: 1 } });
    const wire = {
      queue: 'images', batch_id: 'b',
      messages: [
        { id: 'a', timestamp_ms: 1_700_000_000_123, attempts: 2, content_type: 'json', body: { k: [1] } },
        { id: 'b', timestamp_ms: 5, attempts: 1, content_type: 'text', body: 'hi' },
        { id: 'c', timestamp_ms: 5, attempts: 1, content_type: 'bytes', body: Buffer.from([0, 255]).toString('base64') },
      ],
    };
    const r = await post(s, wire);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { acks: [], retries: [] });
    const { batch, env } = seen;
    assert.deepEqual(env, { X: 1 });
    assert.equal(batch.queue, 'images');
    const [a, b, c] = batch.messages;
    assert.equal(a.id, 'a');
    assert.ok(a.timestamp instanceof Date);
    assert.equal(a.timestamp.getTime(), 1_700_000_000_123);
    assert.equal(a.attempts, 2);
    assert.deepEqual(a.body, { k: [1] });
    assert.equal(b.body, 'hi');
    assert.ok(c.body instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(c.body)], [0, 255]);
  });

  test('precedence: first call per message wins, per-message beats batch-level', async () => {
    const s = await serve({
      async queue(batch) {
        const [m0, m1, m2] = batch.messages;
        m0.ack();
        m0.retry({ delaySeconds: 9 });
        m1.retry({ delaySeconds: 5 });
        m1.ack();
        m2.retry();
        batch.retryAll({ delaySeconds: 30 });
        batch.ackAll();
      },
    });
    const r = await post(s, wireBatch(5));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {
      acks: ['m0'],
      retries: [{ id: 'm1', delay_seconds: 5 }, { id: 'm2' }, { id: 'm3', delay_seconds: 30 }, { id: 'm4', delay_seconds: 30 }],
    });
  });

  test('a throwing handler is a failed invocation: 500, explicit decisions kept', async () => {
    const errors = [];
    const s = await serve(
      {
        async queue(batch) {
          batch.messages[0].ack();
          batch.messages[1].retry({ delaySeconds: 60 });
          throw new Error('boom');
        },
      },
      { onError: (e) => errors.push(e.message) },
    );
    const r = await post(s, wireBatch(3));
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { acks: ['m0'], retries: [{ id: 'm1', delay_seconds: 60 }] });
    assert.deepEqual(errors, ['boom']);
  });

  test('a bad delay throws from retry(), failing the invocation', async () => {
    const s = await serve(async (batch) => batch.messages[0].retry({ delaySeconds: 43201 }));
    assert.equal((await post(s, wireBatch(1))).status, 500);
  });

  test('ctx.waitUntil promises finish before the reply', async () => {
    let finished = false;
    const s = await serve({
      async queue(batch, env, ctx) {
        ctx.waitUntil(new Promise((resolve) => setTimeout(() => { finished = true; batch.messages[0].ack(); resolve(); }, 200)));
      },
    });
    const r = await post(s, wireBatch(2));
    assert.ok(finished);
    assert.deepEqual(r.json, { acks: ['m0'], retries: [] });
  });

  test('a function handler works too; GET is 405, a signed non-batch 400', async () => {
    const s = await serve((batch) => batch.ackAll());
    const r = await post(s, wireBatch(2));
    assert.deepEqual(r.json, { acks: ['m0', 'm1'], retries: [] });
    assert.equal((await post(s, null, { method: 'GET' })).status, 405);
    assert.equal((await post(s, null, { raw: '{"nope":1}' })).status, 400);
  });

  test('refuses to start without a handler or a secret', async () => {
    const saved = process.env.WHARF_WORKER_SECRET;
    delete process.env.WHARF_WORKER_SECRET;
    try {
      await assert.rejects(serveQueueHandler({ queue() {} }), /secret/);
      await assert.rejects(serveQueueHandler({}, { secret: SECRET }), /handler/);
    } finally {
      if (saved !== undefined) process.env.WHARF_WORKER_SECRET = saved;
    }
  });
});
