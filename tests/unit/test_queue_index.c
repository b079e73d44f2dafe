/*
 * test_queue_index.c — the engine's pure parts: the per-queue index (states,
 * cursor, requeue, heaps, purge, trim), seq_map/seq_heap, lease handles, and
 * the measured RAM per backlog message with 1,000,000 messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/lease.h"
#include "queue/queue_index.h"
#include "queue/seq_heap.h"
#include "queue/seq_map.h"

static void insert(queue_index_t *index, uint64_t seq, uint64_t not_before, uint64_t now) {
  uint64_t old;
  assert_int_equal(queue_index_insert(index, seq, seq * 100, 10, 1000 + seq, 0, not_before, now, &old),
                   INDEX_INSERTED);
}

static void test_seq_map(void **state) {
  (void)state;
  seq_map_t map;
  seq_map_init(&map);
  for (uint64_t i = 0; i < 10000; i++) seq_map_put(&map, i * 7, i);
  for (uint64_t i = 0; i < 10000; i += 2) assert_true(seq_map_remove(&map, i * 7));
  uint64_t value;
  for (uint64_t i = 0; i < 10000; i++) {
    assert_int_equal(seq_map_get(&map, i * 7, &value), i % 2 == 1);
    if (i % 2) assert_int_equal(value, i);
  }
  assert_int_equal(map.count, 5000);
  seq_map_free(&map);
}

static void test_seq_heap_orders_and_removes(void **state) {
  (void)state;
  seq_heap_t heap;
  seq_heap_init(&heap);
  for (uint64_t i = 0; i < 1000; i++) seq_heap_set(&heap, i, (i * 7919) % 1000 + 1, (uint32_t)i);
  for (uint64_t i = 0; i < 1000; i += 3) assert_true(seq_heap_remove(&heap, i));
  seq_heap_set(&heap, 1, 0, 5); /* move to the front */
  uint64_t seq, due, last = 0;
  uint32_t tag;
  assert_true(seq_heap_peek(&heap, &seq, &due));
  assert_int_equal(seq, 1);
  assert_true(seq_heap_get(&heap, 1, &due, &tag));
  assert_int_equal(tag, 5);
  size_t n = 0;
  while (seq_heap_peek(&heap, &seq, &due)) {
    assert_true(due >= last);
    assert_true(seq % 3 != 0);
    last = due;
    seq_heap_remove(&heap, seq);
    n++;
  }
  assert_int_equal(n, 666);
  seq_heap_free(&heap);
}

static void test_index_cursor_fifo_and_requeue(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  for (uint64_t s = 10; s < 20; s++) insert(&index, s, 0, 5000);
  uint64_t seq;
  for (uint64_t s = 10; s < 15; s++) {
    assert_true(queue_index_next_ready(&index, 5000, &seq));
    assert_int_equal(seq, s);
    queue_index_set_leased(&index, seq, 6000);
  }
  /* A message that turns ready behind the cursor comes first. */
  queue_index_set_ready(&index, 12);
  assert_true(queue_index_next_ready(&index, 5000, &seq));
  assert_int_equal(seq, 12);
  queue_index_set_leased(&index, 12, 6000);
  assert_true(queue_index_next_ready(&index, 5000, &seq));
  assert_int_equal(seq, 15);
  queue_index_set_leased(&index, 15, 6000);
  assert_false(queue_index_next_expired(&index, 5999, &seq));
  assert_true(queue_index_next_expired(&index, 6000, &seq));
  assert_int_equal(index.live_count, 10);
  assert_int_equal(index.live_bytes, 100);
  queue_index_free(&index);
}

static void test_index_delayed_matures(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  insert(&index, 0, 9000, 5000);
  insert(&index, 1, 0, 5000);
  uint64_t seq;
  assert_true(queue_index_next_ready(&index, 5000, &seq));
  assert_int_equal(seq, 1);
  queue_index_set_leased(&index, 1, 100000);
  assert_false(queue_index_next_ready(&index, 8999, &seq));
  assert_int_equal(queue_index_not_before(&index, 0), 9000);
  assert_int_equal(queue_index_next_deadline(&index), 9000);
  assert_true(queue_index_next_ready(&index, 9000, &seq));
  assert_int_equal(seq, 0);
  queue_index_free(&index);
}

static void dead_count(void *context, const index_entry_t *entry) {
  (void)entry;
  (*(int *)context)++;
}

static void test_index_kill_purge_trim(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  for (uint64_t s = 0; s < 3 * INDEX_BLOCK_ENTRIES; s++) insert(&index, s, 0, 1);
  for (uint64_t s = 0; s < INDEX_BLOCK_ENTRIES + 5; s++) queue_index_kill(&index, s);
  queue_index_trim(&index);
  assert_int_equal(index.base_seq, INDEX_BLOCK_ENTRIES + 5);
  assert_int_equal(index.first_block, 1);
  int dead = 0;
  queue_index_purge(&index, 2 * INDEX_BLOCK_ENTRIES, dead_count, &dead);
  assert_int_equal(dead, INDEX_BLOCK_ENTRIES - 5);
  assert_int_equal(index.live_count, INDEX_BLOCK_ENTRIES);
  /* A purged seq cannot come back (a relocated PUT met in replay). */
  uint64_t old;
  assert_int_equal(queue_index_insert(&index, 3, 1, 1, 1, 0, 0, 1, &old), INDEX_REFUSED);
  queue_index_free(&index);
}

static void test_index_replay_relocation(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  index.replaying = true;
  insert(&index, 5000, 0, 1);
  insert(&index, 5001, 0, 1);
  queue_index_kill(&index, 5001);
  uint64_t old = 0;
  /* The relocated copy of a live message replaces it; of a dead one, not. */
  assert_int_equal(queue_index_insert(&index, 5000, 777, 10, 1, 2, 0, 1, &old), INDEX_REPLACED);
  assert_int_equal(old, 500000);
  index_entry_t entry;
  assert_true(queue_index_get(&index, 5000, &entry));
  assert_int_equal(entry.position, 777);
  assert_int_equal(queue_index_insert(&index, 5001, 778, 10, 1, 0, 0, 1, &old), INDEX_REFUSED);
  /* An old message moved to the head of the log arrives below the front. */
  insert(&index, 3, 0, 1);
  assert_int_equal(index.base_seq, 3);
  index.replaying = false;
  queue_index_trim(&index);
  uint64_t seq;
  assert_true(queue_index_next_ready(&index, 1, &seq));
  assert_int_equal(seq, 3);
  assert_true(queue_index_next_ready(&index, 1, &seq));
  assert_int_equal(seq, 5000);
  assert_true(queue_index_get(&index, 5000, &entry));
  assert_int_equal(entry.attempts, 2);
  queue_index_free(&index);
}

static void test_lease_roundtrip_and_forgery(void **state) {
  (void)state;
  uint8_t key[LEASE_KEY_BYTES], other[LEASE_KEY_BYTES];
  memset(key, 1, sizeof key);
  memset(other, 2, sizeof other);
  lease_t lease = {LEASE_KIND_LEASE, {9, 8, 7}, 123456789012ull, 77, 1795601621777ull, 127900}, back;
  char text[LEASE_TEXT_MAX];
  crypto_hmac_key_t *signer = crypto_hmac_key_new(key, sizeof key);
  crypto_hmac_key_t *other_signer = crypto_hmac_key_new(other, sizeof other);
  lease_encode(signer, &lease, text);
  assert_true(lease_decode(signer, text, &back));
  assert_int_equal(back.seq, lease.seq);
  assert_int_equal(back.generation, 77);
  assert_int_equal(back.timestamp_ms, lease.timestamp_ms);
  assert_int_equal(back.body_len, lease.body_len);
  assert_memory_equal(back.queue, lease.queue, 16);
  assert_false(lease_decode(other_signer, text, &back));
  text[10] = text[10] == 'A' ? 'B' : 'A';
  assert_false(lease_decode(signer, text, &back));
  assert_false(lease_decode(signer, "garbage", &back));
  assert_false(lease_decode(signer, "", &back));
  crypto_hmac_key_free(signer);
  crypto_hmac_key_free(other_signer);
}

static void test_lease_key_file(void **state) {
  (void)state;
  char dir[] = "/tmp/wharf-lease-XXXXXX";
  assert_non_null(mkdtemp(dir));
  uint8_t a[LEASE_KEY_BYTES], b[LEASE_KEY_BYTES];
  assert_int_equal(lease_key_load(dir, a), 0);
  assert_int_equal(lease_key_load(dir, b), 0);
  assert_memory_equal(a, b, LEASE_KEY_BYTES);
  char path[256];
  snprintf(path, sizeof path, "%s/lease.key", dir);
  assert_int_equal(access(path, R_OK), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "test \"$(stat -c %%a %s)\" = 600", path);
  assert_int_equal(system(cmd), 0);
  unlink(path);
  rmdir(dir);
}

/* Two blocks of a run, read back in full: what insert() stored. */
static void assert_run_intact(const queue_index_t *index, uint64_t skip) {
  for (uint64_t seq = 0; seq < 2 * INDEX_BLOCK_ENTRIES; seq++) {
    if (seq == skip) continue;
    index_entry_t entry;
    assert_true(queue_index_get(index, seq, &entry));
    assert_int_equal(entry.position, seq * 100);
    assert_int_equal(entry.body_len, 10);
    assert_int_equal(entry.timestamp_ms, 1000 + seq);
    assert_int_equal(entry.attempts, 0);
  }
}

static queue_index_t *narrow_run_new(void) {
  queue_index_t *index = malloc(sizeof *index);
  queue_index_init(index);
  for (uint64_t seq = 0; seq < 2 * INDEX_BLOCK_ENTRIES; seq++) insert(index, seq, 0, 1);
  assert_non_null(index->blocks[0].narrow);
  assert_non_null(index->blocks[1].narrow);
  return index;
}

static void narrow_run_free(queue_index_t *index) {
  queue_index_free(index);
  free(index);
}

/* Each write that does not fit its group's base turns that block (only
 * that one) wide, and every value survives the conversion. */
static void test_index_narrow_widens_keeping_values(void **state) {
  (void)state;
  const uint64_t seq = INDEX_BLOCK_ENTRIES + 300;
  index_entry_t entry;

  queue_index_t *index = narrow_run_new(); /* relocated far away */
  queue_index_set_position(index, seq, 1ull << 35);
  assert_null(index->blocks[1].narrow);
  assert_non_null(index->blocks[1].wide);
  assert_non_null(index->blocks[0].narrow);
  assert_true(queue_index_get(index, seq, &entry));
  assert_int_equal(entry.position, 1ull << 35);
  assert_run_intact(index, seq);
  narrow_run_free(index);

  index = narrow_run_new(); /* relocated before its group's base */
  queue_index_set_position(index, seq, 5);
  assert_non_null(index->blocks[1].wide);
  assert_true(queue_index_get(index, seq, &entry));
  assert_int_equal(entry.position, 5);
  assert_run_intact(index, seq);
  narrow_run_free(index);

  index = narrow_run_new(); /* four failed deliveries */
  for (uint32_t attempts = 1; attempts <= 3; attempts++) queue_index_set_attempts(index, seq, attempts);
  assert_non_null(index->blocks[1].narrow);
  queue_index_set_attempts(index, seq, 4);
  assert_non_null(index->blocks[1].wide);
  queue_index_set_attempts(index, seq, 1000);
  assert_true(queue_index_get(index, seq, &entry));
  assert_int_equal(entry.attempts, INDEX_MAX_ATTEMPTS);
  queue_index_set_attempts(index, seq, 0);
  assert_run_intact(index, INDEX_BLOCK_ENTRIES * 2);
  narrow_run_free(index);

  index = narrow_run_new(); /* states change in place, narrow stays narrow */
  queue_index_set_delayed(index, seq, 50000, 1);
  assert_int_equal(queue_index_set_leased(index, seq - 1, 30000), 1);
  assert_non_null(index->blocks[1].narrow);
  assert_true(queue_index_get(index, seq, &entry));
  assert_int_equal(entry.state, INDEX_DELAYED);
  assert_true(queue_index_get(index, seq - 1, &entry));
  assert_int_equal(entry.state, INDEX_LEASED);
  assert_run_intact(index, INDEX_BLOCK_ENTRIES * 2);
  narrow_run_free(index);
}

/* Timestamps: a message more than 32 s after its group's first, or
 * earlier than it (a clock step back), widens the block at insert. */
static void test_index_narrow_widens_on_timestamps(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  uint64_t old;
  index_entry_t entry;
  assert_int_equal(queue_index_insert(&index, 0, 0, 1, 100000, 0, 0, 1, &old), INDEX_INSERTED);
  assert_int_equal(queue_index_insert(&index, 1, 10, 1, 100000 + 32000, 0, 0, 1, &old), INDEX_INSERTED);
  assert_non_null(index.blocks[0].narrow);
  assert_int_equal(queue_index_insert(&index, 2, 20, 1, 100000 + 40000, 0, 0, 1, &old), INDEX_INSERTED);
  assert_non_null(index.blocks[0].wide);
  assert_true(queue_index_get(&index, 2, &entry));
  assert_int_equal(entry.timestamp_ms, 140000);
  assert_true(queue_index_get(&index, 1, &entry));
  assert_int_equal(entry.timestamp_ms, 132000);
  /* A new block starts narrow again; a step back widens it. */
  assert_int_equal(queue_index_insert(&index, INDEX_BLOCK_ENTRIES, 30, 1, 200000, 0, 0, 1, &old),
                   INDEX_INSERTED);
  assert_non_null(index.blocks[1].narrow);
  assert_int_equal(queue_index_insert(&index, INDEX_BLOCK_ENTRIES + 1, 40, 1, 199000, 0, 0, 1, &old),
                   INDEX_INSERTED);
  assert_non_null(index.blocks[1].wide);
  assert_true(queue_index_get(&index, INDEX_BLOCK_ENTRIES, &entry));
  assert_int_equal(entry.timestamp_ms, 200000);
  assert_int_equal(entry.position, 30);
  assert_true(queue_index_get(&index, INDEX_BLOCK_ENTRIES + 1, &entry));
  assert_int_equal(entry.timestamp_ms, 199000);
  queue_index_free(&index);
}

/* Measurement: RAM of the index per backlog message, 1,000,000 messages of
 * which 1% are delayed and 1% leased (the exceptions cost more). */
static void test_measure_bytes_per_message(void **state) {
  (void)state;
  queue_index_t index;
  queue_index_init(&index);
  const uint64_t n = 1000000;
  for (uint64_t s = 0; s < n; s++) insert(&index, s, s % 100 == 0 ? 10000 : 0, 1);
  uint64_t seq;
  for (int i = 0; i < 10000; i++) {
    assert_true(queue_index_next_ready(&index, 1, &seq));
    queue_index_set_leased(&index, seq, 30000);
  }
  double mixed = (double)queue_index_bytes(&index) / (double)n;
  printf("MEASUREMENT index bytes per backlog message (1,000,000 messages, 1%% delayed, 1%% leased): %.2f\n",
         mixed);
  assert_true(mixed <= 32.0);
  queue_index_free(&index);

  /* A run (the common backlog): the narrow form's 8 bytes and a little. */
  queue_index_init(&index);
  for (uint64_t s = 0; s < n; s++) insert(&index, s, 0, 1);
  double run = (double)queue_index_bytes(&index) / (double)n;
  printf("MEASUREMENT index bytes per backlog message (1,000,000 messages sent in a run): %.2f\n", run);
  assert_true(run <= 8.2);
  queue_index_free(&index);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seq_map),
      cmocka_unit_test(test_seq_heap_orders_and_removes),
      cmocka_unit_test(test_index_cursor_fifo_and_requeue),
      cmocka_unit_test(test_index_delayed_matures),
      cmocka_unit_test(test_index_kill_purge_trim),
      cmocka_unit_test(test_index_replay_relocation),
      cmocka_unit_test(test_lease_roundtrip_and_forgery),
      cmocka_unit_test(test_lease_key_file),
      cmocka_unit_test(test_index_narrow_widens_keeping_values),
      cmocka_unit_test(test_index_narrow_widens_on_timestamps),
      cmocka_unit_test(test_measure_bytes_per_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
