/*
 * subscriptions.test.mjs — event subscriptions (issue 15 §1): the SDK's
 * queues.subscriptions.* and wrangler's five `queues subscription` commands.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertError, HEX32, startServer } from './harness.mjs';

let server, cf;

before(async () => {
  server = await startServer();
  cf = server.sdk();
});

after(async () => {
  if (server) await server.dispose();
});

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

async function createQueue(name) {
  return cf.queues.create({ account_id: server.accountId, queue_name: name });
}

function subscriptionShape(s) {
  assert.match(s.id, HEX32);
  assert.equal(typeof s.name, 'string');
  assert.equal(typeof s.enabled, 'boolean');
  assert.ok(Array.isArray(s.events));
  assert.equal(typeof s.source.type, 'string');
  assert.equal(s.destination.type, 'queues.queue');
  assert.match(s.destination.queue_id, HEX32);
  assert.match(s.created_at, ISO);
  assert.match(s.modified_at, ISO);
}

describe('subscriptions through the SDK', () => {
  test('create, get, list with queue_id and pages, update, delete', async () => {
    const q = await createQueue('subs-sdk');
    const other = await createQueue('subs-sdk-other');
    const account_id = server.accountId;
    const created = await cf.queues.subscriptions.create({
      account_id, name: 'buckets', enabled: true, source: { type: 'r2' },
      events: ['bucket.created', 'bucket.deleted'], destination: { type: 'queues.queue', queue_id: q.queue_id },
    });
    subscriptionShape(created);
    assert.deepEqual(
      { name: created.name, enabled: created.enabled, events: created.events, source: created.source, destination: created.destination },
      { name: 'buckets', enabled: true, events: ['bucket.created', 'bucket.deleted'], source: { type: 'r2' },
        destination: { type: 'queues.queue', queue_id: q.queue_id } });
    const got = await cf.queues.subscriptions.get(created.id, { account_id });
    assert.deepEqual(got, created);

    for (const name of ['b', 'c']) {
      await cf.queues.subscriptions.create({
        account_id, name, source: { type: 'workersAi.model', model_name: '@cf/x' }, events: ['batch.queued'],
        destination: { type: 'queues.queue', queue_id: q.queue_id },
      });
    }
    await cf.queues.subscriptions.create({
      account_id, name: 'elsewhere', source: { type: 'kv' }, events: ['namespace.created'],
      destination: { type: 'queues.queue', queue_id: other.queue_id },
    });
    const page1 = await server.api('GET', server.acct(`/event_subscriptions/subscriptions?queue_id=${q.queue_id}&per_page=2`));
    assert.equal(page1.status, 200);
    assert.deepEqual(page1.json.result.map((s) => s.name), ['buckets', 'b']);
    assert.deepEqual(page1.json.result_info, { page: 1, per_page: 2, count: 2, total_count: 3, total_pages: 2 });
    const all = [];
    for await (const s of cf.queues.subscriptions.list({ account_id, per_page: 2 })) all.push(s.name);
    assert.deepEqual(all, ['buckets', 'b', 'c', 'elsewhere']);
    const byName = await server.api('GET', server.acct('/event_subscriptions/subscriptions?order=name&direction=desc'));
    assert.deepEqual(byName.json.result.map((s) => s.name), ['elsewhere', 'c', 'buckets', 'b']);

    const updated = await cf.queues.subscriptions.update(created.id, {
      account_id, name: 'renamed', enabled: false, events: ['bucket.deleted'],
    });
    assert.equal(updated.name, 'renamed');
    assert.equal(updated.enabled, false);
    assert.deepEqual(updated.events, ['bucket.deleted']);
    assert.deepEqual(updated.source, { type: 'r2' });
    assert.ok(updated.modified_at >= created.modified_at);
    const moved = await cf.queues.subscriptions.update(created.id, {
      account_id, destination: { type: 'queues.queue', queue_id: other.queue_id },
    });
    assert.deepEqual(moved.destination, { type: 'queues.queue', queue_id: other.queue_id });
    assert.equal(moved.name, 'renamed');
    const path = server.acct(`/event_subscriptions/subscriptions/${created.id}`);
    assertError(assert, await server.api('PATCH', path, { name: 'x', events: ['namespace.created'] }), 400, 11001);
    assertError(assert, await server.api('PATCH', path, { destination: { type: 'queues.queue', queue_id: '0'.repeat(32) } }), 404, 11000);
    await server.restart();
    assert.deepEqual(await cf.queues.subscriptions.get(created.id, { account_id }), moved); /* unchanged by the refused patches, and durable */

    const deleted = await cf.queues.subscriptions.delete(created.id, { account_id });
    assert.equal(deleted.id, created.id);
    const gone = await server.api('GET', server.acct(`/event_subscriptions/subscriptions/${created.id}`));
    assertError(assert, gone, 404, 11017);
  });

  test('unknown sources and events are 400s naming the valid ones; nothing is created', async () => {
    const q = await createQueue('subs-invalid');
    const body = (over) => ({ name: 'x', source: { type: 'r2' }, events: ['bucket.created'],
      destination: { type: 'queues.queue', queue_id: q.queue_id }, ...over });
    const path = server.acct('/event_subscriptions/subscriptions');
    let err = assertError(assert, await server.api('POST', path, body({ source: { type: 'images' } })), 400, 11001);
    for (const s of ['kv', 'r2', 'superSlurper', 'vectorize', 'workersAi.model', 'workersBuilds.worker', 'workflows.workflow'])
      assert.ok(err.message.includes(s), err.message);
    err = assertError(assert, await server.api('POST', path, body({ events: ['bucket.renamed'] })), 400, 11001);
    assert.match(err.message, /bucket\.created, bucket\.deleted/);
    err = assertError(assert, await server.api('POST', path, body({ events: [] })), 400, 11001);
    err = assertError(assert, await server.api('POST', path, body({ source: { type: 'workflows.workflow' }, events: ['instance.queued'] })), 400, 11001);
    assert.match(err.message, /workflow_name/);
    assertError(assert, await server.api('POST', path, body({ destination: { type: 'queues.queue', queue_id: '0'.repeat(32) } })), 404, 11000);
    assertError(assert, await server.api('POST', path, body({ name: undefined })), 400, 11001);
    const list = await server.api('GET', server.acct(`/event_subscriptions/subscriptions?queue_id=${q.queue_id}`));
    assert.deepEqual(list.json.result, []);
  });

  test('a read-only token cannot create; another account sees nothing', async () => {
    const q = await createQueue('subs-perm');
    const reader = await server.createToken('queues_read');
    const res = await server.api('POST', server.acct('/event_subscriptions/subscriptions'), {
      name: 'x', source: { type: 'kv' }, events: ['namespace.created'], destination: { type: 'queues.queue', queue_id: q.queue_id },
    }, { token: reader });
    assertError(assert, res, 403, 9109);
    const otherAccount = await server.createAccount('subs-other');
    const otherToken = await server.createToken('queues_read,queues_write', otherAccount);
    const foreign = await server.api('POST', `/accounts/${otherAccount}/event_subscriptions/subscriptions`, {
      name: 'x', source: { type: 'kv' }, events: ['namespace.created'], destination: { type: 'queues.queue', queue_id: q.queue_id },
    }, { token: otherToken });
    assertError(assert, foreign, 404, 11000);
    const mine = await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'mine', source: { type: 'kv' },
      events: ['namespace.created'], destination: { type: 'queues.queue', queue_id: q.queue_id } });
    const peek = await server.api('GET', `/accounts/${otherAccount}/event_subscriptions/subscriptions/${mine.id}`, undefined, { token: otherToken });
    assertError(assert, peek, 404, 11017);
    const theirs = await server.api('GET', `/accounts/${otherAccount}/event_subscriptions/subscriptions`, undefined, { token: otherToken });
    assert.deepEqual(theirs.json.result, []);
  });

  test('deleting the destination queue deletes its subscriptions', async () => {
    const q = await createQueue('subs-doomed');
    const s = await cf.queues.subscriptions.create({
      account_id: server.accountId, name: 'doomed', source: { type: 'kv' }, events: ['namespace.created'],
      destination: { type: 'queues.queue', queue_id: q.queue_id },
    });
    await cf.queues.delete(q.queue_id, { account_id: server.accountId });
    assertError(assert, await server.api('GET', server.acct(`/event_subscriptions/subscriptions/${s.id}`)), 404, 11017);
  });
});

describe('wrangler queues subscription', () => {
  test('create, list, get, update, delete', async () => {
    const q = await createQueue('subs-wrangler');
    let r = await server.wrangler(['queues', 'subscription', 'create', 'subs-wrangler', '--source', 'workersAi.model',
      '--model-name', '@cf/baai/bge-base-en-v1.5', '--events', 'batch.queued,batch.failed', '--name', 'ai-events']);
    assert.equal(r.code, 0, r.output);
    const id = r.output.match(/with id '([0-9a-f]{32})'/)?.[1];
    assert.ok(id, r.output);
    assert.match(r.output, /Successfully created event subscription 'ai-events'/);

    r = await server.wrangler(['queues', 'subscription', 'list', 'subs-wrangler']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(id));
    assert.match(r.output, /batch\.queued, batch\.failed/);
    assert.match(r.output, /@cf\/baai\/bge-base-en-v1\.5/);

    r = await server.wrangler(['queues', 'subscription', 'get', 'subs-wrangler', '--id', id, '--json']);
    assert.equal(r.code, 0, r.output);
    const got = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    assert.deepEqual(got.source, { type: 'workersAi.model', model_name: '@cf/baai/bge-base-en-v1.5' });
    assert.equal(got.destination.queue_id, q.queue_id);

    r = await server.wrangler(['queues', 'subscription', 'update', 'subs-wrangler', '--id', id, '--enabled', 'false', '--events', 'batch.succeeded']);
    assert.equal(r.code, 0, r.output);
    const after = await cf.queues.subscriptions.get(id, { account_id: server.accountId });
    assert.equal(after.enabled, false);
    assert.deepEqual(after.events, ['batch.succeeded']);

    r = await server.wrangler(['queues', 'subscription', 'create', 'subs-wrangler', '--source', 'r2', '--events', 'bucket.exploded']);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /bucket\.created, bucket\.deleted/);

    r = await server.wrangler(['queues', 'subscription', 'delete', 'subs-wrangler', '--id', id, '--force']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Successfully deleted event subscription 'ai-events'/);
    assertError(assert, await server.api('GET', server.acct(`/event_subscriptions/subscriptions/${id}`)), 404, 11017);
  });
});
