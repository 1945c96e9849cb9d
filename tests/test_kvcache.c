/* test_kvcache.c - the cache policies against the double-precision oracle
 * (tests/oracle.c) on tiny random models: positions within the cache,
 * sinks never evicted, exact window size, many ring wraps at every phase,
 * chunked pre-fill equal to token-by-token feeding, and no drift of the
 * position trick at a stream position of 1,000,000. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/kvcache.h"
#include "runtime/model.h"
#include "kernels/ops.h"
#include "util_oracle.h"
#include "sinkllm.h"
#include "util_tiny.h"

typedef struct tiny {
    uint8_t *buf;
    sk_model *m;
} tiny;

static tiny tiny_load_dim(int n_rot_neox, int n_embd) {
    tiny t;
    tiny_opts o;
    tiny_defaults(&o);
    o.n_embd = n_embd;
    size_t n;
    tiny_build(&o, &t.buf, &n);
    sk_error err = {0};
    if (sk_model_from_span(t.buf, n, &t.m, &err)) fail_msg("%s", err.msg);
    t.m->hp.rope_neox = n_rot_neox; /* exercise both layouts */
    return t;
}

static tiny tiny_load(int n_rot_neox) { return tiny_load_dim(n_rot_neox, 32); }

static void tiny_free(tiny *t) {
    sk_model_free(t->m);
    free(t->buf);
}

static sk_context *ctx_new(const sk_model *m, sk_cache_policy pol, int S, int W, int n_ctx,
                           int n_batch, sk_kv_type kvt) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 2;
    p.n_batch = n_batch;
    p.cache.policy = pol;
    p.cache.n_sinks = S;
    p.cache.n_window = W;
    p.cache.n_ctx = n_ctx;
    p.cache.kv_type = kvt;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("context: %s", err.msg);
    return c;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static int32_t tok_at(int64_t i) { return (int32_t)((i * 7919 + 13) % 64); }

/* Feed T tokens one at a time to engine and oracle; compare at every step. */
static double run_vs_oracle(const sk_model *m, sk_cache_policy pol, int S, int W, int n_ctx,
                            int64_t T) {
    sk_context *c = ctx_new(m, pol, S, W, n_ctx, 4, SK_KV_F32);
    sk_cache_params cp = {.policy = pol, .n_sinks = S, .n_window = W, .n_ctx = n_ctx};
    oracle *o = oracle_new(m, &cp, T);
    double *ref = malloc(sizeof(double) * 64), worst = 0;
    sk_error err = {0};
    for (int64_t i = 0; i < T; i++) {
        int32_t t = tok_at(i);
        assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
        oracle_step(o, t, ref);
        double e = rel_err(sk_logits(c), ref, 64);
        if (e > worst) worst = e;
        if (e > 1e-4)
            fail_msg("policy %s S=%d W=%d: step %lld: relative error %.3g", sk_cache_policy_name(pol),
                     S, W, (long long)i, e);
    }
    sk_context_stats st;
    sk_context_get_stats(c, &st);
    if (pol == SK_CACHE_SINK || pol == SK_CACHE_WINDOW) {
        int64_t S_eff = pol == SK_CACHE_WINDOW ? 0 : S;
        /* window size exact: the next token sees S sinks + W - 1 window tokens */
        int64_t want_cached = T <= S_eff ? T : S_eff + (T - S_eff < W - 1 ? T - S_eff : W - 1);
        assert_int_equal(st.n_cached, want_cached);
        assert_int_equal(st.n_evicted, T - want_cached);
    }
    free(ref);
    oracle_free(o);
    sk_context_free(c);
    return worst;
}

static void test_sink_window_vs_oracle(void **state) {
    (void)state;
    for (int neox = 0; neox <= 1; neox++) {
        tiny t = tiny_load(neox);
        int Ss[] = {0, 1, 4}, Ws[] = {1, 7, 64};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                int S = Ss[a], W = Ws[b];
                /* ring of W + 3 slots (n_batch 4): >= 3 wraps, every phase */
                int64_t T = S + 3 * (W + 3) + 5;
                double e = run_vs_oracle(t.m, S ? SK_CACHE_SINK : SK_CACHE_WINDOW, S, W, 0, T);
                printf("  %s S=%d W=%-2d T=%-3lld: max rel err %.2g\n", neox ? "neox" : "norm", S,
                       W, (long long)T, e);
            }
        tiny_free(&t);
    }
}

static void test_other_policies_vs_oracle(void **state) {
    (void)state;
    tiny t = tiny_load(0);
    printf("  dense     : %.2g\n", run_vs_oracle(t.m, SK_CACHE_DENSE, 0, 0, 100, 100));
    printf("  shift 4+16: %.2g\n", run_vs_oracle(t.m, SK_CACHE_SHIFT, 4, 16, 0, 90));
    printf("  shift 0+9 : %.2g\n", run_vs_oracle(t.m, SK_CACHE_SHIFT, 0, 9, 0, 50));
    printf("  recompute 12: %.2g\n", run_vs_oracle(t.m, SK_CACHE_RECOMPUTE, 0, 12, 0, 40));
    tiny_free(&t);
}

/* A prompt longer than the cache, fed in chunks with eviction between
 * chunks, equals feeding it token by token (and the oracle). */
static void test_chunked_prefill(void **state) {
    (void)state;
    tiny t = tiny_load(0);
    int configs[][3] = {{4, 7, 5}, {4, 64, 16}, {1, 20, 64}, {0, 9, 3}, {4, 30, 256}};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        int S = configs[k][0], W = configs[k][1], B = configs[k][2];
        int64_t T = 300;
        int32_t *toks = malloc(sizeof(int32_t) * T);
        for (int64_t i = 0; i < T; i++) toks[i] = tok_at(i);
        sk_cache_policy pol = S ? SK_CACHE_SINK : SK_CACHE_WINDOW;
        sk_context *a = ctx_new(t.m, pol, S, W, 0, B, SK_KV_F32);
        sk_context *b = ctx_new(t.m, pol, S, W, 0, 1, SK_KV_F32);
        sk_error err = {0};
        assert_int_equal(sk_decode(a, toks, T, &err), SK_OK);
        for (int64_t i = 0; i < T; i++) assert_int_equal(sk_decode(b, &toks[i], 1, &err), SK_OK);
        double md = 0, mb = 0;
        for (int i = 0; i < 64; i++) {
            md = fmax(md, fabs(sk_logits(a)[i] - sk_logits(b)[i]));
            mb = fmax(mb, fabs(sk_logits(b)[i]));
        }
        printf("  S=%d W=%d chunk=%d: chunked vs token-by-token rel err %.2g\n", S, W, B, md / mb);
        assert_true(md / mb < 1e-5);
        free(toks);
        sk_context_free(a);
        sk_context_free(b);
    }
    tiny_free(&t);
}

/* Rollback: feeding A, taking back its last n tokens and feeding B gives
 * the logits of feeding A[0, len - n) + B directly, as long as the window
 * is still in the ring (sink, window, dense); past that, and for shift and
 * recompute, SK_ERR_INVALID and the context is unchanged. */
static void test_rollback(void **state) {
    (void)state;
    tiny t = tiny_load(0);
    sk_cache_policy pols[] = {SK_CACHE_SINK, SK_CACHE_WINDOW, SK_CACHE_DENSE};
    for (size_t pi = 0; pi < 3; pi++)
        for (int kvt = 0; kvt < 2; kvt++) {
            sk_context_params p;
            sk_context_params_default(&p);
            p.n_threads = 2;
            p.n_batch = 4;
            p.cache.policy = pols[pi];
            p.cache.n_sinks = 4;
            p.cache.n_window = 7;
            p.cache.n_ctx = 200;
            p.cache.n_rollback = 5;
            p.cache.kv_type = kvt ? SK_KV_F16 : SK_KV_F32;
            sk_context *a = NULL, *b = NULL;
            sk_error err = {0};
            assert_int_equal(sk_context_new(t.m, &p, &a, &err), SK_OK);
            assert_int_equal(sk_context_new(t.m, &p, &b, &err), SK_OK);
            int32_t A[40], B[12];
            for (int i = 0; i < 40; i++) A[i] = tok_at(i);
            for (int i = 0; i < 12; i++) B[i] = tok_at(1000 + 3 * i);
            assert_int_equal(sk_decode(a, A, 40, &err), SK_OK);
            /* ring = 7 + 4 - 1 + 5 = 15 slots: up to 9 tokens can go (dense: all) */
            int max_back = pols[pi] == SK_CACHE_DENSE ? 40 : 9;
            if (pols[pi] != SK_CACHE_DENSE) {
                assert_int_equal(sk_context_rollback(a, 10, &err), SK_ERR_INVALID);
                sk_context_stats st;
                sk_context_get_stats(a, &st);
                assert_int_equal(st.n_past, 40);
                assert_non_null(sk_logits(a));
            }
            int back = max_back < 9 ? max_back : 9;
            assert_int_equal(sk_context_rollback(a, back, &err), SK_OK);
            assert_null(sk_logits(a));
            assert_int_equal(sk_decode(a, B, 12, &err), SK_OK);
            assert_int_equal(sk_decode(b, A, 40 - back, &err), SK_OK);
            assert_int_equal(sk_decode(b, B, 12, &err), SK_OK);
            double md = 0, mb = 0;
            for (int i = 0; i < 64; i++) {
                md = fmax(md, fabs(sk_logits(a)[i] - sk_logits(b)[i]));
                mb = fmax(mb, fabs(sk_logits(b)[i]));
            }
            if (md / mb > 1e-5) fail_msg("policy %d kv %d: rollback rel err %g", (int)pols[pi], kvt, md / mb);
            /* a second rollback after a short refill: counted from the high-water mark */
            if (pols[pi] != SK_CACHE_DENSE)
                assert_int_equal(sk_context_rollback(a, 12, &err), SK_ERR_INVALID);
            assert_int_equal(sk_context_rollback(a, 2, &err), SK_OK);
            assert_int_equal(sk_context_rollback(a, -1, &err), SK_ERR_INVALID);
            sk_context_free(a);
            sk_context_free(b);
        }
    /* shift and recompute refuse */
    sk_cache_policy no[] = {SK_CACHE_SHIFT, SK_CACHE_RECOMPUTE};
    for (int k = 0; k < 2; k++) {
        sk_context *c = ctx_new(t.m, no[k], 4, 8, 0, 4, SK_KV_F32);
        sk_error err = {0};
        int32_t A[10];
        for (int i = 0; i < 10; i++) A[i] = tok_at(i);
        assert_int_equal(sk_decode(c, A, 10, &err), SK_OK);
        assert_int_equal(sk_context_rollback(c, 1, &err), SK_ERR_INVALID);
        sk_context_free(c);
    }
    tiny_free(&t);
}

/* The chunked attention path (F16 storage, blocks of query tokens, keys
 * shared and masked per token) against the oracle and against feeding
 * token by token, on a model whose head_dim (32) takes the SIMD path. */
static void test_chunked_f16_vs_oracle(void **state) {
    (void)state;
    tiny t = tiny_load_dim(0, 128);
    int configs[][3] = {{4, 7, 5}, {4, 64, 40}, {1, 20, 64}, {0, 9, 33}, {4, 30, 256}, {4, 200, 17}};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        int S = configs[k][0], W = configs[k][1], B = configs[k][2];
        int64_t T = 300;
        int32_t *toks = malloc(sizeof(int32_t) * T);
        for (int64_t i = 0; i < T; i++) toks[i] = tok_at(i);
        sk_cache_policy pol = S ? SK_CACHE_SINK : SK_CACHE_WINDOW;
        sk_context *a = ctx_new(t.m, pol, S, W, 0, B, SK_KV_F16);
        sk_context *b = ctx_new(t.m, pol, S, W, 0, 1, SK_KV_F16);
        sk_cache_params cp = {.policy = pol, .n_sinks = S, .n_window = W};
        oracle *o = oracle_new(t.m, &cp, T);
        double ref[64];
        for (int64_t i = 0; i < T; i++) oracle_step(o, toks[i], ref);
        sk_error err = {0};
        assert_int_equal(sk_decode(a, toks, T, &err), SK_OK);
        for (int64_t i = 0; i < T; i++) assert_int_equal(sk_decode(b, &toks[i], 1, &err), SK_OK);
        double eo = rel_err(sk_logits(a), ref, 64), md = 0, mb = 0;
        for (int i = 0; i < 64; i++) {
            md = fmax(md, fabs(sk_logits(a)[i] - sk_logits(b)[i]));
            mb = fmax(mb, fabs(sk_logits(b)[i]));
        }
        printf("  f16 S=%d W=%d chunk=%d: vs oracle %.2g, vs token-by-token %.2g\n", S, W, B, eo, md / mb);
        assert_true(eo < 5e-3);
        assert_true(md / mb < 1e-3);
        free(toks);
        oracle_free(o);
        sk_context_free(a);
        sk_context_free(b);
    }
    tiny_free(&t);
}

/* F16 storage (the default) stays close to the oracle too. */
static void test_f16_and_q8_cache(void **state) {
    (void)state;
    tiny t = tiny_load_dim(0, 128); /* head_dim 32: one Q8_0 block per head */
    sk_kv_type types[2] = {SK_KV_F16, SK_KV_Q8_0};
    double tol[2] = {5e-3, 5e-2};
    for (int k = 0; k < 2; k++) {
        sk_context *c = ctx_new(t.m, SK_CACHE_SINK, 4, 16, 0, 4, types[k]);
        sk_cache_params cp = {.policy = SK_CACHE_SINK, .n_sinks = 4, .n_window = 16};
        oracle *o = oracle_new(t.m, &cp, 80);
        double ref[64], worst = 0;
        sk_error err = {0};
        for (int64_t i = 0; i < 80; i++) {
            int32_t tk = tok_at(i);
            assert_int_equal(sk_decode(c, &tk, 1, &err), SK_OK);
            oracle_step(o, tk, ref);
            worst = fmax(worst, rel_err(sk_logits(c), ref, 64));
        }
        printf("  kv %s: max rel err vs oracle %.2g\n", k ? "q8_0" : "f16", worst);
        assert_true(worst < tol[k]);
        oracle_free(o);
        sk_context_free(c);
    }
    tiny_free(&t);
}

static tiny tiny_sinks(int n_embd, int sinks) {
    tiny t;
    tiny_opts o;
    tiny_defaults(&o);
    o.n_embd = n_embd;
    o.attn_sinks = sinks;
    size_t n;
    tiny_build(&o, &t.buf, &n);
    sk_error err = {0};
    if (sk_model_from_span(t.buf, n, &t.m, &err)) fail_msg("%s", err.msg);
    return t;
}

/* The logits after each of T tokens fed in chunks of B (F16 cache when kvt
 * says so), into rows (T / B + ..., 64): only the last one is kept. */
static void feed(const sk_model *m, int S, int W, int B, sk_kv_type kvt, const int32_t *toks, int64_t T,
                 float *last) {
    sk_context *c = ctx_new(m, S ? SK_CACHE_SINK : SK_CACHE_WINDOW, S, W, 0, B, kvt);
    sk_error err = {0};
    for (int64_t i = 0; i < T; i += B)
        assert_int_equal(sk_decode(c, toks + i, T - i < B ? T - i : B, &err), SK_OK);
    memcpy(last, sk_logits(c), 64 * sizeof(float));
    sk_context_free(c);
}

/* Sink logits (attn_sinks, gpt-oss's form): a tiny model with random logits
 * in [-2, 2] against the oracle on every policy path (per token F32, the
 * chunked F16 path); logits of -inf give the bits of the model without them. */
static void test_attn_sinks(void **state) {
    (void)state;
    tiny t = tiny_sinks(32, 1);
    int Ss[] = {0, 4}, Ws[] = {7, 64};
    double worst = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            int S = Ss[a], W = Ws[b];
            worst = fmax(worst, run_vs_oracle(t.m, S ? SK_CACHE_SINK : SK_CACHE_WINDOW, S, W, 0, S + 2 * W + 9));
        }
    worst = fmax(worst, run_vs_oracle(t.m, SK_CACHE_DENSE, 0, 0, 64, 40));
    printf("  sink logits, per-token F32 cache: max rel err vs oracle %.2g\n", worst);
    tiny_free(&t);
    tiny w = tiny_sinks(128, 1), none = tiny_sinks(128, 0), ninf = tiny_sinks(128, 2);
    int64_t T = 200;
    int32_t toks[200];
    for (int64_t i = 0; i < T; i++) toks[i] = tok_at(i);
    int configs[][3] = {{4, 7, 5}, {4, 64, 40}, {0, 9, 33}, {4, 30, 200}};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        int S = configs[k][0], W = configs[k][1], B = configs[k][2];
        sk_cache_params cp = {.policy = S ? SK_CACHE_SINK : SK_CACHE_WINDOW, .n_sinks = S, .n_window = W};
        oracle *o = oracle_new(w.m, &cp, T);
        double ref[64];
        for (int64_t i = 0; i < T; i++) oracle_step(o, toks[i], ref);
        oracle_free(o);
        float chunked[64], one[64], a[64], b[64];
        feed(w.m, S, W, B, SK_KV_F16, toks, T, chunked);
        feed(w.m, S, W, 1, SK_KV_F16, toks, T, one);
        double eo = rel_err(chunked, ref, 64);
        printf("  sink logits, f16 S=%d W=%d chunk=%d: vs oracle %.2g, chunked == token by token: %s\n", S, W,
               B, eo, memcmp(chunked, one, sizeof one) ? "no" : "yes");
        assert_true(eo < 5e-3);
        assert_memory_equal(chunked, one, sizeof one);
        feed(none.m, S, W, B, SK_KV_F16, toks, T, a);
        printf("    (the same model without sink logits: %.2g away)\n", rel_err(a, ref, 64));
        assert_true(rel_err(a, ref, 64) > 0.01); /* they matter: 50x the error above */
        for (int kvt = 0; kvt < 3; kvt++) { /* -inf: the old bits, every path */
            sk_kv_type ty = kvt == 0 ? SK_KV_F16 : kvt == 1 ? SK_KV_F32 : SK_KV_Q8_0;
            feed(none.m, S, W, B, ty, toks, T, a);
            feed(ninf.m, S, W, B, ty, toks, T, b);
            assert_memory_equal(a, b, sizeof a);
        }
    }
    tiny_free(&w);
    tiny_free(&none);
    tiny_free(&ninf);
}

/* Attention level, at stream position ~1,000,000: keys stored rotated at
 * their stream positions + query rotated twice (sk_attend) equals attention
 * rebuilt from pre-RoPE keys rotated at cache positions, in double. */
static void test_no_drift_at_1m(void **state) {
    (void)state;
    sk_hparams hp = {0};
    hp.n_layer = 1;
    hp.n_head = 2;
    hp.n_head_kv = 1;
    hp.head_dim = 64;
    hp.n_rot = 64;
    hp.rope_base = 10000.0;
    hp.rope_scale = 1.0;
    int S = 4, W = 64, hd = 64, n_rep = 2;
    sk_cache_params cp = {.policy = SK_CACHE_SINK, .n_sinks = S, .n_window = W, .kv_type = SK_KV_F32};
    sk_kvcache *kv = NULL;
    sk_error err = {0};
    assert_int_equal(sk_kvcache_new(&hp, &cp, 1, &kv, &err), SK_OK);
    int64_t positions[] = {1000000, 1000003, 4000001, 1LL << 31};
    for (size_t pi = 0; pi < sizeof positions / sizeof *positions; pi++) {
        int64_t u = positions[pi], lo = u - W + 1;
        uint32_t seed = 7 + (uint32_t)pi;
        /* odd positions: sink logits (attn_sinks) of a large and a small share */
        static const float sink_logits[2] = {3.5f, -1.25f};
        const float *sinks = pi % 2 ? sink_logits : NULL;
#define RND() (seed = seed * 1664525u + 1013904223u, ((seed >> 8) / 16777216.0) * 2 - 1)
        /* pre-RoPE keys and values of the visible tokens, in cache order */
        int nvis = S + W;
        double (*kpre)[64] = malloc(sizeof(double[64]) * nvis), (*vv)[64] = malloc(sizeof(double[64]) * nvis);
        double qpre[2][64];
        for (int j = 0; j < nvis; j++)
            for (int i = 0; i < hd; i++) {
                kpre[j][i] = RND();
                vv[j][i] = RND();
            }
        for (int r = 0; r < n_rep; r++)
            for (int i = 0; i < hd; i++) qpre[r][i] = 2 * RND();
        /* engine: store keys rotated at stream positions */
        sk_kvcache_reset(kv);
        float cs[64], kf[64], vf[64];
        for (int j = 0; j < nvis; j++) {
            int64_t pos = j < S ? j : lo + (j - S);
            sk_rope_table((double)pos, hd, hp.rope_base, 1.0, cs);
            for (int i = 0; i < hd; i++) {
                kf[i] = (float)kpre[j][i];
                vf[i] = (float)vv[j][i];
            }
            sk_rope_apply(kf, 1, hd, hd, 0, cs);
            sk_kvcache_store(kv, 0, pos, kf, vf);
        }
        float qw[2 * 64], qp[2 * 64], out[2 * 64], att[2 * 128];
        for (int r = 0; r < n_rep; r++)
            for (int i = 0; i < hd; i++) qw[r * hd + i] = qp[r * hd + i] = (float)qpre[r][i];
        sk_rope_table((double)u, hd, hp.rope_base, 1.0, cs);
        sk_rope_apply(qw, n_rep, hd, hd, 0, cs);
        sk_rope_table((double)(S + W - 1), hd, hp.rope_base, 1.0, cs);
        sk_rope_apply(qp, n_rep, hd, hd, 0, cs);
        sk_attend(kv, 0, 0, n_rep, qw, qp, u, lo, sinks, out, att);
        /* the three steps with the keys split into P parts (threads, some
         * empty) and the columns into D slices: the bits of the one-piece
         * attention, whatever the split */
        for (int P = 1; P <= 7; P++) {
            float sc[2 * 128], split[2 * 64];
            int nk = S + W;
            assert_int_equal(sk_attend_n_keys(kv, u, lo), nk);
            for (int p = 0; p < P; p++) {
                int64_t k0 = P == 7 && p == 6 ? nk : (int64_t)nk * p / P;
                int64_t k1 = P == 7 && p >= 5 ? nk : (int64_t)nk * (p + 1) / P;
                sk_attend_scores(kv, 0, 0, n_rep, qw, qp, u, lo, k0, k1, sc, (size_t)nk);
            }
            for (int r = 0; r < n_rep; r++) sk_attend_probs(kv, u, lo, sc + (size_t)r * nk, sk_attend_sink(sinks, r));
            int D = P < hd / 16 ? P : hd / 16;
            for (int d = 0; d < D; d++)
                sk_attend_values(kv, 0, 0, n_rep, u, lo, sc, (size_t)nk, 16 * (hd / 16 * d / D),
                                 16 * (hd / 16 * (d + 1) / D), split);
            if (memcmp(split, out, sizeof(float) * (size_t)(n_rep * hd)))
                fail_msg("P=%d D=%d: the split attention differs from sk_attend", P, D);
            if (memcmp(sc, att, sizeof(float) * (size_t)(n_rep * nk)))
                fail_msg("P=%d: the split probabilities differ from sk_attend's", P);
        }
        /* oracle: rotate everything at cache positions 0..S+W-1 in double */
        double md = 0, mo = 0;
        for (int r = 0; r < n_rep; r++) {
            double q[64], sc[128], mx = -INFINITY, sum = 0, o[64] = {0};
            memcpy(q, qpre[r], sizeof q);
            for (int i = 0; i < hd / 2; i++) {
                double a = (S + W - 1) * pow(10000.0, -2.0 * i / hd), c = cos(a), s = sin(a);
                double x0 = q[2 * i], x1 = q[2 * i + 1];
                q[2 * i] = x0 * c - x1 * s;
                q[2 * i + 1] = x0 * s + x1 * c;
            }
            for (int j = 0; j < nvis; j++) {
                double k[64];
                memcpy(k, kpre[j], sizeof k);
                for (int i = 0; i < hd / 2; i++) {
                    double a = j * pow(10000.0, -2.0 * i / hd), c = cos(a), s = sin(a);
                    double x0 = k[2 * i], x1 = k[2 * i + 1];
                    k[2 * i] = x0 * c - x1 * s;
                    k[2 * i + 1] = x0 * s + x1 * c;
                }
                sc[j] = 0;
                for (int i = 0; i < hd; i++) sc[j] += q[i] * k[i];
                sc[j] /= 8.0;
                mx = fmax(mx, sc[j]);
            }
            if (sinks) mx = fmax(mx, sinks[r]);
            for (int j = 0; j < nvis; j++) sum += (sc[j] = exp(sc[j] - mx));
            if (sinks) sum += exp(sinks[r] - mx);
            for (int j = 0; j < nvis; j++)
                for (int i = 0; i < hd; i++) o[i] += sc[j] / sum * vv[j][i];
            for (int i = 0; i < hd; i++) {
                md = fmax(md, fabs(out[r * hd + i] - o[i]));
                mo = fmax(mo, fabs(o[i]));
            }
        }
        printf("  position %lld%s: attention rel err vs double oracle %.2g\n", (long long)u,
               sinks ? " (sink logits)" : "", md / mo);
        assert_true(md / mo < 1e-4);
        free(kpre);
        free(vv);
    }
    sk_kvcache_free(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_window_vs_oracle),
        cmocka_unit_test(test_attn_sinks),
        cmocka_unit_test(test_other_policies_vs_oracle),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_chunked_f16_vs_oracle),
        cmocka_unit_test(test_f16_and_q8_cache),
        cmocka_unit_test(test_no_drift_at_1m),
        cmocka_unit_test(test_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
