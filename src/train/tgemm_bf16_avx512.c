/* tgemm_bf16_avx512.c - the BF16 mixed-precision kernels of the trainer's
 * matrix product (tgemm.h) on AVX512-BF16, called only when the CPU has it.
 * Their scalar twins are in tgemm.c and give the same bits
 * (tests/test_train_ops.c).
 *
 * A 6 x 16 tile in 6 accumulators (one 16-float vector a row); a pair step
 * loads one vector of B (16 columns x 2 k) and broadcasts one pair of A per
 * row into VDPBF16PS, which adds 32 products: twice the work of an F32 FMA
 * in one instruction of the same cost. The conversions are VCVTNE2PS2BF16
 * (nearest even, subnormal inputs to zero: tg_bf16's rule). Compiled with
 * the avx512 tier's flags and -mavx512bf16 (the Makefile, by this file's
 * name). */
#include <immintrin.h>

#include "tgemm.h"

/* c (+)= one row's accumulator */
#define STORE_ROW(i, v)                                                                            \
    _mm512_storeu_ps(c + (i) * ldc, load ? _mm512_add_ps(_mm512_loadu_ps(c + (i) * ldc), (v)) : (v))

/* The tile over kp pairs: row i's pair at a[i * ars], A advancing by astep
 * pairs a step (k-major panels: ars 1, astep TG_MR; rows: ars lda, astep
 * 1). A plain loop: unrolled by 4 it ran at 188-200 GFLOPS, plain 223-226,
 * on Zen 4. */
__attribute__((always_inline)) static inline void ukr_body(int64_t kp, const uint32_t *a, int64_t ars,
                                                           int64_t astep, const uint32_t *b, float *c,
                                                           int64_t ldc, int load) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int i = 0; i < TG_MR; i++) /* C joins at the end: fetch it while the products run */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    for (int64_t q = 0; q < kp; q++, a += astep, b += TG_NR) {
        __m512bh bv = (__m512bh)_mm512_loadu_si512(b);
        c0 = _mm512_dpbf16_ps(c0, (__m512bh)_mm512_set1_epi32((int)a[0 * ars]), bv);
        c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_set1_epi32((int)a[1 * ars]), bv);
        c2 = _mm512_dpbf16_ps(c2, (__m512bh)_mm512_set1_epi32((int)a[2 * ars]), bv);
        c3 = _mm512_dpbf16_ps(c3, (__m512bh)_mm512_set1_epi32((int)a[3 * ars]), bv);
        c4 = _mm512_dpbf16_ps(c4, (__m512bh)_mm512_set1_epi32((int)a[4 * ars]), bv);
        c5 = _mm512_dpbf16_ps(c5, (__m512bh)_mm512_set1_epi32((int)a[5 * ars]), bv);
    }
    STORE_ROW(0, c0), STORE_ROW(1, c1), STORE_ROW(2, c2);
    STORE_ROW(3, c3), STORE_ROW(4, c4), STORE_ROW(5, c5);
}

static void ukr_p_avx512(int64_t kp, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc,
                         int load) {
    ukr_body(kp, a, 1, TG_MR, b, c, ldc, load);
}

static void ukr_rows_p_avx512(int64_t kp, const uint32_t *a, int64_t lda, const uint32_t *b,
                              float *c, int64_t ldc, int load) {
    ukr_body(kp, a, lda, 1, b, c, ldc, load);
}

/* 32 BF16 of cvtne2ps(hi, lo) (lo's in words 0-15) interleaved into 16
 * pairs: word 2j = lo's j, word 2j + 1 = hi's j */
static inline __m512i interleave(__m512i h) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, h);
}

static void cvt_pairs_avx512(uint32_t *d, const float *x0, const float *x1, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 lo = _mm512_maskz_loadu_ps(m, x0 + i);
        __m512 hi = x1 ? _mm512_maskz_loadu_ps(m, x1 + i) : _mm512_setzero_ps();
        __m512i h = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        _mm512_mask_storeu_epi32(d + i, m, interleave(h));
    }
}

static void cvt_row_avx512(uint32_t *d, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        int64_t r = n - i;
        __mmask16 m0 = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1);
        __mmask16 m1 = r >= 32 ? (__mmask16)0xFFFF : r > 16 ? (__mmask16)((1u << (r - 16)) - 1) : 0;
        __m512 lo = _mm512_maskz_loadu_ps(m0, x + i), hi = _mm512_maskz_loadu_ps(m1, x + i + 16);
        int64_t np = r >= 32 ? 16 : (r + 1) / 2;
        __mmask16 ms = np >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << np) - 1);
        _mm512_mask_storeu_epi32(d + i / 2, ms, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

static const tg_kernels g_bf16 = {.ukr_p = ukr_p_avx512, .ukr_rows_p = ukr_rows_p_avx512,
                                  .cvt_pairs = cvt_pairs_avx512, .cvt_row = cvt_row_avx512,
                                  .name = "bf16-avx512"};
const tg_kernels *tg_bf16_avx512_table(void) { return &g_bf16; }
