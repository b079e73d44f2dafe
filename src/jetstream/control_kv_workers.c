/*
 * control_kv_workers.c — the worker registry in wharf_workers, keyed by
 * <account id>.<script name> (create-if-absent makes a script name unique
 * per account across nodes). The signing secret is stored with the worker,
 * as in SQLite, because every node's push dispatcher signs with it; it is
 * never logged.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static void worker_key(const char *account_id, const char *script_name, char out[200]) {
  snprintf(out, 200, "%s.%s", account_id, script_name);
}

static void worker_from_json(const json_t *v, control_worker_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "account_id", out->account_id, sizeof out->account_id);
  control_kv__copy(v, "script_name", out->script_name, sizeof out->script_name);
  control_kv__copy(v, "url", out->url, sizeof out->url);
  control_kv__copy(v, "secret", out->secret, sizeof out->secret);
  out->timeout_ms = (uint32_t)control_kv__u64(v, "timeout_ms");
  out->created_ms = control_kv__u64(v, "created_ms");
}

int jetstream_control_worker_register(jetstream_control_t *c, const control_worker_t *in,
                                      control_worker_t *out) {
  int status = control_kv__exists(c, JETSTREAM_CONTROL_ACCOUNTS, in->account_id);
  if (status) return status;
  char key[200];
  worker_key(in->account_id, in->script_name, key);
  if (!control_kv__key_ok(key)) return CONTROL_ERR_INVALID;
  control_worker_t w = *in;
  crypto_random_hex(w.secret, CONTROL_WORKER_SECRET_LEN / 2);
  if (!w.timeout_ms) w.timeout_ms = CONTROL_WORKER_DEFAULT_TIMEOUT_MS;
  w.created_ms = clock_now_ms();
  json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "account_id", w.account_id,
                        "script_name", w.script_name, "url", w.url, "secret", w.secret,
                        "timeout_ms", (int)w.timeout_ms, "created_ms", (json_int_t)w.created_ms);
  status = control_kv__create(c, JETSTREAM_CONTROL_WORKERS, key, v);
  if (!status && out) *out = w;
  crypto_wipe(&w, sizeof w);
  return status;
}

int jetstream_control_worker_get(jetstream_control_t *c, const char *account_id,
                                 const char *script_name, control_worker_t *out) {
  char key[200];
  worker_key(account_id, script_name, key);
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_WORKERS, key, &v);
  if (!status && out) worker_from_json(v, out);
  json_decref(v);
  return status;
}

typedef struct {
  void (*fn)(void *arg, const control_worker_t *);
  void *arg;
} worker_each_t;

static void worker_each(void *arg, const char *key, json_t *v) {
  (void)key;
  worker_each_t *each = arg;
  control_worker_t w;
  worker_from_json(v, &w);
  each->fn(each->arg, &w);
  crypto_wipe(&w, sizeof w);
}

int jetstream_control_worker_list(jetstream_control_t *c, const char *account_id,
                                  void (*fn)(void *arg, const control_worker_t *), void *arg) {
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%s.", account_id);
  worker_each_t each = {fn, arg};
  return control_kv__each(c, JETSTREAM_CONTROL_WORKERS, prefix, worker_each, &each);
}

int jetstream_control_worker_delete(jetstream_control_t *c, const char *account_id,
                                    const char *script_name) {
  char key[200];
  worker_key(account_id, script_name, key);
  return control_kv__delete(c, JETSTREAM_CONTROL_WORKERS, key);
}
