/*
 * audit.test.mjs — the audit log (seed 004 "Audit Logs"; issue 16): every
 * logged operation of the seed (CreateQueue, UpdateQueue, DeleteQueue,
 * AttachConsumer, UpdateConsumerSettings, RemoveConsumer) plus account and
 * token changes, with the acting token (id and name, never its secret), the
 * source address, the settings before and after; read with Cloudflare's
 * GET /accounts/{a}/audit_logs filters and pages and through the cloudflare
 * SDK and `wharf audit list`; another account sees none of it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer } from './harness.mjs';

let server, writer, writerId, otherAccount, otherToken, queueId, consumerId;

async function ok(method, apiPath, body, token = writer) {
  const res = await server.api(method, server.acct(apiPath), body, { token });
  assert.equal(res.status, 200, `${method} ${apiPath}: ${res.text}`);
  return res.json.result;
}

async function audit(query = '', token = server.token) {
  const res = await server.api('GET', server.acct(`/audit_logs${query}`), undefined, { token });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

before(async () => {
  server = await startServer();
  otherAccount = await server.createAccount('other');
  otherToken = await server.createToken('queues_read,queues_write', otherAccount);
  writer = await server.createToken('queues_read,queues_write');
  const tokens = await server.api('GET', '/user/tokens');
  writerId = tokens.json.result.filter((t) => t.account_id === server.accountId).at(-1).id;

  queueId = (await ok('POST', '/queues', { queue_name: 'jobs' })).queue_id;
  await ok('PATCH', `/queues/${queueId}`, { settings: { delivery_delay: 30 } });
  consumerId = (await ok('POST', `/queues/${queueId}/consumers`, { type: 'http_pull', settings: { batch_size: 5 } }))
    .consumer_id;
  await ok('PUT', `/queues/${queueId}/consumers/${consumerId}`, { type: 'http_pull', settings: { batch_size: 20 } });
  await ok('DELETE', `/queues/${queueId}/consumers/${consumerId}`);
  await ok('DELETE', `/queues/${queueId}`);
});

after(async () => {
  if (server) await server.dispose();
});

const ACTIONS = ['CreateToken', 'CreateQueue', 'UpdateQueue', 'AttachConsumer', 'UpdateConsumerSettings', 'RemoveConsumer', 'DeleteQueue'];

test('each change, in order, with who, where, what and the settings before and after', async () => {
  const { result, result_info } = await audit('?direction=asc');
  assert.deepEqual(result.map((e) => e.action.type), ACTIONS);
  assert.equal(result_info.total_count, ACTIONS.length);
  const [token, create, update, attach, change, remove, drop] = result;
  assert.deepEqual(token.resource, { id: writerId, type: 'token' });
  for (const entry of [create, update, attach, change, remove, drop]) {
    assert.equal(entry.actor.id, writerId);
    assert.equal(entry.actor.ip, '127.0.0.1');
    assert.equal(entry.actor.type, 'user');
    assert.equal(entry.owner.id, server.accountId);
    assert.equal(entry.action.result, true);
    assert.match(entry.when, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    assert.match(entry.id, /^[0-9a-f]{32}$/);
  }
  assert.deepEqual(create.resource, { id: queueId, type: 'queue' });
  assert.equal(create.oldValue, undefined);
  assert.equal(JSON.parse(create.newValue).queue_name, 'jobs');
  assert.equal(JSON.parse(update.oldValue).settings.delivery_delay, 0);
  assert.equal(JSON.parse(update.newValue).settings.delivery_delay, 30);
  assert.deepEqual(attach.resource, { id: consumerId, type: 'consumer' });
  assert.equal(JSON.parse(attach.newValue).settings.batch_size, 5);
  assert.equal(JSON.parse(change.oldValue).settings.batch_size, 5);
  assert.equal(JSON.parse(change.newValue).settings.batch_size, 20);
  assert.equal(JSON.parse(remove.oldValue).settings.batch_size, 20);
  assert.equal(remove.newValue, undefined);
  assert.equal(JSON.parse(drop.oldValue).queue_id, queueId);
});

test('secrets are never in the log', async () => {
  const res = await server.api('GET', server.acct('/audit_logs'));
  assert.ok(!res.text.includes(writer), 'the writer token secret is in the audit log');
  assert.ok(!res.text.includes(server.token), 'the admin token secret is in the audit log');
});

test('filters, direction and pages as Cloudflare has them', async () => {
  assert.deepEqual((await audit()).result.map((e) => e.action.type), [...ACTIONS].reverse());
  assert.deepEqual((await audit('?action.type=UpdateQueue')).result.map((e) => e.action.type), ['UpdateQueue']);
  assert.deepEqual(
    (await audit(`?resource.id=${queueId}&direction=asc`)).result.map((e) => e.action.type),
    ['CreateQueue', 'UpdateQueue', 'DeleteQueue'],
  );
  const page = await audit('?direction=asc&per_page=2&page=2');
  assert.deepEqual(page.result.map((e) => e.action.type), ACTIONS.slice(2, 4));
  assert.deepEqual(page.result_info, { page: 2, per_page: 2, count: 2, total_count: 7, total_pages: 4 });
  const one = (await audit()).result[3];
  assert.deepEqual((await audit(`?id=${one.id}`)).result, [one]);
  assert.equal((await audit('?since=2100-01-01')).result.length, 0);
  assert.equal((await audit('?before=2000-01-01T00:00:00Z')).result.length, 0);
  assert.equal((await audit('?since=2000-01-01&actor.ip=127.0.0.1')).result.length, 7);
  assert.equal((await audit('?actor.ip=10.0.0.1')).result.length, 0);
  for (const bad of ['?since=yesterday', '?direction=up', '?per_page=0', '?per_page=1001']) {
    const res = await server.api('GET', server.acct(`/audit_logs${bad}`));
    assert.equal(res.status, 400, `${bad}: ${res.text}`);
    assert.equal(res.json.success, false);
    assert.equal(res.json.errors[0].code, 11001);
  }
});

test("a queue's entries by its name: the queue's own and its consumers'", async () => {
  const { result } = await audit('?queue=jobs&direction=asc');
  assert.deepEqual(result.map((e) => e.action.type), ACTIONS.slice(1));
  assert.ok(result.every((e) => e.metadata.queue_name === 'jobs'));
  assert.equal((await audit('?queue=nope')).result.length, 0);
});

test('wharf audit list [--since] [--queue]', async () => {
  const all = await server.wharfCli(['audit', 'list', '--queue', 'jobs']);
  assert.equal(all.code, 0, all.output);
  const lines = all.stdout.trim().split('\n');
  assert.match(lines[0], /^when\s+action\s+resource\s+queue\s+actor\s+ip$/);
  assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/)[1]), [...ACTIONS.slice(1)].reverse());
  assert.ok(lines.slice(1).every((l) => l.includes(`(${writerId})`) && l.endsWith('127.0.0.1')), all.stdout);
  const none = await server.wharfCli(['audit', 'list', '--since', '2100-01-01T00:00:00+01:00']);
  assert.equal(none.code, 0, none.output);
  assert.equal(none.stdout.trim().split('\n').length, 1);
});

test('the cloudflare SDK lists them', async () => {
  const seen = [];
  for await (const entry of server.sdk().auditLogs.list({ account_id: server.accountId, direction: 'asc', per_page: 3 }))
    seen.push(entry.action.type);
  assert.deepEqual(seen, ACTIONS);
});

test("another account's token sees only its own account", async () => {
  const res = await server.api('GET', server.acct('/audit_logs'), undefined, { token: otherToken });
  assert.equal(res.status, 403, res.text);
  const own = await server.api('GET', `/accounts/${otherAccount}/audit_logs`, undefined, { token: otherToken });
  assert.equal(own.status, 200, own.text);
  assert.deepEqual(own.json.result.map((e) => e.action.type), ['CreateToken', 'CreateAccount']);
});

test('a revoked token is logged with its id, not its secret', async () => {
  await server.api('DELETE', `/user/tokens/${writerId}`);
  const [latest] = (await audit()).result;
  assert.equal(latest.action.type, 'RevokeToken');
  assert.deepEqual(latest.resource, { id: writerId, type: 'token' });
  assert.equal(JSON.parse(latest.oldValue).id, writerId);
});
