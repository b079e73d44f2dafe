/*
 * tokens.c — API tokens. A token is a random secret shown once; the database
 * keeps only its SHA-256, so a copy of wharf.db lets nobody in. SHA-256 (not
 * a slow password hash) is right here: the secrets are 240 random bits, not
 * guessable passwords, and authentication runs on every request.
 *
 * Authentication hashes the secret and looks the hash up, first in a small
 * in-memory cache of recent successes, then through a prepared statement on
 * the unique index. Revoking a token empties the cache, so a revoked token
 * stops working on the next request.
 *
 * A token may carry a validity window (not_before / expires_on, as
 * Cloudflare's tokens do); it is stored and returned here, and enforced by
 * the router's authentication on every request against clock_now_ms().
 */
#include <stdio.h>
#include <string.h>

#include "control/control_internal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crypto.h"

/* 30 random bytes are 40 base64url characters, the length of a Cloudflare
 * API token. */
#define TOKEN_RANDOM_BYTES 30
#define TOKEN_SECRET_MAX 64

#define TOKEN_COLUMNS "id, name, account_id, permissions, created_ms, not_before_ms, expires_on_ms"

static void token_from_row(sqlite3_stmt *statement, control_token_t *out) {
  control_column_text(statement, 0, out->id, sizeof out->id);
  control_column_text(statement, 1, out->name, sizeof out->name);
  control_column_text(statement, 2, out->account_id, sizeof out->account_id);
  out->permissions = (unsigned)sqlite3_column_int(statement, 3);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 4);
  out->not_before_ms = (uint64_t)sqlite3_column_int64(statement, 5); /* NULL reads as 0 */
  out->expires_on_ms = (uint64_t)sqlite3_column_int64(statement, 6);
}

static void token_bind_ms_or_null(sqlite3_stmt *statement, int index, uint64_t ms) {
  if (ms) sqlite3_bind_int64(statement, index, (sqlite3_int64)ms);
  else sqlite3_bind_null(statement, index);
}

static void token_secret_generate(char secret_out[65]) {
  uint8_t random[TOKEN_RANDOM_BYTES];
  buf_t encoded = BUF_INIT;
  crypto_random_bytes(random, sizeof random);
  crypto_base64url_encode(random, sizeof random, &encoded);
  snprintf(secret_out, TOKEN_SECRET_MAX + 1, "%s", encoded.data);
  buf_free(&encoded);
}

int control_token_secret_take(const char *secret_or_null, char secret_out[65]) {
  if (!secret_or_null) {
    token_secret_generate(secret_out);
    return CONTROL_OK;
  }
  size_t len = strlen(secret_or_null);
  if (len == 0 || len > TOKEN_SECRET_MAX) return CONTROL_ERR_INVALID;
  memcpy(secret_out, secret_or_null, len + 1);
  return CONTROL_OK;
}

static int token_insert(control_t *control, const control_token_t *token, const char *hash) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_TOKEN_INSERT,
      "INSERT INTO tokens (" TOKEN_COLUMNS ", secret_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, token->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, token->name, -1, SQLITE_STATIC);
  control_bind_text_or_null(statement, 3, token->account_id);
  sqlite3_bind_int(statement, 4, (int)token->permissions);
  sqlite3_bind_int64(statement, 5, (sqlite3_int64)token->created_ms);
  token_bind_ms_or_null(statement, 6, token->not_before_ms);
  token_bind_ms_or_null(statement, 7, token->expires_on_ms);
  sqlite3_bind_text(statement, 8, hash, -1, SQLITE_STATIC);
  return control_step_done(control, statement, "creating a token");
}

int control_token_create(control_t *control, const char *account_id_or_empty,
                         unsigned permissions, const char *name, const char *secret_or_null,
                         char secret_out[65], control_token_t *out,
                         const control_token_window_t *window_or_null) {
  if (control->cluster) return jetstream_control_token_create(control->cluster, account_id_or_empty, permissions, name,
                                          secret_or_null, secret_out, out, window_or_null);
  char secret[TOKEN_SECRET_MAX + 1];
  if (control_token_secret_take(secret_or_null, secret) != CONTROL_OK) return CONTROL_ERR_INVALID;
  control_token_t token = {.permissions = permissions, .created_ms = clock_now_ms()};
  if (window_or_null) {
    token.not_before_ms = window_or_null->not_before_ms;
    token.expires_on_ms = window_or_null->expires_on_ms;
  }
  crypto_random_hex(token.id, CONTROL_ID_LEN / 2);
  snprintf(token.name, sizeof token.name, "%s", name);
  snprintf(token.account_id, sizeof token.account_id, "%s",
           account_id_or_empty ? account_id_or_empty : "");
  char hash[65];
  crypto_sha256_hex(secret, strlen(secret), hash);
  int rc = token_insert(control, &token, hash);
  if (rc == CONTROL_OK) {
    if (secret_out) memcpy(secret_out, secret, strlen(secret) + 1);
    if (out) *out = token;
  }
  return rc;
}

/* The slot a hash maps to: a hash's bytes are uniformly random, so its
 * first two make a good index. */
static control_token_cache_entry_t *token_cache_slot(control_t *control, const char *hash) {
  uint8_t prefix[2];
  crypto_hex_decode(hash, sizeof prefix, prefix);
  return &control->token_cache[(prefix[0] << 8 | prefix[1]) % CONTROL_TOKEN_CACHE_SIZE];
}

void control_token_cache_clear(control_t *control) {
  memset(control->token_cache, 0, sizeof control->token_cache);
}

static int token_lookup(control_t *control, const char *hash, control_token_t *out) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_TOKEN_BY_HASH,
      "SELECT " TOKEN_COLUMNS " FROM tokens WHERE secret_sha256 = ?1");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, hash, -1, SQLITE_STATIC);
  int rc = control_step_row(control, statement, "authenticating a token");
  if (rc == CONTROL_OK) token_from_row(statement, out);
  sqlite3_reset(statement);
  return rc;
}

int control_token_authenticate(control_t *control, const char *secret, control_token_t *out) {
  char hash[65];
  crypto_sha256_hex(secret, strlen(secret), hash);
  control_token_cache_entry_t *slot = token_cache_slot(control, hash);
  if (crypto_equal(slot->hash, hash, sizeof hash)) {
    if (out) *out = slot->token;
    return CONTROL_OK;
  }
  control_token_t token;
  int rc = control->cluster ? jetstream_control_token_authenticate(control->cluster, secret, &token)
                            : token_lookup(control, hash, &token);
  if (rc != CONTROL_OK) return rc;
  memcpy(slot->hash, hash, sizeof hash);
  slot->token = token;
  if (out) *out = token;
  return CONTROL_OK;
}

int control_token_list(control_t *control, void (*fn)(void *arg, const control_token_t *),
                       void *arg) {
  if (control->cluster) return jetstream_control_token_list(control->cluster, fn, arg);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_TOKEN_LIST, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY seq");
  if (!statement) return CONTROL_ERR_DATABASE;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    control_token_t token;
    token_from_row(statement, &token);
    fn(arg, &token);
  }
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing tokens");
  sqlite3_reset(statement);
  return result;
}

int control_token_revoke(control_t *control, const char *token_id) {
  if (control->cluster) return jetstream_control_token_revoke(control->cluster, token_id);
  sqlite3_stmt *statement =
      control_statement(control, STATEMENT_TOKEN_DELETE, "DELETE FROM tokens WHERE id = ?1");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, token_id, -1, SQLITE_STATIC);
  int rc = control_step_done(control, statement, "revoking a token");
  if (rc != CONTROL_OK) return rc;
  control_token_cache_clear(control);
  return sqlite3_changes(control->db) > 0 ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}
