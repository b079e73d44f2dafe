/*
 * strict.test.mjs — issue 19 §1: what RFC 9112 says a server must refuse,
 * sent over raw TCP to a real server as a send of one message. http-parser
 * 2.9 answered each of these 200 and stored the message; now each is refused
 * in Cloudflare's envelope, the connection is closed, and nothing is stored.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startServer } from './harness.mjs';

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

async function backlog() {
  const res = await server.api('GET', server.acct(`/queues/${Q}/metrics`));
  assert.equal(res.status, 200, res.text);
  return res.json.result.backlog_count;
}

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
    ['whitespace before the colon of Transfer-Encoding', 400,
      () => `${target()}${auth()}Transfer-Encoding : chunked\r\n\r\nd\r\n${body}\r\n0\r\n\r\n`],
    ['a transfer coding other than chunked', 501,
      () => `${target()}${auth()}Transfer-Encoding: gzip, chunked\r\n\r\nd\r\n${body}\r\n0\r\n\r\n`],
    ['chunk data not followed by CRLF', 400,
      () => `${target()}${auth()}Transfer-Encoding: chunked\r\n\r\nd\r\n${body}XX0\r\n\r\n`],
    ['a folded header line (the token on the continuation line)', 400,
      () => `${target()}Authorization: Bearer\r\n ${server.token}\r\nContent-Length: 13\r\n\r\n${body}`],
  ];
  for (const [name, status, request] of cases) {
    test(`${name}: ${status} in the envelope, closed, nothing stored`, async () => {
      const reply = await rawExchange(request());
      assert.equal(reply.status, status, reply.head);
      assert.match(reply.head, /\r\nConnection: close/i);
      assert.equal(reply.json?.success, false, reply.head);
      assert.equal(reply.json.errors[0].code, 11001);
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
