/*
 * harness.mjs — shared machinery for the black-box tests.
 *
 * Each test file starts its own real `wharf serve` on a fresh temporary data
 * directory and a free loopback port, drives it from the outside (raw fetch,
 * the official `cloudflare` SDK, wrangler, the `wharf` CLI) and stops it at
 * the end. Nothing here knows how the server works inside: the tests judge it
 * only by what a client can observe, so they hold for any implementation of
 * ../../shared/API.md.
 *
 * The server's output is kept (last 200 lines) so a failing test can show
 * what the server said; set WHARF_TEST_VERBOSE=1 to stream it instead, or
 * WHARF_TEST_KEEP_DATA=1 to keep the data dir and the whole log (DIR.log)
 * for a post-mortem.
 *
 * WHARF_TEST_NATS=1 runs the same suites against clustered mode (issue 13):
 * each WharfServer then starts its own three-node NATS JetStream cluster
 * (nats_cluster.mjs), two `wharf serve --nats` nodes on it, and listens on
 * its port with a TCP proxy that hands connections to the two nodes in
 * turn, so a client's connections are spread over both nodes. restart and
 * kill9 act on both nodes; the cluster's state outlives them, as a data
 * dir does.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Cloudflare from 'cloudflare';
import { startNatsCluster } from './nats_cluster.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const KEEP_DATA = process.env.WHARF_TEST_KEEP_DATA === '1';
export const CLUSTER = process.env.WHARF_TEST_NATS === '1';

export const WHARF_BIN = path.resolve(process.env.WHARF_BIN || path.join(HERE, '../../build/wharf'));
export const WRANGLER_BIN = path.join(HERE, 'node_modules/.bin/wrangler');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const hex32 = () => randomBytes(16).toString('hex');
export const HEX32 = /^[0-9a-f]{32}$/;

/* A port nobody listens on right now: bind port 0, read it, release it. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* Runs a program to completion; never throws for a non-zero exit. An env
 * value of undefined removes that variable. */
export function run(cmd, args, { env = {}, cwd, timeoutMs = 60_000, input } = {}) {
  return new Promise((resolve, reject) => {
    const merged = { ...process.env, ...env };
    for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
    const child = spawn(cmd, args, {
      cwd,
      env: merged,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, output: stdout + stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

export class WharfServer {
  /* env: extra environment of the server process (e.g. WHARF_TEST_CLOCK_MS);
   * args: more `wharf serve` flags, e.g. ['--cloudflare-limits']. */
  constructor({ accountId = hex32(), token = 'wharf-test-' + hex32(), env = {}, args = [] } = {}) {
    this.env = env;
    this.accountId = accountId;
    this.token = token;
    this.args = args;
    this.dataDir = null;
    this.port = null;
    this.child = null;
    this.lines = [];
    this.nats = null;     /* CLUSTER: the JetStream cluster */
    this.siblings = [];   /* CLUSTER: the second node's process */
    this.nodePorts = [];
    this.proxy = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get baseURL() {
    return `${this.url}/client/v4`;
  }

  /* Starts on a new temporary data dir and port the first time; later calls
   * (restart) reuse both, so a restart sees the same store. */
  async start() {
    if (!this.dataDir) this.dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-bb-'));
    if (!this.port) this.port = await freePort();
    if (!CLUSTER) {
      this.child = await this.startNode(this.dataDir, this.port, this.args);
      return this;
    }
    if (!this.nats) {
      this.nats = await startNatsCluster({ dir: path.join(this.dataDir, 'nats') });
      this.nodePorts = [await freePort(), await freePort()];
      this.proxy = startProxy(this.port, this.nodePorts);
    }
    const args = ['--nats', this.nats.urls, ...this.args];
    const dirs = [path.join(this.dataDir, 'a'), path.join(this.dataDir, 'b')];
    this.child = await this.startNode(dirs[0], this.nodePorts[0], args);
    this.siblings = [await this.startNode(dirs[1], this.nodePorts[1], args)];
    return this;
  }

  /* One `wharf serve`, once its /healthz answers 200. */
  async startNode(dataDir, port, args) {
    const child = spawn(
      WHARF_BIN,
      ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...args],
      {
        env: { ...process.env, WHARF_ACCOUNT_ID: this.accountId, WHARF_API_TOKEN: this.token, ...this.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', (e) => {
        child.spawnError = e;
        resolve({ code: null, signal: null, error: e.message });
      });
    });
    const keep = (d) => {
      for (const line of String(d).split('\n')) {
        if (!line) continue;
        if (process.env.WHARF_TEST_VERBOSE) process.stderr.write(`[wharf:${port}] ${line}\n`);
        if (KEEP_DATA) appendFileSync(`${dataDir}.log`, `${line}\n`);
        this.lines.push(line);
        if (this.lines.length > 200) this.lines.shift();
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);

    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.spawnError) throw new Error(`cannot run ${WHARF_BIN}: ${child.spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`wharf exited during start-up (${child.exitCode ?? child.signalCode}):\n${this.log()}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return child;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await child.exited;
        throw new Error(`wharf did not answer /healthz within 15 s:\n${this.log()}`);
      }
      await sleep(50);
    }
  }

  /* Graceful stop: SIGTERM, then wait for the process to exit. Returns its
   * exit {code, signal}; SIGKILLs it if it has not exited in 10 s. */
  async stop() {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    const siblings = this.siblings.splice(0);
    const [exited] = await Promise.all([child, ...siblings].map(stopChild));
    return exited;
  }

  /* Crash: SIGKILL, wait for the process to be gone. */
  async kill9() {
    const child = this.child;
    if (!child) return;
    this.child = null;
    for (const c of [child, ...this.siblings.splice(0)]) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await c.exited;
    }
  }

  async restart({ crash = false } = {}) {
    if (crash) await this.kill9();
    else await this.stop();
    return this.start();
  }

  /* Stops the server and removes its data dir (kept with WHARF_TEST_KEEP_DATA). */
  async dispose() {
    await this.stop();
    if (this.proxy) this.proxy.close();
    if (this.nats) await this.nats.stop();
    if (KEEP_DATA) process.stderr.write(`kept ${this.dataDir} and ${this.dataDir}.log\n`);
    else if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  log() {
    return this.lines.slice(-60).join('\n');
  }

  /* fetch under /client/v4 (or under the root with opts.root: /metrics).
   * body: object (sent as JSON), string or Buffer (sent as is) or undefined.
   * opts.token: null for no Authorization header. */
  async api(method, apiPath, body, opts = {}) {
    const token = opts.token === undefined ? this.token : opts.token;
    const headers = { ...(opts.headers || {}) };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json';
      }
    }
    const origin = opts.origin ?? this.url;
    const res = await fetch((opts.root ? origin : `${origin}/client/v4`) + apiPath, {
      method,
      headers,
      body: payload,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* left null: the envelope checks will say so */
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  /* Moves the test clock (docs/test-clock.md) to ms. The clock is each
   * process's own, so in CLUSTER mode it is moved on both nodes; returns
   * the first refusal, or the last answer. */
  async setTestClock(ms, opts = {}) {
    const origins = CLUSTER ? this.nodePorts.map((p) => `http://127.0.0.1:${p}`) : [this.url];
    let res;
    for (const origin of origins) {
      res = await this.api('PUT', '/wharf/test-clock', { now_ms: ms }, { ...opts, origin });
      if (res.status !== 200) return res;
    }
    return res;
  }

  /* Paths of this server's default account. */
  acct(rest = '') {
    return `/accounts/${this.accountId}${rest}`;
  }

  sdk(apiToken = this.token, options = {}) {
    return new Cloudflare({ apiToken, baseURL: this.baseURL, maxRetries: 0, ...options });
  }

  /* wrangler with this server as its API; a throwaway HOME and cwd so it
   * finds no config or credentials of the machine. */
  async wrangler(args, env = {}) {
    const home = await mkdtemp(path.join(tmpdir(), 'wharf-wrangler-'));
    try {
      return await run(WRANGLER_BIN, args, {
        cwd: home,
        timeoutMs: 90_000,
        env: {
          CLOUDFLARE_API_BASE_URL: this.baseURL,
          CLOUDFLARE_API_TOKEN: this.token,
          CLOUDFLARE_ACCOUNT_ID: this.accountId,
          WRANGLER_SEND_METRICS: 'false',
          WRANGLER_HIDE_BANNER: 'true',
          HOME: home,
          XDG_CONFIG_HOME: path.join(home, '.config'),
          CI: 'true',
          NO_COLOR: '1',
          FORCE_COLOR: '0',
          ...env,
        },
      });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }

  /* The wharf CLI pointed at this server. */
  wharfCli(args, env = {}, opts = {}) {
    return run(WHARF_BIN, args, {
      ...opts,
      env: {
        WHARF_URL: this.url,
        WHARF_API_TOKEN: this.token,
        WHARF_ACCOUNT_ID: this.accountId,
        NO_COLOR: '1',
        ...env,
      },
    });
  }

  /* Creates an account through the CLI; returns its id. */
  async createAccount(name) {
    const r = await this.wharfCli(['accounts', 'create', '--name', name]);
    if (r.code !== 0) throw new Error(`wharf accounts create failed (${r.code}): ${r.output}`);
    const m = r.stdout.match(/account id:\s*([0-9a-f]{32})/i) || r.stdout.match(/\b([0-9a-f]{32})\b/);
    if (!m) throw new Error(`no account id in: ${r.stdout}`);
    return m[1];
  }

  /* Creates a token through the CLI; returns its secret (last line,
   * "token: <secret>"). permissions: e.g. 'queues_read' or
   * 'queues_read,queues_write'. */
  async createToken(permissions, accountId = this.accountId) {
    const r = await this.wharfCli(['tokens', 'create', '--permissions', permissions, '--account', accountId]);
    if (r.code !== 0) throw new Error(`wharf tokens create failed (${r.code}): ${r.output}`);
    return tokenFromOutput(r.stdout);
  }
}

export function tokenFromOutput(stdout) {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1] || '';
  const m = last.match(/^token:\s*(\S+)$/i) || last.match(/(\S+)$/);
  if (!m) throw new Error(`no token in: ${stdout}`);
  return m[1];
}

/* SIGTERM, then the exit {code, signal}; SIGKILL after 10 s. */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill('SIGTERM');
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(null), 10_000)));
  const exited = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (exited) return exited;
  child.kill('SIGKILL');
  await child.exited;
  return { code: null, signal: 'SIGTERM-timeout' };
}

/* CLUSTER: listens on port and hands each connection to the next of
 * ports, in turn. Half-closes pass through (a client that sends and ends
 * still gets its answer), and so does a close: what one side sent before
 * it closed is delivered first (end, not destroy). */
function startProxy(port, ports) {
  let next = 0;
  const proxy = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: ports[next++ % ports.length], host: '127.0.0.1',
                                   allowHalfOpen: true });
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.end());
  });
  proxy.listen(port, '127.0.0.1');
  return proxy;
}

/* A server that cannot start leaves nothing running (a NATS cluster or a
 * node would keep the test file from ending); its data dir stays, with the
 * logs the error names. */
export async function startServer(opts) {
  const server = new WharfServer(opts);
  try {
    await server.start();
  } catch (e) {
    await server.kill9();
    server.proxy?.close();
    await server.nats?.stop();
    throw e;
  }
  return server;
}

/* The Cloudflare envelope, success or error. */
export function assertEnvelope(assert, res, { success, status } = {}) {
  const where = `${res.status} ${res.text?.slice(0, 300)}`;
  if (status !== undefined) assert.equal(res.status, status, where);
  assert.notEqual(res.status, 204, 'never 204');
  assert.match(res.headers.get('content-type') || '', /application\/json/, where);
  assert.ok(res.json && typeof res.json === 'object', `JSON body: ${where}`);
  assert.equal(typeof res.json.success, 'boolean', where);
  assert.ok(Array.isArray(res.json.errors), `errors[]: ${where}`);
  assert.ok(Array.isArray(res.json.messages), `messages[]: ${where}`);
  assert.ok('result' in res.json, `result: ${where}`);
  if (success !== undefined) assert.equal(res.json.success, success, where);
  if (success === true) assert.deepEqual(res.json.errors, [], where);
}

/* An error reply: status, envelope with success false, at least one
 * {code, message}, x-should-retry: false on 4xx. Returns errors[0]. */
export function assertError(assert, res, status, code) {
  const statuses = Array.isArray(status) ? status : [status];
  const where = `${res.status} ${res.text?.slice(0, 300)}`;
  assert.ok(statuses.includes(res.status), `status ${statuses.join('|')} expected: ${where}`);
  assertEnvelope(assert, res, { success: false });
  assert.ok(res.json.errors.length > 0, `errors non-empty: ${where}`);
  const err = res.json.errors[0];
  assert.equal(typeof err.code, 'number', where);
  assert.equal(typeof err.message, 'string', where);
  assert.ok(err.message.length > 0, where);
  if (code !== undefined) assert.equal(err.code, code, where);
  if (res.status >= 400 && res.status < 500) {
    assert.equal(res.headers.get('x-should-retry'), 'false', `x-should-retry on ${res.status}`);
  }
  return err;
}
