/*
 * objects.h — the API's Queue and Consumer objects (the shapes of seed 004's
 * schema), shared by the handlers that answer with them: queues.c,
 * consumers.c and the audit records they write.
 */
#ifndef WHARF_API_OBJECTS_H
#define WHARF_API_OBJECTS_H

#include <jansson.h>

#include "api/api.h"

/* The Queue object of row, with its consumer and producers as they are now. */
json_t *api_queue_to_json(api_t *api, const control_queue_t *row);
json_t *api_consumer_to_json(const control_consumer_t *consumer, const control_queue_t *queue);

#endif
