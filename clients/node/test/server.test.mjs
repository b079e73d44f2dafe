/*
 * server.test.mjs — the adapter against a real `wharf serve` (WHARF_BIN,
 * started by the black-box harness): Queue.send/sendBatch with every content
 * type and delays, and Workers consumer code served by serveQueueHandler as
 * a registered push worker — seed 004's explicit-ack consumer unchanged,
 * typed bodies, retries with attempts, a throwing handler ending in the DLQ.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, sleep, startServer } from '../../../tests/blackbox/harness.mjs';
import { Queue, serveQueueHandler } from '../src/index.mjs';

let server;
const closers = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const close of closers) await close();
  if (server) await server.dispose();
});

async function cli(args) {
  const r = await server.wharfCli(args);
  assert.equal(r.code, 0, r.output);
  return r.stdout;
}

function queue(queueName) {
  return new Queue({ baseURL: server.url, accountId: server.accountId, apiToken: server.token, queueName });
}

/* Registers `script` at a free port, serves worker there with the secret
 * the registration printed, and attaches it to queueName. */
async function attach(queueName, worker, { flags = [], env } = {}) {
  const port = await freePort();
  const script = `${queueName}-worker`;
  const out = await cli(['workers', 'register', script, '--url', `http://127.0.0.1:${port}/`]);
  const secret = out.match(/secret:\s*([0-9a-f]{64})/)[1];
  const served = await serveQueueHandler(worker, { port, secret, env, onError: () => {} });
  closers.push(() => served.close());
  await cli(['queues', 'consumer', 'add', queueName, script, '--batch-timeout', '1', ...flags]);
}

async function backlog(queueName) {
  const list = await server.api('GET', server.acct(`/queues?name=${queueName}`));
  const id = list.json.result[0].queue_id;
  return (await server.api('GET', server.acct(`/queues/${id}/metrics`))).json.result.backlog_count;
}

async function until(predicate, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.log()}`);
    await sleep(50);
  }
}

describe('Queue (producer)', () => {
  test('send and sendBatch store every content type; bad input is refused before sending', async () => {
    await cli(['queues', 'create', 'node-produce']);
    const q = queue('node-produce');
    await q.send({ hello: 'world' });
    await q.send('plain', { contentType: 'text' });
    await q.send(new Uint8Array([0, 1, 255]), { contentType: 'bytes' });
    await q.sendBatch([{ body: 1 }, { body: 'two', contentType: 'text' }], { delaySeconds: 0 });
    await q.send(new Map([[1, 2]]), { contentType: 'v8' });
    assert.equal(await backlog('node-produce'), 6);
    await assert.rejects(q.send({ f() {} }, { contentType: 'v8' }), /could not be cloned/);
    await assert.rejects(q.send(42, { contentType: 'text' }), /string/);
    await assert.rejects(q.send('x', { contentType: 'bytes' }), /ArrayBuffer/);
    await assert.rejects(q.send(1, { delaySeconds: 43201 }), RangeError);
    await assert.rejects(q.send('x'.repeat(130_000)), /too large|exceeds|128/i);
    await assert.rejects(queue('no-such-queue').send(1), /not found/);
    assert.equal(await backlog('node-produce'), 6);
  });

  test('the environment supplies URL, token and account', async () => {
    await cli(['queues', 'create', 'node-env']);
    const saved = { ...process.env };
    Object.assign(process.env, { WHARF_URL: server.url, WHARF_API_TOKEN: server.token, WHARF_ACCOUNT_ID: server.accountId });
    try {
      await new Queue({ queueName: 'node-env' }).send('from env', { contentType: 'text' });
    } finally {
      for (const k of ['WHARF_URL', 'WHARF_API_TOKEN', 'WHARF_ACCOUNT_ID']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
    assert.equal(await backlog('node-env'), 1);
  });
});

describe('serveQueueHandler (push consumer)', () => {
  test("seed 004's explicit-ack consumer runs unchanged and drains the queue", async () => {
    await cli(['queues', 'create', 'node-seed']);
    /* From seed 004, "Explicit acknowledgement", types stripped. */
    const consumer = {
      async queue(batch, env, ctx) {
        for (const msg of batch.messages) {
          // TODO: do something with the message
          // Explicitly acknowledge the message as delivered
          msg.ack();
        }
      },
    };
    await attach('node-seed', consumer);
    await queue('node-seed').sendBatch(Array.from({ length: 25 }, (_, i) => ({ body: { i } })));
    await until(async () => (await backlog('node-seed')) === 0, 'the seed consumer to ack everything');
  });

  test('typed bodies, timestamps, explicit retry with attempts, delayed sends', async () => {
    await cli(['queues', 'create', 'node-typed']);
    const seen = [];
    await attach('node-typed', {
      async queue(batch) {
        for (const msg of batch.messages) {
          seen.push({ queue: batch.queue, id: msg.id, body: msg.body, attempts: msg.attempts, timestamp: msg.timestamp, at: Date.now() });
          if (msg.body === 'again' && msg.attempts === 1) msg.retry({ delaySeconds: 1 });
          else msg.ack();
        }
      },
    });
    const q = queue('node-typed');
    const sent = Date.now();
    await q.send({ n: 1 });
    await q.send('again', { contentType: 'text' });
    await q.send(new Uint8Array([7, 8]).buffer, { contentType: 'bytes' });
    await q.send('later', { contentType: 'text', delaySeconds: 2 });
    const structured = { d: new Date(0), m: new Map([[1, 2]]), s: new Set(['x']), u: new Uint8Array([9]) };
    await q.send(structured, { contentType: 'v8' });
    await until(() => seen.length === 6, 'six deliveries');
    await until(async () => (await backlog('node-typed')) === 0, 'an empty queue');
    assert.ok(seen.every((s) => s.queue === 'node-typed' && s.timestamp instanceof Date));
    assert.ok(seen.every((s) => Math.abs(s.timestamp.getTime() - sent) < 10_000));
    assert.deepEqual(seen.find((s) => s.body?.n === 1).body, { n: 1 });
    const bytes = seen.find((s) => s.body instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(bytes.body)], [7, 8]);
    const again = seen.filter((s) => s.body === 'again');
    assert.deepEqual(again.map((s) => s.attempts), [1, 2]);
    assert.equal(again[0].id, again[1].id);
    assert.ok(again[1].at - again[0].at >= 950, 'retry delay honoured');
    assert.deepEqual(seen.find((s) => s.body?.m instanceof Map).body, structured, 'v8 round trip');
    const later = seen.find((s) => s.body === 'later');
    assert.ok(later.at - sent >= 1950, 'send delay honoured');
  });

  test('a throwing handler keeps its explicit acks; the rest is retried, then dead-lettered', async () => {
    await cli(['queues', 'create', 'node-fail']);
    const attempts = new Map();
    await attach('node-fail', {
      async queue(batch) {
        for (const msg of batch.messages) {
          attempts.set(msg.body, msg.attempts);
          if (msg.body === 'good') msg.ack();
        }
        throw new Error('the rest failed');
      },
    }, { flags: ['--message-retries', '1', '--dead-letter-queue', 'node-fail-dlq'] });
    await queue('node-fail').sendBatch([{ body: 'good' }, { body: 'bad' }]);
    await until(async () => (await backlog('node-fail')) === 0 && attempts.get('bad') === 2, 'the failing message to leave');
    assert.equal(attempts.get('good'), 1, 'the explicit ack held despite the throw');
    assert.equal(await backlog('node-fail-dlq'), 1, 'the failing message is in the DLQ');
  });
});
