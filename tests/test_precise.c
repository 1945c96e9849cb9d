/* test_precise.c - the forward pass on the real model against an
 * independent float64 oracle (scripts/make_f64_golden.py: the `gguf`
 * package dequantizes the weights, numpy runs the model in double).
 *
 * sinkllm's precise mode removes the two approximations of the fast path
 * (8-bit activations, F16 KV), so what remains is F32 rounding: every
 * recorded logit (top-50 and 50 spread over the vocabulary) must be within
 * 2e-4 absolute. This pins down RMSNorm, RoPE, attention, SwiGLU, the tied
 * output and every weight layout, where test_golden.c can only bound the
 * quantization noise of the fast path. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "util_model.h"

#define TOL 2e-4 /* measured: at most 2e-5 */

static void test_precise_vs_f64(void **state) {
    (void)state;
    sk_model *m = test_model();
    if (!m) skip();
    json_error_t je;
    json_t *j = json_load_file(test_data_path("golden/f64.json"), 0, &je);
    if (!j) fail_msg("f64.json: %s", je.text);
    json_t *prompts = json_object_get(j, "prompts");
    assert_true(json_array_size(prompts) >= 5);
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 2;
    p.precise = 1;
    p.cache.policy = SK_CACHE_DENSE;
    p.cache.n_ctx = 64;
    p.cache.kv_type = SK_KV_F32;
    sk_context *c = NULL;
    sk_error err = {0};
    assert_int_equal(sk_context_new(m, &p, &c, &err), SK_OK);
    for (size_t pi = 0; pi < json_array_size(prompts); pi++) {
        json_t *pr = json_array_get(prompts, pi), *ids = json_object_get(pr, "ids");
        int32_t t[64];
        size_t n = json_array_size(ids);
        assert_true(n <= 64);
        for (size_t i = 0; i < n; i++) t[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        sk_context_reset(c);
        assert_int_equal(sk_decode(c, t, (int64_t)n, &err), SK_OK);
        const float *lg = sk_logits(c);
        json_t *ref = json_object_get(pr, "logits");
        double worst = 0;
        for (size_t k = 0; k < json_array_size(ref); k++) {
            json_t *e = json_array_get(ref, k);
            int id = (int)json_integer_value(json_array_get(e, 0));
            double d = fabs(lg[id] - json_number_value(json_array_get(e, 1)));
            if (d > worst) worst = d;
        }
        printf("  %-12s %zu tokens: max |logit - f64| = %.2e over %zu ids\n",
               json_string_value(json_object_get(pr, "name")), n, worst, json_array_size(ref));
        assert_true(worst < TOL);
    }
    sk_context_free(c);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_precise_vs_f64)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
