// consumer.js -- processes messages from the queue
export default {
async queue(batch, env) {
for (const message of batch.messages) {
const { imageUrl, userId, timestamp } = message.body;
try {
// Download and process the image
const response = await fetch(imageUrl);
const imageData = await response.arrayBuffer();
// Store processed versions in R2
await env.ASSETS.put(
`processed/${userId}/${Date.now()}-original.jpg`,
imageData
);
// Acknowledge successful processing
message.ack();
} catch (error) {
console.error(`Failed to process ${imageUrl}: ${error.message}`);
// Retry or send to DLQ after 3 attempts
message.retry({ maxRetries: 3 });
}
}
}
};
