/* test_pack.c - packed weight layouts (pack.h).
 *
 *   - pack then unpack gives back the original bytes, for every format;
 *   - the reference packed product equals, in double precision, the dot of
 *     the dequantized weight rows with the dequantized Q8P activations
 *     (independent of the packing: it goes through quant_ref's to_float);
 *   - each tier's kernels (util_tiers.h: avx2, avx512, amx; a tier the CPU
 *     lacks is SKIPPED) equal the reference on every column count 1..19
 *     (full and edge tiles) and several lengths;
 *   - batch invariance: for every column, a tier's kernel gives the same
 *     bits (memcmp) whatever the column count (1, 3, 7, 64), the column's
 *     offset in the tile and the first group of the call, so decode and
 *     pre-fill agree; and every tier gives the avx2 tier's bits;
 *   - Q8P quantization: SIMD vs reference (a quant may differ by one at an
 *     exact .5 tie), the sum field is the sum of the quants, and every tier
 *     gives the avx2 tier's bytes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu.h"
#include "kernels/pack_impl.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "util_tiers.h"

static const int TYPES[] = {SK_TYPE_Q4_0, SK_TYPE_Q4_1, SK_TYPE_Q5_0, SK_TYPE_Q8_0};

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static float frand(void) { /* roughly gaussian: sum of uniforms */
    float s = 0;
    for (int k = 0; k < 4; k++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        s += (float)(g_rng >> 40) / (float)(1 << 24) - 0.5f;
    }
    return s;
}

/* 16 rows of n random floats, quantized to type by the reference. */
static void *make_rows(int type, int64_t n, size_t *rs) {
    const sk_type_traits *tt = sk_type_get_ref(type);
    *rs = sk_row_size(type, n);
    char *w = malloc(*rs * SK_PACK_ROWS);
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(w);
    assert_non_null(x);
    for (int r = 0; r < SK_PACK_ROWS; r++) {
        float scale = 0.05f * (float)(r + 1), shift = (r % 3) * 0.1f;
        for (int64_t i = 0; i < n; i++) x[i] = frand() * scale + shift;
        tt->from_float(x, w + (size_t)r * *rs, n);
    }
    free(x);
    return w;
}

static void test_roundtrip(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
        for (int64_t n = 32; n <= 1536; n *= 2) {
            size_t rs;
            char *w = make_rows(TYPES[t], n, &rs);
            char *p = malloc(sk_pack_group_size(TYPES[t], n));
            char *back = calloc(SK_PACK_ROWS, rs);
            assert_int_equal(sk_pack_group_size(TYPES[t], n), rs * SK_PACK_ROWS);
            sk_pack_group(TYPES[t], n, w, rs, p);
            sk_unpack_group(TYPES[t], n, p, back, rs);
            assert_memory_equal(w, back, rs * SK_PACK_ROWS);
            free(w);
            free(p);
            free(back);
        }
}

static void test_supported(void **state) {
    (void)state;
    assert_true(sk_pack_supported(SK_TYPE_Q4_1, 576, 192));
    assert_true(sk_pack_supported(SK_TYPE_Q8_0, 576, 49152));
    assert_true(sk_pack_supported(SK_TYPE_Q5_0, 640, 1024));
    assert_false(sk_pack_supported(SK_TYPE_Q5_1, 640, 1024));
    assert_false(sk_pack_supported(SK_TYPE_Q4_1, 576, 100)); /* rows % 16 */
    assert_false(sk_pack_supported(SK_TYPE_Q4_1, 48, 16));   /* n % 32 */
    assert_false(sk_pack_supported(SK_TYPE_Q4_K, 256, 16));
    assert_false(sk_pack_supported(SK_TYPE_F16, 64, 16));
    assert_false(sk_pack_supported(SK_TYPE_Q4_1, 0, 16));
}

/* The dispatcher: packing is on exactly where cpu.h chose the avx2 tier or
 * above and SINKLLM_NOPACK is not set; the reference table holds the _ref
 * kernels, the selected one the chosen tier's. */
static void test_dispatch(void **state) {
    (void)state;
    sk_pack_kernels t;
    sk_pack_fill(&t, sk_cpu_level());
    assert_int_equal(sk_pack_enabled(), sk_cpu_level() >= SK_ISA_AVX2 && !sk_cpu_nopack());
    assert_true(sk_pack_get_ref()->gemm == sk_packed_gemm_ref);
    assert_true(sk_pack_get_ref()->quantize == sk_q8p_quantize_ref);
    assert_true(sk_pack_get()->gemm == t.gemm && sk_pack_get()->quantize == t.quantize);
    assert_true((sk_pack_get()->gemm != sk_packed_gemm_ref) == (sk_cpu_level() >= SK_ISA_AVX2));
}

/* activations: nc rows of n floats -> Q8P by the reference */
static sk_block_q8p *make_act(int64_t n, int nc, size_t *ys) {
    *ys = sizeof(sk_block_q8p) * (size_t)(n / 32);
    sk_block_q8p *y = malloc(*ys * (size_t)nc);
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int c = 0; c < nc; c++) {
        for (int64_t i = 0; i < n; i++) x[i] = frand() * (c % 4 == 3 ? 8.0f : 1.0f);
        if (c == 5) memset(x, 0, sizeof(float) * 32); /* an all-zero block */
        sk_q8p_quantize_ref(x, (sk_block_q8p *)((char *)y + (size_t)c * *ys), n);
    }
    free(x);
    return y;
}

static void test_ref_against_dequantized(void **state) {
    (void)state;
    const int64_t n = 576;
    const int nc = 6;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        int type = TYPES[t];
        size_t rs, ys;
        char *w = make_rows(type, n, &rs);
        char *p = malloc(sk_pack_group_size(type, n));
        sk_pack_group(type, n, w, rs, p);
        sk_block_q8p *y = make_act(n, nc, &ys);
        float out[6 * 16];
        sk_packed_gemm_ref(type, n, 1, nc, p, sk_pack_group_size(type, n), y, ys, out, 16);
        float *wf = malloc(sizeof(float) * (size_t)n);
        for (int r = 0; r < 16; r++) {
            sk_type_get_ref(type)->to_float(w + (size_t)r * rs, wf, n);
            for (int c = 0; c < nc; c++) {
                const sk_block_q8p *yc = (const sk_block_q8p *)((char *)y + (size_t)c * ys);
                double dot = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    double yv = (double)yc[i / 32].qs[i % 32] * yc[i / 32].d;
                    dot += (double)wf[i] * yv;
                    mag += fabs((double)wf[i] * yv);
                }
                double err = fabs(out[c * 16 + r] - dot);
                if (err > 1e-5 * mag + 1e-6)
                    fail_msg("type %d row %d col %d: packed %g, dequantized %g", type, r, c,
                             out[c * 16 + r], dot);
            }
        }
        free(wf);
        free(w);
        free(p);
        free(y);
    }
}

/* ng groups of 16 random rows of n elements, packed (gs bytes each) */
static char *make_groups(int type, int64_t n, int ng, size_t *gs) {
    size_t rs;
    *gs = sk_pack_group_size(type, n);
    char *p = malloc(*gs * (size_t)ng);
    assert_non_null(p);
    for (int g = 0; g < ng; g++) {
        char *w = make_rows(type, n, &rs);
        sk_pack_group(type, n, w, rs, p + (size_t)g * *gs);
        free(w);
    }
    return p;
}

static void test_simd_against_ref(void **state) {
    sk_quant_init();
    sk_isa tier = util_tier(state, "test_simd_against_ref");
    sk_pack_kernels simd;
    sk_pack_fill(&simd, tier);
    const int64_t lens[] = {32, 96, 576, 1536};
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int type = TYPES[t];
            int64_t n = lens[li];
            const int ng = 3, ncmax = 19;
            size_t ys, gs;
            char *p = make_groups(type, n, ng, &gs);
            sk_block_q8p *y = make_act(n, ncmax, &ys);
            size_t ss = 16 * ng + 5; /* a ragged output stride */
            float *a = malloc(sizeof(float) * ss * ncmax), *b = malloc(sizeof(float) * ss * ncmax);
            for (int nc = 1; nc <= ncmax; nc++) {
                for (size_t k = 0; k < ss * ncmax; k++) a[k] = b[k] = -7.0f;
                sk_packed_gemm_ref(type, n, ng, nc, p, gs, y, ys, a, ss);
                simd.gemm(type, n, ng, nc, p, gs, y, ys, b, ss);
                for (int c = 0; c < ncmax; c++)
                    for (size_t r = 0; r < ss; r++) {
                        float x = a[c * ss + r], z = b[c * ss + r];
                        if (fabsf(x - z) > 2e-5f * (fabsf(x) + 1.0f))
                            fail_msg("%s type %d n %lld nc %d: [%d][%zu] ref %g simd %g",
                                     sk_isa_name(tier), type, (long long)n, nc, c, r, x, z);
                    }
            }
            free(a);
            free(b);
            free(p);
            free(y);
        }
}

/* Batch invariance (issue 10): column c of a tier's product is the same
 * bits whatever nc, the column's offset in the call and the first group of
 * the call (threads split the groups); and the same bits as the avx2
 * tier's (tiers agree by construction: the same exact integer dots, the
 * same float operations per block). */
static void test_batch_invariance(void **state) {
    sk_quant_init();
    sk_isa tier = util_tier(state, "test_batch_invariance");
    sk_pack_kernels simd, avx2;
    sk_pack_fill(&simd, tier);
    sk_pack_fill(&avx2, SK_ISA_AVX2);
    const int64_t lens[] = {96, 576, 1536};
    const int ncs[] = {1, 3, 7, 64}, offs[] = {0, 1, 5, 13, 57};
    enum { NG = 3, NCOL = 64 };
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            const int type = TYPES[t];
            const int64_t n = lens[li];
            size_t ys, gs;
            char *p = make_groups(type, n, NG, &gs);
            sk_block_q8p *y = make_act(n, NCOL, &ys);
            const size_t ss = 16 * NG;
            float *full = malloc(sizeof(float) * ss * NCOL), *b = malloc(sizeof(float) * ss * NCOL);
            simd.gemm(type, n, NG, NCOL, p, gs, y, ys, full, ss);
            avx2.gemm(type, n, NG, NCOL, p, gs, y, ys, b, ss);
            if (memcmp(full, b, sizeof(float) * ss * NCOL))
                fail_msg("%s type %d n %lld: not the avx2 tier's bits", sk_isa_name(tier), type, (long long)n);
            for (size_t ni = 0; ni < sizeof ncs / sizeof *ncs; ni++)
                for (size_t oi = 0; oi < sizeof offs / sizeof *offs; oi++)
                    for (int g0 = 0; g0 < NG; g0 += NG - 1) {
                        const int nc = ncs[ni], c0 = offs[oi];
                        if (c0 + nc > NCOL) continue;
                        simd.gemm(type, n, NG - g0, nc, p + (size_t)g0 * gs, gs,
                                  (const char *)y + (size_t)c0 * ys, ys, b, ss);
                        for (int c = 0; c < nc; c++)
                            if (memcmp(b + (size_t)c * ss, full + (size_t)(c0 + c) * ss + 16 * g0,
                                       sizeof(float) * 16 * (NG - g0)))
                                fail_msg("%s type %d n %lld: column %d differs with nc %d at offset %d "
                                         "from group %d", sk_isa_name(tier), type, (long long)n, c0 + c,
                                         nc, c, g0);
                    }
            free(full);
            free(b);
            free(p);
            free(y);
        }
}

static void test_q8p_quantize(void **state) {
    sk_quant_init();
    sk_isa tier = util_tier(state, "test_q8p_quantize");
    sk_pack_kernels simd, avx2;
    sk_pack_fill(&simd, tier);
    sk_pack_fill(&avx2, SK_ISA_AVX2);
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n);
    sk_block_q8p a[32], b[32];
    int64_t n_ties = 0, n_all = 0;
    for (int rep = 0; rep < 20; rep++) {
        for (int64_t i = 0; i < n; i++) x[i] = frand() * (float)(rep + 1);
        if (rep == 3) memset(x, 0, sizeof(float) * n);
        if (rep == 4) x[7] = 1e30f;
        sk_q8p_quantize_ref(x, a, n);
        avx2.quantize(x, b, n);
        sk_block_q8p c[32];
        simd.quantize(x, c, n);
        assert_memory_equal(b, c, sizeof b); /* every tier: the avx2 tier's bytes */
        for (int i = 0; i < 32; i++) {
            assert_true(a[i].d == b[i].d);
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                /* equal except at a .5 tie within float rounding: the
                 * reference rounds v = x / d, the kernel truncates
                 * v + copysign(0.5, v), one more rounding */
                int dq = a[i].qs[j] - b[i].qs[j];
                n_all++;
                if (dq) {
                    float v = x[i * 32 + j] * (a[i].d ? 1.0f / a[i].d : 0.0f);
                    double av = fabs((double)v), frac = fabs(av - floor(av) - 0.5);
                    if (abs(dq) != 1 || frac > 1e-6 * (av + 1))
                        fail_msg("rep %d block %d [%d]: ref %d simd %d (v = %.9g, not a tie)", rep, i, j,
                                 a[i].qs[j], b[i].qs[j], v);
                    n_ties++;
                }
                sum += b[i].qs[j];
            }
            assert_int_equal(sum, b[i].sum);
        }
    }
    print_message("  Q8P quantizer: %lld of %lld quants differ from the reference (ties)\n", (long long)n_ties,
                  (long long)n_all);
    assert_true(n_ties * 1000 <= n_all);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_supported),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_ref_against_dequantized),
        UTIL_TIER_TESTS(test_simd_against_ref),
        UTIL_TIER_TESTS(test_batch_invariance),
        UTIL_TIER_TESTS(test_q8p_quantize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
