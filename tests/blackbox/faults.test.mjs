/*
 * faults.test.mjs — issue 7, fault injection, judged from outside:
 *
 *  - a full disk: the server's data directory is a small tmpfs the test
 *    mounts (root only; skipped otherwise). Sends are pushed until the disk is
 *    full: the failing one must be a 507 envelope with code 11012, never a
 *    false 200; reads (metrics, peek, pull) keep working; once the tmpfs is
 *    remounted larger, sends succeed again; after a restart every send that
 *    was answered 200 is there.
 *  - torn and corrupt segment tails: after a graceful stop, garbage appended
 *    to the last segment of DIR/log/ (past its preallocated zeros: a torn
 *    write, a half record, a record with a bad CRC); the server starts, logs
 *    a line saying what it dropped, and every message whose send was
 *    answered is delivered.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, appendFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { assertEnvelope, assertError, WharfServer } from './harness.mjs';

async function createPullQueue(server, name) {
  const res = await server.api('POST', server.acct('/queues'), { queue_name: name });
  assertEnvelope(assert, res, { success: true, status: 200 });
  const id = res.json.result.queue_id;
  const consumer = await server.api('POST', server.acct(`/queues/${id}/consumers`), {
    type: 'http_pull',
    settings: { batch_size: 100, visibility_timeout_ms: 60_000 },
  });
  assertEnvelope(assert, consumer, { success: true, status: 200 });
  return id;
}

/* Pulls (and acks) until the queue is empty; returns the text bodies. */
async function drain(server, queueId) {
  const bodies = [];
  for (let round = 0; round < 1000; round++) {
    const res = await server.api('POST', server.acct(`/queues/${queueId}/messages/pull`), {
      batch_size: 100,
      visibility_timeout_ms: 60_000,
    });
    assertEnvelope(assert, res, { success: true, status: 200 });
    const messages = res.json.result.messages;
    if (messages.length === 0) return bodies;
    for (const m of messages) bodies.push(m.body);
    const ack = await server.api('POST', server.acct(`/queues/${queueId}/messages/ack`), {
      acks: messages.map((m) => ({ lease_id: m.lease_id })),
    });
    assertEnvelope(assert, ack, { success: true, status: 200 });
  }
  throw new Error('queue never drained');
}

function canMount() {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('full disk', { skip: !canMount() && 'needs root to mount a tmpfs' }, () => {
  let server;
  let mountPoint;

  after(async () => {
    if (server) await server.stop();
    if (mountPoint) {
      try {
        execFileSync('umount', [mountPoint]);
      } catch {
        /* already gone */
      }
      await rm(mountPoint, { recursive: true, force: true });
    }
  });

  test('sends fail with 507/11012 when full, reads work, space returns, nothing answered is lost', async (t) => {
    mountPoint = await mkdtemp(path.join(tmpdir(), 'wharf-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint]);
    } catch (e) {
      await rm(mountPoint, { recursive: true, force: true });
      mountPoint = null;
      t.skip(`mount failed: ${e.message}`);
      return;
    }
    server = new WharfServer();
    server.dataDir = mountPoint;
    await server.start();
    const queueId = await createPullQueue(server, 'full-disk');
    const filler = 'x'.repeat(100_000);
    const answered = [];
    let failure = null;
    for (let i = 0; i < 200 && !failure; i++) {
      const body = `${i}:${filler}`;
      const res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), {
        body,
        content_type: 'text',
      });
      if (res.status === 200) {
        assertEnvelope(assert, res, { success: true });
        answered.push(body);
      } else {
        failure = res;
      }
    }
    assert.ok(failure, `8 MiB should fill before 200 sends of 100 KB (answered ${answered.length})`);
    assertError(assert, failure, 507, 11012);
    assert.ok(answered.length > 10, `some sends fit before the disk filled: ${answered.length}`);

    // A batch fails the same way, wholly.
    const batch = await server.api('POST', server.acct(`/queues/${queueId}/messages/batch`), {
      messages: [{ body: filler, content_type: 'text' }, { body: filler, content_type: 'text' }],
    });
    assertError(assert, batch, 507, 11012);

    // Reads still work on a full disk.
    const metrics = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
    assertEnvelope(assert, metrics, { success: true, status: 200 });
    assert.equal(metrics.json.result.backlog_count, answered.length);
    const peek = await server.api('POST', server.acct(`/queues/${queueId}/messages/peek`), { batch_size: 2 });
    assertEnvelope(assert, peek, { success: true, status: 200 });
    assert.equal(peek.json.result.messages.length, 2);
    const list = await server.api('GET', server.acct('/queues'));
    assertEnvelope(assert, list, { success: true, status: 200 });
    const pull = await server.api('POST', server.acct(`/queues/${queueId}/messages/pull`), {
      batch_size: 1,
      visibility_timeout_ms: 1000,
    });
    assertEnvelope(assert, pull, { success: true, status: 200 });
    assert.equal(pull.json.result.messages.length, 1);
    // An ack needs a small record: it works if that fits, else it is a clear
    // 507 and the message stays; never a 200 for an ack that was not stored.
    const ack = await server.api('POST', server.acct(`/queues/${queueId}/messages/ack`), {
      acks: [{ lease_id: pull.json.result.messages[0].lease_id }],
    });
    if (ack.status === 200) {
      assertEnvelope(assert, ack, { success: true });
      assert.equal(ack.json.result.ackCount, 1);
      answered.splice(answered.indexOf(pull.json.result.messages[0].body), 1);
    } else {
      assertError(assert, ack, 507, 11012);
    }

    // Space returns: the same server accepts sends again.
    execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
    const again = await server.api('POST', server.acct(`/queues/${queueId}/messages`), {
      body: 'after-remount',
      content_type: 'text',
    });
    assertEnvelope(assert, again, { success: true, status: 200 });
    answered.push('after-remount');

    // Everything answered 200 survives a restart; nothing else appears.
    await server.restart();
    const bodies = await drain(server, queueId);
    const got = new Set(bodies);
    for (const body of answered) assert.ok(got.has(body), `answered send lost: ${body.slice(0, 12)}`);
    assert.equal(got.size, answered.length, 'no message beyond those answered 200');
  });
});

describe('torn and corrupt segment tails', () => {
  let server;

  after(async () => {
    if (server) await server.dispose();
  });

  async function lastSegment() {
    const dir = path.join(server.dataDir, 'log');
    const names = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
    assert.ok(names.length > 0, 'a segment exists');
    return path.join(dir, names[names.length - 1]);
  }

  const tails = {
    'random garbage': Buffer.from('\xde\xad\xbe\xef not a record at all, just bytes \x00\x01\x02', 'latin1'),
    'a half record header': Buffer.from([0x40, 0x00, 0x00]),
    // A length that promises more than the file holds (a torn write).
    'a header promising 64 KiB': Buffer.concat([Buffer.from([0x00, 0x00, 0x01, 0x00, 1, 2, 3, 4]), Buffer.alloc(100, 7)]),
    // A complete-looking record whose CRC is wrong.
    'a record with a bad CRC': Buffer.concat([Buffer.from([25, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 2]), Buffer.alloc(24, 1)]),
  };

  test('every answered message survives garbage appended to the last segment', async () => {
    server = new WharfServer();
    await server.start();
    const queueId = await createPullQueue(server, 'torn-tail');
    const answered = [];
    let round = 0;
    for (const [what, tail] of Object.entries(tails)) {
      for (let i = 0; i < 5; i++) {
        const body = `round ${round} message ${i}`;
        const res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), { body, content_type: 'text' });
        assertEnvelope(assert, res, { success: true, status: 200 });
        answered.push(body);
      }
      round++;
      await server.stop();
      const segment = await lastSegment();
      const before = (await stat(segment)).size;
      await appendFile(segment, tail);
      server.lines.length = 0;
      await server.start();
      const log = server.lines.join('\n');
      assert.match(log, /torn tail|corrupt record|dropping/i, `${what}: a log line says what was dropped:\n${log}`);
      // The file ends in space the server preallocated (zeros): the cut is at
      // the garbage's first non-zero byte, so zero bytes it starts with (the
      // low bytes of a length) are kept as preallocated space.
      const leadingZeros = tail.findIndex((b) => b !== 0);
      const dropped = tail.length - leadingZeros;
      assert.match(log, new RegExp(`${dropped} bytes`), `${what}: the line gives the size dropped:\n${log}`);
      assert.equal((await stat(segment)).size, before + leadingZeros, `${what}: the tail was cut off`);
      const metrics = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
      assertEnvelope(assert, metrics, { success: true, status: 200 });
      assert.equal(metrics.json.result.backlog_count, answered.length, `${what}: backlog intact`);
    }
    // The repaired log takes new writes after the cut, and all is delivered.
    const res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), { body: 'after', content_type: 'text' });
    assertEnvelope(assert, res, { success: true, status: 200 });
    answered.push('after');
    await server.restart();
    const bodies = await drain(server, queueId);
    assert.deepEqual([...bodies].sort(), [...answered].sort());
  });
});
