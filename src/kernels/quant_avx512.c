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
 * below (vec_dot is the gemm's 1 x 1 tile there).
 *
 * The block dot is vpdpbusd: u8 x s8, four products summed into each i32
 * lane, no intermediate i16 saturation. Signed weights are made unsigned:
 *   Q4_0:  sum (q - 8) y = dpbusd(q, y) - dpbusd(8, y)
 *   Q8_0:  sum x y       = dpbusd(x + 128, y) - dpbusd(128, y)   (the
 *                          correction is per activation block, shared by
 *                          every weight row of the tile)
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

/* 8 x i32: lane k = sum over bytes 4k..4k+3 of u * s (u unsigned, s signed) */
static inline __m256i dot_us(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

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

#include "quant_simd.h"

/* Override the AVX-512 VNNI entries of table (applied after the AVX2 ones). */
void sk_quant_register_avx512(sk_type_traits *t) { simd_register(t); }
