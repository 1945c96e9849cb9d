/* vec_exp.h - what the two SIMD expf implementations share (vec_avx2.c,
 * 4 double lanes; vec_avx512.c, 8): the constants of the C library's
 * algorithm, its plain path's range, and the fallback to libm itself.
 *
 * Not a public header: included only by files compiled with at least the
 * AVX2 flags; everything is static inline. vec_avx2.c explains the method
 * and why the result is libm's bits; the table is sk_vec_exp2_tab
 * (vec_impl.h). */
#ifndef SK_VEC_EXP_H
#define SK_VEC_EXP_H

#include <immintrin.h>
#include <math.h>

#define SK_EXPF_INV (0x1.71547652b82fep+0 * 32)  /* 32 / ln 2 */
#define SK_EXPF_SHIFT 0x1.8p+52                  /* adding it rounds to an integer */
#define SK_EXPF_C0 (0x1.c6af84b912394p-5 / 32 / 32 / 32) /* 2^(r/32) ~ 1 + C2 r + (C1 + C0 r) r^2 */
#define SK_EXPF_C1 (0x1.ebfce50fac4f3p-3 / 32 / 32)
#define SK_EXPF_C2 (0x1.62e42ff0c52d6p-1 / 32)

/* 1 if all 8 lanes are on libm's plain path, x in [-0x1.9fe368p6,
 * 0x1.62e42ep6] (NaN is not) */
static inline int sk_expf8_plain_ok(__m256 x) {
    const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_GE_OQ),
                                    _mm256_cmp_ps(x, _mm256_set1_ps(0x1.62e42ep6f), _CMP_LE_OQ));
    return _mm256_movemask_ps(ok) == 0xFF;
}

/* libm's expf on each of 8 lanes: for a vector with a lane off the plain
 * path (rare) */
static inline __m256 sk_expf8_by_libm(__m256 x) {
    float t[8];
    _mm256_storeu_ps(t, x);
    for (int i = 0; i < 8; i++) t[i] = expf(t[i]);
    return _mm256_loadu_ps(t);
}

#endif /* SK_VEC_EXP_H */
