/* test_golden.c - sinkllm against llama.cpp on the same GGUF.
 *
 * tests/golden/ was written by llama.cpp (llama-cpp-python 0.3.36, see
 * scripts/make_golden.py and meta.json). Here, without Python:
 *   - logits.json: after each prompt, for each of llama.cpp's top-20 ids our
 *     logit is within LOGIT_TOL, their mean difference within
 *     LOGIT_MEAN_TOL, at least 15 of the 20 ids are in our own top-20, and
 *     our top-1 is llama.cpp's unless its top-2 gap is a real tie (< TOP1_TIE).
 *   - greedy.json: 64 greedy steps after each prompt. Our argmax must equal
 *     llama.cpp's token at every step, except at a near-tie: a step where
 *     llama.cpp's top-1/top-2 gap and our gap between the two tokens are
 *     both below TIE_TOL; at most MAX_TIE_PCT % of all steps may be such
 *     near-ties. After one we feed llama.cpp's token, so all 64 steps of
 *     every prompt are checked.
 *
 * Limits = measured error + a stated margin (docs/testing.md). Measured on
 * AVX2 (this file's printout): max |logit diff| 0.500, mean per prompt
 * 0.000-0.260; greedy near-ties 10 of 384 with gaps <= 0.37; top-1 gaps of
 * llama.cpp >= 0.28 on all 6 prompts. (Decode used to have arithmetic of
 * its own, FMA attention and two-accumulator dots, and gave 5 near-ties
 * with gaps <= 0.20; since issue 10 it computes as pre-fill does, so that
 * results do not depend on batching, and the greedy run meets llama.cpp's
 * decode with the pre-fill's rounding: gaps within the logits' own
 * measured 0.50.) The avx2 tier's packed weights (pack_avx2.c, the same
 * bits as the avx512 tier's packed kernels; Q8P activations with an f32
 * scale where llama.cpp rounds its scale to f16) measured, before issue
 * 10's merge, max 0.556, mean per prompt 0.080-0.354 (chatml), greedy 7
 * near-ties of 384; rounding the Q8P scale to f16 as llama.cpp does moved
 * chatml to 0.223 but code to 0.233 and made one greedy step fail: the
 * chaos described below, not a systematic error. Hence a mean limit of 0.40.
 *
 * Why tolerances at all: both engines re-quantize activations to 8 bits per
 * block before every matmul, which makes the network chaotic at the 1e-7
 * level: changing only the float accumulation order of a numpy emulation of
 * llama.cpp's arithmetic (f64 vs f32 sums, single token) moves the top-20
 * logits by up to 0.09, and llama.cpp itself is 0.2-0.9 away from an f64
 * forward pass over the dequantized weights, sinkllm 0.2-1.3 (measured on
 * these prompts). Bit-identical output would mean copying llama.cpp's exact
 * summation order. A real bug (positions, a layout, a norm) moves logits by
 * whole units and shuffles the ranking, which these checks catch; the tight
 * check of the arithmetic is test_precise.c: sinkllm's precise mode against
 * an f64 forward pass (golden/f64.json) within 2e-4. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "util_logits.h"
#include "util_model.h"

#define LOGIT_TOL 0.6       /* max absolute difference, on logits of magnitude ~20 (measured 0.50) */
#define LOGIT_MEAN_TOL 0.40 /* mean absolute difference over the top-20 (measured <= 0.26 unpacked, 0.354 packed) */
#define TOP1_TIE 0.05       /* a real tie: llama.cpp's top-1/top-2 gap below this */
#define TIE_TOL 0.40        /* greedy near-tie: both gaps below this (measured <= 0.37) */
#define MAX_TIE_PCT 3       /* near-ties at most 3% of greedy steps (measured 2.6%) */

static json_t *load_json(const char *rel) {
    json_error_t je;
    json_t *j = json_load_file(test_data_path(rel), 0, &je);
    if (!j) fail_msg("%s: %s (line %d)", rel, je.text, je.line);
    return j;
}

static sk_context *new_ctx(sk_model *m) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 2;
    p.cache.policy = SK_CACHE_DENSE;
    p.cache.n_ctx = 2048;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("context: %s", err.msg);
    return c;
}

static void test_logits(void **state) {
    (void)state;
    sk_model *m = test_model();
    if (!m) skip();
    json_t *j = load_json("golden/logits.json");
    json_t *prompts = json_object_get(j, "prompts");
    assert_true(json_array_size(prompts) >= 5);
    sk_context *c = new_ctx(m);
    int64_t nv = sk_model_hparams(m)->n_vocab;
    double worst = 0;
    for (size_t pi = 0; pi < json_array_size(prompts); pi++) {
        json_t *p = json_array_get(prompts, pi);
        size_t n;
        int32_t *ids = json_ids(json_object_get(p, "ids"), &n);
        sk_context_reset(c);
        sk_error err = {0};
        assert_int_equal(sk_decode(c, ids, (int64_t)n, &err), SK_OK);
        const float *lg = sk_logits(c);
        json_t *top = json_object_get(p, "top");
        assert_int_equal(json_array_size(top), 20);
        double sum_abs = 0;
        for (size_t k = 0; k < json_array_size(top); k++) {
            json_t *e = json_array_get(top, k);
            int id = (int)json_integer_value(json_array_get(e, 0));
            double want = json_number_value(json_array_get(e, 1));
            double diff = fabs(lg[id] - want);
            sum_abs += diff;
            if (diff > worst) worst = diff;
            if (diff > LOGIT_TOL)
                fail_msg("prompt %s: logit[%d] = %f, llama.cpp %f", json_string_value(json_object_get(p, "name")), id, lg[id], want);
        }
        int top1 = (int)json_integer_value(json_array_get(json_array_get(top, 0), 0));
        double gap = json_number_value(json_array_get(json_array_get(top, 0), 1)) -
                     json_number_value(json_array_get(json_array_get(top, 1), 1));
        printf("  prompt %-12s mean |logit diff| %.4f, llama.cpp top-1 gap %.4f\n",
               json_string_value(json_object_get(p, "name")), sum_abs / 20, gap);
        if (sum_abs / 20 > LOGIT_MEAN_TOL)
            fail_msg("prompt %zu: mean |logit diff| %.3f > %.2f", pi, sum_abs / 20, LOGIT_MEAN_TOL);
        if (gap >= TOP1_TIE) assert_int_equal(logits_argmax(lg, nv), top1);
        /* our own top-20 must hold most of llama.cpp's */
        float kth = logits_top20_threshold(lg, nv);
        int overlap = 0;
        for (size_t k = 0; k < json_array_size(top); k++)
            overlap += lg[json_integer_value(json_array_get(json_array_get(top, k), 0))] >= kth;
        if (overlap < 15) fail_msg("prompt %zu: only %d of llama.cpp's top-20 in ours", pi, overlap);
        free(ids);
    }
    printf("  max |logit - llama.cpp| over top-20 of %zu prompts: %.4f\n",
           json_array_size(prompts), worst);
    sk_context_free(c);
    json_decref(j);
}

static void test_greedy(void **state) {
    (void)state;
    sk_model *m = test_model();
    if (!m) skip();
    json_t *j = load_json("golden/greedy.json");
    json_t *prompts = json_object_get(j, "prompts");
    assert_true(json_array_size(prompts) >= 5);
    sk_context *c = new_ctx(m);
    int64_t nv = sk_model_hparams(m)->n_vocab;
    int failures = 0, total_ties = 0, total_steps = 0;
    for (size_t pi = 0; pi < json_array_size(prompts); pi++) {
        json_t *p = json_array_get(prompts, pi);
        size_t n, nc;
        int32_t *ids = json_ids(json_object_get(p, "ids"), &n);
        int32_t *want = json_ids(json_object_get(p, "continuation"), &nc);
        sk_context_reset(c);
        sk_error err = {0};
        assert_int_equal(sk_decode(c, ids, (int64_t)n, &err), SK_OK);
        json_t *gaps = json_object_get(p, "gaps");
        int ties = 0;
        char label[64];
        snprintf(label, sizeof label, "prompt %s:", json_string_value(json_object_get(p, "name")));
        assert_int_equal(greedy_follow(c, nv, want, gaps, nc, TIE_TOL, label, &ties, &failures, &err), SK_OK);
        total_ties += ties;
        total_steps += (int)nc;
        printf("  prompt %s: %zu steps, %d near-tie divergences\n",
               json_string_value(json_object_get(p, "name")), nc, ties);
        free(ids);
        free(want);
    }
    printf("  greedy: %d steps, %d identical, %d near-ties, %d failures\n", total_steps,
           total_steps - total_ties - failures, total_ties, failures);
    assert_int_equal(failures, 0);
    /* near-ties are rare: more would mean a systematic bias */
    assert_true(total_ties * 100 <= total_steps * MAX_TIE_PCT);
    sk_context_free(c);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_greedy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
