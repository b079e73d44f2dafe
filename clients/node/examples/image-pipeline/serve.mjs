/*
 * serve.mjs — runs seed 000's image consumer (consumer.js, unchanged) as a
 * Wharf push worker. The one thing the seed leaves to Cloudflare, the R2
 * bucket env.ASSETS, is a directory here: put(key, data) writes
 * ASSETS_DIR/key.
 *
 *   WHARF_WORKER_SECRET=<secret> PORT=8788 ASSETS_DIR=./assets node serve.mjs
 *
 * with the secret `wharf workers register image-consumer --url
 * http://127.0.0.1:8788/` printed. Prints "listening on <port>", then runs
 * until SIGINT/SIGTERM.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { serveQueueHandler } from '../../src/index.mjs';
import consumer from './consumer.js';

const assetsDir = path.resolve(process.env.ASSETS_DIR ?? 'assets');
const ASSETS = {
  async put(key, data) {
    const file = path.join(assetsDir, key);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, new Uint8Array(data));
  },
};

const worker = await serveQueueHandler(consumer, { port: Number(process.env.PORT ?? 8788), env: { ASSETS } });
console.log(`listening on ${worker.port}`);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => worker.close().then(() => process.exit(0)));
