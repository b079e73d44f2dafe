/*
 * workers_consumer.test.mjs — issue 17, consumer side: `wharf dev` runs the
 * queue-handler example Worker (examples/workers/queue-handler) in the real
 * workerd, and Wharf pushes the batches of the queues it consumes to its
 * queue() handler. The Worker reports every batch it gets, as is, to the
 * `seen` queue with contentType v8 (so bodies keep their JavaScript types)
 * and then follows the plan in the batch's bodies; the tests read `seen`
 * through an http_pull consumer and judge what the handler got and what
 * Wharf then did: every content type and delay arrives as sent, each
 * ack/retry/ackAll/retryAll/throw combination ends as the Workers docs say,
 * retries reach the dead-letter queue, bad signatures are refused, and a
 * restart of `wharf dev` or a crash of Wharf loses nothing that was
 * answered.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import { after, before, describe, test } from 'node:test';
import { Queue } from '../../clients/node/src/index.mjs';
import { WharfDev, drainQueue, queueNamed } from './dev_harness.mjs';
import { CLUSTER, sleep, startServer } from './harness.mjs';

let server;
let dev;
const ids = {}; /* queue name -> id */
const reports = []; /* every batch the handler got, in arrival order */

before(async () => {
  server = await startServer();
  dev = new WharfDev(server, 'queue-handler');
  await dev.start();
  for (const name of ['work', 'types', 'seen', 'work-dlq']) ids[name] = (await queueByName(name)).queue_id;
});

after(async () => {
  if (dev) await dev.dispose();
  if (server) await server.dispose();
});

const queueByName = (name) => queueNamed(server, name);
const take = async (name) => (await drainQueue(server, name)).map((m) => m.body);

/* Waits until the handler's reports satisfy done(reports), then returns
 * them; fails with what arrived and what wharf dev printed. */
async function until(done, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    reports.push(...(await take('seen'))); /* each with at: when the Worker got the batch */
    if (done(reports)) return reports;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; reports: ${JSON.stringify(reports.slice(-10))}\n${dev.output}`);
    }
    await sleep(100);
  }
}

/* Every delivery of a message whose body has tag === tag (a string body is the tag). */
function deliveries(tag) {
  const out = [];
  for (const r of reports)
    for (const m of r.messages)
      if (m.body === tag || m.body?.tag === tag) out.push({ queue: r.queue, metrics: r.metrics, at: r.at, ...m });
  return out;
}

function assertHas(bodies, value) {
  const same = (b) => {
    try {
      assert.deepStrictEqual(b, value);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(bodies.some(same), `no body equals ${String(value?.constructor?.name)} ${JSON.stringify(value)} in ${bodies.length} bodies`);
}

async function send(name, messages) {
  const r = await server.api('POST', server.acct(`/queues/${ids[name]}/messages/batch`), { messages });
  assert.equal(r.status, 200, r.text);
}

describe('wharf dev: queue() consumers', () => {
  test('the Worker is registered and attached to both queues with the config settings', async () => {
    const workers = (await server.api('GET', server.acct('/workers/queue-handlers'))).json.result;
    assert.equal(workers.length, 1);
    assert.equal(workers[0].script_name, 'queue-handler');
    assert.match(workers[0].url, /^http:\/\/127\.0\.0\.1:\d+\/queue$/);
    const state = await stat(path.join(dev.dir, '.wharf-dev/worker.json'));
    assert.equal(state.mode & 0o777, 0o600, 'the secret is readable by its owner only');

    const work = (await queueByName('work')).consumers[0];
    assert.equal(work.type, 'worker');
    assert.equal(work.script_name, 'queue-handler');
    assert.equal(work.dead_letter_queue, 'work-dlq');
    assert.deepEqual(work.settings, { batch_size: 10, max_retries: 2, retry_delay: 0, max_wait_time_ms: 1000 });
    const types = (await queueByName('types')).consumers[0];
    assert.equal(types.script_name, 'queue-handler');
    assert.deepEqual(types.settings, { batch_size: 1, max_retries: 3, retry_delay: 0, max_wait_time_ms: 1000, max_concurrency: 2 });
  });

  const EXPECTED = {
    json: { hello: 'world', n: [1, 2, 3] },
    text: 'plain text, ünïcode',
    bytes: new Uint8Array([0, 1, 255]).buffer,
    v8: { d: new Date(0), m: new Map([[1, 2]]) },
  };

  test("a Worker's send() of every content type reaches queue() with its body and type", async () => {
    for (const type of Object.keys(EXPECTED)) {
      const res = await fetch(`${dev.url}/send?type=${type}`);
      assert.equal(res.status, 200, await res.text());
    }
    const got = await until((rs) => rs.filter((r) => r.queue === 'types').length >= 4, 'four batches of types');
    const batches = got.filter((r) => r.queue === 'types');
    /* json a value, text a string, bytes an ArrayBuffer, v8 as the Worker sent it */
    for (const value of Object.values(EXPECTED)) assertHas(batches.map((r) => r.messages[0].body), value);
    for (const r of batches) {
      assert.equal(r.messages.length, 1, 'max_batch_size 1');
      const [m] = r.messages;
      assert.match(m.id, /^[0-9a-f]{32}$/);
      assert.ok(m.timestamp instanceof Date && Math.abs(m.timestamp - Date.now()) < 60_000, String(m.timestamp));
      assert.equal(m.attempts, 1);
      assert.ok(r.metrics.backlogCount >= 1, 'batch.metadata has the backlog');
      assert.ok(r.metrics.backlogBytes > 0);
      assert.ok(r.metrics.oldestMessageTimestamp instanceof Date);
    }
    reports.length = 0;
  });

  test('REST and Node producers: every content type arrives typed; delays hold messages back', async () => {
    await send('types', [
      { body: { tag: 'rest-json' }, content_type: 'json' },
      { body: 'rest-text', content_type: 'text' },
      { body: Buffer.from([7, 8]).toString('base64'), content_type: 'bytes' },
      { body: v8.serialize(new Set(['rest-v8'])).toString('base64'), content_type: 'v8' },
    ]);
    const node = new Queue({ baseURL: server.url, accountId: server.accountId, apiToken: server.token, queueName: 'types' });
    const structured = { tag: 'node-v8', d: new Date(5), m: new Map([['k', [1n]]]), u: new Uint8Array([1, 2]) };
    await node.send(structured, { contentType: 'v8' });
    const sent = Date.now();
    await node.send('delayed-text', { contentType: 'text', delaySeconds: 2 });
    await send('types', [{ body: { tag: 'delayed-rest' }, delay_seconds: 3 }]);
    await until((rs) => deliveries('delayed-rest').length === 1, 'the delayed messages', 10_000);
    const bodies = reports.filter((r) => r.queue === 'types').map((r) => r.messages[0].body);
    assertHas(bodies, { tag: 'rest-json' });
    assertHas(bodies, 'rest-text');
    assertHas(bodies, new Uint8Array([7, 8]).buffer);
    assertHas(bodies, new Set(['rest-v8']));
    assertHas(bodies, structured); /* a Node producer and a Worker consumer share v8 */
    assert.ok(deliveries('delayed-text')[0].at - sent >= 1900, 'delaySeconds 2 held it back');
    assert.ok(deliveries('delayed-rest')[0].at - sent >= 2900, 'delay_seconds 3 held it back');
    reports.length = 0;
  });

  /* Three messages a, b, c in one batch; the plan runs on the first
   * delivery, a redelivery is acked. [name, plan (a step's number is the
   * index of the message it names), deliveries of a, b, c]:
   * 1 means acked the first time, 2 retried once. The precedence is seed
   * 004's "Explicit acknowledgement and retries": the first call on a
   * message wins, a call on a message beats ackAll()/retryAll(), and
   * explicit acks stand when the handler throws. CLUSTER: each node forms
   * its own batches (push/dispatcher.c), so a, b and c may come in two; the
   * plan, in every body, applies to each batch's own messages, and the
   * outcome is the same. */
  const TABLE = [
    ['returns normally: all acked', [], [1, 1, 1]],
    ['throws: all retried', ['throw'], [2, 2, 2]],
    ['ack(a), then throws: a stays acked', [{ ack: 0 }, 'throw'], [1, 2, 2]],
    ['retry(b), returns: only b retried', [{ retry: 1 }], [1, 2, 1]],
    ['ackAll()', ['ackAll'], [1, 1, 1]],
    ['retryAll()', ['retryAll'], [2, 2, 2]],
    ['ack(a), then retryAll(): a acked', [{ ack: 0 }, 'retryAll'], [1, 2, 2]],
    ['retry(a), then ackAll(): a retried', [{ retry: 0 }, 'ackAll'], [2, 1, 1]],
    ['ackAll(), then throws: all acked', ['ackAll', 'throw'], [1, 1, 1]],
    ['retry(c), then throws: all retried', [{ retry: 2 }, 'throw'], [2, 2, 2]],
    ['retry(a) then ack(a), ack(b) then retry(b): the first call wins', [{ retry: 0 }, { ack: 0 }, { ack: 1 }, { retry: 1 }], [2, 1, 1]],
    ['retry(c) in ctx.waitUntil() after returning: c retried', [{ waitUntilRetry: 2 }], [1, 1, 2]],
  ];

  for (const [name, plan, expected] of TABLE) {
    test(`table: ${name}`, async () => {
      const tags = ['a', 'b', 'c'].map((x) => `${name}/${x}`);
      const named = plan.map((step) => (typeof step !== 'object' ? step : Object.fromEntries(
        Object.entries(step).map(([k, v]) => [k, ['ack', 'retry', 'waitUntilRetry'].includes(k) ? tags[v] : v]))));
      await send('work', tags.map((tag) => ({ body: { tag, plan: named } })));
      const total = expected.reduce((a, b) => a + b, 0);
      const count = () => tags.reduce((n, t) => n + deliveries(t).length, 0);
      await until(() => count() >= total, `${total} deliveries`);
      await sleep(1500); /* a wrong extra delivery would come within a batch timeout */
      await until(() => true, 'the last reports');
      const batch = reports.find((r) => r.messages.some((m) => m.body.tag === tags[0]));
      assert.equal(batch.queue, 'work');
      if (!CLUSTER) assert.deepEqual(batch.messages.map((m) => m.body.tag), tags, 'the three came in one batch');
      assert.deepEqual(tags.map((t) => deliveries(t).length), expected);
      tags.forEach((t, i) => assert.deepEqual(deliveries(t).map((d) => d.attempts), expected[i] === 2 ? [1, 2] : [1]));
    });
  }

  test('retry({delaySeconds}) and retryAll({delaySeconds}) hold the retries back', async () => {
    const plan = [{ retry: 'delay/a', delaySeconds: 2 }];
    await send('work', [{ body: { tag: 'delay/a', plan } }, { body: { tag: 'delay/b', plan } }]);
    await until(() => deliveries('delay/a').length === 2, 'a again', 10_000);
    const [first, again] = deliveries('delay/a');
    assert.ok(again.at - first.at >= 1900, `redelivered after ${again.at - first.at} ms`);
    assert.equal(deliveries('delay/b').length, 1, 'b acked');

    await send('work', ['all/a', 'all/b'].map((tag) => ({ body: { tag, plan: [{ retryAll: 2 }] } })));
    await until(() => deliveries('all/b').length === 2 && deliveries('all/a').length === 2, 'both again', 10_000);
    assert.ok(deliveries('all/a')[1].at - deliveries('all/a')[0].at >= 1900);
  });

  test('a message retried max_retries times goes to the dead-letter queue, body intact', async () => {
    await send('work', [{ body: { tag: 'doomed', plan: ['always', 'throw'] } }]);
    await until(() => deliveries('doomed').length === 3, 'three deliveries (max_retries 2)');
    let dead = [];
    const deadline = Date.now() + 10_000;
    while (!dead.length && Date.now() < deadline) {
      dead = await take('work-dlq');
      await sleep(100);
    }
    assert.deepEqual(dead, [{ tag: 'doomed', plan: ['always', 'throw'] }]);
    assert.deepEqual(deliveries('doomed').map((d) => d.attempts), [1, 2, 3]);
    await sleep(1500);
    await until(() => true, 'the last reports');
    assert.equal(deliveries('doomed').length, 3, 'not delivered again once dead-lettered');
  });

  test('a batch with a bad signature is refused and never reaches queue()', async () => {
    const { url } = (await server.api('GET', server.acct('/workers/queue-handlers'))).json.result[0];
    const body = JSON.stringify({ queue: 'work', batch_id: 'x', messages: [{ id: 'f'.repeat(32), timestamp_ms: Date.now(), attempts: 1, content_type: 'text', body: 'forged' }] });
    for (const signature of [undefined, 'sha256=' + '0'.repeat(64), 'garbage']) {
      const headers = { 'content-type': 'application/json' };
      if (signature) headers['x-wharf-signature'] = signature;
      const res = await fetch(url, { method: 'POST', headers, body });
      assert.equal(res.status, 401);
    }
    await sleep(500);
    await until(() => true, 'reports');
    assert.equal(deliveries('forged').length, 0);
  });

  test('a restart of wharf dev keeps the registration and loses no message sent meanwhile', async () => {
    const before = (await server.api('GET', server.acct('/workers/queue-handlers'))).json.result[0];
    assert.deepEqual(await dev.stop(), { code: 0, signal: null });
    assert.equal((await queueByName('types')).settings.delivery_paused, true, 'paused while stopped');
    const tags = Array.from({ length: 5 }, (_, i) => `while-down-${i}`);
    await send('types', tags.map((tag) => ({ body: tag, content_type: 'text' })));
    const mark = dev.output.length;
    await dev.start();
    await until(() => tags.every((t) => deliveries(t).length >= 1), 'the messages sent while it was down');
    const afterwards = (await server.api('GET', server.acct('/workers/queue-handlers'))).json.result[0];
    assert.deepEqual(afterwards, before, 'same URL, same registration: the kept secret still signs');
    assert.doesNotMatch(dev.output.slice(mark), /registering/);
    assert.equal((await queueByName('types')).settings.delivery_paused, false, 'resumed');
  });

  test('a crash of Wharf loses no message whose send was answered', async () => {
    if (CLUSTER) { /* the leases of a node killed are the cluster's: they end with AckWait, the visibility timeout */
      const { queue_id: queueId, consumers: [consumer] } = await queueByName('types');
      const { consumer_id: id, type, script_name: script, settings } = consumer;
      const r = await server.api('PUT', server.acct(`/queues/${queueId}/consumers/${id}`), { type, script_name: script, settings: { ...settings, visibility_timeout_ms: 2000 } });
      assert.equal(r.status, 200, r.text);
    }
    const tags = Array.from({ length: 20 }, (_, i) => `crash-${i}`);
    for (const tag of tags.slice(0, 10)) await send('types', [{ body: tag, content_type: 'text' }]);
    await server.restart({ crash: true });
    for (const tag of tags.slice(10)) await send('types', [{ body: tag, content_type: 'text' }]);
    await until(() => tags.every((t) => deliveries(t).length >= 1), 'all 20 messages', 30_000);
  });
});
