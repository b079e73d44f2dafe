/*
 * token_expiry.test.mjs — an API token's validity window (Cloudflare's
 * not_before / expires_on): set where tokens are created (REST and the CLI),
 * returned with the token, enforced on every request. The server runs on the
 * fixed test clock (docs/test-clock.md), so expiry is reached by moving the
 * clock, not by sleeping.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, tokenFromOutput } from './harness.mjs';

const T0 = Date.UTC(2030, 0, 1, 10, 0, 0);
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
let server;

async function setClock(ms) {
  const res = await server.setTestClock(ms);
  assert.equal(res.status, 200, res.text);
}

async function createToken(body) {
  const res = await server.api('POST', '/user/tokens', { account_id: server.accountId, ...body });
  assert.equal(res.status, 200, res.text);
  return res.json.result;
}

const listQueues = (token) => server.api('GET', server.acct('/queues'), undefined, { token });

before(async () => {
  server = await startServer({ env: { WHARF_TEST_CLOCK_MS: String(T0) } });
});
after(() => server?.stop());

test('a token works inside its window and is refused with 401 outside it', async () => {
  await setClock(T0);
  const token = await createToken({ name: 'window', not_before: iso(T0 + 60_000), expires_on: iso(T0 + 3_600_000) });
  assert.equal(token.not_before, new Date(T0 + 60_000).toISOString());
  assert.equal(token.expires_on, new Date(T0 + 3_600_000).toISOString());

  let res = await listQueues(token.value);
  assert.equal(res.status, 401, res.text);
  assert.equal(res.json.success, false);
  assert.equal(res.json.errors[0].code, 10000);
  assert.match(res.json.errors[0].message, /not valid before 2030-01-01T10:01:00/);

  await setClock(T0 + 60_000);
  res = await listQueues(token.value);
  assert.equal(res.status, 200, res.text);
  await setClock(T0 + 3_600_000 - 1); /* last millisecond: still accepted */
  assert.equal((await listQueues(token.value)).status, 200);

  await setClock(T0 + 3_600_000); /* the cached token is refused too */
  res = await listQueues(token.value);
  assert.equal(res.status, 401, res.text);
  assert.equal(res.json.errors[0].code, 10000);
  assert.match(res.json.errors[0].message, /the API token expired at 2030-01-01T11:00:00/);

  /* A token without a window is unchanged by the clock. */
  await setClock(T0 + 365 * 86_400_000);
  assert.equal((await listQueues(server.token)).status, 200);
  const listed = (await server.api('GET', '/user/tokens')).json.result.find((t) => t.id === token.id);
  assert.equal(listed.expires_on, token.expires_on);
  const unbounded = (await server.api('GET', '/user/tokens')).json.result.find((t) => t.id !== token.id);
  assert.equal(unbounded.expires_on, undefined);
});

test('a bad or past window is refused at creation and creates nothing', async () => {
  await setClock(T0);
  const before = (await server.api('GET', '/user/tokens')).json.result.length;
  for (const [body, message] of [
    [{ expires_on: 'tomorrow' }, /Invalid expires_on: must be an RFC 3339 time/],
    [{ not_before: 5 }, /Invalid not_before: must be a string/],
    [{ expires_on: iso(T0 - 1000) }, /must be in the future/],
    [{ not_before: iso(T0 + 7_200_000), expires_on: iso(T0 + 3_600_000) }, /must be after not_before/],
  ]) {
    const res = await server.api('POST', '/user/tokens', body);
    assert.equal(res.status, 400, res.text);
    assert.match(res.json.errors[0].message, message);
  }
  assert.equal((await server.api('GET', '/user/tokens')).json.result.length, before);
});

test('wharf tokens create --expires-on makes a token that expires', async () => {
  await setClock(T0);
  const r = await server.wharfCli(['tokens', 'create', '--permissions', 'queues_read', '--account',
    server.accountId, '--expires-on', iso(T0 + 60_000)]);
  assert.equal(r.code, 0, r.output);
  const secret = tokenFromOutput(r.stdout);
  assert.equal((await listQueues(secret)).status, 200);
  await setClock(T0 + 60_000);
  assert.equal((await listQueues(secret)).status, 401);
});
