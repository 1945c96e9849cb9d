/* quant_k_simd.h - the K-quant (Q4_K, Q5_K, Q6_K x Q8_K) vec_dot/gemm
 * kernels at 256 bits, shared by quant_k_avx2.c and quant_k_avx512.c.
 *
 * Not a public header: included only by those two files, each compiled
 * with its own ISA flags (Makefile, by file name), so everything here is
 * static and built once per instruction set. The one difference between the
 * two, the integer dot that scales and accumulates, is the includer's:
 * before including this header it defines
 *   K_DOT(acc, u, s, sc)  acc (8 i32) + lane k: sc * (sum of the four
 *                         products u * s in bytes 4k..4k+3), u unsigned,
 *                         s signed bytes, sc one i16 scale per byte pair
 * (AVX2: vpmaddubsw + vpmaddwd + vpaddd; VNNI: vpmaddubsw + vpdpwssd). This
 * header then defines the static q4_K/q5_K/q6_K _vec_dot and _gemm, which
 * the file registers. Each kernel has its scalar twin in
 * quant_ref.c; tests/test_quant.c compares every ISA with it.
 *
 * Block dot (one 256-element super-block, all integer, exact):
 *   Q4_K/Q5_K: sumq = sum_j sc_j sum_l q y,  summ = sum_j m_j (bsum_2j + bsum_2j+1)
 *              s += d dy sumq - dmin dy summ
 *   Q6_K:      sumq = sum_g sc_g sum_l q y - 32 sum_g sc_g bsum_g   (q = 0..63)
 *              s += d dy sumq
 * 32 elements at a time: vpmaddubsw (unsigned q x signed y -> 16 pair sums
 * in i16) then K_DOT's scaling with the sub-block scale broadcast as i16
 * (-> 8 i32, scaled). No i16 can saturate: q <= 63, |y| <= 128,
 * 63 * 128 * 2 < 32767. The i32 sums of a whole block stay far below 2^31:
 * at most 256 products |sc q y| <= 128 * 63 * 128 (Q6_K, < 2^28 in all)
 * plus Q6_K's bsum term (32 * 16 * 128 * 2048 = 2^27). They are reduced to
 * the block's exact sumq and summ (so the order of the i32 additions does
 * not matter), and the float part is the reference's, operation for
 * operation, so every kernel here returns the reference's bits (the tests
 * hold them to a tolerance, the contract, and report how many results are
 * bit-equal).
 *
 * gemm: one weight row against up to KN activation rows at a time; the
 * weight block (nibbles, scales) is unpacked once per KN columns. vec_dot
 * is the same code with one column.
 */
#ifndef SK_QUANT_K_SIMD_H
#define SK_QUANT_K_SIMD_H

#ifndef K_DOT
#error "define K_DOT(acc, u, s, sc) before including quant_k_simd.h"
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

#define KN 4 /* activation rows per gemm tile */
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* Each cache line of the weight block K_PF_AHEAD bytes ahead, prefetched:
 * decode streams the weights from memory (see quant_simd.h's PF_AHEAD).
 * Measured on Zen 4 (2 threads, a Llama-3.2-1B-shaped Q4_K_M, tg64):
 * 1024 -> 39.2-39.6 tokens/s, 2048 -> 34.9, 4096 -> 43.8-45.7, 8192 -> 43.3. */
#define K_PF_AHEAD 4096
#define K_PREFETCH(blk, bsz)                                                                       \
    do {                                                                                           \
        UNROLL                                                                                     \
        for (size_t o_ = 0; o_ < (bsz); o_ += 64)                                                  \
            _mm_prefetch((const char *)(blk) + K_PF_AHEAD + o_, _MM_HINT_T0);                      \
    } while (0)

/* ---- helpers -------------------------------------------------------------- */

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m128i load16(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* The 6-bit scales and mins of a Q4_K/Q5_K block (sk_q4k_scale_min for all
 * j at once), per byte of the dwords w0, w1, w2 of its 12 scale bytes:
 *   sc[0..3] = w0 & 63,   sc[4..7] = (w2 & 15) | (w0 >> 6) << 4
 *   m[0..3]  = w1 & 63,   m[4..7]  = (w2 >> 4) | (w1 >> 6) << 4
 * computed on [w0, w2, w1, w2 >> 4] and [w0, w0, w1, w1] >> 2.
 * *sc = sc[0..7] as i16 in both 128-bit lanes (for the per-sub-block
 * broadcasts); *m2 = m[0], m[0], m[1], m[1], .., m[7], m[7] as i16, which
 * vpmaddwd against the 16 bsums turns into m_j (bsum_2j + bsum_2j+1).
 * Reads 16 bytes from s: the scales and 4 more bytes of the block. */
static inline void k4_scales(const uint8_t *s, __m256i *sc, __m256i *m2) {
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    const __m128i x = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
    const __m128i h = _mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2);
    const __m128i t = _mm_or_si128(_mm_and_si128(x, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
                                   _mm_and_si128(h, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
    *sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(t));
    *m2 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(t, t));
}

/* Shuffle control that broadcasts i16 element j of each 128-bit lane */
static inline __m256i bcast16(int j) { return _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)); }

/* [sum of the 8 lanes of q, sum of the 8 lanes of m, same, same]: the
 * block's exact integer sums (no overflow: |sumq| < 2^31 by the range
 * argument above) */
static inline __m128i k_reduce(__m256i q, __m256i m) {
    const __m256i t = _mm256_hadd_epi32(q, m); /* per lane: q01 q23 m01 m23 */
    const __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    return _mm_hadd_epi32(u, u);
}

/* sumf + ((d dy) sumq - (dmin dy) summ) with dd = [d, dmin] and qm =
 * [sumq, summ]: the reference's float operations in its order, so the
 * result is bit-identical to it (two multiplies, then vsubss and vaddss
 * builtins, which no compiler contracts into an FMA). Q6_K passes
 * dmin = 0, summ = 0. */
static inline __m128 k_accum(__m128 sumf, __m128 dd, float dy, __m128i qm) {
    __m128 p = _mm_mul_ps(_mm_mul_ps(dd, _mm_set1_ps(dy)), _mm_cvtepi32_ps(qm));
    return _mm_add_ss(sumf, _mm_sub_ss(p, _mm_movehdup_ps(p)));
}

/* [d, dmin, 0, 0] of a Q4_K/Q5_K block (the two halves at its start) */
static inline __m128 k_dd(const void *blk) {
    uint32_t v;
    memcpy(&v, blk, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)v));
}

/* Q5_K: bit j of qh[l] is bit 4 of element l of sub-block j, moved into
 * place by a 16-bit shift (bit j -> bit 4 of the same byte for j <= 7:
 * the bits shifted in from the other byte land outside the 0x10 mask). */
static inline __m256i q5_hibit(__m256i qh, const int j) {
    __m256i t = j < 4 ? _mm256_slli_epi16(qh, 4 - j) : j > 4 ? _mm256_srli_epi16(qh, j - 4) : qh;
    return _mm256_and_si256(t, _mm256_set1_epi8(0x10));
}

#define YB(c) ((const sk_block_q8_K *)((const char *)y + (size_t)(c) * ys) + i)

/* ---- Q4_K / Q5_K x Q8_K ---------------------------------------------------------
 * Group k (0..3): 32 qs bytes, low nibbles sub-block 2k, high nibbles
 * 2k + 1, against y elements 64k..64k+63; Q5_K adds bit 2k / 2k + 1 of qh
 * as bit 4. One code for both: q5 is a constant after inlining. */

INLINE void k45_tile(int64_t nb, const int rn, const int q5, const void *vx, const void *y, size_t ys, float *s) {
    const size_t bsz = q5 ? sizeof(sk_block_q5_K) : sizeof(sk_block_q4_K);
    __m128 acc[KN];
    UNROLL
    for (int c = 0; c < rn; c++)
        acc[c] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t i = 0; i < nb; i++) {
        /* Q4_K and Q5_K start alike: d, dmin, scales[12]; then Q5_K's qh */
        const sk_block_q4_K *x4 = (const sk_block_q4_K *)((const char *)vx + (size_t)i * bsz);
        const sk_block_q5_K *x5 = (const sk_block_q5_K *)x4;
        K_PREFETCH(x4, bsz);
        const uint8_t *qs = q5 ? x5->qs : x4->qs;
        __m256i scb, mn;
        k4_scales(x4->scales, &scb, &mn);
        const __m256i qh = q5 ? load32(x5->qh) : _mm256_setzero_si256();
        __m256i sumq[KN];
        UNROLL
        for (int c = 0; c < rn; c++)
            sumq[c] = _mm256_setzero_si256();
        UNROLL
        for (int k = 0; k < 4; k++) {
            const __m256i q = load32(qs + 32 * k);
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (q5) {
                lo = _mm256_or_si256(lo, q5_hibit(qh, 2 * k));
                hi = _mm256_or_si256(hi, q5_hibit(qh, 2 * k + 1));
            }
            const __m256i s0 = _mm256_shuffle_epi8(scb, bcast16(2 * k));
            const __m256i s1 = _mm256_shuffle_epi8(scb, bcast16(2 * k + 1));
            UNROLL
            for (int c = 0; c < rn; c++) {
                const int8_t *q8 = YB(c)->qs + 64 * k;
                sumq[c] = K_DOT(sumq[c], lo, load32(q8), s0);
                sumq[c] = K_DOT(sumq[c], hi, load32(q8 + 32), s1);
            }
        }
        const __m128 dd = k_dd(x4);
        UNROLL
        for (int c = 0; c < rn; c++)
            acc[c] = k_accum(acc[c], dd, YB(c)->d, k_reduce(sumq[c], _mm256_madd_epi16(mn, load32(YB(c)->bsums))));
    }
    UNROLL
    for (int c = 0; c < rn; c++)
        s[c] = _mm_cvtss_f32(acc[c]);
}

INLINE void q4_K_tile(int64_t nb, const int rn, const void *x, const void *y, size_t ys, float *s) {
    k45_tile(nb, rn, 0, x, y, ys, s);
}

INLINE void q5_K_tile(int64_t nb, const int rn, const void *x, const void *y, size_t ys, float *s) {
    k45_tile(nb, rn, 1, x, y, ys, s);
}

/* ---- Q6_K x Q8_K ----------------------------------------------------------------
 * Half h (0, 1) of the block: ql0 = ql[64h..+32), ql1 = ql[64h+32..+32),
 * qh = qh[32h..+32); 32-element group k (0..3) is
 *   k = 0: ql0 & 15 | (qh & 3) << 4        k = 1: ql1 & 15 | (qh >> 2 & 3) << 4
 *   k = 2: ql0 >> 4 | (qh >> 4 & 3) << 4   k = 3: ql1 >> 4 | (qh >> 6) << 4
 * against y elements 128h + 32k..+32, whose first 16 use scale 8h + 2k and
 * the next 16 scale 8h + 2k + 1 (the two 128-bit lanes). The -32 offset is
 * taken out once per block with the bsums: 32 sum_g sc_g bsum_g. */

INLINE void q6_K_tile(int64_t nb, const int rn, const void *vx, const void *y, size_t ys, float *s) {
    const sk_block_q6_K *x = vx;
    __m128 acc[KN];
    UNROLL
    for (int c = 0; c < rn; c++)
        acc[c] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++) {
        K_PREFETCH(&x[i], sizeof(sk_block_q6_K));
        const __m128i sc8 = load16(x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8); /* all 16 scales as i16 */
        __m256i sumq[KN];
        UNROLL
        for (int c = 0; c < rn; c++) /* start from -32 sum_g sc_g bsum_g */
            sumq[c] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(YB(c)->bsums)), 5));
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = load32(x[i].ql + 64 * h), ql1 = load32(x[i].ql + 64 * h + 32);
            const __m256i qh = load32(x[i].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
            /* scales 8h..8h+7 as i16 in both lanes */
            const __m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
            UNROLL
            for (int k = 0; k < 4; k++) {
                /* i16 element 2k in the low lane, 2k + 1 in the high lane */
                const __m256i sck = _mm256_shuffle_epi8(
                    sch, _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(0x0100 + 0x0404 * k))),
                                                 _mm_set1_epi16((short)(0x0302 + 0x0404 * k)), 1));
                UNROLL
                for (int c = 0; c < rn; c++)
                    sumq[c] = K_DOT(sumq[c], q[k], load32(YB(c)->qs + 128 * h + 32 * k), sck);
            }
        }
        const __m128 dd = _mm_set_ss(h2f(x[i].d));
        UNROLL
        for (int c = 0; c < rn; c++)
            acc[c] = k_accum(acc[c], dd, YB(c)->d, k_reduce(sumq[c], _mm256_setzero_si256()));
    }
    UNROLL
    for (int c = 0; c < rn; c++)
        s[c] = _mm_cvtss_f32(acc[c]);
}

/* ---- vec_dot and gemm entries ------------------------------------------------------ */

/* vec_dot: the tile with one column. gemm: each weight row against the
 * activation rows in groups of KN; s[c * ss + r] = x_r . y_c. */
#define K_ENTRIES(name)                                                                            \
    static void name##_vec_dot(int64_t n, float *s, const void *x, const void *y) {                \
        name##_tile(n / SK_QK_K, 1, x, y, 0, s);                                                   \
    }                                                                                              \
    static void name##_gemm(int64_t n, int nr, int nc, const void *x, size_t xs, const void *y,    \
                            size_t ys, float *s, size_t ss) {                                      \
        const int64_t nb = n / SK_QK_K;                                                            \
        for (int c0 = 0; c0 < nc; c0 += KN) {                                                      \
            const void *yc = (const char *)y + (size_t)c0 * ys;                                    \
            const int rn = nc - c0 < KN ? nc - c0 : KN;                                            \
            for (int r = 0; r < nr; r++) {                                                         \
                const void *xr = (const char *)x + (size_t)r * xs;                                 \
                float o[KN];                                                                       \
                switch (rn) {                                                                      \
                case 4: name##_tile(nb, 4, xr, yc, ys, o); break;                                  \
                case 3: name##_tile(nb, 3, xr, yc, ys, o); break;                                  \
                case 2: name##_tile(nb, 2, xr, yc, ys, o); break;                                  \
                default: name##_tile(nb, 1, xr, yc, ys, o); break;                                 \
                }                                                                                  \
                for (int c = 0; c < rn; c++)                                                       \
                    s[(size_t)(c0 + c) * ss + r] = o[c];                                           \
            }                                                                                      \
        }                                                                                          \
    }

K_ENTRIES(q4_K)
K_ENTRIES(q5_K)
K_ENTRIES(q6_K)

/* Point the Q4_K, Q5_K and Q6_K vec_dot and gemm entries of table t at
 * this instruction set's kernels. */
static inline void k_register(sk_type_traits *t) {
    t[SK_TYPE_Q4_K].vec_dot = q4_K_vec_dot;
    t[SK_TYPE_Q4_K].gemm = q4_K_gemm;
    t[SK_TYPE_Q5_K].vec_dot = q5_K_vec_dot;
    t[SK_TYPE_Q5_K].gemm = q5_K_gemm;
    t[SK_TYPE_Q6_K].vec_dot = q6_K_vec_dot;
    t[SK_TYPE_Q6_K].gemm = q6_K_gemm;
}

#endif /* SK_QUANT_K_SIMD_H */
