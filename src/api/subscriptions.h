/*
 * subscriptions.h — event subscriptions' REST resource (subscriptions.c).
 */
#ifndef WHARF_API_SUBSCRIPTIONS_H
#define WHARF_API_SUBSCRIPTIONS_H

#include "api/api.h"
#include "control/subscriptions.h"

json_t *api_subscription_to_json(const control_subscription_t *subscription);

void api_subscriptions_create(api_call_t *call);
void api_subscriptions_list(api_call_t *call);
void api_subscriptions_get(api_call_t *call);
void api_subscriptions_patch(api_call_t *call);
void api_subscriptions_delete(api_call_t *call);

#endif
