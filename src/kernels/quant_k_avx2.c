/* quant_k_avx2.c - AVX2 + FMA + F16C kernels for the K-quant formats.
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile, by file name); only called
 * when quant.c has seen those features in cpuid. Each kernel has its scalar
 * twin in quant_ref.c, and tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_K, Q5_K and Q6_K x Q8_K; from_float of
 * Q8_K (the activation quantizer, bit-identical to the reference).
 *
 * The vec_dot/gemm kernels are in quant_k_simd.h (shared with
 * quant_k_avx512.c; see there for the block dot, the range argument and why
 * the results are the reference's bits); this file supplies their integer
 * dot, vpmaddubsw then vpmaddwd with the sub-block scales, then vpaddd.
 */
#include <immintrin.h>

/* acc + 8 i32: lane k = sc * (sum of the four products u * s in bytes
 * 4k..4k+3); sc holds one i16 scale per pair of bytes (see quant_k_simd.h) */
#define K_DOT(acc, u, s, sc) _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), (sc)))

#include "quant_k_simd.h"

/* ---- Q8_K activation quantizer ------------------------------------------------------
 * The reference's numerics exactly: max = the first element of largest
 * magnitude (with its sign), iscale = -127 / max, q = rint(iscale * x)
 * (vcvtps2dq in the default round-to-nearest-even mode, as lrintf),
 * clamped to 127 by the saturating packs (the low side cannot go below
 * -127), d = 1 / iscale, bsums = sums of 16 q. */

/* 32 i32 (four vectors, element order) -> 32 i8 in element order */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void q8_K_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / SK_QK_K; i++, x += SK_QK_K) {
        /* amax; max_ps(a, b) returns b when a is NaN, so NaN is skipped as
         * in the reference's fabsf(x) > amax */
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int j = 0; j < SK_QK_K; j += 16) {
            a0 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), a0);
            a1 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j + 8)), a1);
        }
        a0 = _mm256_max_ps(a0, a1);
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(a0, 1), _mm256_castps256_ps128(a0));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the first element with |x| == amax gives the sign */
        const __m256 va = _mm256_set1_ps(amax);
        float max = amax;
        for (int j = 0; j < SK_QK_K; j += 8) {
            int msk = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
            if (msk) {
                max = x[j + __builtin_ctz((unsigned)msk)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        __m256i q[8];
        for (int g = 0; g < 8; g++) {
            const float *p = x + 32 * g;
            q[g] = pack32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(p))),
                          _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(p + 8))),
                          _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(p + 16))),
                          _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(p + 24))));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), q[g]);
        }
        /* bsums: pair sums (vpmaddubsw with ones), then three rounds of
         * vphaddw. Lane 0 of the result holds the sums over elements 0..15
         * of each q[g] (group 2g), lane 1 those over 16..31 (group 2g + 1). */
        const __m256i ones = _mm256_set1_epi8(1);
        __m256i s[8];
        for (int g = 0; g < 8; g++)
            s[g] = _mm256_maddubs_epi16(ones, q[g]);
        for (int g = 0; g < 4; g++)
            s[g] = _mm256_hadd_epi16(s[2 * g], s[2 * g + 1]);
        for (int g = 0; g < 2; g++)
            s[g] = _mm256_hadd_epi16(s[2 * g], s[2 * g + 1]);
        const __m256i t = _mm256_hadd_epi16(s[0], s[1]);
        const __m128i even = _mm256_castsi256_si128(t), odd = _mm256_extracti128_si256(t, 1);
        _mm_storeu_si128((__m128i *)y[i].bsums, _mm_unpacklo_epi16(even, odd));
        _mm_storeu_si128((__m128i *)(y[i].bsums + 8), _mm_unpackhi_epi16(even, odd));
        y[i].d = 1 / iscale;
    }
}

/* Override the AVX2-accelerated K-quant entries of table (see quant_impl.h). */
void sk_quant_register_k_avx2(sk_type_traits *t) {
    k_register(t);
    sk_quant_register_k8_avx2(t); /* pre-fill: 8 rows at a time (quant_k8_avx2.c) */
    t[SK_TYPE_Q8_K].from_float = q8_K_from_float;
}
