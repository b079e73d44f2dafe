/*
 * control_kv_tokens.c — API tokens in wharf_tokens, keyed by the SHA-256 of
 * the secret (the secret itself is never stored), so authenticating is one
 * KV get. Listing and revoking by token id read the whole bucket: they are
 * rare administration calls.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static json_t *token_to_json(const control_token_t *t) {
  return json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "id", t->id, "name", t->name,
                   "account_id", t->account_id, "permissions", (int)t->permissions, "created_ms",
                   (json_int_t)t->created_ms, "not_before_ms", (json_int_t)t->not_before_ms,
                   "expires_on_ms", (json_int_t)t->expires_on_ms);
}

static void token_from_json(const json_t *v, control_token_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "id", out->id, sizeof out->id);
  control_kv__copy(v, "name", out->name, sizeof out->name);
  control_kv__copy(v, "account_id", out->account_id, sizeof out->account_id);
  out->permissions = (unsigned)control_kv__u64(v, "permissions");
  out->created_ms = control_kv__u64(v, "created_ms");
  out->not_before_ms = control_kv__u64(v, "not_before_ms");
  out->expires_on_ms = control_kv__u64(v, "expires_on_ms");
}

int jetstream_control_token_create(jetstream_control_t *c, const char *account_id_or_empty,
                                   unsigned permissions, const char *name,
                                   const char *secret_or_null, char secret_out[65],
                                   control_token_t *out, const control_token_window_t *window) {
  char secret[65];
  if (control_token_secret_take(secret_or_null, secret) != CONTROL_OK) return CONTROL_ERR_INVALID;
  const char *account = account_id_or_empty ? account_id_or_empty : "";
  int status = *account ? control_kv__exists(c, JETSTREAM_CONTROL_ACCOUNTS, account) : CONTROL_OK;
  if (status) return status;
  control_token_t token = {.permissions = permissions, .created_ms = clock_now_ms()};
  if (window) token.not_before_ms = window->not_before_ms, token.expires_on_ms = window->expires_on_ms;
  crypto_random_hex(token.id, CONTROL_ID_LEN / 2);
  snprintf(token.name, sizeof token.name, "%s", name);
  snprintf(token.account_id, sizeof token.account_id, "%s", account);
  char hash[65];
  crypto_sha256_hex(secret, strlen(secret), hash);
  status = control_kv__create(c, JETSTREAM_CONTROL_TOKENS, hash, token_to_json(&token));
  if (!status) {
    if (secret_out) memcpy(secret_out, secret, strlen(secret) + 1);
    if (out) *out = token;
  }
  crypto_wipe(secret, sizeof secret);
  return status;
}

int jetstream_control_token_authenticate(jetstream_control_t *c, const char *secret,
                                         control_token_t *out) {
  char hash[65];
  crypto_sha256_hex(secret, strlen(secret), hash);
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_TOKENS, hash, &v);
  if (!status && out) token_from_json(v, out);
  json_decref(v);
  return status;
}

typedef struct {
  void (*fn)(void *arg, const control_token_t *);
  void *arg;
  const char *revoke_id; /* revoking: the id looked for */
  char revoke_key[65];   /* its hash, once found */
} token_each_t;

static void token_each(void *arg, const char *key, json_t *v) {
  token_each_t *each = arg;
  control_token_t token;
  token_from_json(v, &token);
  if (each->fn) each->fn(each->arg, &token);
  else if (strcmp(token.id, each->revoke_id) == 0)
    snprintf(each->revoke_key, sizeof each->revoke_key, "%s", key);
}

int jetstream_control_token_list(jetstream_control_t *c,
                                 void (*fn)(void *arg, const control_token_t *), void *arg) {
  token_each_t each = {.fn = fn, .arg = arg};
  return control_kv__each(c, JETSTREAM_CONTROL_TOKENS, "", token_each, &each);
}

int jetstream_control_token_revoke(jetstream_control_t *c, const char *token_id) {
  token_each_t each = {.revoke_id = token_id};
  int status = control_kv__each(c, JETSTREAM_CONTROL_TOKENS, "", token_each, &each);
  if (status) return status;
  if (!each.revoke_key[0]) return CONTROL_ERR_NOT_FOUND;
  return control_kv__delete(c, JETSTREAM_CONTROL_TOKENS, each.revoke_key);
}
