/* tgemm_avx2.c - the AVX2+FMA micro-kernel of the trainer's matrix product
 * (tgemm.h); compiled with -mavx2 -mfma, called only when the CPU has them.
 *
 * A 6 x 16 tile in 12 accumulators (6 rows x 2 vectors); a step of k loads
 * two vectors of B and broadcasts 6 values of A for 12 FMAs, so the two FMA
 * pipes, not the loads, set the pace. One FMA per term, k ascending, from C
 * or from 0: the chain tgemm.h states. */
#include <immintrin.h>

#include "tgemm.h"

#define STEP(o)                                                                                 \
    do {                                                                                        \
        __m256 b0 = _mm256_load_ps(b + (o) * TG_NR), b1 = _mm256_load_ps(b + (o) * TG_NR + 8);  \
        __m256 x;                                                                               \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 0);                                           \
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);                   \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 1);                                           \
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);                   \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 2);                                           \
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);                   \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 3);                                           \
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);                   \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 4);                                           \
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);                   \
        x = _mm256_broadcast_ss(a + (o) * TG_MR + 5);                                           \
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);                   \
    } while (0)

static void ukr_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load) {
        c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
        c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4, a += 4 * TG_MR, b += 4 * TG_NR) {
        _mm_prefetch((const char *)(a + 4 * TG_MR * 4), _MM_HINT_T0);
        STEP(0);
        STEP(1);
        STEP(2);
        STEP(3);
    }
    for (; k < kc; k++, a += TG_MR, b += TG_NR) STEP(0);
    _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

static const tg_kernels g_avx2 = {ukr_avx2, "avx2"};
const tg_kernels *tg_avx2_table(void) { return &g_avx2; }
