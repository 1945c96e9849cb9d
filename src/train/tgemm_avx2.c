/* tgemm_avx2.c - the AVX2+FMA micro-kernel of the trainer's matrix product
 * (tgemm.h); compiled with -mavx2 -mfma, called only when the CPU has them.
 *
 * A 6 x 16 tile in 12 accumulators (6 rows x 2 vectors); a step of k loads
 * two vectors of B and broadcasts 6 values of A for 12 FMAs, so the two FMA
 * pipes, not the loads, set the pace. One FMA per term, k ascending, from 0,
 * then C added (prefetched meanwhile): the arithmetic tgemm.h states. */
#include <immintrin.h>

#include "tgemm.h"
#include "tgemm_avx2.h"

/* c (+)= the 12 accumulators, row by row */
#define STORE1(p, v) _mm256_storeu_ps((p), load ? _mm256_add_ps(_mm256_loadu_ps(p), (v)) : (v))
__attribute__((always_inline)) static inline void
store_tile(float *c, int64_t ldc, int load, __m256 c00, __m256 c01, __m256 c10, __m256 c11,
           __m256 c20, __m256 c21, __m256 c30, __m256 c31, __m256 c40, __m256 c41, __m256 c50,
           __m256 c51) {
    STORE1(c + 0 * ldc, c00), STORE1(c + 0 * ldc + 8, c01);
    STORE1(c + 1 * ldc, c10), STORE1(c + 1 * ldc + 8, c11);
    STORE1(c + 2 * ldc, c20), STORE1(c + 2 * ldc + 8, c21);
    STORE1(c + 3 * ldc, c30), STORE1(c + 3 * ldc + 8, c31);
    STORE1(c + 4 * ldc, c40), STORE1(c + 4 * ldc + 8, c41);
    STORE1(c + 5 * ldc, c50), STORE1(c + 5 * ldc + 8, c51);
}
#undef STORE1

#define STEP(o)                                                                                 \
    do {                                                                                        \
        __m256 b0 = _mm256_load_ps(b + (o) * TG_NR), b1 = _mm256_load_ps(b + (o) * TG_NR + 8);  \
        TG_AVX2_FMAS(a, o, b0, b1);                                                             \
    } while (0)

static void ukr_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    if (load) /* C is added at the end: fetch it while the products run */
        for (int i = 0; i < TG_MR; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
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
    store_tile(c, ldc, load, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* A in place: row i at a + i * lda (three base pointers, lda as the index) */
#define STEP_ROWS(o)                                                                            \
    do {                                                                                        \
        __m256 b0 = _mm256_load_ps(b + (o) * TG_NR), b1 = _mm256_load_ps(b + (o) * TG_NR + 8);  \
        __m256 x;                                                                               \
        x = _mm256_broadcast_ss(a0 + (o));                                                      \
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);                   \
        x = _mm256_broadcast_ss(a0 + lda + (o));                                                \
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);                   \
        x = _mm256_broadcast_ss(a0 + 2 * lda + (o));                                            \
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);                   \
        x = _mm256_broadcast_ss(a3 + (o));                                                      \
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);                   \
        x = _mm256_broadcast_ss(a3 + lda + (o));                                                \
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);                   \
        x = _mm256_broadcast_ss(a3 + 2 * lda + (o));                                            \
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);                   \
    } while (0)

static void ukr_rows_avx2(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                          int64_t ldc, int load) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    if (load) /* C is added at the end: fetch it while the products run */
        for (int i = 0; i < TG_MR; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
        }
    const float *a0 = a, *a3 = a + 3 * lda;
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4, a0 += 4, a3 += 4, b += 4 * TG_NR) {
        STEP_ROWS(0);
        STEP_ROWS(1);
        STEP_ROWS(2);
        STEP_ROWS(3);
    }
    for (; k < kc; k++, a0++, a3++, b += TG_NR) STEP_ROWS(0);
    store_tile(c, ldc, load, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* 8 x 8 transposes: rows j0..j0+7 of w, 8 k at a time */
static void pack_bt_avx2(float *d, const float *w, int64_t ldw, int64_t kc) {
    for (int jh = 0; jh < TG_NR; jh += 8) {
        const float *r = w + jh * ldw;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r0 = _mm256_loadu_ps(r + 0 * ldw + k), r1 = _mm256_loadu_ps(r + 1 * ldw + k),
                   r2 = _mm256_loadu_ps(r + 2 * ldw + k), r3 = _mm256_loadu_ps(r + 3 * ldw + k),
                   r4 = _mm256_loadu_ps(r + 4 * ldw + k), r5 = _mm256_loadu_ps(r + 5 * ldw + k),
                   r6 = _mm256_loadu_ps(r + 6 * ldw + k), r7 = _mm256_loadu_ps(r + 7 * ldw + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                   t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                   t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *o = d + k * TG_NR + jh;
            _mm256_store_ps(o + 0 * TG_NR, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(o + 1 * TG_NR, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(o + 2 * TG_NR, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(o + 3 * TG_NR, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(o + 4 * TG_NR, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(o + 5 * TG_NR, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(o + 6 * TG_NR, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(o + 7 * TG_NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (; k < kc; k++)
            for (int j = 0; j < 8; j++) d[k * TG_NR + jh + j] = r[j * ldw + k];
    }
}

static const tg_kernels g_avx2 = {.ukr = ukr_avx2, .ukr_rows = ukr_rows_avx2, .pack_bt = pack_bt_avx2,
                                  .name = "avx2"};
const tg_kernels *tg_avx2_table(void) { return &g_avx2; }
