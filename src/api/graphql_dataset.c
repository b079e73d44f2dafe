/*
 * graphql_dataset.c — the Queues datasets of the GraphQL Analytics API
 * (seed 004, "Metrics"): queueBacklogAdaptiveGroups (also spelt
 * queuesBacklogAdaptiveGroups), queueConsumerMetricsAdaptiveGroups and
 * queueMessageOperationsAdaptiveGroups, answered from the metrics history's
 * minute rows (control/metrics_history.h) with one SQL query each.
 *
 * A dataset field's selection becomes the SELECT list (count, avg/sum/max
 * blocks, dimensions, which are also the GROUP BY), its filter the WHERE
 * clause (every value bound as a parameter; field names come from fixed
 * tables, never from the request), orderBy the ORDER BY and limit the LIMIT.
 * Every query is confined to the caller's account. Averages over time are
 * exact: the backlog and concurrency are stored as integrals (value × ms)
 * with the ms observed. Loop thread; the reader connection never writes; a
 * query running past DATASET_QUERY_BUDGET_MS is interrupted with an error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "api/graphql_exec.h"
#include "control/metrics_history.h"
#include "util/buf.h"
#include "util/clock.h"

#define DATASET_MAX_LIMIT 10000
#define DATASET_DEFAULT_LIMIT 10000
#define DATASET_MAX_FILTER_DEPTH 8
/* The loop thread's time one dataset query may take. */
#define DATASET_QUERY_BUDGET_MS 500

typedef enum { KIND_INT, KIND_REAL, KIND_TEXT } column_kind_t;

typedef struct {
  const char *name;
  const char *sql;
  column_kind_t kind;
} field_def_t;

typedef struct {
  const char *block; /* "avg", "sum", "max" */
  const field_def_t *fields;
} block_def_t;

typedef enum { FILTER_TIME, FILTER_TEXT } filter_kind_t;

typedef struct {
  const char *name;
  const char *sql;
  filter_kind_t kind;
} filter_def_t;

typedef struct {
  const char *names[2];
  const char *type_name;
  const char *table;
  const char *count_sql;
  const block_def_t *blocks; /* NULL-terminated by block */
  const field_def_t *dimensions;
  const filter_def_t *filters;
} dataset_t;

#define TIME_TEXT(format, ms) "strftime('" format "', (" ms ") / 1000, 'unixepoch')"
#define TRUNCATED(period) "(minute_ms - minute_ms % " period ")"

#define TIME_DIMENSIONS                                                                          \
  {"datetime", TIME_TEXT("%Y-%m-%dT%H:%M:%SZ", "minute_ms"), KIND_TEXT},                         \
      {"datetimeMinute", TIME_TEXT("%Y-%m-%dT%H:%M:%SZ", "minute_ms"), KIND_TEXT},               \
      {"datetimeFiveMinutes", TIME_TEXT("%Y-%m-%dT%H:%M:%SZ", TRUNCATED("300000")), KIND_TEXT},  \
      {"datetimeFifteenMinutes", TIME_TEXT("%Y-%m-%dT%H:%M:%SZ", TRUNCATED("900000")), KIND_TEXT}, \
      {"datetimeHour", TIME_TEXT("%Y-%m-%dT%H:%M:%SZ", TRUNCATED("3600000")), KIND_TEXT},        \
      {"date", TIME_TEXT("%Y-%m-%d", "minute_ms"), KIND_TEXT}, {"queueID", "queue_id", KIND_TEXT}

#define TIME_FILTERS                                                                      \
  {"datetime", "minute_ms", FILTER_TIME}, {"datetimeMinute", "minute_ms", FILTER_TIME},    \
      {"datetimeFiveMinutes", TRUNCATED("300000"), FILTER_TIME},                           \
      {"datetimeFifteenMinutes", TRUNCATED("900000"), FILTER_TIME},                        \
      {"datetimeHour", TRUNCATED("3600000"), FILTER_TIME},                                 \
      {"date", TIME_TEXT("%Y-%m-%d", "minute_ms"), FILTER_TEXT}, {"queueId", "queue_id", FILTER_TEXT}

#define OVER_TIME(integral) "CAST(SUM(" integral ") AS REAL) / NULLIF(SUM(observed_ms), 0)"
#define PER_MESSAGE(total) "CAST(SUM(" total ") AS REAL) / NULLIF(SUM(count), 0)"

static const field_def_t backlog_avg[] = {{"messages", OVER_TIME("messages_ms"), KIND_REAL},
                                          {"bytes", OVER_TIME("bytes_ms"), KIND_REAL},
                                          {"delayedMessages", OVER_TIME("delayed_ms"), KIND_REAL},
                                          {NULL, NULL, 0}};
static const field_def_t concurrency_avg[] = {{"concurrency", OVER_TIME("concurrency_ms"), KIND_REAL},
                                              {NULL, NULL, 0}};
static const field_def_t operations_sum[] = {{"billableOperations", "SUM(billable)", KIND_INT},
                                             {"bytes", "SUM(bytes)", KIND_INT},
                                             {NULL, NULL, 0}};
static const field_def_t operations_avg[] = {{"lagTime", PER_MESSAGE("lag_ms"), KIND_REAL},
                                             {"retryCount", PER_MESSAGE("retries"), KIND_REAL},
                                             {NULL, NULL, 0}};
static const field_def_t operations_max[] = {{"messageSize", "MAX(max_size)", KIND_INT}, {NULL, NULL, 0}};

static const block_def_t backlog_blocks[] = {{"avg", backlog_avg}, {NULL, NULL}};
static const block_def_t concurrency_blocks[] = {{"avg", concurrency_avg}, {NULL, NULL}};
static const block_def_t operations_blocks[] = {
    {"sum", operations_sum}, {"avg", operations_avg}, {"max", operations_max}, {NULL, NULL}};

static const field_def_t minute_dimensions[] = {TIME_DIMENSIONS, {NULL, NULL, 0}};
static const field_def_t operation_dimensions[] = {TIME_DIMENSIONS,
                                                   {"actionType", METRICS_HISTORY_ACTION_TYPE_SQL, KIND_TEXT},
                                                   {"consumerType", "consumer_type", KIND_TEXT},
                                                   {"outcome", METRICS_HISTORY_OUTCOME_SQL, KIND_TEXT},
                                                   {NULL, NULL, 0}};
static const filter_def_t minute_filters[] = {TIME_FILTERS, {NULL, NULL, 0}};
static const filter_def_t operation_filters[] = {TIME_FILTERS,
                                                 {"actionType", METRICS_HISTORY_ACTION_TYPE_SQL, FILTER_TEXT},
                                                 {"consumerType", "consumer_type", FILTER_TEXT},
                                                 {"outcome", METRICS_HISTORY_OUTCOME_SQL, FILTER_TEXT},
                                                 {NULL, NULL, 0}};

static const dataset_t datasets[] = {
    {{"queueBacklogAdaptiveGroups", "queuesBacklogAdaptiveGroups"}, "QueueBacklogAdaptiveGroups",
     "queue_minutes JOIN queues USING (key)", "COUNT(*)", backlog_blocks, minute_dimensions, minute_filters},
    {{"queueConsumerMetricsAdaptiveGroups", NULL}, "QueueConsumerMetricsAdaptiveGroups",
     "queue_minutes JOIN queues USING (key)", "COUNT(*)", concurrency_blocks, minute_dimensions, minute_filters},
    {{"queueMessageOperationsAdaptiveGroups", NULL}, "QueueMessageOperationsAdaptiveGroups",
     "queue_operation_minutes JOIN queues USING (key)", "SUM(count)", operations_blocks, operation_dimensions,
     operation_filters},
};

static const dataset_t *dataset_find(const char *name) {
  for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++)
    for (int n = 0; n < 2; n++)
      if (datasets[i].names[n] && strcmp(datasets[i].names[n], name) == 0) return &datasets[i];
  return NULL;
}

bool graphql_dataset_known(const char *name) { return dataset_find(name) != NULL; }

static const field_def_t *field_find(const field_def_t *fields, const char *name) {
  for (; fields->name; fields++)
    if (strcmp(fields->name, name) == 0) return fields;
  return NULL;
}

/* --- the query being built ------------------------------------------------- */

typedef struct {
  const char *outer; /* response key of the block, NULL for count */
  const char *inner;
  column_kind_t kind;
} column_t;

typedef struct {
  const dataset_t *dataset;
  buf_t select, where, group, order;
  json_t *params; /* bound in order */
  column_t columns[64];
  size_t column_count;
} query_t;

static bool query_add_column(graphql_exec_t *exec, query_t *query, const char *outer,
                             const char *inner, const field_def_t *def) {
  if (query->column_count == sizeof query->columns / sizeof query->columns[0])
    return graphql_fail(exec, "Too many fields selected");
  query->columns[query->column_count++] = (column_t){outer, inner, def->kind};
  buf_printf(&query->select, "%s%s", query->select.len ? ", " : "", def->sql);
  return true;
}

typedef struct {
  query_t *query;
  const char *outer;
  const char *type_name;
  const field_def_t *fields; /* of the block, or the dimensions */
  bool dimensions;
} block_pass_t;

static bool select_block_field(graphql_exec_t *exec, const gql_selection_t *field, void *arg) {
  block_pass_t *pass = arg;
  const field_def_t *def = field_find(pass->fields, field->name);
  if (!def || field->selections || field->arguments)
    return graphql_fail(exec, "Cannot query field \"%s\" on type \"%s\"", field->name, pass->type_name);
  if (pass->dimensions)
    buf_printf(&pass->query->group, "%s%s", pass->query->group.len ? ", " : "", def->sql);
  return query_add_column(exec, pass->query, pass->outer, graphql_key(field), def);
}

static bool select_field(graphql_exec_t *exec, const gql_selection_t *field, void *arg) {
  query_t *query = arg;
  const dataset_t *dataset = query->dataset;
  if (strcmp(field->name, "count") == 0 && !field->selections) {
    field_def_t count = {"count", dataset->count_sql, KIND_INT};
    return query_add_column(exec, query, NULL, graphql_key(field), &count);
  }
  block_pass_t pass = {query, graphql_key(field), NULL, NULL, false};
  if (strcmp(field->name, "dimensions") == 0) {
    pass.fields = dataset->dimensions;
    pass.dimensions = true;
  }
  for (const block_def_t *block = dataset->blocks; !pass.fields && block->block; block++)
    if (strcmp(block->block, field->name) == 0) pass.fields = block->fields;
  if (!pass.fields || !field->selections)
    return graphql_fail(exec, "Cannot query field \"%s\" on type \"%s\"", field->name, dataset->type_name);
  char type_name[96];
  snprintf(type_name, sizeof type_name, "%s%s", dataset->type_name,
           pass.dimensions ? "Dimensions" : field->name);
  pass.type_name = type_name;
  return graphql_each_field(exec, field->selections, select_block_field, &pass);
}

/* --- filter ---------------------------------------------------------------- */

static const struct {
  const char *suffix, *sql;
} comparisons[] = {{"_geq", ">="}, {"_leq", "<="}, {"_gt", ">"}, {"_lt", "<"}, {"_neq", "!="},
                   {"_notin", "NOT IN"}, {"_in", "IN"}, {"", "="}};

static bool filter_bind(graphql_exec_t *exec, query_t *query, const filter_def_t *def, const char *key,
                        json_t *value) {
  if (def->kind == FILTER_TEXT) {
    if (!json_is_string(value)) return graphql_fail(exec, "filter %s: expected a string", key);
    json_array_append(query->params, value);
    return true;
  }
  uint64_t ms;
  if (!json_is_string(value) || !clock_parse_iso8601(json_string_value(value), &ms))
    return graphql_fail(exec, "filter %s: expected a time (ISO 8601, e.g. 2026-01-01T00:00:00Z)", key);
  json_array_append_new(query->params, json_integer((json_int_t)ms));
  return true;
}

static bool filter_field(graphql_exec_t *exec, query_t *query, const char *key, json_t *value) {
  for (size_t c = 0; c < sizeof comparisons / sizeof comparisons[0]; c++) {
    size_t key_len = strlen(key), suffix_len = strlen(comparisons[c].suffix);
    if (key_len <= suffix_len || strcmp(key + key_len - suffix_len, comparisons[c].suffix) != 0) continue;
    for (const filter_def_t *def = query->dataset->filters; def->name; def++) {
      if (strlen(def->name) != key_len - suffix_len || strncmp(def->name, key, key_len - suffix_len) != 0)
        continue;
      bool list = strstr(comparisons[c].sql, "IN") != NULL;
      if (list != json_is_array(value))
        return graphql_fail(exec, "filter %s: expected %s", key, list ? "a list" : "a single value");
      buf_printf(&query->where, "%s %s ", def->sql, comparisons[c].sql);
      if (!list) {
        buf_append_str(&query->where, "?");
        return filter_bind(exec, query, def, key, value);
      }
      buf_append_str(&query->where, "(");
      size_t i;
      json_t *item;
      json_array_foreach(value, i, item) {
        buf_append_str(&query->where, i ? ", ?" : "?");
        if (!filter_bind(exec, query, def, key, item)) return false;
      }
      buf_append_str(&query->where, i ? ")" : "NULL)");
      return true;
    }
  }
  return graphql_fail(exec, "Unknown filter field \"%s\" on %s", key, query->dataset->type_name);
}

static bool filter_object(graphql_exec_t *exec, query_t *query, json_t *filter, unsigned depth);

/* AND: [filter…] / OR: [filter…] */
static bool filter_group(graphql_exec_t *exec, query_t *query, const char *key, json_t *list, unsigned depth) {
  if (!json_is_array(list)) return graphql_fail(exec, "filter %s: expected a list of filters", key);
  buf_append_str(&query->where, "(");
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    if (i) buf_printf(&query->where, " %s ", key);
    if (!filter_object(exec, query, item, depth + 1)) return false;
  }
  buf_append_str(&query->where, i ? ")" : strcmp(key, "AND") == 0 ? "1)" : "0)");
  return true;
}

static bool filter_object(graphql_exec_t *exec, query_t *query, json_t *filter, unsigned depth) {
  if (depth > DATASET_MAX_FILTER_DEPTH) return graphql_fail(exec, "filter nested too deeply");
  if (!json_is_object(filter)) return graphql_fail(exec, "filter: expected an object");
  buf_append_str(&query->where, "(1");
  const char *key;
  json_t *value;
  json_object_foreach(filter, key, value) {
    buf_append_str(&query->where, " AND ");
    bool ok = strcmp(key, "AND") == 0 || strcmp(key, "OR") == 0
                  ? filter_group(exec, query, key, value, depth)
                  : filter_field(exec, query, key, value);
    if (!ok) return false;
  }
  buf_append_str(&query->where, ")");
  return true;
}

/* --- orderBy, limit -------------------------------------------------------- */

/* "datetimeHour", "count", "sum_bytes", "avg_lagTime" … to SQL. */
static const char *order_expression(const dataset_t *dataset, const char *name) {
  const field_def_t *def = field_find(dataset->dimensions, name);
  if (def) return def->sql;
  if (strcmp(name, "count") == 0) return dataset->count_sql;
  for (const block_def_t *block = dataset->blocks; block->block; block++) {
    size_t len = strlen(block->block);
    if (strncmp(name, block->block, len) == 0 && name[len] == '_' && (def = field_find(block->fields, name + len + 1)))
      return def->sql;
  }
  return NULL;
}

static bool order_item(graphql_exec_t *exec, query_t *query, json_t *item) {
  const char *text = json_string_value(item);
  const char *underscore = text ? strrchr(text, '_') : NULL;
  if (!underscore || (strcmp(underscore, "_ASC") != 0 && strcmp(underscore, "_DESC") != 0))
    return graphql_fail(exec, "orderBy: expected values such as datetimeHour_DESC");
  char name[64];
  snprintf(name, sizeof name, "%.*s", (int)(underscore - text), text);
  const char *sql = order_expression(query->dataset, name);
  if (!sql) return graphql_fail(exec, "orderBy: %s is not a field of %s", name, query->dataset->type_name);
  buf_printf(&query->order, "%s%s %s", query->order.len ? ", " : "", sql, underscore + 1);
  return true;
}

static bool query_order(graphql_exec_t *exec, query_t *query, json_t *order_by) {
  if (!order_by || json_is_null(order_by)) return true;
  if (!json_is_array(order_by)) return order_item(exec, query, order_by); /* a list of one */
  size_t i;
  json_t *item;
  json_array_foreach(order_by, i, item) if (!order_item(exec, query, item)) return false;
  return true;
}

/* --- running it ------------------------------------------------------------ */

static json_t *column_value(sqlite3_stmt *statement, int col, column_kind_t kind) {
  if (sqlite3_column_type(statement, col) == SQLITE_NULL) return json_null();
  if (kind == KIND_INT) return json_integer(sqlite3_column_int64(statement, col));
  if (kind == KIND_REAL) return json_real(sqlite3_column_double(statement, col));
  return json_string((const char *)sqlite3_column_text(statement, col));
}

static json_t *query_row(const query_t *query, sqlite3_stmt *statement) {
  json_t *row = json_object();
  for (size_t c = 0; c < query->column_count; c++) {
    const column_t *column = &query->columns[c];
    json_t *target = row;
    if (column->outer) {
      target = json_object_get(row, column->outer);
      if (!target) json_object_set_new(row, column->outer, target = json_object());
    }
    json_object_set_new(target, column->inner, column_value(statement, (int)c, column->kind));
  }
  return row;
}

static void query_bind(sqlite3_stmt *statement, json_t *params) {
  size_t i;
  json_t *param;
  json_array_foreach(params, i, param) {
    if (json_is_integer(param)) sqlite3_bind_int64(statement, (int)i + 1, json_integer_value(param));
    else sqlite3_bind_text(statement, (int)i + 1, json_string_value(param), -1, SQLITE_STATIC);
  }
}

/* SQLite's progress handler: a query past its deadline is interrupted, so
 * that a query over months of many queues cannot stall the loop thread. */
static int query_past_deadline(void *deadline_ns) { return uv_hrtime() > *(uint64_t *)deadline_ns; }

static json_t *query_run(graphql_exec_t *exec, sqlite3 *db, query_t *query, json_int_t limit) {
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT %s FROM %s WHERE account_id = ? AND %s", query->select.data,
             query->dataset->table, query->where.len ? query->where.data : "1");
  if (query->group.len) buf_printf(&sql, " GROUP BY %s", query->group.data);
  buf_append_str(&sql, " HAVING COUNT(*) > 0");
  if (query->order.len) buf_printf(&sql, " ORDER BY %s", query->order.data);
  buf_printf(&sql, " LIMIT %lld", (long long)limit);
  sqlite3_stmt *statement = NULL;
  json_t *rows = NULL;
  uint64_t deadline_ns = uv_hrtime() + DATASET_QUERY_BUDGET_MS * 1000000ull;
  int rc = sqlite3_prepare_v2(db, sql.data, -1, &statement, NULL);
  if (rc == SQLITE_OK) {
    query_bind(statement, query->params);
    sqlite3_progress_handler(db, 1000, query_past_deadline, &deadline_ns);
    rows = json_array();
    while ((rc = sqlite3_step(statement)) == SQLITE_ROW) json_array_append_new(rows, query_row(query, statement));
    sqlite3_progress_handler(db, 0, NULL, NULL);
    if (rc != SQLITE_DONE) json_decref(rows), rows = NULL;
  }
  if (rc == SQLITE_INTERRUPT)
    graphql_fail(exec, "Query too expensive (over %d ms): narrow the filter (queueId, datetime range)",
                 DATASET_QUERY_BUDGET_MS);
  else if (!rows)
    graphql_fail(exec, "Internal error reading the metrics history: %s", sqlite3_errmsg(db));
  sqlite3_finalize(statement);
  buf_free(&sql);
  return rows;
}

typedef struct {
  json_t *filter, *order_by;
  json_int_t limit;
} dataset_args_t;

static bool dataset_arguments(graphql_exec_t *exec, const gql_selection_t *field, dataset_args_t *args) {
  args->limit = DATASET_DEFAULT_LIMIT;
  for (const gql_value_t *arg = field->arguments; arg; arg = arg->next) {
    json_t *value = graphql_value(exec, arg);
    if (strcmp(arg->name, "filter") == 0 && !args->filter) {
      args->filter = value;
    } else if (strcmp(arg->name, "orderBy") == 0 && !args->order_by) {
      args->order_by = value;
    } else if (strcmp(arg->name, "limit") == 0) {
      bool ok = json_is_integer(value) && json_integer_value(value) >= 0 &&
                json_integer_value(value) <= DATASET_MAX_LIMIT;
      if (ok) args->limit = json_integer_value(value);
      json_decref(value);
      if (!ok) return graphql_fail(exec, "limit must be an integer from 0 to %d", DATASET_MAX_LIMIT);
    } else {
      json_decref(value);
      return graphql_fail(exec, "Unknown argument \"%s\" on field \"%s\"", arg->name, field->name);
    }
  }
  return true;
}

json_t *graphql_dataset_query(graphql_exec_t *exec, sqlite3 *db, const char *account_id,
                              const gql_selection_t *field) {
  query_t query = {.dataset = dataset_find(field->name), .params = json_array()};
  json_array_append_new(query.params, json_string(account_id));
  dataset_args_t args = {0};
  json_t *rows = NULL;
  if (!field->selections) {
    graphql_fail(exec, "Field \"%s\" must have a selection of subfields", field->name);
  } else if (dataset_arguments(exec, field, &args) &&
             graphql_each_field(exec, field->selections, select_field, &query) &&
             (!args.filter || json_is_null(args.filter) || filter_object(exec, &query, args.filter, 0)) &&
             query_order(exec, &query, args.order_by)) {
    if (!query.column_count) graphql_fail(exec, "Select at least one field of %s", field->name);
    else rows = query_run(exec, db, &query, args.limit);
  }
  json_decref(args.filter);
  json_decref(args.order_by);
  json_decref(query.params);
  buf_free(&query.select);
  buf_free(&query.where);
  buf_free(&query.group);
  buf_free(&query.order);
  return rows;
}
