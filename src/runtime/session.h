/* session.h - the session format's internal entry points (session.c), for
 * the session store (store.c): a file written with or without the last
 * logits, and the same bytes in memory. Error convention: sk_status +
 * sk_error, as the public sk_context_save / _load. */
#ifndef SK_SESSION_H
#define SK_SESSION_H

#include <stddef.h>

#include "sinkllm.h"

/* sk_context_save, choosing whether the last logits are kept (with_logits 0:
 * the restored context has none until its next sk_decode; a store session
 * always feeds its next turn first, and the logits of a large vocabulary
 * would cost more than the cache of a short conversation). */
sk_status sk_session_write(const sk_context *c, const char *path, const void *blob, size_t blob_len,
                           int with_logits, sk_error *err);

/* The bytes sk_session_write would write, in memory: *out malloc'ed (the
 * caller frees), *out_len bytes. */
sk_status sk_session_encode(const sk_context *c, const void *blob, size_t blob_len, int with_logits,
                            void **out, size_t *out_len, sk_error *err);

/* sk_context_load and sk_session_peek over such bytes; name is for
 * messages only. */
sk_status sk_session_decode(sk_context *c, const void *buf, size_t len, const char *name, void **blob,
                            size_t *blob_len, sk_error *err);
sk_status sk_session_peek_bytes(const void *buf, size_t len, const char *name, sk_cache_params *cache,
                                int *n_batch, void **blob, size_t *blob_len, sk_error *err);

#endif
