/*
 * produce.mjs — seed 000's producer, minus the HTTP front: enqueues one
 * {imageUrl, userId, timestamp} job per URL given on the command line.
 *
 *   WHARF_URL=… WHARF_API_TOKEN=… WHARF_ACCOUNT_ID=… node produce.mjs URL…
 */
import { Queue } from '../../src/index.mjs';

const IMAGE_QUEUE = new Queue({ queueName: process.env.QUEUE ?? 'image-queue' });
for (const [i, imageUrl] of process.argv.slice(2).entries()) {
  await IMAGE_QUEUE.send({ imageUrl, userId: `user-${i}`, timestamp: Date.now() });
  console.log(`queued ${imageUrl}`);
}
