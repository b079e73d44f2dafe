// A producer that sends one message per request, of the content type and
// delay named in the request: GET /send?type=json|text|bytes|v8[&delay=N],
// GET /batch?delay=N sends one of each in a sendBatch, GET /metrics.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const delaySeconds = url.searchParams.has('delay') ? Number(url.searchParams.get('delay')) : undefined;
    const bodies = {
      json: { hello: 'world', n: [1, 2, 3] },
      text: 'plain text, ünïcode',
      bytes: new Uint8Array([0, 1, 255]),
      v8: { d: new Date(0), m: new Map([[1, 2]]) },
    };
    try {
      if (url.pathname === '/send') {
        const type = url.searchParams.get('type');
        const result = await env.EVENTS.send(bodies[type], { contentType: type, delaySeconds });
        return Response.json({ ok: true, result });
      }
      if (url.pathname === '/default') {
        await env.EVENTS.send({ plain: true });
        return Response.json({ ok: true });
      }
      if (url.pathname === '/batch') {
        const messages = Object.entries(bodies).map(([type, body]) => ({ body, contentType: type }));
        messages[1].delaySeconds = 3;
        await env.EVENTS.sendBatch(messages, { delaySeconds });
        return Response.json({ ok: true });
      }
      if (url.pathname === '/metrics') return Response.json(await env.EVENTS.metrics());
      return new Response('not found', { status: 404 });
    } catch (e) {
      return Response.json({ ok: false, error: String(e) }, { status: 500 });
    }
  },
};
