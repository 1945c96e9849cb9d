/* test_invariance.c - a context's logits do not depend on how its tokens
 * were fed (issue 10: batch-invariant, deterministic results).
 *
 * The same token stream is fed to fresh contexts in chunks of 1, 7, 64 and
 * the whole prompt, on 1 and 2 threads, through a sink cache small enough
 * that tokens leave the window during the prompt and during the decode
 * that follows; the logits after the prompt and after every greedy token
 * must be bit-identical (memcmp) to those of the one-token-at-a-time,
 * one-thread run. Run once per KV storage type (F16: the chunked attention
 * path; Q8_0: the per-token path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "util_model.h"

enum { N_PROMPT = 150, N_GEN = 6, SINKS = 4, WINDOW = 64 };

static int32_t prompt_tok(int i, int64_t n_vocab) { return (int32_t)((i * 7919 + 13) % n_vocab); }

/* Feed the prompt in chunks of `chunk` on n_threads threads, then decode
 * N_GEN greedy tokens; rows (N_GEN + 1, n_vocab) gets the logits after the
 * prompt and after each decoded token. */
static void run(const sk_model *m, sk_kv_type kt, int chunk, int n_threads, float *rows) {
    const int64_t nv = sk_model_hparams(m)->n_vocab;
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = n_threads;
    p.n_batch = 512;
    p.cache.policy = SK_CACHE_SINK;
    p.cache.n_sinks = SINKS;
    p.cache.n_window = WINDOW;
    p.cache.kv_type = kt;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("%s", err.msg);
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

static void check_kv(sk_kv_type kt, const char *name) {
    sk_model *m = test_model();
    if (!m) skip();
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

static void test_chunks_threads_f16(void **state) {
    (void)state;
    check_kv(SK_KV_F16, "f16");
}

static void test_chunks_threads_q8_0(void **state) {
    (void)state;
    check_kv(SK_KV_Q8_0, "q8_0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_threads_f16),
        cmocka_unit_test(test_chunks_threads_q8_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
