/*
 * fulldisk.test.mjs — issue 19 §3: a full disk a consumer can dig out of,
 * judged from outside on a real small filesystem (a 32 MiB tmpfs the test
 * mounts; tests run as root, and a mount that fails is a test failure, not a
 * skip).
 *
 * For a log of one segment (the default 64 MiB segments) and of many
 * (--segment-bytes 2 MiB): sends are pushed until the disk is full (507,
 * 11012); a restart on the full disk serves; creating or changing a queue
 * answers 507/11012 and changes nothing (once a ballast file took the space
 * the log leaves free: less than a segment's reserve); acking everything (and, for one
 * segment, a purge) gives the space back and sends succeed again without a
 * restart; every message answered 200 is delivered. And with the reserve
 * used up by retries (1 MiB segments, so a 64 KiB reserve), failed acks and
 * retries keep their leases, which still ack once space is back.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { assertEnvelope, assertError, sleep, WharfServer } from './harness.mjs';

const BODY_BYTES = 32_000;
const BATCH = 7; /* 224 KB, under the 256 KB batch limit */

async function mountTmpfs() {
  const mountPoint = await mkdtemp(path.join(tmpdir(), 'wharf-fulldisk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (e) {
    await rm(mountPoint, { recursive: true, force: true });
    throw new Error(`these tests need to mount a tmpfs (run as root): ${e.stderr || e.message}`);
  }
  return mountPoint;
}

async function createPullQueue(server, name, settings = {}) {
  const res = await server.api('POST', server.acct('/queues'), { queue_name: name });
  assertEnvelope(assert, res, { success: true, status: 200 });
  const id = res.json.result.queue_id;
  const consumer = await server.api('POST', server.acct(`/queues/${id}/consumers`), {
    type: 'http_pull',
    settings: { batch_size: 100, visibility_timeout_ms: 60_000, ...settings },
  });
  assertEnvelope(assert, consumer, { success: true, status: 200 });
  return id;
}

/* Sends batches until one fails; returns the bodies answered 200. */
async function fill(server, queueId, tag) {
  const answered = [];
  for (let i = 0; i < 1000; i++) {
    const bodies = Array.from({ length: BATCH }, (_, j) => `${tag}:${i}:${j}:`.padEnd(BODY_BYTES, 'x'));
    const res = await server.api('POST', server.acct(`/queues/${queueId}/messages/batch`), {
      messages: bodies.map((body) => ({ body, content_type: 'text' })),
    });
    if (res.status !== 200) {
      assertError(assert, res, 507, 11012);
      assert.ok(answered.length > 100, `sends fit before the disk filled: ${answered.length}`);
      return answered;
    }
    answered.push(...bodies);
  }
  throw new Error('32 MiB never filled');
}

/* Takes what space the log left (less than its next segment's reserve):
 * the disk is full for everyone, as when something else fills it. */
function fillTheRest(mountPoint) {
  const fd = openSync(path.join(mountPoint, 'ballast'), 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/* A describe block's clean-up: the server, then the tmpfs it wrote to. */
async function stopAndUnmount(server, mountPoint) {
  if (server) await server.stop();
  if (mountPoint) {
    execFileSync('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  }
}

/* Pulls and acks until the queue is empty (every ack must succeed); returns
 * the bodies. */
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
    const ack = await server.api('POST', server.acct(`/queues/${queueId}/messages/ack`), {
      acks: messages.map((m) => ({ lease_id: m.lease_id })),
    });
    assertEnvelope(assert, ack, { success: true, status: 200 });
    for (const m of messages) bodies.push(m.body);
  }
  throw new Error('queue never drained');
}

function assertSameBodies(got, answered) {
  const set = new Set(got);
  assert.equal(got.length, answered.length, 'each answered message delivered once');
  for (const body of answered) assert.ok(set.has(body), `answered send lost: ${body.slice(0, 16)}`);
}

/* The space comes back without a restart: a send succeeds (the drained
 * segment is released right after the last deletion is durable). */
async function assertSendSucceeds(server, queueId) {
  let res;
  for (let i = 0; i < 20; i++) {
    res = await server.api('POST', server.acct(`/queues/${queueId}/messages`), {
      body: 'after'.padEnd(BODY_BYTES, 'y'),
      content_type: 'text',
    });
    if (res.status === 200) return;
    await sleep(100);
  }
  assert.fail(`sends still fail after the space was freed: ${res.status} ${res.text}\n${server.log()}`);
}

/* Control-plane writes on the full disk: 507/11012, nothing changed. */
async function assertControlWritesFail(server, queueId) {
  const created = await server.api('POST', server.acct('/queues'), { queue_name: 'on-a-full-disk' });
  assertError(assert, created, 507, 11012);
  const list = await server.api('GET', server.acct('/queues'));
  assertEnvelope(assert, list, { success: true, status: 200 });
  assert.ok(!list.json.result.some((q) => q.queue_name === 'on-a-full-disk'), 'no queue was created');
  const patched = await server.api('PATCH', server.acct(`/queues/${queueId}`), {
    settings: { delivery_delay: 7 },
  });
  assertError(assert, patched, 507, 11012);
  const info = await server.api('GET', server.acct(`/queues/${queueId}`));
  assertEnvelope(assert, info, { success: true, status: 200 });
  assert.equal(info.json.result.settings.delivery_delay, 0, 'the queue was not changed');
}

for (const { what, args } of [
  { what: 'a log of one segment', args: [] },
  { what: 'a log of many segments', args: ['--segment-bytes', String(2 << 20)] },
]) {
  describe(`full disk, ${what}`, () => {
    let server;
    let mountPoint;

    after(() => stopAndUnmount(server, mountPoint));

    test('fill, restart, control writes fail cleanly, acking everything frees the space', async () => {
      mountPoint = await mountTmpfs();
      server = new WharfServer({ args });
      server.dataDir = mountPoint;
      await server.start();
      const queueId = await createPullQueue(server, 'full');
      const answered = await fill(server, queueId, 'a');
      fillTheRest(mountPoint);

      await server.restart(); /* serves on the full disk */
      const metrics = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
      assertEnvelope(assert, metrics, { success: true, status: 200 });
      assert.equal(metrics.json.result.backlog_count, answered.length);
      await assertControlWritesFail(server, queueId);

      assertSameBodies(await drain(server, queueId), answered);
      await assertSendSucceeds(server, queueId);
      assertSameBodies(await drain(server, queueId), ['after'.padEnd(BODY_BYTES, 'y')]);
    });

    test('fill again, a purge frees the space', async () => {
      const list = await server.api('GET', server.acct('/queues'));
      const queueId = list.json.result.find((q) => q.queue_name === 'full').queue_id;
      await fill(server, queueId, 'b');
      const purge = await server.api('POST', server.acct(`/queues/${queueId}/purge`), {
        delete_messages_permanently: true,
      });
      assertEnvelope(assert, purge, { success: true, status: 200 });
      await assertSendSucceeds(server, queueId);
      await server.restart();
      assertSameBodies(await drain(server, queueId), ['after'.padEnd(BODY_BYTES, 'y')]);
    });
  });
}

/* Retries only move messages: they fill the reserve without freeing
 * anything. Once it is used up, acks and retries fail (507) and change
 * nothing: the leases stay held until the space comes back. */
describe('full disk, the reserve used up', () => {
  let server;
  let mountPoint;

  after(() => stopAndUnmount(server, mountPoint));

  test('failed acks and retries keep their leases; acks work once space is back', async () => {
    mountPoint = await mountTmpfs();
    server = new WharfServer({ args: ['--segment-bytes', String(1 << 20)] });
    server.dataDir = mountPoint;
    await server.start();
    const queueId = await createPullQueue(server, 'reserve', { max_retries: 100 }); /* no drops */
    const answered = await fill(server, queueId, 'r');
    fillTheRest(mountPoint);
    const pull = async () => {
      const res = await server.api('POST', server.acct(`/queues/${queueId}/messages/pull`), {
        batch_size: 100,
        visibility_timeout_ms: 60_000,
      });
      assertEnvelope(assert, res, { success: true, status: 200 });
      return res.json.result.messages;
    };
    const decide = (body) => server.api('POST', server.acct(`/queues/${queueId}/messages/ack`), body);
    let held = null;
    for (let round = 0; round < 200 && !held; round++) {
      const messages = await pull();
      assert.ok(messages.length > 0, 'messages to retry');
      const res = await decide({ retries: messages.map((m) => ({ lease_id: m.lease_id, delay_seconds: 0 })) });
      if (res.status === 200) continue;
      assertError(assert, res, 507, 11012);
      /* The batch's records did not fit, but 100 ack records (smaller than
       * retry records) might: single retries use up what is left, until
       * less than one retry record's room remains, which no two acks fit. */
      let fitted = 0;
      for (; fitted < messages.length; fitted++) {
        const one = await decide({ retries: [{ lease_id: messages[fitted].lease_id, delay_seconds: 0 }] });
        if (one.status === 200) continue;
        assertError(assert, one, 507, 11012);
        break;
      }
      if (messages.length - fitted >= 2) held = messages.slice(fitted);
    }
    assert.ok(held, 'retries used up the reserve');
    const ack = await decide({ acks: held.map((m) => ({ lease_id: m.lease_id })) });
    assertError(assert, ack, 507, 11012);
    const heldIds = new Set(held.map((m) => m.id));
    for (let i = 0; i < 3; i++)
      for (const m of await pull()) assert.ok(!heldIds.has(m.id), 'a failed ack or retry released a lease');

    await rm(path.join(mountPoint, 'ballast'));
    const acked = await decide({ acks: held.map((m) => ({ lease_id: m.lease_id })) });
    assertEnvelope(assert, acked, { success: true, status: 200 });
    assert.equal(acked.json.result.ackCount, held.length, 'the held leases are still valid');
    const metrics = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
    assert.equal(metrics.json.result.backlog_count, answered.length - held.length);
  });
});
