/*
 * strict.test.mjs — issue 19 §1 and §2 against a real server.
 *
 * §1: what RFC 9112 says a server must refuse, sent over raw TCP as a send
 * of one message. http-parser 2.9 answered each of these 200 and stored the
 * message; now each is refused in Cloudflare's envelope, the connection is
 * closed, and nothing is stored.
 *
 * §2: JSON bodies. UTF-8 that is invalid only by being overlong (or an
 * encoded surrogate) is refused like other invalid UTF-8, on the send, batch
 * and ack fast paths and on a jansson route; a request field sent twice is
 * refused (400 11014), on every route; a key repeated inside a message's own
 * JSON body is kept, and whoever reads it takes the last, as JSON.parse does.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { assertError, startServer } from './harness.mjs';

let server;
let Q;

/* One raw exchange: the status and the JSON body of the reply, and whether
 * the server closed the connection after it. */
function rawExchange(text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let data = Buffer.alloc(0);
    socket.on('data', (d) => (data = Buffer.concat([data, d])));
    socket.on('error', reject);
    socket.on('close', () => {
      const reply = data.toString('latin1');
      const end = reply.indexOf('\r\n\r\n');
      const head = reply.slice(0, end);
      let json = null;
      try {
        json = JSON.parse(reply.slice(end + 4));
      } catch {
        /* left null: the assertions say so */
      }
      resolve({ status: Number(head.slice(9, 12)), head, json });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.write(text); // not end(): the server must close by itself
  });
}

const backlog = () => backlogOf(Q);

before(async () => {
  server = await startServer();
  const q = await server.api('POST', server.acct('/queues'), { queue_name: 'strict-http' });
  assert.equal(q.status, 200, q.text);
  Q = q.json.result.queue_id;
});

after(async () => {
  await server?.dispose();
});

describe('RFC 9112 framing (issue 19 §1)', () => {
  const target = () => `POST /client/v4/accounts/${server.accountId}/queues/${Q}/messages HTTP/1.1\r\nHost: x\r\n`;
  const auth = () => `Authorization: Bearer ${server.token}\r\n`;
  const body = '{"body":"ab"}'; // 13 bytes: "d" in hex
  const cases = [
    ['whitespace before the colon of Transfer-Encoding', 400, 'malformed request: Invalid header field char',
      () => `${target()}${auth()}Transfer-Encoding : chunked\r\n\r\nd\r\n${body}\r\n0\r\n\r\n`],
    ['a transfer coding other than chunked', 501, 'transfer coding not implemented',
      () => `${target()}${auth()}Transfer-Encoding: gzip, chunked\r\n\r\nd\r\n${body}\r\n0\r\n\r\n`],
    ['chunk data not followed by CRLF', 400, 'malformed request: Expected CRLF after chunk',
      () => `${target()}${auth()}Transfer-Encoding: chunked\r\n\r\nd\r\n${body}XX0\r\n\r\n`],
    ['a folded header line (the token on the continuation line)', 400, 'folded header line (obs-fold)',
      () => `${target()}Authorization: Bearer\r\n ${server.token}\r\nContent-Length: 13\r\n\r\n${body}`],
  ];
  for (const [name, status, message, request] of cases) {
    test(`${name}: ${status} in the envelope, closed, nothing stored`, async () => {
      const reply = await rawExchange(request());
      assert.equal(reply.status, status, reply.head);
      assert.match(reply.head, /\r\nConnection: close/i);
      assert.equal(reply.json?.success, false, reply.head);
      assert.equal(reply.json.errors[0].code, 11001);
      assert.equal(reply.json.errors[0].message, message);
      assert.deepEqual(reply.json.messages, []);
      assert.equal(reply.json.result, null);
      assert.equal(await backlog(), 0);
    });
  }

  test('the same send, framed correctly, is stored', async () => {
    const reply = await rawExchange(
      `${target()}${auth()}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n${body}\r\n0\r\n\r\n`,
    );
    assert.equal(reply.status, 200, reply.head);
    assert.equal(await backlog(), 1);
  });
});

describe('JSON bodies (issue 19 §2)', () => {
  let P; // a queue with a pull consumer
  before(async () => {
    const q = await server.api('POST', server.acct('/queues'), { queue_name: 'strict-json' });
    P = q.json.result.queue_id;
    const c = await server.api('POST', server.acct(`/queues/${P}/consumers`), { type: 'http_pull', settings: {} });
    assert.equal(c.status, 200, c.text);
  });

  const bytes = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));
  const overlong = [0xc0, 0xaf]; // '/' in two bytes
  const surrogate = [0xed, 0xa0, 0x80]; // U+D800 encoded

  test('overlong UTF-8 and encoded surrogates are refused on send, batch and ack; nothing stored', async () => {
    const before = await backlogOf(P);
    for (const bad of [overlong, surrogate, [0xe0, 0x80, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
      const send = await server.api('POST', server.acct(`/queues/${P}/messages`), bytes('{"body":"', bad, '"}'));
      assertError(assert, send, 400, 11014);
      assert.match(send.json.errors[0].message, /unable to decode byte/);
      const batch = await server.api('POST', server.acct(`/queues/${P}/messages/batch`), bytes('{"messages":[{"body":"ok"},{"body":"', bad, '"}]}'));
      assertError(assert, batch, 400, 11014);
      const ack = await server.api('POST', server.acct(`/queues/${P}/messages/ack`), bytes('{"acks":[{"lease_id":"', bad, '"}]}'));
      assertError(assert, ack, 400, 11014);
    }
    assert.equal(await backlogOf(P), before);
  });

  test('overlong UTF-8 on a route parsed with jansson is refused the same way', async () => {
    const res = await server.api('POST', server.acct('/queues'), bytes('{"queue_name":"q', overlong, '"}'));
    assertError(assert, res, 400, 11014);
    assert.match(res.json.errors[0].message, /unable to decode byte 0xc0/);
  });

  test('a request field sent twice is refused, on every route, and changes nothing', async () => {
    const before = await backlogOf(P);
    const cases = [
      [`/queues/${P}/messages`, '{"body":1,"body":2}', "near '\"body\"' (at byte 16)"],
      [`/queues/${P}/messages`, '{"body":1,"content_type":"json","content_type":"text"}', "near '\"content_type\"'"],
      [`/queues/${P}/messages/batch`, '{"messages":[{"body":1}],"messages":[{"body":2}]}', "near '\"messages\"'"],
      [`/queues/${P}/messages/batch`, '{"messages":[{"body":1,"body":2}]}', "near '\"body\"'"],
      [`/queues/${P}/messages/ack`, '{"acks":[],"acks":[]}', "near '\"acks\"' (at byte 17)"],
      [`/queues/${P}/messages/ack`, '{"retries":[],"acks":[],"retries":[]}', "near '\"retries\"'"],
      [`/queues/${P}/messages/pull`, '{"batch_size":1,"batch_size":2}', "near '\"batch_size\"'"],
      ['/queues', '{"queue_name":"dup-a","queue_name":"dup-b"}', "near '\"queue_name\"' (at byte 34)"],
    ];
    for (const [p, body, where] of cases) {
      const res = await server.api('POST', server.acct(p), body);
      assertError(assert, res, 400, 11014);
      const message = res.json.errors[0].message;
      assert.ok(message.startsWith('Malformed JSON body: duplicate object key ') && message.includes(where), `${p} ${body}: ${message}`);
    }
    assert.equal(await backlogOf(P), before);
    const names = await server.api('GET', server.acct('/queues?per_page=100'));
    assert.ok(!names.json.result.some((q) => q.queue_name.startsWith('dup-')), 'no queue created');
  });

  test('a key repeated inside a message body is kept: the last wins, as in JSON.parse', async () => {
    const sent = await server.api('POST', server.acct(`/queues/${P}/messages`), '{"body":{"a":1,"a":2,"b":{"c":1,"c":3}}}');
    assert.equal(sent.status, 200, sent.text);
    const pulled = await server.api('POST', server.acct(`/queues/${P}/messages/pull`), { batch_size: 100 });
    assert.equal(pulled.status, 200, pulled.text);
    // A pulled json body comes base64-encoded: its text is as sent.
    const texts = pulled.json.result.messages.map((m) => Buffer.from(m.body, 'base64').toString());
    assert.ok(texts.includes('{"a":1,"a":2,"b":{"c":1,"c":3}}'), texts.join(' | '));
    assert.deepEqual(JSON.parse('{"a":1,"a":2,"b":{"c":1,"c":3}}'), { a: 2, b: { c: 3 } });
  });
});

async function backlogOf(queueId) {
  const res = await server.api('GET', server.acct(`/queues/${queueId}/metrics`));
  assert.equal(res.status, 200, res.text);
  return res.json.result.backlog_count;
}
