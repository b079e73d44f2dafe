/*
 * cli.test.mjs — the `wharf` command line against a running server:
 * `wharf queues create|list|info|update|delete` (wrangler's flags), errors
 * (non-zero exit, the server's message printed), and the admin commands
 * `wharf accounts create|list`, `wharf tokens create|list|revoke`. The CLI's
 * output format is free; these tests check what it must mention and verify
 * every effect over the REST API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, tokenFromOutput } from './harness.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.dispose();
});

async function cli(args, env) {
  const r = await server.wharfCli(args, env);
  return { ...r, where: `wharf ${args.join(' ')} -> ${r.code}\n${r.output}` };
}

async function queueByName(name, accountId = server.accountId) {
  const res = await server.api('GET', `/accounts/${accountId}/queues?name=${encodeURIComponent(name)}`);
  assert.equal(res.status, 200);
  return res.json.result[0];
}

describe('wharf queues', () => {
  const Q = 'cli-q';

  test('create with settings', async () => {
    const r = await cli(['queues', 'create', Q, '--delivery-delay-secs', '3', '--message-retention-period-secs', '600']);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /cli-q/, r.where);
    const q = await queueByName(Q);
    assert.ok(q, 'created');
    assert.equal(q.settings.delivery_delay, 3);
    assert.equal(q.settings.message_retention_period, 600);
  });

  test('a duplicate exits non-zero and prints the server message', async () => {
    const rest = await server.api('POST', server.acct('/queues'), { queue_name: Q });
    assert.equal(rest.status, 409);
    const message = rest.json.errors[0].message;
    const r = await cli(['queues', 'create', Q]);
    assert.notEqual(r.code, 0, r.where);
    assert.ok(r.output.includes(message), `output has "${message}": ${r.where}`);
  });

  test('invalid flags are refused and create nothing', async () => {
    const r = await cli(['queues', 'create', 'cli-bad', '--delivery-delay-secs', '43201']);
    assert.notEqual(r.code, 0, r.where);
    assert.equal(await queueByName('cli-bad'), undefined);
    const r2 = await cli(['queues', 'create', 'bad_name']);
    assert.notEqual(r2.code, 0, r2.where);
    assert.equal(await queueByName('bad_name'), undefined);
  });

  test('list shows the queue and its id', async () => {
    const r = await cli(['queues', 'list']);
    assert.equal(r.code, 0, r.where);
    const q = await queueByName(Q);
    assert.match(r.output, /cli-q/, r.where);
    assert.ok(r.output.includes(q.queue_id), r.where);
  });

  test('list --page past the end shows no queue', async () => {
    const r = await cli(['queues', 'list', '--page', '50']);
    assert.equal(r.code, 0, r.where);
    assert.doesNotMatch(r.output, /cli-q/, r.where);
  });

  test('info shows name, id and settings', async () => {
    const r = await cli(['queues', 'info', Q]);
    assert.equal(r.code, 0, r.where);
    const q = await queueByName(Q);
    assert.match(r.output, /cli-q/, r.where);
    assert.ok(r.output.includes(q.queue_id), r.where);
  });

  test('info shows the backlog', async () => {
    const q = await queueByName(Q);
    for (let i = 0; i < 2; i++) {
      const s = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body: `c${i}`, content_type: 'text' });
      assert.equal(s.status, 200);
    }
    const r = await cli(['queues', 'info', Q]);
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /backlog[^\n]*\b2\b/i, r.where);
  });

  test('update changes only the given setting', async () => {
    const r = await cli(['queues', 'update', Q, '--delivery-delay-secs', '9']);
    assert.equal(r.code, 0, r.where);
    const q = await queueByName(Q);
    assert.equal(q.settings.delivery_delay, 9);
    assert.equal(q.settings.message_retention_period, 600);
    const r2 = await cli(['queues', 'update', Q, '--message-retention-period-secs', '59']);
    assert.notEqual(r2.code, 0, r2.where);
    assert.equal((await queueByName(Q)).settings.message_retention_period, 600);
  });

  test('info of an unknown queue exits non-zero', async () => {
    const r = await cli(['queues', 'info', 'no-such-queue']);
    assert.notEqual(r.code, 0, r.where);
    assert.match(r.output, /no-such-queue|not (exist|found)/i, r.where);
  });

  test('the CLOUDFLARE_* variables work when the WHARF_* ones are absent', async () => {
    const r = await cli(['queues', 'list'], {
      WHARF_URL: undefined,
      WHARF_API_TOKEN: undefined,
      WHARF_ACCOUNT_ID: undefined,
      CLOUDFLARE_API_BASE_URL: server.baseURL,
      CLOUDFLARE_API_TOKEN: server.token,
      CLOUDFLARE_ACCOUNT_ID: server.accountId,
    });
    assert.equal(r.code, 0, r.where);
    assert.match(r.output, /cli-q/, r.where);
  });

  test('a wrong token exits non-zero', async () => {
    const r = await cli(['queues', 'list'], { WHARF_API_TOKEN: 'wrong-token' });
    assert.notEqual(r.code, 0, r.where);
  });

  test('consumer http add and remove', async () => {
    const r = await cli([
      'queues', 'consumer', 'http', 'add', Q,
      '--batch-size', '25', '--message-retries', '4', '--visibility-timeout-secs', '6', '--retry-delay-secs', '2',
      '--dead-letter-queue', 'cli-dlq',
    ]);
    assert.equal(r.code, 0, r.where);
    let q = await queueByName(Q);
    assert.equal(q.consumers_total_count, 1);
    const c = q.consumers[0];
    assert.equal(c.type, 'http_pull');
    assert.equal(c.settings.batch_size, 25);
    assert.equal(c.settings.max_retries, 4);
    assert.equal(c.settings.visibility_timeout_ms, 6000);
    assert.equal(c.settings.retry_delay, 2);
    assert.equal(c.dead_letter_queue, 'cli-dlq');
    const dup = await cli(['queues', 'consumer', 'http', 'add', Q]);
    assert.notEqual(dup.code, 0, dup.where);
    const rm = await cli(['queues', 'consumer', 'http', 'remove', Q]);
    assert.equal(rm.code, 0, rm.where);
    q = await queueByName(Q);
    assert.equal(q.consumers_total_count, 0);
  });

  test('consumer worker add and remove', async () => {
    const r = await cli(['queues', 'consumer', 'worker', 'add', Q, 'cli-script', '--batch-size', '5', '--batch-timeout', '2']);
    assert.equal(r.code, 0, r.where);
    let q = await queueByName(Q);
    assert.equal(q.consumers[0].type, 'worker');
    assert.equal(q.consumers[0].script, 'cli-script');
    assert.equal(q.consumers[0].settings.max_wait_time_ms, 2000);
    const rm = await cli(['queues', 'consumer', 'remove', Q, 'cli-script']);
    assert.equal(rm.code, 0, rm.where);
    q = await queueByName(Q);
    assert.equal(q.consumers_total_count, 0);
  });

  test('pause-delivery and resume-delivery', async () => {
    const p = await cli(['queues', 'pause-delivery', Q]);
    assert.equal(p.code, 0, p.where);
    assert.equal((await queueByName(Q)).settings.delivery_paused, true);
    const r = await cli(['queues', 'resume-delivery', Q]);
    assert.equal(r.code, 0, r.where);
    assert.equal((await queueByName(Q)).settings.delivery_paused, false);
  });

  test('purge asks for the queue name unless --force', async () => {
    const q = await queueByName(Q);
    const backlog = async () =>
      (await server.api('GET', server.acct(`/queues/${q.queue_id}/metrics`))).json.result.backlog_count;
    const s = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body: 'p', content_type: 'text' });
    assert.equal(s.status, 200);
    const before = await backlog();
    assert.ok(before > 0);
    const wrong = await server.wharfCli(['queues', 'purge', Q], {}, { input: 'not-the-name\n' });
    assert.notEqual(wrong.code, 0, wrong.output);
    assert.equal(await backlog(), before, 'a wrong name purges nothing');
    const typed = await server.wharfCli(['queues', 'purge', Q], {}, { input: `${Q}\n` });
    assert.equal(typed.code, 0, typed.output);
    assert.equal(await backlog(), 0);
    await server.api('POST', server.acct(`/queues/${q.queue_id}/messages`), { body: 'p', content_type: 'text' });
    const forced = await cli(['queues', 'purge', Q, '--force']);
    assert.equal(forced.code, 0, forced.where);
    assert.equal(await backlog(), 0);
  });

  test('delete', async () => {
    const r = await cli(['queues', 'delete', Q]);
    assert.equal(r.code, 0, r.where);
    assert.equal(await queueByName(Q), undefined);
    const again = await cli(['queues', 'delete', Q]);
    assert.notEqual(again.code, 0, again.where);
  });
});

describe('wharf accounts and tokens', () => {
  let accountId;

  test('accounts create prints the new id; accounts list shows it', async () => {
    const r = await cli(['accounts', 'create', '--name', 'acme-co']);
    assert.equal(r.code, 0, r.where);
    const m = r.stdout.match(/account id:\s*([0-9a-f]{32})/i);
    assert.ok(m, `account id line: ${r.where}`);
    accountId = m[1];
    const l = await cli(['accounts', 'list']);
    assert.equal(l.code, 0, l.where);
    assert.ok(l.output.includes(accountId), l.where);
    assert.match(l.output, /acme-co/, l.where);
    assert.ok(l.output.includes(server.accountId), 'default account listed');
    const rest = await server.api('GET', '/accounts');
    assert.equal(rest.status, 200);
    assert.ok(rest.json.result.some((a) => a.id === accountId));
  });

  test('a token bound to an account works there with its permissions only', async () => {
    const r = await cli(['tokens', 'create', '--permissions', 'queues_read', '--account', accountId]);
    assert.equal(r.code, 0, r.where);
    const secret = tokenFromOutput(r.stdout);
    const list = await server.api('GET', `/accounts/${accountId}/queues`, undefined, { token: secret });
    assert.equal(list.status, 200, list.text);
    const create = await server.api('POST', `/accounts/${accountId}/queues`, { queue_name: 'ro' }, { token: secret });
    assert.equal(create.status, 403, create.text);
    const other = await server.api('GET', server.acct('/queues'), undefined, { token: secret });
    assert.equal(other.status, 403, other.text);
    // The CLI run with that token reports the refusal.
    const c = await cli(['queues', 'create', 'ro'], { WHARF_API_TOKEN: secret, WHARF_ACCOUNT_ID: accountId });
    assert.notEqual(c.code, 0, c.where);
    assert.equal(await queueByName('ro', accountId), undefined);
  });

  test('a read+write token can create queues in its account', async () => {
    const secret = await server.createToken('queues_read,queues_write', accountId);
    const c = await cli(['queues', 'create', 'rw-q'], { WHARF_API_TOKEN: secret, WHARF_ACCOUNT_ID: accountId });
    assert.equal(c.code, 0, c.where);
    assert.ok(await queueByName('rw-q', accountId));
  });

  test('tokens list shows tokens; a revoked token gets 401', async () => {
    const before = await cli(['tokens', 'list']);
    assert.equal(before.code, 0, before.where);
    const r = await cli(['tokens', 'create', '--permissions', 'queues_read', '--account', accountId]);
    assert.equal(r.code, 0, r.where);
    const secret = tokenFromOutput(r.stdout);
    assert.ok(!before.output.includes(secret), 'secrets are never listed');
    const m = r.stdout.match(/token id:\s*(\S+)/);
    assert.ok(m, `token id line: ${r.where}`);
    const tokenId = m[1];
    const afterList = await cli(['tokens', 'list']);
    assert.equal(afterList.code, 0, afterList.where);
    assert.ok(!afterList.output.includes(secret), 'secrets are never listed');
    assert.ok(!before.output.includes(tokenId), 'a new id');
    assert.ok(afterList.output.includes(tokenId), `new token listed:\n${afterList.output}`);

    const ok = await server.api('GET', `/accounts/${accountId}/queues`, undefined, { token: secret });
    assert.equal(ok.status, 200);
    const rv = await cli(['tokens', 'revoke', tokenId]);
    assert.equal(rv.code, 0, rv.where);
    const denied = await server.api('GET', `/accounts/${accountId}/queues`, undefined, { token: secret });
    assert.equal(denied.status, 401);
    assert.equal(denied.json.errors[0].code, 10000);
  });

  test('admin commands need the admin token', async () => {
    const secret = await server.createToken('queues_read,queues_write', accountId);
    const r = await cli(['accounts', 'create', '--name', 'sneaky'], { WHARF_API_TOKEN: secret });
    assert.notEqual(r.code, 0, r.where);
    const rest = await server.api('GET', '/accounts', undefined, { token: secret });
    assert.equal(rest.status, 403);
    const all = await server.api('GET', '/accounts');
    assert.ok(!all.json.result.some((a) => a.name === 'sneaky'), 'nothing created');
  });
});
