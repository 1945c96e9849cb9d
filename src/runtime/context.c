/* context.c - a session's mutable state and the LLaMA forward pass.
 *
 * A context owns its KV cache (kvcache.c), its thread pool and every
 * activation buffer, all sized for n_batch tokens when it is created:
 * sk_decode allocates nothing. Tokens are fed in chunks of at most n_batch
 * (pre-fill is matrix-matrix); between chunks the cache policy evicts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "kvcache.h"
#include "model.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/threadpool.h"
#include "kernels/vec.h"
#include "text/tokenizer.h"


/* malloc, counted in c->scratch_bytes (sk_context_stats) */
static void *scratch(sk_context *c, size_t n) {
    c->scratch_bytes += n;
    return malloc(n);
}

void sk_context_params_default(sk_context_params *p) {
    memset(p, 0, sizeof *p);
    p->n_threads = 0;
    p->n_batch = 256;
    p->cache.policy = SK_CACHE_SINK;
    p->cache.n_sinks = 4;
    p->cache.n_window = 2044;
    p->cache.n_ctx = 4096;
    p->cache.kv_type = SK_KV_F16;
}

struct sk_batch {
    sk_context *lead;  /* the buffers and pool of a pass (its own cache is unused) */
    float *logits;     /* (max_seqs, n_vocab) the head's rows */
    int max_seqs;
};

sk_status sk_context_params_validate(const sk_context_params *p, const sk_hparams *hp,
                                     sk_error *err) {
    if (p->n_threads < 0 || p->n_threads > SK_MAX_THREADS)
        return sk_error_set(err, SK_ERR_INVALID, "threads %d out of range 0..%d", p->n_threads,
                            SK_MAX_THREADS);
    if (p->n_batch < 1 || p->n_batch > SK_MAX_BATCH)
        return sk_error_set(err, SK_ERR_INVALID, "batch %d out of range 1..%d", p->n_batch,
                            SK_MAX_BATCH);
    if (p->logits_all && p->cache.policy == SK_CACHE_RECOMPUTE)
        return sk_error_set(err, SK_ERR_INVALID,
                            "logits_all is not available with the recompute policy");
    (void)hp;
    return SK_OK; /* the cache checks its own parameters */
}

void sk_context_free(sk_context *c) {
    if (!c) return;
    if (!c->p.threads) sk_pool_free(c->pool);
    sk_kvcache_free(c->kv);
    sk_kvcache_free(c->kv_swa);
    free(c->theta);
    free(c->theta_swa);
    free(c->cs_swa);
    free(c->lo_swa);
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->qp);
    free(c->k);
    free(c->v);
    free(c->ao);
    free(c->hg);
    free(c->hu);
    free(c->att);
    free(c->sc);
    free(c->cs_win);
    free(c->cs_pfx);
    free(c->lo);
    free(c->use_pfx);
    free(c->qbuf);
    free(c->rowbuf);
    free(c->emb_sum);
    free(c->logits);
    free(c->hist);
    free(c);
}

sk_status sk_context_new(const sk_model *m, const sk_context_params *params, sk_context **out,
                         sk_error *err) {
    *out = NULL;
    if (m->vocab_only)
        return sk_error_set(err, SK_ERR_INVALID, "the model was loaded without its weights "
                            "(sk_model_load_vocab): nothing to run");
    const sk_hparams *hp = &m->hp;
    sk_status st = sk_context_params_validate(params, hp, err);
    if (st) return st;
    sk_context *c = calloc(1, sizeof *c);
    if (!c) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (context)");
    c->m = m;
    c->p = *params;
    c->n_batch = params->n_batch;
    sk_cache_params cp = params->cache;
    if (cp.policy == SK_CACHE_WINDOW) cp.n_sinks = 0;
    if (cp.policy == SK_CACHE_RECOMPUTE) {
        /* the cache of a recompute step is a dense one of the window size */
        if (cp.n_window < 1 || cp.n_window > (1 << 24)) {
            free(c);
            return sk_error_set(err, SK_ERR_INVALID, "window %d out of range 1..%d", cp.n_window,
                                1 << 24);
        }
        cp.n_ctx = cp.n_window;
    }
    /* global layers: the policy's cache; local layers: their trained window */
    sk_hparams hg = *hp, hs = *hp;
    hg.n_layer = hp->n_layer - hp->n_layer_swa;
    hs.n_layer = hp->n_layer_swa;
    if ((st = sk_kvcache_new(&hg, &cp, c->n_batch, &c->kv, err))) {
        free(c);
        return st;
    }
    if (hp->n_layer_swa > 0) {
        sk_cache_params sp = cp;
        sp.policy = SK_CACHE_WINDOW;
        sp.n_sinks = 0;
        sp.n_window = hp->n_swa;
        if ((st = sk_kvcache_new(&hs, &sp, c->n_batch, &c->kv_swa, err))) {
            sk_context_free(c);
            return st;
        }
    }
    int nth = params->n_threads > 0 ? params->n_threads : sk_cpu_count();
    if (params->threads) { /* the batch's pool: its thread count */
        const sk_context *lead = params->threads->lead;
        if (lead->m != m || (params->n_threads > 0 && params->n_threads != lead->n_threads)) {
            sk_context_free(c);
            return sk_error_set(err, SK_ERR_INVALID, "threads: the batch is on another model or has %d threads, not %d",
                                lead->n_threads, params->n_threads);
        }
        nth = lead->n_threads;
        c->pool = lead->pool;
    } else if ((st = sk_pool_new(nth, &c->pool, err))) {
        sk_context_free(c);
        return st;
    }
    size_t B = (size_t)c->n_batch, d = (size_t)hp->n_embd, hd = (size_t)hp->head_dim;
    size_t nq = (size_t)hp->n_head * hd, nkv = (size_t)hp->n_head_kv * hd, ff = (size_t)hp->n_ff;
    c->n_rep = hp->n_head / hp->n_head_kv;
    /* per thread: scores of one token, or of a block of SK_QBLK tokens, plus
     * the block's gathered queries (two rotations) and outputs */
    int64_t keys = c->kv->n_prefix + c->kv->ring_cap;
    if (c->kv_swa && c->kv_swa->ring_cap > keys) keys = c->kv_swa->ring_cap;
    c->att_stride = (size_t)SK_QBLK * c->n_rep * (size_t)(keys + SK_QBLK) +
                    3 * (size_t)SK_QBLK * c->n_rep * hd;
    c->theta = scratch(c, sizeof(double) * (size_t)(hp->n_rot / 2 + 1));
    c->theta_swa = scratch(c, sizeof(double) * (size_t)(hp->n_rot / 2 + 1));
    c->cs_swa = scratch(c, sizeof(float) * B * (size_t)(hp->n_rot + 2));
    c->lo_swa = scratch(c, sizeof(int64_t) * B);
    c->x = scratch(c, sizeof(float) * B * d);
    c->xb = scratch(c, sizeof(float) * B * (d > nq ? d : nq));
    c->q = scratch(c, sizeof(float) * B * nq);
    c->qp = scratch(c, sizeof(float) * B * nq);
    c->k = scratch(c, sizeof(float) * B * nkv);
    c->v = scratch(c, sizeof(float) * B * nkv);
    c->ao = scratch(c, sizeof(float) * B * nq);
    c->hg = scratch(c, sizeof(float) * B * ff);
    c->hu = scratch(c, sizeof(float) * B * ff);
    c->att = scratch(c, sizeof(float) * (size_t)nth * c->att_stride);
    c->n_threads = nth;
    c->sc_stride = (size_t)keys;
    c->sc = scratch(c, sizeof(float) * SK_SPLIT_TOK * (size_t)hp->n_head * c->sc_stride);
    c->cs_win = scratch(c, sizeof(float) * B * (size_t)(hp->n_rot + 2));
    c->cs_pfx = scratch(c, sizeof(float) * B * (size_t)(hp->n_rot + 2));
    c->lo = scratch(c, sizeof(int64_t) * B);
    c->use_pfx = scratch(c, B);
    size_t widest = d > ff ? d : ff;
    widest = widest > nq ? widest : nq;
    c->qbuf = scratch(c, sk_matmul_scratch_size((int64_t)widest, c->n_batch));
    c->logits = scratch(c, sizeof(float) * (size_t)hp->n_vocab * (params->logits_all ? B : 1));
    c->emb_sum = scratch(c, sizeof(double) * d);
    if (params->precise) c->rowbuf = scratch(c, sizeof(float) * widest * (size_t)nth);
    if (cp.policy == SK_CACHE_RECOMPUTE) c->hist = scratch(c, sizeof(int32_t) * (size_t)cp.n_window);
    if (!c->sc || !c->theta || !c->theta_swa || !c->cs_swa || !c->lo_swa || !c->x || !c->xb || !c->q || !c->qp || !c->k || !c->v || !c->ao || !c->hg ||
        !c->hu || !c->att || !c->cs_win || !c->cs_pfx || !c->lo || !c->use_pfx || !c->qbuf ||
        !c->logits || (cp.policy == SK_CACHE_RECOMPUTE && !c->hist) ||
        (params->precise && !c->rowbuf)) {
        sk_context_free(c);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (context buffers)");
    }
    /* Phi-3's long RoPE factors apply when the cache holds more positions
     * than rope.scaling.original_context_length (llama.cpp's rule, with its
     * n_ctx as the cache's capacity: positions never exceed it) */
    int64_t capacity = c->kv->n_prefix + c->kv->n_window;
    const float *factors = m->rope_factors;
    if (m->rope_factors_long && m->n_ctx_orig > 0 && capacity > m->n_ctx_orig)
        factors = m->rope_factors_long;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        c->theta[i] = pow(hp->rope_base, -2.0 * i / hp->n_rot);
        if (factors) c->theta[i] /= factors[i];
        c->theta_swa[i] = pow(hp->n_swa ? hp->rope_base_swa : hp->rope_base, -2.0 * i / hp->n_rot);
    }
    sk_context_reset(c);
    *out = c;
    return SK_OK;
}

void sk_context_reset(sk_context *c) {
    sk_kvcache_reset(c->kv);
    if (c->kv_swa) sk_kvcache_reset(c->kv_swa);
    c->has_logits = 0;
    c->n_logits = 0;
    c->n_hist = 0;
    c->n_recomputed = 0;
    if (c->emb_sum) memset(c->emb_sum, 0, sizeof(double) * (size_t)c->m->hp.n_embd);
    c->emb_n = 0;
    c->emb_ok = 1;
}

sk_status sk_context_rollback(sk_context *c, int64_t n, sk_error *err) {
    /* the local window is at most as deep as the global one: check it first
     * so that a refusal leaves both caches as they were */
    sk_status st = c->kv_swa ? sk_kvcache_rollback(c->kv_swa, n, err) : SK_OK;
    if (st) return st;
    if ((st = sk_kvcache_rollback(c->kv, n, err))) {
        if (c->kv_swa) c->kv_swa->n_past += n; /* undo */
        return st;
    }
    if (n > 0) {
        c->has_logits = 0;
        c->n_logits = 0;
        c->emb_ok = 0; /* the sum holds the tokens taken back */
    }
    return SK_OK;
}

const float *sk_logits(const sk_context *c) {
    if (!c->has_logits) return NULL;
    return c->p.logits_all ? c->logits + (size_t)(c->n_logits - 1) * c->m->hp.n_vocab : c->logits;
}

int32_t sk_logits_argmax(const sk_context *c) {
    const float *lg = sk_logits(c);
    if (!lg) return -1;
    /* a vector max, then a scan for its first index (the naive compare loop
     * was 4% of decode time in sinkllm bench) */
    int64_t n = c->m->hp.n_vocab;
    float mx = sk_vec_get()->max(lg, n);
    int64_t best = 0;
    while (best < n - 1 && lg[best] != mx) best++;
    return (int32_t)best;
}

const float *sk_logits_ith(const sk_context *c, int i) {
    if (!c->has_logits || !c->p.logits_all || !c->n_logits_valid || i < 0 || i >= c->n_logits)
        return NULL;
    return c->logits + (size_t)i * c->m->hp.n_vocab;
}

typedef struct nll_job {
    const sk_context *c;
    const int32_t *targets;
    int n;
    double *nll;
} nll_job;

static void nll_worker(void *arg, int ith, int nth) {
    nll_job *j = arg;
    int64_t nv = j->c->m->hp.n_vocab;
    long lo, hi;
    sk_split_range(j->n, 1, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        const float *lg = j->c->logits + (size_t)i * nv;
        int32_t t = j->targets[i];
        if (t < 0 || t >= nv) {
            j->nll[i] = NAN;
            continue;
        }
        float mx = lg[0];
        for (int64_t k = 1; k < nv; k++) mx = lg[k] > mx ? lg[k] : mx;
        double s = 0;
        for (int64_t k = 0; k < nv; k++) s += expf(lg[k] - mx);
        j->nll[i] = log(s) + mx - lg[t];
    }
}

sk_status sk_context_nll(sk_context *c, const int32_t *targets, int n, double *nll, sk_error *err) {
    if (!c->has_logits || !c->p.logits_all || !c->n_logits_valid || n < 0 || n > c->n_logits)
        return sk_error_set(err, SK_ERR_INVALID, "nll: %d rows requested, %d available (logits_all %s)",
                            n, c->has_logits ? c->n_logits : 0, c->p.logits_all ? "on" : "off");
    nll_job j = {c, targets, n, nll};
    sk_pool_run(c->pool, nll_worker, &j);
    return SK_OK;
}

/* all matmuls of the forward pass go through here */
static void matmul(sk_context *c, const sk_matmul_job *jobs, int n_jobs, const float *x,
                   size_t x_stride, int n_in, int n_tok) {
    if (c->p.precise)
        sk_matmul_precise(c->pool, jobs, n_jobs, x, x_stride, n_in, n_tok, c->rowbuf);
    else
        sk_matmul(c->pool, jobs, n_jobs, x, x_stride, n_in, n_tok, c->qbuf);
}

void sk_context_get_stats(const sk_context *c, sk_context_stats *s) {
    memset(s, 0, sizeof *s);
    if (c->p.cache.policy == SK_CACHE_RECOMPUTE) {
        /* each re-encode replaced one token of the window with a new one */
        s->n_past = c->n_recomputed + c->kv->n_past;
        s->n_cached = c->kv->n_past;
        s->n_evicted = c->n_recomputed;
    } else {
        s->n_past = c->kv->n_past;
        s->n_cached = sk_kvcache_cached(c->kv);
        s->n_evicted = sk_kvcache_evicted(c->kv);
    }
    s->cache_capacity = c->kv->n_prefix + c->kv->n_window;
    s->kv_bytes = c->kv->bytes + (c->kv_swa ? c->kv_swa->bytes : 0);
    s->scratch_bytes = c->scratch_bytes;
    s->n_shifts = c->kv->n_shifts;
}

/* cs = mscale * cos/sin of (pos / scale) * theta_i in double precision
 * (the local layers of a sliding-window model have no position scaling) */
static void rope_cs(const sk_context *c, const double *theta, int64_t pos, float *cs) {
    const sk_hparams *hp = &c->m->hp;
    double p = (double)pos / (theta == c->theta ? hp->rope_scale : 1.0), ms = c->m->rope_mscale;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        double a = p * theta[i];
        cs[2 * i] = (float)(ms * cos(a));
        cs[2 * i + 1] = (float)(ms * sin(a));
    }
}

sk_status sk_context_capture_attention(sk_context *c, const int *layers, int n_layers, int n_tok,
                                       float *buf, sk_error *err) {
    if (buf && (n_layers < 1 || n_tok < 1 || !layers))
        return sk_error_set(err, SK_ERR_INVALID, "attention capture needs layers and n_tok >= 1");
    for (int k = 0; buf && k < n_layers; k++)
        if (layers[k] < 0 || layers[k] >= c->m->hp.n_layer)
            return sk_error_set(err, SK_ERR_INVALID, "layer %d out of range 0..%d", layers[k],
                                c->m->hp.n_layer - 1);
    c->cap_layers = layers;
    c->cap_n_layers = buf ? n_layers : 0;
    c->cap_n_tok = n_tok;
    c->cap_buf = buf;
    return SK_OK;
}

/* The cache, window bounds and second rotation that layer l attends with. */
typedef struct attn_job {
    sk_context *c;
    const float *q, *qp;      /* (n, n_head * head_dim) queries, and their prefix rotation */
    float *ao;                /* (n, n_head * head_dim) the output rows */
    sk_kvcache *kv;           /* c->kv, or c->kv_swa for a local layer */
    int layer;                /* index of the layer within kv */
    const int64_t *lo;        /* (n) lowest visible window position per token */
    const uint8_t *use_pfx;   /* (n) the query has a prefix rotation (qp) */
    int n;
    int64_t u0;
    int capture; /* index into cap_layers, or -1 */
    const float *sinks;       /* (n_head) the layer's sink logits, or NULL */
} attn_job;

/* record the head-averaged probabilities of one (token, KV head) */
static void capture(const attn_job *j, int64_t u, int64_t lo, const float *att) {
    sk_context *c = j->c;
    int64_t T = c->cap_n_tok;
    if (u >= T) return;
    const sk_kvcache *kv = j->kv;
    int64_t n_pfx = u + 1 < kv->n_prefix ? u + 1 : kv->n_prefix;
    int64_t n_win = u >= kv->n_prefix ? u - lo + 1 : 0, n_keys = n_pfx + n_win;
    float *row = c->cap_buf + ((size_t)j->capture * T + (size_t)u) * T;
    float inv = 1.0f / c->m->hp.n_head;
    for (int r = 0; r < c->n_rep; r++)
        for (int64_t k = 0; k < n_keys; k++) {
            int64_t p = k < n_pfx ? k : lo + (k - n_pfx);
            if (p < T) row[p] += att[(size_t)r * n_keys + k] * inv;
        }
}

/* Chunked path: (token block, KV head) items; each gathers its queries into
 * contiguous (n_q, n_rep, hd) blocks, runs sk_attend_multi, scatters back. */
static void attn_worker_multi(void *arg, int ith, int nth) {
    attn_job *j = arg;
    sk_context *c = j->c;
    const sk_hparams *hp = &c->m->hp;
    int G = hp->n_head_kv, hd = hp->head_dim, R = c->n_rep;
    size_t nq = (size_t)hp->n_head * hd, qb = (size_t)R * hd;
    int nblk = (j->n + SK_QBLK - 1) / SK_QBLK;
    float *base = c->att + (size_t)ith * c->att_stride;
    float *qw = base, *qp = qw + (size_t)SK_QBLK * qb, *ob = qp + (size_t)SK_QBLK * qb;
    float *att = ob + (size_t)SK_QBLK * qb;
    /* items dealt round-robin: under the causal mask a later block has more
     * keys, so contiguous ranges would give the last thread the most work
     * (3/4 of a fresh chunk's at 2 threads); each item's result does not
     * depend on which thread computes it */
    for (long it = ith; it < (long)nblk * G; it += nth) {
        int b = (int)(it / G), g = (int)(it % G);
        int i0 = b * SK_QBLK, n_q = j->n - i0 < SK_QBLK ? j->n - i0 : SK_QBLK;
        for (int i = 0; i < n_q; i++) {
            size_t off = (size_t)(i0 + i) * nq + (size_t)g * qb;
            memcpy(qw + (size_t)i * qb, j->q + off, qb * sizeof(float));
            memcpy(qp + (size_t)i * qb, j->use_pfx[i0 + i] ? j->qp + off : j->q + off,
                   qb * sizeof(float));
        }
        sk_attend_multi(j->kv, j->layer, g, R, n_q, qw, qp, j->u0 + i0, j->lo + i0,
                        j->sinks ? j->sinks + (size_t)g * R : NULL, ob, att);
        for (int i = 0; i < n_q; i++)
            memcpy(j->ao + (size_t)(i0 + i) * nq + (size_t)g * qb, ob + (size_t)i * qb,
                   qb * sizeof(float));
    }
}

static void attn_worker(void *arg, int ith, int nth) {
    attn_job *j = arg;
    sk_context *c = j->c;
    const sk_hparams *hp = &c->m->hp;
    int G = hp->n_head_kv, hd = hp->head_dim;
    size_t nq = (size_t)hp->n_head * hd;
    long lo, hi;
    sk_split_range((long)j->n * G, 1, ith, nth, &lo, &hi);
    float *att = c->att + (size_t)ith * c->att_stride;
    for (long it = lo; it < hi; it++) {
        int i = (int)(it / G), g = (int)(it % G);
        size_t off = (size_t)i * nq + (size_t)g * c->n_rep * hd;
        const float *qw = j->q + off;
        const float *qp = j->use_pfx[i] ? j->qp + off : qw;
        sk_attend(j->kv, j->layer, g, c->n_rep, qw, qp, j->u0 + i, j->lo[i],
                  j->sinks ? j->sinks + (size_t)g * c->n_rep : NULL, j->ao + off, att);
        if (j->capture >= 0) capture(j, j->u0 + i, j->lo[i], att);
    }
}

/* Decode path (a few tokens): sk_attend's three steps, each over the
 * pool, so that every thread streams the same share of the cache whatever
 * the number of KV heads: the scores of each (token, KV head) in n_threads
 * key ranges; the rows to probabilities; the outputs in column slices
 * (multiples of 16) of the head. The bits do not depend on the split. */
static void split_parts(const attn_job *j, int *P, int *D) {
    *P = j->c->n_threads;
    int hd = j->c->m->hp.head_dim;
    *D = hd % 16 ? 1 : (hd / 16 < *P ? hd / 16 : *P);
}

static void split_scores_item(const attn_job *j, long it) {
    sk_context *c = j->c;
    const sk_hparams *hp = &c->m->hp;
    int G = hp->n_head_kv, R = c->n_rep, P, D;
    split_parts(j, &P, &D);
    size_t nq = (size_t)hp->n_head * hp->head_dim;
    int i = (int)(it / ((long)G * P)), g = (int)(it / P % G), p = (int)(it % P);
    size_t off = (size_t)i * nq + (size_t)g * R * hp->head_dim;
    const float *qw = j->q + off, *qp = j->use_pfx[i] ? j->qp + off : qw;
    int64_t u = j->u0 + i, nk = sk_attend_n_keys(j->kv, u, j->lo[i]);
    sk_attend_scores(j->kv, j->layer, g, R, qw, qp, u, j->lo[i], nk * p / P, nk * (p + 1) / P,
                     c->sc + (size_t)(i * G + g) * R * c->sc_stride, c->sc_stride);
}

static void split_probs_item(const attn_job *j, long it) {
    sk_context *c = j->c;
    int GR = c->m->hp.n_head; /* (KV head, query of its group) rows per token */
    int i = (int)(it / GR);
    sk_attend_probs(j->kv, j->u0 + i, j->lo[i], c->sc + (size_t)(i * GR + it % GR) * c->sc_stride,
                    sk_attend_sink(j->sinks, (int)(it % GR)));
}

static void split_values_item(const attn_job *j, long it) {
    sk_context *c = j->c;
    const sk_hparams *hp = &c->m->hp;
    int G = hp->n_head_kv, R = c->n_rep, hd = hp->head_dim, P, D;
    split_parts(j, &P, &D);
    size_t nq = (size_t)hp->n_head * hd;
    int i = (int)(it / ((long)G * D)), g = (int)(it / D % G), s = (int)(it % D);
    int c0 = D == 1 ? 0 : 16 * (hd / 16 * s / D), c1 = D == 1 ? hd : 16 * (hd / 16 * (s + 1) / D);
    sk_attend_values(j->kv, j->layer, g, R, j->u0 + i, j->lo[i], c->sc + (size_t)(i * G + g) * R * c->sc_stride,
                     c->sc_stride, c0, c1, j->ao + (size_t)i * nq + (size_t)g * R * hd);
}

/* The decode steps of several jobs (the contexts of a batch) in one
 * dispatch per step: items of job 0, then of job 1, ... split over the
 * threads. */
typedef struct {
    const attn_job *jobs;
    int k;
    int step; /* 0 scores, 1 probabilities, 2 values */
    int64_t total; /* attn_whole_worker: the items' summed costs (whole_cost) */
} attn_set;

static long step_items(const attn_job *j, int step) {
    const sk_hparams *hp = &j->c->m->hp;
    int P, D;
    split_parts(j, &P, &D);
    return step == 1 ? (long)j->n * hp->n_head : (long)j->n * hp->n_head_kv * (step == 0 ? P : D);
}

static void attn_set_worker(void *arg, int ith, int nth) {
    const attn_set *s = arg;
    long total = 0, lo, hi;
    for (int j = 0; j < s->k; j++) total += step_items(&s->jobs[j], s->step);
    sk_split_range(total, 1, ith, nth, &lo, &hi);
    int j = 0;
    long base = 0, nj = s->k ? step_items(&s->jobs[0], s->step) : 0;
    for (long it = lo; it < hi; it++) {
        while (it >= base + nj) {
            base += nj;
            nj = step_items(&s->jobs[++j], s->step);
        }
        if (s->step == 0) split_scores_item(&s->jobs[j], it - base);
        else if (s->step == 1) split_probs_item(&s->jobs[j], it - base);
        else split_values_item(&s->jobs[j], it - base);
    }
}

/* Many decode rows (a batch of streams): one dispatch, whole items of
 * (job, token, KV head), each the three steps over all its keys and
 * columns (the split of one thread: the same bits), dealt to the threads
 * in contiguous runs of about equal key counts. Three dispatches per layer
 * become one, and each item reads its keys and values on one core. */
static int64_t whole_cost(const attn_job *j, long it) {
    int G = j->c->m->hp.n_head_kv, i = (int)(it / G);
    return 1 + sk_attend_n_keys(j->kv, j->u0 + i, j->lo[i]);
}

static void attn_whole_worker(void *arg, int ith, int nth) {
    const attn_set *s = arg;
    /* item runs: an item belongs to the thread whose share holds its first key */
    int64_t lo = s->total * ith / nth, hi = s->total * (ith + 1) / nth, at = 0;
    for (int j = 0; j < s->k && at < hi; j++) {
        const attn_job *aj = &s->jobs[j];
        sk_context *c = aj->c;
        const sk_hparams *hp = &c->m->hp;
        int G = hp->n_head_kv, R = c->n_rep, hd = hp->head_dim;
        size_t nq = (size_t)hp->n_head * hd;
        for (long it = 0; it < (long)aj->n * G && at < hi; it++) {
            int64_t cost = whole_cost(aj, it);
            at += cost;
            if (at - cost < lo) continue;
            int i = (int)(it / G), g = (int)(it % G);
            size_t off = (size_t)i * nq + (size_t)g * R * hd;
            const float *qw = aj->q + off, *qp = aj->use_pfx[i] ? aj->qp + off : qw;
            int64_t u = aj->u0 + i, nk = sk_attend_n_keys(aj->kv, u, aj->lo[i]);
            float *sc = c->sc + (size_t)(i * G + g) * R * c->sc_stride;
            sk_attend_scores(aj->kv, aj->layer, g, R, qw, qp, u, aj->lo[i], 0, nk, sc, c->sc_stride);
            for (int r = 0; r < R; r++)
                sk_attend_probs(aj->kv, u, aj->lo[i], sc + (size_t)r * c->sc_stride,
                                sk_attend_sink(aj->sinks, g * R + r));
            sk_attend_values(aj->kv, aj->layer, g, R, u, aj->lo[i], sc, c->sc_stride, 0, hd, aj->ao + off);
        }
    }
}

/* whole items once there are this many per thread (SmolLM2's 3 KV heads:
 * from 3 streams on 2 threads) */
#define SK_WHOLE_PER_THREAD 4

static void attn_split_run(sk_pool *pool, const attn_job *jobs, int k) {
    long items = 0;
    for (int j = 0; j < k; j++) items += (long)jobs[j].n * jobs[j].c->m->hp.n_head_kv;
    if (items >= (long)SK_WHOLE_PER_THREAD * jobs[0].c->n_threads) {
        attn_set s = {jobs, k, 0, 0};
        for (int j = 0; j < k; j++)
            for (long it = 0; it < (long)jobs[j].n * jobs[j].c->m->hp.n_head_kv; it++)
                s.total += whole_cost(&jobs[j], it);
        sk_pool_run(pool, attn_whole_worker, &s);
        return;
    }
    for (int step = 0; step < 3; step++) {
        attn_set s = {jobs, k, step, 0};
        sk_pool_run(pool, attn_set_worker, &s);
    }
}

/* ---- per-token row operations over the thread pool ----------------------
 * RMSNorm row by row, and the gated activations over element ranges whose
 * bounds are multiples of 64 (so that the SIMD kernels cover the same
 * elements as one call over everything would: the same bits whatever the
 * thread count). Chunks of one or a few tokens run on the calling thread. */

typedef struct {
    float *out;
    const float *x, *w;
    int n, d;
    float eps;
    int act; /* rows_act: SK_ACT_* */
    float *g;
    const float *u;
    int64_t len;
} rows_job;

static void norm_worker(void *arg, int ith, int nth) {
    rows_job *j = arg;
    long lo, hi;
    sk_split_range(j->n, 1, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        sk_rmsnorm(j->out + (size_t)i * j->d, j->x + (size_t)i * j->d, j->w, j->d, j->eps);
}

/* out[i] = rmsnorm(x[i]) * w for the n rows of d (out may be x) */
static void norm_rows(sk_context *c, float *out, const float *x, const float *w, int n) {
    rows_job j = {.out = out, .x = x, .w = w, .n = n, .d = c->m->hp.n_embd, .eps = c->m->hp.norm_eps};
    if (n < 4) norm_worker(&j, 0, 1);
    else sk_pool_run(c->pool, norm_worker, &j);
}

static void act_worker(void *arg, int ith, int nth) {
    rows_job *j = arg;
    long lo, hi;
    sk_split_range((long)j->len, 64, ith, nth, &lo, &hi);
    if (hi <= lo) return;
    if (j->act == SK_ACT_GELU_TANH) sk_geglu(j->g + lo, j->u + lo, hi - lo);
    else sk_swiglu(j->g + lo, j->u + lo, hi - lo);
}

/* g = act(g) * u over len elements */
static void act_rows(sk_context *c, float *g, const float *u, int64_t len, int n) {
    rows_job j = {.act = c->m->arch->act, .g = g, .u = u, .len = len};
    if (n < 4) act_worker(&j, 0, 1);
    else sk_pool_run(c->pool, act_worker, &j);
}

/* y[t * stride + r] += b[r] for the n_tok rows of a matmul output; b NULL:
 * nothing (the bias is optional) */
static void add_bias(float *y, size_t stride, const sk_tensor *b, int64_t n_out, int n_tok) {
    if (!b->data) return;
    const float *bv = b->data;
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < n_out; r++) y[(size_t)t * stride + (size_t)r] += bv[r];
}

/* The rows of a chunk's attention: q, its prefix rotation qp, k, v (n,
 * heads * head_dim each) and the output ao: c's own buffers, or its rows of
 * a batch's. */
typedef struct attn_rows {
    float *q, *qp, *k, *v, *ao;
} attn_rows;

/* The per-token part of layer l's attention over the chunk's rows r
 * (norms, scaling, rotations, the cache rows) and the job that attends
 * with them. */
static void attention_prep(sk_context *c, int l, int n, int64_t u0, const attn_rows *r, attn_job *out) {
    const sk_model *m = c->m;
    const sk_hparams *hp = &m->hp;
    const sk_layer *L = &m->layers[l];
    int hd = hp->head_dim, nr = hp->n_rot;
    size_t nq = (size_t)hp->n_head * hd, nkv = (size_t)hp->n_head_kv * hd;
    attn_job aj = {c, r->q, r->qp, r->ao, c->kv, L->kv_layer, c->lo, c->use_pfx, n, u0, -1, L->sinks.data};
    const float *cs = c->cs_win;
    if (L->swa) {
        static const uint8_t no_pfx[SK_MAX_BATCH]; /* the local window has no prefix */
        aj.kv = c->kv_swa;
        aj.lo = c->lo_swa;
        aj.use_pfx = no_pfx;
        cs = c->cs_swa;
    }
    for (int i = 0; i < n; i++) {
        float *qi = r->q + (size_t)i * nq, *ki = r->k + (size_t)i * nkv;
        if (L->q_norm.data) {
            for (int h = 0; h < hp->n_head; h++)
                sk_rmsnorm(qi + (size_t)h * hd, qi + (size_t)h * hd, L->q_norm.data, hd, hp->norm_eps);
            for (int h = 0; h < hp->n_head_kv; h++)
                sk_rmsnorm(ki + (size_t)h * hd, ki + (size_t)h * hd, L->k_norm.data, hd, hp->norm_eps);
        }
        if (m->q_scale != 1.0f)
            for (size_t e = 0; e < nq; e++) qi[e] *= m->q_scale;
        if (aj.use_pfx[i]) {
            memcpy(r->qp + (size_t)i * nq, qi, nq * sizeof(float));
            sk_rope_apply(r->qp + (size_t)i * nq, hp->n_head, hd, nr, hp->rope_neox,
                          c->cs_pfx + (size_t)i * nr);
        }
        sk_rope_apply(qi, hp->n_head, hd, nr, hp->rope_neox, cs + (size_t)i * nr);
        sk_rope_apply(ki, hp->n_head_kv, hd, nr, hp->rope_neox, cs + (size_t)i * nr);
        sk_kvcache_store(aj.kv, aj.layer, u0 + i, ki, r->v + (size_t)i * nkv);
    }
    for (int k = 0; k < c->cap_n_layers; k++)
        if (c->cap_layers[k] == l) aj.capture = k;
    *out = aj;
}

/* the decode steps serve this job (with others of a batch) */
static int split_job(const attn_job *aj) { return aj->capture < 0 && aj->n <= SK_SPLIT_TOK; }

/* the attention block of layer l over the chunk: q, k, v into c->ao */
static void attention(sk_context *c, int l, int n, int64_t u0) {
    attn_job aj;
    const attn_rows r = {c->q, c->qp, c->k, c->v, c->ao};
    attention_prep(c, l, n, u0, &r, &aj);
    if (aj.capture >= 0)
        attn_worker(&aj, 0, 1); /* one thread: capture() accumulates shared rows */
    else if (split_job(&aj))
        attn_split_run(c->pool, &aj, 1);
    else if (sk_kvcache_multi_ok(aj.kv))
        sk_pool_run(c->pool, attn_worker_multi, &aj);
    else
        sk_pool_run(c->pool, attn_worker, &aj);
}

/* Plan c's caches for n tokens and set up its per-token tables: the
 * embedding of tokens[i] into row x[i] (x: lead's rows for c) and the
 * rotations at stream and cache positions. */
static sk_status prepare(sk_context *c, const int32_t *tokens, int n, float *x, sk_error *err) {
    const sk_model *m = c->m;
    const sk_hparams *hp = &m->hp;
    sk_kvcache *kv = c->kv;
    sk_status st = sk_kvcache_plan(kv, n, c->lo, err);
    if (st) return st;
    if (c->kv_swa && (st = sk_kvcache_plan(c->kv_swa, n, c->lo_swa, err))) return st;
    int d = hp->n_embd, nr = hp->n_rot;
    int64_t u0 = kv->n_past;
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * d;
        sk_embed_row(&m->tok_embd, tokens[i], xi);
        if (m->embd_scale != 1.0f)
            for (int e = 0; e < d; e++) xi[e] *= m->embd_scale;
        int64_t u = u0 + i;
        rope_cs(c, c->theta, u, c->cs_win + (size_t)i * nr);
        if (c->kv_swa) rope_cs(c, c->theta_swa, u, c->cs_swa + (size_t)i * nr);
        int64_t cpos = u < kv->n_prefix ? u : kv->n_prefix + (u - c->lo[i]);
        c->use_pfx[i] = cpos != u && kv->n_prefix > 0;
        if (c->use_pfx[i]) rope_cs(c, c->theta, cpos, c->cs_pfx + (size_t)i * nr);
    }
    return SK_OK;
}

/* The attention block of layer l for each of the k contexts, over its rows
 * of lead's buffers (from row off[j], n[j] of them): each context attends
 * over its own cache with lead's pool (the same thread count). The
 * contexts on the decode path (a few tokens each) share one dispatch per
 * step. */
static void attention_all(sk_context *lead, sk_context *const *cs, const int *n, const int *off, int k,
                          int l) {
    if (k == 1 && cs[0] == lead) {
        attention(lead, l, n[0], lead->kv->n_past);
        return;
    }
    const sk_hparams *hp = &lead->m->hp;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    attn_job jobs[SK_MAX_BATCH_SEQS];
    int nj = 0;
    for (int j = 0; j < k; j++) {
        sk_context *c = cs[j];
        size_t o = (size_t)off[j];
        const attn_rows r = {lead->q + o * nq, lead->qp + o * nq, lead->k + o * nkv, lead->v + o * nkv,
                             lead->ao + o * nq};
        attn_job aj;
        attention_prep(c, l, n[j], c->kv->n_past, &r, &aj);
        if (split_job(&aj)) jobs[nj++] = aj;
        else if (aj.capture >= 0) attn_worker(&aj, 0, 1);
        else if (sk_kvcache_multi_ok(aj.kv)) sk_pool_run(lead->pool, attn_worker_multi, &aj);
        else sk_pool_run(lead->pool, attn_worker, &aj);
    }
    if (nj) attn_split_run(lead->pool, jobs, nj);
}

/* Run the transformer over n[j] tokens of each of the k contexts cs[j] at
 * their stream positions, every weight matrix once over all the rows, in
 * lead's buffers with lead's pool (lead may be cs[0] itself: one context,
 * blog NULL); sum n[j] <= lead->n_batch, n[j] <= cs[j]->n_batch. Leaves
 * each context's logits (its last token's, or all with logits_all) in its
 * own buffer; with several, the head runs once over their rows into blog
 * (k rows of n_vocab; no logits_all then) and each copies its row.
 * Every row is computed with the same arithmetic whatever shares the pass
 * (ops.h, kvcache.h), so the bits do not depend on the batch. The steps
 * and which families take them: arch.h. */
static sk_status forward_batch(sk_context *lead, sk_context *const *cs, const int32_t *const *toks,
                               const int *n, int k, float *blog, sk_error *err) {
    const sk_model *m = lead->m;
    const sk_hparams *hp = &m->hp;
    int d = hp->n_embd;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim,
           ff = (size_t)hp->n_ff;
    int off[SK_MAX_BATCH_SEQS + 1];
    off[0] = 0;
    for (int j = 0; j < k; j++) {
        sk_status st = prepare(cs[j], toks[j], n[j], lead->x + (size_t)off[j] * d, err);
        if (st) return st; /* plans only: nothing stored yet */
        off[j + 1] = off[j] + n[j];
    }
    int T = off[k];
    for (int l = 0; l < hp->n_layer; l++) {
        const sk_layer *L = &m->layers[l];
        norm_rows(lead, lead->xb, lead->x, L->attn_norm.data, T);
        sk_matmul_job qkv[3] = {{&L->wq, lead->q, nq}, {&L->wk, lead->k, nkv}, {&L->wv, lead->v, nkv}};
        matmul(lead, qkv, 3, lead->xb, (size_t)d, d, T);
        add_bias(lead->q, nq, &L->bq, (int64_t)nq, T);
        add_bias(lead->k, nkv, &L->bk, (int64_t)nkv, T);
        add_bias(lead->v, nkv, &L->bv, (int64_t)nkv, T);
        attention_all(lead, cs, n, off, k, l);
        sk_matmul_job o = {&L->wo, lead->xb, (size_t)d};
        matmul(lead, &o, 1, lead->ao, nq, (int)nq, T);
        add_bias(lead->xb, (size_t)d, &L->bo, d, T);
        if (L->post_attn_norm.data) norm_rows(lead, lead->xb, lead->xb, L->post_attn_norm.data, T);
        for (size_t i = 0; i < (size_t)T * d; i++) lead->x[i] += lead->xb[i];
        norm_rows(lead, lead->xb, lead->x, L->ffn_norm.data, T);
        sk_matmul_job gu[2] = {{&L->w_gate, lead->hg, ff}, {&L->w_up, lead->hu, ff}};
        matmul(lead, gu, 2, lead->xb, (size_t)d, d, T);
        add_bias(lead->hg, ff, &L->b_gate, (int64_t)ff, T);
        add_bias(lead->hu, ff, &L->b_up, (int64_t)ff, T);
        act_rows(lead, lead->hg, lead->hu, (int64_t)T * (int64_t)ff, T);
        sk_matmul_job dn = {&L->w_down, lead->xb, (size_t)d};
        matmul(lead, &dn, 1, lead->hg, ff, (int)ff, T);
        add_bias(lead->xb, (size_t)d, &L->b_down, d, T);
        if (L->post_ffn_norm.data) norm_rows(lead, lead->xb, lead->xb, L->post_ffn_norm.data, T);
        for (size_t i = 0; i < (size_t)T * d; i++) lead->x[i] += lead->xb[i];
    }
    /* every token's final normed state (what the head reads): its sum is
     * the embedding; logits of each context's last token, or of every
     * token with logits_all */
    norm_rows(lead, lead->xb, lead->x, m->output_norm.data, T);
    int n_out = 0; /* rows for the head, gathered (several contexts) into lead->x, free now */
    for (int j = 0; j < k; j++) {
        sk_context *c = cs[j];
        for (int i = off[j]; i < off[j + 1]; i++)
            for (int e = 0; e < d; e++) c->emb_sum[e] += (double)lead->xb[(size_t)i * (size_t)d + (size_t)e];
        c->emb_n += n[j];
        c->n_logits = c->p.logits_all ? n[j] : 1;
        if (blog)
            memcpy(lead->x + (size_t)n_out * d, lead->xb + (size_t)(off[j + 1] - c->n_logits) * d,
                   sizeof(float) * (size_t)c->n_logits * d);
        n_out += c->n_logits;
    }
    float *lg = blog ? blog : cs[0]->logits;
    sk_matmul_job out = {&m->output, lg, (size_t)hp->n_vocab};
    matmul(lead, &out, 1, blog ? lead->x : lead->xb + (size_t)(T - n_out) * d, (size_t)d, d, n_out);
    if (m->logit_softcap > 0.0f) {
        float cap = m->logit_softcap, inv = 1.0f / cap;
        for (size_t i = 0; i < (size_t)n_out * (size_t)hp->n_vocab; i++) lg[i] = cap * tanhf(lg[i] * inv);
    }
    for (int j = 0, r = 0; j < k; j++) {
        sk_context *c = cs[j];
        if (blog) memcpy(c->logits, blog + (size_t)r * hp->n_vocab, sizeof(float) * (size_t)c->n_logits * hp->n_vocab);
        r += c->n_logits;
        sk_kvcache_commit(c->kv, n[j]);
        if (c->kv_swa) sk_kvcache_commit(c->kv_swa, n[j]);
        c->has_logits = 1;
    }
    return SK_OK;
}

static sk_status forward_chunk(sk_context *c, const int32_t *tokens, int n, sk_error *err) {
    return forward_batch(c, &c, &tokens, &n, 1, NULL, err);
}

static sk_status feed(sk_context *c, const int32_t *tokens, int64_t n, sk_error *err) {
    /* dense: all or nothing, so that a failed call leaves the cache as it was */
    if (c->kv->policy == SK_CACHE_DENSE && c->kv->n_past + n > c->kv->n_window)
        return sk_error_set(err, SK_ERR_FULL, "context full: %lld + %lld tokens > ctx %lld",
                            (long long)c->kv->n_past, (long long)n, (long long)c->kv->n_window);
    for (int64_t i = 0; i < n; i += c->n_batch) {
        int k = (int)(n - i < c->n_batch ? n - i : c->n_batch);
        sk_status st = forward_chunk(c, tokens + i, k, err);
        if (st) return st;
    }
    /* logits_all rows belong to a call of at most n_batch tokens */
    if (n > c->n_batch && c->p.logits_all) c->n_logits_valid = 0;
    else c->n_logits_valid = 1;
    return SK_OK;
}

sk_status sk_context_embedding(const sk_context *c, int normalize, float *out, sk_error *err) {
    if (!c->emb_ok || c->emb_n == 0)
        return sk_error_set(err, SK_ERR_INVALID, c->emb_n == 0 ? "embedding: no token fed since the reset"
                                                               : "embedding: not available after a rollback, "
                                                                 "a session load or a recompute pass");
    size_t d = (size_t)c->m->hp.n_embd;
    double norm = 0;
    for (size_t j = 0; j < d; j++) {
        double v = c->emb_sum[j] / (double)c->emb_n;
        norm += v * v;
    }
    double scale = normalize && norm > 0 ? 1.0 / sqrt(norm) : 1.0;
    for (size_t j = 0; j < d; j++) out[j] = (float)(c->emb_sum[j] / (double)c->emb_n * scale);
    return SK_OK;
}

sk_status sk_decode(sk_context *c, const int32_t *tokens, int64_t n, sk_error *err) {
    if (n < 0) return sk_error_set(err, SK_ERR_INVALID, "negative token count");
    if (n == 0) return SK_OK;
    int64_t nv = c->m->hp.n_vocab;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return sk_error_set(err, SK_ERR_INVALID, "token id %d out of range 0..%lld",
                                tokens[i], (long long)nv - 1);
    if (c->p.cache.policy != SK_CACHE_RECOMPUTE) return feed(c, tokens, n, err);
    /* recompute: while the history fits, it is a plain dense pass; once it
     * overflows, every token re-encodes the last W tokens from position 0 */
    int64_t W = c->kv->n_window;
    for (int64_t i = 0; i < n; i++) {
        if (c->n_hist < W) {
            c->hist[c->n_hist++] = tokens[i];
            int64_t j = i + 1; /* feed the run of tokens that still fits */
            while (j < n && c->n_hist < W) c->hist[c->n_hist++] = tokens[j++];
            sk_status st = feed(c, tokens + i, j - i, err);
            if (st) return st;
            i = j - 1;
            continue;
        }
        memmove(c->hist, c->hist + 1, sizeof(int32_t) * (size_t)(W - 1));
        c->hist[W - 1] = tokens[i];
        c->emb_ok = 0; /* the pass below re-encodes tokens already summed */
        sk_kvcache_reset(c->kv);
        if (c->kv_swa) sk_kvcache_reset(c->kv_swa);
        c->n_recomputed++;
        sk_status st = feed(c, c->hist, W, err);
        if (st) return st;
    }
    return SK_OK;
}

/* ---- several contexts in one pass --------------------------------------- */


sk_status sk_batch_new(const sk_model *m, int n_threads, int max_tokens, int max_seqs, sk_batch **out,
                       sk_error *err) {
    *out = NULL;
    if (n_threads < 0 || n_threads > SK_MAX_THREADS)
        return sk_error_set(err, SK_ERR_INVALID, "batch: threads %d out of range 0..%d", n_threads, SK_MAX_THREADS);
    if (max_seqs < 1 || max_seqs > SK_MAX_BATCH_SEQS)
        return sk_error_set(err, SK_ERR_INVALID, "batch: sequences %d out of range 1..%d", max_seqs,
                            SK_MAX_BATCH_SEQS);
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = n_threads;
    p.n_batch = max_tokens; /* validated by sk_context_new */
    p.cache.policy = SK_CACHE_DENSE;
    p.cache.n_ctx = 1;
    sk_batch *b = calloc(1, sizeof *b);
    if (!b) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (batch)");
    sk_status st = sk_context_new(m, &p, &b->lead, err);
    if (st) {
        free(b);
        return st;
    }
    b->max_seqs = max_seqs;
    b->logits = malloc(sizeof(float) * (size_t)max_seqs * (size_t)m->hp.n_vocab);
    if (!b->logits) {
        sk_batch_free(b);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (batch logits)");
    }
    *out = b;
    return SK_OK;
}

void sk_batch_free(sk_batch *b) {
    if (!b) return;
    sk_context_free(b->lead);
    free(b->logits);
    free(b);
}

sk_status sk_decode_batch(sk_batch *b, sk_context *const *ctx, const int32_t *const *tokens, const int *n,
                          int n_ctx, sk_error *err) {
    sk_context *lead = b->lead;
    if (n_ctx < 1 || n_ctx > b->max_seqs)
        return sk_error_set(err, SK_ERR_INVALID, "batch: %d contexts, not 1..%d", n_ctx, b->max_seqs);
    int64_t total = 0, nv = lead->m->hp.n_vocab;
    for (int j = 0; j < n_ctx; j++) {
        const sk_context *c = ctx[j];
        if (!c || c->m != lead->m)
            return sk_error_set(err, SK_ERR_INVALID, "batch: context %d is not on the batch's model", j);
        for (int i = 0; i < j; i++)
            if (ctx[i] == c) return sk_error_set(err, SK_ERR_INVALID, "batch: context %d appears twice", j);
        if (c->n_threads != lead->n_threads)
            return sk_error_set(err, SK_ERR_INVALID, "batch: context %d has %d threads, the batch %d", j,
                                c->n_threads, lead->n_threads);
        if (c->p.logits_all || c->p.precise || c->p.cache.policy == SK_CACHE_RECOMPUTE)
            return sk_error_set(err, SK_ERR_INVALID,
                                "batch: context %d uses logits_all, precise or the recompute policy", j);
        if (n[j] < 1 || n[j] > c->n_batch)
            return sk_error_set(err, SK_ERR_INVALID, "batch: context %d: %d tokens, not 1..%d", j, n[j],
                                c->n_batch);
        for (int i = 0; i < n[j]; i++)
            if (tokens[j][i] < 0 || tokens[j][i] >= nv)
                return sk_error_set(err, SK_ERR_INVALID, "batch: context %d: token id %d out of range 0..%lld", j,
                                    tokens[j][i], (long long)nv - 1);
        if (c->kv->policy == SK_CACHE_DENSE && c->kv->n_past + n[j] > c->kv->n_window)
            return sk_error_set(err, SK_ERR_FULL, "batch: context %d full: %lld + %d tokens > ctx %lld", j,
                                (long long)c->kv->n_past, n[j], (long long)c->kv->n_window);
        total += n[j];
    }
    if (total > lead->n_batch)
        return sk_error_set(err, SK_ERR_INVALID, "batch: %lld tokens > %d", (long long)total, lead->n_batch);
    sk_status st = forward_batch(lead, ctx, tokens, n, n_ctx, b->logits, err);
    for (int j = 0; j < n_ctx && !st; j++) ctx[j]->n_logits_valid = 1;
    return st;
}

int sk_context_batch_size(const sk_context *c) { return c->n_batch; }
