/*
 * workers_seeds.test.mjs — issue 17: the seeds' tutorial Workers, copied
 * unchanged into examples/workers/, run under `wharf dev` against a real
 * `wharf serve`, and do what the tutorials say:
 * - seed 000's producer and consumer: a POST to the producer queues the
 *   image, the consumer fetches it (from a local HTTP server here), and,
 *   with no R2 bucket behind env.ASSETS, logs the tutorial's failure line
 *   and retries it until max_retries (3) deletes it;
 * - seed 000's DLQ example: its one handler consumes email-queue and
 *   email-dlq and throws (no D1 behind env.DB), so the message moves to
 *   email-dlq after max_retries 3 and is deleted there after 3 more;
 * - seed 004's exponential backoff: retry({delaySeconds: 30 ** attempts})
 *   holds the message back 30 s after its first delivery (its config is a
 *   wrangler.jsonc).
 * What Wharf did is read from its Prometheus counters per queue.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WharfDev } from './dev_harness.mjs';
import { sleep, startServer } from './harness.mjs';

let server;
const devs = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const d of devs) await d.dispose();
  if (server) await server.dispose();
});

async function run(example) {
  const dev = new WharfDev(server, example);
  devs.push(dev);
  return dev.start();
}

/* The queue's Prometheus counters: {delivered, dead_lettered, deleted, delayed, backlog}. */
async function counters(queue) {
  const r = await server.api('GET', '/metrics', undefined, { root: true });
  assert.equal(r.status, 200, r.text);
  const out = {};
  const names = {
    wharf_queue_messages_delivered_total: 'delivered',
    wharf_queue_messages_dead_lettered_total: 'dead_lettered',
    wharf_queue_messages_deleted_total: 'deleted',
    wharf_queue_delayed_messages: 'delayed',
    wharf_queue_backlog_messages: 'backlog',
  };
  for (const line of r.text.split('\n')) {
    const m = /^(\w+)\{[^}]*queue="([^"]+)"[^}]*\} (\S+)$/.exec(line);
    if (m && m[2] === queue && names[m[1]]) out[names[m[1]]] = Number(m[3]);
  }
  return out;
}

async function until(predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${devs.map((d) => d.output).join('\n')}`);
    await sleep(100);
  }
}

async function sendTo(queueName, body) {
  const q = (await server.api('GET', server.acct(`/queues?name=${queueName}`))).json.result[0];
  const r = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body });
  assert.equal(r.status, 200, r.text);
}

describe("the seeds' Workers under wharf dev", () => {
  test("seed 000's producer and consumer: queued, fetched, failed as the tutorial shows, retried, deleted", async () => {
    const fetched = [];
    const images = http.createServer((req, res) => {
      fetched.push(req.url);
      res.end('not really a jpeg');
    });
    await new Promise((r) => images.listen(0, '127.0.0.1', r));
    try {
      const producer = await run('image-producer');
      const consumer = await run('image-consumer');
      assert.match(consumer.output, /warning: these bindings are not provided and will be undefined: ASSETS \(r2_buckets\)/);
      const imageUrl = `http://127.0.0.1:${images.address().port}/photo.jpg`;
      const res = await fetch(producer.url, { method: 'POST', body: JSON.stringify({ imageUrl, userId: 'user-42' }) });
      assert.equal(res.status, 202);
      assert.deepEqual(await res.json(), { status: 'queued', imageUrl });
      /* one delivery and max_retries (default 3) retries, then deleted */
      await until(async () => (await counters('image-queue')).deleted === 1, 'the message to run out of retries');
      assert.deepEqual(fetched, Array(4).fill('/photo.jpg'), 'the consumer fetched the image on each delivery');
      const failures = consumer.output.match(/Failed to process .*/g) || [];
      assert.equal(failures.length, 4, consumer.output);
      assert.equal(failures[0], `Failed to process ${imageUrl}: Cannot read properties of undefined (reading 'put')`);
      const c = await counters('image-queue');
      assert.equal(c.delivered, 4);
      assert.equal(c.backlog, 0);
    } finally {
      images.close();
    }
  });

  test("seed 000's DLQ example: after max_retries the message moves to email-dlq, whose consumer is the same handler", async () => {
    const dev = await run('email-dlq');
    assert.match(dev.output, /DB \(d1_databases\)/);
    await sendTo('email-queue', { email: 'a@example.com', subject: 'hello', body: 'hi' });
    await until(async () => (await counters('email-dlq')).deleted === 1, 'the message to end in email-dlq and run out of retries there');
    assert.deepEqual(
      { ...(await counters('email-queue')) },
      { backlog: 0, delayed: 0, delivered: 4, dead_lettered: 1, deleted: 0 },
      'max_retries 3: four deliveries, then the DLQ',
    );
    assert.deepEqual({ ...(await counters('email-dlq')) }, { backlog: 0, delayed: 0, delivered: 4, dead_lettered: 0, deleted: 1 });
    /* each of the 8 invocations' exception is shown, with its JavaScript stack and none of workerd's internals */
    const uncaught = dev.output.match(/^Uncaught \(in promise\): TypeError: Cannot read properties of undefined \(reading 'prepare'\)\n +at Object\.queue/gm) || [];
    assert.equal(uncaught.length, 8, dev.output);
    assert.doesNotMatch(dev.output, /workerd@|info: /);
  });

  test("seed 004's exponential backoff holds the message back 30 ** attempts seconds", async () => {
    await run('backoff');
    await sendTo('backoff-queue', { job: 1 });
    await until(async () => (await counters('backoff-queue')).delivered === 1, 'the first delivery');
    const first = Date.now();
    await until(async () => (await counters('backoff-queue')).delayed === 1, 'the retry to be delayed', 5_000);
    await until(async () => (await counters('backoff-queue')).delivered === 2, 'the second delivery', 45_000);
    const waited = Date.now() - first;
    assert.ok(waited >= 28_000 && waited <= 40_000, `redelivered after ${waited} ms, not 30 s`);
    await until(async () => (await counters('backoff-queue')).delayed === 1, 'the second retry (900 s) to be delayed', 5_000);
    await sleep(2000);
    assert.equal((await counters('backoff-queue')).delivered, 2);
  });
});
