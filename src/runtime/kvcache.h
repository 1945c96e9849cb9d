/* kvcache.h - the KV cache and its eviction policies, in one place.
 *
 * Layout. The cache has a PREFIX area of n_prefix slots (attention sinks for
 * `sink`, the kept tokens for `shift`; 0 otherwise) that holds stream
 * positions 0..n_prefix-1 forever, and a RING of ring_cap slots for the
 * rolling window: stream position p >= n_prefix lives in ring slot
 * (p - n_prefix) % ring_cap. Evicting a token copies nothing: its slot is
 * simply overwritten later. K and V are stored per layer and KV head:
 *   k_ring, v_ring: (n_layer, n_head_kv, ring_cap, head_dim) of kv_type
 *   k_pfx,  v_pfx : (n_layer, n_head_kv, n_prefix, head_dim) of pfx_type
 * pfx_type is never below F16 (sinks carry outlier keys).
 *
 * Positions (StreamingLLM, ../docs): attention uses positions within the
 * cache. A query at stream position u sees the prefix and the window
 * [lo(u), u] (contiguous stream positions). Keys are stored rotated at their
 * stream position; since the window is contiguous and ends at the query,
 * query-to-window distances are the same in cache and stream coordinates,
 * so the query is rotated at u for window keys, and at its cache position
 *   cpos(u) = n_prefix + (u - lo(u))
 * for prefix keys. No pass ever re-rotates the window.
 *
 * Policies (lo(u) is the lowest visible window position):
 *   sink      lo(u) = max(S, u - W + 1)                 prefix = S
 *   window    the same with S = 0
 *   dense     lo(u) = 0, error once u >= n_ctx          prefix = 0
 *   shift     lo jumps by W/2 whenever the window is full  prefix = keep
 *   recompute handled by the context (re-encodes W tokens per step); the
 *             cache itself then behaves as dense with n_ctx = W.
 * The ring holds W + n_batch - 1 (+ n_rollback) slots so that a whole
 * pre-fill chunk can be written while its first token still sees its full
 * window (and the last tokens can be taken back). */
#ifndef SK_KVCACHE_H
#define SK_KVCACHE_H

#include <stdint.h>

#include "sinkllm.h"

typedef struct sk_kvcache {
    sk_cache_policy policy;
    int n_layer, n_head_kv, head_dim;
    int64_t n_prefix;     /* prefix slots */
    int64_t n_window;     /* W: visible window, current token included */
    int64_t ring_cap;     /* ring slots */
    int64_t n_rollback;   /* ring slots beyond a chunk behind the window: how far back
                             sk_kvcache_rollback may reach */
    int kv_type;          /* enum sk_type of ring storage: F16, F32, Q8_0 */
    int pfx_type;         /* enum sk_type of prefix storage: F16 or F32 */
    size_t ring_row;      /* bytes per head_dim vector in the ring */
    size_t pfx_row;       /* bytes per head_dim vector in the prefix */
    void *k_ring, *v_ring, *k_pfx, *v_pfx;
    uint64_t bytes;
    /* state */
    int64_t n_past;       /* next stream position */
    int64_t shift_lo;     /* shift policy: current window start */
    int64_t n_shifts;
    int64_t hw;           /* high-water mark of n_past: positions [hw - ring_cap, hw) of
                             the ring still hold what was written there */
} sk_kvcache;

/* Create a cache for the model shape and params (validated here: every
 * size is checked for range and overflow). n_batch: largest chunk. */
sk_status sk_kvcache_new(const sk_hparams *hp, const sk_cache_params *p, int n_batch,
                         sk_kvcache **out, sk_error *err);
void sk_kvcache_free(sk_kvcache *kv);
void sk_kvcache_reset(sk_kvcache *kv);

/* Before feeding tokens [n_past, n_past + n): check the policy allows them
 * (dense: SK_ERR_FULL when past n_ctx) and fill lo[i] = lo(n_past + i)
 * (advancing the shift state). n <= n_batch. */
sk_status sk_kvcache_plan(sk_kvcache *kv, int n, int64_t *lo, sk_error *err);

/* Store K and V (head_dim * n_head_kv floats each, K already rotated at
 * stream position pos) for layer l at stream position pos. */
void sk_kvcache_store(sk_kvcache *kv, int l, int64_t pos, const float *k, const float *v);

/* After the chunk is computed: n_past += n. */
void sk_kvcache_commit(sk_kvcache *kv, int n);

/* n_past -= n when the window of the new n_past is intact in the ring (see
 * sk_context_rollback); SK_ERR_INVALID otherwise. */
sk_status sk_kvcache_rollback(sk_kvcache *kv, int64_t n, sk_error *err);

/* The bytes of one area that the next tokens can still read, for layer l
 * and KV head g: area 0 K prefix, 1 V prefix, 2 K ring, 3 V ring. The
 * prefix keeps slots [0, min(n_prefix, n_past)); the ring keeps the window
 * positions [lo - back, n_past) with lo the next token's lowest visible
 * position (everything below it is never read again unless tokens are
 * taken back) and back <= sk_kvcache_back(kv), as at most two runs of ring
 * slots in stream order. run[i] = (start, bytes); bytes 0 when unused.
 * Returns the bytes of both runs: what a session file keeps (session.c). */
typedef struct sk_kv_run {
    char *p;
    size_t n;
} sk_kv_run;
size_t sk_kvcache_live(const sk_kvcache *kv, int area, int l, int g, int64_t back, sk_kv_run run[2]);

/* Ring positions just below the live window that are still intact and that
 * a rollback of up to n_rollback tokens would read again: what a session
 * keeps besides the live rows so that tokens can be taken back after it is
 * loaded. 0 for the dense, shift and recompute caches and without
 * n_rollback. */
int64_t sk_kvcache_back(const sk_kvcache *kv);
/* The most sk_kvcache_back can be: n_rollback for sink and window caches,
 * else 0 (what a session file's claim is checked against). */
int64_t sk_kvcache_back_max(const sk_kvcache *kv);

/* After a load that restored n_past and the live rows with `back` rows
 * below them: a rollback may reach exactly those rows (and no deeper:
 * the ring's other slots hold nothing). back 0 with a full window: no
 * rollback until the cache has moved a full ring on. */
void sk_kvcache_loaded(sk_kvcache *kv, int64_t back);

/* Tokens evicted so far (stream positions neither in the prefix nor
 * visible to the next token). */
int64_t sk_kvcache_evicted(const sk_kvcache *kv);
/* Tokens the next query would see besides itself. */
int64_t sk_kvcache_cached(const sk_kvcache *kv);

/* Attention of one query token for KV head g in layer l (all query heads
 * of that group: n_rep = n_head / n_head_kv of them).
 *   q_win: (n_rep, head_dim) rotated at stream position u
 *   q_pfx: (n_rep, head_dim) rotated at cpos(u); may equal q_win
 *   out:   (n_rep, head_dim)
 *   att:   scratch of at least n_rep * (n_prefix + n_window) floats; holds
 *          the probabilities (n_rep, n_keys) afterwards
 *   sinks: (n_rep) the sink logits of the group's query heads (attn_sinks:
 *          each adds exp(sink) to its row's softmax denominator, no value),
 *          or NULL: none (the same bits as sinks of -inf)
 * Visible keys: prefix slots [0, min(n_prefix, u + 1)) and window [lo, u]
 * (lo >= n_prefix, or empty when u < n_prefix), in that order. Every path
 * (this one, the three steps below, sk_attend_multi) computes with the
 * same arithmetic (kvcache.c), so a token's output has the same bits
 * however it was batched or split over threads. */
void sk_attend(const sk_kvcache *kv, int l, int g, int n_rep, const float *q_win,
               const float *q_pfx, int64_t u, int64_t lo, const float *sinks, float *out, float *att);

/* sk_attend in three steps, to split one query over threads:
 * scores of the visible keys [k0, k1) into att[r * as + k] (any split of
 * the keys gives the same scores); then each row r, once complete, to
 * probabilities (sk_attend_probs, n_keys = sk_attend_n_keys, with the row's
 * sink logit or -INFINITY); then output
 * columns [c0, c1) (multiples of 16, or 0 and head_dim) from all of a
 * row's probabilities: out[r * head_dim + c]. */
int64_t sk_attend_n_keys(const sk_kvcache *kv, int64_t u, int64_t lo);
void sk_attend_scores(const sk_kvcache *kv, int l, int g, int n_rep, const float *q_win,
                      const float *q_pfx, int64_t u, int64_t lo, int64_t k0, int64_t k1, float *att,
                      size_t as);
void sk_attend_probs(const sk_kvcache *kv, int64_t u, int64_t lo, float *row, float sink);
/* Row r's sink logit for sk_attend_probs: sinks[r], or -INFINITY (none). */
float sk_attend_sink(const float *sinks, int r);
void sk_attend_values(const sk_kvcache *kv, int l, int g, int n_rep, int64_t u, int64_t lo,
                      const float *att, size_t as, int c0, int c1, float *out);

/* The same for n_q consecutive query tokens u0..u0+n_q-1 at once (a pre-fill
 * chunk): keys are read once for all of them and each token's own visible
 * set is applied as a mask. q_win, q_pfx, out: (n_q, n_rep, head_dim); lo:
 * (n_q); att: scratch of n_q * n_rep * (n_prefix + n_window + n_q) floats.
 * Only for F16 storage (sk_kvcache_multi_ok). */
int sk_kvcache_multi_ok(const sk_kvcache *kv);
void sk_attend_multi(const sk_kvcache *kv, int l, int g, int n_rep, int n_q, const float *q_win,
                     const float *q_pfx, int64_t u0, const int64_t *lo, const float *sinks, float *out,
                     float *att);

#endif
