/*
 * dashboard.test.mjs — GET / serves the web dashboard: one static page that
 * holds no data and no secret (it asks for a token and calls the REST API),
 * with headers that keep it from being framed or loading anything foreign.
 * The API calls the page makes are checked to exist with the same bodies.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertError, startServer } from './harness.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

test('GET / is the dashboard page, with no secret in it', async () => {
  const res = await server.api('GET', '/', undefined, { token: null, root: true });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html; charset=utf-8/);
  assert.match(res.text, /^<!doctype html>/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'none'.*connect-src 'self'.*frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.ok(!res.text.includes(server.token), 'no token in the page');
  assert.ok(!res.text.includes(server.accountId), 'no account id in the page');
  const script = res.text.slice(res.text.indexOf('<script>') + 8, res.text.indexOf('</script>'));
  assert.doesNotThrow(() => new Function(script), 'the page script compiles'); // eslint-disable-line no-new-func
});

test('the API calls the page makes work as it makes them', async () => {
  const page = (await server.api('GET', '/', undefined, { token: null, root: true })).text;
  for (const path of ['/memberships', '/queues?per_page=100', '/metrics', '/messages/peek', '/messages/purge', '/purge']) {
    assert.ok(page.includes(path), `the page calls ${path}`);
  }
  const members = await server.api('GET', '/memberships');
  assert.ok(members.json.result.some((m) => m.account.id === server.accountId && typeof m.account.name === 'string'));
  const created = await server.api('POST', server.acct('/queues'), { queue_name: 'from-dashboard' });
  const q = created.json.result.queue_id;
  await server.api('POST', server.acct(`/queues/${q}/messages`), { body: { hello: 'wörld' } });
  const listed = await server.api('GET', server.acct('/queues?per_page=100'));
  assert.ok(Array.isArray(listed.json.result[0].consumers));
  const peeked = await server.api('POST', server.acct(`/queues/${q}/messages/peek`), { batch_size: 100 });
  const m = peeked.json.result.messages[0];
  assert.equal(m.metadata['CF-Content-Type'], 'json');
  assert.deepEqual(JSON.parse(Buffer.from(m.body, 'base64').toString('utf8')), { hello: 'wörld' }); // as bodyText() decodes it
  const purged = await server.api('POST', server.acct(`/queues/${q}/messages/purge`), { refs: [{ ref: m.ref }] });
  assert.equal(purged.status, 200, purged.text);
  const metrics = await server.api('GET', server.acct(`/queues/${q}/metrics`));
  assert.equal(metrics.json.result.backlog_count, 0);
});

test('only GET: other methods on / get the envelope', async () => {
  assertError(assert, await server.api('POST', '/', '{}', { root: true }), 404);
});
