/*
 * store_debug.h — fault injection for tests (internal to src/store/ and
 * tests/). Not for production code paths.
 */
#ifndef WHARF_STORE_STORE_DEBUG_H
#define WHARF_STORE_STORE_DEBUG_H

#include "store/store.h"

/* The fdatasync of the next batch written fails with error (a positive errno,
 * e.g. EIO): its appends fail and the segment is cut back as after a real
 * failure. */
void store_debug_fail_next_sync(store_t *store, int error);
/* The next ACKs compaction appends for messages acked while their rewrite was
 * in flight fail the same way. */
void store_debug_fail_compaction_acks(store_t *store, int error);
/* While error is not 0, allocating disk space for the log fails with it
 * (ENOSPC: a full disk); appends that the allocated space cannot hold fail. */
void store_debug_fail_allocation(store_t *store, int error);
/* Deleting the next segment fails with error, as unlink(2) would. */
void store_debug_fail_next_unlink(store_t *store, int error);

#endif
