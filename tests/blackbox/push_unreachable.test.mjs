/*
 * push_unreachable.test.mjs — a push worker that cannot be reached does not
 * spend its messages' attempts (dispatcher.c, "An unreachable worker"): the
 * endpoint is a port nobody listens on for ~5 s (connection refused), then a
 * real node HTTP server comes up on it and must get the message as a first
 * delivery, with nothing dead-lettered; once reached, the back-off is over.
 * A worker that is reached and answers non-2xx still fails its invocations:
 * attempts count and the message reaches the DLQ after max_retries.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { assertEnvelope, freePort, sleep, startServer } from './harness.mjs';

let server;
const endpoints = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const e of endpoints) {
    e.closeAllConnections();
    await new Promise((resolve) => e.close(resolve));
  }
  if (server) await server.dispose();
});

/* Starts a worker on port that answers every batch with status, recording
 * [body, attempts, arrival time] per message. */
async function listen(port, status, received) {
  const endpoint = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    for (const m of JSON.parse(raw).messages) received.push({ body: m.body, attempts: m.attempts, at: Date.now() });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end('');
  });
  await new Promise((resolve) => endpoint.listen(port, '127.0.0.1', resolve));
  endpoints.push(endpoint);
}

async function pushQueue(name, port, maxRetries) {
  const w = await server.api('POST', server.acct('/workers/queue-handlers'), { script_name: `${name}-worker`, url: `http://127.0.0.1:${port}/queue` });
  assertEnvelope(assert, w, { success: true, status: 200 });
  const q = await server.api('POST', server.acct('/queues'), { queue_name: name });
  assertEnvelope(assert, q, { success: true, status: 200 });
  const queueId = q.json.result.queue_id;
  const c = await server.api('POST', server.acct(`/queues/${queueId}/consumers`), {
    type: 'worker', script_name: `${name}-worker`, dead_letter_queue: `${name}-dlq`,
    settings: { batch_size: 1, max_wait_time_ms: 50, max_retries: maxRetries, retry_delay: 0 },
  });
  assertEnvelope(assert, c, { success: true, status: 200 });
  return queueId;
}

async function send(queueId, body) {
  const res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), { body });
  assertEnvelope(assert, res, { success: true, status: 200 });
}

async function backlog(queueId) {
  const res = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
  return res.json.result.backlog_count;
}

/* The DLQ's backlog; 0 when it was never needed (so never created). */
async function dlqBacklog(name) {
  const list = await server.api('GET', server.acct(`/queues?name=${name}-dlq`));
  return list.json.result.length ? backlog(list.json.result[0].queue_id) : 0;
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.log()}`);
    await sleep(50);
  }
}

test('a worker down for 5 s gets the message as its first attempt once it is up; nothing is dead-lettered', async () => {
  const port = await freePort();
  const queueId = await pushQueue('unreach', port, 3);
  await send(queueId, 'survivor');
  await sleep(5000); /* connection refused all along */
  assert.equal(await backlog(queueId), 1, 'the message is still in the queue');
  assert.equal(await dlqBacklog('unreach'), 0);
  const received = [];
  const upAt = Date.now();
  await listen(port, 200, received);
  await waitFor(() => received.length >= 1, 15_000, 'delivery once the worker is up');
  console.log(`# delivered ${received[0].at - upAt} ms after the worker came up`);
  assert.deepEqual(received.map((m) => [m.body, m.attempts]), [['survivor', 1]]);
  await waitFor(async () => (await backlog(queueId)) === 0, 5000, 'the ack');
  assert.equal(await dlqBacklog('unreach'), 0);
  /* Reached once, the back-off is over: the next message goes at once. */
  const sentAt = Date.now();
  await send(queueId, 'next');
  await waitFor(() => received.length >= 2, 5000, 'the next message');
  assert.ok(received[1].at - sentAt < 1000, `next message after ${received[1].at - sentAt} ms`);
  assert.equal(received[1].attempts, 1);
});

test('a worker that is reached and answers 500 still dead-letters the message after max_retries', async () => {
  const port = await freePort();
  const received = [];
  await listen(port, 500, received);
  const queueId = await pushQueue('unreach-500', port, 2);
  await send(queueId, 'doomed');
  await waitFor(async () => (await dlqBacklog('unreach-500')) === 1, 10_000, 'the DLQ');
  assert.deepEqual(received.map((m) => m.attempts), [1, 2, 3]);
  assert.equal(await backlog(queueId), 0);
});
