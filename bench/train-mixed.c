/* train-mixed.c - does mixed precision speed up the trainer on this CPU?
 * (issue 15 point 1: "mixed-precision where it helps speed"). Not part of
 * make test. Build:
 *   cc -O3 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude bench/train-mixed.c build/libsinkllm.a -lm -pthread
 * Usage: train-mixed            (one thread; run it on a quiet core)
 *
 * The trainer's step is its matrix products (83% of a step's samples in
 * `perf` at the experiment's shape) and they are bound by the FMA pipes,
 * not by memory: a packed (TG_KC x TG_NR) B micro-panel sits in L1. Mixed
 * precision (BF16 or FP16 operands, F32 accumulation) can only speed that
 * up where the CPU multiplies the narrow type faster than F32 (AVX512-BF16's
 * vdpbf16ps, AMX tiles) or where the operands' bytes are the bound. AVX2 has
 * no narrow-type multiply: the narrow operand must be widened to F32 before
 * the same FMAs. This measures what that costs in the trainer's own 6 x 16
 * micro-kernel, over one packed block (TG_MC x TG_KC of A, TG_KC x TG_NC of
 * B, the block the real loop nest runs), in three forms of the B panel:
 *   f32   the library's own AVX2 micro-kernel (tg_avx2_table()->ukr);
 *   bf16  B stored as BF16 (half the bytes), widened by zero-extension and a
 *         16-bit shift per 8 values;
 *   f16   B stored as IEEE half, widened by F16C's vcvtph2ps.
 * A stays F32 in these three (A narrow too would add 6 widenings per step
 * to the 2 here: this is the form most favourable to mixed precision).
 * Where the CPU has AVX512-BF16, a fourth form:
 *   bf16dp  A and B in BF16 pairs, the library's VDPBF16PS kernel
 *           (tg_get_bf16_avx512()->ukr_p, what `train --bf16` runs): 32
 *           products per instruction instead of an F32 FMA's 16.
 * GFLOPS per CPU-second, best of 9 rounds with the forms interleaved, and
 * the bf16/f16 results checked
 * against a double-precision product of the same rounded operands. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/tgemm.h"
#include "train/tgemm_avx2.h"

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint16_t to_bf16(float f) { /* round to nearest even (no NaN here) */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

__attribute__((target("f16c"))) static uint16_t to_f16(float f) { return (uint16_t)_cvtss_sh(f, 0); }
__attribute__((target("f16c"))) static float from_f16(uint16_t h) { return _cvtsh_ss(h); }

/* 16 B values of step o, widened: bf16 -> f32 is the high half of a word */
#define LOAD_BF16(o)                                                                               \
    __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(                                             \
               _mm256_cvtepu16_epi32(_mm_load_si128((const __m128i *)(b + (o) * TG_NR))), 16)),    \
           b1 = _mm256_castsi256_ps(_mm256_slli_epi32(                                             \
               _mm256_cvtepu16_epi32(_mm_load_si128((const __m128i *)(b + (o) * TG_NR + 8))), 16))
#define LOAD_F16(o)                                                                                \
    __m256 b0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + (o) * TG_NR))),              \
           b1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + (o) * TG_NR + 8)))

#define FMAS(o) TG_AVX2_FMAS(a, o, b0, b1)

/* the library kernel's loop (4 steps unrolled, A prefetched) and store, with
 * B in a 16-bit form: a (kc x TG_MR) f32, b (kc x TG_NR) 16-bit, c = a b */
#define NARROW_UKR(name, LOAD)                                                                     \
    __attribute__((target("avx2,fma,f16c"))) static void name(int64_t kc, const float *a,          \
                                                              const uint16_t *b, float *c,         \
                                                              int64_t ldc) {                       \
        __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;                         \
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 =                    \
            _mm256_setzero_ps();                                                                   \
        for (int64_t k = 0; k < kc; k += 4, a += 4 * TG_MR, b += 4 * TG_NR) {                      \
            _mm_prefetch((const char *)(a + 4 * TG_MR * 4), _MM_HINT_T0);                          \
            { LOAD(0); FMAS(0); }                                                                  \
            { LOAD(1); FMAS(1); }                                                                  \
            { LOAD(2); FMAS(2); }                                                                  \
            { LOAD(3); FMAS(3); }                                                                  \
        }                                                                                          \
        _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);                \
        _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);                \
        _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);                \
        _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);                \
        _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);                \
        _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);                \
    }
NARROW_UKR(ukr_bf16, LOAD_BF16)
NARROW_UKR(ukr_f16, LOAD_F16)

enum { MC = TG_MC, KC = TG_KC, NC = TG_NC, FORMS = 4 };
static const char *const g_form[FORMS] = {"f32", "bf16", "f16", "bf16dp"};
static const tg_kernels *g_dp; /* NULL without AVX512-BF16 */

/* the packed block product C (MC x NC) = A B in one form: micro-tiles in the
 * loop nest's order, B micro-panels outer (as tg_gemm_st runs them) */
static const uint32_t *ap_dp; /* A in BF16 pairs, the k-major panels of tgemm.h */
static void block(int form, const tg_kernels *kr, const float *ap, const void *bp, float *c) {
    for (int j = 0; j < NC; j += TG_NR)
        for (int i = 0; i < MC; i += TG_MR) {
            const float *a = ap + (size_t)i * KC;
            float *t = c + (size_t)i * NC + j;
            if (form == 0) kr->ukr(KC, a, (const float *)bp + (size_t)j * KC, t, NC, 0);
            if (form == 1) ukr_bf16(KC, a, (const uint16_t *)bp + (size_t)j * KC, t, NC);
            if (form == 2) ukr_f16(KC, a, (const uint16_t *)bp + (size_t)j * KC, t, NC);
            if (form == 3) /* pairs: A at half the offset of its floats, B likewise */
                g_dp->ukr_p(KC / 2, (const uint32_t *)ap_dp + (size_t)i * KC / 2,
                            (const uint32_t *)bp + (size_t)j * KC / 2, t, NC, 0);
        }
}

int main(void) {
    const tg_kernels *kr = tg_get_avx2();
    if (!kr || !__builtin_cpu_supports("f16c")) {
        printf("train-mixed: needs AVX2, FMA and F16C\n");
        return 0;
    }
    /* A packed: MC / TG_MR panels of KC x TG_MR; B packed: NC / TG_NR panels of KC x TG_NR */
    float *ap = aligned_alloc(64, sizeof(float) * MC * KC), *bf = aligned_alloc(64, sizeof(float) * KC * NC);
    uint16_t *bb = aligned_alloc(64, 2 * KC * NC), *bh = aligned_alloc(64, 2 * KC * NC);
    float *c = aligned_alloc(64, sizeof(float) * MC * NC);
    srand(1);
    for (size_t i = 0; i < (size_t)MC * KC; i++) ap[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)KC * NC; i++) {
        float v = (float)rand() / RAND_MAX - 0.5f;
        bb[i] = to_bf16(v);
        bh[i] = to_f16(v);
        bf[i] = v;
    }
    /* the pairs of the fourth form: A's k-major panels, B's panels */
    g_dp = tg_get_bf16_avx512();
    const int nforms = g_dp ? FORMS : FORMS - 1;
    uint32_t *adp = aligned_alloc(64, 4 * MC * KC / 2), *bdp = aligned_alloc(64, 4 * KC / 2 * NC);
    for (int i = 0; i < MC; i++)
        for (int q = 0; q < KC / 2; q++) {
            const float *pa = ap + (size_t)(i / TG_MR) * KC * TG_MR + i % TG_MR;
            adp[(size_t)(i / TG_MR) * KC / 2 * TG_MR + (size_t)q * TG_MR + i % TG_MR] =
                tg_pair(pa[(size_t)(2 * q) * TG_MR], pa[(size_t)(2 * q + 1) * TG_MR]);
        }
    for (int j = 0; j < NC; j++)
        for (int q = 0; q < KC / 2; q++) {
            const float *pb = bf + (size_t)(j / TG_NR) * KC * TG_NR + j % TG_NR;
            bdp[(size_t)(j / TG_NR) * KC / 2 * TG_NR + (size_t)q * TG_NR + j % TG_NR] =
                tg_pair(pb[(size_t)(2 * q) * TG_NR], pb[(size_t)(2 * q + 1) * TG_NR]);
        }
    ap_dp = adp;
    if (!g_dp) printf("no AVX512-BF16: the bf16dp form is skipped\n");
    const void *bs[FORMS] = {bf, bb, bh, bdp};
    double flops = 2.0 * MC * KC * NC, best[FORMS] = {1e9, 1e9, 1e9, 1e9};
    printf("one packed block: A %d x %d (f32), B %d x %d, C %d x %d; one thread\n", MC, KC, KC, NC,
           MC, NC);
    double worst[FORMS] = {0};
    for (int form = 0; form < nforms; form++) {
        block(form, kr, ap, bs[form], c);
        /* check: every 7th output against f64 over the same (rounded) operands */
        for (int i = 0; i < MC; i++)
            for (int j = 0; j < NC; j += 7) {
                double s = 0;
                for (int k = 0; k < KC; k++) {
                    size_t bi = (size_t)(j / TG_NR) * KC * TG_NR + (size_t)k * TG_NR + j % TG_NR;
                    double bv = form == 0 ? bf[bi] : form == 1 ? from_bf16(bb[bi]) : form == 2 ? from_f16(bh[bi])
                                                                                   : from_bf16((uint16_t)tg_bf16(bf[bi]));
                    float av = ap[(size_t)(i / TG_MR) * KC * TG_MR + (size_t)k * TG_MR + i % TG_MR];
                    s += (form == 3 ? from_bf16((uint16_t)tg_bf16(av)) : (double)av) * bv;
                }
                double e = fabs(s - c[(size_t)i * NC + j]);
                if (e > worst[form]) worst[form] = e;
            }
    }
    /* the forms interleaved, 9 rounds: a slow phase of the machine or a
     * frequency ramp falls on all three */
    for (int r = 0; r < 9; r++)
        for (int form = 0; form < nforms; form++) {
            const int reps = 40;
            double t = cpu();
            for (int q = 0; q < reps; q++) block(form, kr, ap, bs[form], c);
            t = (cpu() - t) / reps;
            if (t < best[form]) best[form] = t;
        }
    for (int form = 0; form < nforms; form++)
        printf("%-6s B panel %4zu KiB  %6.1f GFLOPS  (x%.3f of f32)  max |err| vs f64 %.1e\n",
               g_form[form], (size_t)KC * NC * (form ? 2 : 4) / 1024, flops / best[form] / 1e9,
               best[0] / best[form], worst[form]);
    free(ap), free(bf), free(bb), free(bh), free(c), free(adp), free(bdp);
    return 0;
}
