/*
 * wrangler.test.mjs — the unmodified `wrangler queues …` commands against a
 * Wharf server (CLOUDFLARE_API_BASE_URL pointing at it). Each wrangler run
 * costs a second or two, so the tests share one queue and make about a dozen
 * invocations; the effect of each is checked over the REST API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from './harness.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

async function queueByName(name) {
  const res = await server.api('GET', server.acct(`/queues?name=${encodeURIComponent(name)}`));
  assert.equal(res.status, 200);
  return res.json.result[0];
}

async function wrangler(args) {
  const r = await server.wrangler(args);
  return { ...r, where: `wrangler ${args.join(' ')} -> ${r.code}\n${r.output}\n--- server:\n${server.log()}` };
}

describe('wrangler queues', () => {
  const Q = 'wrangler-q';

  test('create', async () => {
    const r = await wrangler(['queues', 'create', Q, '--message-retention-period-secs', '7200']);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /Created queue 'wrangler-q'/, r.where);
    const q = await queueByName(Q);
    assert.ok(q, 'queue exists');
    assert.equal(q.settings.message_retention_period, 7200);
  });

  test('create of an existing name fails and prints the server message', async () => {
    const r = await wrangler(['queues', 'create', Q]);
    assert.notEqual(r.code, 0, r.where);
    assert.match(r.output, /\[code: \d+\]/, r.where);
    const res = await server.api('GET', server.acct('/queues'));
    assert.equal(res.json.result.filter((q) => q.queue_name === Q).length, 1);
  });

  test('list', async () => {
    const r = await wrangler(['queues', 'list']);
    assert.equal(r.code, 0, r.where);
    const q = await queueByName(Q);
    assert.match(r.output, new RegExp(Q), r.where);
    assert.match(r.output, new RegExp(q.queue_id), r.where);
  });

  test('info', async () => {
    const r = await wrangler(['queues', 'info', Q]);
    assert.equal(r.code, 0, r.where);
    const q = await queueByName(Q);
    assert.match(r.output, /Queue Name: wrangler-q/, r.where);
    assert.match(r.output, new RegExp(`Queue ID: ${q.queue_id}`), r.where);
    assert.match(r.output, /Number of Consumers: 0/, r.where);
  });

  test('info lists the declared producers', async () => {
    const q = await queueByName(Q);
    for (const producer of [{ type: 'worker', script: 'image-producer' }, { type: 'r2_bucket', bucket_name: 'uploads' }]) {
      const res = await server.api('POST', server.acct(`/queues/${q.queue_id}/producers`), producer);
      assert.equal(res.status, 200, res.text);
    }
    const r = await wrangler(['queues', 'info', Q]);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /Number of Producers: 2/, r.where);
    assert.match(r.output, /Producers: worker:image-producer, r2_bucket:uploads/, r.where);
    for (const name of ['image-producer', 'uploads']) {
      const res = await server.api('DELETE', server.acct(`/queues/${q.queue_id}/producers/${name}`));
      assert.equal(res.status, 200, res.text);
    }
    assert.match((await wrangler(['queues', 'info', Q])).output, /Number of Producers: 0/);
  });

  test('update --delivery-delay-secs', async () => {
    const r = await wrangler(['queues', 'update', Q, '--delivery-delay-secs', '7']);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /Updated queue wrangler-q/, r.where);
    const q = await queueByName(Q);
    assert.equal(q.settings.delivery_delay, 7);
    assert.equal(q.settings.message_retention_period, 7200, 'retention kept');
  });

  test('consumer http add, then remove', async () => {
    const add = await wrangler([
      'queues', 'consumer', 'http', 'add', Q,
      '--batch-size', '20', '--message-retries', '2', '--visibility-timeout-secs', '5',
      '--retry-delay-secs', '1', '--dead-letter-queue', 'wrangler-dlq',
    ]);
    assert.equal(add.code, 0, add.where);
    assert.match(add.output, /Added consumer to queue wrangler-q/, add.where);
    const q = await queueByName(Q);
    assert.equal(q.consumers_total_count, 1);
    const c = q.consumers[0];
    assert.equal(c.type, 'http_pull');
    assert.equal(c.settings.batch_size, 20);
    assert.equal(c.settings.max_retries, 2);
    assert.equal(c.settings.visibility_timeout_ms, 5000);
    assert.equal(c.settings.retry_delay, 1);
    assert.equal(c.dead_letter_queue, 'wrangler-dlq');

    const rm = await wrangler(['queues', 'consumer', 'http', 'remove', Q]);
    assert.equal(rm.code, 0, rm.where);
    assert.match(rm.output, /Removed consumer from queue wrangler-q/, rm.where);
    assert.equal((await queueByName(Q)).consumers_total_count, 0);
  });

  test('consumer (worker) add, then remove by script name', async () => {
    const add = await wrangler(['queues', 'consumer', 'add', Q, 'my-script', '--batch-size', '10', '--max-concurrency', '3']);
    assert.equal(add.code, 0, add.where);
    const q = await queueByName(Q);
    assert.equal(q.consumers[0].type, 'worker');
    assert.equal(q.consumers[0].script, 'my-script');
    assert.equal(q.consumers[0].settings.max_concurrency, 3);
    const rm = await wrangler(['queues', 'consumer', 'remove', Q, 'my-script']);
    assert.equal(rm.code, 0, rm.where);
    assert.equal((await queueByName(Q)).consumers_total_count, 0);
  });

  test('pause-delivery and resume-delivery', async () => {
    const p = await wrangler(['queues', 'pause-delivery', Q]);
    assert.equal(p.code, 0, p.where);
    assert.match(p.output, /Paused message delivery for queue wrangler-q/, p.where);
    assert.equal((await queueByName(Q)).settings.delivery_paused, true);
    const r = await wrangler(['queues', 'resume-delivery', Q]);
    assert.equal(r.code, 0, r.where);
    assert.equal((await queueByName(Q)).settings.delivery_paused, false);
    assert.equal((await queueByName(Q)).settings.delivery_delay, 7, 'pausing kept the settings');
  });

  test('purge --force empties the queue', async () => {
    const q = await queueByName(Q);
    for (let i = 0; i < 3; i++) {
      const s = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body: `w${i}`, content_type: 'text' });
      assert.equal(s.status, 200);
    }
    const m0 = await server.api('GET', server.acct(`/queues/${q.queue_id}/metrics`));
    assert.equal(m0.json.result.backlog_count, 3);
    const r = await wrangler(['queues', 'purge', Q, '--force']);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /Purged Queue 'wrangler-q'/, r.where);
    const m1 = await server.api('GET', server.acct(`/queues/${q.queue_id}/metrics`));
    assert.equal(m1.json.result.backlog_count, 0);
  });

  test('delete, then info says it does not exist', async () => {
    const r = await wrangler(['queues', 'delete', Q]);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /Deleted queue wrangler-q/, r.where);
    assert.equal(await queueByName(Q), undefined);
    const info = await wrangler(['queues', 'info', Q]);
    assert.notEqual(info.code, 0, info.where);
    assert.match(info.output, /does not exist/, info.where);
  });

  test('a wrong token is reported as an authentication failure', async () => {
    const r = await server.wrangler(['queues', 'list'], { CLOUDFLARE_API_TOKEN: 'wrong-token' });
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /code: 10000|Authentication error/i, r.output);
  });
});
