// A consumer that reports every batch it gets, as is and when, to the `seen` queue
// (v8, so bodies keep their JavaScript types: Date, Map, ArrayBuffer), and
// then does what the batch's plan says. The plan is the first message's
// body.plan, a list of steps run in order on first delivery (attempts 1);
// redeliveries are acked, unless the plan starts with 'always':
//   'ackAll' | 'retryAll' | {retryAll: delaySeconds} | 'throw'
//   {ack: tag} | {retry: tag} | {retry: tag, delaySeconds} | {waitUntilRetry: tag}
// where tag names the message whose body.tag it is; a step on a message
// that is not in this batch is skipped (messages sent together may come in
// several batches: clustered Wharf forms them on each node).
// GET /send?type=json|text|bytes|v8[&delay=N] sends one message of that type
// to `types` (a Worker producer, for the content-type round trip).
const BODIES = {
  json: { hello: 'world', n: [1, 2, 3] },
  text: 'plain text, ünïcode',
  bytes: new Uint8Array([0, 1, 255]),
  v8: { d: new Date(0), m: new Map([[1, 2]]) },
};

function run(step, batch, ctx) {
  const m = (tag) => batch.messages.find((x) => x.body?.tag === tag);
  if (step === 'ackAll') batch.ackAll();
  else if (step === 'retryAll') batch.retryAll();
  else if (step === 'throw') throw new Error('the plan says throw');
  else if (step.retryAll !== undefined) batch.retryAll({ delaySeconds: step.retryAll });
  else if (step.ack !== undefined) m(step.ack)?.ack();
  else if (step.retry !== undefined)
    m(step.retry)?.retry(step.delaySeconds === undefined ? undefined : { delaySeconds: step.delaySeconds });
  else if (step.waitUntilRetry !== undefined)
    ctx.waitUntil(new Promise((r) => setTimeout(r, 300)).then(() => m(step.waitUntilRetry)?.retry()));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== '/send') return new Response('ok');
    const type = url.searchParams.get('type');
    const delaySeconds = url.searchParams.has('delay') ? Number(url.searchParams.get('delay')) : undefined;
    await env.TYPES.send(BODIES[type], { contentType: type, delaySeconds });
    return Response.json({ ok: true });
  },

  async queue(batch, env, ctx) {
    const report = {
      at: Date.now(), /* when the batch came: workerd's clock stands still until I/O */
      queue: batch.queue,
      metrics: { ...batch.metadata.metrics },
      messages: batch.messages.map((m) => ({ id: m.id, timestamp: m.timestamp, attempts: m.attempts, body: m.body })),
    };
    await env.SEEN.send(report, { contentType: 'v8' });
    if (batch.queue !== 'work') return;
    const plan = batch.messages[0].body?.plan || [];
    const always = plan[0] === 'always';
    if (!always && batch.messages[0].attempts > 1) return;
    for (const step of always ? plan.slice(1) : plan) run(step, batch, ctx);
  },
};
