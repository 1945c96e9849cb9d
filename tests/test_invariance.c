/* test_invariance.c - a context's logits do not depend on how its tokens
 * were fed (issue 10: batch-invariant, deterministic results).
 *
 * The same token stream is fed to fresh contexts in chunks of 1, 7, 64 and
 * the whole prompt, on 1 and 2 threads, through a sink cache small enough
 * that tokens leave the window during the prompt and during the decode
 * that follows; the logits after the prompt and after every greedy token
 * must be bit-identical (memcmp) to those of the one-token-at-a-time,
 * one-thread run. Run once per KV storage type (F16: the chunked attention
 * path; Q8_0: the per-token path). Then three contexts fed together by
 * sk_decode_batch (pre-fill chunks of different sizes sharing passes with
 * each other and with decode tokens) must give each one the logits it gets
 * alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "runtime/model.h"
#include "util_model.h"
#include "util_tiny.h"

enum { N_PROMPT = 150, N_GEN = 6, SINKS = 4, WINDOW = 64 };

static int32_t prompt_tok(int i, int64_t n_vocab) { return (int32_t)((i * 7919 + 13) % n_vocab); }

/* A context with its own n_threads, or on batch b's threads (b not NULL). */
static sk_context *new_ctx_on(const sk_model *m, sk_kv_type kt, int n_threads, sk_batch *b) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = n_threads;
    p.threads = b;
    p.n_batch = 512;
    p.cache.policy = SK_CACHE_SINK;
    p.cache.n_sinks = SINKS;
    p.cache.n_window = WINDOW;
    p.cache.kv_type = kt;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("%s", err.msg);
    return c;
}

static sk_context *new_ctx(const sk_model *m, sk_kv_type kt, int n_threads) { return new_ctx_on(m, kt, n_threads, NULL); }

/* Feed the prompt in chunks of `chunk` on n_threads threads, then decode
 * N_GEN greedy tokens; rows (N_GEN + 1, n_vocab) gets the logits after the
 * prompt and after each decoded token. */
static void run(const sk_model *m, sk_kv_type kt, int chunk, int n_threads, float *rows) {
    const int64_t nv = sk_model_hparams(m)->n_vocab;
    sk_context *c = new_ctx(m, kt, n_threads);
    sk_error err = {0};
    int32_t toks[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) toks[i] = prompt_tok(i, nv);
    for (int i = 0; i < N_PROMPT; i += chunk) {
        int n = N_PROMPT - i < chunk ? N_PROMPT - i : chunk;
        if (sk_decode(c, toks + i, n, &err)) fail_msg("%s", err.msg);
    }
    for (int g = 0; g <= N_GEN; g++) {
        memcpy(rows + (size_t)g * nv, sk_logits(c), sizeof(float) * (size_t)nv);
        if (g == N_GEN) break;
        int32_t t = sk_logits_argmax(c);
        if (sk_decode(c, &t, 1, &err)) fail_msg("%s", err.msg);
    }
    sk_context_free(c);
}

static void check_kv_model(const sk_model *m, sk_kv_type kt, const char *name) {
    const int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t sz = sizeof(float) * (size_t)nv * (N_GEN + 1);
    float *ref = malloc(sz), *got = malloc(sz);
    assert_non_null(ref);
    assert_non_null(got);
    run(m, kt, 1, 1, ref);
    static const int chunks[] = {1, 7, 64, N_PROMPT};
    for (size_t ci = 0; ci < sizeof chunks / sizeof chunks[0]; ci++)
        for (int th = 1; th <= 2; th++) {
            if (chunks[ci] == 1 && th == 1) continue;
            run(m, kt, chunks[ci], th, got);
            for (int g = 0; g <= N_GEN; g++) {
                const float *a = ref + (size_t)g * nv, *b = got + (size_t)g * nv;
                if (memcmp(a, b, sizeof(float) * (size_t)nv)) {
                    int64_t k = 0;
                    while (a[k] == b[k]) k++;
                    fail_msg("kv %s, chunk %d, %d threads: logits after %s %d differ from one token at a "
                             "time on one thread (first at id %lld: %.9g vs %.9g)",
                             name, chunks[ci], th, g ? "decoded token" : "the prompt", g, (long long)k,
                             b[k], a[k]);
                }
            }
        }
    free(ref);
    free(got);
}

static void check_kv(sk_kv_type kt, const char *name) {
    sk_model *m = test_model();
    if (!m) skip();
    check_kv_model(m, kt, name);
}

/* A tiny random model with sink logits in every layer (head_dim 32: the
 * SIMD kernels); *buf holds its bytes (free after the model). */
static sk_model *sink_logit_model(uint8_t **buf) {
    tiny_opts o;
    tiny_defaults(&o);
    o.n_embd = 128;
    o.attn_sinks = 1;
    size_t n;
    tiny_build(&o, buf, &n);
    sk_model *m = NULL;
    sk_error err = {0};
    if (sk_model_from_span(*buf, n, &m, &err)) fail_msg("%s", err.msg);
    return m;
}

/* The same with sink logits (attn_sinks) in every layer, F16 and Q8_0
 * caches. */
static void test_chunks_threads_sink_logits(void **state) {
    (void)state;
    uint8_t *buf;
    sk_model *m = sink_logit_model(&buf);
    check_kv_model(m, SK_KV_F16, "f16 (sink logits)");
    check_kv_model(m, SK_KV_Q8_0, "q8_0 (sink logits)");
    sk_model_free(m);
    free(buf);
}

static void test_chunks_threads_f16(void **state) {
    (void)state;
    check_kv(SK_KV_F16, "f16");
}

static void test_chunks_threads_q8_0(void **state) {
    (void)state;
    check_kv(SK_KV_Q8_0, "q8_0");
}

/* Eight streams (one session and 7 others): prompts of 1 to 150 tokens
 * (offsets into the same id sequence), fed in chunks of 1 to 512 per pass,
 * then N_GEN greedy tokens each, all through one sk_decode_batch per step;
 * each stream's logits after its prompt and after each token equal its
 * solo run (fed one token at a time on one thread). */
enum { N_SEQ = 8 }; /* one session and 7 others sharing its passes */
static const int seq_len[N_SEQ] = {N_PROMPT, 40, 90, 7, 64, 120, 1, 33},
                 seq_chunk[N_SEQ] = {5, 1, 17, 7, 64, 32, 1, 512}, seq_off[N_SEQ] = {0, 1000, 77, 5, 300, 9, 42, 2024};

static void batch_equals_alone(const sk_model *m) {
    const int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t row = sizeof(float) * (size_t)nv;
    float *solo[N_SEQ], *got[N_SEQ];
    int32_t *toks[N_SEQ];
    sk_error err = {0};
    for (int s = 0; s < N_SEQ; s++) {
        solo[s] = malloc(row * (N_GEN + 1));
        got[s] = malloc(row * (N_GEN + 1));
        toks[s] = malloc(sizeof(int32_t) * (size_t)(seq_len[s] + N_GEN));
        for (int i = 0; i < seq_len[s]; i++) toks[s][i] = prompt_tok(seq_off[s] + i, nv);
        sk_context *c = new_ctx(m, SK_KV_F16, 1);
        for (int i = 0; i < seq_len[s]; i++)
            if (sk_decode(c, &toks[s][i], 1, &err)) fail_msg("%s", err.msg);
        for (int g = 0; g <= N_GEN; g++) {
            memcpy(solo[s] + (size_t)g * nv, sk_logits(c), row);
            if (g == N_GEN) break;
            toks[s][seq_len[s] + g] = sk_logits_argmax(c);
            if (sk_decode(c, &toks[s][seq_len[s] + g], 1, &err)) fail_msg("%s", err.msg);
        }
        sk_context_free(c);
    }
    sk_batch *b = NULL;
    assert_int_equal(sk_batch_new(m, 2, 512, N_SEQ, &b, &err), SK_OK);
    sk_context *cs[N_SEQ];
    int fed[N_SEQ] = {0}, steps[N_SEQ] = {0}, passes = 0;
    /* stream 0 has a pool of its own, the others run on the batch's threads */
    for (int s = 0; s < N_SEQ; s++) cs[s] = new_ctx_on(m, SK_KV_F16, s ? 0 : 2, s ? b : NULL);
    for (;;) {
        sk_context *pc[N_SEQ];
        const int32_t *pt[N_SEQ];
        int pn[N_SEQ], k = 0;
        for (int s = 0; s < N_SEQ; s++) {
            if (steps[s] > N_GEN) continue;
            int n = fed[s] < seq_len[s] ? seq_len[s] - fed[s] : 1;
            if (n > seq_chunk[s] && fed[s] < seq_len[s]) n = seq_chunk[s];
            pc[k] = cs[s];
            pt[k] = toks[s] + fed[s];
            pn[k++] = n;
        }
        if (!k) break;
        assert_int_equal(sk_decode_batch(b, pc, pt, pn, k, &err), SK_OK);
        passes++;
        for (int s = 0, j = 0; s < N_SEQ; s++) {
            if (steps[s] > N_GEN) continue;
            fed[s] += pn[j++];
            if (fed[s] < seq_len[s]) continue;
            /* the prompt is in: record, then feed the greedy token next */
            memcpy(got[s] + (size_t)steps[s] * nv, sk_logits(cs[s]), row);
            if (memcmp(got[s] + (size_t)steps[s] * nv, solo[s] + (size_t)steps[s] * nv, row))
                fail_msg("stream %d: batched logits after %s %d differ from its solo run", s,
                         steps[s] ? "decoded token" : "the prompt", steps[s]);
            if (steps[s] < N_GEN) assert_int_equal(sk_logits_argmax(cs[s]), toks[s][seq_len[s] + steps[s]]);
            steps[s]++;
        }
    }
    printf("  %d streams, %d passes of sk_decode_batch: every logit row equals the solo run's\n", N_SEQ, passes);
    /* the rules: a context twice, a thread count that differs, too many tokens */
    sk_context *twice[2] = {cs[0], cs[0]};
    const int32_t *tt[2] = {toks[0], toks[0]};
    int nn[2] = {1, 1};
    assert_int_equal(sk_decode_batch(b, twice, tt, nn, 2, &err), SK_ERR_INVALID);
    sk_context *one = new_ctx(m, SK_KV_F16, 1);
    assert_int_equal(sk_decode_batch(b, &one, tt, nn, 1, &err), SK_ERR_INVALID);
    int big = 513;
    assert_int_equal(sk_decode_batch(b, cs, tt, &big, 1, &err), SK_ERR_INVALID);
    sk_context_free(one);
    /* borrowing a batch's threads: its thread count or none, the same model */
    sk_context_params bp;
    sk_context_params_default(&bp);
    bp.n_threads = 1;
    bp.threads = b;
    sk_context *bad = NULL;
    assert_int_equal(sk_context_new(m, &bp, &bad, &err), SK_ERR_INVALID);
    assert_null(bad);
    /* a borrowing context fed alone runs on the batch's pool */
    assert_int_equal(sk_decode(cs[1], toks[1], 3, &err), SK_OK);
    for (int s = 0; s < N_SEQ; s++) {
        sk_context_free(cs[s]);
        free(solo[s]);
        free(got[s]);
        free(toks[s]);
    }
    sk_batch_free(b);
}

static void test_batch_equals_alone(void **state) {
    (void)state;
    sk_model *m = test_model();
    if (!m) skip();
    batch_equals_alone(m);
}

/* The same with sink logits in every layer (each decode row's own sink in
 * the batched attention's whole items). */
static void test_batch_equals_alone_sink_logits(void **state) {
    (void)state;
    uint8_t *buf;
    sk_model *m = sink_logit_model(&buf);
    batch_equals_alone(m);
    sk_model_free(m);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_threads_f16),
        cmocka_unit_test(test_chunks_threads_q8_0),
        cmocka_unit_test(test_chunks_threads_sink_logits),
        cmocka_unit_test(test_batch_equals_alone),
        cmocka_unit_test(test_batch_equals_alone_sink_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
