/*
 * parse.c — argv to a request description (method, path, JSON body), with no
 * I/O, so every flag's effect on the request is unit-tested.
 *
 * The commands live in one table. Each entry names its words ("queues
 * consumer http add"), its positional arguments, its flags and where each
 * lands in the JSON body ("settings.batch_size"), plus a fixed body that the
 * flags add to or override. The parser, the usage text and the help all
 * come from the table, so a flag cannot be accepted but undocumented.
 *
 * Flags and positionals mirror wrangler's (seed 004, "Wrangler commands");
 * values are checked for syntax only: ranges are the server's to enforce, so
 * a bad value gets the same message from every client.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/command.h"
#include "util/buf.h"

typedef enum {
  OPT_INT,        /* integer, e.g. --batch-size 10 */
  OPT_SECONDS_MS, /* seconds (may be fractional), sent as integer milliseconds */
  OPT_STRING,
  OPT_LIST,       /* comma-separated, sent as an array of strings */
  OPT_JSON,       /* a JSON value, sent as it is */
  OPT_BOOL,       /* true or false */
  OPT_SWITCH,     /* no value; sets the cli_request_t field named by target */
} opt_type_t;

typedef struct {
  const char *flag; /* without the leading dashes */
  opt_type_t type;
  /* Where the value goes: a dotted body path ("settings.batch_size"), a
   * query parameter when it starts with '?', or the path's last segment
   * when it is "/" (an id). */
  const char *target;
  const char *metavar;
} opt_spec_t;

typedef enum {
  POS_QUEUE,  /* a queue name: req->queue_name */
  POS_SCRIPT, /* a worker script name: req->script_name */
  POS_PATH,   /* an id appended to the path */
} pos_role_t;

typedef struct {
  const char *name; /* for the usage text */
  pos_role_t role;
  const char *body_field; /* also copied into the body when not NULL */
} pos_spec_t;

#define MAX_WORDS 4
#define MAX_POSITIONALS 2
#define MAX_OPTIONS 8

typedef struct {
  const char *words[MAX_WORDS];
  cli_command_t command;
  const char *method;
  cli_scope_t scope;
  const char *path;
  pos_spec_t positionals[MAX_POSITIONALS];
  opt_spec_t options[MAX_OPTIONS];
  const char *body; /* JSON the flags start from; NULL for no body */
  const char *required_flag;
  const char *summary;
} command_spec_t;

#define OPT_DELIVERY_DELAY {"delivery-delay-secs", OPT_INT, "settings.delivery_delay", "SECS"}
#define OPT_RETENTION \
  {"message-retention-period-secs", OPT_INT, "settings.message_retention_period", "SECS"}
#define OPT_BATCH_SIZE {"batch-size", OPT_INT, "settings.batch_size", "N"}
#define OPT_RETRIES {"message-retries", OPT_INT, "settings.max_retries", "N"}
#define OPT_DLQ {"dead-letter-queue", OPT_STRING, "dead_letter_queue", "QUEUE"}
#define OPT_RETRY_DELAY {"retry-delay-secs", OPT_INT, "settings.retry_delay", "SECS"}
#define POS_QUEUE_NAME {"name", POS_QUEUE, NULL}
#define POS_CONSUMER_QUEUE {"queue-name", POS_QUEUE, NULL}

#define WORKER_ADD_OPTIONS                                                               \
  {OPT_BATCH_SIZE, {"batch-timeout", OPT_SECONDS_MS, "settings.max_wait_time_ms", "SECS"}, \
   OPT_RETRIES, OPT_DLQ, {"max-concurrency", OPT_INT, "settings.max_concurrency", "N"},    \
   OPT_RETRY_DELAY}
#define WORKER_ADD_POSITIONALS \
  {POS_CONSUMER_QUEUE, {"script-name", POS_SCRIPT, "script_name"}}
#define WORKER_REMOVE_POSITIONALS {POS_CONSUMER_QUEUE, {"script-name", POS_SCRIPT, NULL}}
#define POS_SUBSCRIPTION_QUEUE {"queue", POS_QUEUE, NULL}
#define OPT_SUBSCRIPTION_ID {"id", OPT_STRING, "/", "ID"}
#define OPT_SUBSCRIPTION_NAME {"name", OPT_STRING, "name", "NAME"}
#define OPT_SUBSCRIPTION_EVENTS {"events", OPT_LIST, "events", "EVENT,EVENT"}
#define OPT_SUBSCRIPTION_ENABLED {"enabled", OPT_BOOL, "enabled", "true|false"}
#define OPT_JSON_OUTPUT {"json", OPT_SWITCH, "json", NULL}
#define SUBSCRIPTIONS_PATH "/event_subscriptions/subscriptions"

static const command_spec_t parse_commands[] = {
    {{"queues", "list"}, CLI_QUEUES_LIST, "GET", CLI_SCOPE_ACCOUNT, "/queues", {{0}},
     {{"page", OPT_INT, "?page", "N"}}, NULL, NULL, "List queues"},
    {{"queues", "create"}, CLI_QUEUES_CREATE, "POST", CLI_SCOPE_ACCOUNT, "/queues",
     {{"name", POS_QUEUE, "queue_name"}}, {OPT_DELIVERY_DELAY, OPT_RETENTION}, "{}", NULL,
     "Create a queue"},
    {{"queues", "info"}, CLI_QUEUES_INFO, "GET", CLI_SCOPE_QUEUE, "/metrics", {POS_QUEUE_NAME},
     {{0}}, NULL, NULL, "Show a queue's settings, consumers and backlog"},
    {{"queues", "update"}, CLI_QUEUES_UPDATE, "PATCH", CLI_SCOPE_QUEUE, "", {POS_QUEUE_NAME},
     {OPT_DELIVERY_DELAY, OPT_RETENTION}, "{\"settings\":{}}", NULL, "Update a queue's settings"},
    {{"queues", "delete"}, CLI_QUEUES_DELETE, "DELETE", CLI_SCOPE_QUEUE, "", {POS_QUEUE_NAME},
     {{0}}, NULL, NULL, "Delete a queue"},
    {{"queues", "consumer", "add"}, CLI_CONSUMER_WORKER_ADD, "POST", CLI_SCOPE_QUEUE,
     "/consumers", WORKER_ADD_POSITIONALS, WORKER_ADD_OPTIONS, "{\"type\":\"worker\"}", NULL,
     "Add a worker (push) consumer"},
    {{"queues", "consumer", "remove"}, CLI_CONSUMER_WORKER_REMOVE, "DELETE", CLI_SCOPE_CONSUMER,
     "", WORKER_REMOVE_POSITIONALS, {{0}}, NULL, NULL, "Remove a worker consumer"},
    {{"queues", "consumer", "worker", "add"}, CLI_CONSUMER_WORKER_ADD, "POST", CLI_SCOPE_QUEUE,
     "/consumers", WORKER_ADD_POSITIONALS, WORKER_ADD_OPTIONS, "{\"type\":\"worker\"}", NULL,
     "Same as consumer add"},
    {{"queues", "consumer", "worker", "remove"}, CLI_CONSUMER_WORKER_REMOVE, "DELETE",
     CLI_SCOPE_CONSUMER, "", WORKER_REMOVE_POSITIONALS, {{0}}, NULL, NULL,
     "Same as consumer remove"},
    {{"queues", "consumer", "http", "add"}, CLI_CONSUMER_HTTP_ADD, "POST", CLI_SCOPE_QUEUE,
     "/consumers", {POS_CONSUMER_QUEUE},
     {OPT_BATCH_SIZE, OPT_RETRIES, OPT_DLQ,
      {"visibility-timeout-secs", OPT_SECONDS_MS, "settings.visibility_timeout_ms", "SECS"},
      OPT_RETRY_DELAY},
     "{\"type\":\"http_pull\"}", NULL, "Add an HTTP pull consumer"},
    {{"queues", "consumer", "http", "remove"}, CLI_CONSUMER_HTTP_REMOVE, "DELETE",
     CLI_SCOPE_CONSUMER, "", {POS_CONSUMER_QUEUE}, {{0}}, NULL, NULL,
     "Remove the HTTP pull consumer"},
    {{"queues", "pause-delivery"}, CLI_QUEUES_PAUSE, "PATCH", CLI_SCOPE_QUEUE, "",
     {POS_QUEUE_NAME}, {{0}}, "{\"settings\":{\"delivery_paused\":true}}", NULL,
     "Pause message delivery (messages are still accepted)"},
    {{"queues", "resume-delivery"}, CLI_QUEUES_RESUME, "PATCH", CLI_SCOPE_QUEUE, "",
     {POS_QUEUE_NAME}, {{0}}, "{\"settings\":{\"delivery_paused\":false}}", NULL,
     "Resume message delivery"},
    {{"queues", "purge"}, CLI_QUEUES_PURGE, "POST", CLI_SCOPE_QUEUE, "/purge", {POS_QUEUE_NAME},
     {{"force", OPT_SWITCH, "force", NULL}}, "{\"delete_messages_permanently\":true}", NULL,
     "Delete every message in a queue (asks for the name unless --force)"},
    {{"queues", "subscription", "create"}, CLI_SUBSCRIPTION_CREATE, "POST",
     CLI_SCOPE_SUBSCRIPTION, SUBSCRIPTIONS_PATH, {POS_SUBSCRIPTION_QUEUE},
     {{"source", OPT_STRING, "source.type", "SOURCE"}, OPT_SUBSCRIPTION_EVENTS,
      OPT_SUBSCRIPTION_NAME, OPT_SUBSCRIPTION_ENABLED,
      {"model-name", OPT_STRING, "source.model_name", "NAME"},
      {"worker-name", OPT_STRING, "source.worker_name", "NAME"},
      {"workflow-name", OPT_STRING, "source.workflow_name", "NAME"}},
     "{\"enabled\":true}", "source",
     "Subscribe a queue to a source's events (docs/events.md; also --source wharf)"},
    {{"queues", "subscription", "list"}, CLI_SUBSCRIPTION_LIST, "GET", CLI_SCOPE_SUBSCRIPTION,
     SUBSCRIPTIONS_PATH, {POS_SUBSCRIPTION_QUEUE},
     {{"page", OPT_INT, "?page", "N"}, {"per-page", OPT_INT, "?per_page", "N"}, OPT_JSON_OUTPUT},
     NULL, NULL, "List a queue's event subscriptions"},
    {{"queues", "subscription", "get"}, CLI_SUBSCRIPTION_GET, "GET", CLI_SCOPE_SUBSCRIPTION,
     SUBSCRIPTIONS_PATH, {POS_SUBSCRIPTION_QUEUE}, {OPT_SUBSCRIPTION_ID, OPT_JSON_OUTPUT}, NULL,
     "id", "Show one event subscription of a queue"},
    {{"queues", "subscription", "update"}, CLI_SUBSCRIPTION_UPDATE, "PATCH",
     CLI_SCOPE_SUBSCRIPTION, SUBSCRIPTIONS_PATH, {POS_SUBSCRIPTION_QUEUE},
     {OPT_SUBSCRIPTION_ID, OPT_SUBSCRIPTION_NAME, OPT_SUBSCRIPTION_EVENTS,
      OPT_SUBSCRIPTION_ENABLED, OPT_JSON_OUTPUT},
     "{}", "id", "Change an event subscription's name, events or enabled state"},
    {{"queues", "subscription", "delete"}, CLI_SUBSCRIPTION_DELETE, "DELETE",
     CLI_SCOPE_SUBSCRIPTION, SUBSCRIPTIONS_PATH, {POS_SUBSCRIPTION_QUEUE},
     {OPT_SUBSCRIPTION_ID, {"force", OPT_SWITCH, "force", NULL}}, NULL, "id",
     "Delete an event subscription (asks unless --force)"},
    {{"accounts", "create"}, CLI_ACCOUNTS_CREATE, "POST", CLI_SCOPE_ROOT, "/accounts", {{0}},
     {{"name", OPT_STRING, "name", "NAME"}}, "{}", "name", "Create an account (admin)"},
    {{"accounts", "list"}, CLI_ACCOUNTS_LIST, "GET", CLI_SCOPE_ROOT, "/accounts", {{0}}, {{0}},
     NULL, NULL, "List accounts (admin)"},
    {{"tokens", "create"}, CLI_TOKENS_CREATE, "POST", CLI_SCOPE_ROOT, "/user/tokens", {{0}},
     {{"permissions", OPT_LIST, "permissions", "queues_read,queues_write"},
      {"account", OPT_STRING, "account_id", "ID"},
      {"admin", OPT_SWITCH, "admin", NULL}, {"name", OPT_STRING, "name", "NAME"},
      {"not-before", OPT_STRING, "not_before", "TIME"}, {"expires-on", OPT_STRING, "expires_on", "TIME"}},
     "{\"permissions\":[\"queues_read\",\"queues_write\"]}", NULL,
     "Create an API token for --account (default WHARF_ACCOUNT_ID), or with --admin for\n"
     "      every account and their administration, valid from --not-before until\n"
     "      --expires-on (RFC 3339 times, e.g. 2030-01-01T00:00:00Z); prints the secret once"},
    {{"tokens", "list"}, CLI_TOKENS_LIST, "GET", CLI_SCOPE_ROOT, "/user/tokens", {{0}}, {{0}},
     NULL, NULL, "List API tokens (never their secrets)"},
    {{"tokens", "revoke"}, CLI_TOKENS_REVOKE, "DELETE", CLI_SCOPE_ROOT, "/user/tokens",
     {{"token-id", POS_PATH, NULL}}, {{0}}, NULL, NULL, "Revoke an API token"},
    {{"workers", "register"}, CLI_WORKERS_REGISTER, "POST", CLI_SCOPE_ACCOUNT,
     "/workers/queue-handlers", {{"script-name", POS_SCRIPT, "script_name"}},
     {{"url", OPT_STRING, "url", "URL"},
      {"timeout-secs", OPT_SECONDS_MS, "timeout_ms", "SECS"}},
     "{}", "url",
     "Register the HTTP endpoint a worker consumer of that script name pushes\n"
     "      batches to; prints its signing secret once"},
    {{"workers", "list"}, CLI_WORKERS_LIST, "GET", CLI_SCOPE_ACCOUNT, "/workers/queue-handlers",
     {{0}}, {{0}}, NULL, NULL, "List registered workers (never their secrets)"},
    {{"workers", "remove"}, CLI_WORKERS_REMOVE, "DELETE", CLI_SCOPE_ACCOUNT,
     "/workers/queue-handlers", {{"script-name", POS_PATH, NULL}}, {{0}}, NULL, NULL,
     "Remove a registered worker"},
    {{"events", "publish"}, CLI_EVENTS_PUBLISH, "POST", CLI_SCOPE_ACCOUNT,
     "/event_subscriptions/events", {{0}},
     {{"type", OPT_STRING, "type", "TYPE"},
      {"source", OPT_STRING, "source.type", "SOURCE"},
      {"model-name", OPT_STRING, "source.modelName", "NAME"},
      {"worker-name", OPT_STRING, "source.workerName", "NAME"},
      {"workflow-name", OPT_STRING, "source.workflowName", "NAME"},
      {"job-id", OPT_STRING, "source.jobId", "ID"},
      {"payload", OPT_JSON, "payload", "JSON"}},
     "{}", "type",
     "Publish an event (e.g. cf.r2.bucket.created) to the subscriptions that want\n"
     "      it, checked against its schema (docs/events.md)"},
    {{"audit", "list"}, CLI_AUDIT_LIST, "GET", CLI_SCOPE_ACCOUNT, "/audit_logs", {{0}},
     {{"since", OPT_STRING, "?since", "DATE"}, {"queue", OPT_STRING, "?queue", "NAME"},
      {"page", OPT_INT, "?page", "N"}},
     NULL, NULL, "List the account's audit log, newest first (--since 2026-01-31 or an RFC 3339 time)"},
};

#define PARSE_COMMAND_COUNT (sizeof(parse_commands) / sizeof(parse_commands[0]))

static int parse_fail(char *error, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_fail(char *error, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error, size, fmt, ap);
  va_end(ap);
  return CLI_PARSE_USAGE;
}

static bool parse_is_help(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static size_t parse_word_count(const command_spec_t *spec) {
  size_t n = 0;
  while (n < MAX_WORDS && spec->words[n]) n++;
  return n;
}

/* The entry whose words are the longest prefix of argv[1..]. */
static const command_spec_t *parse_find_command(int argc, char **argv) {
  const command_spec_t *best = NULL;
  size_t best_words = 0;
  for (size_t i = 0; i < PARSE_COMMAND_COUNT; i++) {
    const command_spec_t *spec = &parse_commands[i];
    size_t words = parse_word_count(spec);
    if ((size_t)argc - 1 < words || words <= best_words) continue;
    size_t w = 0;
    while (w < words && strcmp(argv[1 + w], spec->words[w]) == 0) w++;
    if (w == words) {
      best = spec;
      best_words = words;
    }
  }
  return best;
}

static const opt_spec_t *parse_find_option(const command_spec_t *spec, const char *flag,
                                           size_t flag_len) {
  for (size_t i = 0; i < MAX_OPTIONS && spec->options[i].flag; i++) {
    const opt_spec_t *opt = &spec->options[i];
    if (strlen(opt->flag) == flag_len && strncmp(opt->flag, flag, flag_len) == 0) return opt;
  }
  return NULL;
}

/* Sets body[a][b]… = value for target "a.b…", creating objects on the way;
 * steals value. */
static void parse_body_set(json_t *body, const char *target, json_t *value) {
  const char *dot;
  while ((dot = strchr(target, '.')) != NULL) {
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(dot - target), target);
    json_t *child = json_object_get(body, key);
    if (!json_is_object(child)) {
      child = json_object();
      json_object_set_new(body, key, child);
    }
    body = child;
    target = dot + 1;
  }
  json_object_set_new(body, target, value);
}

static bool parse_integer(const char *text, long long *out) {
  if (!*text) return false;
  errno = 0;
  char *end;
  *out = strtoll(text, &end, 10);
  return errno == 0 && *end == '\0';
}

static bool parse_seconds_ms(const char *text, long long *out) {
  if (!*text) return false;
  errno = 0;
  char *end;
  double seconds = strtod(text, &end);
  if (errno != 0 || *end != '\0' || !isfinite(seconds) || fabs(seconds) > 1e12) return false;
  *out = llround(seconds * 1000.0);
  return true;
}

static json_t *parse_list(const char *text) {
  json_t *list = json_array();
  const char *p = text;
  while (*p) {
    size_t len = strcspn(p, ",");
    if (len > 0) json_array_append_new(list, json_stringn(p, len));
    p += len;
    if (*p == ',') p++;
  }
  return list;
}

/* Ids go into the path as they are: allow only what ids are made of. */
static bool parse_is_path_safe(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return false;
  return true;
}

/* Appends "/value" to the path; what names the argument in messages. */
static int parse_append_id(cli_request_t *req, const char *what, const char *value, char *error,
                           size_t size) {
  if (!parse_is_path_safe(value))
    return parse_fail(error, size, "%s may hold only letters, digits, '-' and '_'", what);
  if (strlen(req->path) + 1 + strlen(value) >= sizeof(req->path))
    return parse_fail(error, size, "%s is too long", what);
  strcat(req->path, "/");
  strcat(req->path, value);
  return CLI_PARSE_OK;
}

/* Percent-encodes all but RFC 3986's unreserved characters. */
static void parse_query_escape(buf_t *query, const char *value) {
  for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
    if (isalnum(*c) || strchr("-._~", *c)) buf_append(query, (const char *)c, 1);
    else buf_printf(query, "%%%02X", *c);
  }
}

/* Applies one flag's value to the request. */
static int parse_apply_option(cli_request_t *req, const opt_spec_t *opt, const char *value,
                              buf_t *query, char *error, size_t size) {
  json_t *json = NULL;
  long long number;
  switch (opt->type) {
  case OPT_SWITCH:
    if (strcmp(opt->target, "admin") == 0)
      req->admin = true;
    else if (strcmp(opt->target, "json") == 0)
      req->json = true;
    else
      req->force = true;
    return CLI_PARSE_OK;
  case OPT_INT:
    if (!parse_integer(value, &number))
      return parse_fail(error, size, "--%s needs a whole number, not \"%s\"", opt->flag, value);
    json = json_integer(number);
    break;
  case OPT_SECONDS_MS:
    if (!parse_seconds_ms(value, &number))
      return parse_fail(error, size, "--%s needs a number of seconds, not \"%s\"", opt->flag,
                        value);
    json = json_integer(number);
    break;
  case OPT_STRING:
    json = json_string(value);
    if (!json) return parse_fail(error, size, "--%s is not valid UTF-8", opt->flag);
    break;
  case OPT_LIST:
    json = parse_list(value);
    break;
  case OPT_JSON:
    json = json_loads(value, JSON_DECODE_ANY, NULL);
    if (!json) return parse_fail(error, size, "--%s needs JSON, not \"%s\"", opt->flag, value);
    break;
  case OPT_BOOL:
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
      return parse_fail(error, size, "--%s needs true or false, not \"%s\"", opt->flag, value);
    json = json_boolean(value[0] == 't');
    break;
  }
  if (strcmp(opt->target, "/") == 0) {
    json_decref(json);
    char what[64];
    snprintf(what, sizeof what, "--%s", opt->flag);
    return parse_append_id(req, what, value, error, size);
  }
  if (opt->target[0] == '?') {
    buf_printf(query, "%c%s=", query->len ? '&' : '?', opt->target + 1);
    parse_query_escape(query, value);
    json_decref(json);
    return CLI_PARSE_OK;
  }
  if (!req->body) req->body = json_object();
  parse_body_set(req->body, opt->target, json);
  return CLI_PARSE_OK;
}

static int parse_apply_positional(cli_request_t *req, const pos_spec_t *pos, const char *value,
                                  char *error, size_t size) {
  switch (pos->role) {
  case POS_QUEUE:
    req->queue_name = value;
    break;
  case POS_SCRIPT:
    req->script_name = value;
    break;
  case POS_PATH: {
    char name[64];
    snprintf(name, sizeof name, "<%s>", pos->name);
    int rc = parse_append_id(req, name, value, error, size);
    if (rc != CLI_PARSE_OK) return rc;
    break;
  }
  }
  if (pos->body_field) {
    json_t *json = json_string(value);
    if (!json) return parse_fail(error, size, "<%s> is not valid UTF-8", pos->name);
    if (!req->body) req->body = json_object();
    json_object_set_new(req->body, pos->body_field, json);
  }
  return CLI_PARSE_OK;
}

static size_t parse_positional_count(const command_spec_t *spec) {
  size_t n = 0;
  while (n < MAX_POSITIONALS && spec->positionals[n].name) n++;
  return n;
}

/* Everything after the command words: positionals and --flags in any order. */
static int parse_arguments(const command_spec_t *spec, int argc, char **argv, int first,
                           cli_request_t *req, char *error, size_t size) {
  size_t positionals = 0, wanted = parse_positional_count(spec);
  bool required_seen = spec->required_flag == NULL;
  buf_t query = BUF_INIT;
  int rc = CLI_PARSE_OK;
  for (int i = first; i < argc && rc == CLI_PARSE_OK; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      rc = CLI_PARSE_HELP;
    } else if (strncmp(arg, "--", 2) == 0) {
      const char *flag = arg + 2, *eq = strchr(flag, '=');
      size_t flag_len = eq ? (size_t)(eq - flag) : strlen(flag);
      const opt_spec_t *opt = parse_find_option(spec, flag, flag_len);
      if (!opt) {
        rc = parse_fail(error, size, "unknown flag --%.*s", (int)flag_len, flag);
      } else if (opt->type == OPT_SWITCH) {
        rc = eq ? parse_fail(error, size, "--%s takes no value", opt->flag)
                : parse_apply_option(req, opt, NULL, &query, error, size);
      } else if (!eq && i + 1 >= argc) {
        rc = parse_fail(error, size, "--%s needs a value", opt->flag);
      } else {
        rc = parse_apply_option(req, opt, eq ? eq + 1 : argv[++i], &query, error, size);
        if (spec->required_flag && strcmp(opt->flag, spec->required_flag) == 0)
          required_seen = true;
      }
    } else if (positionals < wanted) {
      rc = parse_apply_positional(req, &spec->positionals[positionals++], arg, error, size);
    } else {
      rc = parse_fail(error, size, "unexpected argument \"%s\"", arg);
    }
  }
  if (rc == CLI_PARSE_OK && positionals < wanted)
    rc = parse_fail(error, size, "missing <%s>", spec->positionals[positionals].name);
  if (rc == CLI_PARSE_OK && !required_seen)
    rc = parse_fail(error, size, "--%s is required", spec->required_flag);
  if (rc == CLI_PARSE_OK && query.len) {
    if (strlen(req->path) + query.len >= sizeof(req->path))
      rc = parse_fail(error, size, "arguments are too long");
    else
      strcat(req->path, query.data);
  }
  buf_free(&query);
  return rc;
}

int cli_parse(int argc, char **argv, cli_request_t *req, char *error, size_t error_size) {
  memset(req, 0, sizeof(*req));
  if (error_size) error[0] = '\0';
  if (argc < 2 || parse_is_help(argv[1])) return CLI_PARSE_HELP;
  const command_spec_t *spec = parse_find_command(argc, argv);
  if (!spec) {
    buf_t words = BUF_INIT;
    for (int i = 1; i < argc && i <= 3 && argv[i][0] != '-'; i++)
      buf_printf(&words, " %s", argv[i]);
    int rc = parse_fail(error, error_size, "unknown command: wharf%s",
                        words.data ? words.data : "");
    buf_free(&words);
    return rc;
  }
  req->command = spec->command;
  req->scope = spec->scope;
  req->method = spec->method;
  snprintf(req->path, sizeof(req->path), "%s", spec->path);
  if (spec->body) req->body = json_loads(spec->body, 0, NULL);
  int rc = parse_arguments(spec, argc, argv, 1 + (int)parse_word_count(spec), req, error,
                           error_size);
  if (rc != CLI_PARSE_OK) cli_request_free(req);
  return rc;
}

void cli_request_free(cli_request_t *req) {
  json_decref(req->body);
  req->body = NULL;
}

static void parse_usage_command(FILE *out, const command_spec_t *spec) {
  buf_t line = BUF_INIT;
  buf_append_str(&line, "  wharf");
  for (size_t w = 0; w < parse_word_count(spec); w++) buf_printf(&line, " %s", spec->words[w]);
  for (size_t p = 0; p < parse_positional_count(spec); p++)
    buf_printf(&line, " <%s>", spec->positionals[p].name);
  for (size_t o = 0; o < MAX_OPTIONS && spec->options[o].flag; o++) {
    const opt_spec_t *opt = &spec->options[o];
    bool required = spec->required_flag && strcmp(spec->required_flag, opt->flag) == 0;
    buf_printf(&line, required ? " --%s" : " [--%s", opt->flag);
    if (opt->metavar) buf_printf(&line, " %s", opt->metavar);
    if (!required) buf_append_str(&line, "]");
  }
  fprintf(out, "%s\n      %s\n", line.data, spec->summary);
  buf_free(&line);
}

void cli_parse_usage(FILE *out) {
  for (size_t i = 0; i < PARSE_COMMAND_COUNT; i++) parse_usage_command(out, &parse_commands[i]);
}
