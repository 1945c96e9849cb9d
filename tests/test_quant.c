/* test_quant.c - tensor formats: layouts, conversions, and SIMD against the reference.
 *
 * Independent checks (things that would catch a wrong reference):
 *   - hand-built Q4_1, Q8_0 and Q4_K blocks decoded to values worked out by
 *     hand from the layouts in quant.h;
 *   - dequantize(quantize(x)) stays within a per-type error bound of x;
 *   - vec_dot equals the double-precision dot of the dequantized rows, and
 *     approximates the dot with the original float activations;
 *   - f16/bf16: all 65536 values round-trip, rounding edge cases by hand,
 *     scalar f32->f16 equals the F16C instruction on random bit patterns.
 * Twin checks: for every instruction set this CPU has (tables built by
 * calling the register functions on a copy of the reference, not through
 * the dispatcher), vec_dot / gemm / to_float / from_float are compared with
 * the scalar reference on ragged sizes, several seeds and data shapes
 * (gaussian, outliers, all-zero, constant, all-positive, large scale);
 * the K-quant kernels also on real row lengths (256 .. 11008) with random
 * block bytes and all-extreme blocks, and the Q8_K quantizer bit for bit.
 *
 * `test_quant --print-isa` prints sk_cpu_isa() and exits (used to check
 * SINKLLM_SCALAR in a fresh process). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "util_tiers.h"

/* ---- instruction-set tables ------------------------------------------------ */

typedef struct {
    const char *name;
    sk_type_traits t[SK_TYPE_COUNT];
} isa_table;

static isa_table g_isa[SK_ISA_COUNT + 1]; /* + the avx512-wide kernels (build_tables) */
static int g_n_isa;
static const sk_type_traits *g_ref; /* g_isa[0].t */

static void build_tables(void) {
    if (g_n_isa)
        return;
    sk_quant_init();
    isa_table *ref = &g_isa[g_n_isa++];
    ref->name = "scalar";
    for (int t = 0; t < SK_TYPE_COUNT; t++) {
        const sk_type_traits *tr = sk_type_get_ref(t);
        if (tr)
            ref->t[t] = *tr;
        else
            memset(&ref->t[t], 0, sizeof ref->t[t]);
    }
    g_ref = ref->t;
    /* every tier the CPU has, as the dispatcher fills it (util_tiers.h:
     * test_tiers reports the others as skipped) */
    for (int tier = SK_ISA_AVX2; tier < SK_ISA_COUNT; tier++) {
        if (!sk_cpu_has_isa((sk_isa)tier)) continue;
        isa_table *a = &g_isa[g_n_isa++];
        a->name = sk_isa_name((sk_isa)tier);
        sk_quant_fill(a->t, tier);
    }
    /* the kernels for whole 512-bit registers where the dispatcher leaves
     * them out (Zen 4): checked all the same */
    if (sk_cpu_has_isa(SK_ISA_AVX512VNNI) && !sk_cpu_wide512()) {
        isa_table *a = &g_isa[g_n_isa++];
        a->name = "avx512-wide";
        sk_quant_fill(a->t, SK_ISA_AVX512VNNI);
        sk_quant_register_k_wide_avx512(a->t);
    }
}

static const int k_weight_types[] = {SK_TYPE_F32,  SK_TYPE_F16,  SK_TYPE_BF16, SK_TYPE_Q4_0,
                                     SK_TYPE_Q4_1, SK_TYPE_Q5_0, SK_TYPE_Q5_1, SK_TYPE_Q8_0,
                                     SK_TYPE_Q4_K, SK_TYPE_Q5_K, SK_TYPE_Q6_K};
#define N_WEIGHT_TYPES ((int)(sizeof k_weight_types / sizeof k_weight_types[0]))

/* ---- data -------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_unif(uint64_t *s) { return (float)(rng_next(s) >> 40) * 0x1p-24f; }

static float rng_gauss(uint64_t *s) {
    float u = rng_unif(s) + 0x1p-25f, v = rng_unif(s);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

enum { D_GAUSS, D_OUTLIER, D_ZERO, D_CONST, D_POSITIVE, D_LARGE, D_COUNT };

static void gen(float *x, int64_t n, int kind, uint64_t seed) {
    uint64_t s = seed * 1000003u + (uint64_t)kind;
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case D_GAUSS: x[i] = rng_gauss(&s); break;
        case D_OUTLIER: x[i] = rng_gauss(&s) * (rng_next(&s) % 61 == 0 ? 100.0f : 1.0f); break;
        case D_ZERO: x[i] = 0; break;
        case D_CONST: x[i] = (seed & 1) ? 0.73f : -2.5f; break;
        case D_POSITIVE: x[i] = 1.0f + rng_unif(&s); break;
        default: x[i] = 300.0f * (2 * rng_unif(&s) - 1); break;
        }
    }
}

static const int k_mults[] = {1, 2, 3, 7, 33};

/* elements per test unit: a block, or 32 for the float formats so that the
 * float kernels see their vector loops and tails */
static int64_t unit_of(int type) {
    int b = g_ref[type].blck;
    return b < SK_QK ? SK_QK : b;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- error bounds -------------------------------------------------------------- */

/* Largest allowed |dequant(quant(x)) - x| in a block, as a fraction of the
 * block's max |x| (super-block for K-quants): half a step of the format plus
 * the f16 rounding of its scales (and, for K-quants, of the 6/8-bit
 * sub-block scales). */
static double roundtrip_bound(int type) {
    switch (type) {
    case SK_TYPE_F32: return 0;
    case SK_TYPE_F16: return 0x1p-11 * 1.001;
    case SK_TYPE_BF16: return 0x1p-8 * 1.001;
    case SK_TYPE_Q4_0: return 1.0 / 8 * 1.01;   /* the far side clamps at +7 */
    case SK_TYPE_Q4_1: return 1.0 / 15 * 1.05;  /* range / 30, range <= 2 amax */
    case SK_TYPE_Q5_0: return 1.0 / 16 * 1.01;
    case SK_TYPE_Q5_1: return 1.0 / 31 * 1.06;
    case SK_TYPE_Q8_0:
    case SK_TYPE_Q8_1: return 1.0 / 254 + 127 * 0x1p-11 / 127 * 1.01;
    case SK_TYPE_Q8_K: return 1.0 / 254 * 1.01;
    case SK_TYPE_Q4_K: return 0.10;
    case SK_TYPE_Q5_K: return 0.06;
    case SK_TYPE_Q6_K: return 0.025;
    }
    return 0;
}

/* float accumulation tolerance of a dot product with `terms` rounded
 * additions and sum |x_i y_i| = mag */
static double dot_tol(double ref, double mag, int64_t terms) {
    return 1e-5 * fabs(ref) + 1.2e-7 * (double)(terms + 8) * mag + 1e-30;
}

/* ---- 1. round trip ------------------------------------------------------------ */

static void check_roundtrip(const sk_type_traits *tr, int type, int64_t n, int kind, uint64_t seed,
                            double *worst) {
    float *x = xmalloc((size_t)n * sizeof *x), *y = xmalloc((size_t)n * sizeof *y);
    size_t rs = sk_row_size(type, n);
    assert_int_not_equal(rs, 0);
    void *q = xmalloc(rs);
    gen(x, n, kind, seed);
    tr->from_float(x, q, n);
    tr->to_float(q, y, n);
    const int64_t gb = tr->blck < SK_QK ? SK_QK : tr->blck;
    for (int64_t b = 0; b < n; b += gb) {
        double amax = 0, err = 0;
        for (int64_t i = b; i < b + gb && i < n; i++) {
            amax = fmax(amax, fabs(x[i]));
            err = fmax(err, fabs((double)y[i] - x[i]));
        }
        double bound = roundtrip_bound(type) * amax + 1e-30;
        if (err > bound)
            fail_msg("%s round trip: n=%lld kind=%d seed=%llu block %lld: err %g > %g (amax %g)", tr->name,
                     (long long)n, kind, (unsigned long long)seed, (long long)(b / gb), err, bound, amax);
        if (amax > 0)
            *worst = fmax(*worst, err / amax);
        if (kind == D_ZERO)
            assert_true(err == 0);
    }
    free(x);
    free(y);
    free(q);
}

static void test_roundtrip(void **state) {
    (void)state;
    build_tables();
    static const int types[] = {SK_TYPE_F32,  SK_TYPE_F16,  SK_TYPE_BF16, SK_TYPE_Q4_0, SK_TYPE_Q4_1,
                                SK_TYPE_Q5_0, SK_TYPE_Q5_1, SK_TYPE_Q8_0, SK_TYPE_Q8_1, SK_TYPE_Q4_K,
                                SK_TYPE_Q5_K, SK_TYPE_Q6_K, SK_TYPE_Q8_K};
    for (int a = 0; a < g_n_isa; a++)
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            int type = types[ti];
            double worst = 0;
            for (int m = 0; m < 5; m++)
                for (int kind = 0; kind < D_COUNT; kind++)
                    for (uint64_t seed = 1; seed <= 3; seed++)
                        check_roundtrip(&g_isa[a].t[type], type, unit_of(type) * k_mults[m], kind, seed, &worst);
            if (a == 0)
                print_message("  round trip %-5s worst err / amax %.5f (bound %.5f)\n", g_ref[type].name, worst,
                              roundtrip_bound(type));
        }
}

/* SIMD to_float must decode the same bytes to the same floats as the
 * reference (bit for bit: both compute q * d (+ m) without contraction). */
static void test_to_float_simd(void **state) {
    (void)state;
    build_tables();
    for (int a = 1; a < g_n_isa; a++)
        for (int type = 0; type < SK_TYPE_COUNT; type++) {
            const sk_type_traits *it = &g_isa[a].t[type], *rt = &g_ref[type];
            if (!rt->name)
                continue;
            for (int m = 0; m < 5; m++)
                for (int kind = 0; kind < D_COUNT; kind++) {
                    int64_t n = unit_of(type) * k_mults[m];
                    float *x = xmalloc((size_t)n * 4), *y0 = xmalloc((size_t)n * 4), *y1 = xmalloc((size_t)n * 4);
                    void *q = xmalloc(sk_row_size(type, n));
                    gen(x, n, kind, 7);
                    rt->from_float(x, q, n);
                    rt->to_float(q, y0, n);
                    it->to_float(q, y1, n);
                    if (memcmp(y0, y1, (size_t)n * 4) != 0)
                        fail_msg("%s %s to_float differs from reference (n=%lld kind=%d)", g_isa[a].name, rt->name,
                                 (long long)n, kind);
                    free(x);
                    free(y0);
                    free(y1);
                    free(q);
                }
        }
}

/* ---- activation quantizers ------------------------------------------------------ */

/* ggml's x86 quantize_row_q8_0/q8_1 numerics, which the SIMD quantizers
 * follow: q = rint(x * (127 / amax)), d = amax / 127. */
static void model_q8_x86(const float *x, int8_t *q, uint16_t *d16, uint16_t *s16) {
    float amax = 0;
    for (int j = 0; j < SK_QK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < SK_QK; j++) {
        q[j] = (int8_t)rintf(x[j] * id);
        sum += q[j];
    }
    *d16 = sk_f32_to_f16(d);
    if (s16)
        *s16 = sk_f32_to_f16(d * (float)sum);
}

static void test_act_quant_simd(void **state) {
    (void)state;
    build_tables();
    for (int a = 1; a < g_n_isa; a++)
        for (int k = 0; k < 2; k++) {
            int type = k ? SK_TYPE_Q8_1 : SK_TYPE_Q8_0;
            const sk_type_traits *it = &g_isa[a].t[type], *rt = &g_ref[type];
            if (it->from_float == rt->from_float)
                continue;
            int64_t n_diff = 0, n_all = 0;
            for (int m = 0; m < 5; m++)
                for (int kind = 0; kind < D_COUNT; kind++)
                    for (uint64_t seed = 1; seed <= 3; seed++) {
                        int64_t n = SK_QK * k_mults[m], nb = n / SK_QK;
                        float *x = xmalloc((size_t)n * 4);
                        uint8_t *qi = xmalloc(nb * rt->size), *qr = xmalloc(nb * rt->size);
                        gen(x, n, kind, seed);
                        if (kind == D_CONST) /* exact .5 ties: rint and roundf disagree */
                            for (int64_t i = 0; i < n; i++)
                                x[i] = i % 32 == 0 ? 127.0f : (float)((i % 7) - 3) * 0.5f;
                        it->from_float(x, qi, n);
                        rt->from_float(x, qr, n);
                        for (int64_t b = 0; b < nb; b++) {
                            int8_t mq[SK_QK];
                            uint16_t md, ms;
                            model_q8_x86(x + b * SK_QK, mq, &md, k ? &ms : NULL);
                            const uint8_t *bi = qi + b * rt->size, *br = qr + b * rt->size;
                            size_t qoff = k ? 4 : 2;
                            assert_memory_equal(bi, &md, 2);
                            if (k)
                                assert_memory_equal(bi + 2, &ms, 2);
                            assert_memory_equal(bi + qoff, mq, SK_QK);
                            assert_memory_equal(bi, br, 2); /* same d as the reference */
                            for (int j = 0; j < SK_QK; j++) {
                                int dq = (int8_t)bi[qoff + j] - (int8_t)br[qoff + j];
                                assert_true(dq >= -1 && dq <= 1);
                                n_diff += dq != 0;
                                n_all++;
                            }
                        }
                        free(x);
                        free(qi);
                        free(qr);
                    }
            print_message("  %s %s from_float: %lld of %lld q differ by 1 from the reference (ties)\n",
                          g_isa[a].name, g_ref[type].name, (long long)n_diff, (long long)n_all);
            assert_true(n_diff * 10 < n_all);
        }
}

/* ---- 2 + 4. vec_dot ----------------------------------------------------------------- */

/* per-element bound on |dequant(y) - y| for the activation format */
static double act_err(int dt, const float *y, int64_t i, int64_t n) {
    switch (dt) {
    case SK_TYPE_F32: return 0;
    case SK_TYPE_F16: return fabs(y[i]) * 0x1p-11;
    case SK_TYPE_BF16: return fabs(y[i]) * 0x1p-8;
    default: {
        int64_t b = dt == SK_TYPE_Q8_K ? SK_QK_K : SK_QK, b0 = i / b * b;
        double amax = 0;
        for (int64_t j = b0; j < b0 + b && j < n; j++)
            amax = fmax(amax, fabs(y[j]));
        return amax * roundtrip_bound(dt);
    }
    }
}

/* extra slack of the _1 formats' min term: it uses s = f16(d sum q), the
 * exact dot uses f16(d) sum q; |s - f16(d) sum q| <= (|s| + 32*127 |d|) 2^-11 */
static double min_term_slack(int type, const void *xq, const void *yq, int64_t n) {
    if (type != SK_TYPE_Q4_1 && type != SK_TYPE_Q5_1)
        return 0;
    double slack = 0;
    for (int64_t b = 0; b < n / SK_QK; b++) {
        uint16_t m16;
        const sk_block_q8_1 *yb = (const sk_block_q8_1 *)yq + b;
        memcpy(&m16, (const char *)xq + b * g_ref[type].size + 2, 2); /* m follows d in both */
        slack += fabs(sk_f16_to_f32(m16)) * (fabs(sk_f16_to_f32(yb->s)) + 4064 * fabs(sk_f16_to_f32(yb->d))) * 0x1p-10;
    }
    return slack;
}

/* Magnitude for dot_tol of a K-quant dot: sum over elements of
 * (|d sc q| + |dmin m|) |y| for Q4_K and Q5_K (found by decoding copies of
 * x with dmin, then d, zeroed), |d sc (q - 32)| |y| for Q6_K. Each kernel
 * rounds d dy sumq and dmin dy summ separately; where they cancel (a
 * sub-block with an outlier) the rounding error is relative to these
 * parts, not to sum |x y|. Other types: sum |x y| of the dequantized rows. */
static double k_mag(int type, const void *xq, const void *yq, int64_t n) {
    if (g_ref[type].dot_type != SK_TYPE_Q8_K)
        return 0;
    const size_t rs = sk_row_size(type, n), bs = g_ref[type].size;
    char *tmp = xmalloc(rs);
    float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4), *yd = xmalloc((size_t)n * 4);
    g_ref[SK_TYPE_Q8_K].to_float(yq, yd, n);
    memset(b, 0, (size_t)n * 4);
    memcpy(tmp, xq, rs);
    if (type != SK_TYPE_Q6_K) {
        for (size_t i = 0; i < rs; i += bs)
            memset(tmp + i + offsetof(sk_block_q4_K, dmin), 0, 2);
        g_ref[type].to_float(tmp, a, n);
        memcpy(tmp, xq, rs);
        for (size_t i = 0; i < rs; i += bs)
            memset(tmp + i + offsetof(sk_block_q4_K, d), 0, 2);
        g_ref[type].to_float(tmp, b, n);
    } else {
        g_ref[type].to_float(tmp, a, n);
    }
    double mag = 0;
    for (int64_t i = 0; i < n; i++)
        mag += (fabs(a[i]) + fabs(b[i])) * fabs(yd[i]);
    free(tmp);
    free(a);
    free(b);
    free(yd);
    return mag;
}

/* Kernels that repeat the reference's float operations in its order (the
 * integer block sums being exact), so that every result is the
 * reference's bits: Q5_0 (quant_avx2.c, every set), and the AVX2 K-quant
 * kernels (quant_k_simd.h and quant_k_avx2.c's widened gemm). */
static int bit_exact(const char *isa, int type) {
    return type == SK_TYPE_Q5_0 || (!strcmp(isa, "avx2") && g_ref[type].dot_type == SK_TYPE_Q8_K);
}

static void check_dot(int type, int64_t n, int kx, int ky, uint64_t seed) {
    const sk_type_traits *rt = &g_ref[type], *rd = &g_ref[rt->dot_type];
    float *x = xmalloc((size_t)n * 4), *y = xmalloc((size_t)n * 4);
    float *xd = xmalloc((size_t)n * 4), *yd = xmalloc((size_t)n * 4);
    void *xq = xmalloc(sk_row_size(type, n)), *yq = xmalloc(sk_row_size(rt->dot_type, n));
    gen(x, n, kx, seed);
    gen(y, n, ky, seed + 100);
    rt->from_float(x, xq, n);
    rd->from_float(y, yq, n);
    rt->to_float(xq, xd, n);
    rd->to_float(yq, yd, n);
    double exact = 0, mag = 0, exact_f = 0, act_bound = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)xd[i] * yd[i];
        mag += fabs((double)xd[i] * yd[i]);
        exact_f += (double)xd[i] * y[i];
        act_bound += fabs(xd[i]) * act_err(rt->dot_type, y, i, n);
    }
    int64_t terms = rt->blck == 1 ? n : n / rt->blck;
    float vr;
    rt->vec_dot(n, &vr, xq, yq);
    /* 4a: the reference equals the dot of the dequantized rows */
    double tol = dot_tol(exact, mag, terms) + min_term_slack(type, xq, yq, n);
    if (fabs(vr - exact) > tol)
        fail_msg("%s ref vec_dot %g vs dequantized dot %g (tol %g) n=%lld kinds %d/%d", rt->name, vr, exact, tol,
                 (long long)n, kx, ky);
    /* 4b: and approximates the dot with the float activations */
    if (fabs(vr - exact_f) > tol + act_bound * 1.01)
        fail_msg("%s ref vec_dot %g vs float dot %g (bound %g)", rt->name, vr, exact_f, tol + act_bound);
    /* 2: every instruction set equals the reference (Q5_0: its bits) */
    for (int a = 1; a < g_n_isa; a++) {
        float vi = NAN;
        g_isa[a].t[type].vec_dot(n, &vi, xq, yq);
        if (bit_exact(g_isa[a].name, type) && memcmp(&vi, &vr, sizeof vi) != 0)
            fail_msg("%s %s vec_dot %.9g, reference %.9g: not its bits (n=%lld kinds %d/%d)", g_isa[a].name,
                     rt->name, vi, vr, (long long)n, kx, ky);
        double t2 = dot_tol(vr, fmax(mag, k_mag(type, xq, yq, n)), terms);
        if (!(fabs(vi - vr) <= t2))
            fail_msg("%s %s vec_dot %.9g vs reference %.9g (tol %g) n=%lld kinds %d/%d seed %llu", g_isa[a].name,
                     rt->name, vi, vr, t2, (long long)n, kx, ky, (unsigned long long)seed);
    }
    free(x);
    free(y);
    free(xd);
    free(yd);
    free(xq);
    free(yq);
}

static void test_vec_dot(void **state) {
    (void)state;
    build_tables();
    for (int ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        int type = k_weight_types[ti];
        for (int m = 0; m < 5; m++)
            for (int kx = 0; kx < D_COUNT; kx++)
                for (int ky = 0; ky < D_COUNT; ky += 1 + (kx & 1))
                    for (uint64_t seed = 1; seed <= 2; seed++)
                        check_dot(type, unit_of(type) * k_mults[m], kx, ky, seed);
    }
}

/* ---- 3. gemm ---------------------------------------------------------------------------- */

#define SENTINEL 12345.5f

static void check_gemm(const isa_table *isa, int type, int64_t n, int nr, int nc, uint64_t seed) {
    const sk_type_traits *rt = &g_ref[type], *rd = &g_ref[rt->dot_type];
    const size_t xrs = sk_row_size(type, n), yrs = sk_row_size(rt->dot_type, n);
    const size_t xs = xrs + 12, ys = yrs + 20, ss = (size_t)nr + 3; /* odd strides, 4-aligned */
    char *xq = xmalloc(xs * nr), *yq = xmalloc(ys * nc);
    float *tmp = xmalloc((size_t)n * 4), *s = xmalloc(ss * nc * 4);
    memset(xq, 0x5a, xs * nr);
    memset(yq, 0x5a, ys * nc);
    for (int r = 0; r < nr; r++) {
        gen(tmp, n, r % D_COUNT, seed + r);
        rt->from_float(tmp, xq + r * xs, n);
    }
    for (int c = 0; c < nc; c++) {
        gen(tmp, n, (c + 1) % D_COUNT == D_ZERO ? D_GAUSS : (c + 1) % D_COUNT, seed + 50 + c);
        rd->from_float(tmp, yq + c * ys, n);
    }
    for (size_t i = 0; i < ss * nc; i++)
        s[i] = SENTINEL;
    isa->t[type].gemm(n, nr, nc, xq, xs, yq, ys, s, ss);
    float *xd = xmalloc((size_t)n * 4), *yd = xmalloc((size_t)n * 4);
    for (int c = 0; c < nc; c++) {
        rd->to_float(yq + c * ys, yd, n);
        for (int r = 0; r < nr; r++) {
            float v;
            rt->vec_dot(n, &v, xq + r * xs, yq + c * ys);
            rt->to_float(xq + r * xs, xd, n);
            double mag = 0;
            for (int64_t i = 0; i < n; i++)
                mag += fabs((double)xd[i] * yd[i]);
            mag = fmax(mag, k_mag(type, xq + r * xs, yq + c * ys, n));
            double tol = dot_tol(v, mag, rt->blck == 1 ? n : n / rt->blck);
            float g = s[(size_t)c * ss + r], vi;
            /* the same set's vec_dot: its bits (decode and pre-fill agree) */
            isa->t[type].vec_dot(n, &vi, xq + r * xs, yq + c * ys);
            if (memcmp(&g, &vi, sizeof g) != 0)
                fail_msg("%s %s gemm n=%lld %dx%d: s[%d][%d] = %.9g, its vec_dot %.9g: not its bits", isa->name,
                         rt->name, (long long)n, nr, nc, c, r, g, vi);
            if (bit_exact(isa->name, type) && memcmp(&g, &v, sizeof g) != 0)
                fail_msg("%s %s gemm n=%lld %dx%d: s[%d][%d] = %.9g, reference vec_dot %.9g: not its bits", isa->name,
                         rt->name, (long long)n, nr, nc, c, r, g, v);
            if (!(fabs(g - v) <= tol))
                fail_msg("%s %s gemm n=%lld %dx%d: s[%d][%d] = %.9g, vec_dot %.9g (tol %g)", isa->name, rt->name,
                         (long long)n, nr, nc, c, r, g, v, tol);
        }
        for (size_t r = (size_t)nr; r < ss; r++) /* padding untouched */
            assert_true(s[(size_t)c * ss + r] == SENTINEL);
    }
    free(xq);
    free(yq);
    free(tmp);
    free(s);
    free(xd);
    free(yd);
}

static void test_gemm(void **state) {
    (void)state;
    build_tables();
    for (int a = 0; a < g_n_isa; a++)
        for (int ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            int type = k_weight_types[ti];
            assert_non_null(g_isa[a].t[type].gemm);
            for (int m = 0; m < 3; m++) {
                int64_t n = unit_of(type) * (int64_t[]){1, 3, 7}[m];
                for (int nr = 1; nr <= 5; nr++)
                    for (int nc = 1; nc <= 5; nc++)
                        check_gemm(&g_isa[a], type, n, nr, nc, (uint64_t)(nr * 10 + nc));
                check_gemm(&g_isa[a], type, n, 13, 11, 99); /* several full tiles and edges */
            }
            /* a long row: the AVX2 Q4_0/Q5_0/Q8_0 gemm widens 64 blocks at a time
             * and adds the chunks (2 full + a partial one here) */
            check_gemm(&g_isa[a], type, unit_of(type) * 150, 6, 7, 77);
            /* the AVX2 Q5_0 gemm's 8-row groups and 64-column chunks, with
             * row and column tails, over 3 block chunks */
            check_gemm(&g_isa[a], type, unit_of(type) * 70, 21, 70, 78);
        }
}

/* ---- 3b. K-quant kernels: real row lengths, raw block bytes ------------------------------
 * The K-quant SIMD kernels (quant_k_avx2.c, quant_k_avx512.c) against the
 * reference on the row lengths of real models (256 .. 11008), vec_dot and
 * gemm, with three kinds of data: rows made by from_float (the shapes
 * above); random block bytes, which reach what the simple test quantizer
 * never makes (6-bit scales and mins up to 63, negative d, negative Q6_K
 * scales down to -128, every q, Q8_K q = -128); and an all-extremes block
 * (every q and scale at its largest magnitude, y = -128) at the edge of
 * the kernels' i16 range argument. The tolerance is dot_tol over the
 * magnitudes of both parts of x (d sc q and dmin m, which may cancel). */

static const int64_t k_krows[] = {256, 512, 768, 2816, 4096, 11008};
#define N_KROWS ((int)(sizeof k_krows / sizeof k_krows[0]))

enum { KD_FIT, KD_RAW, KD_EXTREME, KD_COUNT };

/* f16 of magnitude in [lo, 4 lo), random sign where neg */
static uint16_t rand_h(uint64_t *s, float lo, int neg) {
    float v = lo * (1 + 3 * rng_unif(s));
    return sk_f32_to_f16(neg && (rng_next(s) & 1) ? -v : v);
}

/* one row of n elements of K-quant type `type` */
static void k_make_x(int type, int64_t n, int kind, uint64_t seed, void *xq) {
    const size_t bs = g_ref[type].size;
    uint8_t *xb = xq;
    uint64_t s = seed * 7919 + (uint64_t)kind;
    if (kind == KD_FIT) {
        float *f = xmalloc((size_t)n * 4);
        gen(f, n, (int)(seed % D_COUNT), seed);
        g_ref[type].from_float(f, xq, n);
        free(f);
        return;
    }
    for (size_t i = 0; i < (size_t)(n / SK_QK_K) * bs; i++)
        xb[i] = kind == KD_EXTREME ? 0xff : (uint8_t)rng_next(&s);
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        uint8_t *blk = xb + (size_t)b * bs;
        uint16_t d = rand_h(&s, 0x1p-8f, kind == KD_RAW), dmin = rand_h(&s, 0x1p-8f, kind == KD_RAW);
        if (type == SK_TYPE_Q6_K) {
            memcpy(blk + offsetof(sk_block_q6_K, d), &d, 2);
            if (kind == KD_EXTREME)
                memset(blk + offsetof(sk_block_q6_K, scales), 0x80, 16); /* -128 */
        } else { /* Q4_K and Q5_K share the head: d, dmin, scales */
            memcpy(blk + offsetof(sk_block_q4_K, d), &d, 2);
            memcpy(blk + offsetof(sk_block_q4_K, dmin), &dmin, 2);
        }
    }
}

/* one Q8_K row: from_float of shaped data, or random q (-128 included) with
 * consistent bsums, or all -128 */
static void k_make_y(int64_t n, int kind, uint64_t seed, sk_block_q8_K *y) {
    uint64_t s = seed * 104729 + (uint64_t)kind;
    if (kind == KD_FIT) {
        float *f = xmalloc((size_t)n * 4);
        gen(f, n, (int)((seed + 1) % D_COUNT), seed + 100);
        g_ref[SK_TYPE_Q8_K].from_float(f, y, n);
        free(f);
        return;
    }
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        y[b].d = 0x1p-7f * (1 + 3 * rng_unif(&s)) * ((rng_next(&s) & 1) ? -1 : 1);
        for (int j = 0; j < SK_QK_K; j++)
            y[b].qs[j] = kind == KD_EXTREME ? -128 : (int8_t)(uint8_t)rng_next(&s);
        for (int g = 0; g < SK_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[b].qs[16 * g + l];
            y[b].bsums[g] = (int16_t)sum;
        }
    }
}

/* NR weight rows x NC activation rows of one kind: every instruction set's
 * vec_dot (each pair) and gemm (the whole tile: NR = 19 covers a full group
 * of 16 rows (AVX-512), two of 8 (AVX2) and an edge; NC = 11 a full 8-column
 * tile, two of 4 and an edge) against the reference vec_dot */
static void check_k(int type, int64_t n, int kind, uint64_t seed, int64_t *n_exact, int64_t *n_all) {
    enum { NR = 19, NC = 11, SS = NR + 2 };
    const sk_type_traits *rt = &g_ref[type];
    const size_t xs = sk_row_size(type, n) + 6, ys = sk_row_size(SK_TYPE_Q8_K, n) + 4; /* odd strides */
    char *xq = xmalloc(xs * NR), *yq = xmalloc(ys * NC);
    for (int r = 0; r < NR; r++)
        k_make_x(type, n, kind, seed * 31 + (uint64_t)r, xq + r * xs);
    for (int c = 0; c < NC; c++)
        k_make_y(n, kind, seed * 37 + (uint64_t)c, (sk_block_q8_K *)(yq + c * ys));
    float ref[NC][NR];
    double tol[NC][NR];
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < NR; r++) {
            rt->vec_dot(n, &ref[c][r], xq + r * xs, yq + c * ys);
            tol[c][r] = dot_tol(ref[c][r], k_mag(type, xq + r * xs, yq + c * ys, n), n / SK_QK_K);
            assert_true(isfinite(ref[c][r]));
        }
    for (int a = 1; a < g_n_isa; a++) {
        const sk_type_traits *it = &g_isa[a].t[type];
        float s[NC * SS];
        for (int i = 0; i < NC * SS; i++)
            s[i] = SENTINEL;
        it->gemm(n, NR, NC, xq, xs, yq, ys, s, SS);
        for (int c = 0; c < NC; c++)
            for (int r = 0; r < NR; r++) {
                float v = NAN;
                it->vec_dot(n, &v, xq + r * xs, yq + c * ys);
                if (!(fabs(v - ref[c][r]) <= tol[c][r]))
                    fail_msg("%s %s vec_dot n=%lld kind %d seed %llu (%d,%d): %.9g vs reference %.9g (tol %g)",
                             g_isa[a].name, rt->name, (long long)n, kind, (unsigned long long)seed, r, c, v,
                             ref[c][r], tol[c][r]);
                float g = s[c * SS + r];
                if (bit_exact(g_isa[a].name, type) && (memcmp(&v, &ref[c][r], 4) || memcmp(&g, &ref[c][r], 4)))
                    fail_msg("%s %s n=%lld kind %d seed %llu (%d,%d): vec_dot %.9g, gemm %.9g, reference %.9g: not its bits",
                             g_isa[a].name, rt->name, (long long)n, kind, (unsigned long long)seed, r, c, v, g,
                             ref[c][r]);
                if (!(fabs(g - ref[c][r]) <= tol[c][r]))
                    fail_msg("%s %s gemm n=%lld kind %d seed %llu s[%d][%d]: %.9g vs reference %.9g (tol %g)",
                             g_isa[a].name, rt->name, (long long)n, kind, (unsigned long long)seed, c, r, g,
                             ref[c][r], tol[c][r]);
                *n_exact += v == ref[c][r];
                *n_all += 1;
            }
        for (int c = 0; c < NC; c++) /* padding untouched */
            for (int r = NR; r < SS; r++)
                assert_true(s[c * SS + r] == SENTINEL);
    }
    free(xq);
    free(yq);
}

static void test_k_quant_simd(void **state) {
    (void)state;
    build_tables();
    static const int types[] = {SK_TYPE_Q4_K, SK_TYPE_Q5_K, SK_TYPE_Q6_K};
    for (int ti = 0; ti < 3; ti++) {
        int64_t n_exact = 0, n_all = 0;
        for (int m = 0; m < N_KROWS; m++)
            for (int kind = 0; kind < KD_COUNT; kind++)
                for (uint64_t seed = 1; seed <= (kind == KD_EXTREME ? 1u : 3u); seed++)
                    check_k(types[ti], k_krows[m], kind, seed, &n_exact, &n_all);
        if (g_n_isa > 1)
            print_message("  %s SIMD vec_dot: %lld of %lld bit-equal to the reference\n", g_ref[types[ti]].name,
                          (long long)n_exact, (long long)n_all);
    }
}

/* The all-extremes block by hand: Q4_K with sc = m = 63, q = 15, d = dmin
 * = 1 against y = -128 (bsums -2048), dy = 1: per sub-block
 * 63 * 15 * (-128 * 32) - 63 * (-4096) = -3870720 + 258048, times 8. */
static void test_hand_k_extreme(void **state) {
    (void)state;
    build_tables();
    sk_block_q4_K x;
    memset(&x, 0xff, sizeof x);
    x.d = x.dmin = 0x3c00;
    sk_block_q8_K y;
    y.d = 1.0f;
    memset(y.qs, 0x80, sizeof y.qs);
    for (int g = 0; g < 16; g++)
        y.bsums[g] = -2048;
    for (int a = 0; a < g_n_isa; a++) {
        float v = 0;
        g_isa[a].t[SK_TYPE_Q4_K].vec_dot(256, &v, &x, &y);
        assert_true(v == 8.0f * (-3870720.0f + 258048.0f));
    }
    /* Q6_K: q = 63 (x = 31 d sc), scales -128, d = 1: 16 * (-128) * 31 * (-128) * 16 */
    sk_block_q6_K x6;
    memset(&x6, 0xff, sizeof x6);
    memset(x6.scales, 0x80, sizeof x6.scales);
    x6.d = 0x3c00;
    for (int a = 0; a < g_n_isa; a++) {
        float v = 0;
        g_isa[a].t[SK_TYPE_Q6_K].vec_dot(256, &v, &x6, &y);
        assert_true(v == 16.0f * 128 * 31 * 128 * 16);
    }
}

/* SIMD Q8_K from_float is bit-identical to the reference: same d, q and
 * bsums, on every data shape, rounding ties (x = k / 2 with iscale = -1),
 * and a largest magnitude that appears with both signs (the first one
 * gives the sign of max, hence of every q). */
static void test_q8_K_from_float_simd(void **state) {
    (void)state;
    build_tables();
    static const int64_t ns[] = {256, 512, 768, 2816, 4096};
    for (int a = 1; a < g_n_isa; a++) {
        const sk_type_traits *it = &g_isa[a].t[SK_TYPE_Q8_K], *rt = &g_ref[SK_TYPE_Q8_K];
        if (it->from_float == rt->from_float)
            continue;
        for (int m = 0; m < 5; m++)
            for (int kind = 0; kind < D_COUNT + 2; kind++)
                for (uint64_t seed = 1; seed <= 3; seed++) {
                    int64_t n = ns[m], nb = n / SK_QK_K;
                    float *x = xmalloc((size_t)n * 4);
                    sk_block_q8_K *qi = xmalloc((size_t)nb * sizeof *qi), *qr = xmalloc((size_t)nb * sizeof *qr);
                    if (kind < D_COUNT) {
                        gen(x, n, kind, seed);
                    } else if (kind == D_COUNT) { /* ties: max = -127 gives iscale = 1 */
                        for (int64_t i = 0; i < n; i++)
                            x[i] = i % 256 == 7 ? -127.0f : (float)((i * 5 + (int64_t)seed) % 15 - 7) * 0.5f;
                    } else { /* +-amax both present, at seed-dependent places */
                        gen(x, n, D_GAUSS, seed);
                        for (int64_t b = 0; b < nb; b++) {
                            float s = (seed & 1) ? 1 : -1;
                            x[b * 256 + (int64_t)(seed * 37 % 256)] = 9.0f * s;
                            x[b * 256 + (int64_t)(seed * 91 % 256)] = -9.0f * s;
                        }
                    }
                    memset(qi, 0x5a, (size_t)nb * sizeof *qi);
                    memset(qr, 0x5a, (size_t)nb * sizeof *qr);
                    it->from_float(x, qi, n);
                    rt->from_float(x, qr, n);
                    for (int64_t b = 0; b < nb; b++)
                        if (memcmp(&qi[b], &qr[b], sizeof qi[b]) != 0)
                            fail_msg("%s Q8_K from_float differs from reference: n=%lld kind %d seed %llu block %lld",
                                     g_isa[a].name, (long long)n, kind, (unsigned long long)seed, (long long)b);
                    free(x);
                    free(qi);
                    free(qr);
                }
    }
}

/* ---- 5. f16 / bf16 ------------------------------------------------------------------------ */

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_f16_all(void **state) {
    (void)state;
    build_tables();
    static uint16_t h[1 << 16];
    static float f[1 << 16], g[1 << 16];
    for (uint32_t i = 0; i < (1u << 16); i++) {
        h[i] = (uint16_t)i;
        f[i] = sk_f16_to_f32((uint16_t)i);
        int nan = ((i >> 10) & 31) == 31 && (i & 1023);
        assert_true(isnan(f[i]) == (nan != 0));
        if (!nan) {
            assert_int_equal(sk_f32_to_f16(f[i]), i);
            assert_memory_equal(&sk_f16_table[i], &f[i], 4);
        }
        /* bf16: every bit pattern except NaN payloads survives */
        float b = sk_bf16_to_f32((uint16_t)i);
        if (!isnan(b))
            assert_int_equal(sk_f32_to_bf16(b), i);
        else
            assert_true(isnan(sk_bf16_to_f32(sk_f32_to_bf16(b))));
    }
    /* hand-checked values */
    assert_true(sk_f16_to_f32(0x3c00) == 1.0f);
    assert_true(sk_f16_to_f32(0xc000) == -2.0f);
    assert_true(sk_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(sk_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(sk_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(sk_f16_to_f32(0x0400) == 0x1p-14f);
    assert_true(isinf(sk_f16_to_f32(0xfc00)) && sk_f16_to_f32(0xfc00) < 0);
    assert_true(sk_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(sk_bf16_to_f32(0xc0a0) == -5.0f);
    /* every instruction set's row conversion agrees, bit for bit except NaN payload */
    for (int a = 0; a < g_n_isa; a++) {
        g_isa[a].t[SK_TYPE_F16].to_float(h, g, 1 << 16);
        for (uint32_t i = 0; i < (1u << 16); i++)
            if (isnan(f[i]))
                assert_true(isnan(g[i]));
            else
                assert_memory_equal(&g[i], &f[i], 4);
    }
    sk_f16_to_f32_row(h + 3, g, 1001); /* dispatched, odd length */
    assert_memory_equal(g, f + 3, 4 * 1000);
}

static void test_f16_rounding(void **state) {
    (void)state;
    build_tables();
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},             /* halfway 1 / 1+2^-10: even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},         /* halfway 0x3c01 / 0x3c02: even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  /* just above halfway */
        {-1.0f - 0x1p-11f, 0xbc00},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},                   /* below halfway to 65536 */
        {65520.0f, 0x7c00},                    /* halfway, ties to even: inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {0x1p-14f, 0x0400},                    /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},         /* halfway 0x3ff / 0x400: even */
        {0x1p-14f - 0x1p-24f, 0x03ff},
        {0x1p-24f, 0x0001},                    /* smallest subnormal */
        {0x1p-25f, 0x0000},                    /* halfway 0 / 1: even */
        {0x1.000002p-25f, 0x0001},             /* just above */
        {3 * 0x1p-25f, 0x0002},                /* halfway 1 / 2: even */
        {5 * 0x1p-25f, 0x0002},                /* halfway 2 / 3: even */
        {-0x1p-24f, 0x8001},
        {1e-40f, 0x0000},                      /* float subnormal */
        {-0.0f, 0x8000},
        {0.0f, 0x0000},
        {0.1f, 0x2e66},
        {3.14159265f, 0x4248},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = sk_f32_to_f16(cases[i].f);
        if (got != cases[i].h)
            fail_msg("f32_to_f16(%a) = %04x, expected %04x", cases[i].f, got, cases[i].h);
    }
    assert_int_equal(sk_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(sk_f32_to_f16(-INFINITY), 0xfc00);
    uint16_t hn = sk_f32_to_f16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    assert_int_equal(sk_f32_to_f16(bits_f(0x7f800001)) & 0x7e00, 0x7e00); /* signalling NaN made quiet */

    /* bf16 edges */
    assert_int_equal(sk_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(sk_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* halfway: even */
    assert_int_equal(sk_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* halfway: even */
    assert_int_equal(sk_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    assert_int_equal(sk_f32_to_bf16(bits_f(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
    assert_int_equal(sk_f32_to_bf16(bits_f(0x00000001)), 0x0000); /* float subnormal kept, rounds to 0 */
    assert_int_equal(sk_f32_to_bf16(bits_f(0x00018000)), 0x0002); /* subnormal tie to even */
    assert_int_equal(sk_f32_to_bf16(bits_f(0x7f800001)), 0x7fc0); /* NaN made quiet */

    /* scalar f32 -> f16 equals every instruction set's row conversion
     * (F16C's vcvtps2ph where present) on random bit patterns, NaN included */
    enum { N = 1 << 20 };
    float *x = xmalloc(N * 4);
    uint16_t *h = xmalloc(N * 2);
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)rng_next(&s);
        if (i & 1) /* half of them near the f16 range */
            u = (u & 0x81ffffffu) | ((uint32_t)(100 + (u >> 25) % 45) << 23);
        x[i] = bits_f(u);
    }
    for (int a = 0; a < g_n_isa; a++) {
        g_isa[a].t[SK_TYPE_F16].from_float(x, h, N - 3);
        for (int i = 0; i < N - 3; i++)
            if (h[i] != sk_f32_to_f16(x[i]))
                fail_msg("%s f32->f16 of %08x: %04x vs scalar %04x", g_isa[a].name, (unsigned)f_bits(x[i]),
                         h[i], sk_f32_to_f16(x[i]));
    }
    sk_f32_to_f16_row(x, h, 77);
    for (int i = 0; i < 77; i++)
        assert_int_equal(h[i], sk_f32_to_f16(x[i]));
    free(x);
    free(h);
}

/* ---- 6. hand-built blocks ------------------------------------------------------------------ */

static void decode_all(int type, const void *blk, int64_t n, float *out) {
    for (int a = 0; a < g_n_isa; a++) {
        float tmp[SK_QK_K];
        g_isa[a].t[type].to_float(blk, tmp, n);
        if (a == 0)
            memcpy(out, tmp, (size_t)n * 4);
        else
            assert_memory_equal(tmp, out, (size_t)n * 4);
    }
}

static void test_hand_q4_1(void **state) {
    (void)state;
    build_tables();
    /* d = 0.5 (f16 0x3800), m = -1 (0xbc00); byte j = j | (15 - j) << 4:
     * element j < 16 is j * 0.5 - 1, element 16 + j is (15 - j) * 0.5 - 1 */
    uint8_t blk[20] = {0x00, 0x38, 0x00, 0xbc};
    for (int j = 0; j < 16; j++)
        blk[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    static const float want[32] = {-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0,
                                   4.5,  5.0,  5.5, 6.0, 6.5, 6.5, 6.0, 5.5, 5.0, 4.5, 4.0,
                                   3.5,  3.0,  2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0};
    float got[32];
    decode_all(SK_TYPE_Q4_1, blk, 32, got);
    for (int j = 0; j < 32; j++)
        assert_true(got[j] == want[j]);

    /* and its dot with a hand-built Q8_1 block: qy = 1 everywhere, dy = 1,
     * s = 32: sum(q) = 2 * (0 + ... + 15) = 240, so 0.5 * 240 + (-1) * 32 = 88 */
    uint8_t yb[36] = {0x00, 0x3c, 0x00, 0x50}; /* d = 1, s = 32 (0x5000) */
    memset(yb + 4, 1, 32);
    for (int a = 0; a < g_n_isa; a++) {
        float v = 0;
        g_isa[a].t[SK_TYPE_Q4_1].vec_dot(32, &v, blk, yb);
        assert_true(v == 88.0f);
        g_isa[a].t[SK_TYPE_Q4_1].gemm(32, 1, 1, blk, 20, yb, 36, &v, 1);
        assert_true(v == 88.0f);
    }
}

static void test_hand_q8_0(void **state) {
    (void)state;
    build_tables();
    /* d = 0.25 (0x3400); qs = 0, 1, -1, 127, -128, then j - 16 for j >= 5 */
    uint8_t blk[34] = {0x00, 0x34, 0x00, 0x01, 0xff, 0x7f, 0x80};
    for (int j = 5; j < 32; j++)
        blk[2 + j] = (uint8_t)(int8_t)(j - 16);
    static const float want[32] = {0.0,   0.25,  -0.25, 31.75, -32.0, -2.75, -2.5, -2.25, -2.0, -1.75, -1.5,
                                   -1.25, -1.0,  -0.75, -0.5,  -0.25, 0.0,   0.25, 0.5,   0.75, 1.0,   1.25,
                                   1.5,   1.75,  2.0,   2.25,  2.5,   2.75,  3.0,  3.25,  3.5,  3.75};
    float got[32];
    decode_all(SK_TYPE_Q8_0, blk, 32, got);
    for (int j = 0; j < 32; j++)
        assert_true(got[j] == want[j]);
}

static void test_hand_q4_K(void **state) {
    (void)state;
    build_tables();
    /* d = 1 (0x3c00), dmin = 0.5 (0x3800). Sub-block scales and mins
     *   sc = 1 2 3 4 5 6 7 40,  m = 0 2 4 6 8 10 33 14
     * packed by hand (j >= 4 keep their low 4 bits in bytes 8..11 and their
     * top 2 bits in bits 6..7 of bytes j-4 (sc) and j (m)):
     *   bytes 0..3  = 1, 2, 3, 4 | 2 << 6 (sc7 = 40 = 0b10'1000)
     *   bytes 4..7  = 0, 2, 4 | 2 << 6 (m6 = 33 = 0b10'0001), 6
     *   bytes 8..11 = 5 | 8 << 4, 6 | 10 << 4, 7 | 1 << 4, 8 | 14 << 4
     * qs[32k + l] = (l & 15) | ((l + k) & 15) << 4: sub-block 2k uses the low
     * nibble, 2k + 1 the high one; x = sc * q - 0.5 * m. */
    sk_block_q4_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00;
    b.dmin = 0x3800;
    static const uint8_t sc_bytes[12] = {1, 2, 3, 0x84, 0, 2, 0x84, 6, 0x85, 0xa6, 0x17, 0xe8};
    memcpy(b.scales, sc_bytes, 12);
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++)
            b.qs[32 * k + l] = (uint8_t)((l & 15) | (((l + k) & 15) << 4));
    static const int sc[8] = {1, 2, 3, 4, 5, 6, 7, 40}, mn[8] = {0, 2, 4, 6, 8, 10, 33, 14};
    float got[256];
    decode_all(SK_TYPE_Q4_K, &b, 256, got);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            int q = (j & 1) ? ((l + j / 2) & 15) : (l & 15);
            assert_true(got[32 * j + l] == (float)(sc[j] * q) - 0.5f * (float)mn[j]);
        }
    /* a few spelled out */
    assert_true(got[1] == 1.0f);      /* j0: 1 * 1 - 0 */
    assert_true(got[32] == -1.0f);    /* j1, q = 0: -0.5 * 2 */
    assert_true(got[223] == 88.5f);   /* j6, l31, q = 15: 7 * 15 - 16.5 */
    assert_true(got[255] == 73.0f);   /* j7, l31, q = (31 + 3) & 15 = 2: 80 - 7 */
    /* dot with a Q8_K block of ones (d = 1, bsums = 16): sum of the above */
    sk_block_q8_K y;
    y.d = 1.0f;
    memset(y.qs, 1, sizeof y.qs);
    for (int g = 0; g < 16; g++)
        y.bsums[g] = 16;
    double want = 0;
    for (int i = 0; i < 256; i++)
        want += got[i];
    for (int a = 0; a < g_n_isa; a++) {
        float v;
        g_isa[a].t[SK_TYPE_Q4_K].vec_dot(256, &v, &b, &y);
        assert_true(v == (float)want);
    }
}

/* ---- the table itself ------------------------------------------------------------------------ */

static void test_traits(void **state) {
    (void)state;
    build_tables();
    const char *isa = sk_cpu_isa();
    assert_true(sk_isa_from_name(isa) >= 0);
    if (!getenv("SINKLLM_SCALAR") && !getenv("SINKLLM_ISA"))
        assert_string_equal(isa, g_isa[g_n_isa - 1].name);
    print_message("  dispatch: %s; instruction sets tested:", isa);
    for (int a = 0; a < g_n_isa; a++)
        print_message(" %s", g_isa[a].name);
    print_message("\n");
    for (int t = 0; t < SK_TYPE_COUNT; t++) {
        const sk_type_traits *r = sk_type_get_ref(t), *s = sk_type_get(t);
        assert_true((r == NULL) == (s == NULL));
        if (!r)
            continue;
        assert_non_null(r->to_float);
        assert_non_null(r->from_float);
        assert_true((r->vec_dot != NULL) == (r->gemm != NULL));
        assert_true((r->vec_dot != NULL) == (r->is_weight != 0));
        assert_true((s->vec_dot != NULL) == (s->gemm != NULL));
        if (r->vec_dot) {
            const sk_type_traits *d = sk_type_get(r->dot_type);
            assert_non_null(d);
            assert_non_null(d->from_float);
            assert_int_equal(d->blck, r->blck == 1 ? 1 : r->blck);
        }
    }
    assert_null(sk_type_get(4));
    assert_null(sk_type_get(-1));
    assert_null(sk_type_get(SK_TYPE_COUNT));
    assert_int_equal(sk_row_size(SK_TYPE_Q4_1, 64), 40);
    assert_int_equal(sk_row_size(SK_TYPE_Q4_1, 576), 360);
    assert_int_equal(sk_row_size(SK_TYPE_Q8_0, 32), 34);
    assert_int_equal(sk_row_size(SK_TYPE_Q4_K, 512), 288);
    assert_int_equal(sk_row_size(SK_TYPE_Q6_K, 256), 210);
    assert_int_equal(sk_row_size(SK_TYPE_Q8_K, 256), 292);
    assert_int_equal(sk_row_size(SK_TYPE_F32, 3), 12);
    assert_int_equal(sk_row_size(SK_TYPE_BF16, 3), 6);
    assert_int_equal(sk_row_size(SK_TYPE_Q4_1, 33), 0);
    assert_int_equal(sk_row_size(SK_TYPE_Q4_1, -32), 0);
    assert_int_equal(sk_row_size(5, 32), 0);
    assert_int_equal(sk_row_size(SK_TYPE_F32, INT64_MAX), 0); /* 4 * n overflows size_t */
    assert_int_equal(sk_row_size(SK_TYPE_Q8_0, 0), 0 * 34);
}

/* Each tier: the CPU has it and its table is among those every test above
 * runs, the dispatcher's fill; or it is reported SKIPPED (util_tiers.h). */
static void test_tiers(void **state) {
    build_tables();
    sk_isa tier = util_tier(state, "test_quant");
    int found = 0;
    for (int a = 1; a < g_n_isa; a++)
        if (!strcmp(g_isa[a].name, sk_isa_name(tier))) {
            sk_type_traits t[SK_TYPE_COUNT];
            sk_quant_fill(t, tier);
            for (int k = 0; k < SK_TYPE_COUNT; k++)
                assert_true(t[k].vec_dot == g_isa[a].t[k].vec_dot && t[k].gemm == g_isa[a].t[k].gemm &&
                            t[k].from_float == g_isa[a].t[k].from_float);
            found = 1;
        }
    assert_true(found);
}

/* SINKLLM_SCALAR=1 in a fresh process selects the reference */
static void test_force_scalar(void **state) {
    (void)state;
    char exe[4096], cmd[4200];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        skip();
    exe[len] = 0;
    snprintf(cmd, sizeof cmd, "env -u SINKLLM_ISA SINKLLM_SCALAR=1 '%s' --print-isa", exe);
    FILE *p = popen(cmd, "r");
    if (!p)
        skip();
    char buf[64] = "";
    char *ok = fgets(buf, sizeof buf, p);
    pclose(p);
    assert_non_null(ok);
    assert_string_equal(buf, "scalar\n");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print-isa")) {
        printf("%s\n", sk_cpu_isa());
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),        UTIL_TIER_TESTS(test_tiers),
        cmocka_unit_test(test_force_scalar),
        cmocka_unit_test(test_f16_all),       cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_hand_q4_1),     cmocka_unit_test(test_hand_q8_0),
        cmocka_unit_test(test_hand_q4_K),     cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_to_float_simd), cmocka_unit_test(test_act_quant_simd),
        cmocka_unit_test(test_vec_dot),       cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_k_quant_simd),  cmocka_unit_test(test_hand_k_extreme),
        cmocka_unit_test(test_q8_K_from_float_simd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
