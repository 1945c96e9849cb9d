/* simd256.h - small 256-bit helpers shared by the x86 SIMD kernel files.
 *
 * Not a public header: included only by files compiled with at least the
 * AVX2 flags (quant_avx2.c, quant_k8_avx2.c, quant_avx512.c, vec_avx2.c, vec_avx512.c), so everything is
 * static inline and built once per instruction set. */
#ifndef SK_SIMD256_H
#define SK_SIMD256_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* half -> float with F16C (the same value as sk_f16_to_f32) */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* sum of the 8 lanes: (lo + hi) halves, then pairs, then the last two */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 bytes at p, unaligned */
static inline __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 4 bytes at p as a little-endian word (two f16 of a block header) */
static inline uint32_t ld_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 8 x 8 dword transpose: v[r] dword j -> v[j] dword r */
static inline void transpose8_epi32(__m256i v[8]) {
    __m256i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(v[2 * k], v[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        v[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

#endif /* SK_SIMD256_H */
