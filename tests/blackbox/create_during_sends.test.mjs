/*
 * create_during_sends.test.mjs — creating queues does not hold up sends
 * (issue 12 §4): ~50 queue creates per second for a few seconds while four
 * producers send continuously. Every create and every send must be answered
 * with success; the send latency (p50, p99, max) is printed for a phase
 * without creates and for the phase with them, for comparison, but not
 * asserted on: timing depends on the machine. A control-plane commit
 * (SQLite, synchronous=FULL) made on the loop thread shows up as a p99/max
 * jump in the second phase; made off it, the phases look alike. Sends wait
 * for the disk themselves (fdatasync), which hides part of a stall on a
 * slow or shared disk, so a reader that needs no disk (GET of the queue)
 * runs beside them and is reported the same way.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sleep, startServer } from './harness.mjs';

const PHASE_MS = 3000;
const CREATES_PER_SECOND = 50;
const PRODUCERS = 4;

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.dispose();
});

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

function summary(latencies, what = 'sends') {
  const sorted = [...latencies].sort((a, b) => a - b);
  const ms = (v) => v.toFixed(2);
  return `${sorted.length} ${what}, p50 ${ms(percentile(sorted, 50))} ms, p99 ${ms(percentile(sorted, 99))} ms, ` +
    `max ${ms(sorted[sorted.length - 1])} ms`;
}

/* Sends one small message after another until `until` (ms since epoch);
 * the latency of each, and every reply that was not a success. */
async function produce(queueId, until, latencies, failures) {
  while (Date.now() < until) {
    const started = performance.now();
    const res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), {
      body: 'tick',
      content_type: 'text',
    });
    latencies.push(performance.now() - started);
    if (res.status !== 200 || res.json?.success !== true) failures.push(`${res.status} ${res.text}`);
  }
}

/* GETs the queue one request after another until `until`: a request that
 * needs only the loop thread. */
async function read(queueId, until, latencies, failures) {
  while (Date.now() < until) {
    const started = performance.now();
    const res = await server.api('GET', server.acct(`/queues/${queueId}`));
    latencies.push(performance.now() - started);
    if (res.status !== 200) failures.push(`${res.status} ${res.text}`);
  }
}

/* Starts a create every 1000/CREATES_PER_SECOND ms until `until`, without
 * waiting for the one before; resolves with every reply. */
async function createQueues(prefix, until) {
  const replies = [];
  for (let i = 0; Date.now() < until; i++) {
    replies.push(server.api('POST', server.acct('/queues'), { queue_name: `${prefix}-${i}` }));
    await sleep(1000 / CREATES_PER_SECOND);
  }
  return Promise.all(replies);
}

async function phase(queueId, withCreates) {
  const until = Date.now() + PHASE_MS;
  const latencies = [];
  const reads = [];
  const failures = [];
  const producers = Array.from({ length: PRODUCERS }, () => produce(queueId, until, latencies, failures));
  const creates = withCreates ? createQueues('created-during-sends', until) : Promise.resolve([]);
  const [replies] = await Promise.all([creates, read(queueId, until, reads, failures), ...producers]);
  return { latencies, reads, failures, replies };
}

test('queue creates at ~50/s while sending: every create and every send answered with success', async () => {
  const target = await server.api('POST', server.acct('/queues'), { queue_name: 'sends-target' });
  assert.equal(target.status, 200, target.text);
  const queueId = target.json.result.queue_id;

  const quiet = await phase(queueId, false);
  const busy = await phase(queueId, true);

  console.log(`# sends without creates: ${summary(quiet.latencies)}; ${summary(quiet.reads, 'GETs')}`);
  console.log(`# sends during ${busy.replies.length} creates (~${CREATES_PER_SECOND}/s): ` +
    `${summary(busy.latencies)}; ${summary(busy.reads, 'GETs')}`);

  assert.deepEqual(quiet.failures, [], 'every send and GET without creates succeeded');
  assert.deepEqual(busy.failures, [], 'every send and GET during creates succeeded');
  assert.ok(busy.latencies.length > 0 && quiet.latencies.length > 0, 'sends were made in both phases');
  assert.ok(busy.replies.length >= (CREATES_PER_SECOND * PHASE_MS) / 1000 / 2, `${busy.replies.length} creates were made`);
  const failed = busy.replies.filter((res) => res.status !== 200 || res.json?.success !== true);
  assert.deepEqual(failed.map((res) => `${res.status} ${res.text}`), [], 'every create succeeded');
  const ids = new Set(busy.replies.map((res) => res.json.result.queue_id));
  assert.equal(ids.size, busy.replies.length, 'each create made its own queue');

  const listed = await server.api('GET', server.acct('/queues?per_page=1000'));
  assert.equal(listed.json.result_info.total_count, busy.replies.length + 1, 'all of them exist');
});
