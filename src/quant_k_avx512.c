/* quant_k_avx512.c - AVX-512 VL + VNNI kernels for the K-quant formats.
 *
 * Compiled with the AVX2 flags plus -mavx512f -mavx512bw -mavx512vl
 * -mavx512dq -mavx512vnni (Makefile, by file name); only called when quant.c
 * has seen those features in cpuid. Registered on top of the AVX2 table
 * (quant_k_avx2.c), so whatever is not here keeps its AVX2 kernel (the
 * Q8_K quantizer). Each kernel has its scalar twin in quant_ref.c;
 * tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_K, Q5_K and Q6_K x Q8_K.
 *
 * The same block dot as quant_k_avx2.c (see there for the equations, the
 * range argument and why the results are the reference's bits), with one
 * change: the vpmaddwd + vpaddd that scale the i16 pair sums by the
 * sub-block scale and accumulate them become one vpdpwssd. It stays at 256
 * bits: 512-bit versions (two sub-blocks per register, vpermw / vptestmb
 * for the scales and Q5_K's fifth bit) measured no faster than AVX2 for
 * vec_dot on the AMD Zen 4 we test on, which splits 512-bit operations in
 * two, while this one is 3-10% faster for vec_dot and ~15% for gemm.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

#define KN 4 /* activation rows per gemm tile */
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* ---- helpers (as in quant_k_avx2.c) ------------------------------------------- */

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m128i load16(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* Q4_K/Q5_K scales and mins: sc[0..7] as i16 in both 128-bit lanes of *sc,
 * m[0], m[0], .., m[7], m[7] as i16 in *m2. Reads 16 bytes from s. */
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

/* [sum of the 8 lanes of q, sum of the 8 lanes of m, same, same], exact */
static inline __m128i k_reduce(__m256i q, __m256i m) {
    const __m256i t = _mm256_hadd_epi32(q, m);
    const __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    return _mm_hadd_epi32(u, u);
}

/* sumf + ((d dy) sumq - (dmin dy) summ), dd = [d, dmin], qm = [sumq, summ]:
 * the reference's float operations in its order */
static inline __m128 k_accum(__m128 sumf, __m128 dd, float dy, __m128i qm) {
    __m128 p = _mm_mul_ps(_mm_mul_ps(dd, _mm_set1_ps(dy)), _mm_cvtepi32_ps(qm));
    return _mm_add_ss(sumf, _mm_sub_ss(p, _mm_movehdup_ps(p)));
}

/* [d, dmin, 0, 0] of a Q4_K/Q5_K block */
static inline __m128 k_dd(const void *blk) {
    uint32_t v;
    memcpy(&v, blk, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)v));
}

/* bit j of each byte of qh moved to bit 4 (0x10), as in quant_k_avx2.c */
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
                sumq[c] = _mm256_dpwssd_epi32(sumq[c], _mm256_maddubs_epi16(lo, load32(q8)), s0);
                sumq[c] = _mm256_dpwssd_epi32(sumq[c], _mm256_maddubs_epi16(hi, load32(q8 + 32)), s1);
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

/* ---- Q6_K x Q8_K ------------------------------------------------------------------
 * As quant_k_avx2.c: half h, group k = 0..3 of 32 elements, first 16 with
 * scale 8h + 2k, next 16 with 8h + 2k + 1; -32 sum_g sc_g bsum_g first. */

INLINE void q6_K_tile(int64_t nb, const int rn, const void *vx, const void *y, size_t ys, float *s) {
    const sk_block_q6_K *x = vx;
    __m128 acc[KN];
    UNROLL
    for (int c = 0; c < rn; c++)
        acc[c] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sc8 = load16(x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m256i sumq[KN];
        UNROLL
        for (int c = 0; c < rn; c++)
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
            const __m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
            UNROLL
            for (int k = 0; k < 4; k++) {
                /* i16 element 2k in the low lane, 2k + 1 in the high lane */
                const __m256i sck = _mm256_shuffle_epi8(
                    sch, _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(0x0100 + 0x0404 * k))),
                                                 _mm_set1_epi16((short)(0x0302 + 0x0404 * k)), 1));
                UNROLL
                for (int c = 0; c < rn; c++)
                    sumq[c] = _mm256_dpwssd_epi32(
                        sumq[c], _mm256_maddubs_epi16(q[k], load32(YB(c)->qs + 128 * h + 32 * k)), sck);
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

/* Override the AVX-512 VNNI K-quant entries of table (applied after the
 * AVX2 ones). */
void sk_quant_register_k_avx512(sk_type_traits *t) {
    t[SK_TYPE_Q4_K].vec_dot = q4_K_vec_dot;
    t[SK_TYPE_Q4_K].gemm = q4_K_gemm;
    t[SK_TYPE_Q5_K].vec_dot = q5_K_vec_dot;
    t[SK_TYPE_Q5_K].gemm = q5_K_gemm;
    t[SK_TYPE_Q6_K].vec_dot = q6_K_vec_dot;
    t[SK_TYPE_Q6_K].gemm = q6_K_gemm;
}
