/*
 * nats_cluster.mjs — a real three-node NATS JetStream cluster for black-box
 * runs of clustered Wharf (issue 13), the Node twin of
 * tests/unit/helpers/nats_cluster.c.
 *
 * start() picks free loopback ports, runs three nats-server processes with
 * deploy/nats/wharf-nats.conf (the deployment's config; per-node values in
 * the environment), each with its own JetStream store under the test's
 * directory, and resolves once every node's monitoring endpoint (/jsz)
 * names a meta leader. It rejects with a message saying what is missing when
 * nats-server is not installed: a test using it fails, it never skips.
 * kill(i, signal) crashes a node, restart(i) brings it back on the same
 * ports and store, stop() ends them all. Nothing here is Wharf-specific
 * beyond the config file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const NATS_CONF = path.resolve(HERE, '../../deploy/nats/wharf-nats.conf');
const NODES = 3;

function natsServerPresent(env) {
  return spawnSync('nats-server', ['--version'], { env, stdio: 'ignore' }).status === 0;
}

export class NatsCluster {
  constructor({ dir, env = process.env } = {}) {
    this.dir = dir;
    this.env = env;
    this.nodes = [];
    this.ownDir = !dir;
  }

  get urls() {
    return this.nodes.map((n) => `nats://127.0.0.1:${n.clientPort}`).join(',');
  }

  async start({ timeoutMs = 20_000 } = {}) {
    if (!natsServerPresent(this.env))
      throw new Error('nats_cluster: nats-server is not in PATH; install Debian\'s nats-server ' +
                      '(`make deps` does) — this test needs a real JetStream cluster');
    this.dir ??= await mkdtemp(path.join(tmpdir(), 'wharf-nats-'));
    for (let i = 0; i < NODES; i++)
      this.nodes.push({ clientPort: await freePort(), routePort: await freePort(),
                        httpPort: await freePort(), child: null });
    try {
      for (let i = 0; i < NODES; i++) await this.restart(i);
      await this.waitReady({ timeoutMs });
    } catch (e) { /* no node left running: it would keep the test file from ending */
      for (let i = 0; i < NODES; i++) await this.kill(i, 'SIGKILL');
      throw e;
    }
    return this;
  }

  nodeEnv(i) {
    const n = this.nodes[i];
    const env = { ...this.env, NATS_NAME: `n${i + 1}`, NATS_LISTEN: `127.0.0.1:${n.clientPort}`,
                  NATS_HTTP: `127.0.0.1:${n.httpPort}`, NATS_STORE_DIR: path.join(this.dir, `n${i + 1}`),
                  NATS_CLUSTER_NAME: 'wharf-test', NATS_CLUSTER_LISTEN: `127.0.0.1:${n.routePort}` };
    this.nodes.forEach((m, j) => (env[`NATS_ROUTE_${j + 1}`] = `nats-route://127.0.0.1:${m.routePort}`));
    return env;
  }

  async restart(i) {
    await mkdir(path.join(this.dir, `n${i + 1}`), { recursive: true });
    const log = openSync(path.join(this.dir, `n${i + 1}.log`), 'a');
    const child = spawn('nats-server', ['-c', NATS_CONF], { env: this.nodeEnv(i), stdio: ['ignore', log, log] });
    closeSync(log);
    child.exited = new Promise((resolve) => child.on('exit', resolve));
    this.nodes[i].child = child;
  }

  /* The meta leader node i reports, or null. */
  async metaLeader(i) {
    try {
      const res = await fetch(`http://127.0.0.1:${this.nodes[i].httpPort}/jsz`);
      return (await res.json()).meta_cluster?.leader || null;
    } catch {
      return null;
    }
  }

  /* Until every running node names the same meta leader, itself running
   * (after a kill the others name the dead leader until they notice). */
  async waitReady({ timeoutMs = 20_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.nodes.map((n, i) => (n.child ? i : -1)).filter((i) => i >= 0);
      const names = new Set(running.map((i) => `n${i + 1}`));
      const leaders = await Promise.all(running.map((i) => this.metaLeader(i)));
      if (leaders.length && leaders.every((l) => l === leaders[0]) && names.has(leaders[0])) return leaders[0];
      await sleep(100);
    }
    throw new Error(`nats_cluster: no JetStream meta leader in ${timeoutMs} ms; see ${this.dir}/n*.log`);
  }

  async kill(i, signal = 'SIGKILL') {
    const { child } = this.nodes[i];
    if (!child) return;
    child.kill(signal);
    await child.exited;
    this.nodes[i].child = null;
  }

  async stop() {
    for (let i = 0; i < this.nodes.length; i++) await this.kill(i, 'SIGTERM');
    if (this.ownDir && this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

export async function startNatsCluster(opts) {
  return new NatsCluster(opts).start();
}
