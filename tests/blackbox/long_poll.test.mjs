/*
 * long_poll.test.mjs — issue 14: pull with `wharf_wait_ms` (a Wharf
 * extension, docs/api.md). A held pull is answered as soon as a send makes
 * a message ready; it ends cleanly when its time is up, when the queue is
 * paused or deleted, when the server shuts down and when its client goes
 * away (nothing is leased for a client that left); the caps (8 waiting
 * pulls per connection, 4096 in all) answer the excess at once. Without
 * the field a pull answers at once, as Cloudflare's does. Latencies are
 * printed, and asserted only loosely (well before the wait would end).
 *
 * Clustered (WHARF_TEST_NATS=1) a pull waits on the node its connection
 * reached and a send on either node answers it; the wharf_pulls_waiting
 * gauge and the 4096 cap are each node's, so the count here is the sum
 * over the nodes and the cap is filled on every node.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CLUSTER, assertEnvelope, assertError, sleep, startServer } from './harness.mjs';

let server;
let A;

before(async () => {
  server = await startServer();
  A = server.accountId;
});

after(async () => {
  if (server) await server.dispose();
});

async function pullQueue(name) {
  const res = await server.api('POST', server.acct('/queues'), { queue_name: name });
  assertEnvelope(assert, res, { success: true, status: 200 });
  const id = res.json.result.queue_id;
  const consumer = await server.api('POST', server.acct(`/queues/${id}/consumers`), { type: 'http_pull' });
  assertEnvelope(assert, consumer, { success: true, status: 200 });
  return id;
}

const pull = (q, body, opts) => server.api('POST', server.acct(`/queues/${q}/messages/pull`), body, opts);
const send = (q, body) => server.api('POST', server.acct(`/queues/${q}/messages`), { body });

/* Starts a pull and returns {promise, startedAt}; the promise gives the
 * response and when it arrived. */
function heldPull(q, body, opts) {
  const startedAt = performance.now();
  const promise = pull(q, body, opts).then((res) => ({ res, at: performance.now() }));
  return { promise, startedAt };
}

/* Each node's port (clustered), or the server's. */
const nodePorts = () => (CLUSTER ? server.nodePorts : [server.port]);

async function waitingPulls() {
  let sum = 0;
  for (const port of nodePorts()) {
    const res = await server.api('GET', '/metrics', undefined, { root: true, origin: `http://127.0.0.1:${port}` });
    assert.equal(res.status, 200, res.text);
    const line = res.text.split('\n').find((l) => l.startsWith('wharf_pulls_waiting '));
    assert.ok(line, 'the wharf_pulls_waiting gauge is exported');
    sum += Number(line.split(' ')[1]);
  }
  return sum;
}

async function untilWaiting(n) {
  for (let i = 0; i < 400; i++) {
    if ((await waitingPulls()) === n) return;
    await sleep(10);
  }
  assert.fail(`never ${n} pulls waiting (now ${await waitingPulls()})`);
}

describe('a held pull', () => {
  test('gets a message sent after it started, as soon as the send is durable', async () => {
    const q = await pullQueue('lp-wake');
    const held = heldPull(q, { batch_size: 10, wharf_wait_ms: 15000 });
    await untilWaiting(1);
    const sentAt = performance.now();
    const sent = await send(q, 'late');
    assert.equal(sent.status, 200, sent.text);
    const { res, at } = await held.promise;
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.equal(res.json.result.messages.length, 1);
    assert.equal(Buffer.from(res.json.result.messages[0].body, 'base64').toString(), '"late"');
    assert.equal(res.json.result.messages[0].attempts, 1);
    console.log(`# held pull answered ${(at - sentAt).toFixed(2)} ms after the send started`);
    assert.ok(at - held.startedAt < 10000, 'answered long before its 15 s wait would end');
    assert.equal(await waitingPulls(), 0);
  });

  test('that finds messages is answered at once; without wharf_wait_ms an empty queue answers at once', async () => {
    const q = await pullQueue('lp-now');
    const empty = heldPull(q, { batch_size: 5 });
    const { res } = await empty.promise;
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.deepEqual(res.json.result.messages, []);
    await send(q, 'ready');
    const ready = heldPull(q, { batch_size: 5, wharf_wait_ms: 15000 });
    const got = await ready.promise;
    assert.equal(got.res.json.result.messages.length, 1);
    assert.ok(got.at - ready.startedAt < 10000);
  });

  test('ends with nothing when its time is up', async () => {
    const q = await pullQueue('lp-timeout');
    const held = heldPull(q, { wharf_wait_ms: 300 });
    const { res, at } = await held.promise;
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.deepEqual(res.json.result.messages, []);
    assert.ok(at - held.startedAt >= 250, `waited ${at - held.startedAt} ms of 300`);
  });

  test('waiting pulls are served in the order they began, each with what is ready', async () => {
    const q = await pullQueue('lp-fifo');
    const first = heldPull(q, { batch_size: 2, wharf_wait_ms: 15000 });
    await untilWaiting(1);
    const second = heldPull(q, { batch_size: 2, wharf_wait_ms: 15000 });
    await untilWaiting(2);
    const batch = await server.api('POST', server.acct(`/queues/${q}/messages/batch`), {
      messages: [{ body: 'a' }, { body: 'b' }, { body: 'c' }],
    });
    assert.equal(batch.status, 200, batch.text);
    const one = (await first.promise).res.json.result.messages;
    const two = (await second.promise).res.json.result.messages;
    const text = (m) => Buffer.from(m.body, 'base64').toString();
    if (CLUSTER) {
      /* By design: JetStream hands the messages to its waiting pull
       * requests one at a time, in turn, and the batch's three messages
       * become ready one by one; so each held pull gets some, and the first
       * the first message. What is left is still there, once each. */
      assert.ok(one.length >= 1 && two.length >= 1, `${one.length} and ${two.length}`);
      assert.equal(text(one[0]), '"a"');
      const rest = (await pull(q, { batch_size: 10 })).json.result.messages;
      assert.deepEqual([...one, ...two, ...rest].map(text).sort(), ['"a"', '"b"', '"c"']);
      return;
    }
    assert.equal(one.length, 2);
    assert.equal(two.length, 1);
    assert.deepEqual([...one, ...two].map(text), ['"a"', '"b"', '"c"']);
  });

  test('ends with 409 queue_delivery_paused when the queue is paused', async () => {
    const q = await pullQueue('lp-pause');
    const held = heldPull(q, { wharf_wait_ms: 15000 });
    await untilWaiting(1);
    const paused = await server.api('PATCH', server.acct(`/queues/${q}`), { settings: { delivery_paused: true } });
    assert.equal(paused.status, 200, paused.text);
    const { res, at } = await held.promise;
    assertError(assert, res, 409, 11011);
    assert.ok(at - held.startedAt < 10000);
    const sent = await send(q, 'stored while paused');
    assert.equal(sent.status, 200);
    assert.equal(await waitingPulls(), 0);
  });

  test('ends with 404 when the queue is deleted', async () => {
    const q = await pullQueue('lp-delete');
    const held = heldPull(q, { wharf_wait_ms: 15000 });
    await untilWaiting(1);
    const deleted = await server.api('DELETE', server.acct(`/queues/${q}`));
    assert.equal(deleted.status, 200, deleted.text);
    const { res, at } = await held.promise;
    assertError(assert, res, 404, 11000);
    assert.ok(at - held.startedAt < 10000);
  });

  for (const [how, leave] of [
    ['closes its side (EOF)', (socket) => socket.end()],
    ['resets the connection', (socket) => socket.resetAndDestroy()],
  ]) {
    test(`whose client ${how} leases nothing for it`, async () => {
      const q = await pullQueue(`lp-gone-${how.split(' ')[0]}`);
      const raw = rawPulls(q, 2, 15000);
      await untilWaiting(2);
      leave(raw.socket);
      await untilWaiting(0);
      await send(q, 'for whoever is still here');
      const res = await pull(q, { batch_size: 5 });
      assert.equal(res.json.result.messages.length, 1, 'the message was not leased to the client that left');
      assert.equal(res.json.result.messages[0].attempts, 1);
    });
  }

  test('rejects a wharf_wait_ms that is not a whole number of ms up to 20000', async () => {
    const q = await pullQueue('lp-bad');
    for (const wait of [20001, -1, 'soon', 1.5]) {
      const res = await pull(q, { wharf_wait_ms: wait });
      assertError(assert, res, 400, 11001);
      assert.match(JSON.stringify(res.json.errors), /wharf_wait_ms/);
    }
    assert.equal(await waitingPulls(), 0);
  });
});

/* Raw HTTP/1.1 on one connection (to port: the server's, or one node's):
 * `count` pipelined pulls that wait. */
function rawPulls(q, count, waitMs, batchSize = 1, port = server.port) {
  const socket = net.connect(port, '127.0.0.1');
  const body = JSON.stringify({ batch_size: batchSize, wharf_wait_ms: waitMs });
  const request =
    `POST /client/v4${server.acct(`/queues/${q}/messages/pull`)} HTTP/1.1\r\nHost: x\r\n` +
    `Authorization: Bearer ${server.token}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  let text = '';
  socket.on('data', (chunk) => (text += chunk));
  socket.on('error', () => {});
  socket.write(request.repeat(count));
  const closed = new Promise((resolve) => socket.on('close', resolve));
  /* Bodies of the responses received so far, in order. */
  const responses = () =>
    text
      .split('HTTP/1.1 ')
      .slice(1)
      .map((r) => JSON.parse(r.slice(r.indexOf('\r\n\r\n') + 4).trim()));
  return { socket, responses, closed };
}

describe('caps on waiting pulls', () => {
  test('a connection holds at most 8; a 9th is answered at once, with nothing', async () => {
    const q = await pullQueue('lp-cap-conn');
    const raw = rawPulls(q, 9, 15000);
    await untilWaiting(8);
    await sleep(50);
    assert.equal(await waitingPulls(), 8, 'the 9th did not wait');
    const batch = await server.api('POST', server.acct(`/queues/${q}/messages/batch`), {
      messages: Array.from({ length: 9 }, (_, i) => ({ body: `m${i}` })),
    });
    assert.equal(batch.status, 200, batch.text);
    for (let i = 0; i < 200 && raw.responses().length < 9; i++) await sleep(10);
    const responses = raw.responses();
    assert.equal(responses.length, 9);
    assert.deepEqual(responses.map((r) => r.result.messages.length), [1, 1, 1, 1, 1, 1, 1, 1, 0]);
    raw.socket.end();
    await raw.closed;
    const left = await pull(q, { batch_size: 10 });
    assert.equal(left.json.result.messages.length, 1, 'the one the 9th did not wait for is still there');
  });

  test('the server (each node) holds at most 4096; past that a pull is answered at once', async () => {
    const q = await pullQueue('lp-cap-all');
    const sockets = [];
    for (const port of nodePorts()) for (let i = 0; i < 512; i++) sockets.push(rawPulls(q, 8, 15000, 1, port));
    await untilWaiting(4096 * nodePorts().length);
    const excess = heldPull(q, { wharf_wait_ms: 15000 });
    const { res, at } = await excess.promise;
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.deepEqual(res.json.result.messages, []);
    assert.ok(at - excess.startedAt < 10000, 'the excess pull did not wait');
    for (const raw of sockets) raw.socket.destroy();
    await untilWaiting(0);
  });
});

test('a shutdown answers held pulls at once (empty) and exits', async () => {
  const q = await pullQueue('lp-shutdown');
  const held = heldPull(q, { wharf_wait_ms: 15000 });
  await untilWaiting(1);
  const stoppedAt = performance.now();
  const exited = await server.stop();
  assert.equal(exited.code, 0, JSON.stringify(exited));
  const { res, at } = await held.promise;
  assertEnvelope(assert, res, { success: true, status: 200 });
  assert.deepEqual(res.json.result.messages, []);
  assert.ok(at - stoppedAt < 10000, 'answered at shutdown, not at its deadline');
  await server.start();
});
