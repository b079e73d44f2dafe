/*
 * crawler.c — a web crawler that fans URLs out through a queue, with a
 * depth limit (seed 003, "Web Crawler with Queues").
 *
 * As in the seed, the queue holds {url, depth, maxDepth} jobs: the start URL
 * goes in at depth 0; each job is fetched (libcurl), its links extracted
 * (the seed's <a href="…"> pattern) and, while depth < maxDepth, enqueued at
 * depth + 1 in one send_batch; then the job is acked. A fetch that fails is
 * retried. Two things the seed leaves out keep the crawl finite and polite:
 * it stays on the start URL's host, and it enqueues each URL once.
 *
 * Here the crawler is a pull consumer, so one program is the producer and
 * the consumer; it stops when a pull finds the queue empty twice in a row.
 * Each fetched page prints "crawled URL depth=D links=N".
 *
 * Setup: wharf queues create crawl-queue && wharf queues consumer http add crawl-queue
 * Usage: crawler START_URL [MAX_DEPTH [QUEUE]]    (3, crawl-queue)
 * Try it on examples/crawler-site/ (e.g. `python3 -m http.server -d
 * examples/crawler-site 8000` and START_URL http://127.0.0.1:8000/).
 */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wharf.h>

#define MAX_URLS 4096

typedef struct {
  char *data;
  size_t len;
} page_t;

static char *seen[MAX_URLS];
static size_t seen_count;

/* True the first time url is offered. */
static bool first_sight(const char *url) {
  for (size_t i = 0; i < seen_count; i++)
    if (strcmp(seen[i], url) == 0) return false;
  if (seen_count < MAX_URLS) seen[seen_count++] = strdup(url);
  return true;
}

static size_t page_write(char *data, size_t size, size_t n, void *out) {
  page_t *page = out;
  char *grown = realloc(page->data, page->len + size * n + 1);
  if (!grown) return 0;
  memcpy(grown + page->len, data, size * n);
  page->len += size * n;
  grown[page->len] = '\0';
  page->data = grown;
  return size * n;
}

/* GETs url into page; false on a transport error or an HTTP error status. */
static bool fetch(CURL *curl, const char *url, page_t *page) {
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, page_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, page);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  return curl_easy_perform(curl) == CURLE_OK;
}

/* The absolute form of href relative to base when it is on base's host. */
static char *resolve_link(const char *base, const char *href) {
  CURLU *url = curl_url();
  char *host = NULL, *base_host = NULL, *out = NULL;
  if (curl_url_set(url, CURLUPART_URL, base, 0) == CURLUE_OK &&
      curl_url_get(url, CURLUPART_HOST, &base_host, 0) == CURLUE_OK &&
      curl_url_set(url, CURLUPART_URL, href, 0) == CURLUE_OK &&
      curl_url_get(url, CURLUPART_HOST, &host, 0) == CURLUE_OK && strcmp(host, base_host) == 0) {
    curl_url_set(url, CURLUPART_FRAGMENT, NULL, 0);
    curl_url_get(url, CURLUPART_URL, &out, 0);
  }
  curl_free(host);
  curl_free(base_host);
  curl_url_cleanup(url);
  return out;
}

/* Appends to links (a JSON array) every new same-host <a href="…"> of html. */
static void extract_links(const char *html, const char *base, json_t *links) {
  for (const char *a = strstr(html, "<a "); a; a = strstr(a + 1, "<a ")) {
    const char *end = strchr(a, '>');
    const char *href = strstr(a, "href=");
    if (!end || !href || href > end || (href[5] != '"' && href[5] != '\'')) continue;
    const char *close = strchr(href + 6, href[5]);
    if (!close || close > end) continue;
    char *raw = strndup(href + 6, (size_t)(close - href - 6));
    char *url = resolve_link(base, raw);
    if (url && first_sight(url)) json_array_append_new(links, json_string(url));
    curl_free(url);
    free(raw);
  }
}

static int enqueue(wharf_queue_t *queue, json_t *links, int depth, int max_depth,
                   wharf_error_t *err) {
  wharf_message_t messages[WHARF_BATCH_MAX_MESSAGES];
  char *texts[WHARF_BATCH_MAX_MESSAGES];
  size_t n = 0;
  int rc = WHARF_OK;
  for (size_t i = 0; i <= json_array_size(links) && rc == WHARF_OK; i++) {
    bool last = i == json_array_size(links);
    if (n == WHARF_BATCH_MAX_MESSAGES || (last && n > 0)) {
      rc = wharf_send_batch(queue, messages, n, WHARF_DELAY_DEFAULT, err);
      for (size_t j = 0; j < n; j++) free(texts[j]);
      n = 0;
    }
    if (last) break;
    json_t *job = json_pack("{s:O, s:i, s:i}", "url", json_array_get(links, i), "depth", depth,
                            "maxDepth", max_depth);
    texts[n] = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    messages[n] = (wharf_message_t){texts[n], strlen(texts[n]), WHARF_CONTENT_JSON,
                                    WHARF_DELAY_DEFAULT};
    n++;
  }
  return rc;
}

/* The seed's consumer body for one job. */
static int crawl_one(CURL *curl, wharf_queue_t *queue, wharf_received_message_t *msg,
                     wharf_error_t *err) {
  json_t *job = json_loads(msg->body, 0, NULL);
  const char *url = json_string_value(json_object_get(job, "url"));
  int depth = (int)json_integer_value(json_object_get(job, "depth"));
  int max_depth = (int)json_integer_value(json_object_get(job, "maxDepth"));
  page_t page = {0};
  int rc = WHARF_OK;
  if (url && fetch(curl, url, &page)) {
    json_t *links = json_array();
    if (page.data) extract_links(page.data, url, links);
    printf("crawled %s depth=%d links=%zu\n", url, depth, json_array_size(links));
    if (depth < max_depth) rc = enqueue(queue, links, depth + 1, max_depth, err);
    json_decref(links);
    if (rc == WHARF_OK) wharf_message_ack(msg);
  } else {
    fprintf(stderr, "crawling failed: %s\n", url ? url : "(no url)");
    wharf_message_retry(msg, WHARF_DELAY_DEFAULT);
  }
  fflush(stdout);
  free(page.data);
  json_decref(job);
  return rc;
}

static int crawl(wharf_queue_t *queue, wharf_error_t *err) {
  CURL *curl = curl_easy_init();
  int rc = WHARF_OK;
  for (int empty = 0; empty < 2 && rc == WHARF_OK;) {
    wharf_batch_t *batch = NULL;
    rc = wharf_pull(queue, 10, 0, &batch, err);
    if (rc != WHARF_OK) break;
    size_t count = wharf_batch_count(batch);
    empty = count == 0 ? empty + 1 : 0;
    for (size_t i = 0; i < count && rc == WHARF_OK; i++)
      rc = crawl_one(curl, queue, wharf_batch_message(batch, i), err);
    if (rc == WHARF_OK) rc = wharf_batch_commit(batch, err);
    wharf_batch_free(batch);
    if (count == 0) nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
  }
  curl_easy_cleanup(curl);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: crawler START_URL [MAX_DEPTH [QUEUE]]\n");
    return 2;
  }
  int max_depth = argc > 2 ? atoi(argv[2]) : 3;
  wharf_error_t err;
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = wharf_queue_open(client, argc > 3 ? argv[3] : "crawl-queue", &err);
  int rc = queue ? WHARF_OK : WHARF_ERR_NOT_FOUND;
  if (rc == WHARF_OK) {
    json_t *start = json_pack("[s]", argv[1]);
    first_sight(argv[1]);
    rc = enqueue(queue, start, 0, max_depth, &err);
    json_decref(start);
  }
  if (rc == WHARF_OK) rc = crawl(queue, &err);
  if (rc != WHARF_OK) fprintf(stderr, "crawler: %s\n", err.message);
  for (size_t i = 0; i < seen_count; i++) free(seen[i]);
  wharf_queue_free(queue);
  wharf_client_free(client);
  return rc == WHARF_OK ? 0 : 1;
}
