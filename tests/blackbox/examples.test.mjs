/*
 * examples.test.mjs — issue 6: every C example in examples/ (built by
 * `make examples` into <build>/examples/, next to WHARF_BIN) runs against a
 * fresh server and does what its seed tutorial promises, judged from the
 * outside: the server's backlog, the SQLite file, and the lines the programs
 * print about each attempt (timestamps, delays, API calls).
 *
 * The ETL check reads the database with the sqlite3 command-line shell.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { WHARF_BIN, run, startServer } from './harness.mjs';

const EXAMPLES = path.join(path.dirname(WHARF_BIN), 'examples');

/* A fresh server with one queue that has an http_pull consumer; fn gets
 * {server, exec(name, args), backlog()}. */
async function withQueue(queue, consumerFlags, fn) {
  const server = await startServer();
  try {
    for (const args of [['queues', 'create', queue], ['queues', 'consumer', 'http', 'add', queue, ...consumerFlags]]) {
      const r = await server.wharfCli(args);
      assert.equal(r.code, 0, r.output);
    }
    const list = await server.api('GET', server.acct(`/queues?name=${queue}`));
    const queueId = list.json.result[0].queue_id;
    const exec = async (name, args = []) => {
      const bin = path.join(EXAMPLES, name);
      assert.ok(existsSync(bin), `${bin} is missing: run \`make examples\``);
      const r = await run(bin, args, {
        timeoutMs: 120_000,
        env: { WHARF_URL: server.url, WHARF_API_TOKEN: server.token, WHARF_ACCOUNT_ID: server.accountId },
      });
      r.where = `exit ${r.code ?? r.signal}\n${r.output}`;
      return r;
    };
    const backlog = async () => (await server.api('GET', server.acct(`/queues/${queueId}/metrics`))).json.result.backlog_count;
    await fn({ server, exec, backlog });
  } finally {
    await server.dispose();
  }
}

/* Lines like "sent user3@example.com attempt=2 t_ms=2015" as objects. */
function events(stdout, kind) {
  const out = [];
  for (const line of stdout.split('\n')) {
    const m = line.match(/^(\S+) (\S+)((?: \w+=\d+)*)$/);
    if (!m || m[1] !== kind) continue;
    const fields = { to: m[2] };
    for (const [, k, v] of m[3].matchAll(/ (\w+)=(\d+)/g)) fields[k] = Number(v);
    out.push(fields);
  }
  return out;
}

describe('examples', () => {
  test('hello sends, pulls and acks one message', async () => {
    await withQueue('hello', [], async ({ exec, backlog }) => {
      const r = await exec('hello');
      assert.equal(r.code, 0, r.where);
      assert.match(r.stdout, /^[0-9a-f]{32} \(attempt 1\): hello, world$/m, r.where);
      assert.equal(await backlog(), 0, 'the message was acked');
    });
  });

  test('email: every email sent exactly once, failures retried with growing backoff', async () => {
    await withQueue('email-queue', [], async ({ exec, backlog }) => {
      const count = 9;
      const r = await exec('email', ['email-queue', String(count), '2']);
      assert.equal(r.code, 0, r.where);
      const sent = events(r.stdout, 'sent');
      const failed = events(r.stdout, 'failed');
      for (let user = 0; user < count; user++) {
        const to = `user${user}@example.com`;
        const mine = sent.filter((e) => e.to === to);
        assert.equal(mine.length, 1, `${to} sent once: ${r.where}`);
        /* userN fails on its first N % 3 attempts; attempts counts deliveries. */
        assert.equal(mine[0].attempt, (user % 3) + 1, r.where);
        const failures = failed.filter((e) => e.to === to);
        assert.deepEqual(failures.map((e) => e.attempt), [1, 2].slice(0, user % 3), r.where);
        /* The seed's backoff: 2 ** attempts seconds, and the server held the
         * message at least that long before delivering it again. */
        assert.deepEqual(failures.map((e) => e.retry_in), [2, 4].slice(0, user % 3), r.where);
        const attemptsAt = [...failures.map((e) => e.t_ms), mine[0].t_ms];
        for (let i = 0; i < failures.length; i++) {
          assert.ok(attemptsAt[i + 1] - attemptsAt[i] >= failures[i].retry_in * 1000 - 50,
            `${to}: attempt ${i + 2} came ${attemptsAt[i + 1] - attemptsAt[i]} ms after a ${failures[i].retry_in} s backoff`);
        }
      }
      assert.equal(await backlog(), 0);
    });
  });

  test('etl: the SQLite file holds one transformed row per data record', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-etl-'));
    try {
      await withQueue('etl-queue', [], async ({ exec, backlog }) => {
        const db = path.join(dir, 'warehouse.db');
        const r = await exec('etl', [db, 'etl-queue', '250']);
        assert.equal(r.code, 0, r.where);
        assert.match(r.stdout, /^done: 225 rows in 3 transactions$/m, r.where);
        const q = await run('sqlite3', ['-json', db, 'SELECT message_id, data FROM processed_data']);
        assert.equal(q.code, 0, q.output);
        const rows = JSON.parse(q.stdout);
        assert.equal(rows.length, 225);
        const orders = rows.map((row) => JSON.parse(row.data)).map((d) => {
          assert.equal(d.processed, true);
          assert.match(d.transformedAt, /^\d{4}-\d\d-\d\dT/);
          assert.equal(d.amount_cents, d.order * 100 + 7);
          return d.order;
        });
        const expected = [...Array(250).keys()].filter((i) => i % 10 !== 9);
        assert.deepEqual(orders.sort((a, b) => a - b), expected, 'every data record once, no heartbeats');
        assert.equal(new Set(rows.map((row) => row.message_id)).size, 225);
        for (const row of rows) assert.match(row.message_id, /^[0-9a-f]{32}$/);
        assert.equal(await backlog(), 0, 'all acked, heartbeats included');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('ratelimit: batches of at most 2, never more than 2 API calls a second', async () => {
    await withQueue('rate-limit-queue', ['--batch-size', '2'], async ({ exec, backlog }) => {
      const count = 7;
      const r = await exec('ratelimit', ['rate-limit-queue', String(count)]);
      assert.equal(r.code, 0, r.where);
      assert.doesNotMatch(r.stdout, /^429 /m, r.where);
      const batches = [...r.stdout.matchAll(/^batch of (\d+) /gm)].map((m) => Number(m[1]));
      assert.ok(batches.every((n) => n >= 1 && n <= 2), r.where);
      assert.equal(batches.reduce((a, b) => a + b, 0), count, r.where);
      const sent = events(r.stdout, 'sent');
      assert.deepEqual(sent.map((e) => e.to).sort(),
        [...Array(count).keys()].map((i) => `user${i}@example.com`).sort(), r.where);
      /* delaySeconds 1 on send: nothing is delivered in the first second. */
      assert.ok(sent[0].t_ms >= 990, r.where);
      const times = sent.map((e) => e.t_ms);
      for (let i = 2; i < times.length; i++) {
        assert.ok(times[i] - times[i - 2] >= 1000, `3 calls within ${times[i] - times[i - 2]} ms: ${r.where}`);
      }
      assert.equal(await backlog(), 0);
    });
  });
});
