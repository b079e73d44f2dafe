/*
 * queues.test.mjs — issue 2: the queues REST API as the official `cloudflare`
 * SDK and plain HTTP clients see it: CRUD, pagination, the envelope,
 * validation, duplicates, unknown queues, authentication and permissions.
 * Every rejected request is checked to have changed nothing.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import Cloudflare from 'cloudflare';
import { HEX32, assertEnvelope, assertError, startServer } from './harness.mjs';

let server;
let client;
let A; // account id

before(async () => {
  server = await startServer();
  client = server.sdk();
  A = server.accountId;
});

after(async () => {
  if (server) await server.dispose();
});

async function allNames() {
  const res = await server.api('GET', server.acct('/queues?per_page=100'));
  assertEnvelope(assert, res, { success: true, status: 200 });
  return res.json.result.map((q) => q.queue_name).sort();
}

async function queueByName(name) {
  const res = await server.api('GET', server.acct(`/queues?name=${encodeURIComponent(name)}`));
  assert.equal(res.status, 200);
  return res.json.result[0];
}

function assertQueueShape(q) {
  assert.match(q.queue_id, HEX32);
  assert.equal(typeof q.queue_name, 'string');
  for (const f of ['created_on', 'modified_on']) {
    assert.equal(typeof q[f], 'string', f);
    assert.ok(!Number.isNaN(Date.parse(q[f])), `${f} is ISO 8601: ${q[f]}`);
  }
  assert.ok(Array.isArray(q.producers), 'producers[]');
  assert.equal(typeof q.producers_total_count, 'number');
  assert.ok(Array.isArray(q.consumers), 'consumers[]');
  assert.equal(typeof q.consumers_total_count, 'number');
  assert.equal(typeof q.settings, 'object');
  assert.equal(typeof q.settings.delivery_delay, 'number');
  assert.equal(typeof q.settings.delivery_paused, 'boolean');
  assert.equal(typeof q.settings.message_retention_period, 'number');
}

describe('queues CRUD through the SDK', () => {
  test('create returns a Queue with the default settings', async () => {
    const before = Date.now();
    const q = await client.queues.create({ account_id: A, queue_name: 'crud-defaults' });
    assertQueueShape(q);
    assert.equal(q.queue_name, 'crud-defaults');
    assert.equal(q.settings.delivery_delay, 0);
    assert.equal(q.settings.message_retention_period, 345600);
    assert.equal(q.settings.delivery_paused, false);
    assert.equal(q.producers_total_count, 0);
    assert.equal(q.consumers_total_count, 0);
    assert.deepEqual(q.consumers, []);
    assert.ok(Date.parse(q.created_on) >= before - 2000, 'created_on is now');
  });

  test('create with settings keeps them', async () => {
    const q = await client.queues.create({
      account_id: A,
      queue_name: 'crud-settings',
      settings: { delivery_delay: 30, message_retention_period: 600 },
    });
    assert.equal(q.settings.delivery_delay, 30);
    assert.equal(q.settings.message_retention_period, 600);
    const got = await client.queues.get(q.queue_id, { account_id: A });
    assert.equal(got.queue_id, q.queue_id);
    assert.equal(got.queue_name, 'crud-settings');
    assert.equal(got.settings.delivery_delay, 30);
    assert.equal(got.settings.message_retention_period, 600);
  });

  test('boundary values are accepted: 63-char name, delay 43200, retention 60 and 1209600', async () => {
    const name63 = 'a' + 'b1-'.repeat(20) + 'cd';
    assert.equal(name63.length, 63);
    const q1 = await client.queues.create({
      account_id: A,
      queue_name: name63,
      settings: { delivery_delay: 43200, message_retention_period: 60 },
    });
    assert.equal(q1.queue_name, name63);
    assert.equal(q1.settings.delivery_delay, 43200);
    assert.equal(q1.settings.message_retention_period, 60);
    const q2 = await client.queues.create({
      account_id: A,
      queue_name: 'Mixed-Case-9',
      settings: { delivery_delay: 0, message_retention_period: 1209600 },
    });
    assert.equal(q2.settings.message_retention_period, 1209600);
    await client.queues.delete(q1.queue_id, { account_id: A });
    await client.queues.delete(q2.queue_id, { account_id: A });
  });

  test('get by id through the SDK', async () => {
    const q = await queueByName('crud-defaults');
    const got = await client.queues.get(q.queue_id, { account_id: A });
    assertQueueShape(got);
    assert.deepEqual(got, q);
  });

  test('update (PUT) replaces name and settings', async () => {
    const q = await client.queues.create({
      account_id: A,
      queue_name: 'put-me',
      settings: { delivery_delay: 10, message_retention_period: 900 },
    });
    const u = await client.queues.update(q.queue_id, {
      account_id: A,
      queue_name: 'put-me-renamed',
      settings: { delivery_delay: 5, message_retention_period: 120 },
    });
    assert.equal(u.queue_id, q.queue_id);
    assert.equal(u.queue_name, 'put-me-renamed');
    assert.equal(u.settings.delivery_delay, 5);
    assert.equal(u.settings.message_retention_period, 120);
    assert.ok(Date.parse(u.modified_on) >= Date.parse(q.modified_on));
    const got = await client.queues.get(q.queue_id, { account_id: A });
    assert.equal(got.queue_name, 'put-me-renamed');
    assert.equal(got.settings.delivery_delay, 5);
    assert.equal(got.settings.message_retention_period, 120);
    assert.equal(await queueByName('put-me'), undefined, 'old name is gone');

    // PUT is a full replace: settings left out go back to their defaults.
    const r = await client.queues.update(q.queue_id, {
      account_id: A,
      queue_name: 'put-me-renamed',
      settings: { delivery_delay: 7 },
    });
    assert.equal(r.settings.delivery_delay, 7);
    assert.equal(r.settings.message_retention_period, 345600);
  });

  test('edit (PATCH) changes only what it names, including delivery_paused', async () => {
    const q = await client.queues.create({
      account_id: A,
      queue_name: 'patch-me',
      settings: { delivery_delay: 10, message_retention_period: 900 },
    });
    const e1 = await client.queues.edit(q.queue_id, { account_id: A, settings: { delivery_delay: 3 } });
    assert.equal(e1.queue_name, 'patch-me');
    assert.equal(e1.settings.delivery_delay, 3);
    assert.equal(e1.settings.message_retention_period, 900, 'retention untouched');
    assert.equal(e1.settings.delivery_paused, false);

    const e2 = await client.queues.edit(q.queue_id, { account_id: A, settings: { delivery_paused: true } });
    assert.equal(e2.settings.delivery_paused, true);
    assert.equal(e2.settings.delivery_delay, 3, 'delay untouched');
    assert.equal((await client.queues.get(q.queue_id, { account_id: A })).settings.delivery_paused, true);

    const e3 = await client.queues.edit(q.queue_id, { account_id: A, settings: { delivery_paused: false } });
    assert.equal(e3.settings.delivery_paused, false);
    assert.equal((await client.queues.get(q.queue_id, { account_id: A })).settings.delivery_paused, false);

    const e4 = await client.queues.edit(q.queue_id, { account_id: A, queue_name: 'patch-me-2' });
    assert.equal(e4.queue_name, 'patch-me-2');
    assert.equal(e4.settings.message_retention_period, 900);
  });

  test('delete answers 200 with the envelope and the queue is gone', async () => {
    const q = await client.queues.create({ account_id: A, queue_name: 'delete-me' });
    const res = await server.api('DELETE', server.acct(`/queues/${q.queue_id}`));
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.equal(res.json.result, null);
    await assert.rejects(client.queues.get(q.queue_id, { account_id: A }), (e) => e.status === 404);
    assert.equal(await queueByName('delete-me'), undefined);
    // The name can be used again.
    const again = await client.queues.create({ account_id: A, queue_name: 'delete-me' });
    assert.notEqual(again.queue_id, q.queue_id);
    await client.queues.delete(again.queue_id, { account_id: A });
  });

  test('SDK delete resolves', async () => {
    const q = await client.queues.create({ account_id: A, queue_name: 'sdk-delete-me' });
    await client.queues.delete(q.queue_id, { account_id: A });
    await assert.rejects(client.queues.get(q.queue_id, { account_id: A }), (e) => e.status === 404);
  });
});

describe('listing and pagination', () => {
  const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
  before(async () => {
    for (const n of names) await client.queues.create({ account_id: A, queue_name: n });
  });

  test('list envelope carries result_info', async () => {
    const res = await server.api('GET', server.acct('/queues'));
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.ok(Array.isArray(res.json.result));
    const info = res.json.result_info;
    assert.ok(info, 'result_info');
    for (const f of ['page', 'per_page', 'count', 'total_count', 'total_pages']) {
      assert.equal(typeof info[f], 'number', `result_info.${f}`);
    }
    assert.equal(info.page, 1);
    assert.equal(info.count, res.json.result.length);
    assert.ok(info.total_count >= names.length);
    for (const q of res.json.result) assertQueueShape(q);
  });

  test('per_page pages cover every queue exactly once; a page past the end is []', async () => {
    const all = await allNames();
    const seen = [];
    let page = 1;
    for (; page < 100; page++) {
      const res = await server.api('GET', server.acct(`/queues?page=${page}&per_page=2`));
      assertEnvelope(assert, res, { success: true, status: 200 });
      const got = res.json.result;
      assert.ok(got.length <= 2, `page ${page} has ${got.length} > per_page`);
      if (got.length === 0) break;
      assert.equal(res.json.result_info.page, page);
      assert.equal(res.json.result_info.per_page, 2);
      assert.equal(res.json.result_info.total_count, all.length);
      assert.equal(res.json.result_info.total_pages, Math.ceil(all.length / 2));
      seen.push(...got.map((q) => q.queue_name));
    }
    assert.equal(page, Math.ceil(all.length / 2) + 1, 'first empty page follows the last full one');
    assert.deepEqual([...seen].sort(), all, 'no duplicates, nothing missing');
    const past = await server.api('GET', server.acct('/queues?page=999&per_page=2'));
    assertEnvelope(assert, past, { success: true, status: 200 });
    assert.deepEqual(past.json.result, []);
  });

  test('SDK list with page/per_page query', async () => {
    const page = await client.queues.list({ account_id: A }, { query: { page: 2, per_page: 2 } });
    assert.equal(page.result.length, 2);
    const empty = await client.queues.list({ account_id: A }, { query: { page: 1000, per_page: 2 } });
    assert.deepEqual(empty.result, []);
    const names = [];
    for await (const q of client.queues.list({ account_id: A })) names.push(q.queue_name);
    for (const n of ['page-a', 'page-e']) assert.ok(names.includes(n), `${n} listed`);
  });

  test('name filter is an exact match and may repeat', async () => {
    const one = await server.api('GET', server.acct('/queues?name=page-c'));
    assert.equal(one.status, 200);
    assert.deepEqual(one.json.result.map((q) => q.queue_name), ['page-c']);
    const prefix = await server.api('GET', server.acct('/queues?name=page'));
    assert.equal(prefix.status, 200);
    assert.deepEqual(prefix.json.result, [], 'a prefix matches nothing');
    const none = await server.api('GET', server.acct('/queues?name=no-such-queue'));
    assert.deepEqual(none.json.result, []);
    const two = await server.api('GET', server.acct('/queues?name=page-a&name=page-d'));
    assert.deepEqual(two.json.result.map((q) => q.queue_name).sort(), ['page-a', 'page-d']);
  });
});

describe('validation: a bad request is a 400 and creates nothing', () => {
  const bad = [
    ['empty name', { queue_name: '' }],
    ['missing name', { settings: { delivery_delay: 1 } }],
    ['64-char name', { queue_name: 'a'.repeat(64) }],
    ['leading dash', { queue_name: '-abc' }],
    ['trailing dash', { queue_name: 'abc-' }],
    ['underscore', { queue_name: 'a_b' }],
    ['space', { queue_name: 'a b' }],
    ['non-string name', { queue_name: 42 }],
    ['delivery_delay -1', { queue_name: 'bad-delay-neg', settings: { delivery_delay: -1 } }],
    ['delivery_delay 43201', { queue_name: 'bad-delay-big', settings: { delivery_delay: 43201 } }],
    ['delivery_delay string', { queue_name: 'bad-delay-str', settings: { delivery_delay: 'soon' } }],
    ['retention 59', { queue_name: 'bad-ret-small', settings: { message_retention_period: 59 } }],
    ['retention 1209601', { queue_name: 'bad-ret-big', settings: { message_retention_period: 1209601 } }],
  ];
  for (const [what, body] of bad) {
    test(`create with ${what}`, async () => {
      const beforeNames = await allNames();
      const res = await server.api('POST', server.acct('/queues'), body);
      assertError(assert, res, 400, 11001);
      assert.deepEqual(await allNames(), beforeNames, 'nothing created');
    });
  }

  test('the SDK sees a 400 as BadRequestError', async () => {
    await assert.rejects(
      client.queues.create({ account_id: A, queue_name: 'bad_name' }),
      (e) => e instanceof Cloudflare.BadRequestError && e.status === 400,
    );
  });

  test('PATCH and PUT with bad values change nothing', async () => {
    const q = await client.queues.create({
      account_id: A,
      queue_name: 'validate-updates',
      settings: { delivery_delay: 4, message_retention_period: 700 },
    });
    const attempts = [
      ['PATCH', { settings: { delivery_delay: 43201 } }],
      ['PATCH', { settings: { message_retention_period: 59 } }],
      ['PATCH', { queue_name: 'bad_name' }],
      ['PUT', { queue_name: 'validate-updates', settings: { delivery_delay: -1 } }],
      ['PUT', { queue_name: '-x', settings: {} }],
    ];
    for (const [method, body] of attempts) {
      const res = await server.api(method, server.acct(`/queues/${q.queue_id}`), body);
      assertError(assert, res, 400);
    }
    const got = await client.queues.get(q.queue_id, { account_id: A });
    assert.equal(got.queue_name, 'validate-updates');
    assert.equal(got.settings.delivery_delay, 4);
    assert.equal(got.settings.message_retention_period, 700);
    assert.equal(got.modified_on, q.modified_on, 'modified_on untouched');
  });

  test('a malformed JSON body is a 400 and creates nothing', async () => {
    const beforeNames = await allNames();
    const res = await server.api('POST', server.acct('/queues'), '{"queue_name": "malformed-json",');
    assertError(assert, res, 400, 11014);
    const res2 = await server.api('POST', server.acct('/queues'), '["not", "an", "object"]');
    assertError(assert, res2, 400);
    assert.deepEqual(await allNames(), beforeNames);
  });

  test('a JSON body sent as text/plain is parsed as JSON (wrangler does this)', async () => {
    const res = await server.api('POST', server.acct('/queues'), JSON.stringify({ queue_name: 'text-plain-body' }), {
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
    });
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.equal(res.json.result.queue_name, 'text-plain-body');
  });
});

describe('duplicates and unknown queues', () => {
  test('a duplicate name is a 409 and the SDK does not retry it', async () => {
    await client.queues.create({ account_id: A, queue_name: 'dup-name' });
    const beforeNames = await allNames();
    const res = await server.api('POST', server.acct('/queues'), { queue_name: 'dup-name' });
    assertError(assert, res, 409, 11009);
    assert.deepEqual(await allNames(), beforeNames);
    // A client with the SDK's default retries (2, with back-off) must give up
    // at once because of x-should-retry: false.
    const retrying = new Cloudflare({ apiToken: server.token, baseURL: server.baseURL });
    const t0 = Date.now();
    await assert.rejects(
      retrying.queues.create({ account_id: A, queue_name: 'dup-name' }),
      (e) => e instanceof Cloudflare.ConflictError && e.status === 409,
    );
    assert.ok(Date.now() - t0 < 400, `no retry back-off (${Date.now() - t0} ms)`);
  });

  test('renaming onto an existing name is a 409 and changes nothing', async () => {
    const q = await client.queues.create({ account_id: A, queue_name: 'rename-src' });
    const res = await server.api('PATCH', server.acct(`/queues/${q.queue_id}`), { queue_name: 'dup-name' });
    assertError(assert, res, 409);
    assert.equal((await client.queues.get(q.queue_id, { account_id: A })).queue_name, 'rename-src');
  });

  test('an unknown queue is a 404 with code 11000 on every method', async () => {
    const id = 'f'.repeat(32);
    for (const [method, body, sub = ''] of [
      ['GET'],
      ['PUT', { queue_name: 'x1', settings: {} }],
      ['PATCH', { settings: { delivery_delay: 1 } }],
      ['DELETE'],
      ['GET', undefined, '/metrics'],
      ['GET', undefined, '/consumers'],
      ['POST', { body: 'x', content_type: 'text' }, '/messages'],
    ]) {
      const res = await server.api(method, server.acct(`/queues/${id}${sub}`), body);
      assertError(assert, res, 404, 11000);
    }
    await assert.rejects(client.queues.get(id, { account_id: A }), (e) => e instanceof Cloudflare.NotFoundError);
  });

  test('an unknown route is a 404 in the envelope', async () => {
    const res = await server.api('GET', '/no/such/route');
    assertError(assert, res, 404, 7003);
  });
});

describe('producers (a Wharf extension: declared, as a deploy records them on Cloudflare)', () => {
  /* CLUSTER: producers are the cluster's, so the requests (spread over
   * both nodes) see each other's declarations. */
  test('declared once each, listed in the queue object, removed by name; bad ones change nothing', async () => {
    const created = await server.api('POST', server.acct('/queues'), { queue_name: 'produced-to' });
    const q = created.json.result.queue_id;
    assert.deepEqual(created.json.result.producers, []);
    const producers = `/queues/${q}/producers`;
    for (let i = 0; i < 2; i++) {
      const res = await server.api('POST', server.acct(producers), { type: 'worker', script: 'my-worker' });
      assertEnvelope(assert, res, { success: true, status: 200 });
      assert.deepEqual(res.json.result, { type: 'worker', script: 'my-worker' });
    }
    await server.api('POST', server.acct(producers), { type: 'r2_bucket', bucket_name: 'photos' });
    const got = (await server.api('GET', server.acct(`/queues/${q}`))).json.result;
    assert.deepEqual(got.producers, [{ type: 'worker', script: 'my-worker' }, { type: 'r2_bucket', bucket_name: 'photos' }]);
    assert.equal(got.producers_total_count, 2);
    for (const bad of [{ type: 'kv', script: 'x' }, { type: 'worker' }, { type: 'worker', script: 'a b' },
      { type: 'r2_bucket', bucket_name: 'Caps' }, { type: 'r2_bucket', bucket_name: 'ab' }, { type: 7 }]) {
      assertError(assert, await server.api('POST', server.acct(producers), bad), 400, 11001);
    }
    assertError(assert, await server.api('DELETE', server.acct(`${producers}/nobody`)), 404);
    const readOnly = await server.createToken('queues_read');
    assertError(assert, await server.api('POST', server.acct(producers), { type: 'worker', script: 'w' }, { token: readOnly }), 403, 9109);
    assert.equal((await server.api('DELETE', server.acct(`${producers}/my-worker`))).status, 200);
    assert.deepEqual((await server.api('GET', server.acct(`/queues/${q}`))).json.result.producers,
      [{ type: 'r2_bucket', bucket_name: 'photos' }]);
    assert.equal((await server.api('DELETE', server.acct(`/queues/${q}`))).status, 200);
  });
});

describe('authentication and permissions', () => {
  let readToken;
  let otherAccount;
  let otherToken;
  before(async () => {
    readToken = await server.createToken('queues_read');
    otherAccount = await server.createAccount('other-co');
    otherToken = await server.createToken('queues_read,queues_write', otherAccount);
  });

  test('no token is a 401 with code 10000', async () => {
    const res = await server.api('GET', server.acct('/queues'), undefined, { token: null });
    assertError(assert, res, 401, 10000);
    const res2 = await server.api('POST', server.acct('/queues'), { queue_name: 'no-auth' }, { token: null });
    assertError(assert, res2, 401, 10000);
    assert.equal(await queueByName('no-auth'), undefined);
  });

  test('a wrong token is a 401 with code 10000', async () => {
    const res = await server.api('GET', server.acct('/queues'), undefined, { token: 'not-a-real-token' });
    assertError(assert, res, 401, 10000);
    const res2 = await server.api('GET', server.acct('/queues'), undefined, { token: server.token + 'x' });
    assertError(assert, res2, 401, 10000);
    const res3 = await server.api('GET', server.acct('/queues'), undefined, {
      token: null,
      headers: { authorization: `Basic ${server.token}` },
    });
    assertError(assert, res3, 401, 10000);
    await assert.rejects(
      server.sdk('wrong').queues.list({ account_id: A }),
      (e) => e instanceof Cloudflare.AuthenticationError,
    );
  });

  test('a read-only token can read but not write (403, nothing changed)', async () => {
    const list = await server.api('GET', server.acct('/queues'), undefined, { token: readToken });
    assertEnvelope(assert, list, { success: true, status: 200 });
    const q = await queueByName('crud-defaults');
    const get = await server.api('GET', server.acct(`/queues/${q.queue_id}`), undefined, { token: readToken });
    assert.equal(get.status, 200);

    const beforeNames = await allNames();
    const c = await server.api('POST', server.acct('/queues'), { queue_name: 'read-only-create' }, { token: readToken });
    assertError(assert, c, 403, 9109);
    const p = await server.api('PATCH', server.acct(`/queues/${q.queue_id}`), { settings: { delivery_delay: 9 } }, {
      token: readToken,
    });
    assertError(assert, p, 403);
    const d = await server.api('DELETE', server.acct(`/queues/${q.queue_id}`), undefined, { token: readToken });
    assertError(assert, d, 403);
    assert.deepEqual(await allNames(), beforeNames);
    assert.equal((await client.queues.get(q.queue_id, { account_id: A })).settings.delivery_delay, 0);
    await assert.rejects(
      server.sdk(readToken).queues.create({ account_id: A, queue_name: 'read-only-sdk' }),
      (e) => e instanceof Cloudflare.PermissionDeniedError,
    );
  });

  test('pull and ack need both permissions; the 403 names the one missing', async () => {
    const writeToken = await server.createToken('queues_write');
    const q = await queueByName('crud-defaults');
    for (const op of ['pull', 'ack']) {
      const w = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/${op}`), {}, { token: writeToken });
      assert.match(assertError(assert, w, 403, 9109).message, /lacks queues_read$/);
      const r = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/${op}`), {}, { token: readToken });
      assert.match(assertError(assert, r, 403, 9109).message, /lacks queues_write$/);
    }
  });

  test("another account's token on this account's path is a 403", async () => {
    const beforeNames = await allNames();
    const l = await server.api('GET', server.acct('/queues'), undefined, { token: otherToken });
    assertError(assert, l, 403);
    const c = await server.api('POST', server.acct('/queues'), { queue_name: 'cross-account' }, { token: otherToken });
    assertError(assert, c, 403, 9109);
    const q = await queueByName('crud-defaults');
    const g = await server.api('GET', server.acct(`/queues/${q.queue_id}`), undefined, { token: otherToken });
    assertError(assert, g, 403);
    assert.deepEqual(await allNames(), beforeNames);
  });

  test('accounts are isolated: same name allowed, ids do not cross', async () => {
    const mine = await queueByName('crud-defaults');
    const c = await server.api('POST', `/accounts/${otherAccount}/queues`, { queue_name: 'crud-defaults' }, {
      token: otherToken,
    });
    assertEnvelope(assert, c, { success: true, status: 200 });
    assert.notEqual(c.json.result.queue_id, mine.queue_id);
    const l = await server.api('GET', `/accounts/${otherAccount}/queues`, undefined, { token: otherToken });
    assert.deepEqual(l.json.result.map((q) => q.queue_name), ['crud-defaults']);
    // My queue id under the other account's path does not exist there.
    const g = await server.api('GET', `/accounts/${otherAccount}/queues/${mine.queue_id}`, undefined, {
      token: otherToken,
    });
    assertError(assert, g, 404, 11000);
    // The admin token works on every account.
    const admin = await server.api('GET', `/accounts/${otherAccount}/queues`);
    assert.equal(admin.status, 200);
    assert.equal(admin.json.result.length, 1);
  });

  test('memberships lists the accounts the token can use', async () => {
    const res = await server.api('GET', '/memberships');
    assertEnvelope(assert, res, { success: true, status: 200 });
    const ids = res.json.result.map((m) => m.account.id);
    assert.ok(ids.includes(A), 'admin sees the default account');
    for (const m of res.json.result) assert.equal(typeof m.account.name, 'string');

    const other = await server.api('GET', '/memberships?page=1', undefined, { token: otherToken });
    assertEnvelope(assert, other, { success: true, status: 200 });
    assert.deepEqual(other.json.result.map((m) => m.account.id), [otherAccount]);

    const noAuth = await server.api('GET', '/memberships', undefined, { token: null });
    assertError(assert, noAuth, 401, 10000);
  });
});

/* Writes raw bytes on one connection and collects what comes back until the
 * server closes it or quietMs pass without data. */
function rawExchange(port, payload, quietMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let timer;
    const done = () => {
      sock.destroy();
      resolve(data);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    };
    sock.on('connect', () => {
      sock.write(payload);
      arm();
    });
    sock.on('data', (d) => {
      data += d;
      arm();
    });
    sock.on('end', () => {
      clearTimeout(timer);
      done();
    });
    // A reset after the reply is the server's business; a reset that loses
    // the reply leaves data empty and the caller's checks fail.
    sock.on('error', () => {
      clearTimeout(timer);
      done();
    });
  });
}

/* Splits HTTP/1.1 responses with Content-Length bodies. */
function parseResponses(raw) {
  const out = [];
  let rest = Buffer.from(raw);
  while (rest.length) {
    const head = rest.indexOf('\r\n\r\n');
    if (head < 0) break;
    const headers = rest.subarray(0, head).toString();
    const status = Number(headers.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
    const len = Number(headers.match(/content-length:\s*(\d+)/i)?.[1] ?? 0);
    out.push({ status, headers, body: rest.subarray(head + 4, head + 4 + len).toString() });
    rest = rest.subarray(head + 4 + len);
  }
  return out;
}

describe('HTTP server behaviour', () => {
  test('keep-alive and pipelining: responses come back in request order', async () => {
    const auth = `Authorization: Bearer ${server.token}\r\n`;
    const req = (p) => `GET /client/v4${p} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`;
    const out = await rawExchange(
      server.port,
      req(server.acct('/queues?name=crud-defaults')) + req('/memberships') + req(server.acct(`/queues/${'e'.repeat(32)}`)),
    );
    const replies = parseResponses(out);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 404], out.slice(0, 500));
    assert.ok(Array.isArray(JSON.parse(replies[0].body).result), 'first: the queue list');
    assert.ok(JSON.parse(replies[1].body).result[0].account, 'second: memberships');
    assert.equal(JSON.parse(replies[2].body).errors[0].code, 11000, 'third: not found');
  });

  test('a body over the server limit is a 413 in the envelope and creates nothing', async () => {
    // Raw socket: announce 2 MiB, send only the start, read the reply. (A
    // client that pushes the whole body races the server's close.)
    const before = await allNames();
    const head =
      `POST /client/v4${server.acct('/queues')} HTTP/1.1\r\nHost: x\r\n` +
      `Authorization: Bearer ${server.token}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${2 * 1024 * 1024}\r\n\r\n`;
    const out = await rawExchange(server.port, head + '{"queue_name":"huge-body","pad":"' + 'x'.repeat(64 * 1024), 1000);
    const [reply] = parseResponses(out);
    assert.ok(reply, `a reply: ${out.slice(0, 300)}`);
    assert.equal(reply.status, 413, reply.headers);
    assert.match(reply.headers, /content-type:\s*application\/json/i);
    const json = JSON.parse(reply.body);
    assert.equal(json.success, false);
    assert.equal(typeof json.errors[0].code, 'number');
    assert.deepEqual(await allNames(), before);
  });

  test('oversized headers are refused with 431', async () => {
    const res = await server.api('GET', server.acct('/queues'), undefined, { headers: { 'x-big': 'y'.repeat(64 * 1024) } });
    assert.equal(res.status, 431);
  });

  test('an unsupported method on a known route is refused in the envelope', async () => {
    const res = await server.api('POST', server.acct(`/queues/${'e'.repeat(32)}/metrics`), {});
    assertError(assert, res, [404, 405]);
  });
});
