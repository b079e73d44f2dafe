/*
 * subscriptions.test.mjs — event subscriptions (issue 15 §1): the SDK's
 * queues.subscriptions.* and wrangler's five `queues subscription` commands;
 * the publish endpoint and `wharf events publish` (Wharf extensions) for five
 * Cloudflare sources, checked field by field against seed 004's "Events &
 * schemas"; Wharf's own `wharf` source.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertError, CLUSTER, HEX32, sleep, startServer } from './harness.mjs';

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

/* Every stored message of a queue, bodies parsed (events are json). */
async function events(queueId, accountId = server.accountId) {
  const res = await server.api('POST', `/accounts/${accountId}/queues/${queueId}/messages/peek`, { batch_size: 100 });
  assert.equal(res.status, 200, res.text);
  return res.json.result.messages.map((m) => {
    assert.equal(m.metadata['CF-Content-Type'], 'json');
    return JSON.parse(Buffer.from(m.body, 'base64').toString('utf8'));
  });
}

/* Clustered mode: a subscription made through one node matches on the
 * other once that node's watcher has delivered it (milliseconds, up to the
 * watcher's one-second check under load; src/control/subscriptions_cluster.c),
 * so a test that makes subscriptions and at once causes events waits that
 * long. */
async function settled() {
  if (CLUSTER) await sleep(1000);
}

async function publish(event, token) {
  return server.api('POST', server.acct('/event_subscriptions/events'), event, { token });
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
    for (const s of ['kv', 'r2', 'superSlurper', 'vectorize', 'workersAi.model', 'workersBuilds.worker', 'workflows.workflow', 'wharf'])
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

describe('publishing events', () => {
  /* One event per source, as seed 004's examples have them. */
  const samples = [
    {
      source: { type: 'r2' }, sub: { type: 'r2' }, event: 'bucket.created',
      message: { type: 'cf.r2.bucket.created', source: { type: 'r2' },
        payload: { name: 'my-bucket', jurisdiction: 'default', location: 'WNAM', storageClass: 'Standard' } },
    },
    {
      sub: { type: 'workersAi.model', model_name: '@cf/baai/bge-base-en-v1.5' }, event: 'batch.failed',
      message: { type: 'cf.workersAi.model.batch.failed', source: { type: 'workersAi.model', modelName: '@cf/baai/bge-base-en-v1.5' },
        payload: { requestId: 'req-1', message: 'Model execution failed', internalCode: 5001, httpCode: 500 } },
    },
    {
      sub: { type: 'workflows.workflow', workflow_name: 'my-workflow' }, event: 'instance.completed',
      message: { type: 'cf.workflows.workflow.instance.completed', source: { type: 'workflows.workflow', workflowName: 'my-workflow' },
        payload: { versionId: 'v1', instanceId: 'inst-1' } },
    },
    {
      sub: { type: 'superSlurper' }, event: 'job.object.migrated',
      message: { type: 'cf.superSlurper.job.object.migrated', source: { type: 'superSlurper.job', jobId: 'job-1' },
        payload: { key: 'migrations/file.txt' } },
    },
  ];

  test('each event reaches every enabled matching subscription, in the common schema, durably', async () => {
    const q = await createQueue('events-in');
    const subs = [];
    for (const s of samples) {
      subs.push(await cf.queues.subscriptions.create({ account_id: server.accountId, name: s.event, source: s.sub,
        events: [s.event], destination: { type: 'queues.queue', queue_id: q.queue_id } }));
    }
    const disabled = await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'off', enabled: false,
      source: { type: 'r2' }, events: ['bucket.created'], destination: { type: 'queues.queue', queue_id: q.queue_id } });
    await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'other model',
      source: { type: 'workersAi.model', model_name: '@cf/other' }, events: ['batch.failed'],
      destination: { type: 'queues.queue', queue_id: q.queue_id } });
    /* A second queue wants bucket.created too; another event of r2, and
     * another account's r2 subscription, must not count. */
    const q2 = await createQueue('events-in-2');
    const fan = await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'fan', source: { type: 'r2' },
      events: ['bucket.deleted', 'bucket.created'], destination: { type: 'queues.queue', queue_id: q2.queue_id } });
    await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'deletes only', source: { type: 'r2' },
      events: ['bucket.deleted'], destination: { type: 'queues.queue', queue_id: q2.queue_id } });
    const otherAccount = await server.createAccount('events-other');
    const otherCf = server.sdk(await server.createToken('queues_read,queues_write', otherAccount));
    const otherQ = await otherCf.queues.create({ account_id: otherAccount, queue_name: 'events-theirs' });
    await otherCf.queues.subscriptions.create({ account_id: otherAccount, name: 'theirs', source: { type: 'r2' },
      events: ['bucket.created'], destination: { type: 'queues.queue', queue_id: otherQ.queue_id } });
    await settled();
    const before = Date.now();
    for (let i = 0; i < samples.length; i++) {
      const res = await publish(samples[i].message);
      assert.equal(res.status, 200, res.text);
      const expected = [{ subscription_id: subs[i].id, queue_id: q.queue_id }];
      if (i === 0) expected.push({ subscription_id: fan.id, queue_id: q2.queue_id });
      assert.deepEqual(res.json.result.deliveries, expected);
    }
    await server.restart({ crash: true }); /* answered means durable */
    const [fanned, ...rest] = await events(q2.queue_id);
    assert.deepEqual(rest, []);
    assert.equal(fanned.metadata.eventSubscriptionId, fan.id);
    assert.deepEqual(fanned.payload, samples[0].message.payload);
    assert.deepEqual(await events(otherQ.queue_id, otherAccount), []);
    const got = await events(q.queue_id);
    assert.equal(got.length, samples.length);
    for (let i = 0; i < samples.length; i++) {
      const m = got[i];
      assert.deepEqual(Object.keys(m).sort(), ['metadata', 'payload', 'source', 'type']);
      assert.equal(m.type, samples[i].message.type);
      assert.deepEqual(m.source, samples[i].message.source);
      assert.deepEqual(m.payload, samples[i].message.payload);
      assert.deepEqual(Object.keys(m.metadata).sort(), ['accountId', 'eventSchemaVersion', 'eventSubscriptionId', 'eventTimestamp']);
      assert.equal(m.metadata.accountId, server.accountId);
      assert.equal(m.metadata.eventSubscriptionId, subs[i].id);
      assert.notEqual(m.metadata.eventSubscriptionId, disabled.id);
      assert.equal(m.metadata.eventSchemaVersion, 1);
      assert.match(m.metadata.eventTimestamp, ISO);
      assert.ok(Date.parse(m.metadata.eventTimestamp) >= before - 1000);
    }
  });

  test('events that do not match their schema are refused and delivered nowhere', async () => {
    const q = await createQueue('events-bad');
    await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'r2', source: { type: 'r2' },
      events: ['bucket.deleted'], destination: { type: 'queues.queue', queue_id: q.queue_id } });
    const ok = { type: 'cf.r2.bucket.deleted', source: { type: 'r2' }, payload: { name: 'b', jurisdiction: 'default' } };
    const cases = [
      [{ ...ok, type: 'cf.r2.bucket.exploded' }, /sources are: access, kv, r2/],
      [{ ...ok, payload: { name: 'b' } }, /payload\.jurisdiction: missing/],
      [{ ...ok, payload: { name: 7, jurisdiction: 'default' } }, /payload\.name: must be a string/],
      [{ ...ok, payload: { ...ok.payload, extra: 1 } }, /payload\.extra: not a field/],
      [{ ...ok, source: { type: 'kv' } }, /source\.type: must be "r2"/],
      [{ type: 'wharf.queue.created', source: { type: 'wharf' }, payload: { queueId: 'x', queueName: 'y' } }, /Unknown event type/],
    ];
    for (const [event, reason] of cases) {
      const err = assertError(assert, await publish(event), 400, 11001);
      assert.match(err.message, reason);
    }
    const reader = await server.createToken('queues_read');
    assertError(assert, await publish(ok, reader), 403, 9109);
    assert.deepEqual(await events(q.queue_id), []);
    assert.equal((await publish(ok)).status, 200);
    assert.equal((await events(q.queue_id)).length, 1);
  });

  test('wharf events publish: the CLI verb, checked like the endpoint', async () => {
    const q = await createQueue('events-cli');
    const sub = await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'builds',
      source: { type: 'workersBuilds.worker', worker_name: 'site' }, events: ['build.canceled'],
      destination: { type: 'queues.queue', queue_id: q.queue_id } });
    await settled();
    const payload = { buildUuid: 'b-1', status: 'stopped', buildOutcome: 'canceled', createdAt: '2025-05-01T02:48:57.132Z',
      initializingAt: '2025-05-01T02:48:58.132Z', runningAt: '2025-05-01T02:48:59.132Z', stoppedAt: '2025-05-01T02:49:57.132Z',
      buildTriggerMetadata: { buildTriggerSource: 'push_event', branch: 'main', commitHash: 'abc', commitMessage: 'm',
        author: 'a@example.com', buildCommand: 'npm run build', deployCommand: 'wrangler deploy', rootDirectory: '/',
        repoName: 'site', providerAccountName: 'me', providerType: 'github' } };
    let r = await server.wharfCli(['events', 'publish', '--type', 'cf.workersBuilds.worker.build.canceled',
      '--source', 'workersBuilds.worker', '--worker-name', 'site', '--payload', JSON.stringify(payload)]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`Published event cf.workersBuilds.worker.build.canceled to 1 subscription.\\nsubscription ${sub.id} -> queue ${q.queue_id}`));
    const [m] = await events(q.queue_id);
    assert.deepEqual({ type: m.type, source: m.source, payload: m.payload },
      { type: 'cf.workersBuilds.worker.build.canceled', source: { type: 'workersBuilds.worker', workerName: 'site' }, payload });
    assert.equal(m.metadata.eventSubscriptionId, sub.id);
    r = await server.wharfCli(['events', 'publish', '--type', 'cf.workersBuilds.worker.build.canceled',
      '--source', 'workersBuilds.worker', '--worker-name', 'site', '--payload', JSON.stringify({ ...payload, status: 1 })]);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /payload\.status: must be a string \[code: 11001\]/);
    assert.equal((await events(q.queue_id)).length, 1);
  });
});

describe("Wharf's own source", () => {
  test('queue and consumer lifecycle, purge and dead-lettering become wharf.* events', async () => {
    const sink = await createQueue('wharf-events');
    const all = ['queue.created', 'queue.updated', 'queue.deleted', 'queue.purged', 'consumer.attached',
      'consumer.removed', 'messages.deadLettered'];
    const sub = await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'ops', source: { type: 'wharf' },
      events: all, destination: { type: 'queues.queue', queue_id: sink.queue_id } });
    await settled();
    const account_id = server.accountId;
    const q = await createQueue('wharf-watched');
    await cf.queues.update(q.queue_id, { account_id, queue_name: 'wharf-watched', settings: { delivery_delay: 0 } });
    const consumer = await cf.queues.consumers.create(q.queue_id, { account_id, type: 'http_pull',
      dead_letter_queue: 'wharf-watched-dlq', settings: { max_retries: 0 } });
    await cf.queues.messages.push(q.queue_id, { account_id, body: 'doomed', content_type: 'text' });
    const pulled = await cf.queues.messages.pull(q.queue_id, { account_id, batch_size: 1 });
    await cf.queues.messages.ack(q.queue_id, { account_id, retries: [{ lease_id: pulled.messages[0].lease_id }] });
    await cf.queues.purge.start(q.queue_id, { account_id, delete_messages_permanently: true });
    await cf.queues.consumers.delete(consumer.consumer_id, { account_id, queue_id: q.queue_id });
    await cf.queues.delete(q.queue_id, { account_id });
    let got = [];
    for (let i = 0; i < 50 && got.length < 7; i++) got = (await events(sink.queue_id)).filter((e) => e.payload.queueName === 'wharf-watched');
    assert.deepEqual(got.map((e) => e.type), ['wharf.queue.created', 'wharf.queue.updated', 'wharf.consumer.attached',
      'wharf.messages.deadLettered', 'wharf.queue.purged', 'wharf.consumer.removed', 'wharf.queue.deleted']);
    for (const e of got) {
      assert.deepEqual(e.source, { type: 'wharf' });
      assert.equal(e.payload.queueId, q.queue_id);
      assert.equal(e.metadata.eventSubscriptionId, sub.id);
      assert.equal(e.metadata.accountId, server.accountId);
    }
    assert.deepEqual(got[2].payload, { queueId: q.queue_id, queueName: 'wharf-watched', consumerId: consumer.consumer_id,
      consumerType: 'http_pull', scriptName: null });
    const dlq = (await cf.queues.list({ account_id })).result.find((x) => x.queue_name === 'wharf-watched-dlq');
    assert.deepEqual(got[3].payload, { queueId: q.queue_id, queueName: 'wharf-watched', deadLetterQueueId: dlq.queue_id,
      deadLetterQueueName: 'wharf-watched-dlq', messageCount: 1 });
    /* The dead-letter queue, created when the consumer first named it. */
    const dlqCreated = (await events(sink.queue_id)).filter((e) => e.payload.queueName === 'wharf-watched-dlq');
    assert.deepEqual(dlqCreated.map((e) => [e.type, e.payload]), [['wharf.queue.created', { queueId: dlq.queue_id, queueName: 'wharf-watched-dlq' }]]);
  });
});

describe('wharf queues subscription', () => {
  test("mirrors wrangler's five commands, and knows the wharf source", async () => {
    const q = await createQueue('subs-cli');
    const other = await createQueue('subs-cli-other');
    let r = await server.wharfCli(['queues', 'subscription', 'create', 'subs-cli', '--source', 'workersAi.model',
      '--model-name', '@cf/m', '--events', 'batch.queued,batch.failed']);
    assert.equal(r.code, 0, r.output);
    const id = r.output.match(/Successfully created event subscription 'subs-cli workersAi.model' with id '([0-9a-f]{32})'/)?.[1];
    assert.ok(id, r.output);
    const created = await cf.queues.subscriptions.get(id, { account_id: server.accountId });
    assert.deepEqual({ source: created.source, events: created.events, enabled: created.enabled, destination: created.destination },
      { source: { type: 'workersAi.model', model_name: '@cf/m' }, events: ['batch.queued', 'batch.failed'], enabled: true,
        destination: { type: 'queues.queue', queue_id: q.queue_id } });
    r = await server.wharfCli(['queues', 'subscription', 'create', 'subs-cli', '--source', 'wharf', '--events', 'queue.purged',
      '--name', 'ops', '--enabled', 'false']);
    assert.equal(r.code, 0, r.output);
    const opsId = r.output.match(/with id '([0-9a-f]{32})'/)[1];
    await cf.queues.subscriptions.create({ account_id: server.accountId, name: 'elsewhere', source: { type: 'kv' },
      events: ['namespace.created'], destination: { type: 'queues.queue', queue_id: other.queue_id } });

    r = await server.wharfCli(['queues', 'subscription', 'list', 'subs-cli']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Event subscriptions for queue 'subs-cli':/);
    assert.match(r.output, new RegExp(`${id}\\s+subs-cli workersAi.model\\s+workersAi.model\\s+batch.queued, batch.failed\\s+@cf/m\\s+Yes`));
    assert.match(r.output, new RegExp(`${opsId}\\s+ops\\s+wharf\\s+queue.purged\\s+-\\s+No`));
    assert.doesNotMatch(r.output, /elsewhere/);
    r = await server.wharfCli(['queues', 'subscription', 'list', 'subs-cli', '--per-page', '1', '--page', '2', '--json']);
    assert.deepEqual(JSON.parse(r.stdout).map((s) => s.id), [opsId]);

    r = await server.wharfCli(['queues', 'subscription', 'get', 'subs-cli', '--id', id]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`ID: ${id}\\nName: subs-cli workersAi.model\\nSource: workersAi.model\\nResource: @cf/m\\nQueue ID: ${q.queue_id}\\nEvents: batch.queued,batch.failed\\nEnabled: Yes\\n`));
    r = await server.wharfCli(['queues', 'subscription', 'get', 'subs-cli', '--id', id, '--json']);
    assert.deepEqual(JSON.parse(r.stdout), created);
    r = await server.wharfCli(['queues', 'subscription', 'get', 'subs-cli-other', '--id', id]);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /does not belong to queue 'subs-cli-other'/);

    r = await server.wharfCli(['queues', 'subscription', 'update', 'subs-cli', '--id', opsId, '--enabled', 'true',
      '--events', 'queue.purged,queue.deleted', '--name', 'ops2']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`Successfully updated event subscription 'ops2' with id '${opsId}'`));
    const ops = await cf.queues.subscriptions.get(opsId, { account_id: server.accountId });
    assert.deepEqual([ops.name, ops.enabled, ops.events], ['ops2', true, ['queue.purged', 'queue.deleted']]);
    r = await server.wharfCli(['queues', 'subscription', 'update', 'subs-cli-other', '--id', opsId, '--enabled', 'false']);
    assert.notEqual(r.code, 0, r.output);
    assert.equal((await cf.queues.subscriptions.get(opsId, { account_id: server.accountId })).enabled, true);
    r = await server.wharfCli(['queues', 'subscription', 'update', 'subs-cli', '--id', opsId, '--enabled', 'maybe']);
    assert.equal(r.code, 2, r.output);

    r = await server.wharfCli(['queues', 'subscription', 'delete', 'subs-cli', '--id', id], {}, { input: 'n\n' });
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /Are you sure you want to delete the event subscription 'subs-cli workersAi.model'/);
    assert.equal((await cf.queues.subscriptions.get(id, { account_id: server.accountId })).id, id);
    r = await server.wharfCli(['queues', 'subscription', 'delete', 'subs-cli', '--id', id], {}, { input: 'y\n' });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`Successfully deleted event subscription 'subs-cli workersAi.model' with id '${id}'`));
    r = await server.wharfCli(['queues', 'subscription', 'delete', 'subs-cli', '--id', opsId, '--force']);
    assert.equal(r.code, 0, r.output);
    r = await server.wharfCli(['queues', 'subscription', 'list', 'subs-cli']);
    assert.match(r.output, /No event subscriptions found for queue 'subs-cli'\./);
  });
});
