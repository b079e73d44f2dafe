/*
 * examples_push.test.mjs — issue 6: the examples that need push delivery or
 * a web site, run against a fresh server and judged from the outside:
 *   - images (C, libwharf's worker helper): good images processed once,
 *     corrupt ones tried 1 + max_retries times, then found in the DLQ by the
 *     DLQ consumer, and both queues empty at the end;
 *   - crawler (C, pull consumer + libcurl) on examples/crawler-site served
 *     here: exactly the pages within the depth limit fetched, each once;
 *   - clients/node/examples/image-pipeline: seed 000's consumer, unchanged,
 *     on the Node adapter: fetched images stored, failures dead-lettered.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { WHARF_BIN, freePort, run, sleep, startServer } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = path.join(path.dirname(WHARF_BIN), 'examples');

function example(name) {
  const bin = path.join(EXAMPLES, name);
  assert.ok(existsSync(bin), `${bin} is missing: run \`make examples\``);
  return bin;
}

async function cli(server, args) {
  const r = await server.wharfCli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.output}`);
  return r.stdout;
}

async function backlog(server, name) {
  const list = await server.api('GET', server.acct(`/queues?name=${name}`));
  const id = list.json.result[0].queue_id;
  return (await server.api('GET', server.acct(`/queues/${id}/metrics`))).json.result.backlog_count;
}

async function until(predicate, what, server, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.log()}`);
    await sleep(100);
  }
}

/* A long-running child whose output is collected; stop() SIGTERMs it and
 * resolves to its exit. */
function background(cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (proc.stdout += d));
  child.stderr.on('data', (d) => (proc.stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  proc.ready = async () => {
    const deadline = Date.now() + 10_000;
    while (!/listening on \d+/.test(proc.stdout)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${cmd} did not start: ${proc.stdout}${proc.stderr}`);
      await sleep(20);
    }
  };
  proc.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return proc;
}

/* Registers a worker at a free port; returns {port, secret}. */
async function registerWorker(server, script) {
  const port = await freePort();
  const out = await cli(server, ['workers', 'register', script, '--url', `http://127.0.0.1:${port}/`]);
  return { port, secret: out.match(/secret:\s*([0-9a-f]{64})/)[1] };
}

function clientEnv(server) {
  return { WHARF_URL: server.url, WHARF_API_TOKEN: server.token, WHARF_ACCOUNT_ID: server.accountId };
}

/* Serves dir over HTTP; records every requested path. */
async function staticSite(dir) {
  const requests = [];
  const site = http.createServer(async (req, res) => {
    requests.push(req.url);
    const file = path.join(dir, req.url === '/' ? 'index.html' : decodeURIComponent(req.url.split('?')[0]));
    try {
      if (!file.startsWith(dir)) throw new Error('outside');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${site.address().port}`, requests, close: () => new Promise((r) => site.close(r)) };
}

describe('push examples', () => {
  test('images: failures retried max_retries times, then read from the DLQ', async () => {
    const server = await startServer();
    let worker;
    try {
      await cli(server, ['queues', 'create', 'image-queue']);
      const { port, secret } = await registerWorker(server, 'image-worker');
      worker = background(example('images'), ['worker', String(port)], { WHARF_WORKER_SECRET: secret });
      await worker.ready();
      await cli(server, ['queues', 'consumer', 'add', 'image-queue', 'image-worker', '--batch-size', '4',
        '--batch-timeout', '1', '--message-retries', '2', '--dead-letter-queue', 'image-dlq']);
      await cli(server, ['queues', 'consumer', 'http', 'add', 'image-dlq']);
      const send = await run(example('images'), ['send', 'image-queue', '8'], { env: clientEnv(server) });
      assert.equal(send.code, 0, send.output);
      await until(async () => (await backlog(server, 'image-queue')) === 0 && (await backlog(server, 'image-dlq')) === 2,
        'image-queue empty and 2 jobs in image-dlq', server);

      const lines = worker.stdout.split('\n');
      for (let i = 0; i < 8; i++) {
        const corrupt = i % 4 === 3;
        const url = `https://images.example.com/${corrupt ? 'corrupt' : 'photo'}-${i}.jpg`;
        const mine = lines.filter((l) => l.split(' ')[1] === url);
        if (corrupt) assert.deepEqual(mine, [1, 2, 3].map((a) => `failed ${url} attempt=${a}`), worker.stdout);
        else assert.deepEqual(mine, [`processed ${url} attempt=1`], worker.stdout);
      }

      const dlq = await run(example('images'), ['dlq'], { env: clientEnv(server) });
      assert.equal(dlq.code, 0, dlq.output);
      assert.deepEqual(dlq.stdout.trim().split('\n').sort(),
        ['dead https://images.example.com/corrupt-3.jpg', 'dead https://images.example.com/corrupt-7.jpg']);
      assert.equal(await backlog(server, 'image-dlq'), 0, 'the DLQ consumer acked them');
      assert.deepEqual(await worker.stop(), { code: 0, signal: null }, 'SIGTERM stops the worker cleanly');
    } finally {
      if (worker) await worker.stop();
      await server.dispose();
    }
  });

  test('crawler: every page within the depth limit fetched exactly once, nothing beyond', async () => {
    const server = await startServer();
    const site = await staticSite(path.join(ROOT, 'examples/crawler-site'));
    try {
      await cli(server, ['queues', 'create', 'crawl-queue']);
      await cli(server, ['queues', 'consumer', 'http', 'add', 'crawl-queue']);
      const r = await run(example('crawler'), [`${site.url}/index.html`, '3'], { env: clientEnv(server) });
      assert.equal(r.code, 0, r.output);
      assert.deepEqual([...site.requests].sort(),
        ['/', '/a.html', '/b.html', '/deep/c.html', '/deep/d.html', '/index.html'], r.output);
      const depths = Object.fromEntries([...r.stdout.matchAll(/^crawled (\S+) depth=(\d+)/gm)].map((m) => [m[1].slice(site.url.length), Number(m[2])]));
      assert.deepEqual(depths, { '/index.html': 0, '/a.html': 1, '/b.html': 1, '/': 2, '/deep/c.html': 2, '/deep/d.html': 3 }, r.output);
      assert.equal(await backlog(server, 'crawl-queue'), 0);
    } finally {
      await site.close();
      await server.dispose();
    }
  });

  test("node adapter: seed 000's image consumer, unchanged, stores images and dead-letters failures", async () => {
    const server = await startServer();
    const site = await staticSite(path.join(ROOT, 'examples/crawler-site'));
    const assets = await mkdtemp(path.join(tmpdir(), 'wharf-assets-'));
    const dir = path.join(ROOT, 'clients/node/examples/image-pipeline');
    let worker;
    try {
      await cli(server, ['queues', 'create', 'image-queue']);
      const { port, secret } = await registerWorker(server, 'image-consumer');
      worker = background(process.execPath, [path.join(dir, 'serve.mjs')],
        { WHARF_WORKER_SECRET: secret, PORT: String(port), ASSETS_DIR: assets });
      await worker.ready();
      await cli(server, ['queues', 'consumer', 'add', 'image-queue', 'image-consumer', '--batch-timeout', '1',
        '--message-retries', '1', '--dead-letter-queue', 'image-dlq']);
      const unreachable = `http://127.0.0.1:${await freePort()}/gone.jpg`;
      const produce = await run(process.execPath, [path.join(dir, 'produce.mjs'), `${site.url}/a.html`, unreachable, `${site.url}/b.html`],
        { env: clientEnv(server) });
      assert.equal(produce.code, 0, produce.output);
      await until(async () => (await backlog(server, 'image-queue')) === 0 && (await backlog(server, 'image-dlq')) === 1,
        'two images stored and one dead-lettered', server);
      const stored = [];
      for (const user of await readdir(path.join(assets, 'processed'))) {
        for (const file of await readdir(path.join(assets, 'processed', user))) {
          stored.push([user, (await readFile(path.join(assets, 'processed', user, file), 'utf8')).match(/<title>(\w+)/)[1]]);
        }
      }
      assert.deepEqual(stored.sort(), [['user-0', 'A'], ['user-2', 'B']]);
      assert.equal((worker.stderr.match(/Failed to process .*gone\.jpg/g) || []).length, 2, worker.stderr);
    } finally {
      if (worker) await worker.stop();
      await site.close();
      await server.dispose();
      await rm(assets, { recursive: true, force: true });
    }
  });
});
