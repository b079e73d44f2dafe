/*
 * limits.test.mjs — Cloudflare's platform limits on request (`wharf serve
 * --cloudflare-limits`, issue 15 §2): 1,200 API requests per account per
 * five minutes, pulls and acks not counted, then 429 code 10100 with
 * Retry-After; 5,000 messages/s per queue, then 429 code 11010 with
 * Retry-After: 1. Without the flag neither applies.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CLUSTER, assertError, startServer } from './harness.mjs';

let limited, unlimited;

before(async () => {
  [limited, unlimited] = await Promise.all([startServer({ args: ['--cloudflare-limits'] }), startServer()]);
});

after(async () => {
  await Promise.all([limited?.dispose(), unlimited?.dispose()]);
});

/* GET …/queues until a reply is not 200, at most `max` times: the
 * number of 200s and the first other reply. */
async function listUntilRefused(server, max) {
  for (let ok = 0; ok < max; ok++) {
    const res = await server.api('GET', server.acct('/queues'));
    if (res.status !== 200) return { ok, res };
  }
  return { ok: max, res: null };
}

/* By design in clustered mode both limits are counted per Wharf node (a
 * client spread over N nodes gets up to N times them; README). */
const PER_NODE = CLUSTER && 'clustered mode: limits are counted per node by design';

test('1,200 requests per account per five minutes, then 429 10100 with Retry-After; pulls and acks go on',
     { skip: PER_NODE }, async () => {
  const server = limited;
  const q = await server.sdk().queues.create({ account_id: server.accountId, queue_name: 'limits' });
  await server.api('POST', server.acct(`/queues/${q.queue_id}/consumers`), { type: 'http_pull' });
  await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body: 'm', content_type: 'text' });
  const { ok, res } = await listUntilRefused(server, 1300);
  assert.equal(ok, 1200 - 3, 'the three requests above count too');
  const err = assertError(assert, res, 429, 10100);
  assert.match(err.message, /More than 1200 requests per 300 seconds/);
  const retryAfter = Number(res.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 300, `Retry-After ${retryAfter}`);
  assertError(assert, await server.api('POST', server.acct('/queues'), { queue_name: 'limits-2' }), 429, 10100);

  const pulled = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/pull`), { batch_size: 1 });
  assert.equal(pulled.status, 200, pulled.text);
  const acked = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/ack`),
    { acks: [{ lease_id: pulled.json.result.messages[0].lease_id }] });
  assert.equal(acked.status, 200, acked.text);
  assert.equal(acked.json.result.ackCount, 1);

  const other = await server.createAccount('limits-other');
  const otherToken = await server.createToken('queues_read,queues_write', other);
  const theirs = await server.api('GET', `/accounts/${other}/queues`, undefined, { token: otherToken });
  assert.equal(theirs.status, 200, 'another account has its own window');
});

test('5,000 messages per second per queue, then 429 11010 with Retry-After: 1', { skip: PER_NODE }, async () => {
  const server = limited;
  const account = await server.createAccount('limits-rate');
  const token = await server.createToken('queues_read,queues_write', account);
  const q = await server.sdk(token).queues.create({ account_id: account, queue_name: 'rate' });
  const batch = { messages: Array.from({ length: 100 }, () => ({ body: 'x', content_type: 'text' })) };
  let accepted = 0;
  let refused = null;
  for (let i = 0; i < 300 && !refused; i++) {
    const res = await server.api('POST', `/accounts/${account}/queues/${q.queue_id}/messages/batch`, batch, { token });
    if (res.status === 200) accepted += 100;
    else refused = res;
  }
  assert.ok(refused, `no 429 after ${accepted} messages`);
  assertError(assert, refused, 429, 11010);
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.ok(accepted >= 5000, `${accepted} messages accepted before the first 429`);
});

test('without the flag there is no API rate limit', async () => {
  const { ok } = await listUntilRefused(unlimited, 1300);
  assert.equal(ok, 1300);
});
