/*
 * badinput.test.mjs — issue 7, the bad-input table: every endpoint of
 * ../../shared/API.md and the admin and worker routes, fed missing fields,
 * wrong types, out-of-range numbers, malformed and non-UTF-8 JSON, oversized
 * bodies, no token, a wrong token, a read-only token on a write, another
 * account's token and ids, forged and stale lease ids, huge headers and a
 * slowloris client. Each case checks the documented status and code
 * (docs/errors.md), that a snapshot of everything observable (queues,
 * consumers, metrics, workers, accounts, tokens) is identical before and
 * after, and that the server still answers.
 *
 * The slowloris client is started first and left dribbling header bytes
 * while the whole table runs: the table passing is the proof that the server
 * keeps serving others meanwhile; the slow client must get a 408 (or be
 * closed) once the 30 s request timeout passes.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { assertEnvelope, assertError, hex32, sleep, startServer } from './harness.mjs';

let server;
let A; // the default account (admin token)
let B; // a second account
let Q; // a queue of A with a pull consumer and messages
let C; // its consumer id
let Q2; // a queue of A with no consumer
let QB; // a queue of B
let tokens; // { read, accountA, accountB }
let slowloris;

const enc = (s) => Buffer.from(s, 'utf8');

/* Everything a bad request could have changed, as the API shows it. */
async function snapshot() {
  const paths = [
    server.acct('/queues?per_page=100'),
    server.acct(`/queues/${Q}`),
    server.acct(`/queues/${Q}/consumers`),
    server.acct(`/queues/${Q2}/consumers`),
    server.acct(`/queues/${Q}/metrics`),
    server.acct('/workers/queue-handlers'),
    `/accounts/${B}/queues`,
    '/accounts',
    '/user/tokens',
  ];
  const out = {};
  for (const p of paths) {
    const res = await server.api('GET', p);
    assert.equal(res.status, 200, `snapshot ${p}: ${res.text}`);
    out[p] = res.json.result;
  }
  const peek = await server.api('POST', server.acct(`/queues/${Q}/messages/peek`), { batch_size: 100 });
  out.peek = peek.json.result.messages.map((m) => [m.id, m.attempts]).sort();
  return out;
}

/* A raw HTTP exchange, for what fetch will not send. */
function rawRequest(text, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('error', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error('no answer'));
    });
    socket.end(text);
  });
}

before(async () => {
  server = await startServer();
  A = server.accountId;
  // The slow client starts before anything else and runs the whole file.
  slowloris = new Promise((resolve) => {
    const socket = net.connect(server.port, '127.0.0.1');
    const started = Date.now();
    let data = '';
    let timer;
    socket.on('connect', () => {
      socket.write(`POST /client/v4/accounts/${A}/queues HTTP/1.1\r\nHost: x\r\n`);
      let n = 0;
      timer = setInterval(() => socket.write(`X-Slow-${n++}: y\r\n`), 1000);
    });
    socket.on('data', (d) => (data += d));
    const done = () => {
      clearInterval(timer);
      resolve({ data, seconds: (Date.now() - started) / 1000 });
    };
    socket.on('close', done);
    socket.on('error', done);
  });
  const q = await server.api('POST', server.acct('/queues'), { queue_name: 'bad-input' });
  Q = q.json.result.queue_id;
  const c = await server.api('POST', server.acct(`/queues/${Q}/consumers`), { type: 'http_pull', settings: { batch_size: 10 } });
  C = c.json.result.consumer_id;
  const q2 = await server.api('POST', server.acct('/queues'), { queue_name: 'bad-input-no-consumer' });
  Q2 = q2.json.result.queue_id;
  for (let i = 0; i < 3; i++) {
    await server.api('POST', server.acct(`/queues/${Q}/messages`), { body: `m${i}`, content_type: 'text' });
  }
  B = await server.createAccount('second');
  tokens = {
    read: await server.createToken('queues_read'),
    accountA: await server.createToken('queues_read,queues_write', A),
    accountB: await server.createToken('queues_read,queues_write', B),
  };
  const qb = await server.api('POST', `/accounts/${B}/queues`, { queue_name: 'other-account' });
  QB = qb.json.result.queue_id;
  const w = await server.api('POST', server.acct('/workers/queue-handlers'), { script_name: 'w1', url: 'http://127.0.0.1:9/' });
  assert.equal(w.status, 200, w.text);
});

after(async () => {
  if (server) await server.dispose();
});

/* Every route: [method, path, a valid body]. */
function routes() {
  const q = `/accounts/${A}/queues/${Q}`;
  return [
    ['POST', `/accounts/${A}/queues`, { queue_name: 'never-made' }],
    ['GET', `/accounts/${A}/queues`],
    ['GET', q],
    ['PUT', q, { queue_name: 'bad-input', settings: {} }],
    ['PATCH', q, { settings: { delivery_paused: true } }],
    ['DELETE', q],
    ['GET', `${q}/metrics`],
    ['POST', `${q}/messages`, { body: 'x' }],
    ['POST', `${q}/messages/batch`, { messages: [{ body: 'x' }] }],
    ['POST', `${q}/messages/pull`, { batch_size: 1 }],
    ['POST', `${q}/messages/ack`, { acks: [] }],
    ['POST', `${q}/messages/peek`, { batch_size: 1 }],
    ['POST', `${q}/messages/purge`, { refs: [] }],
    ['POST', `${q}/purge`, { delete_messages_permanently: true }],
    ['GET', `${q}/purge`],
    ['POST', `${q}/consumers`, { type: 'http_pull' }],
    ['GET', `${q}/consumers`],
    ['GET', `${q}/consumers/${C}`],
    ['PUT', `${q}/consumers/${C}`, { type: 'http_pull', settings: { batch_size: 5 } }],
    ['DELETE', `${q}/consumers/${C}`],
    ['POST', `/accounts/${A}/workers/queue-handlers`, { script_name: 'w2', url: 'http://127.0.0.1:9/' }],
    ['GET', `/accounts/${A}/workers/queue-handlers`],
    ['DELETE', `/accounts/${A}/workers/queue-handlers/w1`],
    ['GET', '/memberships'],
    ['POST', '/accounts', { name: 'nope' }],
    ['GET', '/accounts'],
    ['POST', '/user/tokens', { name: 't', account_id: A, permissions: ['queues_read'] }],
    ['GET', '/user/tokens'],
    ['DELETE', `/user/tokens/${hex32()}`],
  ];
}

/* Runs one bad request and checks status, code, nothing changed. */
async function expectRejected(method, path, body, status, code, opts = {}) {
  const before = await snapshot();
  const res = await server.api(method, path, body, opts);
  const err = assertError(assert, res, status, code);
  if (Array.isArray(code)) assert.ok(code.includes(err.code), `code ${code}: ${res.text}`);
  assert.deepEqual(await snapshot(), before, `${method} ${path} changed nothing`);
  return res;
}

describe('authentication and authorization, every route', () => {
  test('no token: 401 code 10000', async () => {
    for (const [m, p, b] of routes()) await expectRejected(m, p, b, 401, 10000, { token: null });
  });

  test('wrong token: 401 code 10000', async () => {
    for (const [m, p, b] of routes()) await expectRejected(m, p, b, 401, 10000, { token: 'wharf-wrong-' + hex32() });
    await expectRejected('GET', `/accounts/${A}/queues`, undefined, 401, 10000, {
      token: null,
      headers: { authorization: 'Basic dXNlcjpwYXNz' },
    });
  });

  test('read-only token on a write: 403 code 9109', async () => {
    for (const [m, p, b] of routes()) {
      if (m === 'GET' || p.endsWith('/messages/peek')) continue;
      await expectRejected(m, p, b, 403, 9109, { token: tokens.read });
    }
  });

  test("another account's token, and admin routes with an account token: 403 code 9109", async () => {
    for (const [m, p, b] of routes()) {
      if (p === '/memberships') continue;
      await expectRejected(m, p, b, 403, 9109, { token: tokens.accountB });
    }
    for (const [m, p, b] of routes().filter(([, p]) => p.startsWith('/accounts') && !p.includes(A) || p.startsWith('/user'))) {
      await expectRejected(m, p, b, 403, 9109, { token: tokens.accountA });
    }
  });

  test("another account's queue id under one's own account: 404 code 11000", async () => {
    const q = `/accounts/${A}/queues/${QB}`;
    for (const [m, p, b] of routes()) {
      if (!p.includes(Q)) continue;
      await expectRejected(m, p.replace(Q, QB), b, 404, 11000, { token: tokens.accountA });
      await expectRejected(m, p.replace(Q, QB), b, 404, 11000);
    }
    await expectRejected('GET', `${q}`, undefined, 404, 11000);
  });

  test('memberships show only the token’s own account', async () => {
    const res = await server.api('GET', '/memberships', undefined, { token: tokens.accountB });
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.deepEqual(res.json.result.map((m) => m.account.id), [B]);
  });
});

describe('bodies that are not JSON objects, every body route', () => {
  const bodyRoutes = () => routes().filter(([m, , b]) => b !== undefined && m !== 'GET');

  test('malformed JSON: 400 code 11014', async () => {
    for (const [m, p] of bodyRoutes()) {
      await expectRejected(m, p, '{"queue_name": ', 400, 11014);
      await expectRejected(m, p, '{"a":1}}', 400, 11014);
    }
  });

  test('JSON that is not an object: 400 code 11001', async () => {
    for (const [m, p] of bodyRoutes()) {
      for (const body of ['[1,2]', '"text"', '42', 'null']) await expectRejected(m, p, body, 400, 11001);
    }
  });

  test('non-UTF-8 bytes in a JSON string: 400', async () => {
    for (const [m, p] of bodyRoutes()) {
      const before = await snapshot();
      const res = await fetch(server.baseURL + p, {
        method: m,
        headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
        body: Buffer.concat([enc('{"queue_name":"x'), Buffer.from([0xff, 0xfe, 0xc3]), enc('","body":"y","name":"z"}')]),
      });
      const text = await res.text();
      assertError(assert, { status: res.status, headers: res.headers, json: JSON.parse(text), text }, 400, 11014);
      assert.deepEqual(await snapshot(), before);
    }
  });

  test('a body over 1 MiB: 413 code 11013 (declared, before any body byte)', async () => {
    for (const [m, p] of bodyRoutes()) {
      const before = await snapshot();
      const reply = await rawRequest(
        `${m} /client/v4${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
      );
      assert.match(reply, /^HTTP\/1\.1 413 /, reply.slice(0, 200));
      const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
      assert.equal(body.errors[0].code, 11013);
      assert.deepEqual(await snapshot(), before);
    }
  });

  // A client still writing the refused body must read the 413, not a reset
  // (the server drains the rest before closing: a lingering close).
  test('a body over 1 MiB sent whole: the client sees the 413', async () => {
    const big = JSON.stringify({ body: 'x'.repeat(1024 * 1024 + 10) });
    for (const [m, p] of bodyRoutes()) await expectRejected(m, p, big, 413, 11013);
  });
});

describe('fields, per endpoint', () => {
  const q = () => `/accounts/${A}/queues/${Q}`;
  const bad = (cases) => async () => {
    for (const [m, p, b, status, code] of cases()) await expectRejected(m, p, b, status, code);
  };

  test('queues: create, replace, patch', bad(() => {
    const create = `/accounts/${A}/queues`;
    return [
      ['POST', create, {}, 400, 11001],
      ['POST', create, { queue_name: 5 }, 400, 11001],
      ['POST', create, { queue_name: '' }, 400, 11001],
      ['POST', create, { queue_name: '-dash-first' }, 400, 11001],
      ['POST', create, { queue_name: 'a'.repeat(64) }, 400, 11001],
      ['POST', create, { queue_name: 'has space' }, 400, 11001],
      ['POST', create, { queue_name: 'bad-input' }, 409, 11009],
      ['POST', create, { queue_name: 'ok-name', settings: 'x' }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { delivery_delay: -1 } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { delivery_delay: 43201 } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { delivery_delay: '5' } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { delivery_delay: 1.5 } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { message_retention_period: 59 } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { message_retention_period: 1209601 } }, 400, 11001],
      ['POST', create, { queue_name: 'ok-name', settings: { message_retention_period: 1e300 } }, 400, 11001],
      ['PUT', q(), { queue_name: 'bad name!' }, 400, 11001],
      ['PUT', q(), { queue_name: 'bad-input', settings: { delivery_delay: 99999 } }, 400, 11001],
      ['PATCH', q(), { settings: { delivery_paused: 'yes' } }, 400, 11001],
      ['PATCH', q(), { settings: { message_retention_period: -5 } }, 400, 11001],
      ['PATCH', q(), { queue_name: 7 }, 400, 11001],
      ['GET', `/accounts/${A}/queues/${hex32()}`, undefined, 404, 11000],
      ['DELETE', `/accounts/${A}/queues/${hex32()}`, undefined, 404, 11000],
      ['GET', `/accounts/${A}/queues/not-an-id`, undefined, 404, 11000],
    ];
  }));

  test('messages: send and batch', bad(() => [
    ['POST', `${q()}/messages`, {}, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x', content_type: 'xml' }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x', content_type: 5 }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 5, content_type: 'text' }, 400, 11001],
    ['POST', `${q()}/messages`, { body: '***not base64***', content_type: 'bytes' }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x', delay_seconds: 43201 }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x', delay_seconds: -1 }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x', delay_seconds: 'soon' }, 400, 11001],
    ['POST', `${q()}/messages`, { body: 'x'.repeat(128_001), content_type: 'text' }, 413, 11006],
    ['POST', `${q()}/messages/batch`, {}, 400, 11001],
    ['POST', `${q()}/messages/batch`, { messages: 'x' }, 400, 11001],
    ['POST', `${q()}/messages/batch`, { messages: [5] }, 400, 11001],
    ['POST', `${q()}/messages/batch`, { messages: [{ body: 'ok' }, { body: 'x', content_type: 'nope' }] }, 400, 11001],
    ['POST', `${q()}/messages/batch`, { messages: [{ body: 'x' }], delay_seconds: 50000 }, 400, 11001],
    ['POST', `${q()}/messages/batch`, { messages: Array.from({ length: 101 }, () => ({ body: 'x' })) }, 413, 11007],
    ['POST', `${q()}/messages/batch`, { messages: Array.from({ length: 3 }, () => ({ body: 'x'.repeat(100_000), content_type: 'text' })) }, 413, 11007],
  ]));

  test('messages: pull, ack, peek, purge by ref', bad(() => [
    ['POST', `${q()}/messages/pull`, { batch_size: 0 }, 400, 11001],
    ['POST', `${q()}/messages/pull`, { batch_size: 101 }, 400, 11001],
    ['POST', `${q()}/messages/pull`, { batch_size: 'ten' }, 400, 11001],
    ['POST', `${q()}/messages/pull`, { visibility_timeout_ms: 43_200_001 }, 400, 11001],
    ['POST', `${q()}/messages/pull`, { visibility_timeout_ms: -1 }, 400, 11001],
    ['POST', `${q()}/messages/ack`, { acks: 'x' }, 400, 11001],
    ['POST', `${q()}/messages/ack`, { acks: [5] }, 400, 11001],
    ['POST', `${q()}/messages/ack`, { acks: [{}] }, 400, 11001],
    ['POST', `${q()}/messages/ack`, { retries: [{ lease_id: 7 }] }, 400, 11001],
    ['POST', `${q()}/messages/peek`, { batch_size: 0 }, 400, 11001],
    ['POST', `${q()}/messages/peek`, { batch_size: 101 }, 400, 11001],
    ['POST', `${q()}/messages/purge`, { refs: 'x' }, 400, 11001],
    ['POST', `${q()}/messages/purge`, { refs: [{ ref: 5 }] }, 400, 11001],
    ['POST', `${q()}/purge`, { delete_messages_permanently: 'yes' }, 400, 11001],
  ]));

  test('consumers', bad(() => [
    // On a queue that has no consumer yet: on one that has, the conflict
    // (409) is reported first.
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 5 }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'carrier-pigeon' }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'http_pull', settings: { batch_size: 0 } }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'http_pull', settings: { max_retries: -1 } }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'worker', script_name: 'w1', settings: { max_wait_time_ms: 60_001 } }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'worker', script_name: 'w1', settings: { max_concurrency: 251 } }, 400, 11001],
    ['POST', `/accounts/${A}/queues/${Q2}/consumers`, { type: 'http_pull', dead_letter_queue: 'bad name!' }, 400, 11001],
    ['POST', `${q()}/consumers`, {}, 409, 11004],
    ['POST', `${q()}/consumers`, { type: 'http_pull' }, 409, 11004],
    ['PUT', `${q()}/consumers/${C}`, { type: 'http_pull', settings: { batch_size: 101 } }, 400, 11001],
    ['PUT', `${q()}/consumers/${C}`, { type: 'http_pull', settings: { max_retries: 101 } }, 400, 11001],
    ['PUT', `${q()}/consumers/${C}`, { type: 'http_pull', settings: { visibility_timeout_ms: 43_200_001 } }, 400, 11001],
    ['PUT', `${q()}/consumers/${C}`, { type: 'http_pull', settings: { retry_delay: 43201 } }, 400, 11001],
    ['PUT', `${q()}/consumers/${C}`, { type: 'http_pull', settings: 'x' }, 400, 11001],
    ['PUT', `${q()}/consumers/${C}`, { type: 'worker', script_name: 5 }, 400, 11001],
    ['GET', `${q()}/consumers/${hex32()}`, undefined, 404, 11005],
    ['PUT', `${q()}/consumers/${hex32()}`, { type: 'http_pull' }, 404, 11005],
    ['DELETE', `${q()}/consumers/${hex32()}`, undefined, 404, 11005],
  ]));

  test("renaming a queue to its consumer's dead-letter queue: 400, nothing changes", async () => {
    const loopy = (await server.api('POST', server.acct('/queues'), { queue_name: 'loopy' })).json.result.queue_id;
    const c = await server.api('POST', server.acct(`/queues/${loopy}/consumers`), { type: 'http_pull', dead_letter_queue: 'loopy-dlq' });
    assert.equal(c.status, 200, c.text);
    await expectRejected('PATCH', server.acct(`/queues/${loopy}`), { queue_name: 'loopy-dlq' }, 400, 11001);
    await expectRejected('PUT', server.acct(`/queues/${loopy}`), { queue_name: 'loopy-dlq' }, 400, 11001);
  });

  test('workers, accounts, tokens', bad(() => [
    ['POST', `/accounts/${A}/workers/queue-handlers`, {}, 400, 11001],
    ['POST', `/accounts/${A}/workers/queue-handlers`, { script_name: 'w3' }, 400, 11001],
    ['POST', `/accounts/${A}/workers/queue-handlers`, { script_name: 'w3', url: 'ftp://x/' }, 400, 11001],
    ['POST', `/accounts/${A}/workers/queue-handlers`, { script_name: 5, url: 'http://127.0.0.1:9/' }, 400, 11001],
    ['POST', `/accounts/${A}/workers/queue-handlers`, { script_name: 'w1', url: 'http://127.0.0.1:9/' }, 409, 11018],
    ['DELETE', `/accounts/${A}/workers/queue-handlers/nope`, undefined, 404, 11017],
    ['POST', '/accounts', { name: 5 }, 400, 11001],
    ['POST', '/accounts', { name: 'x'.repeat(101) }, 400, 11001],
    ['POST', '/user/tokens', { name: 't', account_id: A, permissions: ['queues_fly'] }, 400, 11001],
    ['POST', '/user/tokens', { name: 't', account_id: A, permissions: 'queues_read' }, 400, 11001],
    ['POST', '/user/tokens', { name: 't', account_id: hex32(), permissions: ['queues_read'] }, 404, 11017],
    ['POST', '/user/tokens', { name: `ab${'é'.repeat(100)}`, account_id: A, permissions: ['queues_read'] }, 400, 11001],
    ['DELETE', `/user/tokens/${hex32()}`, undefined, 404, 11017],
  ]));

  test('routes and methods', bad(() => [
    ['GET', '/nowhere', undefined, 404, 7003],
    ['GET', `/accounts/${A}/queues/${Q}/nothing`, undefined, 404, 7003],
    ['PATCH', `/accounts/${A}/queues/${Q}/messages`, {}, 405, 7001],
    ['DELETE', `/accounts/${A}/queues`, undefined, 405, 7001],
  ]));

  test('extra fields are accepted and ignored', async () => {
    const peek = await server.api('POST', `${q()}/messages/peek`, { batch_size: 1, surprise: { nested: [1] } });
    assertEnvelope(assert, peek, { success: true, status: 200 });
    const create = await server.api('POST', `/accounts/${A}/queues`, {
      queue_name: 'extra-fields',
      colour: 'blue',
      settings: { delivery_delay: 3, unknown_setting: true },
    });
    assertEnvelope(assert, create, { success: true, status: 200 });
    assert.equal(create.json.result.settings.delivery_delay, 3);
    assert.equal('colour' in create.json.result, false);
    const del = await server.api('DELETE', `/accounts/${A}/queues/${create.json.result.queue_id}`);
    assertEnvelope(assert, del, { success: true, status: 200 });
  });
});

describe('lease ids', () => {
  test('forged, foreign and stale lease ids and refs are warnings, and ack nothing', async () => {
    const other = await server.api('POST', server.acct('/queues'), { queue_name: 'lease-other' });
    const O = other.json.result.queue_id;
    await server.api('POST', server.acct(`/queues/${O}/consumers`), { type: 'http_pull' });
    await server.api('POST', server.acct(`/queues/${O}/messages`), { body: 'o', content_type: 'text' });
    const foreign = await server.api('POST', server.acct(`/queues/${O}/messages/pull`), { batch_size: 1 });
    const foreignLease = foreign.json.result.messages[0].lease_id;
    const peek = await server.api('POST', server.acct(`/queues/${Q}/messages/peek`), { batch_size: 1 });
    const ref = peek.json.result.messages[0].ref;
    // A stale lease: pulled with a 1 s visibility timeout, expired, pulled again.
    const first = await server.api('POST', server.acct(`/queues/${Q}/messages/pull`), { batch_size: 1, visibility_timeout_ms: 1000 });
    const stale = first.json.result.messages[0];
    await sleep(2200);
    const second = await server.api('POST', server.acct(`/queues/${Q}/messages/pull`), { batch_size: 10, visibility_timeout_ms: 1000 });
    assert.ok(second.json.result.messages.some((m) => m.id === stale.id), 'the expired message is delivered again');

    const before = await snapshot();
    const forged = stale.lease_id.slice(0, -2) + (stale.lease_id.endsWith('AA') ? 'BB' : 'AA');
    const handles = [forged, foreignLease, ref, 'not-a-lease', '', 'x'.repeat(500)];
    const res = await server.api('POST', server.acct(`/queues/${Q}/messages/ack`), {
      acks: handles.map((lease_id) => ({ lease_id })),
      retries: [{ lease_id: forged, delay_seconds: 1 }],
    });
    assertEnvelope(assert, res, { success: true, status: 200 });
    assert.equal(res.json.result.ackCount, 0, res.text);
    assert.equal(res.json.result.retryCount, 0, res.text);
    assert.equal(Object.keys(res.json.result.warnings).length, handles.length, `one warning per bad handle: ${res.text}`);
    const purge = await server.api('POST', server.acct(`/queues/${Q}/messages/purge`), {
      refs: [{ ref: stale.lease_id }, { ref: 'forged-ref' }, { ref: foreignLease }],
    });
    assert.equal(purge.status, 200, purge.text);
    assert.deepEqual(await snapshot(), before, 'bad handles changed nothing');

    // The stale lease: its message was delivered again since, so an ack with
    // the old lease must not also ack the new delivery's message... unless
    // the server documents that a late ack is still honoured (API.md: "an ack
    // after the visibility timeout is still accepted"). Either way the reply
    // says what happened.
    const late = await server.api('POST', server.acct(`/queues/${Q}/messages/ack`), { acks: [{ lease_id: stale.lease_id }] });
    assertEnvelope(assert, late, { success: true, status: 200 });
    assert.equal(late.json.result.ackCount + Object.keys(late.json.result.warnings).length, 1, late.text);
  });
});

describe('text that is not UTF-8 in error messages', () => {
  /* Error messages quote what the client sent (a path, a name) and are cut
   * at a length: bytes that are not UTF-8, or a character cut in two, once
   * crashed the server on any route, with no token needed. */
  test('paths and names: the envelope with "?" in their place, and the server stays up', async () => {
    const root = (method, path, token = null) => server.api(method, path, undefined, { token, root: true });
    let err = assertError(assert, await root('GET', '/%C3'), 404, 7003);
    assert.match(err.message, /Could not route to \/\?/);
    assertError(assert, await root('PATCH', '/client/v4/accounts/%FF/queues'), 405);
    assertError(assert, await root('GET', `/ab${'é'.repeat(300)}`), 404, 7003); // cut mid-character
    err = assertError(assert, await root('GET', `/client/v4/accounts/${A}/queues/${Q}/consumers/%C3%A9%FF`, server.token), 404);
    assert.doesNotMatch(err.message, /\uFFFD/);
    const before = await snapshot();
    await expectRejected('POST', `/accounts/${A}/queues`, JSON.stringify({ queue_name: `a${'é'.repeat(50)}` }), 400, 11001);
    await expectRejected('POST', `/accounts/${A}/queues/${Q2}/consumers`, JSON.stringify({ type: `${'a'.repeat(39)}é` }), 400, 11001);
    await expectRejected('POST', `/accounts/${A}/queues/${Q2}/consumers`, JSON.stringify({ type: 'worker', script_name: `w${'é'.repeat(80)}` }), 400, 11001);
    await expectRejected('POST', `/accounts/${A}/queues/${Q}/messages`, JSON.stringify({ body: 'x', content_type: `${'a'.repeat(39)}é` }), 400);
    assert.deepEqual(await snapshot(), before);
    assert.equal((await root('GET', '/healthz')).status, 200);
  });
});

describe('protocol abuse', () => {
  test('huge headers: 431 code 11016, and the server goes on', async () => {
    const reply = await rawRequest(
      `GET /client/v4/accounts/${A}/queues HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    assert.match(reply, /^HTTP\/1\.1 431 /, reply.slice(0, 200));
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
    assert.equal(body.success, false);
    assert.equal(body.errors[0].code, 11016);
    const many = Array.from({ length: 2000 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const reply2 = await rawRequest(`GET /client/v4/memberships HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`);
    assert.match(reply2, /^HTTP\/1\.1 431 /);
  });

  test('garbage on the wire: 400 and a close', async () => {
    const reply = await rawRequest('\x00\x01\x02 NOT HTTP\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 /);
    const reply2 = await rawRequest(`GET /client/v4/%zz HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(reply2, /^HTTP\/1\.1 400 /);
  });

  test('a slowloris client gets 408 or is closed, while everyone else was served', async () => {
    const { data, seconds } = await slowloris;
    assert.ok(data === '' || /^HTTP\/1\.1 408 /.test(data), `408 or closed: ${data.slice(0, 200)}`);
    if (data) assert.match(data, /11015/);
    assert.ok(seconds < 40, `cut off by the request timeout, not left open (${seconds} s)`);
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
  });
});
