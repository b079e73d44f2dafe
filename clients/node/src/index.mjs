/*
 * wharf-queues — Cloudflare Queues on a Wharf server, from Node.
 *
 *   Queue:             the producer binding (`env.MY_QUEUE`): send() and
 *                      sendBatch() over Wharf's Cloudflare v4 REST API.
 *   serveQueueHandler: runs a Worker's `queue(batch, env, ctx)` handler as
 *                      a Wharf push endpoint (docs/workers.md).
 *
 * No dependencies beyond Node's built-ins (fetch, http, crypto).
 */
export { Queue } from './queue.mjs';
export { serveQueueHandler } from './worker.mjs';
