/*
 * push.test.mjs — issue 5: push ("worker") consumers. A real worker — a small
 * node HTTP server in this file — is registered on a real `wharf serve`, and
 * everything is judged from what the worker receives and what the API shows:
 * the worker registry, batch formation by size and by max_wait_time_ms, the
 * request format and its signature, every reply precedence rule, failure
 * retries and the DLQ after max_retries, retry delays, autoscaled
 * concurrency (rising under a slow worker with a backlog, within
 * max_concurrency, falling with a failing one), pause/resume, and
 * redelivery of an in-flight batch after a restart.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { CLUSTER, assertEnvelope, assertError, sleep, startServer } from './harness.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

/* A worker endpoint. handler(batch) returns {status, body, delayMs} or
 * undefined (200, no body); 'hang' never answers. Records every batch. */
class TestWorker {
  constructor(handler = () => undefined) {
    this.handler = handler;
    this.batches = [];
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.hanging = [];
    this.server = http.createServer((req, res) => this.serve(req, res));
    this.server.keepAliveTimeout = 60_000;
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}/queue`;
    return this;
  }

  async serve(req, res) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const batch = JSON.parse(raw);
    this.batches.push({ batch, raw, signature: req.headers['x-wharf-signature'], at: Date.now() });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const answer = await this.handler(batch);
    if (answer === 'hang') {
      this.hanging.push(res);
      return;
    }
    const { status = 200, body, delayMs = 0 } = answer || {};
    if (delayMs) await sleep(delayMs);
    this.inFlight--;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  messages() {
    return this.batches.flatMap((b) => b.batch.messages);
  }

  async waitFor(predicate, timeoutMs = 10_000, what = 'condition') {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; batches: ${JSON.stringify(this.batches.map((b) => b.batch.messages?.map((m) => [m.body, m.attempts]) ?? b.raw))}\n${server.log()}`);
      await sleep(20);
    }
  }

  async close() {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const workers = [];
after(async () => {
  for (const w of workers) await w.close();
});

async function register(script, url, extra = {}) {
  const res = await server.api('POST', server.acct('/workers/queue-handlers'), { script_name: script, url, ...extra });
  assertEnvelope(assert, res, { success: true, status: 200 });
  return res.json.result;
}

/* A queue whose worker consumer is a fresh TestWorker. */
async function pushQueue(name, handler, { consumer = {}, dlq, timeoutMs } = {}) {
  const worker = await new TestWorker(handler).start();
  workers.push(worker);
  const registered = await register(`${name}-worker`, worker.url, timeoutMs ? { timeout_ms: timeoutMs } : {});
  worker.secret = registered.secret;
  const q = await server.api('POST', server.acct('/queues'), { queue_name: name });
  assertEnvelope(assert, q, { success: true, status: 200 });
  const queueId = q.json.result.queue_id;
  const body = { type: 'worker', script_name: `${name}-worker`, settings: { max_wait_time_ms: 100, retry_delay: 0, ...consumer } };
  if (dlq) body.dead_letter_queue = dlq;
  const c = await server.api('POST', server.acct(`/queues/${queueId}/consumers`), body);
  assertEnvelope(assert, c, { success: true, status: 200 });
  const setWait = async (ms) => { /* changes the consumer's max_wait_time_ms */
    body.settings.max_wait_time_ms = ms;
    const res = await server.api('PUT', server.acct(`/queues/${queueId}/consumers/${c.json.result.consumer_id}`), body);
    assertEnvelope(assert, res, { success: true, status: 200 });
  };
  return { worker, queueId, setWait };
}

async function sendBatch(queueId, bodies) {
  const res = await server.api('POST', server.acct(`/queues/${queueId}/messages/batch`), {
    messages: bodies.map((body) => (typeof body === 'object' && body.content_type ? body : { body })),
  });
  assertEnvelope(assert, res, { success: true, status: 200 });
}

async function backlog(queueId) {
  const res = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
  return res.json.result.backlog_count;
}

async function waitBacklog(queueId, count, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while ((last = await backlog(queueId)) !== count) {
    if (Date.now() > deadline) throw new Error(`backlog stayed ${last}, wanted ${count}\n${server.log()}`);
    await sleep(50);
  }
}

describe('worker registry', () => {
  test('register returns the secret once; list hides it; duplicates and bad input are refused', async () => {
    const r = await register('registry-a', 'http://127.0.0.1:9/x', { timeout_ms: 5000 });
    assert.match(r.secret, /^[0-9a-f]{64}$/);
    assert.equal(r.url, 'http://127.0.0.1:9/x');
    assert.equal(r.timeout_ms, 5000);
    const d = await register('registry-b', 'https://example.invalid/q');
    assert.equal(d.timeout_ms, 15 * 60 * 1000); /* the Workers wall-time default */
    const list = await server.api('GET', server.acct('/workers/queue-handlers'));
    assertEnvelope(assert, list, { success: true, status: 200 });
    const mine = list.json.result.filter((w) => w.script_name.startsWith('registry-'));
    assert.deepEqual(mine.map((w) => w.script_name), ['registry-a', 'registry-b']);
    for (const w of mine) assert.equal(w.secret, undefined);
    assert.ok(!list.text.includes(r.secret));
    const dup = await server.api('POST', server.acct('/workers/queue-handlers'), { script_name: 'registry-a', url: 'http://x/' });
    assertError(assert, dup, 409, 11018);
    for (const bad of [{ url: 'http://x/' }, { script_name: 'a b', url: 'http://x/' }, { script_name: 'ok', url: 'ftp://x/' }, { script_name: 'ok', url: 'http://x/', timeout_ms: 0 }]) {
      const res = await server.api('POST', server.acct('/workers/queue-handlers'), bad);
      assertError(assert, res, 400, 11001);
    }
    const del = await server.api('DELETE', server.acct('/workers/queue-handlers/registry-a'));
    assertEnvelope(assert, del, { success: true, status: 200 });
    const again = await server.api('DELETE', server.acct('/workers/queue-handlers/registry-a'));
    assertError(assert, again, 404, 11017);
  });
  test('the wharf CLI registers, lists and removes workers', async () => {
    const reg = await server.wharfCli(['workers', 'register', 'cli-worker', '--url', 'http://127.0.0.1:9/cli', '--timeout-secs', '30']);
    assert.equal(reg.code, 0, reg.output);
    const secret = reg.stdout.match(/secret:\s*([0-9a-f]{64})/);
    assert.ok(secret, reg.stdout);
    const list = await server.wharfCli(['workers', 'list']);
    assert.equal(list.code, 0, list.output);
    assert.match(list.stdout, /cli-worker/);
    assert.match(list.stdout, /30000/);
    assert.ok(!list.stdout.includes(secret[1]), 'list never shows the secret');
    const rm = await server.wharfCli(['workers', 'remove', 'cli-worker']);
    assert.equal(rm.code, 0, rm.output);
    const after = await server.api('GET', server.acct('/workers/queue-handlers'));
    assert.ok(!after.json.result.some((w) => w.script_name === 'cli-worker'));
  });
});

/* CLUSTER: each node forms its own batches from what its held pull got
 * (push/dispatcher.c), as embedded mode forms one: a batch goes when it holds
 * batch_size messages or its oldest waited max_wait_time_ms. So the messages
 * sent together may go in several batches, one per node; the contract a
 * worker relies on is the same: no batch above batch_size, every message
 * delivered, none before its batch is full or timed out. */
describe('batches', () => {
  test('a full batch goes at once, signed, with the queue name and typed bodies', async () => {
    const { worker, queueId, setWait } = await pushQueue('push-size', undefined, { consumer: { batch_size: 4, max_wait_time_ms: 30_000 } });
    const typed = [{ a: 1 }, { body: 'plain "text"', content_type: 'text' }, { body: Buffer.from([0, 1, 255]).toString('base64'), content_type: 'bytes' }, [1, 2]];
    /* CLUSTER: two batches' worth, so that one node surely gets a full batch. */
    const copies = CLUSTER ? 2 : 1;
    const sent = Date.now();
    await sendBatch(queueId, Array(copies).fill(typed).flat());
    await worker.waitFor(() => worker.batches.length >= 1, 5000, 'a full batch');
    assert.ok(Date.now() - sent < 5000, 'a full batch does not wait for max_wait_time_ms');
    assert.equal(worker.batches[0].batch.messages.length, 4, 'only a full batch goes before max_wait_time_ms');
    if (CLUSTER) { /* the rest waits in partial batches: a shorter wait sends them */
      await setWait(100);
      await worker.waitFor(() => worker.messages().length >= 8, 5000, 'the rest');
    } else {
      assert.equal(worker.batches.length, 1);
    }
    for (const { batch, raw, signature } of worker.batches) {
      assert.equal(signature, 'sha256=' + createHmac('sha256', worker.secret).update(raw).digest('hex'));
      assert.equal(batch.queue, 'push-size');
      assert.match(batch.batch_id, /^[0-9a-f]{32}$/);
      assert.ok(batch.messages.length <= 4, `a batch of ${batch.messages.length} > batch_size 4`);
    }
    const messages = worker.messages();
    assert.equal(new Set(messages.map((m) => m.id)).size, 4 * copies, 'every message once');
    for (const m of messages) {
      assert.match(m.id, /^[0-9a-f]{32}$/);
      assert.equal(m.attempts, 1);
      assert.ok(Math.abs(m.timestamp_ms - sent) < 5000);
    }
    const bodies = (type) => messages.filter((m) => m.content_type === type).map((m) => JSON.stringify(m.body)).sort();
    const times = (list) => Array(copies).fill(list).flat().map((b) => JSON.stringify(b)).sort();
    assert.deepEqual(bodies('json'), times([{ a: 1 }, [1, 2]]));
    assert.deepEqual(bodies('text'), times(['plain "text"']));
    assert.deepEqual(bodies('bytes'), times([Buffer.from([0, 1, 255]).toString('base64')]));
    await waitBacklog(queueId, 0);
  });

  test('a partial batch waits max_wait_time_ms, then goes; empty batches never', async () => {
    const { worker, queueId } = await pushQueue('push-wait', undefined, { consumer: { batch_size: 10, max_wait_time_ms: 1500 } });
    await sleep(300);
    assert.equal(worker.batches.length, 0, 'no empty batch for an empty queue');
    const sent = Date.now();
    await sendBatch(queueId, ['x', 'y', 'z']);
    await sleep(900);
    assert.equal(worker.batches.length, 0, 'not before max_wait_time_ms');
    await worker.waitFor(() => worker.messages().length >= 3, 5000, 'the timed-out batch');
    for (const { at } of worker.batches) {
      const waited = at - sent;
      assert.ok(waited >= 1300 && waited < 3500, `waited ${waited} ms`);
    }
    assert.deepEqual(worker.messages().map((m) => m.body).sort(), ['x', 'y', 'z']);
    await sleep(500);
    assert.equal(worker.messages().length, 3);
    /* CLUSTER: one partial batch per node. */
    assert.ok(worker.batches.length <= (CLUSTER ? 2 : 1), `${worker.batches.length} batches`);
    await waitBacklog(queueId, 0);
  });
});

describe('reply precedence', () => {
  /* Sends 4 messages as one batch; each first delivery is answered by
   * firstReply(id), id(body) naming the message of that body when it is in
   * the batch (what names a message not in it is left out of the reply),
   * later ones with plain 200. Returns the bodies of the messages delivered
   * again, with their attempts. Embedded mode delivers the 4 in one batch;
   * CLUSTER may split them over the nodes' batches (see 'batches'), and
   * each batch's reply applies to its own messages. */
  async function redelivered(name, firstReply) {
    const { worker, queueId } = await pushQueue(name, (batch) => {
      const fresh = new Map(batch.messages.filter((m) => m.attempts === 1).map((m) => [m.body, m.id]));
      if (!fresh.size) return undefined;
      const reply = firstReply((body) => fresh.get(body));
      if (reply.body?.acks) reply.body.acks = reply.body.acks.filter(Boolean);
      if (reply.body?.retries) reply.body.retries = reply.body.retries.filter((r) => r.id);
      return reply;
    }, { consumer: { batch_size: 4, max_wait_time_ms: 200, max_retries: 5 } });
    await sendBatch(queueId, ['m0', 'm1', 'm2', 'm3']);
    await worker.waitFor(() => worker.batches.length >= 1, 5000, 'the first batch');
    await waitBacklog(queueId, 0);
    await sleep(300);
    if (!CLUSTER) assert.equal(worker.batches[0].batch.messages.length, 4, 'one batch');
    const messages = worker.messages();
    for (const { batch } of worker.batches) assert.ok(batch.messages.length <= 4);
    assert.deepEqual(messages.filter((m) => m.attempts === 1).map((m) => m.body).sort(), ['m0', 'm1', 'm2', 'm3']);
    const later = messages.filter((m) => m.attempts !== 1);
    for (const m of later) assert.equal(m.attempts, 2);
    return later.map((m) => m.body).sort();
  }

  test('2xx acks everything not retried', async () => {
    assert.deepEqual(await redelivered('prec-ok', () => ({ status: 200 })), []);
  });
  test('explicit retries on a 2xx retry only those messages', async () => {
    assert.deepEqual(await redelivered('prec-retries', (id) => ({ body: { retries: [{ id: id('m1') }, { id: id('m3'), delay_seconds: 0 }] } })), ['m1', 'm3']);
  });
  test('a failed invocation retries all but the explicitly acked', async () => {
    assert.deepEqual(await redelivered('prec-fail', (id) => ({ status: 500, body: { acks: [id('m0'), id('m2')] } })), ['m1', 'm3']);
  });
  test('per-message calls beat ack_all and retry_all', async () => {
    assert.deepEqual(await redelivered('prec-ackall', (id) => ({ body: { retries: [{ id: id('m2') }], ack_all: true } })), ['m2']);
    assert.deepEqual(await redelivered('prec-retryall', (id) => ({ body: { acks: [id('m0')], retry_all: { delay_seconds: 0 } } })), ['m1', 'm2', 'm3']);
  });
  test('the first decision per message wins', async () => {
    assert.deepEqual(await redelivered('prec-first', (id) => ({ body: { acks: [id('m1')], retries: [{ id: id('m1') }, { id: id('m2') }, { id: id('m2'), delay_seconds: 600 }] } })), ['m2']);
  });
  test('a connection failure retries the whole batch', async () => {
    let first = true;
    const { worker, queueId } = await pushQueue('prec-conn', () => {
      if (!first) return undefined;
      first = false;
      return 'hang';
    }, { timeoutMs: 500, consumer: { batch_size: 2, max_wait_time_ms: 100 } });
    await sendBatch(queueId, ['c0', 'c1']);
    if (CLUSTER) { /* by design: each node forms its own batches, so c0 and c1 may go apart */
      const hung = () => worker.batches[0].batch.messages.map((m) => m.body);
      const again = () => worker.batches.findIndex((b) => b.batch.messages.some((m) => m.attempts === 2));
      await worker.waitFor(() => worker.batches.length && hung().every((body) => worker.messages().some((m) => m.body === body && m.attempts === 2)), 10_000, 'redelivery after the time limit');
      const gap = worker.batches[again()].at - worker.batches[0].at;
      const seen = worker.batches.map((b) => [b.at - worker.batches[0].at, b.batch.messages.map((m) => [m.body, m.attempts])]);
      assert.ok(gap >= 450, `redelivered after ${gap} ms, before the invocation time limit: ${JSON.stringify(seen)}\n${server.log()}`);
      return;
    }
    await worker.waitFor(() => worker.messages().length >= 4, 10_000, 'redelivery after the time limit');
    assert.deepEqual(worker.batches[1].batch.messages.map((m) => [m.body, m.attempts]).sort(), [['c0', 2], ['c1', 2]]);
    const gap = worker.batches[1].at - worker.batches[0].at;
    assert.ok(gap >= 450, `redelivered after ${gap} ms, before the invocation time limit`);
  });
});

describe('retries', () => {
  test('failures count toward max_retries, then the message moves to the DLQ', async () => {
    const { worker, queueId } = await pushQueue('push-dlq-src', () => ({ status: 503 }), { consumer: { batch_size: 1, max_retries: 2 }, dlq: 'push-dlq-dest' });
    await sendBatch(queueId, ['doomed']);
    await worker.waitFor(() => worker.batches.length >= 3, 10_000, 'three attempts');
    await waitBacklog(queueId, 0);
    await sleep(300);
    assert.deepEqual(worker.messages().map((m) => m.attempts), [1, 2, 3]);
    const list = await server.api('GET', server.acct('/queues?name=push-dlq-dest'));
    const dlqId = list.json.result[0].queue_id;
    assert.equal(await backlog(dlqId), 1);
  });

  test('retry delay_seconds postpones redelivery', async () => {
    let first = true;
    const { worker, queueId } = await pushQueue('push-delay', (batch) => {
      if (!first) return undefined;
      first = false;
      return { body: { retries: [{ id: batch.messages[0].id, delay_seconds: 2 }] } };
    }, { consumer: { batch_size: 1 } });
    await sendBatch(queueId, ['later']);
    await worker.waitFor(() => worker.batches.length >= 2, 10_000, 'the delayed retry');
    const gap = worker.batches[1].at - worker.batches[0].at;
    assert.ok(gap >= 1900, `redelivered after ${gap} ms`);
    assert.equal(worker.batches[1].batch.messages[0].attempts, 2);
  });
});

describe('concurrency', () => {
  test('a slow worker with a backlog gets concurrent batches, within max_concurrency; failures bring it down', async () => {
    let failing = false;
    const { worker, queueId } = await pushQueue('push-conc', () => (failing ? { status: 500, delayMs: 150 } : { delayMs: 300 }), {
      consumer: { batch_size: 5, max_wait_time_ms: 50, max_concurrency: 4, max_retries: 100 },
    });
    for (let i = 0; i < 10; i++) await sendBatch(queueId, Array.from({ length: 30 }, (_, j) => `c${i}-${j}`));
    await worker.waitFor(() => worker.maxInFlight >= 3, 15_000, 'concurrency to rise');
    await sleep(1500);
    assert.ok(worker.maxInFlight <= 4, `max in flight ${worker.maxInFlight} > max_concurrency 4`);
    failing = true;
    await sleep(1500); /* failures halve it: 4 -> 2 -> 1 */
    worker.maxInFlight = worker.inFlight;
    await sleep(1500);
    /* CLUSTER: each of the two nodes scales its own share down to one. */
    if (CLUSTER) assert.ok(worker.maxInFlight <= 2, `a failing worker gets one batch at a time per node, saw ${worker.maxInFlight}`);
    else assert.equal(worker.maxInFlight, 1, 'a failing worker is invoked one batch at a time');
  });
});

describe('pause and restart', () => {
  test('a paused queue dispatches nothing; resume restarts delivery', async () => {
    const { worker, queueId } = await pushQueue('push-pause', undefined, { consumer: { batch_size: 2, max_wait_time_ms: 50 } });
    const pause = await server.api('PATCH', server.acct(`/queues/${queueId}`), { settings: { delivery_paused: true } });
    assertEnvelope(assert, pause, { success: true, status: 200 });
    await sendBatch(queueId, ['p0', 'p1', 'p2']);
    await sleep(800);
    assert.equal(worker.batches.length, 0);
    const resume = await server.api('PATCH', server.acct(`/queues/${queueId}`), { settings: { delivery_paused: false } });
    assertEnvelope(assert, resume, { success: true, status: 200 });
    await worker.waitFor(() => worker.messages().length === 3, 5000, 'delivery after resume');
    await waitBacklog(queueId, 0);
  });

  test('pausing gives a forming batch back: no lease runs out into a failed delivery', async () => {
    const { worker, queueId } = await pushQueue('push-pause-forming', undefined, { consumer: { batch_size: 10, max_wait_time_ms: 2000 } });
    await sendBatch(queueId, ['f0']);
    const attempts = async () => {
      const res = await server.api('POST', server.acct(`/queues/${queueId}/messages/peek`), {});
      return res.json.result.messages[0].attempts; // failed deliveries, plus one while leased
    };
    await sleep(200);
    /* CLUSTER, by design: peek reads the stream, which does not show a lease;
     * the first delivery's attempts (1) below still proves nothing failed. */
    if (!CLUSTER) assert.equal(await attempts(), 1, 'leased into the forming batch');
    await server.api('PATCH', server.acct(`/queues/${queueId}`), { settings: { delivery_paused: true } });
    if (!CLUSTER) assert.equal(await attempts(), 0, 'given back on pause, not failed');
    await server.api('PATCH', server.acct(`/queues/${queueId}`), { settings: { delivery_paused: false } });
    await worker.waitFor(() => worker.messages().length === 1, 5000, 'delivery after resume');
    assert.equal(worker.messages()[0].attempts, 1);
    await waitBacklog(queueId, 0);
  });

  test('a batch in flight at shutdown is delivered again after the restart', async () => {
    let hang = true;
    /* CLUSTER, by design: the lease is the cluster's, not lost with the node:
     * the message comes back when AckWait (the visibility timeout) ends. */
    const consumer = { batch_size: 1, max_wait_time_ms: 50, ...(CLUSTER ? { visibility_timeout_ms: 2000 } : {}) };
    const { worker, queueId } = await pushQueue('push-restart', () => (hang ? 'hang' : undefined), { consumer });
    await sendBatch(queueId, ['survivor']);
    await worker.waitFor(() => worker.batches.length === 1, 5000, 'the first delivery');
    hang = false;
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'a hanging worker does not hold up shutdown');
    await server.start();
    await worker.waitFor(() => worker.batches.length >= 2, 10_000, 'redelivery after restart');
    assert.equal(worker.batches[1].batch.messages[0].body, 'survivor');
    await waitBacklog(queueId, 0);
  });
});
