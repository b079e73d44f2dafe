/*
 * events.h — delivering events to the subscriptions that want them
 * (events.c): the publish endpoint, a Wharf extension (docs/extensions.md),
 * and Wharf's own source, `wharf`, which the handlers of what Wharf does
 * call with one line each.
 *
 * A published event is durable in every subscribed queue before the
 * publish is answered. Wharf's own events are sent after the change they
 * report is committed and are not waited for: the change is answered
 * without them, and a failure to store one is logged (a Wharf event is at
 * most once).
 */
#ifndef WHARF_API_EVENTS_H
#define WHARF_API_EVENTS_H

#include <stdint.h>

#include "api/api.h"

/* POST /accounts/{a}/event_subscriptions/events. */
void api_events_publish(api_call_t *call);

/* wharf.queue.{created,updated,deleted,purged}: event is "queue.created"… */
void api_events_queue(api_t *api, const char *event, const control_queue_t *queue);
/* wharf.consumer.{attached,removed}. */
void api_events_consumer(api_t *api, const char *event, const control_queue_t *queue,
                         const control_consumer_t *consumer);
/* wharf.messages.deadLettered: `count` messages moved from queue `source`
 * to `dead_letter` (the engine's hook, engine_options_t). */
void api_events_dead_lettered(void *context, const uint8_t source[16],
                              const uint8_t dead_letter[16], uint32_t count);

#endif
