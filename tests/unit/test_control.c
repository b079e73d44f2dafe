/*
 * test_control.c — the control plane against a real SQLite file in a fresh
 * temporary directory per test: bootstrap (with and without environment),
 * tokens, queues, consumers, limits, cascades and reopening.
 */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/control.h"
#include "util/buf.h"
#include "util/crypto.h"

typedef struct {
  char dir[64];
  control_t *control;
} fixture_t;

static int fixture_setup(void **state) {
  fixture_t *f = xcalloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/wharf-control-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  unsetenv("WHARF_ACCOUNT_ID");
  unsetenv("WHARF_API_TOKEN");
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  *state = f;
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st, (void)type, (void)ftw;
  return remove(path);
}

static int fixture_teardown(void **state) {
  fixture_t *f = *state;
  control_close(f->control);
  nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
  free(f);
  unsetenv("WHARF_ACCOUNT_ID");
  unsetenv("WHARF_API_TOKEN");
  return 0;
}

static void fixture_reopen(fixture_t *f) {
  control_close(f->control);
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
}

static char *path_in(const fixture_t *f, const char *name) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/%s", f->dir, name);
  return buf_detach(&path);
}

/* The whole file, or NULL if it does not exist. */
static char *file_read(const char *path, size_t *len_out) {
  FILE *file = fopen(path, "rb");
  if (!file) return NULL;
  buf_t text = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) buf_append(&text, chunk, n);
  fclose(file);
  buf_reserve(&text, 1);
  if (len_out) *len_out = text.len;
  return buf_detach(&text);
}

/* Runs control_bootstrap with stdout captured; returns what it printed. */
static char *bootstrap_captured(fixture_t *f, int *rc_out) {
  char *capture = path_in(f, "stdout.txt");
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, STDOUT_FILENO);
  close(fd);
  *rc_out = control_bootstrap(f->control, f->dir);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  char *printed = file_read(capture, NULL);
  unlink(capture);
  free(capture);
  return printed;
}

static void count_account(void *arg, const control_account_t *account) {
  (void)account;
  (*(int *)arg)++;
}

static int account_count(fixture_t *f) {
  int count = 0;
  assert_int_equal(control_account_list(f->control, count_account, &count), CONTROL_OK);
  return count;
}

/* Value of "KEY=value\n" in text, copied into out. */
static void env_line_value(const char *text, const char *key, char *out, size_t cap) {
  buf_t prefix = BUF_INIT;
  buf_printf(&prefix, "%s=", key);
  const char *line = strstr(text, prefix.data);
  assert_non_null(line);
  line += prefix.len;
  size_t len = strcspn(line, "\n");
  assert_true(len < cap);
  memcpy(out, line, len);
  out[len] = '\0';
  buf_free(&prefix);
}

static void test_bootstrap_generates_credentials(void **state) {
  fixture_t *f = *state;
  int rc;
  char *printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_int_equal(account_count(f), 1);

  char *credentials_path = path_in(f, "credentials");
  struct stat st;
  assert_int_equal(stat(credentials_path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *credentials = file_read(credentials_path, NULL);
  char account_id[64], secret[80];
  env_line_value(credentials, "WHARF_ACCOUNT_ID", account_id, sizeof account_id);
  env_line_value(credentials, "WHARF_API_TOKEN", secret, sizeof secret);
  assert_int_equal(strlen(account_id), 32);
  assert_int_equal(strlen(secret), 40);
  assert_int_equal(strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 40);

  control_account_t account;
  assert_int_equal(control_account_get(f->control, account_id, &account), CONTROL_OK);
  assert_string_equal(account.name, "default");
  control_token_t token;
  assert_int_equal(control_token_authenticate(f->control, secret, &token), CONTROL_OK);
  assert_string_equal(token.account_id, "");
  assert_int_equal(token.permissions, PERMISSION_READ | PERMISSION_WRITE);

  buf_t expected = BUF_INIT;
  buf_printf(&expected, "account id: %s\napi token: %s\n", account_id, secret);
  assert_non_null(strstr(printed, expected.data));
  buf_free(&expected);
  free(printed);

  /* A second start changes nothing and prints nothing. */
  printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_string_equal(printed, "");
  assert_int_equal(account_count(f), 1);
  free(printed);
  free(credentials);
  free(credentials_path);
}

static void test_bootstrap_from_env(void **state) {
  fixture_t *f = *state;
  const char *account_id = "0123456789abcdef0123456789abcdef";
  const char *secret = "operator-chosen-secret-value-1234";
  setenv("WHARF_ACCOUNT_ID", account_id, 1);
  setenv("WHARF_API_TOKEN", secret, 1);
  int rc;
  char *printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_non_null(strstr(printed, account_id));
  assert_null(strstr(printed, secret));
  assert_null(strstr(printed, "api token"));
  free(printed);

  /* Nothing was generated: no credentials file. */
  char *credentials_path = path_in(f, "credentials");
  assert_int_equal(access(credentials_path, F_OK), -1);
  free(credentials_path);

  assert_int_equal(control_account_get(f->control, account_id, NULL), CONTROL_OK);
  control_token_t token;
  assert_int_equal(control_token_authenticate(f->control, secret, &token), CONTROL_OK);
  assert_string_equal(token.account_id, "");

  /* Restart with a different token: it is added, the old one still works. */
  fixture_reopen(f);
  setenv("WHARF_API_TOKEN", "second-operator-secret", 1);
  printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_string_equal(printed, "");
  free(printed);
  assert_int_equal(account_count(f), 1);
  assert_int_equal(control_token_authenticate(f->control, "second-operator-secret", &token),
                   CONTROL_OK);
  assert_int_equal(token.permissions, PERMISSION_READ | PERMISSION_WRITE);
  assert_string_equal(token.account_id, "");
  assert_int_equal(control_token_authenticate(f->control, secret, NULL), CONTROL_OK);
}

static void test_bootstrap_env_token_only(void **state) {
  fixture_t *f = *state;
  const char *secret = "operator-token-without-account-id";
  setenv("WHARF_API_TOKEN", secret, 1);
  int rc;
  char *printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_null(strstr(printed, secret));
  free(printed);

  /* The generated account id is saved; the given token is not. */
  char *credentials_path = path_in(f, "credentials");
  struct stat st;
  assert_int_equal(stat(credentials_path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *credentials = file_read(credentials_path, NULL);
  char account_id[64];
  env_line_value(credentials, "WHARF_ACCOUNT_ID", account_id, sizeof account_id);
  assert_int_equal(control_account_get(f->control, account_id, NULL), CONTROL_OK);
  assert_null(strstr(credentials, "WHARF_API_TOKEN"));
  assert_null(strstr(credentials, secret));
  free(credentials);
  free(credentials_path);
}

static void test_bootstrap_rejects_bad_account_id(void **state) {
  fixture_t *f = *state;
  setenv("WHARF_ACCOUNT_ID", "0123456789ABCDEF0123456789ABCDEF", 1);
  int rc;
  char *printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_ERR_INVALID);
  assert_string_equal(printed, "");
  free(printed);
  assert_int_equal(account_count(f), 0);
  setenv("WHARF_ACCOUNT_ID", "abc", 1);
  printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_ERR_INVALID);
  free(printed);
  assert_int_equal(account_count(f), 0);
}

typedef struct {
  int count;
  control_token_t tokens[8];
} token_list_t;

static void collect_token(void *arg, const control_token_t *token) {
  token_list_t *list = arg;
  if (list->count < 8) list->tokens[list->count] = *token;
  list->count++;
}

static void test_tokens(void **state) {
  fixture_t *f = *state;
  control_account_t account;
  assert_int_equal(control_account_create(f->control, NULL, "acme", &account), CONTROL_OK);

  char reader_secret[65], admin_secret[65];
  control_token_t reader, admin, found;
  assert_int_equal(control_token_create(f->control, account.id, PERMISSION_READ, "reader", NULL,
                                        reader_secret, &reader, NULL),
                   CONTROL_OK);
  assert_int_equal(strlen(reader_secret), 40);
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ | PERMISSION_WRITE,
                                        "admin", "given-secret", admin_secret, &admin, NULL),
                   CONTROL_OK);
  assert_string_equal(admin_secret, "given-secret");

  assert_int_equal(control_token_authenticate(f->control, reader_secret, &found), CONTROL_OK);
  assert_string_equal(found.id, reader.id);
  assert_string_equal(found.account_id, account.id);
  assert_string_equal(found.name, "reader");
  assert_int_equal(found.permissions, PERMISSION_READ);
  assert_int_equal(control_token_authenticate(f->control, "given-secret", &found), CONTROL_OK);
  assert_string_equal(found.id, admin.id);
  assert_string_equal(found.account_id, "");
  assert_int_equal(found.permissions, PERMISSION_READ | PERMISSION_WRITE);
  assert_int_equal(found.not_before_ms, 0);
  assert_int_equal(found.expires_on_ms, 0);

  /* A validity window is stored with the token and read back, also past
   * the authentication cache (a fresh open). */
  char windowed_secret[65];
  control_token_window_t window = {.not_before_ms = 1000, .expires_on_ms = 4102444800000};
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "windowed", NULL, windowed_secret,
                                        NULL, &window),
                   CONTROL_OK);
  control_close(f->control);
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  assert_int_equal(control_token_authenticate(f->control, windowed_secret, &found), CONTROL_OK);
  assert_int_equal(found.not_before_ms, 1000);
  assert_int_equal(found.expires_on_ms, 4102444800000);
  assert_int_equal(control_token_revoke(f->control, found.id), CONTROL_OK);

  /* Wrong secrets, including a prefix and a case change of a real one. */
  assert_int_equal(control_token_authenticate(f->control, "nope", &found), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_token_authenticate(f->control, "", &found), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_token_authenticate(f->control, "given-secre", &found),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_token_authenticate(f->control, "GIVEN-SECRET", &found),
                   CONTROL_ERR_NOT_FOUND);

  /* Bad inputs change nothing. */
  char secret[65];
  assert_int_equal(control_token_create(f->control, "ffffffffffffffffffffffffffffffff",
                                        PERMISSION_READ, "orphan", NULL, secret, NULL, NULL),
                   CONTROL_ERR_NOT_FOUND);
  char long_secret[66];
  memset(long_secret, 'x', 65);
  long_secret[65] = '\0';
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "long", long_secret,
                                        secret, NULL, NULL),
                   CONTROL_ERR_INVALID);
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "dup", "given-secret",
                                        secret, NULL, NULL),
                   CONTROL_ERR_EXISTS);

  token_list_t list = {0};
  assert_int_equal(control_token_list(f->control, collect_token, &list), CONTROL_OK);
  assert_int_equal(list.count, 2);
  assert_string_equal(list.tokens[0].id, reader.id);
  assert_string_equal(list.tokens[1].id, admin.id);

  /* Revoke beats the authentication cache (both tokens were just looked up). */
  assert_int_equal(control_token_revoke(f->control, reader.id), CONTROL_OK);
  assert_int_equal(control_token_authenticate(f->control, reader_secret, &found),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_token_authenticate(f->control, "given-secret", &found), CONTROL_OK);
  assert_int_equal(control_token_revoke(f->control, reader.id), CONTROL_ERR_NOT_FOUND);
  list.count = 0;
  assert_int_equal(control_token_list(f->control, collect_token, &list), CONTROL_OK);
  assert_int_equal(list.count, 1);
}

static bool memory_contains(const char *haystack, size_t len, const char *needle) {
  return haystack && memmem(haystack, len, needle, strlen(needle)) != NULL;
}

static void test_token_secret_not_stored(void **state) {
  fixture_t *f = *state;
  char secret[65];
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "t", NULL, secret, NULL, NULL),
                   CONTROL_OK);
  char hash[65];
  crypto_sha256_hex(secret, strlen(secret), hash);

  char *db_path = path_in(f, "wharf.db");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *statement;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM tokens", -1, &statement, NULL),
                   SQLITE_OK);
  int rows = 0;
  bool hash_seen = false;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    rows++;
    for (int col = 0; col < sqlite3_column_count(statement); col++) {
      const char *value = (const char *)sqlite3_column_text(statement, col);
      if (!value) continue;
      assert_null(strstr(value, secret));
      if (strcmp(value, hash) == 0) hash_seen = true;
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  assert_int_equal(rows, 1);
  assert_true(hash_seen);

  /* Nor anywhere in the files' bytes (the WAL holds fresh pages). */
  const char *files[] = {"wharf.db", "wharf.db-wal"};
  for (size_t i = 0; i < 2; i++) {
    char *path = path_in(f, files[i]);
    size_t len = 0;
    char *bytes = file_read(path, &len);
    assert_false(memory_contains(bytes, len, secret));
    free(bytes);
    free(path);
  }
  free(db_path);
}

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_token_authentication_rate(void **state) {
  fixture_t *f = *state;
  char secrets[4][65];
  for (int i = 0; i < 4; i++)
    assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "t", NULL, secrets[i],
                                          NULL, NULL),
                     CONTROL_OK);
  enum { ROUNDS = 100000 };
  control_token_t token;
  double start = seconds_now();
  for (int i = 0; i < ROUNDS; i++)
    assert_int_equal(control_token_authenticate(f->control, secrets[i % 4], &token), CONTROL_OK);
  double elapsed = seconds_now() - start;
  double rate = ROUNDS / elapsed;
  print_message("token authentication: %.0f/s (%d in %.3f s)\n", rate, ROUNDS, elapsed);
  /* A measurement, not a check (the target, 200,000/s, is a benchmark's:
   * a timed assertion fails under sanitizers or load, as it did in CI). */

  /* Unknown secrets always reach SQLite; they must stay cheap too. */
  start = seconds_now();
  for (int i = 0; i < ROUNDS / 10; i++)
    assert_int_equal(control_token_authenticate(f->control, "unknown-secret", &token),
                     CONTROL_ERR_NOT_FOUND);
  elapsed = seconds_now() - start;
  print_message("token rejection: %.0f/s\n", ROUNDS / 10 / elapsed);
}

static control_queue_t queue_named(const char *account_id, const char *name) {
  control_queue_t queue = {.delivery_delay_s = 0, .message_retention_s = 345600};
  snprintf(queue.account_id, sizeof queue.account_id, "%s", account_id);
  snprintf(queue.name, sizeof queue.name, "%s", name);
  return queue;
}

typedef struct {
  int count;
  char names[16][64];
} queue_list_t;

static void collect_queue(void *arg, const control_queue_t *queue) {
  queue_list_t *list = arg;
  if (list->count < 16) snprintf(list->names[list->count], 64, "%s", queue->name);
  list->count++;
}

static void test_queue_create_get(void **state) {
  fixture_t *f = *state;
  control_account_t a, b;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  assert_int_equal(control_account_create(f->control, NULL, "b", &b), CONTROL_OK);

  control_queue_t in = queue_named(a.id, "orders");
  in.delivery_delay_s = 30;
  in.message_retention_s = 86400;
  in.delivery_paused = true;
  control_queue_t created, got;
  assert_int_equal(control_queue_create(f->control, &in, &created), CONTROL_OK);
  assert_int_equal(strlen(created.id), 32);
  assert_int_equal(strspn(created.id, "0123456789abcdef"), 32);
  assert_true(created.created_ms > 0);
  assert_int_equal(created.modified_ms, created.created_ms);

  assert_int_equal(control_queue_get(f->control, a.id, created.id, &got), CONTROL_OK);
  assert_string_equal(got.name, "orders");
  assert_string_equal(got.account_id, a.id);
  assert_int_equal(got.delivery_delay_s, 30);
  assert_int_equal(got.message_retention_s, 86400);
  assert_true(got.delivery_paused);
  assert_int_equal(got.created_ms, created.created_ms);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "orders", &got), CONTROL_OK);
  assert_string_equal(got.id, created.id);

  /* Another account sees nothing of it, and may use the same name. */
  assert_int_equal(control_queue_get(f->control, b.id, created.id, &got), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_queue_get_by_name(f->control, b.id, "orders", &got),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_queue_delete(f->control, b.id, created.id), CONTROL_ERR_NOT_FOUND);
  in = queue_named(b.id, "orders");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);

  in = queue_named(a.id, "orders");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_ERR_EXISTS);
  in = queue_named("ffffffffffffffffffffffffffffffff", "x");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_ERR_NOT_FOUND);
  uint64_t total = 0;
  queue_list_t list = {0};
  assert_int_equal(control_queue_list(f->control, a.id, NULL, 0, 1, 100, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(total, 1);
}

static void test_queue_list_pages_and_names(void **state) {
  fixture_t *f = *state;
  control_account_t a, b;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  assert_int_equal(control_account_create(f->control, NULL, "b", &b), CONTROL_OK);
  /* Names out of alphabetical order: lists follow creation order. */
  const char *names[] = {"q-e", "q-a", "q-d", "q-b", "q-c"};
  for (int i = 0; i < 5; i++) {
    control_queue_t in = queue_named(a.id, names[i]);
    assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  }
  control_queue_t other = queue_named(b.id, "q-a");
  assert_int_equal(control_queue_create(f->control, &other, NULL), CONTROL_OK);

  uint64_t total = 0;
  queue_list_t list = {0};
  assert_int_equal(control_queue_list(f->control, a.id, NULL, 0, 1, 2, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(total, 5);
  assert_int_equal(list.count, 2);
  assert_string_equal(list.names[0], "q-e");
  assert_string_equal(list.names[1], "q-a");
  list.count = 0;
  assert_int_equal(control_queue_list(f->control, a.id, NULL, 0, 3, 2, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(list.count, 1);
  assert_string_equal(list.names[0], "q-c");
  list.count = 0;
  assert_int_equal(control_queue_list(f->control, a.id, NULL, 0, 4, 2, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(list.count, 0);
  assert_int_equal(total, 5);

  const char *filter[] = {"q-c", "q-e", "missing", "q-\"odd"};
  list.count = 0;
  assert_int_equal(control_queue_list(f->control, a.id, filter, 4, 1, 20, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(total, 2);
  assert_int_equal(list.count, 2);
  assert_string_equal(list.names[0], "q-e");
  assert_string_equal(list.names[1], "q-c");
  list.count = 0;
  assert_int_equal(control_queue_list(f->control, a.id, filter + 2, 1, 1, 20, collect_queue,
                                      &list, &total),
                   CONTROL_OK);
  assert_int_equal(total, 0);
  assert_int_equal(list.count, 0);
  list.count = 0;
  assert_int_equal(control_queue_list(f->control, b.id, filter, 4, 1, 20, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(total, 0);

  list.count = 0;
  assert_int_equal(control_queue_list_all(f->control, collect_queue, &list), CONTROL_OK);
  assert_int_equal(list.count, 6);
}

static void test_queue_limit(void **state) {
  fixture_t *f = *state;
  control_account_t a, b;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  assert_int_equal(control_account_create(f->control, NULL, "b", &b), CONTROL_OK);
  double start = seconds_now();
  assert_int_equal(control_transaction_begin(f->control), CONTROL_OK);
  for (int i = 0; i < CONTROL_MAX_QUEUES_PER_ACCOUNT; i++) {
    char name[16];
    snprintf(name, sizeof name, "q%d", i);
    control_queue_t in = queue_named(a.id, name);
    assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  }
  control_queue_t in = queue_named(a.id, "one-too-many");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_ERR_LIMIT);
  assert_int_equal(control_transaction_commit(f->control), CONTROL_OK);
  print_message("created %d queues in %.3f s\n", CONTROL_MAX_QUEUES_PER_ACCOUNT,
                seconds_now() - start);

  /* Outside a transaction too, and nothing was stored by the refusals. */
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_ERR_LIMIT);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "one-too-many", NULL),
                   CONTROL_ERR_NOT_FOUND);
  uint64_t total = 0;
  queue_list_t list = {0};
  assert_int_equal(control_queue_list(f->control, a.id, NULL, 0, 1, 1, collect_queue, &list,
                                      &total),
                   CONTROL_OK);
  assert_int_equal(total, CONTROL_MAX_QUEUES_PER_ACCOUNT);

  /* The limit is per account; deleting one makes room again. */
  in = queue_named(b.id, "one-too-many");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  control_queue_t first;
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "q0", &first), CONTROL_OK);
  assert_int_equal(control_queue_delete(f->control, a.id, first.id), CONTROL_OK);
  in = queue_named(a.id, "one-too-many");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
}

static void test_transaction_rollback(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  control_queue_t in = queue_named(a.id, "kept");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  assert_int_equal(control_transaction_begin(f->control), CONTROL_OK);
  in = queue_named(a.id, "undone");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  char secret[65];
  assert_int_equal(control_token_create(f->control, a.id, PERMISSION_READ, "undone", NULL, secret,
                                        NULL, NULL),
                   CONTROL_OK);
  assert_int_equal(control_token_authenticate(f->control, secret, NULL), CONTROL_OK);
  assert_int_equal(control_transaction_rollback(f->control), CONTROL_OK);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "undone", NULL),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "kept", NULL), CONTROL_OK);
  assert_int_equal(control_token_authenticate(f->control, secret, NULL), CONTROL_ERR_NOT_FOUND);
}

static void test_queue_update(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  control_queue_t in = queue_named(a.id, "first"), first, second;
  assert_int_equal(control_queue_create(f->control, &in, &first), CONTROL_OK);
  in = queue_named(a.id, "second");
  assert_int_equal(control_queue_create(f->control, &in, &second), CONTROL_OK);

  control_queue_t change = second;
  snprintf(change.name, sizeof change.name, "first");
  change.delivery_delay_s = 99;
  assert_int_equal(control_queue_update(f->control, &change), CONTROL_ERR_EXISTS);
  control_queue_t got;
  assert_int_equal(control_queue_get(f->control, a.id, second.id, &got), CONTROL_OK);
  assert_string_equal(got.name, "second");
  assert_int_equal(got.delivery_delay_s, 0);

  usleep(2000);
  snprintf(change.name, sizeof change.name, "renamed");
  change.message_retention_s = 60;
  change.delivery_paused = true;
  assert_int_equal(control_queue_update(f->control, &change), CONTROL_OK);
  assert_true(change.modified_ms > second.created_ms);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "renamed", &got), CONTROL_OK);
  assert_string_equal(got.id, second.id);
  assert_int_equal(got.delivery_delay_s, 99);
  assert_int_equal(got.message_retention_s, 60);
  assert_true(got.delivery_paused);
  assert_int_equal(got.created_ms, second.created_ms);
  assert_int_equal(got.modified_ms, change.modified_ms);
  assert_int_equal(control_queue_get_by_name(f->control, a.id, "second", NULL),
                   CONTROL_ERR_NOT_FOUND);
  /* The freed name is usable again. */
  in = queue_named(a.id, "second");
  assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);

  snprintf(change.id, sizeof change.id, "ffffffffffffffffffffffffffffffff");
  assert_int_equal(control_queue_update(f->control, &change), CONTROL_ERR_NOT_FOUND);
}

static control_consumer_t consumer_full(const char *queue_id) {
  control_consumer_t consumer = {
      .type = CONSUMER_WORKER,
      .batch_size = 50,
      .max_retries = 7,
      .max_wait_time_ms = 2500,
      .max_concurrency = 12,
      .retry_delay_s = 45,
      .visibility_timeout_ms = 60000,
  };
  snprintf(consumer.queue_id, sizeof consumer.queue_id, "%s", queue_id);
  snprintf(consumer.script_name, sizeof consumer.script_name, "my-worker");
  snprintf(consumer.dead_letter_queue, sizeof consumer.dead_letter_queue, "orders-dlq");
  return consumer;
}

static void assert_consumer_equal(const control_consumer_t *a, const control_consumer_t *b) {
  assert_string_equal(a->id, b->id);
  assert_string_equal(a->queue_id, b->queue_id);
  assert_int_equal(a->type, b->type);
  assert_string_equal(a->script_name, b->script_name);
  assert_string_equal(a->dead_letter_queue, b->dead_letter_queue);
  assert_int_equal(a->created_ms, b->created_ms);
  assert_int_equal(a->batch_size, b->batch_size);
  assert_int_equal(a->max_retries, b->max_retries);
  assert_int_equal(a->max_wait_time_ms, b->max_wait_time_ms);
  assert_int_equal(a->max_concurrency, b->max_concurrency);
  assert_int_equal(a->retry_delay_s, b->retry_delay_s);
  assert_int_equal(a->visibility_timeout_ms, b->visibility_timeout_ms);
}

static void test_consumers(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  control_queue_t in = queue_named(a.id, "orders"), queue;
  assert_int_equal(control_queue_create(f->control, &in, &queue), CONTROL_OK);

  assert_int_equal(control_consumer_of_queue(f->control, queue.id, NULL), CONTROL_ERR_NOT_FOUND);
  control_consumer_t consumer = consumer_full(queue.id), created, got;
  assert_int_equal(control_consumer_create(f->control, &consumer, &created), CONTROL_OK);
  assert_int_equal(strlen(created.id), 32);
  assert_true(created.created_ms > 0);
  assert_int_equal(control_consumer_get(f->control, queue.id, created.id, &got), CONTROL_OK);
  assert_consumer_equal(&got, &created);
  assert_int_equal(control_consumer_of_queue(f->control, queue.id, &got), CONTROL_OK);
  assert_consumer_equal(&got, &created);

  /* One per queue, whatever the type. */
  control_consumer_t second = consumer_full(queue.id);
  second.type = CONSUMER_HTTP_PULL;
  assert_int_equal(control_consumer_create(f->control, &second, NULL), CONTROL_ERR_EXISTS);
  second = consumer_full("ffffffffffffffffffffffffffffffff");
  assert_int_equal(control_consumer_create(f->control, &second, NULL), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_consumer_get(f->control, "ffffffffffffffffffffffffffffffff",
                                        created.id, NULL),
                   CONTROL_ERR_NOT_FOUND);

  control_consumer_t change = created;
  change.type = CONSUMER_HTTP_PULL;
  change.script_name[0] = '\0';
  change.dead_letter_queue[0] = '\0';
  change.batch_size = 100;
  change.max_retries = 0;
  change.max_wait_time_ms = 60000;
  change.max_concurrency = 0;
  change.retry_delay_s = 1;
  change.visibility_timeout_ms = 43200000;
  change.created_ms = 1; /* not writable */
  assert_int_equal(control_consumer_update(f->control, &change), CONTROL_OK);
  assert_int_equal(control_consumer_get(f->control, queue.id, created.id, &got), CONTROL_OK);
  change.created_ms = created.created_ms;
  assert_consumer_equal(&got, &change);

  assert_int_equal(control_consumer_delete(f->control, queue.id, created.id), CONTROL_OK);
  assert_int_equal(control_consumer_delete(f->control, queue.id, created.id),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_consumer_update(f->control, &change), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_consumer_create(f->control, &consumer, NULL), CONTROL_OK);
}

static int consumer_rows(fixture_t *f) {
  char *db_path = path_in(f, "wharf.db");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *statement;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM consumers", -1, &statement, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  int rows = sqlite3_column_int(statement, 0);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  free(db_path);
  return rows;
}

static void test_queue_delete_cascades(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  control_queue_t in = queue_named(a.id, "orders"), queue, kept;
  assert_int_equal(control_queue_create(f->control, &in, &queue), CONTROL_OK);
  in = queue_named(a.id, "kept");
  assert_int_equal(control_queue_create(f->control, &in, &kept), CONTROL_OK);
  control_consumer_t consumer = consumer_full(queue.id), created;
  assert_int_equal(control_consumer_create(f->control, &consumer, &created), CONTROL_OK);
  consumer = consumer_full(kept.id);
  assert_int_equal(control_consumer_create(f->control, &consumer, NULL), CONTROL_OK);
  assert_int_equal(consumer_rows(f), 2);

  assert_int_equal(control_queue_delete(f->control, a.id, queue.id), CONTROL_OK);
  assert_int_equal(control_queue_get(f->control, a.id, queue.id, NULL), CONTROL_ERR_NOT_FOUND);
  assert_int_equal(control_consumer_get(f->control, queue.id, created.id, NULL),
                   CONTROL_ERR_NOT_FOUND);
  assert_int_equal(consumer_rows(f), 1);
  assert_int_equal(control_consumer_of_queue(f->control, kept.id, NULL), CONTROL_OK);
  assert_int_equal(control_queue_delete(f->control, a.id, queue.id), CONTROL_ERR_NOT_FOUND);
}

static void test_reopen_keeps_everything(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "acme", &a), CONTROL_OK);
  char secret[65];
  control_token_t token;
  assert_int_equal(control_token_create(f->control, a.id, PERMISSION_WRITE, "w", NULL, secret,
                                        &token, NULL),
                   CONTROL_OK);
  control_queue_t in = queue_named(a.id, "orders"), queue;
  in.delivery_delay_s = 5;
  assert_int_equal(control_queue_create(f->control, &in, &queue), CONTROL_OK);
  control_consumer_t consumer = consumer_full(queue.id), created;
  assert_int_equal(control_consumer_create(f->control, &consumer, &created), CONTROL_OK);

  fixture_reopen(f);
  control_account_t account;
  assert_int_equal(control_account_get(f->control, a.id, &account), CONTROL_OK);
  assert_string_equal(account.name, "acme");
  assert_int_equal(account.created_ms, a.created_ms);
  control_token_t found;
  assert_int_equal(control_token_authenticate(f->control, secret, &found), CONTROL_OK);
  assert_string_equal(found.id, token.id);
  assert_string_equal(found.account_id, a.id);
  assert_int_equal(found.permissions, PERMISSION_WRITE);
  control_queue_t got;
  assert_int_equal(control_queue_get(f->control, a.id, queue.id, &got), CONTROL_OK);
  assert_string_equal(got.name, "orders");
  assert_int_equal(got.delivery_delay_s, 5);
  control_consumer_t got_consumer;
  assert_int_equal(control_consumer_of_queue(f->control, queue.id, &got_consumer), CONTROL_OK);
  assert_consumer_equal(&got_consumer, &created);
  /* Bootstrap on a populated database adds nothing. */
  int rc;
  char *printed = bootstrap_captured(f, &rc);
  assert_int_equal(rc, CONTROL_OK);
  assert_string_equal(printed, "");
  free(printed);
  assert_int_equal(account_count(f), 1);
}

static int db_exec(fixture_t *f, const char *sql) {
  char *db_path = path_in(f, "wharf.db");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_close(db);
  free(db_path);
  return rc;
}

static void test_schema_version(void **state) {
  fixture_t *f = *state;
  char *db_path = path_in(f, "wharf.db");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *statement;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(statement, 0), 3);
  sqlite3_finalize(statement);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &statement, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(statement, 0), "wal");
  sqlite3_finalize(statement);
  sqlite3_close(db);
  free(db_path);

  /* A file from a newer Wharf is refused, not misread. */
  control_close(f->control);
  f->control = NULL;
  assert_int_equal(db_exec(f, "PRAGMA user_version = 99"), SQLITE_OK);
  control_t *control = NULL;
  assert_int_equal(control_open(f->dir, &control), CONTROL_ERR_DATABASE);
  assert_null(control);
}

static int64_t db_int(fixture_t *f, const char *sql) {
  char *db_path = path_in(f, "wharf.db");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *statement;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &statement, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  int64_t value = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  free(db_path);
  return value;
}

/* A version 1 file (before the queue counter) is migrated and its counter
 * filled from the queues it already has. */
static void test_migration_from_version_1(void **state) {
  fixture_t *f = *state;
  control_account_t a;
  assert_int_equal(control_account_create(f->control, NULL, "a", &a), CONTROL_OK);
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "q%d", i);
    control_queue_t in = queue_named(a.id, name);
    assert_int_equal(control_queue_create(f->control, &in, NULL), CONTROL_OK);
  }
  control_close(f->control);
  f->control = NULL;
  assert_int_equal(db_exec(f, "DROP TRIGGER queues_counted; DROP TRIGGER queues_uncounted;"
                              "ALTER TABLE accounts DROP COLUMN queue_count;"
                              "ALTER TABLE tokens DROP COLUMN not_before_ms;"
                              "ALTER TABLE tokens DROP COLUMN expires_on_ms;"
                              "PRAGMA user_version = 1"),
                   SQLITE_OK);
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  assert_int_equal(db_int(f, "PRAGMA user_version"), 3);
  assert_int_equal(db_int(f, "SELECT queue_count FROM accounts"), 3);
  control_queue_t in = queue_named(a.id, "q3"), created;
  assert_int_equal(control_queue_create(f->control, &in, &created), CONTROL_OK);
  assert_int_equal(db_int(f, "SELECT queue_count FROM accounts"), 4);
  assert_int_equal(control_queue_delete(f->control, a.id, created.id), CONTROL_OK);
  assert_int_equal(db_int(f, "SELECT queue_count FROM accounts"), 3);
}

/* A version 2 file (tokens without a validity window) keeps its tokens
 * working, unbounded, after the migration. */
static void test_migration_from_version_2(void **state) {
  fixture_t *f = *state;
  char secret[65];
  control_token_t token, found;
  assert_int_equal(control_token_create(f->control, "", PERMISSION_READ, "old", NULL, secret, &token, NULL),
                   CONTROL_OK);
  control_close(f->control);
  f->control = NULL;
  assert_int_equal(db_exec(f, "ALTER TABLE tokens DROP COLUMN not_before_ms;"
                              "ALTER TABLE tokens DROP COLUMN expires_on_ms;"
                              "PRAGMA user_version = 2"),
                   SQLITE_OK);
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  assert_int_equal(db_int(f, "PRAGMA user_version"), 3);
  assert_int_equal(control_token_authenticate(f->control, secret, &found), CONTROL_OK);
  assert_string_equal(found.id, token.id);
  assert_int_equal(found.not_before_ms, 0);
  assert_int_equal(found.expires_on_ms, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_bootstrap_generates_credentials, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_from_env, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_env_token_only, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_rejects_bad_account_id, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_tokens, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_token_secret_not_stored, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_token_authentication_rate, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_create_get, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_list_pages_and_names, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_limit, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_transaction_rollback, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_update, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_consumers, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_queue_delete_cascades, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_schema_version, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_version_1, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_version_2, fixture_setup,
                                      fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
