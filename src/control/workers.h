/*
 * workers.h — the worker registry: push consumers' endpoints (DESIGN.md §2).
 *
 * In Wharf a worker is a named HTTP endpoint registered on an account: a
 * script name (unique per account, what a `worker` consumer refers to), the
 * URL batches are POSTed to, the secret that signs them and the invocation
 * time limit. The secret is generated here, shown once by the API, and
 * stored as is because the dispatcher needs it to sign (unlike API tokens,
 * which are only ever verified and so are stored hashed). Never log it.
 *
 * The table lives beside the other control tables in wharf.db and is deleted
 * with its account; it is created by control_workers_init from control_open.
 */
#ifndef WHARF_CONTROL_WORKERS_H
#define WHARF_CONTROL_WORKERS_H

#include <stdint.h>

#include "control/control.h"

#define CONTROL_WORKER_DEFAULT_TIMEOUT_MS (15u * 60u * 1000u)
#define CONTROL_WORKER_URL_MAX 1024
#define CONTROL_WORKER_SECRET_LEN 64 /* hex characters: 32 random bytes */

typedef struct {
  char account_id[33];
  char script_name[128];
  char url[CONTROL_WORKER_URL_MAX];
  char secret[CONTROL_WORKER_SECRET_LEN + 1];
  uint32_t timeout_ms;
  uint64_t created_ms;
} control_worker_t;

/* Creates the workers table if it is missing (idempotent). */
int control_workers_init(control_t *control);

/* Registers in->script_name on in->account_id with in->url and
 * in->timeout_ms (0 = the default); generates the secret. EXISTS if the
 * account already has that script name, NOT_FOUND if the account is missing. */
int control_worker_register(control_t *control, const control_worker_t *in,
                            control_worker_t *out);
int control_worker_get(control_t *control, const char *account_id, const char *script_name,
                       control_worker_t *out);
/* The account's workers in registration order. */
int control_worker_list(control_t *control, const char *account_id,
                        void (*fn)(void *arg, const control_worker_t *), void *arg);
int control_worker_delete(control_t *control, const char *account_id, const char *script_name);

#endif
