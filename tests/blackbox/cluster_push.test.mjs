/*
 * cluster_push.test.mjs — push delivery from every node of a cluster
 * (issue 13): a worker consumer on a two-node cluster (WHARF_TEST_NATS=1)
 * gets every message sent over both nodes, no message is in two
 * invocations at once, and max_concurrency is the cluster's: each node
 * takes ceil(max_concurrency / live nodes) (push/dispatcher.c), so with 2
 * nodes and max_concurrency 2 at most 2 invocations run at once in all.
 * Clustered mode only: embedded mode has one node, push.test.mjs covers it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { CLUSTER, assertEnvelope, sleep, startServer } from './harness.mjs';

const COUNT = 40;
let server;
let worker;

before(async () => {
  if (CLUSTER) server = await startServer();
});
after(async () => {
  worker?.close();
  await server?.dispose(); /* stop() would leave the NATS cluster and the proxy running: the file never ends */
});

/* Counts invocations in flight and message ids seen; each batch takes 150 ms. */
function startWorker(state) {
  const w = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const ids = JSON.parse(raw).messages.map((m) => m.id);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    for (const id of ids) {
      if (state.busy.has(id)) state.overlaps.push(id);
      state.busy.add(id);
      state.seen.add(id);
    }
    await sleep(150);
    for (const id of ids) state.busy.delete(id);
    state.inFlight--;
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
  return new Promise((resolve) => w.listen(0, '127.0.0.1', () => resolve(w)));
}

/* Sends one message straight to node port, bypassing the proxy. */
async function sendTo(port, queueId, body) {
  const res = await fetch(`http://127.0.0.1:${port}/client/v4${server.acct(`/queues/${queueId}/messages`)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ body }),
  });
  assert.equal(res.status, 200, await res.text());
}

test('a worker consumer on two nodes: every message once at a time, max_concurrency across the cluster',
  { skip: !CLUSTER && 'clustered mode only (WHARF_TEST_NATS=1)' }, async () => {
    const state = { inFlight: 0, maxInFlight: 0, busy: new Set(), seen: new Set(), overlaps: [] };
    worker = await startWorker(state);
    const url = `http://127.0.0.1:${worker.address().port}`;
    const reg = await server.api('POST', server.acct('/workers/queue-handlers'), { script_name: 'cpush-worker', url });
    assertEnvelope(assert, reg, { success: true, status: 200 });
    const q = await server.api('POST', server.acct('/queues'), { queue_name: 'cluster-push' });
    assertEnvelope(assert, q, { success: true, status: 200 });
    const queueId = q.json.result.queue_id;
    const c = await server.api('POST', server.acct(`/queues/${queueId}/consumers`), {
      type: 'worker', script_name: 'cpush-worker',
      settings: { batch_size: 1, max_wait_time_ms: 0, max_concurrency: 2, retry_delay: 0 },
    });
    assertEnvelope(assert, c, { success: true, status: 200 });
    await sleep(2500); /* both nodes' heartbeats counted (nodes.c beats every 2 s) */
    for (let i = 0; i < COUNT; i++) {
      await sendTo(server.nodePorts[i % 2], queueId, `m${i}`);
    }
    const deadline = Date.now() + 30_000;
    while (state.seen.size < COUNT && Date.now() < deadline) await sleep(100);
    assert.equal(state.seen.size, COUNT, `every message reached the worker\n${server.log()}`);
    assert.deepEqual(state.overlaps, [], 'no message in two invocations at once');
    assert.ok(state.maxInFlight <= 2, `at most max_concurrency invocations at once, saw ${state.maxInFlight}`);
  });
