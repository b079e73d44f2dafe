/*
 * analytics.test.mjs — the metrics history and the GraphQL Analytics API
 * (seed 004 "Metrics"; issue 16): a known mix of sends, pulls, acks,
 * retries, a dead-letter move and a delay, across two minutes of the test
 * clock (WHARF_TEST_CLOCK_MS, docs/test-clock.md), then every example query
 * of the seed's Metrics page, unchanged, and the numbers checked exactly.
 * Another account's token sees nothing; errors come as {data: null, errors}.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { CLUSTER, sleep, startServer } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const MINUTE = 60_000;
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

/* The seed's example queries, copied unchanged into the GraphQL fuzz corpus
 * (checked against the seed below when it is at hand). */
const CORPUS = path.join(HERE, '../fuzz/corpus/graphql');
const queries = [1, 2, 3].map((n) => readFileSync(path.join(CORPUS, `seed004-metrics-${n}.graphql`), 'utf8'));
const SEED = path.join(HERE, '../../../../shared/seeds/004_84fd011dccf13e39.txt');

let server, queueId, deadLetterId, otherToken, otherAccount;

async function ok(method, apiPath, body) {
  const res = await server.api(method, server.acct(apiPath), body);
  assert.equal(res.status, 200, `${method} ${apiPath}: ${res.text}`);
  return res.json.result;
}

/* On every node (clustered mode: each node's clock is its own). */
async function setClock(ms) {
  const res = await server.setTestClock(ms);
  assert.equal(res.status, 200, res.text);
}

function graphql(query, variables, token = server.token) {
  return server.api('POST', '/graphql', { query, variables }, { token });
}

async function data(query, variables) {
  const res = await graphql(query, variables);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.errors, null, res.text);
  return res.json.data.viewer.accounts[0];
}

const text = (body, extra = {}) => ({ body, content_type: 'text', ...extra });

/* Clustered mode (WHARF_TEST_NATS=1) counts the same operations, summed
 * over both nodes, but three figures are JetStream's (src/jetstream/
 * jetstream.h): backlog bytes are the stream's, each message's subject and
 * headers included (checked to be more than the bodies, then compared as
 * the bodies); delayed messages are not known (0); and JetStream stamps a
 * message with its own time, not the test clock, which is in the past
 * here, so lag is 0. */
const lagOf = (ms) => (CLUSTER ? 0 : ms);
const delayedOf = (count) => (CLUSTER ? 0 : count);
function bodyBytes(avg, bytes) {
  if (!CLUSTER) return avg;
  assert.ok(bytes ? avg.bytes > bytes : avg.bytes === 0, `stream bytes ${avg.bytes} for ${bytes} bytes of bodies`);
  return { ...avg, bytes };
}

before(async () => {
  server = await startServer({ env: { WHARF_TEST_CLOCK_MS: String(T0) } });
  queueId = (await ok('POST', '/queues', { queue_name: 'orders' })).queue_id;
  await ok('POST', `/queues/${queueId}/consumers`, {
    type: 'http_pull',
    dead_letter_queue: 'orders-dlq',
    settings: { batch_size: 10, max_retries: 1, visibility_timeout_ms: 30000 },
  });
  deadLetterId = (await ok('GET', '/queues?name=orders-dlq'))[0].queue_id;

  /* Minute 10:00 — writes: 100, 200 and 70,000 bytes alone, then 50 and a
   * 10-byte one delayed 2 s in a batch (short: clustered mode gives an
   * early delivery back to JetStream for the rest of the delay in real
   * time). */
  for (const body of ['x'.repeat(100), 'y'.repeat(200), 'z'.repeat(70000)])
    await ok('POST', `/queues/${queueId}/messages`, text(body));
  await ok('POST', `/queues/${queueId}/messages/batch`, {
    messages: [text('w'.repeat(50)), text('d'.repeat(10), { delay_seconds: 2 })],
  });
  /* Reads: the four ready ones; ack x and z, retry y and w. */
  const pull = () => ok('POST', `/queues/${queueId}/messages/pull`, { batch_size: 10, visibility_timeout_ms: 30000 });
  const lease = (messages, letter) => ({ lease_id: messages.find((m) => m.body[0] === letter).lease_id });
  let { messages } = await pull();
  assert.equal(messages.length, 4);
  await ok('POST', `/queues/${queueId}/messages/ack`, {
    acks: [lease(messages, 'x'), lease(messages, 'z')],
    retries: [lease(messages, 'y'), lease(messages, 'w')],
  });
  /* Again: y and w on their second attempt; ack y, retry w past max_retries
   * 1, so it moves to the dead-letter queue. */
  ({ messages } = await pull());
  assert.deepEqual(messages.map((m) => m.attempts), [2, 2]);
  await ok('POST', `/queues/${queueId}/messages/ack`, { acks: [lease(messages, 'y')], retries: [lease(messages, 'w')] });

  /* Minute 10:01: the delayed message is due; read and ack it (clustered
   * mode: once JetStream hands it out again, within the 2 s). */
  await setClock(T0 + MINUTE);
  for (let tries = 0; tries < 50 && !(messages = (await pull()).messages).length; tries++) await sleep(200);
  assert.equal(messages.length, 1);
  await ok('POST', `/queues/${queueId}/messages/ack`, { acks: [lease(messages, 'd')] });
  await setClock(T0 + 2 * MINUTE);

  otherAccount = await server.createAccount('other');
  otherToken = await server.createToken('queues_read,queues_write', otherAccount);
});

after(async () => {
  if (server) await server.dispose();
});

const range = (extra = {}) => ({
  accountTag: server.accountId,
  queueId,
  datetimeStart: iso(T0),
  datetimeEnd: iso(T0 + 2 * MINUTE - 1000),
  ...extra,
});

test('the corpus holds the Metrics page\'s queries unchanged', { skip: !existsSync(SEED) && 'seed 004 not beside the repository' }, () => {
  const seed = readFileSync(SEED, 'utf8');
  const page = seed.slice(seed.indexOf('title: Metrics'), seed.indexOf('title: Audit Logs'));
  assert.deepEqual([...page.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]), queries);
});

test("the seed's backlog query: average backlog over the two minutes", async () => {
  /* orders held the delayed message (10 bytes) through 10:00 and nothing
   * through 10:01: 0.5 messages, 5 bytes on average. */
  const [backlog] = (await data(queries[0], range())).queueBacklogAdaptiveGroups;
  assert.deepEqual({ avg: bodyBytes(backlog.avg, 5) }, { avg: { messages: 0.5, bytes: 5 } });
  const [dlq] = (await data(queries[0], range({ queueId: deadLetterId }))).queueBacklogAdaptiveGroups;
  assert.deepEqual({ avg: bodyBytes(dlq.avg, 50) }, { avg: { messages: 1, bytes: 50 } });
});

test("the seed's concurrency query: by hour, newest first", async () => {
  const account = await data(queries[1], range());
  assert.deepEqual(account.queueConsumerMetricsAdaptiveGroups, [
    { avg: { concurrency: 0 }, dimensions: { datetimeHour: '2026-01-01T10:00:00Z' } },
  ]);
});

test("the seed's operations query: count and bytes by minute, newest first", async () => {
  const account = await data(queries[2], range());
  /* 10:00: 5 writes (70,360 B), 6 reads (70,600 B), 3 acks (70,300 B), 1
   * dead-letter move (50 B). 10:01: the delayed message read and acked. */
  assert.deepEqual(account.queueMessageOperationsAdaptiveGroups, [
    { count: 2, sum: { bytes: 20 }, dimensions: { datetimeMinute: '2026-01-01T10:01:00Z' } },
    { count: 15, sum: { bytes: 211310 }, dimensions: { datetimeMinute: '2026-01-01T10:00:00Z' } },
  ]);
});

test('operations by action, consumer type and outcome: billable operations, lag, retries, size', async () => {
  const query = `query Ops($accountTag: string!, $queueId: string!) {
    viewer { accounts(filter: {accountTag: $accountTag}) {
      ops: queueMessageOperationsAdaptiveGroups(limit: 100, filter: {queueId: $queueId},
          orderBy: [actionType_ASC, outcome_ASC]) {
        count
        sum { billableOperations bytes }
        avg { lagTime retryCount }
        max { messageSize }
        dimensions { actionType consumerType outcome }
      }
    } } }`;
  const account = await data(query, { accountTag: server.accountId, queueId });
  const row = (actionType, consumerType, outcome, count, billableOperations, bytes, lagTime, retryCount, messageSize) => ({
    count,
    sum: { billableOperations, bytes },
    avg: { lagTime, retryCount },
    max: { messageSize },
    dimensions: { actionType, consumerType, outcome },
  });
  assert.deepEqual(account.ops, [
    /* x, z, y acked at 10:00, d at 10:01 (60 s after it was written). */
    row('DeleteMessage', 'http', 'dlq', 1, 1, 50, 0, 1, 50),
    row('DeleteMessage', 'http', 'success', 4, 5, 70310, lagOf(15000), 0.25, 70000),
    /* 7 reads: the four, y and w again (1 retry each), d at 10:01. */
    row('ReadMessage', 'http', '', 7, 8, 70610, lagOf(60000 / 7), 2 / 7, 70000),
    /* 70,000 bytes (+100 metadata) is two 64 KB operations. */
    row('WriteMessage', '', '', 5, 6, 70360, 0, 0, 70000),
  ]);
  const dlq = await data(query, { accountTag: server.accountId, queueId: deadLetterId });
  assert.deepEqual(dlq.ops, [row('WriteMessage', '', '', 1, 1, 50, 0, 0, 50)]);
});

test('both spellings of the backlog dataset, filters with OR, date, minute grouping', async () => {
  const query = `query($a: string!, $q: [string!]) { viewer { accounts(filter: {accountTag: $a}) {
    queuesBacklogAdaptiveGroups(limit: 10, filter: {queueId_in: $q, date_geq: "2026-01-01",
        OR: [{datetimeMinute: "2026-01-01T10:00:00Z"}, {datetime_gt: "2026-01-01T10:00:30Z"}]},
        orderBy: [queueID_ASC, datetimeMinute_ASC]) {
      count
      avg { messages bytes delayedMessages }
      dimensions { queueID datetimeMinute date }
    } } } }`;
  const account = await data(query, { a: server.accountId, q: [queueId, deadLetterId] });
  const expected = [
    { queue: queueId, minute: '10:00', messages: 1, bytes: 10, delayed: delayedOf(1) },
    { queue: queueId, minute: '10:01', messages: 0, bytes: 0, delayed: 0 },
    { queue: deadLetterId, minute: '10:00', messages: 1, bytes: 50, delayed: 0 },
    { queue: deadLetterId, minute: '10:01', messages: 1, bytes: 50, delayed: 0 },
  ].sort((a, b) => (a.queue + a.minute < b.queue + b.minute ? -1 : 1));
  assert.deepEqual(
    account.queuesBacklogAdaptiveGroups.map((group, i) => ({ ...group, avg: bodyBytes(group.avg, expected[i]?.bytes) })),
    expected.map((e) => ({
      count: 1,
      avg: { messages: e.messages, bytes: e.bytes, delayedMessages: e.delayed },
      dimensions: { queueID: e.queue, datetimeMinute: `2026-01-01T${e.minute}:00Z`, date: '2026-01-01' },
    })),
  );
});

test("another account's token sees nothing of this account", async () => {
  const query = `{ viewer { accounts(filter: {accountTag: "${server.accountId}"}) {
    queueBacklogAdaptiveGroups(limit: 10) { count } } } }`;
  const res = await graphql(query, undefined, otherToken);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.data, null);
  assert.match(res.json.errors[0].message, /not authorized/);
  /* Its own account, naming this account's queue: no rows. */
  const own = await graphql(
    `{ viewer { accounts(filter: {accountTag: "${otherAccount}"}) {
      queueMessageOperationsAdaptiveGroups(limit: 10, filter: {queueId: "${queueId}"}) { count } } } }`,
    undefined,
    otherToken,
  );
  assert.equal(own.json.errors, null, own.text);
  assert.deepEqual(own.json.data.viewer.accounts[0].queueMessageOperationsAdaptiveGroups, []);
});

test('errors in the {data, errors} shape', async () => {
  const cases = [
    ['{ viewer { accounts(filter: {accountTag: "x"}) { ', /Syntax Error/],
    ['{ nope }', /Cannot query field "nope" on type "Query"/],
    [`{ viewer { accounts(filter: {accountTag: "${server.accountId}"}) { queueBacklogAdaptiveGroups(limit: 1) { avg { lagTime } } } } }`, /Cannot query field "lagTime"/],
    [`{ viewer { accounts(filter: {accountTag: "${server.accountId}"}) { queueBacklogAdaptiveGroups(filter: {datetime_geq: "yesterday"}) { count } } } }`, /expected a time/],
    ['query Q($a: string!) { viewer { accounts(filter: {accountTag: $a}) { queueBacklogAdaptiveGroups { count } } } }', /Variable "\$a"/],
    ['mutation { viewer }', /Only queries/],
  ];
  for (const [query, message] of cases) {
    const res = await graphql(query);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.data, null, query);
    assert.match(res.json.errors[0].message, message, query);
  }
});

test('fragments that would expand to a million fields are refused, not run', async () => {
  const levels = Array.from({ length: 20 }, (_, i) => `fragment F${i} on viewer { ...F${i + 1} ...F${i + 1} }`);
  const query = `{ viewer { ...F0 } } ${levels.join(' ')} fragment F20 on viewer {
    accounts(filter: {accountTag: "${server.accountId}"}) { queueBacklogAdaptiveGroups(limit: 1) { count } } }`;
  const res = await graphql(query);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.data, null);
  assert.match(res.json.errors[0].message, /Query too complex/);
});

test('the test clock is refused to account tokens', async () => {
  const res = await server.api('PUT', '/wharf/test-clock', { now_ms: T0 }, { token: otherToken });
  assert.equal(res.status, 403, res.text);
});

test('no token: 401 in the envelope, before any query runs', async () => {
  const res = await graphql('{ viewer { accounts(filter: {accountTag: "x"}) { queueBacklogAdaptiveGroups { count } } } }', undefined, null);
  assert.equal(res.status, 401, res.text);
  assert.equal(res.json.success, false);
});

/* Last: it moves the clock on and restarts the server. */
test('the history survives a restart; a crash loses only the minute in progress', async () => {
  const before = await data(queries[2], range());
  server.env.WHARF_TEST_CLOCK_MS = String(T0 + 2 * MINUTE);
  await server.restart();
  assert.deepEqual(await data(queries[2], range()), before);

  /* 10:02 one write, written when the clock moves to 10:03; another write
   * at 10:03, then a crash before 10:03 ends. */
  await ok('POST', `/queues/${queueId}/messages`, text('a'.repeat(7)));
  await setClock(T0 + 3 * MINUTE);
  await ok('POST', `/queues/${queueId}/messages`, text('b'.repeat(9)));
  server.env.WHARF_TEST_CLOCK_MS = String(T0 + 4 * MINUTE);
  await server.restart({ crash: true });
  const after = await data(queries[2], range({ datetimeEnd: iso(T0 + 4 * MINUTE) }));
  assert.deepEqual(after.queueMessageOperationsAdaptiveGroups, [
    { count: 1, sum: { bytes: 7 }, dimensions: { datetimeMinute: '2026-01-01T10:02:00Z' } },
    ...before.queueMessageOperationsAdaptiveGroups,
  ]);
});
