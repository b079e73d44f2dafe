/*
 * events.h — delivering events to the subscriptions that want them
 * (events.c): the publish endpoint, a Wharf extension (docs/extensions.md).
 * A published event is durable in every subscribed queue before the
 * publish is answered.
 */
#ifndef WHARF_API_EVENTS_H
#define WHARF_API_EVENTS_H

#include "api/api.h"

/* POST /accounts/{a}/event_subscriptions/events. */
void api_events_publish(api_call_t *call);

#endif
