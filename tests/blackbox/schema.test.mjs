/*
 * schema.test.mjs — every operation of Cloudflare's Queues API that Wharf
 * serves, called once, its 200 reply validated against Cloudflare's
 * published schema for it (fixtures/cloudflare-queues-openapi-2026.json,
 * and fixtures/event-subscriptions-schema.json for the five
 * event_subscriptions operations; each says where it came from).
 *
 * The validator knows what those schemas use: $ref, allOf, oneOf (with a
 * discriminator), type, properties, required, items, additionalProperties,
 * enum, minimum, maxLength, format date-time. A value of null matches no
 * type: where the schema says "string", null is a deviation.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startServer } from './harness.mjs';

const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
const files = [fixture('cloudflare-queues-openapi-2026.json'), fixture('event-subscriptions-schema.json')];
const components = Object.assign({}, ...files.map((f) => f.components.schemas));
/* The first file leaves event_subscriptions null; the second fills them. */
const operations = files.flatMap((f) => f.operations).filter((o) => o.response_200);

const TYPES = {
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: Array.isArray,
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  integer: Number.isInteger,
  boolean: (v) => typeof v === 'boolean',
};

/* The problems of value against schema, as "path: reason" lines. */
function validate(schema, value, path = '$') {
  if (schema.$ref) return validate(components[schema.$ref.replace('#/components/schemas/', '')], value, path);
  const problems = [];
  if (schema.type && !TYPES[schema.type](value)) return [`${path}: ${JSON.stringify(value)} is not ${schema.type}`];
  if (schema.enum && !schema.enum.some((e) => e === value)) problems.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${path}: below ${schema.minimum}`);
  if (schema.maxLength !== undefined && value.length > schema.maxLength) problems.push(`${path}: longer than ${schema.maxLength}`);
  if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) problems.push(`${path}: not a date-time`);
  for (const part of schema.allOf ?? []) problems.push(...validate(part, value, path));
  if (schema.oneOf) problems.push(...validateOneOf(schema, value, path));
  if (TYPES.object(value)) {
    for (const key of schema.required ?? []) if (!(key in value)) problems.push(`${path}.${key}: missing`);
    for (const [key, v] of Object.entries(value)) {
      const sub = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : null);
      if (sub) problems.push(...validate(sub, v, `${path}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => problems.push(...validate(schema.items, v, `${path}[${i}]`)));
  return problems;
}

function validateOneOf(schema, value, path) {
  const mapped = schema.discriminator?.mapping?.[value?.[schema.discriminator.propertyName]];
  if (mapped) return validate({ $ref: mapped }, value, path);
  const matching = schema.oneOf.filter((s) => validate(s, value, path).length === 0);
  return matching.length === 1 ? [] : [`${path}: matches ${matching.length} of oneOf`];
}

let server;
const seen = new Set();

/* Calls the operation and checks its reply against its schema. */
async function call(method, template, params, body) {
  const op = operations.find((o) => o.method === method && o.path === template);
  assert.ok(op?.response_200, `a schema for ${method} ${template}`);
  const path = template.replace(/\{(\w+)\}/g, (_, k) => params[k]);
  const res = await server.api(method, path, body);
  assert.equal(res.status, 200, `${method} ${path}: ${res.text}`);
  assert.deepEqual(validate(op.response_200, res.json), [], `${op.operation}: ${res.text}`);
  seen.add(`${method} ${template}`);
  return res.json.result;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

test('the validator finds what it must', () => {
  const ack = operations.find((o) => o.path.endsWith('/messages/ack')).response_200;
  assert.deepEqual(validate(ack, { success: true, errors: [], messages: [], result: { ackCount: 1, warnings: {} } }), []);
  assert.match(validate(ack, { success: true, errors: [], messages: [], result: { warnings: [] } })[0], /warnings.*is not object/);
  const consumer = { $ref: '#/components/schemas/mq_consumer-response' };
  assert.deepEqual(validate(consumer, { type: 'http_pull', dead_letter_queue: '' }), []);
  assert.match(validate(consumer, { type: 'http_pull', dead_letter_queue: null })[0], /dead_letter_queue: null is not string/);
  assert.match(validate({ $ref: '#/components/schemas/mq_queue-metrics' }, { backlog_count: 0 })[0], /backlog_bytes: missing/);
});

test('every operation answers as its schema says', async () => {
  const a = { account_id: server.accountId };
  const q = await call('POST', '/accounts/{account_id}/queues', a, { queue_name: 'schema-q' });
  const dlq = await call('POST', '/accounts/{account_id}/queues', a, { queue_name: 'schema-dlq' });
  const qa = { ...a, queue_id: q.queue_id };
  await call('GET', '/accounts/{account_id}/queues', a);
  await call('GET', '/accounts/{account_id}/queues/{queue_id}', qa);
  await call('PUT', '/accounts/{account_id}/queues/{queue_id}', qa, { queue_name: 'schema-q', settings: { delivery_delay: 0 } });
  await call('PATCH', '/accounts/{account_id}/queues/{queue_id}', qa, { settings: { message_retention_period: 3600 } });

  const consumer = await call('POST', '/accounts/{account_id}/queues/{queue_id}/consumers', qa, { type: 'http_pull' });
  const ca = { ...qa, consumer_id: consumer.consumer_id };
  await call('GET', '/accounts/{account_id}/queues/{queue_id}/consumers', qa);
  await call('GET', '/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}', ca);
  await call('PUT', '/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}', ca,
    { type: 'http_pull', dead_letter_queue: 'schema-dlq', settings: { batch_size: 5 } });
  await call('GET', '/accounts/{account_id}/queues/{queue_id}', qa); /* now with a consumer */

  await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages', qa, { body: 'one', content_type: 'text' });
  await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/batch', qa,
    { messages: [{ body: 'two', content_type: 'text' }, { body: { n: 3 }, content_type: 'json' }] });
  await call('GET', '/accounts/{account_id}/queues/{queue_id}/metrics', qa);
  const pulled = await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/pull', qa, { batch_size: 1 });
  const acked = await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/ack', qa,
    { acks: [{ lease_id: pulled.messages[0].lease_id }, { lease_id: 'forged' }] });
  assert.deepEqual([acked.ackCount, Object.keys(acked.warnings)], [1, ['forged']]);
  const preview = await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/preview', qa, { batch_size: 1 });
  assert.equal(preview.messages.length, 1);
  const previewAcked = await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/preview/ack', qa,
    { acks: [{ lease_id: preview.messages[0].lease_id }, { lease_id: 'forged' }] });
  assert.deepEqual(Object.keys(previewAcked.warnings), ['forged']);
  const left = await call('POST', '/accounts/{account_id}/queues/{queue_id}/messages/preview', qa, { batch_size: 10 });
  assert.equal(left.messages.length, 1, 'preview/ack deleted the previewed message');
  assert.notEqual(left.messages[0].id, preview.messages[0].id);
  await call('POST', '/accounts/{account_id}/queues/{queue_id}/purge', qa, { delete_messages_permanently: true });
  await call('GET', '/accounts/{account_id}/queues/{queue_id}/purge', qa);

  const subscription = await call('POST', '/accounts/{account_id}/event_subscriptions/subscriptions', a,
    { name: 's', source: { type: 'workersAi.model', model_name: '@cf/m' }, events: ['batch.queued'],
      destination: { type: 'queues.queue', queue_id: q.queue_id } });
  const sa = { ...a, subscription_id: subscription.id };
  await call('GET', '/accounts/{account_id}/event_subscriptions/subscriptions', a);
  await call('GET', '/accounts/{account_id}/event_subscriptions/subscriptions/{subscription_id}', sa);
  await call('PATCH', '/accounts/{account_id}/event_subscriptions/subscriptions/{subscription_id}', sa, { enabled: false });
  await call('DELETE', '/accounts/{account_id}/event_subscriptions/subscriptions/{subscription_id}', sa);

  await call('DELETE', '/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}', ca);
  const worker = await call('POST', '/accounts/{account_id}/queues/{queue_id}/consumers', qa, { type: 'worker', script_name: 'w' });
  await call('GET', '/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}', { ...qa, consumer_id: worker.consumer_id });
  await call('DELETE', '/accounts/{account_id}/queues/{queue_id}', qa);
  await call('DELETE', '/accounts/{account_id}/queues/{queue_id}', { ...a, queue_id: dlq.queue_id });

  assert.deepEqual(operations.filter((o) => !seen.has(`${o.method} ${o.path}`)).map((o) => o.operation), [], 'every operation called');
});
