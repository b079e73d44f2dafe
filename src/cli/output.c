/*
 * output.c — what the CLI prints, from a request and the server's result.
 *
 * The wording follows wrangler's ("Creating queue x." / "Created queue x.",
 * "Queue Name: …") so people and scripts used to wrangler read it the same
 * way. Lists print as aligned columns with a header row. Lines a script
 * needs are fixed: `accounts create` prints "account id: <id>" and
 * `tokens create` ends with "token: <secret>", the only place a secret is
 * ever printed (it exists nowhere else after that); likewise `workers
 * register` ends with "signing secret: <secret>".
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/command.h"
#include "util/buf.h"
#include "util/clock.h"

typedef struct {
  const char *header;
  const char *key; /* field of each row object */
} output_column_t;

#define OUTPUT_MAX_COLUMNS 8

/* One cell as text: strings as they are, numbers, booleans, arrays of
 * strings joined by commas; missing or null as "-". */
static void output_cell(json_t *value, buf_t *out) {
  buf_reset(out);
  if (json_is_string(value)) {
    buf_append_str(out, json_string_value(value));
  } else if (json_is_integer(value)) {
    buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
  } else if (json_is_real(value)) {
    buf_printf(out, "%g", json_real_value(value));
  } else if (json_is_boolean(value)) {
    buf_append_str(out, json_is_true(value) ? "true" : "false");
  } else if (json_is_array(value)) {
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item) {
      if (i) buf_append_str(out, ",");
      buf_append_str(out, json_is_string(item) ? json_string_value(item) : "?");
    }
  }
  if (out->len == 0) buf_append_str(out, "-");
}

/* Pads every column but the last, so lines carry no trailing blanks. */
static void output_table_cell(FILE *out, const char *text, size_t width, bool last) {
  if (last)
    fprintf(out, "%s\n", text);
  else
    fprintf(out, "%-*s  ", (int)width, text);
}

static void output_table(FILE *out, json_t *rows, const output_column_t *columns) {
  size_t ncols = 0, widths[OUTPUT_MAX_COLUMNS];
  while (ncols < OUTPUT_MAX_COLUMNS && columns[ncols].header) {
    widths[ncols] = strlen(columns[ncols].header);
    ncols++;
  }
  buf_t cell = BUF_INIT;
  size_t r;
  json_t *row;
  json_array_foreach(rows, r, row) {
    for (size_t c = 0; c < ncols; c++) {
      output_cell(json_object_get(row, columns[c].key), &cell);
      if (cell.len > widths[c]) widths[c] = cell.len;
    }
  }
  for (size_t c = 0; c < ncols; c++)
    output_table_cell(out, columns[c].header, widths[c], c + 1 == ncols);
  json_array_foreach(rows, r, row) {
    for (size_t c = 0; c < ncols; c++) {
      output_cell(json_object_get(row, columns[c].key), &cell);
      output_table_cell(out, cell.data, widths[c], c + 1 == ncols);
    }
  }
  buf_free(&cell);
}

static const char *output_string(json_t *object, const char *key) {
  const char *s = json_string_value(json_object_get(object, key));
  return s ? s : "-";
}

/* "worker:script" or "http_pull", comma-separated, as wrangler lists them. */
static void output_endpoints(FILE *out, const char *label, json_t *list) {
  if (json_array_size(list) == 0) return;
  fprintf(out, "%s:", label);
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    const char *type = output_string(item, "type");
    const char *script = json_string_value(json_object_get(item, "script"));
    if (!script) script = json_string_value(json_object_get(item, "script_name"));
    fprintf(out, "%s %s%s%s", i ? "," : "", type, script ? ":" : "", script ? script : "");
  }
  fputc('\n', out);
}

static void output_queue_info(FILE *out, json_t *queue, json_t *metrics) {
  buf_t cell = BUF_INIT;
  json_t *settings = json_object_get(queue, "settings");
  fprintf(out, "Queue Name: %s\n", output_string(queue, "queue_name"));
  fprintf(out, "Queue ID: %s\n", output_string(queue, "queue_id"));
  fprintf(out, "Created On: %s\n", output_string(queue, "created_on"));
  fprintf(out, "Last Modified: %s\n", output_string(queue, "modified_on"));
  output_cell(json_object_get(queue, "producers_total_count"), &cell);
  fprintf(out, "Number of Producers: %s\n", cell.data);
  output_endpoints(out, "Producers", json_object_get(queue, "producers"));
  output_cell(json_object_get(queue, "consumers_total_count"), &cell);
  fprintf(out, "Number of Consumers: %s\n", cell.data);
  output_endpoints(out, "Consumers", json_object_get(queue, "consumers"));
  output_cell(json_object_get(settings, "delivery_delay"), &cell);
  fprintf(out, "Delivery Delay: %s\n", cell.data);
  output_cell(json_object_get(settings, "message_retention_period"), &cell);
  fprintf(out, "Message Retention Period: %s\n", cell.data);
  output_cell(json_object_get(settings, "delivery_paused"), &cell);
  fprintf(out, "Delivery Paused: %s\n", cell.data);
  output_cell(json_object_get(metrics, "backlog_count"), &cell);
  fprintf(out, "Backlog count: %s\n", cell.data);
  output_cell(json_object_get(metrics, "backlog_bytes"), &cell);
  fprintf(out, "Backlog bytes: %s\n", cell.data);
  json_t *oldest = json_object_get(metrics, "oldest_message_timestamp_ms");
  if (json_is_integer(oldest) && json_integer_value(oldest) > 0) {
    char iso[32];
    clock_format_iso8601((uint64_t)json_integer_value(oldest), iso);
    fprintf(out, "Oldest message: %s\n", iso);
  } else {
    fprintf(out, "Oldest message: none\n");
  }
  buf_free(&cell);
}

static void output_token_created(FILE *out, json_t *token) {
  buf_t cell = BUF_INIT;
  fprintf(out, "Created token %s.\n", output_string(token, "name"));
  fprintf(out, "token id: %s\n", output_string(token, "id"));
  const char *account = json_string_value(json_object_get(token, "account_id"));
  fprintf(out, "account id: %s\n", account ? account : "none (admin token: every account)");
  output_cell(json_object_get(token, "permissions"), &cell);
  fprintf(out, "permissions: %s\n", cell.data);
  fprintf(out, "Keep the token now: it is not shown again.\n");
  fprintf(out, "token: %s\n", output_string(token, "value"));
  buf_free(&cell);
}

static void output_worker_registered(FILE *out, json_t *worker) {
  fprintf(out, "Registered worker %s at %s.\n", output_string(worker, "script_name"),
          output_string(worker, "url"));
  fprintf(out, "Keep the signing secret now: it is not shown again.\n");
  fprintf(out, "signing secret: %s\n", output_string(worker, "secret"));
}

static void output_event_published(FILE *out, json_t *result) {
  json_t *deliveries = json_object_get(result, "deliveries");
  size_t count = json_array_size(deliveries);
  fprintf(out, "Published event %s to %zu subscription%s.\n", output_string(result, "type"), count,
          count == 1 ? "" : "s");
  size_t i;
  json_t *delivery;
  json_array_foreach(deliveries, i, delivery)
      fprintf(out, "subscription %s -> queue %s\n", output_string(delivery, "subscription_id"),
              output_string(delivery, "queue_id"));
}

/* model_name, worker_name or workflow_name: the one a source may name. */
static const char *output_source_resource(json_t *source) {
  static const char *const fields[] = {"model_name", "worker_name", "workflow_name"};
  for (size_t i = 0; i < 3; i++) {
    const char *value = json_string_value(json_object_get(source, fields[i]));
    if (value) return value;
  }
  return NULL;
}

/* wrangler's list columns: events joined by ", ", Enabled as Yes/No. */
static void output_subscription_list(FILE *out, const cli_request_t *req, json_t *list) {
  static const output_column_t columns[] = {
      {"ID", "id"},         {"Name", "name"},         {"Source", "source"},
      {"Events", "events"}, {"Resource", "resource"}, {"Enabled", "enabled"},
      {NULL, NULL}};
  if (json_array_size(list) == 0) {
    fprintf(out, "No event subscriptions found for queue '%s'.\n", req->queue_name);
    return;
  }
  json_t *rows = json_array();
  size_t i;
  json_t *subscription;
  json_array_foreach(list, i, subscription) {
    json_t *source = json_object_get(subscription, "source");
    buf_t events = BUF_INIT;
    size_t e;
    json_t *event;
    json_array_foreach(json_object_get(subscription, "events"), e, event)
        buf_printf(&events, "%s%s", e ? ", " : "", json_string_value(event));
    json_array_append_new(
        rows, json_pack("{s:O, s:O, s:O, s:s, s:s?, s:s}", "id", json_object_get(subscription, "id"),
                        "name", json_object_get(subscription, "name"), "source",
                        json_object_get(source, "type"), "events", events.data ? events.data : "",
                        "resource", output_source_resource(source), "enabled",
                        json_is_true(json_object_get(subscription, "enabled")) ? "Yes" : "No"));
    buf_free(&events);
  }
  fprintf(out, "Event subscriptions for queue '%s':\n", req->queue_name);
  output_table(out, rows, columns);
  json_decref(rows);
}

static void output_subscription(FILE *out, json_t *subscription) {
  json_t *source = json_object_get(subscription, "source");
  const char *resource = output_source_resource(source);
  buf_t events = BUF_INIT;
  output_cell(json_object_get(subscription, "events"), &events);
  fprintf(out, "ID: %s\nName: %s\nSource: %s\n", output_string(subscription, "id"),
          output_string(subscription, "name"), output_string(source, "type"));
  if (resource) fprintf(out, "Resource: %s\n", resource);
  fprintf(out, "Queue ID: %s\nEvents: %s\nEnabled: %s\nCreated At: %s\nModified At: %s\n",
          output_string(json_object_get(subscription, "destination"), "queue_id"), events.data,
          json_is_true(json_object_get(subscription, "enabled")) ? "Yes" : "No",
          output_string(subscription, "created_at"), output_string(subscription, "modified_at"));
  buf_free(&events);
}

/* Subscription commands; --json prints the result itself instead. */
static void output_subscription_after(FILE *out, const cli_request_t *req, json_t *result) {
  if (req->json) {
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fprintf(out, "%s\n", text);
    free(text);
    return;
  }
  const char *name = output_string(result, "name"), *id = output_string(result, "id");
  switch (req->command) {
  case CLI_SUBSCRIPTION_CREATE:
    fprintf(out, "Successfully created event subscription '%s' with id '%s'.\n", name, id);
    break;
  case CLI_SUBSCRIPTION_UPDATE:
    fprintf(out, "Successfully updated event subscription '%s' with id '%s'.\n", name, id);
    break;
  case CLI_SUBSCRIPTION_DELETE:
    fprintf(out, "Successfully deleted event subscription '%s' with id '%s'.\n", name, id);
    break;
  case CLI_SUBSCRIPTION_LIST: output_subscription_list(out, req, result); break;
  default: output_subscription(out, result); break;
  }
}

static const output_column_t output_queue_columns[] = {
    {"id", "queue_id"},         {"name", "queue_name"},
    {"created_on", "created_on"}, {"modified_on", "modified_on"},
    {"producers", "producers_total_count"}, {"consumers", "consumers_total_count"},
    {NULL, NULL}};

static const output_column_t output_account_columns[] = {
    {"id", "id"}, {"name", "name"}, {"created_on", "created_on"}, {NULL, NULL}};

/* No "value" column: listing never shows a secret. */
static const output_column_t output_token_columns[] = {
    {"id", "id"},           {"name", "name"},
    {"account_id", "account_id"}, {"permissions", "permissions"},
    {"created_on", "created_on"}, {NULL, NULL}};

/* No "secret" column either. */
static const output_column_t output_worker_columns[] = {
    {"script_name", "script_name"}, {"url", "url"}, {"timeout_ms", "timeout_ms"},
    {"created_on", "created_on"}, {NULL, NULL}};

static const output_column_t output_audit_columns[] = {
    {"when", "when"},   {"action", "action"}, {"resource", "resource"}, {"queue", "queue"},
    {"actor", "actor"}, {"ip", "ip"},         {NULL, NULL}};

/* Cloudflare's nested audit entries as flat table rows. */
static void output_audit(FILE *out, json_t *entries) {
  json_t *rows = json_array(), *entry;
  size_t i;
  json_array_foreach(entries, i, entry) {
    json_t *resource = json_object_get(entry, "resource"), *actor = json_object_get(entry, "actor");
    char what[96], who[200];
    snprintf(what, sizeof what, "%s %s", output_string(resource, "type"), output_string(resource, "id"));
    snprintf(who, sizeof who, "%s (%s)", output_string(actor, "name"), output_string(actor, "id"));
    json_array_append_new(
        rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "when", output_string(entry, "when"), "action",
                        output_string(json_object_get(entry, "action"), "type"), "resource", what, "queue",
                        output_string(json_object_get(entry, "metadata"), "queue_name"), "actor", who, "ip",
                        output_string(actor, "ip")));
  }
  output_table(out, rows, output_audit_columns);
  json_decref(rows);
}

void cli_output_before(FILE *out, const cli_request_t *req) {
  const char *q = req->queue_name;
  switch (req->command) {
  case CLI_QUEUES_CREATE: fprintf(out, "Creating queue %s.\n", q); break;
  case CLI_QUEUES_UPDATE: fprintf(out, "Updating queue %s.\n", q); break;
  case CLI_QUEUES_DELETE: fprintf(out, "Deleting queue %s.\n", q); break;
  case CLI_QUEUES_PAUSE: fprintf(out, "Pausing message delivery for queue %s.\n", q); break;
  case CLI_QUEUES_RESUME: fprintf(out, "Resuming message delivery for queue %s.\n", q); break;
  case CLI_QUEUES_PURGE: fprintf(out, "Purging queue %s.\n", q); break;
  case CLI_CONSUMER_WORKER_ADD:
  case CLI_CONSUMER_HTTP_ADD: fprintf(out, "Adding consumer to queue %s.\n", q); break;
  case CLI_CONSUMER_WORKER_REMOVE:
  case CLI_CONSUMER_HTTP_REMOVE: fprintf(out, "Removing consumer from queue %s.\n", q); break;
  case CLI_SUBSCRIPTION_CREATE:
    fprintf(out, "Creating event subscription for queue '%s'...\n", q);
    break;
  case CLI_SUBSCRIPTION_UPDATE:
    if (!req->json) fprintf(out, "Updating event subscription...\n");
    break;
  default: break;
  }
}

void cli_output_after(FILE *out, const cli_request_t *req, json_t *queue, json_t *result) {
  const char *q = req->queue_name;
  switch (req->command) {
  case CLI_QUEUES_LIST: output_table(out, result, output_queue_columns); break;
  case CLI_QUEUES_CREATE: fprintf(out, "Created queue %s.\n", q); break;
  case CLI_QUEUES_INFO: output_queue_info(out, queue, result); break;
  case CLI_QUEUES_UPDATE: fprintf(out, "Updated queue %s.\n", q); break;
  case CLI_QUEUES_DELETE: fprintf(out, "Deleted queue %s.\n", q); break;
  case CLI_QUEUES_PAUSE: fprintf(out, "Paused message delivery for queue %s.\n", q); break;
  case CLI_QUEUES_RESUME: fprintf(out, "Resumed message delivery for queue %s.\n", q); break;
  case CLI_QUEUES_PURGE: fprintf(out, "Purged queue %s.\n", q); break;
  case CLI_CONSUMER_WORKER_ADD:
  case CLI_CONSUMER_HTTP_ADD: fprintf(out, "Added consumer to queue %s.\n", q); break;
  case CLI_CONSUMER_WORKER_REMOVE:
  case CLI_CONSUMER_HTTP_REMOVE: fprintf(out, "Removed consumer from queue %s.\n", q); break;
  case CLI_ACCOUNTS_CREATE:
    fprintf(out, "Created account %s.\n", output_string(result, "name"));
    fprintf(out, "account id: %s\n", output_string(result, "id"));
    break;
  case CLI_ACCOUNTS_LIST: output_table(out, result, output_account_columns); break;
  case CLI_TOKENS_CREATE: output_token_created(out, result); break;
  case CLI_TOKENS_LIST: output_table(out, result, output_token_columns); break;
  case CLI_TOKENS_REVOKE: fprintf(out, "Revoked token %s.\n", strrchr(req->path, '/') + 1); break;
  case CLI_WORKERS_REGISTER: output_worker_registered(out, result); break;
  case CLI_WORKERS_LIST: output_table(out, result, output_worker_columns); break;
  case CLI_WORKERS_REMOVE: fprintf(out, "Removed worker %s.\n", strrchr(req->path, '/') + 1); break;
  case CLI_EVENTS_PUBLISH: output_event_published(out, result); break;
  case CLI_SUBSCRIPTION_CREATE:
  case CLI_SUBSCRIPTION_LIST:
  case CLI_SUBSCRIPTION_GET:
  case CLI_SUBSCRIPTION_UPDATE:
  case CLI_SUBSCRIPTION_DELETE: output_subscription_after(out, req, result); break;
  case CLI_AUDIT_LIST: output_audit(out, result); break;
  }
}
