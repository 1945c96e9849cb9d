/* test_vec.c - SIMD attention kernels (vec_avx2.c on the avx2 tier,
 * vec_avx512.c on the avx512 and amx tiers) against the scalar reference
 * (vec_ref.c) on random data and ragged shapes. Each tier's kernels are
 * built into a table here (tier_kernels), not taken from the dispatcher,
 * so every tier the CPU has is tested and the others are reported SKIPPED
 * (util_tiers.h); the dispatcher's choice is checked against them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "kernels/vec_impl.h"
#include "util_tiers.h"

static uint32_t g_seed = 1;
static float rnd(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return ((g_seed >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

/* kq and av on every path: few queries (n_rep <= 8, the register kernels),
 * many (n_rep > 8: a chunk of tokens, the blocked kernels; 64 = Gemma 3's
 * 16-token chunk x 4 query heads per KV head), head sizes up to 256, key
 * counts around the 8-, 16- and 32-key tiles; 24 is no multiple of 16 (the
 * reference). Each result is held to its float rounding: the SIMD sums
 * differ from the reference's only in order (kq) or in FMA contraction
 * (av, whose keys are added in the same order), so |diff| <= (terms + 8)
 * 2^-23 mag, mag = the sum of the magnitudes of the terms (scale |q_i k_i|
 * summed over i for a score; |out_0| + sum_j |a_j v_j| for an output). The
 * worst measured |diff| / mag is printed. Every tier's kernels repeat the
 * reference's operations and must return its bits. Every set must give a
 * query the same bits alone as among n_rep (batch invariance, vec.h). */
static void check_set(const char *isa, const sk_vec_kernels *simd) {
    const sk_vec_kernels *ref = sk_vec_get_ref();
    int hds[] = {16, 32, 64, 128, 256, 24};
    int64_t ns[] = {1, 2, 3, 7, 8, 9, 17, 31, 33, 64, 257};
    int reps[] = {1, 3, 4, 5, 7, 8, 9, 29, 49, 64};
    double worst_kq = 0, worst_av = 0;
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof reps / sizeof *reps; c++) {
                int hd = hds[a], n_rep = reps[c];
                int64_t n = ns[b];
                const float scale = 0.125f;
                uint16_t *K = malloc(sizeof(uint16_t) * (size_t)(n * hd));
                float *q = malloc(sizeof(float) * (size_t)(n_rep * hd));
                size_t ss = (size_t)n + 3;
                float *s1 = calloc((size_t)n_rep * ss, sizeof(float)), *s2 = calloc((size_t)n_rep * ss, sizeof(float));
                float *o0 = malloc(sizeof(float) * (size_t)(n_rep * hd));
                float *o1 = malloc(sizeof(float) * (size_t)(n_rep * hd)), *o2 = malloc(sizeof(float) * (size_t)(n_rep * hd));
                for (int64_t i = 0; i < n * hd; i++) K[i] = sk_f32_to_f16(rnd() * 3);
                for (int i = 0; i < n_rep * hd; i++) q[i] = rnd();
                for (int i = 0; i < n_rep * hd; i++) o0[i] = o1[i] = o2[i] = rnd();
                ref->kq_f16(n, hd, K, n_rep, q, scale, s1, ss);
                simd->kq_f16(n, hd, K, n_rep, q, scale, s2, ss);
                for (int r = 0; r < n_rep; r++)
                    for (size_t j = 0; j < ss; j++) {
                        size_t i = (size_t)r * ss + j;
                        if (j >= (size_t)n) { /* past the keys: untouched */
                            if (s2[i] != 0.0f) fail_msg("%s kq hd=%d n=%lld rep=%d wrote s[%zu]", isa, hd, (long long)n, n_rep, i);
                            continue;
                        }
                        double mag = 0;
                        for (int e = 0; e < hd; e++) mag += fabs((double)q[(size_t)r * hd + e] * sk_f16_to_f32(K[j * hd + e]));
                        mag *= scale;
                        double d = fabs((double)s1[i] - s2[i]);
                        worst_kq = fmax(worst_kq, d / mag);
                        if (s1[i] != s2[i]) /* every tier: the reference's bits */
                            fail_msg("%s kq hd=%d n=%lld rep=%d: [%zu] %.9g, reference %.9g: not its bits", isa, hd,
                                     (long long)n, n_rep, i, s2[i], s1[i]);
                        if (!(d <= (hd + 8) * 0x1p-23 * mag))
                            fail_msg("%s kq hd=%d n=%lld rep=%d: [%zu] %g vs %g", isa, hd, (long long)n, n_rep, i, s1[i], s2[i]);
                    }
                for (int r = 0; r < n_rep; r++) { /* one query alone: its row's bits */
                    float *one = calloc(ss, sizeof(float));
                    simd->kq_f16(n, hd, K, 1, q + (size_t)r * hd, scale, one, ss);
                    if (memcmp(one, s2 + (size_t)r * ss, sizeof(float) * (size_t)n))
                        fail_msg("%s kq hd=%d n=%lld rep=%d: query %d alone differs", isa, hd, (long long)n, n_rep, r);
                    free(one);
                }
                ref->av_f16(n, hd, K, (size_t)hd, n_rep, s1, ss, o1, (size_t)hd);
                simd->av_f16(n, hd, K, (size_t)hd, n_rep, s1, ss, o2, (size_t)hd);
                for (int r = 0; r < n_rep; r++) { /* one query alone: its row's bits */
                    float *one = malloc(sizeof(float) * (size_t)hd);
                    memcpy(one, o0 + (size_t)r * hd, sizeof(float) * (size_t)hd);
                    simd->av_f16(n, hd, K, (size_t)hd, 1, s1 + (size_t)r * ss, ss, one, (size_t)hd);
                    if (memcmp(one, o2 + (size_t)r * hd, sizeof(float) * (size_t)hd))
                        fail_msg("%s av hd=%d n=%lld rep=%d: query %d alone differs", isa, hd, (long long)n, n_rep, r);
                    free(one);
                }
                /* columns [16, hd) alone: the bits of the whole (vec.h) */
                if (hd > 16 && hd % 16 == 0) {
                    float *o3 = malloc(sizeof(float) * (size_t)n_rep * hd);
                    memcpy(o3, o0, sizeof(float) * (size_t)n_rep * hd);
                    simd->av_f16(n, hd - 16, K + 16, (size_t)hd, n_rep, s1, ss, o3 + 16, (size_t)hd);
                    for (int r = 0; r < n_rep; r++)
                        if (memcmp(o3 + (size_t)r * hd + 16, o2 + (size_t)r * hd + 16, sizeof(float) * (size_t)(hd - 16)))
                            fail_msg("%s av hd=%d n=%lld rep=%d: a column slice differs from the whole", isa, hd,
                                     (long long)n, n_rep);
                    free(o3);
                }
                for (int r = 0; r < n_rep; r++)
                    for (int e = 0; e < hd; e++) {
                        size_t i = (size_t)r * hd + e;
                        double mag = fabs(o0[i]);
                        for (int64_t j = 0; j < n; j++) mag += fabs((double)s1[(size_t)r * ss + j] * sk_f16_to_f32(K[j * hd + e]));
                        double d = fabs((double)o1[i] - o2[i]);
                        worst_av = fmax(worst_av, d / mag);
                        if (o1[i] != o2[i])
                            fail_msg("%s av hd=%d n=%lld rep=%d: [%zu] %.9g, reference %.9g: not its bits", isa, hd,
                                     (long long)n, n_rep, i, o2[i], o1[i]);
                        if (!(d <= (n + 8) * 0x1p-23 * mag))
                            fail_msg("%s av hd=%d n=%lld rep=%d: [%zu] %g vs %g", isa, hd, (long long)n, n_rep, i, o1[i], o2[i]);
                    }
                free(K); free(q); free(s1); free(s2); free(o0); free(o1); free(o2);
            }
    print_message("  %s kq worst |diff| / mag %.3g, av %.3g\n", isa, worst_kq, worst_av);
}

/* exp_sum and max: every element within 2 ulp-ish (2.5e-7 relative) of
 * expf, the sum within 1e-6 relative, on a sweep of the whole useful range
 * [-104, 0] and ragged lengths; max exact. With bits set (AVX2, whose exp
 * is libm's: vec_avx2.c), every element and the sum are the reference's
 * bits. */
static void check_softmax(const char *isa, const sk_vec_kernels *simd, int bits) {
    const sk_vec_kernels *ref = sk_vec_get_ref();
    int64_t ns[] = {0, 1, 15, 16, 17, 100, 2048, 20001};
    for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
        int64_t n = ns[b];
        float *a = malloc(sizeof(float) * (size_t)(n + 1)), *x = malloc(sizeof(float) * (size_t)(n + 1));
        for (int64_t j = 0; j < n; j++) a[j] = x[j] = -104.0f * (float)j / (float)(n > 1 ? n - 1 : 1) + 3.0f + rnd() * 0.01f;
        if (n > 3) a[n / 2] = x[n / 2] = 3.5f;
        float m1 = ref->max(a, n), m2 = simd->max(a, n);
        assert_true(m1 == m2);
        float s2 = simd->exp_sum(x, n, m2);
        if (bits) {
            float *y = malloc(sizeof(float) * (size_t)(n + 1));
            memcpy(y, a, sizeof(float) * (size_t)n);
            float s1 = ref->exp_sum(y, n, m1);
            if (memcmp(&s1, &s2, sizeof s1) || memcmp(x, y, sizeof(float) * (size_t)n))
                fail_msg("%s exp_sum n=%lld: not the reference's bits (sum %.9g vs %.9g)", isa, (long long)n, s2, s1);
            free(y);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; j++) {
            float want = expf(a[j] - m1);
            sum += want;
            if (fabsf(x[j] - want) > 2.5e-7f * want + 1e-38f)
                fail_msg("%s exp(%g) = %g, expf %g", isa, a[j] - m1, x[j], want);
        }
        if (fabs(s2 - sum) > 1e-6 * sum) fail_msg("%s exp_sum %g vs %g", isa, s2, sum);
        free(a);
        free(x);
    }
}

static void check_swiglu(const char *isa, const sk_vec_kernels *simd, int bits) {
    const sk_vec_kernels *ref = sk_vec_get_ref();
    int64_t n = 1000;
    float g1[1000], g2[1000], u[1000];
    for (int64_t i = 0; i < n; i++) {
        g1[i] = g2[i] = (float)(i - 500) * 0.25f + rnd() * 0.1f; /* -125 .. 125 */
        u[i] = rnd() * 3.0f;
    }
    g1[3] = g2[3] = 0.0f;
    ref->swiglu(g1, u, n);
    simd->swiglu(g2, u, n);
    if (bits && memcmp(g1, g2, sizeof g1)) fail_msg("%s swiglu: not the reference's bits", isa);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(g1[i] - g2[i]) > 5e-7f * fabsf(g1[i]) + 1e-30f)
            fail_msg("%s swiglu[%lld] %g vs %g", isa, (long long)i, g2[i], g1[i]);
}

/* GELU-tanh: the SIMD kernels compute x / (1 + exp(-2z)), the reference
 * 0.5 x (1 + tanh z), the same function. For x < 0 the reference's 1 +
 * tanh z cancels: tanhf's error, up to an ulp of 1 (2^-24), lands in a
 * value of size 0.5 |x| (1 + tanh z). So |diff| <= 2.5e-7 |ref| (the
 * exp's 2 ulp and the divide) + 2^-24 |x u|; the worst measured |diff| /
 * |x u| is printed. On -12 .. 12, where it matters (beyond, both are 0 or
 * x u), and at +-200, +-1e30, 0. */
static void check_geglu(const char *isa, const sk_vec_kernels *simd) {
    const sk_vec_kernels *ref = sk_vec_get_ref();
    enum { N = 4003 };
    static float g1[N], g2[N], u[N], x[N];
    for (int i = 0; i < N; i++) {
        x[i] = g1[i] = g2[i] = (float)(i - N / 2) * 0.006f + rnd() * 0.001f;
        u[i] = rnd() * 3.0f;
    }
    const float special[] = {-200.0f, 200.0f, 0.0f, -1e30f, 1e30f};
    for (int i = 0; i < 5; i++) x[i] = g1[i] = g2[i] = special[i];
    ref->geglu(g1, u, N);
    simd->geglu(g2, u, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double d = fabs((double)g1[i] - g2[i]), sc = fabs((double)x[i] * u[i]);
        if (sc > 0 && isfinite(sc)) worst = fmax(worst, d / sc);
        if (!(d <= 2.5e-7 * fabs(g1[i]) + 0x1p-24 * sc))
            fail_msg("%s geglu(%g) * %g = %.9g, reference %.9g", isa, x[i], u[i], g2[i], g1[i]);
    }
    print_message("  %s geglu worst |diff| / |x u| %.3g\n", isa, worst);
}

/* The kernels a tier's run checks: AVX2's on avx2; on avx512 and amx the
 * AVX-512 file's over them, which every CPU with the tier can run though
 * vec.c installs them only where sk_cpu_wide512() (test_tier checks that
 * choice). */
static void tier_kernels(sk_isa tier, sk_vec_kernels *t) {
    sk_vec_fill(t, SK_ISA_AVX2);
    if (tier >= SK_ISA_AVX512VNNI) sk_vec_register_avx512(t);
}

/* Each tier's exp is libm's (vec_avx2.c, vec_avx512.c): exp_sum and SwiGLU give the
 * reference's bits on every 61st float of exp's whole finite range, every
 * float within 2^16 ulps of libm's path boundaries (-103.97, 88.72) and of
 * 0, and the specials (+-0, +-inf, NaN, subnormals). exp_sum sees x - 0
 * (x <= 0, its contract); SwiGLU exp(-g) for every g, so both signs. */
static void test_exp_libm(void **state) {
    sk_isa tier = util_tier(state, "test_exp_libm");
    if (tier == SK_ISA_AMX) { /* the avx512 tier's kernels: checked once, there */
        print_message("  amx: the avx512 tier's exp_sum and swiglu\n");
        return;
    }
    sk_vec_kernels t;
    tier_kernels(tier, &t);
    const sk_vec_kernels *ref = sk_vec_get_ref();
    enum { B = 4096 };
    static float x[B], y[B], u[B];
    for (int i = 0; i < B; i++) u[i] = 1.0f + (float)i / B;
    size_t k = 0, n_all = 0;
    /* bit patterns: [0, +inf] and [-0, -inf], strided, plus dense windows */
    const uint32_t lo_hi[][3] = {
        {0x00000000u, 0x7f800000u, 61}, {0x80000000u, 0xff800000u, 61},    /* strided, both signs */
        {0x42cfe368u - 65536, 0x42cfe368u + 65536, 1},                      /* +-103.97 */
        {0xc2cfe368u - 65536, 0xc2cfe368u + 65536, 1},
        {0x42b17217u - 65536, 0x42b17217u + 65536, 1},                      /* +-88.72 */
        {0xc2b17217u - 65536, 0xc2b17217u + 65536, 1},
        {0x00000000u, 0x00010000u, 1}, {0x80000000u, 0x80010000u, 1},      /* subnormals near 0 */
        {0x3f800000u - 65536, 0x3f800000u + 65536, 1},                      /* +-1 */
        {0xbf800000u - 65536, 0xbf800000u + 65536, 1},
        {0x7fc00000u, 0x7fc00010u, 1}, {0xffc00000u, 0xffc00010u, 1},      /* NaNs */
    };
    for (size_t w = 0; w < sizeof lo_hi / sizeof *lo_hi; w++)
        for (uint64_t b = lo_hi[w][0]; b <= lo_hi[w][1]; b += lo_hi[w][2]) {
            uint32_t v = (uint32_t)b;
            memcpy(&x[k++], &v, 4);
            if (k < B && b + lo_hi[w][2] <= lo_hi[w][1]) continue;
            n_all += k;
            float g1[B], g2[B];
            memcpy(g1, x, sizeof(float) * k);
            memcpy(g2, x, sizeof(float) * k);
            ref->swiglu(g1, u, (int64_t)k);
            t.swiglu(g2, u, (int64_t)k);
            if (memcmp(g1, g2, sizeof(float) * k))
                for (size_t i = 0; i < k; i++)
                    if (memcmp(&g1[i], &g2[i], 4) && !(isnan(g1[i]) && isnan(g2[i])))
                        fail_msg("%s swiglu(%a) = %a, reference %a", sk_isa_name(tier), x[i], g2[i], g1[i]);
            size_t m = 0; /* exp_sum: the non-positive ones */
            for (size_t i = 0; i < k; i++)
                if (!(x[i] > 0)) y[m++] = x[i];
            memcpy(g1, y, sizeof(float) * m);
            memcpy(g2, y, sizeof(float) * m);
            float s1 = ref->exp_sum(g1, (int64_t)m, 0.0f), s2 = t.exp_sum(g2, (int64_t)m, 0.0f);
            for (size_t i = 0; i < m; i++)
                if (memcmp(&g1[i], &g2[i], 4) && !(isnan(g1[i]) && isnan(g2[i])))
                    fail_msg("%s exp(%a) = %a, libm %a", sk_isa_name(tier), y[i], g2[i], g1[i]);
            if (memcmp(&s1, &s2, 4) && !(isnan(s1) && isnan(s2))) fail_msg("%s exp_sum %a vs %a", sk_isa_name(tier), s2, s1);
            k = 0;
        }
    print_message("  %s exp: libm's bits on %zu inputs\n", sk_isa_name(tier), n_all);
}

/* The kernels of each tier (util_tiers.h) compared with the reference;
 * the dispatcher's fill for the tier is them, or AVX2's where the CPU
 * splits 512-bit operations (sk_cpu_wide512). */
static void test_tier(void **state) {
    sk_isa tier = util_tier(state, "test_tier");
    sk_vec_kernels t, fill, a;
    tier_kernels(tier, &t);
    sk_vec_fill(&fill, tier);
    sk_vec_fill(&a, SK_ISA_AVX2);
    const sk_vec_kernels *want = tier >= SK_ISA_AVX512VNNI && !sk_cpu_wide512() ? &a : &t;
    assert_true(!memcmp(&fill, want, sizeof fill));
    const char *isa = sk_isa_name(tier);
    print_message("  %s: %s kernels installed\n", isa,
                  want == &a && tier >= SK_ISA_AVX512VNNI ? "AVX2's (512-bit operations split)" : "its own");
    check_set(isa, &t);
    check_softmax(isa, &t, 1); /* every tier: the reference's bits */
    check_swiglu(isa, &t, 1);
    check_geglu(isa, &t);
}

/* The dispatcher installs the set cpu.h chose: the reference's entries
 * on the scalar tier (SINKLLM_ISA=scalar) or without AVX2, another set's otherwise. */
static void test_dispatch(void **state) {
    (void)state;
    const sk_vec_kernels *sel = sk_vec_get(), *ref = sk_vec_get_ref();
    sk_vec_kernels t;
    sk_vec_ref_fill(&t);
    assert_true(ref->kq_f16 == t.kq_f16 && ref->av_f16 == t.av_f16 && ref->exp_sum == t.exp_sum &&
                ref->max == t.max && ref->swiglu == t.swiglu && ref->geglu == t.geglu);
    if (sk_cpu_level() == SK_ISA_SCALAR) {
        assert_true(sel->kq_f16 == ref->kq_f16 && sel->max == ref->max && sel->swiglu == ref->swiglu &&
                    sel->geglu == ref->geglu);
    } else { /* every entry AVX2's on AVX2 and above */
        assert_true(sel->kq_f16 != ref->kq_f16 && sel->av_f16 != ref->av_f16 && sel->max != ref->max &&
                    sel->geglu != ref->geglu && sel->exp_sum != ref->exp_sum && sel->swiglu != ref->swiglu);
    }
}

int main(void) {
    sk_quant_init();
    const struct CMUnitTest tests[] = {
        UTIL_TIER_TESTS(test_tier),
        UTIL_TIER_TESTS(test_exp_libm),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
