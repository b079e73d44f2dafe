// DLQ consumer -- handles permanently failed messages
export default {
async queue(batch, env) {
for (const message of batch.messages) {
const { email, subject, error } = message.body;
// Log permanently failed messages for manual inspection
await env.DB.prepare(
'INSERT INTO failed_emails (email, subject, error, failed_at) VALUES (?1, ?2, ?3, datetime("now"))'
).bind(email, subject, error || 'unknown').run();
// Notify admin
await env.ADMIN_QUEUE.send({
type: 'alert',
message: `Email to ${email} failed permanently`
});
message.ack();
}
}
};
