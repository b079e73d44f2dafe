/*
 * test_cli.c — the CLI without a server: argv -> request (method, path, JSON
 * body) for every command and flag, usage errors, path resolution, consumer
 * lookup on a Queue object, and the printed output for canned results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/command.h"

#define ARGV(...) ((char *[]){"wharf", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"wharf", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(req, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (req), error, sizeof(error))

static char error[256];

static void assert_body(const cli_request_t *req, const char *expected_json) {
  json_t *expected = json_loads(expected_json, 0, NULL);
  assert_non_null(expected);
  if (!json_equal(expected, req->body)) {
    char *got = req->body ? json_dumps(req->body, JSON_SORT_KEYS) : strdup("NULL");
    fail_msg("body %s, expected %s", got, expected_json);
  }
  json_decref(expected);
}

static void test_queues_create_flags_become_settings(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "create", "orders", "--delivery-delay-secs", "5",
                         "--message-retention-period-secs=600"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_QUEUES_CREATE);
  assert_string_equal(req.method, "POST");
  assert_int_equal(req.scope, CLI_SCOPE_ACCOUNT);
  assert_string_equal(req.path, "/queues");
  assert_string_equal(req.queue_name, "orders");
  assert_body(&req, "{\"queue_name\":\"orders\",\"settings\":{\"delivery_delay\":5,"
                    "\"message_retention_period\":600}}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "create", "plain"), CLI_PARSE_OK);
  assert_body(&req, "{\"queue_name\":\"plain\"}");
  cli_request_free(&req);
}

static void test_queues_list_page_goes_in_query(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "list"), CLI_PARSE_OK);
  assert_string_equal(req.method, "GET");
  assert_string_equal(req.path, "/queues");
  assert_null(req.body);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "list", "--page", "3"), CLI_PARSE_OK);
  assert_string_equal(req.path, "/queues?page=3");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "list", "--page", "x3"), CLI_PARSE_USAGE);
  assert_non_null(strstr(error, "--page"));
}

static void test_queue_scoped_commands(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "info", "q1"), CLI_PARSE_OK);
  assert_int_equal(req.scope, CLI_SCOPE_QUEUE);
  assert_string_equal(req.method, "GET");
  assert_string_equal(req.path, "/metrics");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "update", "q1", "--delivery-delay-secs", "10"),
                   CLI_PARSE_OK);
  assert_string_equal(req.method, "PATCH");
  assert_string_equal(req.path, "");
  assert_body(&req, "{\"settings\":{\"delivery_delay\":10}}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "delete", "q1"), CLI_PARSE_OK);
  assert_string_equal(req.method, "DELETE");
  assert_null(req.body);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "pause-delivery", "q1"), CLI_PARSE_OK);
  assert_body(&req, "{\"settings\":{\"delivery_paused\":true}}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "resume-delivery", "q1"), CLI_PARSE_OK);
  assert_body(&req, "{\"settings\":{\"delivery_paused\":false}}");
  cli_request_free(&req);
}

static void test_purge_asks_unless_forced(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "purge", "q1"), CLI_PARSE_OK);
  assert_false(req.force);
  assert_string_equal(req.method, "POST");
  assert_string_equal(req.path, "/purge");
  assert_body(&req, "{\"delete_messages_permanently\":true}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "purge", "--force", "q1"), CLI_PARSE_OK);
  assert_true(req.force);
  assert_string_equal(req.queue_name, "q1");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "purge", "q1", "--force=yes"), CLI_PARSE_USAGE);
}

static const char *worker_consumer_body =
    "{\"type\":\"worker\",\"script_name\":\"mailer\",\"dead_letter_queue\":\"dlq\","
    "\"settings\":{\"batch_size\":5,\"max_wait_time_ms\":2500,\"max_retries\":7,"
    "\"max_concurrency\":3,\"retry_delay\":9}}";

static void test_worker_consumer_add_maps_every_flag(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "consumer", "add", "q1", "mailer", "--batch-size", "5",
                         "--batch-timeout", "2.5", "--message-retries", "7",
                         "--dead-letter-queue", "dlq", "--max-concurrency", "3",
                         "--retry-delay-secs", "9"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_WORKER_ADD);
  assert_int_equal(req.scope, CLI_SCOPE_QUEUE);
  assert_string_equal(req.path, "/consumers");
  assert_string_equal(req.queue_name, "q1");
  assert_body(&req, worker_consumer_body);
  cli_request_free(&req);

  /* "consumer worker add" is the same command. */
  assert_int_equal(PARSE(&req, "queues", "consumer", "worker", "add", "q1", "mailer",
                         "--batch-size=5", "--batch-timeout=2.5", "--message-retries=7",
                         "--dead-letter-queue=dlq", "--max-concurrency=3",
                         "--retry-delay-secs=9"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_WORKER_ADD);
  assert_body(&req, worker_consumer_body);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "consumer", "add", "q1"), CLI_PARSE_USAGE);
  assert_non_null(strstr(error, "script-name"));
  assert_int_equal(PARSE(&req, "queues", "consumer", "add", "q1", "s", "--visibility-timeout-secs",
                         "3"),
                   CLI_PARSE_USAGE);
  assert_non_null(strstr(error, "unknown flag --visibility-timeout-secs"));
}

static void test_http_consumer_add_and_removes(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "consumer", "http", "add", "q1", "--batch-size", "50",
                         "--message-retries", "2", "--visibility-timeout-secs", "30",
                         "--retry-delay-secs", "4", "--dead-letter-queue", "dead"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_HTTP_ADD);
  assert_body(&req, "{\"type\":\"http_pull\",\"dead_letter_queue\":\"dead\",\"settings\":{"
                    "\"batch_size\":50,\"max_retries\":2,\"visibility_timeout_ms\":30000,"
                    "\"retry_delay\":4}}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "consumer", "http", "remove", "q1"), CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_HTTP_REMOVE);
  assert_int_equal(req.scope, CLI_SCOPE_CONSUMER);
  assert_string_equal(req.method, "DELETE");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "consumer", "remove", "q1", "mailer"), CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_WORKER_REMOVE);
  assert_string_equal(req.script_name, "mailer");
  assert_null(req.body);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "consumer", "worker", "remove", "q1", "mailer"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_CONSUMER_WORKER_REMOVE);
  cli_request_free(&req);
}

static void test_admin_commands(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "accounts", "create", "--name", "acme"), CLI_PARSE_OK);
  assert_int_equal(req.scope, CLI_SCOPE_ROOT);
  assert_string_equal(req.path, "/accounts");
  assert_body(&req, "{\"name\":\"acme\"}");
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "accounts", "create"), CLI_PARSE_USAGE);
  assert_non_null(strstr(error, "--name is required"));

  assert_int_equal(PARSE(&req, "accounts", "list"), CLI_PARSE_OK);
  assert_string_equal(req.method, "GET");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "tokens", "create", "--permissions", "queues_read",
                         "--account", "0123", "--name", "ro"),
                   CLI_PARSE_OK);
  assert_string_equal(req.path, "/user/tokens");
  assert_false(req.admin);
  assert_body(&req, "{\"permissions\":[\"queues_read\"],\"account_id\":\"0123\",\"name\":\"ro\"}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "tokens", "create", "--admin", "--not-before", "2030-01-01T00:00:00Z",
                         "--expires-on", "2030-02-01T00:00:00Z"),
                   CLI_PARSE_OK);
  assert_body(&req, "{\"permissions\":[\"queues_read\",\"queues_write\"],"
                    "\"not_before\":\"2030-01-01T00:00:00Z\",\"expires_on\":\"2030-02-01T00:00:00Z\"}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "tokens", "create", "--admin"), CLI_PARSE_OK);
  assert_true(req.admin);
  assert_body(&req, "{\"permissions\":[\"queues_read\",\"queues_write\"]}");
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "tokens", "revoke", "abc123"), CLI_PARSE_OK);
  assert_string_equal(req.method, "DELETE");
  assert_string_equal(req.path, "/user/tokens/abc123");
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "tokens", "revoke", "../accounts"), CLI_PARSE_USAGE);
}

static void test_usage_errors_and_help(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(cli_parse(1, ARGV(NULL), &req, error, sizeof(error)), CLI_PARSE_HELP);
  assert_int_equal(PARSE(&req, "--help"), CLI_PARSE_HELP);
  assert_int_equal(PARSE(&req, "queues", "create", "--help"), CLI_PARSE_HELP);
  assert_int_equal(PARSE(&req, "queues", "frobnicate"), CLI_PARSE_USAGE);
  assert_string_equal(error, "unknown command: wharf queues frobnicate");
  assert_int_equal(PARSE(&req, "queues", "create"), CLI_PARSE_USAGE);
  assert_string_equal(error, "missing <name>");
  assert_int_equal(PARSE(&req, "queues", "create", "a", "b"), CLI_PARSE_USAGE);
  assert_int_equal(PARSE(&req, "queues", "create", "a", "--delivery-delay-secs"),
                   CLI_PARSE_USAGE);
  assert_string_equal(error, "--delivery-delay-secs needs a value");
  assert_int_equal(PARSE(&req, "queues", "create", "a", "--delivery-delay-secs", "1.5"),
                   CLI_PARSE_USAGE);
  assert_int_equal(PARSE(&req, "queues", "create", "a", "--bogus", "1"), CLI_PARSE_USAGE);
  assert_string_equal(error, "unknown flag --bogus");
}

static void test_request_path_per_scope(void **state) {
  (void)state;
  cli_request_t req;
  char *path;
  assert_int_equal(PARSE(&req, "queues", "info", "q"), CLI_PARSE_OK);
  path = cli_request_path(&req, "acct", "qid", NULL);
  assert_string_equal(path, "/accounts/acct/queues/qid/metrics");
  free(path);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "consumer", "http", "remove", "q"), CLI_PARSE_OK);
  path = cli_request_path(&req, "acct", "qid", "cid");
  assert_string_equal(path, "/accounts/acct/queues/qid/consumers/cid");
  free(path);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "queues", "list", "--page", "2"), CLI_PARSE_OK);
  path = cli_request_path(&req, "acct", NULL, NULL);
  assert_string_equal(path, "/accounts/acct/queues?page=2");
  free(path);
  cli_request_free(&req);

  assert_int_equal(PARSE(&req, "tokens", "list"), CLI_PARSE_OK);
  path = cli_request_path(&req, "acct", NULL, NULL);
  assert_string_equal(path, "/user/tokens");
  free(path);
  cli_request_free(&req);
}

static void test_consumer_find_matches_type_and_script(void **state) {
  (void)state;
  json_t *queue = json_loads(
      "{\"queue_id\":\"q\",\"consumers\":["
      "{\"consumer_id\":\"c1\",\"type\":\"worker\",\"script\":\"other\"},"
      "{\"consumer_id\":\"c2\",\"type\":\"worker\",\"script_name\":\"mailer\"},"
      "{\"consumer_id\":\"c3\",\"type\":\"http_pull\"}]}",
      0, NULL);
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "consumer", "remove", "q", "mailer"), CLI_PARSE_OK);
  assert_string_equal(cli_consumer_find(&req, queue), "c2");
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "queues", "consumer", "remove", "q", "nobody"), CLI_PARSE_OK);
  assert_null(cli_consumer_find(&req, queue));
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "queues", "consumer", "http", "remove", "q"), CLI_PARSE_OK);
  assert_string_equal(cli_consumer_find(&req, queue), "c3");
  cli_request_free(&req);
  json_decref(queue);
}

/* Runs the output step for argv-parsed req on canned JSON; returns the text. */
static char *render(cli_request_t *req, const char *queue_json, const char *result_json) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  json_t *queue = queue_json ? json_loads(queue_json, 0, NULL) : NULL;
  json_t *result = json_loads(result_json, JSON_DECODE_ANY, NULL);
  cli_output_before(out, req);
  cli_output_after(out, req, queue, result);
  fclose(out);
  json_decref(queue);
  json_decref(result);
  cli_request_free(req);
  return text;
}

static void test_output_messages_like_wrangler(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "create", "orders"), CLI_PARSE_OK);
  char *text = render(&req, NULL, "{\"queue_id\":\"x\"}");
  assert_string_equal(text, "Creating queue orders.\nCreated queue orders.\n");
  free(text);

  assert_int_equal(PARSE(&req, "queues", "pause-delivery", "orders"), CLI_PARSE_OK);
  text = render(&req, "{}", "{}");
  assert_string_equal(text, "Pausing message delivery for queue orders.\n"
                            "Paused message delivery for queue orders.\n");
  free(text);
}

static void test_audit_list(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "audit", "list", "--since", "2026-01-31T10:00:00+01:00", "--queue", "jobs"),
                   CLI_PARSE_OK);
  assert_int_equal(req.scope, CLI_SCOPE_ACCOUNT);
  assert_string_equal(req.method, "GET");
  assert_string_equal(req.path, "/audit_logs?since=2026-01-31T10%3A00%3A00%2B01%3A00&queue=jobs");
  char *text = render(&req, NULL,
                      "[{\"when\":\"2026-01-31T09:00:00.000Z\",\"action\":{\"type\":\"CreateQueue\"},"
                      "\"resource\":{\"type\":\"queue\",\"id\":\"q1\"},\"metadata\":{\"queue_name\":\"jobs\"},"
                      "\"actor\":{\"id\":\"t1\",\"name\":\"ci\",\"ip\":\"127.0.0.1\"}}]");
  assert_string_equal(text, "when                      action       resource  queue  actor    ip\n"
                            "2026-01-31T09:00:00.000Z  CreateQueue  queue q1  jobs   ci (t1)  127.0.0.1\n");
  free(text);
}

static void test_output_queue_list_table(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "list"), CLI_PARSE_OK);
  char *text = render(&req, NULL,
                      "[{\"queue_id\":\"id1\",\"queue_name\":\"alpha\",\"created_on\":\"c1\","
                      "\"modified_on\":\"m1\",\"producers_total_count\":0,"
                      "\"consumers_total_count\":1},"
                      "{\"queue_id\":\"id2\",\"queue_name\":\"a-longer-name\",\"created_on\":\"c2\","
                      "\"modified_on\":\"m2\",\"producers_total_count\":12,"
                      "\"consumers_total_count\":0}]");
  assert_string_equal(text, "id   name           created_on  modified_on  producers  consumers\n"
                            "id1  alpha          c1          m1           0          1\n"
                            "id2  a-longer-name  c2          m2           12         0\n");
  free(text);
}

static void test_output_queue_info_with_backlog(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "info", "orders"), CLI_PARSE_OK);
  char *text = render(&req,
                      "{\"queue_id\":\"id1\",\"queue_name\":\"orders\","
                      "\"created_on\":\"2026-01-01T00:00:00Z\",\"modified_on\":\"2026-01-02T00:00:00Z\","
                      "\"producers\":[],\"producers_total_count\":0,"
                      "\"consumers\":[{\"type\":\"worker\",\"script\":\"mailer\"}],"
                      "\"consumers_total_count\":1,\"settings\":{\"delivery_delay\":0,"
                      "\"delivery_paused\":true,\"message_retention_period\":345600}}",
                      "{\"backlog_count\":42,\"backlog_bytes\":4200,"
                      "\"oldest_message_timestamp_ms\":1767225600000}");
  assert_non_null(strstr(text, "Queue Name: orders\nQueue ID: id1\n"));
  assert_non_null(strstr(text, "Created On: 2026-01-01T00:00:00Z\n"));
  assert_non_null(strstr(text, "Last Modified: 2026-01-02T00:00:00Z\n"));
  assert_non_null(strstr(text, "Number of Producers: 0\n"));
  assert_non_null(strstr(text, "Number of Consumers: 1\nConsumers: worker:mailer\n"));
  assert_non_null(strstr(text, "Delivery Paused: true\n"));
  assert_non_null(strstr(text, "Backlog count: 42\n"));
  assert_non_null(strstr(text, "Backlog bytes: 4200\n"));
  assert_non_null(strstr(text, "Oldest message: 2026-01-01T00:00:00"));
  free(text);

  assert_int_equal(PARSE(&req, "queues", "info", "orders"), CLI_PARSE_OK);
  text = render(&req, "{\"queue_name\":\"orders\"}",
                "{\"backlog_count\":0,\"backlog_bytes\":0,\"oldest_message_timestamp_ms\":0}");
  assert_non_null(strstr(text, "Oldest message: none\n"));
  free(text);
}

static void test_output_admin_lines_scripts_rely_on(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "accounts", "create", "--name", "acme"), CLI_PARSE_OK);
  char *text = render(&req, NULL, "{\"id\":\"0123abcd\",\"name\":\"acme\"}");
  assert_non_null(strstr(text, "\naccount id: 0123abcd\n"));
  free(text);

  assert_int_equal(PARSE(&req, "tokens", "create"), CLI_PARSE_OK);
  text = render(&req, NULL,
                "{\"id\":\"tid\",\"name\":\"ci\",\"account_id\":\"acct\","
                "\"permissions\":[\"queues_read\",\"queues_write\"],\"value\":\"s3cret\"}");
  assert_non_null(strstr(text, "token id: tid\n"));
  assert_non_null(strstr(text, "permissions: queues_read,queues_write\n"));
  size_t len = strlen(text);
  const char *last = "\ntoken: s3cret\n";
  assert_true(len > strlen(last));
  assert_string_equal(text + len - strlen(last), last);
  free(text);

  /* A list never prints a secret, even if a server sent one. */
  assert_int_equal(PARSE(&req, "tokens", "list"), CLI_PARSE_OK);
  text = render(&req, NULL,
                "[{\"id\":\"tid\",\"name\":\"ci\",\"account_id\":null,"
                "\"permissions\":[\"queues_read\"],\"value\":\"s3cret\"}]");
  assert_non_null(strstr(text, "tid"));
  assert_null(strstr(text, "s3cret"));
  free(text);
}

static void test_workers_commands(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "workers", "register", "mailer", "--url", "http://127.0.0.1:9/q",
                         "--timeout-secs", "90"),
                   CLI_PARSE_OK);
  assert_int_equal(req.scope, CLI_SCOPE_ACCOUNT);
  assert_string_equal(req.method, "POST");
  assert_string_equal(req.path, "/workers/queue-handlers");
  assert_body(&req, "{\"script_name\":\"mailer\",\"url\":\"http://127.0.0.1:9/q\","
                    "\"timeout_ms\":90000}");
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "workers", "register", "mailer"), CLI_PARSE_USAGE);
  assert_string_equal(error, "--url is required");

  assert_int_equal(PARSE(&req, "workers", "remove", "mailer"), CLI_PARSE_OK);
  assert_string_equal(req.method, "DELETE");
  assert_string_equal(req.path, "/workers/queue-handlers/mailer");
  char *text = render(&req, NULL, "null");
  assert_string_equal(text, "Removed worker mailer.\n");
  free(text);

  assert_int_equal(PARSE(&req, "workers", "register", "mailer", "--url", "http://h/"),
                   CLI_PARSE_OK);
  text = render(&req, NULL,
                "{\"script_name\":\"mailer\",\"url\":\"http://h/\",\"secret\":\"k3y\"}");
  const char *last = "\nsigning secret: k3y\n";
  assert_string_equal(text + strlen(text) - strlen(last), last);
  free(text);

  assert_int_equal(PARSE(&req, "workers", "list"), CLI_PARSE_OK);
  text = render(&req, NULL,
                "[{\"script_name\":\"mailer\",\"url\":\"http://h/\",\"timeout_ms\":900000,"
                "\"created_on\":\"c\",\"secret\":\"k3y\"}]");
  assert_non_null(strstr(text, "script_name  url        timeout_ms  created_on\nmailer       http://h/  900000      c\n"));
  assert_null(strstr(text, "k3y"));
  free(text);
}

static void test_events_publish(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "events", "publish", "--type", "cf.workersAi.model.batch.queued",
                         "--source", "workersAi.model", "--model-name", "@cf/m",
                         "--payload", "{\"requestId\":\"r1\"}"),
                   CLI_PARSE_OK);
  assert_int_equal(req.command, CLI_EVENTS_PUBLISH);
  assert_int_equal(req.scope, CLI_SCOPE_ACCOUNT);
  assert_string_equal(req.method, "POST");
  assert_string_equal(req.path, "/event_subscriptions/events");
  assert_body(&req, "{\"type\":\"cf.workersAi.model.batch.queued\",\"source\":{\"type\":"
                    "\"workersAi.model\",\"modelName\":\"@cf/m\"},\"payload\":{\"requestId\":\"r1\"}}");
  char *text = render(&req, NULL,
                      "{\"type\":\"cf.workersAi.model.batch.queued\",\"deliveries\":"
                      "[{\"subscription_id\":\"s1\",\"queue_id\":\"q1\"}]}");
  assert_string_equal(text, "Published event cf.workersAi.model.batch.queued to 1 subscription.\n"
                            "subscription s1 -> queue q1\n");
  free(text);

  assert_int_equal(PARSE(&req, "events", "publish", "--type", "cf.kv.namespace.created",
                         "--payload", "{oops"),
                   CLI_PARSE_USAGE);
  assert_string_equal(error, "--payload needs JSON, not \"{oops\"");
  assert_int_equal(PARSE(&req, "events", "publish", "--payload", "{}"), CLI_PARSE_USAGE);
  assert_string_equal(error, "--type is required");
}

static void test_subscription_commands(void **state) {
  (void)state;
  cli_request_t req;
  assert_int_equal(PARSE(&req, "queues", "subscription", "create", "jobs", "--source",
                         "workflows.workflow", "--workflow-name", "wf", "--events",
                         "instance.queued,instance.completed", "--enabled", "false"),
                   CLI_PARSE_OK);
  assert_int_equal(req.scope, CLI_SCOPE_SUBSCRIPTION);
  assert_string_equal(req.method, "POST");
  assert_string_equal(req.path, "/event_subscriptions/subscriptions");
  assert_string_equal(req.queue_name, "jobs");
  assert_body(&req, "{\"enabled\":false,\"source\":{\"type\":\"workflows.workflow\","
                    "\"workflow_name\":\"wf\"},\"events\":[\"instance.queued\","
                    "\"instance.completed\"]}");
  cli_request_free(&req);
  assert_int_equal(PARSE(&req, "queues", "subscription", "create", "jobs", "--events", "x"),
                   CLI_PARSE_USAGE);
  assert_string_equal(error, "--source is required");
  assert_int_equal(PARSE(&req, "queues", "subscription", "update", "jobs", "--id", "ab12",
                         "--enabled", "yes"),
                   CLI_PARSE_USAGE);
  assert_string_equal(error, "--enabled needs true or false, not \"yes\"");
  assert_int_equal(PARSE(&req, "queues", "subscription", "get", "jobs", "--id", "../x"),
                   CLI_PARSE_USAGE);
  assert_string_equal(error, "--id may hold only letters, digits, '-' and '_'");

  assert_int_equal(PARSE(&req, "queues", "subscription", "update", "jobs", "--id", "ab12",
                         "--name", "n2"),
                   CLI_PARSE_OK);
  assert_string_equal(req.method, "PATCH");
  assert_string_equal(req.path, "/event_subscriptions/subscriptions/ab12");
  assert_body(&req, "{\"name\":\"n2\"}");
  char *text = render(&req, NULL, "{\"id\":\"ab12\",\"name\":\"n2\"}");
  assert_string_equal(text, "Updating event subscription...\n"
                            "Successfully updated event subscription 'n2' with id 'ab12'.\n");
  free(text);

  assert_int_equal(PARSE(&req, "queues", "subscription", "list", "jobs", "--page", "2"),
                   CLI_PARSE_OK);
  assert_string_equal(req.path, "/event_subscriptions/subscriptions?page=2");
  assert_null(req.body);
  text = render(&req, NULL,
                "[{\"id\":\"s1\",\"name\":\"a\",\"enabled\":true,\"events\":[\"batch.queued\","
                "\"batch.failed\"],\"source\":{\"type\":\"workersAi.model\",\"model_name\":\"@cf/m\"}},"
                "{\"id\":\"s2\",\"name\":\"b\",\"enabled\":false,\"events\":[\"bucket.created\"],"
                "\"source\":{\"type\":\"r2\"}}]");
  assert_string_equal(text, "Event subscriptions for queue 'jobs':\n"
                            "ID  Name  Source           Events                      Resource  Enabled\n"
                            "s1  a     workersAi.model  batch.queued, batch.failed  @cf/m     Yes\n"
                            "s2  b     r2               bucket.created              -         No\n");
  free(text);

  assert_int_equal(PARSE(&req, "queues", "subscription", "get", "jobs", "--id", "s2", "--json"),
                   CLI_PARSE_OK);
  assert_true(req.json);
  text = render(&req, NULL, "{\"id\":\"s2\"}");
  assert_string_equal(text, "{\n  \"id\": \"s2\"\n}\n");
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queues_create_flags_become_settings),
      cmocka_unit_test(test_queues_list_page_goes_in_query),
      cmocka_unit_test(test_queue_scoped_commands),
      cmocka_unit_test(test_purge_asks_unless_forced),
      cmocka_unit_test(test_worker_consumer_add_maps_every_flag),
      cmocka_unit_test(test_http_consumer_add_and_removes),
      cmocka_unit_test(test_admin_commands),
      cmocka_unit_test(test_workers_commands),
      cmocka_unit_test(test_events_publish),
      cmocka_unit_test(test_subscription_commands),
      cmocka_unit_test(test_usage_errors_and_help),
      cmocka_unit_test(test_request_path_per_scope),
      cmocka_unit_test(test_consumer_find_matches_type_and_script),
      cmocka_unit_test(test_output_messages_like_wrangler),
      cmocka_unit_test(test_audit_list),
      cmocka_unit_test(test_output_queue_list_table),
      cmocka_unit_test(test_output_queue_info_with_backlog),
      cmocka_unit_test(test_output_admin_lines_scripts_rely_on),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
