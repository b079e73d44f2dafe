/*
 * workers_dev.test.mjs — issue 17, producer side: `wharf dev` runs example
 * Workers (examples/workers/) unmodified in the real workerd against a real
 * `wharf serve`, and what their env.QUEUE.send()/sendBatch()/metrics() calls
 * do is judged from Wharf's REST API: every content type arrives with its
 * body and type (v8 byte for byte, readable by Node's v8.deserialize),
 * delays hold messages back, missing queues are created, and a send to a
 * queue that is gone rejects in the Worker with Wharf's error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WharfDev, drainQueue, queueNamed } from './dev_harness.mjs';
import { sleep, startServer } from './harness.mjs';

let server;
let events; /* content-types example */
let images; /* seed 000's producer */

before(async () => {
  server = await startServer();
  events = new WharfDev(server, 'content-types');
  images = new WharfDev(server, 'image-producer');
  await Promise.all([events.start(), images.start()]);
});

after(async () => {
  for (const d of [events, images]) if (d) await d.dispose();
  if (server) await server.dispose();
});

const queueByName = (name) => queueNamed(server, name);
const drain = (name) => drainQueue(server, name);

async function get(dev, p) {
  const res = await fetch(dev.url + p);
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

const EXPECTED = {
  json: { hello: 'world', n: [1, 2, 3] },
  text: 'plain text, ünïcode',
  bytes: [0, 1, 255],
  v8: { d: new Date(0), m: new Map([[1, 2]]) },
};

describe('wharf dev: producer bindings', () => {
  test('wharf dev created the queues the Workers produce to', async () => {
    assert.ok(await queueByName('events'));
    assert.ok(await queueByName('image-queue'));
    /* Each queue lists the Worker as its producer, as a deploy records it on Cloudflare. */
    assert.deepEqual((await queueByName('image-queue')).producers, [{ type: 'worker', script: 'image-producer' }]);
    assert.equal((await queueByName('events')).producers_total_count, 1);
  });

  for (const type of ['json', 'text', 'bytes', 'v8']) {
    test(`send() with contentType ${type} arrives with its body and type`, async () => {
      const r = await get(events, `/send?type=${type}`);
      assert.equal(r.result.metadata.metrics.backlogCount, 1, 'send() resolves with Wharf backlog metrics');
      assert.deepEqual(await drain('events'), [{ type, body: EXPECTED[type] }]);
    });
  }

  test('send() with no content type is json at this compatibility date', async () => {
    await get(events, '/default');
    assert.deepEqual(await drain('events'), [{ type: 'json', body: { plain: true } }]);
  });

  test('delaySeconds holds a message back until it has passed', async () => {
    await get(events, '/send?type=text&delay=2');
    assert.deepEqual(await drain('events'), [], 'not ready at once');
    await sleep(2500);
    assert.deepEqual(await drain('events'), [{ type: 'text', body: EXPECTED.text }]);
  });

  test('sendBatch(): every type in one batch, a per-message delay and a batch delay', async () => {
    await get(events, '/batch');
    const now = await drain('events');
    assert.deepEqual(
      now.map((m) => m.type),
      ['json', 'bytes', 'v8'],
      'the text message has delaySeconds 3',
    );
    assert.deepEqual(now.map((m) => m.body), [EXPECTED.json, EXPECTED.bytes, EXPECTED.v8]);
    await sleep(3500);
    assert.deepEqual(await drain('events'), [{ type: 'text', body: EXPECTED.text }]);

    await get(events, '/batch?delay=2');
    assert.deepEqual(await drain('events'), [], 'the batch delay applies to every message');
    await sleep(3500);
    assert.equal((await drain('events')).length, 4);
  });

  test('metrics() reads the backlog from Wharf', async () => {
    await get(events, '/send?type=json');
    await get(events, '/send?type=text');
    const m = await get(events, '/metrics');
    assert.equal(m.backlogCount, 2);
    assert.ok(m.backlogBytes > 0);
    assert.ok(new Date(m.oldestMessageTimestamp).getTime() > Date.now() - 60_000);
    await drain('events');
  });

  test("seed 000's producer Worker runs as written", async () => {
    const res = await fetch(images.url, {
      method: 'POST',
      body: JSON.stringify({ imageUrl: 'https://example.com/photo.jpg', userId: 'user-42' }),
    });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { status: 'queued', imageUrl: 'https://example.com/photo.jpg' });
    const [m] = await drain('image-queue');
    assert.equal(m.type, 'json');
    assert.equal(m.body.imageUrl, 'https://example.com/photo.jpg');
    assert.equal(m.body.userId, 'user-42');
    assert.ok(Math.abs(m.body.timestamp - Date.now()) < 60_000);
  });

  test("a send to a queue that is gone rejects in the Worker with Wharf's error", async () => {
    const q = await queueByName('image-queue');
    assert.equal((await server.api('DELETE', server.acct(`/queues/${q.queue_id}`))).status, 200);
    const res = await fetch(images.url, { method: 'POST', body: JSON.stringify({ imageUrl: 'x', userId: 'y' }) });
    assert.equal(res.status, 500, 'the Worker threw');
  });

  test('Ctrl-C stops wharf dev cleanly', async () => {
    const r = await images.stop();
    assert.deepEqual(r, { code: 0, signal: null }, images.output);
    await assert.rejects(fetch(images.url), 'workerd stopped with it');
  });
});
