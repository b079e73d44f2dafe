/*
 * prometheus.test.mjs — GET /metrics (DESIGN.md §1): the queues' backlog in
 * Prometheus' text format, for a scraper holding a token. An account's token
 * sees its own queues only; the admin token every queue and the store's
 * figures. Issue 16: delayed messages, and message operations by action
 * and outcome (count, bytes, billable, lag, retries) as the GraphQL dataset
 * counts them; the Grafana dashboard under deploy/grafana queries only what
 * is exported. No token, a wrong one, one without queues_read, or another
 * method: the usual errors in the envelope.
 *
 * Clustered mode (WHARF_TEST_NATS=1): each node exports the counters of
 * what it served, so the tests scrape both nodes and add the counters up,
 * as a Prometheus scraping every instance does (sum by (queue)); the
 * gauges are the cluster's on either node. There is no message log (no
 * wharf_store_* figures), backlog bytes are the stream's (each message's
 * subject and headers too) and JetStream does not tell delayed messages
 * apart (0).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { assertError, CLUSTER, startServer } from './harness.mjs';

let server;
let queueId;

before(async () => {
  server = await startServer();
  const created = await server.api('POST', server.acct('/queues'), { queue_name: 'scraped' });
  assert.equal(created.status, 200, created.text);
  queueId = created.json.result.queue_id;
  const consumer = await server.api('POST', server.acct(`/queues/${queueId}/consumers`), { type: 'http_pull' });
  assert.equal(consumer.status, 200, consumer.text);
  for (const body of ['one', 'two', 'three']) {
    const sent = await server.api('POST', server.acct(`/queues/${queueId}/messages`), { body });
    assert.equal(sent.status, 200, sent.text);
  }
});

after(async () => {
  if (server) await server.dispose();
});

function scrape(token, method = 'GET', origin = undefined) {
  return server.api(method, '/metrics', undefined, { token, root: true, origin });
}

/* One scrape (embedded), or every node's with the counters (*_total)
 * added up and the gauges of the first (clustered). */
async function scrapeAll(token) {
  if (!CLUSTER) return scrape(token);
  const nodes = await Promise.all(server.nodePorts.map((port) => scrape(token, 'GET', `http://127.0.0.1:${port}`)));
  for (const res of nodes) if (res.status !== 200) return res;
  const sums = {};
  for (const res of nodes) {
    for (const line of res.text.split('\n')) {
      const m = line.match(/^(\w+_total(?:\{.*\})?) (-?[0-9.e+]+)$/);
      if (m) sums[m[1]] = (sums[m[1]] ?? 0) + Number(m[2]);
    }
  }
  const text = nodes[0].text
    .split('\n')
    .map((line) => {
      const m = line.match(/^(\w+_total(?:\{.*\})?) /);
      return m ? `${m[1]} ${sums[m[1]]}` : line;
    })
    .join('\n');
  return { ...nodes[0], text };
}

/* Samples by name, then by the queue label (or '' for unlabelled ones);
 * checks that every line is a comment or `name{labels} value`, and that
 * each family's HELP and TYPE come before its samples. */
function parse(text) {
  const samples = {};
  const typed = new Set();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const comment = line.match(/^# (HELP|TYPE) (\w+) .+$/);
    if (comment) {
      if (comment[1] === 'TYPE') typed.add(comment[2]);
      continue;
    }
    const m = line.match(/^(\w+)(?:\{(.*)\})? (-?[0-9.e+]+)$/);
    assert.ok(m, `not a sample line: ${line}`);
    assert.ok(typed.has(m[1]), `${m[1]} before its TYPE line`);
    const labels = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    /* By queue; samples with more labels (operations) by queue|action|outcome. */
    const key = [labels.queue ?? '', ...(labels.action !== undefined ? [labels.action, labels.outcome] : [])].join('|');
    samples[m[1]] ??= {};
    samples[m[1]][key] = Number(m[3]);
  }
  return samples;
}

test('the admin token sees every queue and the store', async () => {
  const res = await scrapeAll(server.token);
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const s = parse(res.text);
  assert.equal(s.wharf_queue_backlog_messages.scraped, 3);
  if (CLUSTER) assert.ok(s.wharf_queue_backlog_bytes.scraped > 5 + 5 + 7); // the stream's: subjects and headers too
  else assert.equal(s.wharf_queue_backlog_bytes.scraped, 5 + 5 + 7); // the JSON text: "one" is 5 bytes
  const oldest = s.wharf_queue_oldest_message_timestamp_seconds.scraped;
  assert.ok(Math.abs(oldest - Date.now() / 1000) < 600, `oldest ${oldest}`);
  assert.equal(s.wharf_queue_delivery_paused.scraped, 0);
  assert.equal(s.wharf_queue_consumer_concurrency.scraped, 0);
  if (CLUSTER) {
    assert.equal(s.wharf_store_disk_bytes, undefined);
    assert.equal(s.wharf_pulls_waiting[''], 0);
    return;
  }
  assert.ok(s.wharf_store_disk_bytes[''] > 0);
  assert.ok(s.wharf_store_appends_total[''] >= 3);
  assert.ok(s.wharf_store_fsyncs_total[''] >= 1);
  assert.ok(s.wharf_store_segments[''] >= 1);
});

test('the figures follow the queue: pull and ack, pause', async () => {
  const pulled = await server.api('POST', server.acct(`/queues/${queueId}/messages/pull`), { batch_size: 1 });
  assert.equal(pulled.status, 200, pulled.text);
  const acked = await server.api('POST', server.acct(`/queues/${queueId}/messages/ack`), {
    acks: [{ lease_id: pulled.json.result.messages[0].lease_id }],
  });
  assert.equal(acked.json.result.ackCount, 1, acked.text);
  const paused = await server.api('PATCH', server.acct(`/queues/${queueId}`), { settings: { delivery_paused: true } });
  assert.equal(paused.status, 200, paused.text);
  const s = parse((await scrapeAll(server.token)).text);
  assert.equal(s.wharf_queue_backlog_messages.scraped, 2);
  assert.equal(s.wharf_queue_delivery_paused.scraped, 1);
  assert.equal(s.wharf_queue_messages_sent_total.scraped, 3);
  assert.equal(s.wharf_queue_messages_delivered_total.scraped, 1);
  assert.equal(s.wharf_queue_messages_acked_total.scraped, 1);
  assert.equal(s.wharf_queue_messages_retried_total.scraped, 0);
});

test('counters: a retry, then a dead-letter move, then a delete by ref', async () => {
  const q = (await server.api('POST', server.acct('/queues'), { queue_name: 'counted' })).json.result.queue_id;
  const consumer = await server.api('POST', server.acct(`/queues/${q}/consumers`), {
    type: 'http_pull',
    dead_letter_queue: 'counted-dlq',
    settings: { max_retries: 1, retry_delay: 0 },
  });
  assert.equal(consumer.status, 200, consumer.text);
  await server.api('POST', server.acct(`/queues/${q}/messages/batch`), { messages: [{ body: 'a', content_type: 'text' }, { body: 'b', content_type: 'text' }] });
  for (let round = 0; round < 2; round++) { // fails twice: retried once, then dead-lettered
    const pulled = await server.api('POST', server.acct(`/queues/${q}/messages/pull`), { batch_size: 10 });
    const first = pulled.json.result.messages.find((m) => m.body === 'a');
    assert.ok(first, pulled.text);
    const retried = await server.api('POST', server.acct(`/queues/${q}/messages/ack`), { retries: [{ lease_id: first.lease_id }] });
    assert.equal(retried.json.result.retryCount, 1, retried.text);
  }
  const peeked = await server.api('POST', server.acct(`/queues/${q}/messages/peek`), {});
  const b = peeked.json.result.messages.find((m) => m.body === 'b');
  await server.api('POST', server.acct(`/queues/${q}/messages/purge`), { refs: [{ ref: b.ref }] });
  const s = parse((await scrapeAll(server.token)).text);
  assert.equal(s.wharf_queue_messages_sent_total.counted, 2);
  assert.equal(s.wharf_queue_messages_delivered_total.counted, 3); // a, b; then a
  assert.equal(s.wharf_queue_messages_retried_total.counted, 1);
  assert.equal(s.wharf_queue_messages_dead_lettered_total.counted, 1);
  assert.equal(s.wharf_queue_messages_deleted_total.counted, 1);
  assert.equal(s.wharf_queue_messages_acked_total.counted, 0);
  assert.equal(s.wharf_queue_backlog_messages.counted, 0);
  assert.equal(s.wharf_queue_backlog_messages['counted-dlq'], 1);
  /* The same, as the GraphQL dataset counts operations: writes, reads, deletes by outcome. */
  const ops = s.wharf_queue_operations_total;
  assert.equal(ops['counted|WriteMessage|'], 2);
  assert.equal(ops['counted|ReadMessage|'], 3);
  assert.equal(ops['counted|DeleteMessage|success'], 1); // b, by ref
  assert.equal(ops['counted|DeleteMessage|dlq'], 1);
  assert.equal(ops['counted|DeleteMessage|fail'], 0);
  assert.equal(ops['counted-dlq|WriteMessage|'], 1);
  assert.equal(s.wharf_queue_operation_bytes_total['counted|WriteMessage|'], 2);
  assert.equal(s.wharf_queue_operation_billable_total['counted|WriteMessage|'], 2);
  assert.equal(s.wharf_queue_operation_retries_total['counted|DeleteMessage|dlq'], 1); // the retry before the failing delivery that moved it
  assert.ok(s.wharf_queue_operation_lag_seconds_total['counted|DeleteMessage|dlq'] >= 0);
});

test('delayed messages are a gauge of their own', async () => {
  const q = (await server.api('POST', server.acct('/queues'), { queue_name: 'later' })).json.result.queue_id;
  const sent = await server.api('POST', server.acct(`/queues/${q}/messages`), { body: 'x', delay_seconds: 600 });
  assert.equal(sent.status, 200, sent.text);
  await server.api('POST', server.acct(`/queues/${q}/messages`), { body: 'now' });
  const s = parse((await scrapeAll(server.token)).text);
  assert.equal(s.wharf_queue_delayed_messages.later, CLUSTER ? 0 : 1);
  assert.equal(s.wharf_queue_backlog_messages.later, 2);
  assert.equal(s.wharf_queue_delayed_messages.scraped, 0);
});

test("an account's token sees only that account's queues, not the store", async () => {
  const other = await server.createAccount('scraper-co');
  const token = await server.createToken('queues_read', other);
  const created = await server.api('POST', `/accounts/${other}/queues`, { queue_name: 'theirs' });
  assert.equal(created.status, 200, created.text);
  const res = await scrape(token);
  assert.equal(res.status, 200, res.text);
  const s = parse(res.text);
  assert.deepEqual(Object.keys(s.wharf_queue_backlog_messages), ['theirs']);
  assert.equal(s.wharf_store_disk_bytes, undefined);
  assert.doesNotMatch(res.text, /scraped/);
});

test('no token, a wrong token, no queues_read, another method: errors in the envelope', async () => {
  assertError(assert, await scrape(null), 401, 10000);
  assertError(assert, await scrape('not-a-real-token'), 401, 10000);
  const writeOnly = await server.createToken('queues_write');
  assertError(assert, await scrape(writeOnly), 403, 9109);
  assertError(assert, await scrape(server.token, 'POST'), 405);
});

test('the Grafana dashboard (deploy/grafana) queries only metrics the server exports', async () => {
  const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/wharf-queues.json', import.meta.url), 'utf8'));
  const exported = new Set(Object.keys(parse((await scrape(server.token)).text)));
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 8);
  const used = new Set(exprs.flatMap((e) => e.match(/wharf_\w+/g)));
  for (const name of used) assert.ok(exported.has(name), `${name} is not in GET /metrics`);
  for (const wanted of ['wharf_queue_backlog_messages', 'wharf_queue_operations_total', 'wharf_queue_consumer_concurrency'])
    assert.ok(used.has(wanted), `the dashboard charts ${wanted}`);
});
