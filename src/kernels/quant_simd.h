/* quant_simd.h - the Q4_0, Q4_1 and Q8_0 vec_dot/gemm kernels at 256
 * bits, shared by quant_avx2.c and quant_avx512.c.
 *
 * Not a public header: included only by those two files, each compiled
 * with its own ISA flags (Makefile, by file name), so everything here is
 * static and built once per instruction set (as quant_k_simd.h is for the
 * K-quants). What differs between the two is the includer's; before
 * including this header it defines (after simd256.h's helpers)
 *   dot_us(u, s)      8 x i32: lane k = sum over bytes 4k..4k+3 of u * s,
 *                     u unsigned, s signed (AVX2: vpmaddubsw + vpmaddwd with
 *                     ones; VNNI: vpdpbusd)
 *   q4_expand(qs)     16 bytes of nibbles -> 32 bytes 0..15 in element order
 *   RM, RN            the gemm register tile (weight rows x activation rows)
 *   TILE_CASES(name)  TILE_CASE(name, rm, rn) for every edge tile size but
 *                     1 x 1 (the walker's default)
 *   Y_PRE(K, yq)      per activation block of a Q4_0/Q8_0 tile: what the
 *                     block dot needs besides the quants (K = 8 for Q4_0,
 *                     0x80 for Q8_0), shared by the RM weight rows
 *   DOT_Q4_0(xq, yq, pre), DOT_Q8_0(xq, yq, pre)
 *                     the tile's exact integer block dots (8 x i32 whose sum
 *                     is the block's); xq from q4_expand, XQ_Q8_0(qs)
 *   XQ_Q8_0(qs)       a Q8_0 weight block's 32 quants as the tile uses them
 * and gets the static q4_0/q4_1/q8_0 _vec_dot and _gemm and
 * simd_register(t), which installs them. All integer block dots are exact,
 * and the float part (acc += (dx dy) * float(dot), per lane; horizontal
 * sums at the end) is the same code for both sets and for vec_dot and
 * gemm. Each kernel has its
 * scalar twin in quant_ref.c; tests/test_quant.c compares every ISA with it.
 */
#ifndef SK_QUANT_SIMD_H
#define SK_QUANT_SIMD_H

#if !defined(RM) || !defined(RN) || !defined(TILE_CASES) || !defined(Y_PRE) ||                     \
    !defined(DOT_Q4_0) || !defined(DOT_Q8_0) || !defined(XQ_Q8_0)
#error "define RM, RN, TILE_CASES, Y_PRE, DOT_Q4_0, DOT_Q8_0, XQ_Q8_0 before including quant_simd.h"
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"
#include "simd256.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

/* Decode (vec_dot) streams a weight matrix that does not fit in any cache
 * at a few bytes per operation; the hardware prefetcher alone kept this
 * machine at ~5 GB/s, a software prefetch PF_AHEAD bytes ahead of the
 * block being read (past a row's end: the next row, which follows it in
 * memory) at ~10 GB/s (tests/.. measured on AMD EPYC, AVX2; 512 and 2048
 * bytes were slower than 1024). */
#define PF_AHEAD 1024
#define PREFETCH(p) _mm_prefetch((const char *)(p) + PF_AHEAD, _MM_HINT_T0)

/* signed x signed: |x| * (y with x's sign) */
static inline __m256i dot_ss(__m256i x, __m256i y) { return dot_us(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x)); }

/* ---- gemm (pre-fill) and vec_dot (decode) ------------------------------------
 * Register tile of RM weight rows x RN activation rows: each block of a
 * weight row is expanded once and used RN times, each activation block
 * loaded once and used RM times. Edge tiles reuse the same code with
 * smaller constant sizes. Every (row, column) pair gets the same
 * operations in any tile, and vec_dot is the 1 x 1 tile: a dot has the
 * same bits alone (decode) as in a chunk (pre-fill), so results do not
 * depend on how tokens were batched. The weight rows are prefetched
 * PF_AHEAD bytes ahead (decode streams them from memory). */

#define XB(T, r) ((const T *)(x + (size_t)(r) * xs) + i)
#define YB(T, c) ((const T *)(y + (size_t)(c) * ys) + i)

/* Q4_1: the block scales come as f16 pairs, (d, m) in x and (d, s) in y.
 * Per block, Y = [dy sy] of the RN columns and, per row, X = [dx mx] x 4:
 * P = X * Y = [dx dy_c, mx sy_c]_c gives every pair's scale (lane 2c,
 * broadcast by a permute) and min term (lane 2c + 1, summed in accm). */
INLINE void q4_1_tile(int64_t nb, const int rm, const int rn, const char *x, size_t xs, const char *y,
                      size_t ys, float *s, size_t ss) {
    __m256 acc[RM][RN], accm[RM];
    UNROLL
    for (int r = 0; r < rm; r++) {
        accm[r] = _mm256_setzero_ps();
        UNROLL
        for (int c = 0; c < rn; c++)
            acc[r][c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        __m256i yq[RN];
        __m128i yv = _mm_cvtsi32_si128((int)ld_u32(YB(sk_block_q8_1, 0)));
        UNROLL
        for (int c = 0; c < rn; c++) {
            yq[c] = load32(YB(sk_block_q8_1, c)->qs);
            if (c == 1)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 1)), 1);
            if (c == 2)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 2)), 2);
            if (c == 3)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 3)), 3);
        }
        const __m256 yds = _mm256_cvtph_ps(yv);
        UNROLL
        for (int r = 0; r < rm; r++) {
            PREFETCH(XB(sk_block_q4_1, r));
            const __m256i xq = q4_expand(XB(sk_block_q4_1, r)->qs);
            const __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi32((int)ld_u32(XB(sk_block_q4_1, r)))), yds);
            accm[r] = _mm256_add_ps(accm[r], p);
            UNROLL
            for (int c = 0; c < rn; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(p, _mm256_set1_epi32(2 * c)),
                                            _mm256_cvtepi32_ps(dot_us(xq, yq[c])), acc[r][c]);
        }
    }
    UNROLL
    for (int r = 0; r < rm; r++) {
        float m[8];
        _mm256_storeu_ps(m, accm[r]);
        UNROLL
        for (int c = 0; c < rn; c++)
            s[(size_t)c * ss + r] = hsum8(acc[r][c]) + m[2 * c + 1];
    }
}

/* Q4_0 (XQ = q4_expand, K = 8) and Q8_0 (XQ = XQ_Q8_0, K = 0x80): per
 * activation block pre = Y_PRE(K, yq) once, then per weight row
 * acc += (dx dy) * float(DOT(xq, yq, pre)). */
#define BLOCK_TILE(name, XT, XQ, K, DOT)                                                           \
    INLINE void name##_tile(int64_t nb, const int rm, const int rn, const char *x, size_t xs,      \
                            const char *y, size_t ys, float *s, size_t ss) {                       \
        __m256 acc[RM][RN];                                                                        \
        UNROLL                                                                                     \
        for (int r = 0; r < rm; r++)                                                               \
            UNROLL                                                                                 \
            for (int c = 0; c < rn; c++)                                                           \
                acc[r][c] = _mm256_setzero_ps();                                                   \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            __m256i xq[RM];                                                                        \
            __m256 dx[RM];                                                                         \
            UNROLL                                                                                 \
            for (int r = 0; r < rm; r++) {                                                         \
                PREFETCH(XB(XT, r));                                                               \
                xq[r] = XQ(XB(XT, r)->qs);                                                         \
                dx[r] = _mm256_set1_ps(h2f(XB(XT, r)->d));                                         \
            }                                                                                      \
            UNROLL                                                                                 \
            for (int c = 0; c < rn; c++) {                                                         \
                __m256i yq = load32(YB(sk_block_q8_0, c)->qs);                                     \
                __m256 dy = _mm256_set1_ps(h2f(YB(sk_block_q8_0, c)->d));                          \
                __m256i pre = Y_PRE(K, yq);                                                        \
                (void)pre; /* unused where the dot needs nothing precomputed */                    \
                UNROLL                                                                             \
                for (int r = 0; r < rm; r++)                                                       \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], dy),                          \
                                                _mm256_cvtepi32_ps(DOT(xq[r], yq, pre)),           \
                                                acc[r][c]);                                        \
            }                                                                                      \
        }                                                                                          \
        UNROLL                                                                                     \
        for (int c = 0; c < rn; c++)                                                               \
            UNROLL                                                                                 \
            for (int r = 0; r < rm; r++)                                                           \
                s[(size_t)c * ss + r] = hsum8(acc[r][c]);                                          \
    }

BLOCK_TILE(q4_0, sk_block_q4_0, q4_expand, 8, DOT_Q4_0)
BLOCK_TILE(q8_0, sk_block_q8_0, XQ_Q8_0, 0x80, DOT_Q8_0)

#define TILE_CASE(name, a, b)                                                                      \
    case a * 8 + b: name##_tile(nb, a, b, x, xs, y, ys, o, ss); break;

/* Walk the nr x nc output in RM x RN tiles; the switch instantiates each
 * edge size with constants so the tile loops unroll. */
#define GEMM(name)                                                                                 \
    static void name##_gemm(int64_t n, int nr, int nc, const void *vx, size_t xs, const void *vy,  \
                            size_t ys, float *s, size_t ss) {                                      \
        const int64_t nb = n / SK_QK;                                                              \
        for (int r0 = 0; r0 < nr; r0 += RM) {                                                      \
            const char *x = (const char *)vx + (size_t)r0 * xs;                                    \
            int rm = nr - r0 < RM ? nr - r0 : RM;                                                  \
            for (int c0 = 0; c0 < nc; c0 += RN) {                                                  \
                const char *y = (const char *)vy + (size_t)c0 * ys;                                \
                float *o = s + (size_t)c0 * ss + r0;                                               \
                int rn = nc - c0 < RN ? nc - c0 : RN;                                              \
                switch (rm * 8 + rn) {                                                             \
                    TILE_CASES(name)                                                               \
                default: name##_tile(nb, 1, 1, x, xs, y, ys, o, ss); break;                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

GEMM(q4_1)
GEMM(q4_0)
GEMM(q8_0)

#define VEC_DOT(name)                                                                              \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        name##_tile(n / SK_QK, 1, 1, vx, 0, vy, 0, s, 1);                                          \
    }

VEC_DOT(q4_1)
VEC_DOT(q4_0)
VEC_DOT(q8_0)

/* Install the kernels above in table t. */
static inline void simd_register(sk_type_traits *t) {
    t[SK_TYPE_Q4_0].vec_dot = q4_0_vec_dot;
    t[SK_TYPE_Q4_0].gemm = q4_0_gemm;
    t[SK_TYPE_Q4_1].vec_dot = q4_1_vec_dot;
    t[SK_TYPE_Q4_1].gemm = q4_1_gemm;
    t[SK_TYPE_Q8_0].vec_dot = q8_0_vec_dot;
    t[SK_TYPE_Q8_0].gemm = q8_0_gemm;
}

#endif /* SK_QUANT_SIMD_H */
