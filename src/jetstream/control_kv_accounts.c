/*
 * control_kv_accounts.c — accounts in wharf_accounts, keyed by id.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static void account_from_json(const json_t *v, control_account_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "id", out->id, sizeof out->id);
  control_kv__copy(v, "name", out->name, sizeof out->name);
  out->created_ms = control_kv__u64(v, "created_ms");
}

int jetstream_control_account_create(jetstream_control_t *c, const char *id_or_null,
                                     const char *name, control_account_t *out) {
  control_account_t account = {.created_ms = clock_now_ms()};
  if (id_or_null) snprintf(account.id, sizeof account.id, "%s", id_or_null);
  else crypto_random_hex(account.id, CONTROL_ID_LEN / 2);
  if (!control_kv__key_ok(account.id)) return CONTROL_ERR_INVALID;
  snprintf(account.name, sizeof account.name, "%s", name);
  json_t *v = json_pack("{s:s, s:s, s:I}", "id", account.id, "name", account.name, "created_ms",
                        (json_int_t)account.created_ms);
  int status = control_kv__create(c, JETSTREAM_CONTROL_ACCOUNTS, account.id, v);
  if (!status && out) *out = account;
  return status;
}

int jetstream_control_account_get(jetstream_control_t *c, const char *id, control_account_t *out) {
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_ACCOUNTS, id, &v);
  if (!status && out) account_from_json(v, out);
  json_decref(v);
  return status;
}

typedef struct {
  void (*fn)(void *arg, const control_account_t *);
  void *arg;
} account_each_t;

static void account_each(void *arg, const char *key, json_t *v) {
  (void)key;
  account_each_t *each = arg;
  control_account_t account;
  account_from_json(v, &account);
  each->fn(each->arg, &account);
}

int jetstream_control_account_list(jetstream_control_t *c,
                                   void (*fn)(void *arg, const control_account_t *), void *arg) {
  account_each_t each = {fn, arg};
  return control_kv__each(c, JETSTREAM_CONTROL_ACCOUNTS, "", account_each, &each);
}
