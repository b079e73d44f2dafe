/*
 * test_client.c — libwharf and the CLI runner against a scripted HTTP server
 * on 127.0.0.1 (a thread in this process): the requests they make (method,
 * path, body, bearer token, one keep-alive connection) and what they make of
 * replies (results, error envelopes, non-JSON, no server at all).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "wharf.h"

#define MAX_EXCHANGES 8

typedef struct {
  int status;
  const char *body;
} canned_reply_t;

typedef struct {
  char method[16];
  char path[512];
  char authorization[256];
  char body[2048];
} seen_request_t;

typedef struct {
  int listen_fd;
  int port;
  canned_reply_t replies[MAX_EXCHANGES];
  int reply_count;
  seen_request_t seen[MAX_EXCHANGES];
  int seen_count;
  int connections;
  pthread_t thread;
} fake_server_t;

/* Reads one request from fd into seen; false on EOF, timeout or junk. */
static bool fake_read_request(int fd, seen_request_t *seen) {
  char buf[8192] = "";
  size_t len = 0;
  char *end = NULL;
  while (!(end = strstr(buf, "\r\n\r\n"))) {
    struct pollfd p = {fd, POLLIN, 0};
    if (len >= sizeof(buf) - 1 || poll(&p, 1, 5000) <= 0) return false;
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) return false;
    len += (size_t)n;
    buf[len] = '\0';
  }
  sscanf(buf, "%15s %511s", seen->method, seen->path);
  const char *auth = strcasestr(buf, "\r\nAuthorization: ");
  seen->authorization[0] = '\0';
  if (auth && auth < end) sscanf(auth + 17, "%255[^\r]", seen->authorization);
  size_t content_length = 0;
  const char *cl = strcasestr(buf, "\r\nContent-Length: ");
  if (cl && cl < end) content_length = strtoul(cl + 18, NULL, 10);
  size_t have = len - (size_t)(end + 4 - buf);
  memcpy(seen->body, end + 4, have);
  while (have < content_length && have < sizeof(seen->body) - 1) {
    ssize_t n = read(fd, seen->body + have, sizeof(seen->body) - 1 - have);
    if (n <= 0) return false;
    have += (size_t)n;
  }
  seen->body[have] = '\0';
  return true;
}

static void *fake_serve(void *arg) {
  fake_server_t *server = arg;
  while (server->seen_count < server->reply_count) {
    struct pollfd p = {server->listen_fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    int fd = accept(server->listen_fd, NULL, NULL);
    if (fd < 0) break;
    server->connections++;
    while (server->seen_count < server->reply_count &&
           fake_read_request(fd, &server->seen[server->seen_count])) {
      const canned_reply_t *reply = &server->replies[server->seen_count++];
      char head[256];
      int n = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n",
                       reply->status, strlen(reply->body));
      if (write(fd, head, (size_t)n) < 0 || write(fd, reply->body, strlen(reply->body)) < 0)
        break;
    }
    close(fd);
  }
  return NULL;
}

static void fake_start(fake_server_t *server) {
  server->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(server->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(listen(server->listen_fd, 4), 0);
  socklen_t addr_len = sizeof(addr);
  getsockname(server->listen_fd, (struct sockaddr *)&addr, &addr_len);
  server->port = ntohs(addr.sin_port);
  pthread_create(&server->thread, NULL, fake_serve, server);
}

static void fake_stop(fake_server_t *server) {
  pthread_join(server->thread, NULL);
  close(server->listen_fd);
}

static wharf_client_t *fake_client(fake_server_t *server, const char *token) {
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", server->port);
  return wharf_client_new(url, "acct", token);
}

static void assert_json_text(const char *text, const char *expected) {
  json_t *a = json_loads(text, 0, NULL), *b = json_loads(expected, 0, NULL);
  assert_non_null(b);
  if (!json_equal(a, b)) fail_msg("got %s, expected %s", text, expected);
  json_decref(a);
  json_decref(b);
}

static void test_api_url_from_settings_and_environment(void **state) {
  (void)state;
  wharf_client_t *c = wharf_client_new("http://h:1", "a", "t");
  assert_string_equal(wharf_client_api_url(c), "http://h:1/client/v4");
  wharf_client_free(c);
  c = wharf_client_new("http://h:1/client/v4/", "a", "t");
  assert_string_equal(wharf_client_api_url(c), "http://h:1/client/v4");
  wharf_client_free(c);

  unsetenv("WHARF_URL");
  unsetenv("WHARF_ACCOUNT_ID");
  setenv("CLOUDFLARE_API_BASE_URL", "http://cf:2/client/v4", 1);
  setenv("CLOUDFLARE_ACCOUNT_ID", "cfacct", 1);
  c = wharf_client_new(NULL, NULL, NULL);
  assert_string_equal(wharf_client_api_url(c), "http://cf:2/client/v4");
  assert_string_equal(wharf_client_account_id(c), "cfacct");
  wharf_client_free(c);

  setenv("WHARF_URL", "http://w:3", 1);
  setenv("WHARF_ACCOUNT_ID", "wacct", 1);
  c = wharf_client_new(NULL, NULL, NULL);
  assert_string_equal(wharf_client_api_url(c), "http://w:3/client/v4");
  assert_string_equal(wharf_client_account_id(c), "wacct");
  wharf_client_free(c);

  unsetenv("WHARF_URL");
  unsetenv("CLOUDFLARE_API_BASE_URL");
  unsetenv("WHARF_ACCOUNT_ID");
  unsetenv("CLOUDFLARE_ACCOUNT_ID");
  c = wharf_client_new(NULL, NULL, NULL);
  assert_string_equal(wharf_client_api_url(c), WHARF_DEFAULT_URL "/client/v4");
  assert_string_equal(wharf_client_account_id(c), "");
  wharf_client_free(c);
}

static void test_escape(void **state) {
  (void)state;
  char *s = wharf_client_escape("a b/c&d=é");
  assert_string_equal(s, "a%20b%2Fc%26d%3D%C3%A9");
  free(s);
}

static void test_request_sends_and_unwraps(void **state) {
  (void)state;
  fake_server_t server = {.reply_count = 2,
                          .replies = {{200, "{\"success\":true,\"errors\":[],\"messages\":[],"
                                            "\"result\":{\"queue_id\":\"q1\"},"
                                            "\"result_info\":{\"page\":1}}"},
                                      {200, "{\"success\":true,\"errors\":[],\"result\":null}"}}};
  fake_start(&server);
  wharf_client_t *c = fake_client(&server, "tok");
  json_t *body = json_pack("{s:s}", "queue_name", "orders");
  json_t *result = NULL, *info = NULL;
  wharf_error_t err;
  assert_int_equal(wharf_request(c, "POST", "/accounts/acct/queues", body, &result, &info, &err),
                   WHARF_OK);
  assert_string_equal(json_string_value(json_object_get(result, "queue_id")), "q1");
  assert_int_equal(json_integer_value(json_object_get(info, "page")), 1);
  json_decref(result);
  json_decref(info);
  assert_int_equal(wharf_request(c, "DELETE", "/accounts/acct/queues/q1", NULL, &result, NULL,
                                 &err),
                   WHARF_OK);
  assert_true(json_is_null(result));
  json_decref(result);
  json_decref(body);
  wharf_client_free(c);
  fake_stop(&server);

  assert_string_equal(server.seen[0].method, "POST");
  assert_string_equal(server.seen[0].path, "/client/v4/accounts/acct/queues");
  assert_string_equal(server.seen[0].authorization, "Bearer tok");
  assert_json_text(server.seen[0].body, "{\"queue_name\":\"orders\"}");
  assert_string_equal(server.seen[1].method, "DELETE");
  assert_string_equal(server.seen[1].body, "");
  assert_int_equal(server.connections, 1); /* keep-alive */
}

static void test_request_errors(void **state) {
  (void)state;
  fake_server_t server = {
      .reply_count = 3,
      .replies = {{409, "{\"success\":false,\"errors\":[{\"code\":11009,\"message\":\"queue "
                        "name is already taken\"}],\"result\":null}"},
                  {502, "<html>bad gateway</html>"},
                  {200, "not json"}}};
  fake_start(&server);
  wharf_client_t *c = fake_client(&server, NULL);
  json_t *result = (json_t *)1;
  wharf_error_t err;
  assert_int_equal(wharf_request(c, "GET", "/x", NULL, &result, NULL, &err), WHARF_ERR_API);
  assert_null(result);
  assert_int_equal(err.http_status, 409);
  assert_int_equal(err.code, 11009);
  assert_string_equal(err.message, "queue name is already taken");
  assert_int_equal(wharf_request(c, "GET", "/x", NULL, NULL, NULL, &err), WHARF_ERR_API);
  assert_int_equal(err.http_status, 502);
  assert_non_null(strstr(err.message, "502"));
  assert_int_equal(wharf_request(c, "GET", "/x", NULL, NULL, NULL, &err), WHARF_ERR_PROTOCOL);
  wharf_client_free(c);
  fake_stop(&server);
  assert_string_equal(server.seen[0].authorization, ""); /* no token, no header */
}

static void test_request_without_server_names_url(void **state) {
  (void)state;
  /* Bind and close a socket to get a port nobody listens on. */
  fake_server_t server = {0};
  fake_start(&server);
  fake_stop(&server);
  wharf_client_t *c = fake_client(&server, "t");
  wharf_error_t err;
  assert_int_equal(wharf_request(c, "GET", "/x", NULL, NULL, NULL, &err), WHARF_ERR_TRANSPORT);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/client/v4", server.port);
  assert_non_null(strstr(err.message, url));
  wharf_client_free(c);
}

static void test_queue_find(void **state) {
  (void)state;
  fake_server_t server = {
      .reply_count = 2,
      .replies = {{200, "{\"success\":true,\"errors\":[],\"result\":[{\"queue_id\":\"q1\","
                        "\"queue_name\":\"my queue\"}]}"},
                  {200, "{\"success\":true,\"errors\":[],\"result\":[]}"}}};
  fake_start(&server);
  wharf_client_t *c = fake_client(&server, "t");
  json_t *queue;
  wharf_error_t err;
  assert_int_equal(wharf_queue_find(c, "my queue", &queue, &err), WHARF_OK);
  assert_string_equal(json_string_value(json_object_get(queue, "queue_id")), "q1");
  json_decref(queue);
  assert_int_equal(wharf_queue_find(c, "gone", &queue, &err), WHARF_ERR_NOT_FOUND);
  assert_null(queue);
  assert_int_equal(err.code, WHARF_CODE_QUEUE_NOT_FOUND);
  wharf_client_free(c);
  fake_stop(&server);
  assert_string_equal(server.seen[0].path, "/client/v4/accounts/acct/queues?name=my%20queue");
}

static void test_resolve_account_from_memberships(void **state) {
  (void)state;
  fake_server_t server = {
      .reply_count = 2,
      .replies = {{200, "{\"success\":true,\"errors\":[],\"result\":[{\"account\":"
                        "{\"id\":\"only\",\"name\":\"a\"}}]}"},
                  {200, "{\"success\":true,\"errors\":[],\"result\":[{\"account\":"
                        "{\"id\":\"a1\"}},{\"account\":{\"id\":\"a2\"}}]}"}}};
  fake_start(&server);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", server.port);
  unsetenv("WHARF_ACCOUNT_ID");
  unsetenv("CLOUDFLARE_ACCOUNT_ID");
  wharf_error_t err;
  wharf_client_t *c = wharf_client_new(url, NULL, "t");
  assert_int_equal(wharf_client_resolve_account(c, &err), WHARF_OK);
  assert_string_equal(wharf_client_account_id(c), "only");
  assert_int_equal(wharf_client_resolve_account(c, &err), WHARF_OK); /* no second call */
  wharf_client_free(c);
  c = wharf_client_new(url, NULL, "t");
  assert_int_equal(wharf_client_resolve_account(c, &err), WHARF_ERR_INVALID);
  assert_non_null(strstr(err.message, "WHARF_ACCOUNT_ID"));
  assert_string_equal(wharf_client_account_id(c), "");
  wharf_client_free(c);
  fake_stop(&server);
  assert_int_equal(server.seen_count, 2);
  assert_string_equal(server.seen[0].path, "/client/v4/memberships");
}

/* Runs cli_main with the environment pointing at server; stdout discarded. */
static int run_cli(fake_server_t *server, int argc, char **argv) {
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", server->port);
  setenv("WHARF_URL", url, 1);
  setenv("WHARF_ACCOUNT_ID", "acct", 1);
  setenv("WHARF_API_TOKEN", "tok", 1);
  fflush(stdout);
  int saved = dup(1);
  FILE *null = fopen("/dev/null", "w");
  dup2(fileno(null), 1);
  int code = cli_main(argc, argv);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  fclose(null);
  return code;
}

#define QUEUE_FOUND                                                                        \
  "{\"success\":true,\"errors\":[],\"result\":[{\"queue_id\":\"q1\",\"queue_name\":\"orders\"," \
  "\"consumers\":[{\"consumer_id\":\"c9\",\"type\":\"worker\",\"script\":\"mailer\"}]}]}"
#define OK_NULL "{\"success\":true,\"errors\":[],\"result\":null}"

static void test_cli_looks_up_queue_then_consumer(void **state) {
  (void)state;
  fake_server_t server = {.reply_count = 2, .replies = {{200, QUEUE_FOUND}, {200, OK_NULL}}};
  fake_start(&server);
  char *argv[] = {"wharf", "queues", "consumer", "remove", "orders", "mailer", NULL};
  assert_int_equal(run_cli(&server, 6, argv), 0);
  fake_stop(&server);
  assert_string_equal(server.seen[0].method, "GET");
  assert_string_equal(server.seen[0].path, "/client/v4/accounts/acct/queues?name=orders");
  assert_string_equal(server.seen[1].method, "DELETE");
  assert_string_equal(server.seen[1].path, "/client/v4/accounts/acct/queues/q1/consumers/c9");
  assert_string_equal(server.seen[1].authorization, "Bearer tok");
}

static void test_cli_sends_body_and_reports_failure(void **state) {
  (void)state;
  fake_server_t server = {
      .reply_count = 2,
      .replies = {{200, QUEUE_FOUND},
                  {400, "{\"success\":false,\"errors\":[{\"code\":11002,\"message\":\"bad "
                        "batch_size\"}],\"result\":null}"}}};
  fake_start(&server);
  char *argv[] = {"wharf", "queues", "consumer", "http", "add", "orders", "--batch-size", "500",
                  NULL};
  assert_int_equal(run_cli(&server, 8, argv), 1);
  fake_stop(&server);
  assert_string_equal(server.seen[1].method, "POST");
  assert_string_equal(server.seen[1].path, "/client/v4/accounts/acct/queues/q1/consumers");
  assert_json_text(server.seen[1].body, "{\"type\":\"http_pull\",\"settings\":{\"batch_size\":500}}");
}

static void test_cli_token_defaults_to_configured_account(void **state) {
  (void)state;
  fake_server_t server = {
      .reply_count = 1,
      .replies = {{200, "{\"success\":true,\"errors\":[],\"result\":{\"id\":\"t1\","
                        "\"value\":\"s\"}}"}}};
  fake_start(&server);
  char *argv[] = {"wharf", "tokens", "create", "--name", "ci", NULL};
  assert_int_equal(run_cli(&server, 5, argv), 0);
  fake_stop(&server);
  assert_string_equal(server.seen[0].path, "/client/v4/user/tokens");
  assert_json_text(server.seen[0].body,
                   "{\"name\":\"ci\",\"account_id\":\"acct\","
                   "\"permissions\":[\"queues_read\",\"queues_write\"]}");
}

static void test_cli_exit_codes_without_server(void **state) {
  (void)state;
  fake_server_t server = {0};
  fake_start(&server);
  fake_stop(&server);
  char *list[] = {"wharf", "queues", "list", NULL};
  assert_int_equal(run_cli(&server, 3, list), 1);
  char *bad[] = {"wharf", "queues", "list", "--nope", NULL};
  FILE *saved_err = stderr;
  stderr = fopen("/dev/null", "w");
  int code = run_cli(&server, 4, bad);
  fclose(stderr);
  stderr = saved_err;
  assert_int_equal(code, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_api_url_from_settings_and_environment),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_request_sends_and_unwraps),
      cmocka_unit_test(test_request_errors),
      cmocka_unit_test(test_request_without_server_names_url),
      cmocka_unit_test(test_queue_find),
      cmocka_unit_test(test_resolve_account_from_memberships),
      cmocka_unit_test(test_cli_looks_up_queue_then_consumer),
      cmocka_unit_test(test_cli_sends_body_and_reports_failure),
      cmocka_unit_test(test_cli_token_defaults_to_configured_account),
      cmocka_unit_test(test_cli_exit_codes_without_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
