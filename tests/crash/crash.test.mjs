/*
 * crash.test.mjs — Wharf's durability promise under kill -9.
 *
 * Producers send concurrently; at a random moment the server is killed with
 * SIGKILL and restarted on the same data directory. Every send that was
 * answered 200 must then be stored exactly once (bodies are unique, so they
 * identify messages); sends that were in flight may or may not be there.
 * Then consumers pull and ack while the server is killed again: no message
 * whose ack was answered may come back, and every message not acked must
 * still be delivered.
 *
 * CRASH_ROUNDS (default 10: 20 kills in `make test`) sets how many kill/restart rounds run; `make
 * crash-long` runs many more.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WharfServer, sleep } from '../blackbox/harness.mjs';

const ROUNDS = Number(process.env.CRASH_ROUNDS || 10);
const PRODUCERS = 16;

const server = new WharfServer();
after(() => server.dispose());

/* A queue with an http_pull consumer (pulls and acks need one). */
async function createQueue(name) {
  const res = await server.api('POST', `/accounts/${server.accountId}/queues`, { queue_name: name });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  const queueId = res.json.result.queue_id;
  const consumer = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/consumers`, { type: 'http_pull' });
  assert.equal(consumer.status, 200, JSON.stringify(consumer.json));
  return queueId;
}

/* Sends bodies until stopped; records each body whose send was answered 200. */
async function produce(queueId, prefix, answered, stop) {
  let n = 0;
  while (!stop.done) {
    const batch = [];
    const size = 1 + (n % 5);
    for (let i = 0; i < size; i++) batch.push({ body: `${prefix}-${n++}`, content_type: 'text' });
    try {
      const res = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/batch`,
        { messages: batch }, { timeoutMs: 5000 });
      if (res.status === 200) for (const m of batch) answered.add(m.body);
    } catch {
      /* connection died with the server: these sends were never answered */
    }
  }
}

async function pullAll(queueId, { ack = true } = {}) {
  const seen = [];
  for (;;) {
    const res = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/pull`,
      { batch_size: 100, visibility_timeout_ms: 600000 });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const messages = res.json.result.messages;
    if (messages.length === 0) return seen;
    for (const m of messages) seen.push(m.body);
    if (ack) {
      const acked = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/ack`,
        { acks: messages.map((m) => ({ lease_id: m.lease_id })) });
      assert.equal(acked.status, 200);
    }
  }
}

test(`kill -9 during concurrent sends loses no answered send (${ROUNDS} rounds)`, async () => {
  await server.start();
  const queueId = await createQueue('crash-sends');
  const answered = new Set();
  for (let round = 0; round < ROUNDS; round++) {
    const stop = { done: false };
    const producers = [];
    for (let p = 0; p < PRODUCERS; p++) producers.push(produce(queueId, `r${round}p${p}`, answered, stop));
    await sleep(100 + Math.random() * 400);
    await server.kill9();
    stop.done = true;
    await Promise.all(producers);
    await server.start();
  }
  assert.ok(answered.size > 0, 'some sends were answered before the kills');
  const bodies = await pullAll(queueId, { ack: false });
  const counts = new Map();
  for (const b of bodies) counts.set(b, (counts.get(b) || 0) + 1);
  for (const b of answered) assert.equal(counts.get(b), 1, `answered send ${b} stored exactly once`);
  for (const [b, c] of counts) assert.equal(c, 1, `${b} stored once, not ${c} times`);
});

test(`kill -9 while acking: answered acks stay acked, the rest is redelivered (${ROUNDS} rounds)`, async () => {
  const queueId = await createQueue('crash-acks');
  const total = 3000;
  for (let i = 0; i < total; i += 100) {
    const messages = [];
    for (let j = i; j < i + 100; j++) messages.push({ body: `m-${j}`, content_type: 'text' });
    const res = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/batch`, { messages });
    assert.equal(res.status, 200);
  }
  const ackedAnswered = new Set();
  const ackSent = new Set(); /* acks whose reply was lost may or may not have landed */
  for (let round = 0; round < ROUNDS; round++) {
    const stop = { done: false };
    const consumers = [];
    for (let c = 0; c < 4; c++) {
      consumers.push((async () => {
        while (!stop.done) {
          try {
            const res = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/pull`,
              { batch_size: 20, visibility_timeout_ms: 600000 }, { timeoutMs: 5000 });
            if (res.status !== 200) continue;
            const messages = res.json.result.messages;
            for (const m of messages) ackSent.add(m.body);
            const ack = await server.api('POST', `/accounts/${server.accountId}/queues/${queueId}/messages/ack`,
              { acks: messages.map((m) => ({ lease_id: m.lease_id })) }, { timeoutMs: 5000 });
            if (ack.status === 200) for (const m of messages) ackedAnswered.add(m.body);
          } catch {
            /* the server died under us */
          }
        }
      })());
    }
    await sleep(50 + Math.random() * 200);
    await server.kill9();
    stop.done = true;
    await Promise.all(consumers);
    await server.start();
  }
  const remaining = await pullAll(queueId, { ack: true });
  for (const b of remaining) assert.ok(!ackedAnswered.has(b), `acked message ${b} came back`);
  const still = new Set(remaining);
  for (let i = 0; i < total; i++) {
    const body = `m-${i}`;
    if (!ackSent.has(body)) assert.ok(still.has(body), `never-acked message ${body} was lost`);
  }
  assert.equal(still.size, remaining.length, 'no message is delivered twice from the drained queue');
});
