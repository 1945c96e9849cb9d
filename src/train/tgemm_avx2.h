/* tgemm_avx2.h - one k step of the AVX2 micro-kernel (tgemm_avx2.c), shared
 * with bench/train-mixed.c, which runs the same step on B panels stored in
 * 16-bit forms: the 12 fused multiply-adds of a 6 x 16 tile for one k,
 * given that k's two vectors of B (b0: columns 0-7, b1: 8-15) and A's six
 * values at a + o * TG_MR, into the accumulators c00, c01 .. c50, c51 of
 * the caller. Needs <immintrin.h> and tgemm.h, and AVX2 + FMA code. */
#ifndef SK_TRAIN_TGEMM_AVX2_H
#define SK_TRAIN_TGEMM_AVX2_H

#define TG_AVX2_FMAS(a, o, b0, b1)                                                                 \
    do {                                                                                           \
        __m256 x_;                                                                                 \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 0);                                           \
        c00 = _mm256_fmadd_ps(x_, b0, c00), c01 = _mm256_fmadd_ps(x_, b1, c01);                    \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 1);                                           \
        c10 = _mm256_fmadd_ps(x_, b0, c10), c11 = _mm256_fmadd_ps(x_, b1, c11);                    \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 2);                                           \
        c20 = _mm256_fmadd_ps(x_, b0, c20), c21 = _mm256_fmadd_ps(x_, b1, c21);                    \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 3);                                           \
        c30 = _mm256_fmadd_ps(x_, b0, c30), c31 = _mm256_fmadd_ps(x_, b1, c31);                    \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 4);                                           \
        c40 = _mm256_fmadd_ps(x_, b0, c40), c41 = _mm256_fmadd_ps(x_, b1, c41);                    \
        x_ = _mm256_broadcast_ss((a) + (o) * TG_MR + 5);                                           \
        c50 = _mm256_fmadd_ps(x_, b0, c50), c51 = _mm256_fmadd_ps(x_, b1, c51);                    \
    } while (0)

#endif
