/*
 * consumers.h — the Consumer object and its defaults (seed 004,
 * "Configuration" and "Pull consumers").
 */
#ifndef WHARF_API_CONSUMERS_H
#define WHARF_API_CONSUMERS_H

#include <jansson.h>

#include "control/control.h"

#define CONSUMER_DEFAULT_BATCH_SIZE 10
#define CONSUMER_DEFAULT_MAX_RETRIES 3
#define CONSUMER_DEFAULT_MAX_WAIT_MS 5000
#define CONSUMER_DEFAULT_VISIBILITY_MS 30000

json_t *api_consumer_to_json(const control_consumer_t *consumer, const control_queue_t *queue);

#endif
