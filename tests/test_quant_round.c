/* test_quant_round.c - the reference quantizers of the 4- and 5-bit
 * formats round to nearest: every dequantized element is within half a
 * step of its input (plus the f16 rounding of the block's d and m), except
 * where the top of the range clamps (Q4_0/Q5_0: q = 2 OFF does not fit).
 * test_quant.c bounds the round trip per block; this bounds it per element,
 * which a rounding bias or a truncation breaks. And the Q8_1 reference
 * block's s is d * sum(q) (to f16 rounding), which the vec_dot of the _1
 * formats relies on. The Q8P reference quantizer (the spec of the AVX-512
 * one) rounds to nearest too, and its sum is the sum of its quants. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/half.h"
#include "kernels/pack.h"
#include "kernels/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static void check(int type, int off, int qmax, int has_min) {
    const sk_type_traits *tr = sk_type_get_ref(type);
    assert_non_null(tr);
    assert_non_null(tr->from_float);
    enum { NB = 512 };
    float *x = malloc(sizeof(float) * 32 * NB), *y = malloc(sizeof(float) * 32 * NB);
    uint8_t *q = malloc(tr->size * NB);
    for (int i = 0; i < 32 * NB; i++) /* blocks of different scales and offsets */
        x[i] = (float)(urand() * (1 + (i / 32) % 7) + (has_min ? ((i / 32) % 5) * 0.3 : 0));
    tr->from_float(x, q, 32 * NB);
    tr->to_float(q, y, 32 * NB);
    double worst = 0; /* in steps */
    for (int b = 0; b < NB; b++) {
        const uint8_t *blk = q + (size_t)b * tr->size;
        uint16_t dh, mh = 0;
        memcpy(&dh, blk, 2);
        if (has_min) memcpy(&mh, blk + 2, 2);
        double d = fabs(sk_f16_to_f32(dh)), m = fabs(sk_f16_to_f32(mh));
        if (d == 0) continue;
        for (int j = 0; j < 32; j++) {
            double xv = x[b * 32 + j];
            /* _0 formats: x / d above QMAX - OFF + 1/2 steps is clamped */
            if (!has_min && xv / sk_f16_to_f32(dh) > qmax - off + 0.49) continue;
            double err = fabs(xv - y[b * 32 + j]);
            double bound = 0.5 * d * (1 + 1.0 / 512) + qmax * d / 1024 + m / 1024;
            worst = fmax(worst, err / d);
            if (err > bound)
                fail_msg("%s block %d [%d]: x %.7g dequantized %.7g: error %.4f steps", tr->name, b, j, xv,
                         y[b * 32 + j], err / d);
        }
    }
    print_message("  %s: max |error| %.4f steps\n", tr->name, worst);
    free(x);
    free(y);
    free(q);
}

static void test_nearest(void **state) {
    (void)state;
    sk_quant_init();
    check(SK_TYPE_Q4_0, 8, 15, 0);
    check(SK_TYPE_Q4_1, 0, 15, 1);
    check(SK_TYPE_Q5_0, 16, 31, 0);
    check(SK_TYPE_Q5_1, 0, 31, 1);
}

static void test_q8_1_sum(void **state) {
    (void)state;
    sk_quant_init();
    const sk_type_traits *tr = sk_type_get_ref(SK_TYPE_Q8_1);
    assert_non_null(tr);
    assert_int_equal(tr->size, 36); /* f16 d, f16 s, 32 int8 q */
    enum { NB = 256 };
    float *x = malloc(sizeof(float) * 32 * NB);
    uint8_t *q = malloc(36 * NB);
    for (int i = 0; i < 32 * NB; i++) x[i] = (float)(urand() * (1 + (i / 32) % 9) + ((i / 32) % 3) * 0.2);
    tr->from_float(x, q, 32 * NB);
    int checked = 0;
    for (int b = 0; b < NB; b++) {
        const uint8_t *blk = q + (size_t)b * 36;
        uint16_t dh, sh;
        memcpy(&dh, blk, 2);
        memcpy(&sh, blk + 2, 2);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += (int8_t)blk[4 + j];
        double want = sum * (double)sk_f16_to_f32(dh), got = sk_f16_to_f32(sh);
        /* d and s are each rounded to f16 (2^-11 relative) */
        if (fabs(got - want) > fabs(want) * (2.0 / 2048) + 1e-12)
            fail_msg("block %d: s %.7g, d * sum(q) = %.7g (sum %d)", b, got, want, sum);
        checked++;
    }
    assert_int_equal(checked, NB);
    free(x);
    free(q);
}

static void test_q8p_nearest(void **state) {
    (void)state;
    enum { NB = 256 };
    float *x = malloc(sizeof(float) * 32 * NB);
    sk_block_q8p *y = malloc(sizeof(sk_block_q8p) * NB);
    for (int i = 0; i < 32 * NB; i++) x[i] = (float)(urand() * (1 + (i / 32) % 9));
    sk_q8p_quantize_ref(x, y, 32 * NB);
    double worst = 0;
    for (int b = 0; b < NB; b++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            sum += y[b].qs[j];
            /* d is f32: half a step plus float rounding */
            double err = fabs(x[b * 32 + j] - y[b].qs[j] * (double)y[b].d) / y[b].d;
            worst = fmax(worst, err);
            if (err > 0.5 + 1e-5) fail_msg("block %d [%d]: x %.7g q %d d %.7g", b, j, x[b * 32 + j], y[b].qs[j], y[b].d);
        }
        assert_int_equal(sum, y[b].sum);
    }
    print_message("  Q8P: max |error| %.4f steps\n", worst);
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_q8_1_sum),
        cmocka_unit_test(test_q8p_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
