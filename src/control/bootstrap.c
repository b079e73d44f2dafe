/*
 * bootstrap.c — the first start: a server with an empty database gets one
 * account and one admin token, so `wharf serve` works with no setup step,
 * and wrangler (which wants exactly one account when it is not told which)
 * finds one.
 *
 * The operator may choose both values through WHARF_ACCOUNT_ID and
 * WHARF_API_TOKEN (useful in containers and tests). What Wharf generates it
 * shows once on stdout and keeps in DIR/credentials (0600), written inside
 * the database transaction so that a failure leaves neither. A secret the
 * operator gave is never echoed or written anywhere: it is theirs already.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control_internal.h"
#include "util/buf.h"
#include "util/log.h"

#define BOOTSTRAP_ACCOUNT_NAME "default"
#define BOOTSTRAP_TOKEN_NAME "admin"
#define ENV_TOKEN_NAME "WHARF_API_TOKEN"

static void bootstrap_account_seen(void *arg, const control_account_t *account) {
  (void)account;
  *(bool *)arg = true;
}

static int bootstrap_has_accounts(control_t *control, bool *out) {
  *out = false;
  if (control->cluster) return control_account_list(control, bootstrap_account_seen, out);
  sqlite3_stmt *statement = control_statement(control, STATEMENT_ACCOUNT_COUNT,
                                              "SELECT EXISTS (SELECT 1 FROM accounts)");
  if (!statement) return CONTROL_ERR_DATABASE;
  int rc = sqlite3_step(statement);
  *out = rc == SQLITE_ROW && sqlite3_column_int(statement, 0) != 0;
  sqlite3_reset(statement);
  return rc == SQLITE_ROW ? CONTROL_OK : control_error(control, rc, "counting accounts");
}

static bool bootstrap_account_id_valid(const char *id) {
  if (strlen(id) != CONTROL_ID_LEN) return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
  return true;
}

/* Writes text to path, replacing any old file: an old file could have wider
 * permissions, and O_TRUNC would keep them. */
static int bootstrap_write_private(const char *path, const buf_t *text) {
  if (unlink(path) != 0 && errno != ENOENT) goto fail;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) goto fail;
  size_t done = 0;
  while (done < text->len) {
    ssize_t n = write(fd, text->data + done, text->len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += (size_t)n;
  }
  bool ok = done == text->len && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (ok) return CONTROL_OK;
  unlink(path);
fail:
  log_error("control: cannot write %s: %s", path, strerror(errno));
  return CONTROL_ERR_DATABASE;
}

static int bootstrap_write_credentials(const char *path, const char *account_id,
                                       const char *generated_secret) {
  buf_t text = BUF_INIT;
  buf_printf(&text, "WHARF_ACCOUNT_ID=%s\n", account_id);
  if (generated_secret) buf_printf(&text, "WHARF_API_TOKEN=%s\n", generated_secret);
  int rc = bootstrap_write_private(path, &text);
  buf_free(&text);
  return rc;
}

/* Creates the account and the token; writes the credentials file when
 * anything was generated. The caller owns the transaction. */
static int bootstrap_create(control_t *control, const char *credentials_path,
                            const char *env_account_id, const char *env_secret,
                            char account_id_out[33], char secret_out[65]) {
  control_account_t account;
  int rc = control_account_create(control, env_account_id, BOOTSTRAP_ACCOUNT_NAME, &account);
  if (rc != CONTROL_OK) return rc;
  memcpy(account_id_out, account.id, sizeof account.id);
  rc = control_token_create(control, "", PERMISSION_READ | PERMISSION_WRITE,
                            BOOTSTRAP_TOKEN_NAME, env_secret, secret_out, NULL, NULL);
  if (rc == CONTROL_ERR_INVALID)
    log_error("control: " ENV_TOKEN_NAME " must be 1 to 64 characters long");
  if (rc != CONTROL_OK || (env_account_id && env_secret)) return rc;
  return bootstrap_write_credentials(credentials_path, account.id,
                                     env_secret ? NULL : secret_out);
}

static int bootstrap_first_run(control_t *control, const char *data_dir) {
  const char *env_account_id = getenv("WHARF_ACCOUNT_ID");
  const char *env_secret = getenv(ENV_TOKEN_NAME);
  if (env_account_id && !bootstrap_account_id_valid(env_account_id)) {
    log_error("control: WHARF_ACCOUNT_ID must be 32 lowercase hex characters");
    return CONTROL_ERR_INVALID;
  }
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/credentials", data_dir);
  char account_id[33], secret[65];
  int rc = control_transaction_begin(control);
  if (rc == CONTROL_OK) {
    rc = bootstrap_create(control, path.data, env_account_id, env_secret, account_id, secret);
    if (rc == CONTROL_OK) rc = control_transaction_commit(control);
    if (rc != CONTROL_OK) {
      control_transaction_rollback(control);
      if (!(env_account_id && env_secret)) unlink(path.data);
    }
  }
  if (rc == CONTROL_OK) {
    printf("account id: %s\n", account_id);
    if (!env_secret) printf("api token: %s\n", secret);
    if (!(env_account_id && env_secret)) printf("(saved in %s)\n", path.data);
    fflush(stdout);
  }
  buf_free(&path);
  return rc;
}

/* Restarting an existing server with the environment of a first run. */
static int bootstrap_adopt_env(control_t *control) {
  const char *env_account_id = getenv("WHARF_ACCOUNT_ID");
  if (env_account_id && control_account_get(control, env_account_id, NULL) == CONTROL_ERR_NOT_FOUND)
    log_warn("control: WHARF_ACCOUNT_ID names no account in this data directory; ignored");
  const char *env_secret = getenv(ENV_TOKEN_NAME);
  if (!env_secret) return CONTROL_OK;
  int rc = control_token_authenticate(control, env_secret, NULL);
  if (rc != CONTROL_ERR_NOT_FOUND) return rc;
  rc = control_token_create(control, "", PERMISSION_READ | PERMISSION_WRITE, ENV_TOKEN_NAME,
                            env_secret, NULL, NULL, NULL);
  if (rc == CONTROL_ERR_INVALID)
    log_error("control: " ENV_TOKEN_NAME " must be 1 to 64 characters long");
  else if (rc == CONTROL_OK)
    log_info("control: added the token in " ENV_TOKEN_NAME " as an admin token");
  return rc;
}

int control_bootstrap(control_t *control, const char *data_dir) {
  bool has_accounts;
  int rc = bootstrap_has_accounts(control, &has_accounts);
  if (rc != CONTROL_OK) return rc;
  return has_accounts ? bootstrap_adopt_env(control) : bootstrap_first_run(control, data_dir);
}
