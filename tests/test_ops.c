/* test_ops.c - the small float ops of src/kernels/ops.c against their
 * definitions written here in double precision.
 *
 * RoPE: sk_rope_table at positions up to 1e6 (where a wrong low frequency
 * or a dropped pair shows: at position 2,000 the lowest pair of a head of
 * 64 with base 1e5 turns only 0.03 rad, too little for a logit test) and
 * sk_rope_apply in both layouts (interleaved and NeoX) on random vectors.
 * RMSNorm: sk_rmsnorm against x / sqrt(mean(x^2) + eps) * w.
 * Tolerances are F32 rounding: the table's cos/sin are computed in double
 * and rounded once (1 ulp, 6e-8), and the rotation adds two products. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kernels/ops.h"

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static void test_rope_table(void **state) {
    (void)state;
    const double bases[] = {10000.0, 100000.0, 500000.0};
    const double positions[] = {0, 1, 7, 63, 2047, 2048, 4097, 32767, 131071, 1000000};
    const int n_rots[] = {64, 128, 32};
    float cs[128];
    double worst = 0;
    for (size_t b = 0; b < sizeof bases / sizeof *bases; b++)
        for (size_t r = 0; r < sizeof n_rots / sizeof *n_rots; r++)
            for (size_t p = 0; p < sizeof positions / sizeof *positions; p++) {
                int n = n_rots[r];
                for (double scale = 1.0; scale <= 4.0; scale *= 4.0) {
                    sk_rope_table(positions[p], n, bases[b], scale, cs);
                    for (int i = 0; i < n / 2; i++) {
                        /* pair i turns by pos / scale * base^(-2i / n) */
                        double a = positions[p] / scale * pow(bases[b], -2.0 * i / n);
                        double ec = fabs(cs[2 * i] - cos(a)), es = fabs(cs[2 * i + 1] - sin(a));
                        worst = fmax(worst, fmax(ec, es));
                        if (ec > 1.2e-7 || es > 1.2e-7)
                            fail_msg("base %g n_rot %d pos %g scale %g pair %d: (%.9f, %.9f) want (%.9f, %.9f)",
                                     bases[b], n, positions[p], scale, i, cs[2 * i], cs[2 * i + 1], cos(a), sin(a));
                    }
                }
            }
    print_message("  rope table: max |error| %.2e over 3 bases, 3 widths, positions 0..1e6\n", worst);
}

static void test_rope_apply(void **state) {
    (void)state;
    enum { NH = 3, HD = 64 };
    float cs[HD], x[NH * HD];
    double x0[NH * HD];
    for (int neox = 0; neox <= 1; neox++)
        for (int n_rot = HD; n_rot >= HD / 2; n_rot /= 2) /* partial rotation leaves the tail */
            for (int pos = 0; pos < 5000; pos += 977) {
                sk_rope_table(pos, n_rot, 10000.0, 1.0, cs);
                for (int i = 0; i < NH * HD; i++) x0[i] = x[i] = (float)(urand() * 4);
                sk_rope_apply(x, NH, HD, n_rot, neox, cs);
                for (int h = 0; h < NH; h++) {
                    const double *v = x0 + h * HD;
                    const float *y = x + h * HD;
                    for (int i = 0; i < n_rot / 2; i++) {
                        int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
                        double t = pos * pow(10000.0, -2.0 * i / n_rot);
                        double ya = v[a] * cos(t) - v[b] * sin(t), yb = v[a] * sin(t) + v[b] * cos(t);
                        if (fabs(y[a] - ya) > 2e-6 || fabs(y[b] - yb) > 2e-6)
                            fail_msg("neox %d n_rot %d pos %d head %d pair %d: (%g, %g) want (%g, %g)", neox,
                                     n_rot, pos, h, i, y[a], y[b], ya, yb);
                    }
                    for (int i = n_rot; i < HD; i++) assert_true(y[i] == (float)v[i]);
                }
            }
}

static void test_rmsnorm(void **state) {
    (void)state;
    const int ns[] = {1, 64, 576, 2049};
    float *x = malloc(sizeof(float) * 2049), *w = malloc(sizeof(float) * 2049), *y = malloc(sizeof(float) * 2049);
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
        for (int rep = 0; rep < 3; rep++) {
            int n = ns[k];
            double ss = 0, amp = rep == 2 ? 1e-3 : 10.0; /* small inputs: eps matters */
            for (int i = 0; i < n; i++) {
                x[i] = (float)(urand() * amp);
                w[i] = (float)(1 + urand() * 0.5);
                ss += (double)x[i] * x[i];
            }
            const float eps = 1e-5f;
            sk_rmsnorm(y, x, w, n, eps);
            double s = 1.0 / sqrt(ss / n + eps);
            for (int i = 0; i < n; i++) {
                double want = x[i] * s * w[i];
                if (fabs(y[i] - want) > 3e-7 * (fabs(want) + 1e-30) + 1e-30)
                    fail_msg("n %d rep %d [%d]: %.9g want %.9g", n, rep, i, y[i], want);
            }
        }
    free(x);
    free(w);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_table),
        cmocka_unit_test(test_rope_apply),
        cmocka_unit_test(test_rmsnorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
