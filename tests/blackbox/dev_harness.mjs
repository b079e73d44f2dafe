/*
 * dev_harness.mjs — runs `wharf dev` for the black-box tests: copies an
 * example Worker from examples/workers/ to a temporary directory (so its
 * .wharf-dev/ state stays out of the checkout), starts `wharf dev` on its
 * wrangler.toml, .jsonc or .json against a test server, and waits until the
 * Worker answers. If workerd (or the bundling before it) cannot start,
 * start() throws with everything `wharf dev` printed: the tests fail, they
 * never skip. queueNamed and drainQueue read what the Workers did from
 * Wharf's REST API.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { WHARF_BIN, freePort, sleep } from './harness.mjs';

const EXAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../examples/workers');

export async function queueNamed(server, name) {
  const r = await server.api('GET', server.acct(`/queues?name=${name}`));
  assert.equal(r.status, 200, r.text);
  return r.json.result[0];
}

/* A pulled message's body as its producer gave it: json a value, text a
 * string, v8 deserialized, bytes an array of byte values. */
function decodeBody(m) {
  const type = m.metadata['CF-Content-Type'];
  const raw = type === 'text' ? Buffer.from(m.body) : Buffer.from(m.body, 'base64');
  if (type === 'json') return JSON.parse(raw.toString());
  if (type === 'text') return raw.toString();
  if (type === 'v8') return v8.deserialize(raw);
  return [...raw];
}

/* Everything ready in the queue, acked so the next look starts empty
 * (through an http_pull consumer, added the first time: pulls need one):
 * [{type, body}]. */
export async function drainQueue(server, name) {
  const q = await queueNamed(server, name);
  if (!q.consumers.length) {
    const added = await server.api('POST', server.acct(`/queues/${q.queue_id}/consumers`), { type: 'http_pull' });
    assert.equal(added.status, 200, added.text);
  }
  const r = await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/pull`), {
    batch_size: 100,
    visibility_timeout_ms: 60_000,
  });
  assert.equal(r.status, 200, r.text);
  const messages = r.json.result.messages;
  if (messages.length) {
    const acks = messages.map((m) => ({ lease_id: m.lease_id }));
    assert.equal((await server.api('POST', server.acct(`/queues/${q.queue_id}/messages/ack`), { acks })).status, 200);
  }
  return messages.map((m) => ({ type: m.metadata['CF-Content-Type'], body: decodeBody(m) }));
}

export class WharfDev {
  constructor(server, example) {
    this.server = server;
    this.example = example;
    this.dir = null;
    this.output = '';
    this.child = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.dir) {
      this.dir = await mkdtemp(path.join(tmpdir(), `wharf-dev-${this.example}-`));
      await cp(path.join(EXAMPLES, this.example), this.dir, { recursive: true });
      this.port = await freePort();
    }
    const config = ['wrangler.toml', 'wrangler.jsonc', 'wrangler.json'].find((f) => existsSync(path.join(this.dir, f)));
    const args = ['dev', '--config', path.join(this.dir, config), '--url', this.server.url];
    args.push('--port', String(this.port));
    const child = spawn(WHARF_BIN, args, {
      env: { ...process.env, WHARF_ACCOUNT_ID: this.server.accountId, WHARF_API_TOKEN: this.server.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const keep = (d) => {
      this.output += d;
      if (process.env.WHARF_TEST_VERBOSE) process.stderr.write(`[dev:${this.example}] ${d}`);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      try {
        const res = await fetch(`${this.url}/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return this;
      } catch {
        await sleep(200);
      }
    }
    throw new Error(`wharf dev (workerd) did not start for ${this.example}:\n${this.output}`);
  }

  /* Ctrl-C, as a developer stops it; returns the exit status. */
  async stop() {
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode;
    this.child.kill('SIGINT');
    const r = await this.child.exited;
    this.child = null;
    return r;
  }

  async dispose() {
    await this.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
