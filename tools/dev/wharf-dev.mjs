#!/usr/bin/env node
/*
 * wharf-dev.mjs — `wharf dev`: runs a user's unmodified Worker (its queue
 * producers and its queue() consumer) in the real workerd against a Wharf
 * server. The `wharf dev` CLI verb (src/cli/dev.c) execs this program.
 *
 * Steps, once at start-up: read the wrangler config with wrangler's own
 * reader; bundle the Worker with `wrangler deploy --dry-run --outdir` (no
 * network); create the queues it names that Wharf lacks; when it consumes
 * queues, register it as a Wharf worker whose URL is the bridge's push
 * endpoint and attach it to each consumed queue with the config's settings
 * (as `wrangler deploy` does on Cloudflare); write the workerd config
 * (workerd_config.mjs) with the bridge Worker (bridge.js); run workerd until
 * SIGINT/SIGTERM, which it passes on.
 *
 * State (the bundle, the workerd config, worker.json) lives in .wharf-dev/
 * beside the wrangler config. worker.json (mode 0600) keeps the worker's
 * signing secret and push port, which Wharf shows only when registering:
 * a restart reuses both, so the registration, and the batches in flight
 * towards it, stay valid. Every failure before workerd runs is one line
 * "wharf dev: …" on stderr and exit status 1; afterwards the exit status is
 * workerd's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { workerdConfig } from './workerd_config.mjs';
import { workerdLogFilter } from './workerd_log.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const USAGE = `Usage: wharf dev [--config wrangler.toml|wrangler.json[c]] [--url WHARF_URL]
                 [--port N] [--queue-port N] [--ip HOST]
  Runs the Worker in workerd against Wharf: env.QUEUE.send()/sendBatch() go
  to Wharf's queues, and Wharf pushes the batches of the queues in
  queues.consumers to its queue() handler. The Worker's fetch handler
  listens on --port (8788); Wharf posts batches to --queue-port (chosen once
  and kept in .wharf-dev/worker.json).
  The server, account and token come from --url/WHARF_URL, WHARF_ACCOUNT_ID
  and WHARF_API_TOKEN (or the CLOUDFLARE_* names), as for the other commands.
`;

function fail(message) {
  process.stderr.write(`wharf dev: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { config: null, url: null, port: 8788, queuePort: null, ip: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : fail(`${a} needs a value\n${USAGE}`));
    if (a === '--config' || a === '-c') opts.config = value();
    else if (a === '--url') opts.url = value();
    else if (a === '--port') opts.port = Number(value());
    else if (a === '--queue-port') opts.queuePort = Number(value());
    else if (a === '--ip') opts.ip = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else fail(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

/* wrangler and workerd: from the Worker's own project first, then from
 * WHARF_DEV_NODE_MODULES, then from the Wharf checkout's tests/blackbox
 * (the README's set-up installs them there). */
function resolver(projectDir) {
  const bases = [
    path.join(projectDir, 'package.json'),
    process.env.WHARF_DEV_NODE_MODULES && path.join(process.env.WHARF_DEV_NODE_MODULES, '..', 'package.json'),
    path.join(HERE, '../../tests/blackbox/package.json'),
  ].filter(Boolean);
  return (spec) => {
    for (const base of bases) {
      try {
        return createRequire(base).resolve(spec);
      } catch {
        /* next */
      }
    }
    fail(`cannot find ${spec}; run \`npm ci\` in tests/blackbox or install wrangler and workerd in the project`);
  };
}

function connection(opts) {
  const raw = opts.url || process.env.WHARF_URL || process.env.CLOUDFLARE_API_BASE_URL || 'http://127.0.0.1:8787';
  const url = new URL(raw.replace(/\/client\/v4\/?$/, ''));
  const accountId = process.env.WHARF_ACCOUNT_ID || process.env.CLOUDFLARE_ACCOUNT_ID;
  const token = process.env.WHARF_API_TOKEN || process.env.CLOUDFLARE_API_TOKEN;
  if (!accountId) fail('no account: set WHARF_ACCOUNT_ID');
  if (!token) fail('no token: set WHARF_API_TOKEN');
  if (url.protocol !== 'http:') fail(`${raw}: only http:// servers are supported`);
  return { base: `${url.origin}/client/v4/accounts/${accountId}`, address: `${url.hostname}:${url.port || 80}`, accountId, token };
}

/* A Wharf REST call: its result, or an ApiError naming what failed. */
class ApiError extends Error {}

async function api(conn, method, p, body) {
  let res;
  try {
    res = await fetch(conn.base + p, {
      method,
      headers: { authorization: `Bearer ${conn.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(`cannot reach Wharf at ${conn.base}: ${e.cause?.message || e.message}`);
  }
  const envelope = await res.json().catch(() => null);
  if (!envelope?.success) {
    const err = envelope?.errors?.[0];
    throw new ApiError(`${method} ${p}: ${err ? `${err.message} [code: ${err.code}]` : `HTTP ${res.status}`}`);
  }
  return envelope.result;
}

/* The Wharf queue named name, created when missing. */
async function ensureQueue(conn, name) {
  const found = await api(conn, 'GET', `/queues?name=${encodeURIComponent(name)}`);
  if (found.length > 0) return found[0];
  process.stderr.write(`wharf dev: creating queue ${name}\n`);
  return api(conn, 'POST', '/queues', { queue_name: name });
}

/* The consumer settings a wrangler config entry names, as Wharf's consumer
 * API takes them; unset ones take Wharf's (Cloudflare's) defaults. */
function consumerBody(scriptName, c) {
  const settings = {
    batch_size: c.max_batch_size,
    max_batch_timeout: c.max_batch_timeout,
    max_retries: c.max_retries,
    max_concurrency: c.max_concurrency ?? undefined,
    retry_delay: c.retry_delay,
  };
  for (const k of Object.keys(settings)) if (settings[k] === undefined) delete settings[k];
  const body = { type: 'worker', script_name: scriptName, settings };
  if (c.dead_letter_queue) body.dead_letter_queue = c.dead_letter_queue;
  return body;
}

/* Attaches the Worker to the queue as its consumer, or brings its existing
 * consumer in line with the config. A queue has one consumer: one that is
 * not this Worker's is not taken over. */
async function ensureConsumer(conn, scriptName, c) {
  const queue = await ensureQueue(conn, c.queue);
  const body = consumerBody(scriptName, c);
  const existing = queue.consumers?.[0];
  if (!existing) {
    process.stderr.write(`wharf dev: ${scriptName} consumes ${c.queue}\n`);
    await api(conn, 'POST', `/queues/${queue.queue_id}/consumers`, body);
  } else if (existing.type === 'worker' && existing.script_name === scriptName) {
    await api(conn, 'PUT', `/queues/${queue.queue_id}/consumers/${existing.consumer_id}`, body);
  } else {
    const who = existing.type === 'worker' ? `worker ${existing.script_name}` : existing.type;
    fail(`queue ${c.queue} already has a consumer (${who}); remove it first (wharf queues consumer remove)`);
  }
  return queue;
}

function freePort(host) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* .wharf-dev/worker.json: {server, script_name, port, secret, paused}. */
function readState(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

function writeState(file, state) {
  writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
}

/* The Worker registered in Wharf with the bridge's push URL, and its
 * secret. The secret Wharf showed at registration is kept in the state; a
 * registration this program cannot sign for (secret lost, other URL or
 * server) is replaced. Returns the state to keep. */
async function ensureWorker(conn, scriptName, opts, state) {
  const same = state.server === conn.base && state.script_name === scriptName && state.secret;
  const port = opts.queuePort || (same && state.port) || (await freePort(opts.ip));
  const url = `http://${opts.ip}:${port}/queue`;
  const registered = (await api(conn, 'GET', '/workers/queue-handlers')).find((w) => w.script_name === scriptName);
  if (registered && same && registered.url === url) return { ...state, port };
  if (registered) await api(conn, 'DELETE', `/workers/queue-handlers/${encodeURIComponent(scriptName)}`);
  process.stderr.write(`wharf dev: registering worker ${scriptName} at ${url}\n`);
  const created = await api(conn, 'POST', '/workers/queue-handlers', { script_name: scriptName, url });
  return { server: conn.base, script_name: scriptName, port, secret: created.secret, paused: [] };
}

/* While wharf dev is stopped nothing answers at the push URL, and Wharf
 * counts every refused connection as a failed delivery: without a pause a
 * stopped dev session would burn the messages' retries and dead-letter or
 * delete them. So a stop pauses delivery of the consumed queues that were
 * delivering (recorded in the state) and the next start resumes those, and
 * only those: a pause the user made stays. */
async function setPaused(conn, queueIds, paused) {
  for (const id of queueIds) await api(conn, 'PATCH', `/queues/${id}`, { settings: { delivery_paused: paused } });
}

/* Resolves once something accepts connections at host:port (workerd's
 * push socket), or rejects after timeoutMs. */
async function listening(host, port, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, host, () => socket.end(() => resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new ApiError(`workerd did not listen on ${host}:${port} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/* The pause of the last stop is lifted once the push socket accepts
 * connections: earlier, Wharf's first batches would be refused. */
async function resumeWhenListening(conn, consumed, stateFile, worker, host) {
  const resume = (worker.paused || []).filter((id) => consumed.some((q) => q.queue_id === id));
  if (!resume.length) return;
  await listening(host, worker.port);
  process.stderr.write(`wharf dev: resuming delivery paused at the last stop\n`);
  await setPaused(conn, resume, false);
  writeState(stateFile, { ...worker, paused: [] });
}

async function pauseForStop(conn, consumed, stateFile, worker) {
  const paused = [];
  for (const q of consumed) {
    const now = await api(conn, 'GET', `/queues/${q.queue_id}`);
    if (now.settings?.delivery_paused) continue;
    await setPaused(conn, [q.queue_id], true);
    paused.push(q.queue_id);
    writeState(stateFile, { ...worker, paused });
  }
  if (paused.length) process.stderr.write(`wharf dev: delivery paused until the next wharf dev\n`);
}

function bundle(wranglerBin, configPath, outDir) {
  rmSync(outDir, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [wranglerBin, 'deploy', '--dry-run', '--outdir', outDir, '--config', configPath], {
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', WRANGLER_HIDE_BANNER: 'true' },
  });
  if (r.status !== 0) fail(`wrangler could not bundle the Worker:\n${r.stdout}${r.stderr}`);
  const files = readdirSync(outDir).filter((f) => /\.(m?js)$/.test(f));
  const main = files.includes('index.js') ? 'index.js' : files[0];
  if (!main) fail(`wrangler wrote no module to ${outDir}`);
  return [main, ...files.filter((f) => f !== main)].map((f) => ({ name: f, path: path.join(outDir, f) }));
}

/* Everything in the config that this command serves nothing for, named in
 * one warning. */
function warnUnserved(config) {
  const kinds = ['kv_namespaces', 'r2_buckets', 'd1_databases', 'durable_objects', 'services', 'ai', 'vectorize', 'hyperdrive', 'analytics_engine_datasets'];
  const names = [];
  for (const k of kinds) {
    const v = config[k];
    const list = Array.isArray(v) ? v : v?.bindings || (v && typeof v === 'object' ? [v] : []);
    for (const b of list) names.push(`${b.binding || b.name} (${k})`);
  }
  if (names.length) process.stderr.write(`wharf dev: warning: these bindings are not provided and will be undefined: ${names.join(', ')}\n`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const configPath = path.resolve(opts.config || 'wrangler.toml');
  const projectDir = path.dirname(configPath);
  const resolve = resolver(projectDir);
  const conn = connection(opts);
  const { unstable_readConfig } = await import(pathToFileURL(resolve('wrangler')).href);
  const config = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  warnUnserved(config);

  const stateDir = path.join(projectDir, '.wharf-dev');
  mkdirSync(stateDir, { recursive: true });
  const modules = bundle(resolve('wrangler/bin/wrangler.js'), configPath, path.join(stateDir, 'bundle'));

  /* As a deploy does on Cloudflare, the Worker is recorded as each queue's
   * producer (what `wrangler queues info` lists). */
  const producers = [];
  for (const p of config.queues?.producers || []) {
    const queue = await ensureQueue(conn, p.queue);
    if (config.name) await api(conn, 'POST', `/queues/${queue.queue_id}/producers`, { type: 'worker', script: config.name });
    producers.push({ binding: p.binding, queue });
  }

  const stateFile = path.join(stateDir, 'worker.json');
  const consumers = (config.queues?.consumers || []).filter((c) => (c.type || 'worker') === 'worker');
  let worker = null;
  const consumed = [];
  if (consumers.length) {
    if (!config.name) fail(`${configPath} names no Worker (name = "..."): a consumer needs one`);
    worker = await ensureWorker(conn, config.name, opts, readState(stateFile));
    writeState(stateFile, worker);
    for (const c of consumers) consumed.push(await ensureConsumer(conn, config.name, c));
  }

  const text = workerdConfig({
    user: {
      modules,
      compatibilityDate: config.compatibility_date || '2024-09-23',
      compatibilityFlags: config.compatibility_flags || [],
      vars: config.vars,
    },
    producers,
    consumed,
    configDir: stateDir,
    bridgePath: path.join(HERE, 'bridge.js'),
    wharfAddress: conn.address,
    accountId: conn.accountId,
    token: conn.token,
    secret: worker?.secret,
    httpAddress: `${opts.ip}:${opts.port}`,
    queueAddress: worker && `${opts.ip}:${worker.port}`,
  });
  const capnp = path.join(stateDir, 'workerd.capnp');
  writeFileSync(capnp, text, { mode: 0o600 }); /* it holds the token */

  /* --verbose: the only way workerd reports a handler's uncaught exception */
  const workerd = spawn(resolve('workerd/bin/workerd'), ['serve', capnp, '--experimental', '--verbose'], {
    stdio: ['inherit', 'inherit', 'pipe'],
  });
  workerdLogFilter(workerd.stderr, process.stderr);
  workerd.on('error', (e) => fail(`cannot run workerd: ${e.message}`));
  /* Stopping pauses the consumed queues first (setPaused says why), then
   * stops workerd; a workerd that exits by itself pauses them too. */
  let stopped = null;
  const stop = (sig) => {
    stopped ||= (worker ? pauseForStop(conn, consumed, stateFile, worker) : Promise.resolve())
      .catch((e) => process.stderr.write(`wharf dev: warning: delivery not paused: ${e.message}\n`))
      .then(() => workerd.kill(sig));
    return stopped;
  };
  /* wrangler's modules leave a signal listener that kills this process at
   * once, which would orphan workerd: ours replaces it and waits for it. */
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.removeAllListeners(sig);
    process.on(sig, () => stop(sig));
  }
  workerd.on('exit', (code) => {
    const asked = stopped !== null;
    stop('SIGTERM').then(() => process.exit(asked ? 0 : (code ?? 1)));
  });
  if (worker) {
    await resumeWhenListening(conn, consumed, stateFile, worker, opts.ip).catch((e) =>
      process.stderr.write(`wharf dev: warning: delivery still paused: ${e.message}\n`),
    );
  }
  process.stderr.write(`wharf dev: ${config.name || 'worker'} on http://${opts.ip}:${opts.port} against ${conn.base}\n`);
}

main().catch((e) => fail(e instanceof ApiError ? e.message : e.stack));
