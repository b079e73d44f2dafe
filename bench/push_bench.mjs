/*
 * push_bench.mjs — push ("worker") delivery benchmark (issue 5).
 *
 *   node bench/push_bench.mjs            (WHARF_BIN, PUSH_BENCH_COUNT, PUSH_BENCH_SECONDS)
 *
 * 1. Throughput: fills a queue with PUSH_BENCH_COUNT (200,000) messages of 100
 *    bytes with bench/loadgen, then attaches a worker consumer (batch_size
 *    100, max_concurrency auto) whose worker is a minimal node HTTP server
 *    that parses each batch and answers 200. Measures from attaching the
 *    consumer until the worker has received every message: msg/s delivered
 *    and acked (the backlog is checked to be 0 at the end).
 * 2. Latency: a producer sends single messages at 1,000/s (one keep-alive
 *    connection, a send every millisecond) to a queue with batch_size 1 and
 *    max_wait_time_ms 0; latency is worker-received minus send-answered, both
 *    taken with performance.now() in this one process. Negative values (the
 *    batch arrived before the producer read its reply) count as 0.
 *
 * The worker runs in this process, on the same machine as the server: the
 * figures include node's own HTTP and JSON costs on one core.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WharfServer, sleep } from '../tests/blackbox/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const COUNT = Number(process.env.PUSH_BENCH_COUNT || 200_000);
const LATENCY_SECONDS = Number(process.env.PUSH_BENCH_SECONDS || 10);

function startWorker(onBatch) {
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    onBatch(JSON.parse(raw), performance.now());
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function ok(res) {
  if (res.status !== 200 || !res.json?.success) throw new Error(`API call failed: ${res.status} ${res.text}`);
  return res.json.result;
}

async function pushConsumer(wharf, queueId, script, url, settings) {
  await ok(await wharf.api('POST', wharf.acct('/workers/queue-handlers'), { script_name: script, url }));
  await ok(await wharf.api('POST', wharf.acct(`/queues/${queueId}/consumers`), { type: 'worker', script_name: script, settings }));
}

async function throughput(wharf) {
  const env = { ...process.env, WHARF_URL: wharf.url, WHARF_API_TOKEN: wharf.token, WHARF_ACCOUNT_ID: wharf.accountId };
  execFileSync(path.join(HERE, 'loadgen'), ['fill', '--count', String(COUNT), '--size', '100', '--queue', 'push-bench'], { env, stdio: 'ignore' });
  const list = await ok(await wharf.api('GET', wharf.acct('/queues?name=push-bench')));
  const queueId = list[0].queue_id;
  let received = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const worker = await startWorker((batch, at) => {
    received += batch.messages.length;
    if (received >= COUNT) done(at);
  });
  const start = performance.now();
  await pushConsumer(wharf, queueId, 'bench-fast', `http://127.0.0.1:${worker.address().port}/`, { batch_size: 100, max_wait_time_ms: 1000 });
  const end = await finished;
  let backlog;
  for (let i = 0; i < 100; i++) {
    backlog = (await ok(await wharf.api('GET', wharf.acct(`/queues/${queueId}/metrics`)))).backlog_count;
    if (backlog === 0) break;
    await sleep(50);
  }
  worker.closeAllConnections();
  worker.close();
  const seconds = (end - start) / 1000;
  return { messages: received, seconds, rate: Math.round(received / seconds), backlog };
}

async function latency(wharf) {
  const queue = await ok(await wharf.api('POST', wharf.acct('/queues'), { queue_name: 'push-latency' }));
  const answered = new Map();
  const latencies = [];
  const worker = await startWorker((batch, at) => {
    for (const m of batch.messages) latencies.push({ seq: m.body.seq, at });
  });
  await pushConsumer(wharf, queue.queue_id, 'bench-latency', `http://127.0.0.1:${worker.address().port}/`, { batch_size: 1, max_wait_time_ms: 0 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const url = new URL(`${wharf.baseURL}${wharf.acct(`/queues/${queue.queue_id}/messages`)}`);
  const sendOne = (seq) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ body: { seq } });
      const req = http.request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${wharf.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          answered.set(seq, performance.now());
          resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  const total = LATENCY_SECONDS * 1000;
  const t0 = performance.now();
  const pending = [];
  for (let seq = 0; seq < total; seq++) {
    const due = t0 + seq;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(sendOne(seq));
  }
  await Promise.all(pending);
  for (let i = 0; i < 200 && latencies.length < total; i++) await sleep(10);
  const values = latencies
    .filter((l) => answered.has(l.seq))
    .map((l) => Math.max(0, l.at - answered.get(l.seq)))
    .sort((a, b) => a - b);
  const pick = (p) => values[Math.min(values.length - 1, Math.floor(p * values.length))];
  worker.closeAllConnections();
  worker.close();
  agent.destroy();
  return { sent: total, received: values.length, rate: Math.round(total / ((performance.now() - t0) / 1000)), p50_ms: pick(0.5), p99_ms: pick(0.99), max_ms: values[values.length - 1] };
}

const wharf = new WharfServer();
process.env.WHARF_LOG_LEVEL = 'warn';
await wharf.start();
try {
  const t = await throughput(wharf);
  console.log(`RESULT push_throughput messages=${t.messages} seconds=${t.seconds.toFixed(2)} msg_per_s=${t.rate} backlog_after=${t.backlog}`);
  const l = await latency(wharf);
  console.log(`RESULT push_latency sent=${l.sent} received=${l.received} p50_ms=${l.p50_ms.toFixed(3)} p99_ms=${l.p99_ms.toFixed(3)} max_ms=${l.max_ms.toFixed(3)}`);
} finally {
  await wharf.dispose();
}
