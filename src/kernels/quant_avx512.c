/* quant_avx512.c - AVX-512 (F, BW, VL, DQ) + VNNI kernels for the tensor formats.
 *
 * Compiled with the AVX2 flags plus -mavx512f -mavx512bw -mavx512vl
 * -mavx512dq -mavx512vnni (Makefile, by file name); only called when cpu.h
 * has chosen AVX-512 VNNI. Registered on top of the AVX2 table, so
 * whatever is not here keeps its AVX2 (or reference) kernel. Each kernel has
 * its scalar twin in quant_ref.c; tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_0 x Q8_0, Q4_1 x Q8_1, Q8_0 x Q8_0:
 * quant_simd.h's kernels (shared with quant_avx2.c) on the integer dots
 * below, and this file's own 512-bit Q4_1 vec_dot.
 *
 * The block dot is vpdpbusd: u8 x s8, four products summed into each i32
 * lane, no intermediate i16 saturation. Signed weights are made unsigned:
 *   Q4_0:  sum (q - 8) y = dpbusd(q, y) - dpbusd(8, y)
 *   Q8_0:  sum x y       = dpbusd(|x|, sign(y, x))       (vec_dot)
 *                        = dpbusd(x + 128, y) - dpbusd(128, y)   (gemm, where
 *                          the correction is per activation block, shared
 *                          by every weight row of the tile)
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"
#include "simd256.h"

/* ---- the integer dots quant_simd.h builds on ------------------------------ */

/* 16 bytes of nibbles -> 32 bytes 0..15 in element order (low nibbles are
 * elements 0..15, high nibbles 16..31): broadcast, shift the upper lane. */
static inline __m256i q4_expand(const uint8_t *qs) {
    __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    t = _mm256_mask_srli_epi16(t, 0xff00, t, 4);
    return _mm256_and_si256(t, _mm256_set1_epi8(15));
}

/* Two blocks in one register: [a 0..15 | a 16..31 | b 0..15 | b 16..31] */
static inline __m512i q4_expand2(const uint8_t *qa, const uint8_t *qb) {
    __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qa));
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qb));
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    z = _mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4);
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

static inline __m512i load32x2(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load32(a)), load32(b), 1);
}

/* 8 x i32: lane k = sum over bytes 4k..4k+3 of u * s (u unsigned, s signed) */
static inline __m256i dot_us(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

/* Q4_0 x Q8_0 block: sum (q - 8) y = dpbusd(q, y) - dpbusd(8, y) */
static inline __m256i dot_q4_0(__m256i q, __m256i y) {
    return _mm256_sub_epi32(dot_us(q, y), dot_us(_mm256_set1_epi8(8), y));
}

/* (d, m) of two Q4_1 blocks times (d, s) of two Q8_1 blocks:
 * [dxa dya, mxa sya, dxb dyb, mxb syb] */
static inline __m128 dm_prod2(const void *xa, const void *xb, const void *ya, const void *yb) {
    int32_t a, b, c, d;
    memcpy(&a, xa, 4);
    memcpy(&b, xb, 4);
    memcpy(&c, ya, 4);
    memcpy(&d, yb, 4);
    __m128i xv = _mm_insert_epi32(_mm_cvtsi32_si128(a), b, 1);
    __m128i yv = _mm_insert_epi32(_mm_cvtsi32_si128(c), d, 1);
    return _mm_mul_ps(_mm_cvtph_ps(xv), _mm_cvtph_ps(yv));
}

/* ---- vec_dot of Q4_1 at 512 bits -------------------------------------------- */

/* Q4_1 x Q8_1, two blocks per 512-bit register, two registers (four
 * blocks) per iteration, then a pair, then a single 256-bit block. Lanes
 * 0..7 of the i32 dot belong to the first block of a pair, 8..15 to the
 * second; the scale vector is [dx dy]_a x 8, [dx dy]_b x 8, taken from
 * P = [dx dy, mx sy] per block (the odd lanes sum to the min terms). */
static void q4_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_1 *x = vx;
    const sk_block_q8_1 *y = vy;
    const int64_t nb = n / SK_QK;
    const __m512i bcast = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps(); /* lanes 1 and 3 collect mx * sy */
    int64_t i = 0;
    /* the (d, m) pairs of x blocks i..i+3 are dwords 0, 5, 10, 15 of the 64
     * bytes at x + i, the (d, s) pairs of y dwords 0, 9, 18, 27 of the 128
     * bytes at y + i (both inside the four blocks) */
    const __m512i ixdm = _mm512_setr_epi32(0, 5, 10, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i iyds = _mm512_setr_epi32(0, 9, 18, 27, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i bcast23 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
    __m256 accm4 = _mm256_setzero_ps(); /* odd lanes collect mx * sy */
    for (; i + 3 < nb; i += 4) {
        const char *xb = (const char *)&x[i], *yb = (const char *)&y[i];
        __m128i xdm = _mm512_castsi512_si128(_mm512_permutexvar_epi32(ixdm, _mm512_loadu_si512(xb)));
        __m128i yds = _mm512_castsi512_si128(
            _mm512_permutex2var_epi32(_mm512_loadu_si512(yb), iyds, _mm512_loadu_si512(yb + 64)));
        __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(xdm), _mm256_cvtph_ps(yds));
        accm4 = _mm256_add_ps(accm4, p);
        __m512 p512 = _mm512_castps256_ps512(p);
        __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q4_expand2(x[i].qs, x[i + 1].qs),
                                         load32x2(y[i].qs, y[i + 1].qs));
        __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q4_expand2(x[i + 2].qs, x[i + 3].qs),
                                         load32x2(y[i + 2].qs, y[i + 3].qs));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(bcast, p512), _mm512_cvtepi32_ps(d0), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(bcast23, p512), _mm512_cvtepi32_ps(d1), acc1);
    }
    accm = _mm_add_ps(accm, _mm_add_ps(_mm256_castps256_ps128(accm4), _mm256_extractf128_ps(accm4, 1)));
    if (i + 1 < nb) { /* a pair left over */
        __m128 p0 = dm_prod2(&x[i], &x[i + 1], &y[i], &y[i + 1]);
        __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q4_expand2(x[i].qs, x[i + 1].qs),
                                         load32x2(y[i].qs, y[i + 1].qs));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(bcast, _mm512_castps128_ps512(p0)), _mm512_cvtepi32_ps(d0), acc0);
        accm = _mm_add_ps(accm, p0);
        i += 2;
    }
    __m256 acc2 = _mm256_setzero_ps();
    for (; i < nb; i++) {
        __m128 p = dm_prod2(&x[i], &x[i], &y[i], &y[i]);
        __m256i d = dot_us(q4_expand(x[i].qs), load32(y[i].qs));
        acc2 = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(d), acc2);
        accm = _mm_add_ps(accm, _mm_movelh_ps(p, _mm_setzero_ps()));
    }
    __m512 acc = _mm512_add_ps(acc0, acc1);
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm)); /* lane 1 += lane 3 */
    *s = hsum8(_mm256_add_ps(a8, acc2)) + _mm_cvtss_f32(_mm_movehdup_ps(accm));
}

/* gemm tiles of 4 x 4 (16 accumulators of 8 lanes out of 32 registers):
 * every weight block is expanded once per tile and every activation block
 * loaded once, for 16 vpdpbusd. Q4_0 (K = 8) and Q8_0 (weights made
 * unsigned, x ^ 0x80, K = 128): dot = dpbusd(-dpbusd(K, y), xq, y), the
 * correction once per activation block. */
#define RM 4
#define RN 4
#define TILE_CASES(name)                                                                           \
    TILE_CASE(name, 4, 4) TILE_CASE(name, 4, 3) TILE_CASE(name, 4, 2) TILE_CASE(name, 4, 1)        \
    TILE_CASE(name, 3, 4) TILE_CASE(name, 3, 3) TILE_CASE(name, 3, 2) TILE_CASE(name, 3, 1)        \
    TILE_CASE(name, 2, 4) TILE_CASE(name, 2, 3) TILE_CASE(name, 2, 2) TILE_CASE(name, 2, 1)        \
    TILE_CASE(name, 1, 4) TILE_CASE(name, 1, 3) TILE_CASE(name, 1, 2)
static inline __m256i q8_0_xq(const int8_t *p) { return _mm256_xor_si256(load32(p), _mm256_set1_epi8((char)0x80)); }
#define XQ_Q8_0(qs) q8_0_xq(qs)
#define Y_PRE(K, yq) _mm256_sub_epi32(_mm256_setzero_si256(), dot_us(_mm256_set1_epi8((char)(K)), (yq)))
#define DOT_Q4_0(xq, yq, pre) _mm256_dpbusd_epi32((pre), (xq), (yq))
#define DOT_Q8_0(xq, yq, pre) _mm256_dpbusd_epi32((pre), (xq), (yq))
#define OWN_Q4_1_VEC_DOT

#include "quant_simd.h"

/* Override the AVX-512 VNNI entries of table (applied after the AVX2 ones). */
void sk_quant_register_avx512(sk_type_traits *t) { simd_register(t); }
