// producer.js -- seed 000's "Building a Producer" Worker, as written there.
export default {
async fetch(request, env) {
const { imageUrl, userId } = await request.json();
// Send message to queue for async processing
await env.IMAGE_QUEUE.send({
imageUrl,
userId,
timestamp: Date.now()
});
return new Response(JSON.stringify({
status: 'queued',
imageUrl
}), {
status: 202,
headers: { 'Content-Type': 'application/json' }
});
}
};
