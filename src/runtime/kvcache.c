/* kvcache.c - KV cache storage, eviction policies and attention over the
 * cache (see kvcache.h for the layout and the position rule). */
#include "kvcache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/vec.h"


static int kv_elem_type(sk_kv_type t) {
    switch (t) {
    case SK_KV_F32: return SK_TYPE_F32;
    case SK_KV_Q8_0: return SK_TYPE_Q8_0;
    default: return SK_TYPE_F16;
    }
}

static size_t row_bytes(int type, int n) {
    if (type == SK_TYPE_F32) return (size_t)n * 4;
    if (type == SK_TYPE_F16) return (size_t)n * 2;
    return sk_row_size(type, n);
}

const char *sk_cache_policy_name(sk_cache_policy p) {
    switch (p) {
    case SK_CACHE_SINK: return "sink";
    case SK_CACHE_WINDOW: return "window";
    case SK_CACHE_DENSE: return "dense";
    case SK_CACHE_RECOMPUTE: return "recompute";
    case SK_CACHE_SHIFT: return "shift";
    }
    return "?";
}

sk_status sk_cache_policy_parse(const char *s, sk_cache_policy *out, sk_error *err) {
    for (int i = 0; i <= SK_CACHE_SHIFT; i++)
        if (strcmp(s, sk_cache_policy_name((sk_cache_policy)i)) == 0) {
            *out = (sk_cache_policy)i;
            return SK_OK;
        }
    return sk_error_set(err, SK_ERR_INVALID,
                        "unknown cache policy '%s' (sink, window, dense, recompute, shift)", s);
}

sk_status sk_cache_params_validate(const sk_cache_params *p, sk_error *err) {
    switch (p->policy) {
    case SK_CACHE_SINK:
    case SK_CACHE_SHIFT:
        if (p->n_sinks < 0 || p->n_sinks > SK_MAX_SINKS)
            return sk_error_set(err, SK_ERR_INVALID, "%s count %d out of range 0..%d",
                                p->policy == SK_CACHE_SINK ? "sinks" : "keep", p->n_sinks, SK_MAX_SINKS);
        /* fall through */
    case SK_CACHE_WINDOW:
    case SK_CACHE_RECOMPUTE:
        if (p->n_window < 1 || p->n_window > SK_MAX_CACHE_TOKENS)
            return sk_error_set(err, SK_ERR_INVALID, "window %d out of range 1..%d", p->n_window,
                                SK_MAX_CACHE_TOKENS);
        if (p->policy == SK_CACHE_SHIFT && p->n_window < 2)
            return sk_error_set(err, SK_ERR_INVALID, "shift needs a window of at least 2");
        break;
    case SK_CACHE_DENSE:
        if (p->n_ctx < 1 || p->n_ctx > SK_MAX_CACHE_TOKENS)
            return sk_error_set(err, SK_ERR_INVALID, "ctx %d out of range 1..%d", p->n_ctx,
                                SK_MAX_CACHE_TOKENS);
        break;
    default:
        return sk_error_set(err, SK_ERR_INVALID, "unknown cache policy %d", (int)p->policy);
    }
    if (p->n_rollback < 0 || p->n_rollback > SK_MAX_ROLLBACK)
        return sk_error_set(err, SK_ERR_INVALID, "rollback %d out of range 0..%d", p->n_rollback,
                            SK_MAX_ROLLBACK);
    if (p->kv_type != SK_KV_F16 && p->kv_type != SK_KV_F32 && p->kv_type != SK_KV_Q8_0)
        return sk_error_set(err, SK_ERR_INVALID, "unknown KV type %d", (int)p->kv_type);
    return SK_OK;
}

sk_status sk_kvcache_new(const sk_hparams *hp, const sk_cache_params *p, int n_batch,
                         sk_kvcache **out, sk_error *err) {
    *out = NULL;
    SK_ASSERT(n_batch >= 1 && n_batch <= SK_MAX_BATCH); /* the context checked it */
    sk_status st = sk_cache_params_validate(p, err);
    if (st) return st;
    int64_t n_prefix = 0, n_window = p->n_window;
    if (p->policy == SK_CACHE_SINK || p->policy == SK_CACHE_SHIFT) n_prefix = p->n_sinks;
    if (p->policy == SK_CACHE_DENSE) n_window = p->n_ctx;
    sk_kvcache *kv = calloc(1, sizeof *kv);
    if (!kv) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (kv cache)");
    kv->policy = p->policy;
    kv->n_layer = hp->n_layer;
    kv->n_head_kv = hp->n_head_kv;
    kv->head_dim = hp->head_dim;
    kv->n_prefix = n_prefix;
    kv->n_window = n_window;
    /* dense never wraps; the others need room for a chunk behind a full window */
    kv->ring_cap = p->policy == SK_CACHE_DENSE ? n_window : n_window + n_batch - 1 + p->n_rollback;
    kv->n_rollback = p->policy == SK_CACHE_DENSE ? 0 : p->n_rollback;
    kv->kv_type = kv_elem_type(p->kv_type);
    if (kv->kv_type == SK_TYPE_Q8_0 && hp->head_dim % SK_QK != 0) {
        free(kv);
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "Q8_0 KV cache needs head_dim %% 32 == 0");
    }
    kv->pfx_type = p->kv_type == SK_KV_F32 ? SK_TYPE_F32 : SK_TYPE_F16;
    kv->ring_row = row_bytes(kv->kv_type, kv->head_dim);
    kv->pfx_row = row_bytes(kv->pfx_type, kv->head_dim);
    double ring_bytes = (double)kv->n_layer * kv->n_head_kv * (double)kv->ring_cap * kv->ring_row;
    double pfx_bytes = (double)kv->n_layer * kv->n_head_kv * (double)kv->n_prefix * kv->pfx_row;
    if (ring_bytes + pfx_bytes > 64.0 * (1ULL << 30)) {
        free(kv);
        return sk_error_set(err, SK_ERR_INVALID, "KV cache of %.1f GiB is too large",
                            2 * (ring_bytes + pfx_bytes) / (1ULL << 30));
    }
    kv->k_ring = calloc(1, (size_t)ring_bytes);
    kv->v_ring = calloc(1, (size_t)ring_bytes);
    kv->k_pfx = calloc(1, (size_t)pfx_bytes + 1);
    kv->v_pfx = calloc(1, (size_t)pfx_bytes + 1);
    if (!kv->k_ring || !kv->v_ring || !kv->k_pfx || !kv->v_pfx) {
        sk_kvcache_free(kv);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (KV cache of %.0f MiB)",
                            2 * (ring_bytes + pfx_bytes) / (1 << 20));
    }
    kv->bytes = (uint64_t)(2 * (ring_bytes + pfx_bytes));
    *out = kv;
    return SK_OK;
}

void sk_kvcache_free(sk_kvcache *kv) {
    if (!kv) return;
    free(kv->k_ring);
    free(kv->v_ring);
    free(kv->k_pfx);
    free(kv->v_pfx);
    free(kv);
}

void sk_kvcache_reset(sk_kvcache *kv) {
    kv->n_past = 0;
    kv->hw = 0;
    kv->shift_lo = kv->n_prefix;
    kv->n_shifts = 0;
}

sk_status sk_kvcache_plan(sk_kvcache *kv, int n, int64_t *lo, sk_error *err) {
    int64_t S = kv->n_prefix, W = kv->n_window;
    if (kv->n_past == 0) kv->shift_lo = S;
    if (kv->policy == SK_CACHE_DENSE || kv->policy == SK_CACHE_RECOMPUTE) {
        if (kv->n_past + n > W)
            return sk_error_set(err, SK_ERR_FULL, "context full: %lld + %d tokens > ctx %lld",
                                (long long)kv->n_past, n, (long long)W);
        for (int i = 0; i < n; i++) lo[i] = 0;
        return SK_OK;
    }
    for (int i = 0; i < n; i++) {
        int64_t u = kv->n_past + i;
        if (u < S) {
            lo[i] = S; /* a prefix token sees no window */
        } else if (kv->policy == SK_CACHE_SHIFT) {
            if (u - kv->shift_lo + 1 > W) { /* full: discard half of the window */
                int64_t n_left = u - kv->shift_lo;
                kv->shift_lo += n_left / 2 > 0 ? n_left / 2 : 1;
                kv->n_shifts++;
            }
            lo[i] = kv->shift_lo;
        } else {
            lo[i] = u - W + 1 > S ? u - W + 1 : S;
        }
    }
    return SK_OK;
}

void sk_kvcache_commit(sk_kvcache *kv, int n) {
    kv->n_past += n;
    if (kv->n_past > kv->hw) kv->hw = kv->n_past;
}

sk_status sk_kvcache_rollback(sk_kvcache *kv, int64_t n, sk_error *err) {
    if (n < 0 || n > kv->n_past)
        return sk_error_set(err, SK_ERR_INVALID, "cannot take back %lld of %lld tokens",
                            (long long)n, (long long)kv->n_past);
    if (kv->policy == SK_CACHE_SHIFT || kv->policy == SK_CACHE_RECOMPUTE)
        return sk_error_set(err, SK_ERR_INVALID, "the %s cache cannot take tokens back",
                            sk_cache_policy_name(kv->policy));
    int64_t np = kv->n_past - n, S = kv->n_prefix;
    /* the next token (position np) sees the window [np - W + 1, np - 1]:
     * ring positions below hw - ring_cap have been overwritten */
    int64_t need = np - kv->n_window + 1 > S ? np - kv->n_window + 1 : S;
    if (kv->policy != SK_CACHE_DENSE && np > S && need < kv->hw - kv->ring_cap)
        return sk_error_set(err, SK_ERR_INVALID,
                            "cannot take back %lld tokens: their window is no longer in the cache",
                            (long long)n);
    kv->n_past = np;
    return SK_OK;
}

static int64_t next_lo(const sk_kvcache *kv) {
    int64_t u = kv->n_past, S = kv->n_prefix, W = kv->n_window;
    if (kv->policy == SK_CACHE_DENSE || kv->policy == SK_CACHE_RECOMPUTE) return 0;
    if (u < S) return S;
    if (kv->policy == SK_CACHE_SHIFT) {
        int64_t lo = kv->shift_lo;
        if (u - lo + 1 > W) lo += (u - lo) / 2 > 0 ? (u - lo) / 2 : 1;
        return lo;
    }
    return u - W + 1 > S ? u - W + 1 : S;
}

int64_t sk_kvcache_evicted(const sk_kvcache *kv) {
    if (kv->policy == SK_CACHE_DENSE || kv->policy == SK_CACHE_RECOMPUTE) return 0;
    int64_t lo = next_lo(kv);
    return lo > kv->n_prefix && kv->n_past > kv->n_prefix ? lo - kv->n_prefix : 0;
}

int64_t sk_kvcache_cached(const sk_kvcache *kv) {
    int64_t u = kv->n_past, S = kv->n_prefix;
    if (kv->policy == SK_CACHE_DENSE || kv->policy == SK_CACHE_RECOMPUTE) return u;
    if (u <= S) return u;
    return S + (u - next_lo(kv));
}

/* (layer l, head g, slot s) -> vector address in an area of n_slots slots */
static inline char *slot_ptr(void *base, const sk_kvcache *kv, int l, int g, int64_t n_slots,
                             int64_t s, size_t row) {
    return (char *)base + (((size_t)l * kv->n_head_kv + g) * (size_t)n_slots + (size_t)s) * row;
}

int64_t sk_kvcache_back_max(const sk_kvcache *kv) {
    return kv->policy == SK_CACHE_SINK || kv->policy == SK_CACHE_WINDOW ? kv->n_rollback : 0;
}

int64_t sk_kvcache_back(const sk_kvcache *kv) {
    if (sk_kvcache_back_max(kv) == 0) return 0;
    int64_t S = kv->n_prefix, lo = next_lo(kv);
    if (kv->n_past <= S || lo <= S) return 0;
    int64_t floor = lo - kv->n_rollback;
    if (floor < S) floor = S;
    if (floor < kv->hw - kv->ring_cap) floor = kv->hw - kv->ring_cap;
    return lo > floor ? lo - floor : 0;
}

void sk_kvcache_loaded(sk_kvcache *kv, int64_t back) {
    /* rollback reads down to hw - ring_cap: the lowest row restored (with
     * back 0, the window's start: a window not yet full can still shrink) */
    kv->hw = next_lo(kv) - back + kv->ring_cap;
}

size_t sk_kvcache_live(const sk_kvcache *kv, int area, int l, int g, int64_t back, sk_kv_run run[2]) {
    run[0] = run[1] = (sk_kv_run){NULL, 0};
    int64_t S = kv->n_prefix, u = kv->n_past;
    if (area < 2) { /* the prefix */
        int64_t n = u < S ? u : S;
        if (n > 0) run[0] = (sk_kv_run){slot_ptr(area ? kv->v_pfx : kv->k_pfx, kv, l, g, S, 0, kv->pfx_row),
                                        (size_t)n * kv->pfx_row};
        return run[0].n;
    }
    int64_t lo = next_lo(kv) - back;
    if (lo < S) lo = S;
    if (u <= lo) return 0;
    void *base = area == 2 ? kv->k_ring : kv->v_ring;
    if (u - lo > kv->ring_cap) lo = u - kv->ring_cap; /* never: the window fits the ring */
    int64_t s0 = (lo - S) % kv->ring_cap, n = u - lo;
    int64_t n0 = s0 + n <= kv->ring_cap ? n : kv->ring_cap - s0;
    run[0] = (sk_kv_run){slot_ptr(base, kv, l, g, kv->ring_cap, s0, kv->ring_row), (size_t)n0 * kv->ring_row};
    if (n > n0) run[1] = (sk_kv_run){slot_ptr(base, kv, l, g, kv->ring_cap, 0, kv->ring_row), (size_t)(n - n0) * kv->ring_row};
    return run[0].n + run[1].n;
}

static void put_row(int type, void *dst, const float *src, int n) {
    if (type == SK_TYPE_F32)
        memcpy(dst, src, (size_t)n * 4);
    else if (type == SK_TYPE_F16)
        sk_f32_to_f16_row(src, dst, n);
    else
        sk_type_get(type)->from_float(src, dst, n);
}

static void get_row(int type, const void *src, float *dst, int n) {
    if (type == SK_TYPE_F32)
        memcpy(dst, src, (size_t)n * 4);
    else if (type == SK_TYPE_F16)
        sk_f16_to_f32_row(src, dst, n);
    else
        sk_type_get(type)->to_float(src, dst, n);
}

void sk_kvcache_store(sk_kvcache *kv, int l, int64_t pos, const float *k, const float *v) {
    int hd = kv->head_dim;
    for (int g = 0; g < kv->n_head_kv; g++) {
        const float *kg = k + (size_t)g * hd, *vg = v + (size_t)g * hd;
        if (pos < kv->n_prefix) {
            put_row(kv->pfx_type, slot_ptr(kv->k_pfx, kv, l, g, kv->n_prefix, pos, kv->pfx_row), kg, hd);
            put_row(kv->pfx_type, slot_ptr(kv->v_pfx, kv, l, g, kv->n_prefix, pos, kv->pfx_row), vg, hd);
        } else {
            int64_t s = (pos - kv->n_prefix) % kv->ring_cap;
            put_row(kv->kv_type, slot_ptr(kv->k_ring, kv, l, g, kv->ring_cap, s, kv->ring_row), kg, hd);
            put_row(kv->kv_type, slot_ptr(kv->v_ring, kv, l, g, kv->ring_cap, s, kv->ring_row), vg, hd);
        }
    }
}

#define SK_MAX_HEAD_DIM 1024

/* A run of visible keys that are contiguous in one storage area. */
typedef struct kv_seg {
    const char *k, *v; /* first key / value vector */
    int type;
    size_t row;
    int64_t n;
    int pfx;           /* scored with the query rotated at its cache position */
} kv_seg;

/* The visible keys as contiguous runs: prefix slots [0, n_pfx), then the
 * window [lo, lo + n_win) of stream positions, which wraps the ring at most
 * once. Returns the number of runs (<= 3). */
static int build_segs(const sk_kvcache *kv, int l, int g, int64_t n_pfx, int64_t lo,
                      int64_t n_win, kv_seg *seg) {
    int ns = 0;
    if (n_pfx > 0)
        seg[ns++] = (kv_seg){slot_ptr(kv->k_pfx, kv, l, g, kv->n_prefix, 0, kv->pfx_row),
                             slot_ptr(kv->v_pfx, kv, l, g, kv->n_prefix, 0, kv->pfx_row),
                             kv->pfx_type, kv->pfx_row, n_pfx, 1};
    if (n_win > 0) {
        int64_t s0 = (lo - kv->n_prefix) % kv->ring_cap;
        int64_t n0 = kv->ring_cap - s0 < n_win ? kv->ring_cap - s0 : n_win;
        seg[ns++] = (kv_seg){slot_ptr(kv->k_ring, kv, l, g, kv->ring_cap, s0, kv->ring_row),
                             slot_ptr(kv->v_ring, kv, l, g, kv->ring_cap, s0, kv->ring_row),
                             kv->kv_type, kv->ring_row, n0, 0};
        if (n0 < n_win)
            seg[ns++] = (kv_seg){slot_ptr(kv->k_ring, kv, l, g, kv->ring_cap, 0, kv->ring_row),
                                 slot_ptr(kv->v_ring, kv, l, g, kv->ring_cap, 0, kv->ring_row),
                                 kv->kv_type, kv->ring_row, n_win - n0, 0};
    }
    return ns;
}

/* Rows [j0, j0 + n) of a Q8_0 run widened to F16 in tile (n <= Q8_TILE keys):
 * the Q8_0 cache then runs on the F16 kernels. Each value is q * d with an
 * 8-bit q and an f16 d, so F16 keeps it to within half an f16 ulp. */
#define Q8_TILE 64
static void q8_tile(const char *rows, size_t row, int64_t n, int hd, uint16_t *tile) {
    float buf[SK_MAX_HEAD_DIM];
    const sk_type_traits *tt = sk_type_get(SK_TYPE_Q8_0);
    for (int64_t j = 0; j < n; j++) {
        tt->to_float(rows + (size_t)j * row, buf, hd);
        sk_f32_to_f16_row(buf, tile + (size_t)j * hd, hd);
    }
}

static void seg_scores(const kv_seg *sg, int hd, int n_rep, const float *q, float scale,
                       float *att, size_t stride) {
    if (sg->type == SK_TYPE_F16) {
        sk_vec_get()->kq_f16(sg->n, hd, (const uint16_t *)sg->k, n_rep, q, scale, att, stride);
        return;
    }
    if (sg->type == SK_TYPE_Q8_0 && hd <= 256) {
        uint16_t tile[Q8_TILE * 256];
        for (int64_t j0 = 0; j0 < sg->n; j0 += Q8_TILE) {
            int64_t n = sg->n - j0 < Q8_TILE ? sg->n - j0 : Q8_TILE;
            q8_tile(sg->k + (size_t)j0 * sg->row, sg->row, n, hd, tile);
            sk_vec_get()->kq_f16(n, hd, tile, n_rep, q, scale, att + j0, stride);
        }
        return;
    }
    float kbuf[SK_MAX_HEAD_DIM];
    for (int64_t j = 0; j < sg->n; j++) {
        get_row(sg->type, sg->k + (size_t)j * sg->row, kbuf, hd);
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            float d = 0.0f;
            for (int i = 0; i < hd; i++) d += qr[i] * kbuf[i];
            att[(size_t)r * stride + j] = d * scale;
        }
    }
}

/* out[r * hd + c] += sum_j att[r * stride + j] v_j[c] for the run's keys j
 * in order and columns c0 <= c < c1 (multiples of 16 for the F16 kernels) */
static void seg_values(const kv_seg *sg, int hd, int n_rep, const float *att, size_t stride, int c0,
                       int c1, float *out) {
    if (c1 <= c0) return;
    if (sg->type == SK_TYPE_F16) {
        sk_vec_get()->av_f16(sg->n, c1 - c0, (const uint16_t *)sg->v + c0, (size_t)hd, n_rep, att, stride,
                             out + c0, (size_t)hd);
        return;
    }
    if (sg->type == SK_TYPE_Q8_0 && hd <= 256) {
        uint16_t tile[Q8_TILE * 256];
        for (int64_t j0 = 0; j0 < sg->n; j0 += Q8_TILE) {
            int64_t n = sg->n - j0 < Q8_TILE ? sg->n - j0 : Q8_TILE;
            q8_tile(sg->v + (size_t)j0 * sg->row, sg->row, n, hd, tile);
            sk_vec_get()->av_f16(n, c1 - c0, tile + c0, (size_t)hd, n_rep, att + j0, stride, out + c0,
                                 (size_t)hd);
        }
        return;
    }
    float vbuf[SK_MAX_HEAD_DIM];
    for (int64_t j = 0; j < sg->n; j++) {
        get_row(sg->type, sg->v + (size_t)j * sg->row, vbuf, hd);
        for (int r = 0; r < n_rep; r++) {
            float w = att[(size_t)r * stride + j];
            float *o = out + (size_t)r * hd;
            for (int i = c0; i < c1; i++) o[i] += w * vbuf[i];
        }
    }
}

/* ---- the attention of one query -------------------------------------------
 * One arithmetic for every path (one token, a split over threads, a chunk
 * in sk_attend_multi), so that a token's output does not depend on how it
 * was batched or on the thread count:
 *   s_k   = scale * q . key_k             (vec.h's kq_f16: the same bits per
 *                                          key whatever else is scored)
 *   mx    = max over the visible keys     (exact), and the head's sink
 *                                         logit s_h if the layer has one
 *   S     = exp_sum over the visible keys, from the first (vec.h),
 *           then + expf(s_h - mx) (a sink has no value vector)
 *   p_k   = exp(s_k - mx) * (1 / S)
 *   out_c = sum_k p_k v_k[c]              (in key order, prefix first)
 * Zero weights (keys a chunk masks) add exactly nothing. */

/* The prefix slots and window keys visible at stream position u. */
static void visible(const sk_kvcache *kv, int64_t u, int64_t lo, int64_t *n_pfx, int64_t *n_win) {
    *n_pfx = u + 1 < kv->n_prefix ? u + 1 : kv->n_prefix;
    *n_win = u >= kv->n_prefix ? u - lo + 1 : 0;
}

int64_t sk_attend_n_keys(const sk_kvcache *kv, int64_t u, int64_t lo) {
    int64_t np, nw;
    visible(kv, u, lo, &np, &nw);
    return np + nw;
}

/* Scores -> probabilities in place over one query's visible keys, in
 * visible order and contiguous (the chunked path moves its window part
 * next to its prefix part first), so that the result does not depend on
 * where the prefix ends either: a cache with more pinned slots that has
 * not evicted anything gives the same bits. */
static void softmax_row(float *a, int64_t n, float sink) {
    const sk_vec_kernels *vk = sk_vec_get();
    float mx = vk->max(a, n);
    if (sink > mx) mx = sink;
    float sum = vk->exp_sum(a, n, mx);
    if (sink > -INFINITY) sum += expf(sink - mx); /* after the keys; none: the old bits */
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) a[j] *= inv;
}

/* The visible keys [k0, k1) of the query at u, as runs (<= 3). */
static int visible_runs(const sk_kvcache *kv, int l, int g, int64_t u, int64_t lo, int64_t k0, int64_t k1,
                        kv_seg *part) {
    int64_t n_pfx, n_win;
    visible(kv, u, lo, &n_pfx, &n_win);
    kv_seg seg[3];
    int ns = build_segs(kv, l, g, n_pfx, lo, n_win, seg), np = 0;
    int64_t start = 0;
    for (int i = 0; i < ns; i++) {
        int64_t a = k0 > start ? k0 : start, b = k1 < start + seg[i].n ? k1 : start + seg[i].n;
        if (a < b) {
            part[np] = seg[i];
            part[np].k += (size_t)(a - start) * seg[i].row;
            part[np].v += (size_t)(a - start) * seg[i].row;
            part[np++].n = b - a;
        }
        start += seg[i].n;
    }
    return np;
}

void sk_attend_scores(const sk_kvcache *kv, int l, int g, int n_rep, const float *q_win, const float *q_pfx,
                      int64_t u, int64_t lo, int64_t k0, int64_t k1, float *att, size_t as) {
    SK_ASSERT(kv->head_dim <= SK_MAX_HEAD_DIM);
    float scale = 1.0f / sqrtf((float)kv->head_dim);
    kv_seg part[3];
    int np = visible_runs(kv, l, g, u, lo, k0, k1, part);
    int64_t off = k0;
    for (int i = 0; i < np; i++) {
        seg_scores(&part[i], kv->head_dim, n_rep, part[i].pfx ? q_pfx : q_win, scale, att + off, as);
        off += part[i].n;
    }
}

void sk_attend_probs(const sk_kvcache *kv, int64_t u, int64_t lo, float *row, float sink) {
    softmax_row(row, sk_attend_n_keys(kv, u, lo), sink);
}

float sk_attend_sink(const float *sinks, int r) { return sinks ? sinks[r] : -INFINITY; }

void sk_attend_values(const sk_kvcache *kv, int l, int g, int n_rep, int64_t u, int64_t lo, const float *att,
                      size_t as, int c0, int c1, float *out) {
    int hd = kv->head_dim;
    for (int r = 0; r < n_rep; r++) memset(out + (size_t)r * hd + c0, 0, (size_t)(c1 - c0) * sizeof(float));
    kv_seg part[3];
    int np = visible_runs(kv, l, g, u, lo, 0, sk_attend_n_keys(kv, u, lo), part);
    int64_t off = 0;
    for (int i = 0; i < np; i++) {
        seg_values(&part[i], hd, n_rep, att + off, as, c0, c1, out);
        off += part[i].n;
    }
}

void sk_attend(const sk_kvcache *kv, int l, int g, int n_rep, const float *q_win, const float *q_pfx, int64_t u,
               int64_t lo, const float *sinks, float *out, float *att) {
    int64_t nk = sk_attend_n_keys(kv, u, lo);
    sk_attend_scores(kv, l, g, n_rep, q_win, q_pfx, u, lo, 0, nk, att, (size_t)nk);
    for (int r = 0; r < n_rep; r++) sk_attend_probs(kv, u, lo, att + (size_t)r * nk, sk_attend_sink(sinks, r));
    sk_attend_values(kv, l, g, n_rep, u, lo, att, (size_t)nk, 0, kv->head_dim, out);
}

int sk_kvcache_multi_ok(const sk_kvcache *kv) {
    return kv->kv_type == SK_TYPE_F16 && kv->pfx_type == SK_TYPE_F16;
}

/* Columns of the score matrix: the prefix slots [0, n_pfx), then the window
 * union [wlo, u_last] in stream order (up to two ring runs). Row i * n_rep + r
 * belongs to token u0 + i; cells outside that token's visible set get zero
 * weight after the softmax. */
void sk_attend_multi(const sk_kvcache *kv, int l, int g, int n_rep, int n_q, const float *q_win,
                     const float *q_pfx, int64_t u0, const int64_t *lo, const float *sinks, float *out,
                     float *att) {
    int hd = kv->head_dim, nrows = n_q * n_rep;
    int64_t S = kv->n_prefix, u_last = u0 + n_q - 1;
    int64_t n_pfx = u_last + 1 < S ? u_last + 1 : S;
    int64_t wlo = -1;
    for (int i = 0; i < n_q; i++)
        if (u0 + i >= S) {
            wlo = lo[i];
            break;
        }
    int64_t n_win = wlo >= 0 ? u_last - wlo + 1 : 0, ncols = n_pfx + n_win;
    float scale = 1.0f / sqrtf((float)hd);
    const sk_vec_kernels *vk = sk_vec_get();
    kv_seg seg[3];
    int ns = build_segs(kv, l, g, n_pfx, wlo, n_win, seg);
    int64_t off = 0;
    for (int k = 0; k < ns; k++) {
        vk->kq_f16(seg[k].n, hd, (const uint16_t *)seg[k].k, nrows, seg[k].pfx ? q_pfx : q_win,
                   scale, att + off, (size_t)ncols);
        off += seg[k].n;
    }
    for (int i = 0; i < n_q; i++) {
        int64_t u = u0 + i;
        int64_t vp = u + 1 < S ? u + 1 : S;                 /* visible prefix columns */
        int64_t c0 = u >= S ? n_pfx + (lo[i] - wlo) : ncols; /* visible window columns */
        int64_t c1 = u >= S ? n_pfx + (u - wlo) + 1 : ncols;
        for (int r = 0; r < n_rep; r++) {
            float *a = att + (size_t)(i * n_rep + r) * ncols;
            int64_t nw = c1 - c0;
            if (c0 > vp) memmove(a + vp, a + c0, (size_t)nw * sizeof(float)); /* contiguous */
            softmax_row(a, vp + nw, sk_attend_sink(sinks, r));
            if (c0 > vp) {
                memmove(a + c0, a + vp, (size_t)nw * sizeof(float));
                for (int64_t j = vp; j < c0; j++) a[j] = 0.0f; /* masked: zero weight */
            }
            for (int64_t j = c1; j < ncols; j++) a[j] = 0.0f;
        }
    }
    memset(out, 0, (size_t)nrows * hd * sizeof(float));
    off = 0;
    for (int k = 0; k < ns; k++) {
        vk->av_f16(seg[k].n, hd, (const uint16_t *)seg[k].v, (size_t)hd, nrows, att + off, (size_t)ncols, out,
                   (size_t)hd);
        off += seg[k].n;
    }
}
