/* pack_avx512.c - AVX-512 VNNI kernels over the packed layouts (pack.h).
 *
 * One 16-row group at a time; the four (nibbles) or eight (Q8_0) 64-byte
 * quant registers of a block are expanded once (Q5_0: with its fifth bits
 * or-ed in at bit 4, u <= 31) and used for NC activation
 * columns: per column, 8 vpdpbusd with the activation's 4-byte groups
 * broadcast from memory give the 16 rows' integer block dots, started from
 * -K * sum(q) (the exact offset correction), then one convert and one or
 * two FMAs apply the scales. The accumulators are the 16 outputs in row
 * order: no horizontal sums. Scalar twins: pack.c (sk_packed_gemm_ref,
 * sk_q8p_quantize_ref). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "pack_impl.h"
#include "quant.h"

#define NC 8 /* activation columns per tile */
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

static inline __m512i bcast32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* s[c * ss + r] for r < 16, c < nc: one group (nb blocks) times nc columns.
 * type, nc are constants in each instantiation. */
INLINE void group_tile(const int type, const int nc, int64_t nb, const uint8_t *w, const char *y,
                       size_t ys, float *s, size_t ss) {
    const int hb = sk_pack_head_bytes(type), bb = sk_pack_block_bytes(type);
    const int K = type == SK_TYPE_Q4_0 ? 8 : type == SK_TYPE_Q5_0 ? 16 : type == SK_TYPE_Q8_0 ? 128 : 0;
    const __m512i low4 = _mm512_set1_epi8(15), bit4 = _mm512_set1_epi8(16);
    __m512 acc[NC];
    UNROLL
    for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *o = w + (size_t)i * (size_t)bb;
        const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o));
        __m512 mx = _mm512_setzero_ps();
        if (type == SK_TYPE_Q4_1) mx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32)));
        const uint8_t *q = o + hb;
        __m512i wv[8];
        if (type == SK_TYPE_Q8_0) {
            UNROLL
            for (int k = 0; k < 8; k++) wv[k] = _mm512_loadu_si512(q + 64 * k);
        } else {
            UNROLL
            for (int k = 0; k < 4; k++) {
                __m512i raw = _mm512_loadu_si512(q + 64 * k);
                wv[k] = _mm512_and_si512(raw, low4);
                wv[k + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
            }
            if (type == SK_TYPE_Q5_0) { /* register k's fifth bits: bit k of each hb byte, to bit 4 */
                const __m512i fifth = _mm512_loadu_si512(o + 32);
                UNROLL
                for (int k = 0; k < 8; k++) {
                    const __m512i t = k <= 4 ? _mm512_slli_epi16(fifth, 4 - k) : _mm512_srli_epi16(fifth, k - 4);
                    wv[k] = _mm512_ternarylogic_epi32(wv[k], t, bit4, 0xf8); /* wv | (t & bit4) */
                }
            }
        }
        UNROLL
        for (int c = 0; c < nc; c++) {
            const sk_block_q8p *yb = (const sk_block_q8p *)(y + (size_t)c * ys) + i;
            __m512i d0 = K ? _mm512_set1_epi32(-K * yb->sum) : _mm512_setzero_si512();
            __m512i d1 = _mm512_setzero_si512();
            d0 = _mm512_dpbusd_epi32(d0, wv[0], bcast32(yb->qs + 0));
            d1 = _mm512_dpbusd_epi32(d1, wv[1], bcast32(yb->qs + 4));
            d0 = _mm512_dpbusd_epi32(d0, wv[2], bcast32(yb->qs + 8));
            d1 = _mm512_dpbusd_epi32(d1, wv[3], bcast32(yb->qs + 12));
            d0 = _mm512_dpbusd_epi32(d0, wv[4], bcast32(yb->qs + 16));
            d1 = _mm512_dpbusd_epi32(d1, wv[5], bcast32(yb->qs + 20));
            d0 = _mm512_dpbusd_epi32(d0, wv[6], bcast32(yb->qs + 24));
            d1 = _mm512_dpbusd_epi32(d1, wv[7], bcast32(yb->qs + 28));
            const __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1));
            acc[c] = _mm512_fmadd_ps(f, _mm512_mul_ps(dx, _mm512_set1_ps(yb->d)), acc[c]);
            if (type == SK_TYPE_Q4_1)
                acc[c] = _mm512_fmadd_ps(mx, _mm512_set1_ps(yb->d * (float)yb->sum), acc[c]);
        }
    }
    UNROLL
    for (int c = 0; c < nc; c++) _mm512_storeu_ps(s + (size_t)c * ss, acc[c]);
}

#define COLS_CASE(T, k) \
    case k: group_tile(T, k, nb, wg, yc, ys, sc, ss); break;

#define TYPE_GEMM(name, T)                                                                         \
    static void name(int64_t nb, int64_t ng, int nc, const uint8_t *w, size_t gs, const char *y,   \
                     size_t ys, float *s, size_t ss) {                                             \
        for (int64_t g = 0; g < ng; g++) {                                                         \
            const uint8_t *wg = w + (size_t)g * gs;                                                \
            for (int c0 = 0; c0 < nc; c0 += NC) {                                                  \
                const char *yc = y + (size_t)c0 * ys;                                              \
                float *sc = s + (size_t)c0 * ss + (size_t)g * SK_PACK_ROWS;                        \
                switch (nc - c0 < NC ? nc - c0 : NC) {                                             \
                    COLS_CASE(T, 1) COLS_CASE(T, 2) COLS_CASE(T, 3) COLS_CASE(T, 4)                \
                    COLS_CASE(T, 5) COLS_CASE(T, 6) COLS_CASE(T, 7)                                \
                default: group_tile(T, NC, nb, wg, yc, ys, sc, ss); break;                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

SK_PACK_GEMMS(TYPE_GEMM)

/* Per block: |x| max of 32 floats, d = max / 127, q = round(x / d) (half
 * away from zero, as roundf), sum of q. */
static void q8p_quantize(const float *x, sk_block_q8p *y, int64_t n) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        a = _mm512_mul_ps(a, vid);
        b = _mm512_mul_ps(b, vid);
        /* round half away from zero: trunc(v + copysign(0.5, v)) */
        const __m512 half = _mm512_set1_ps(0.5f);
        a = _mm512_add_ps(a, _mm512_or_ps(half, _mm512_and_ps(a, sign)));
        b = _mm512_add_ps(b, _mm512_or_ps(half, _mm512_and_ps(b, sign)));
        __m512i qa = _mm512_cvttps_epi32(a), qb = _mm512_cvttps_epi32(b);
        y[i].d = d;
        y[i].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtepi32_epi8(qb));
    }
}

/* Override both entries of t (see pack_impl.h). */
void sk_pack_register_avx512(sk_pack_kernels *t) {
    t->gemm = packed_gemm;
    t->quantize = q8p_quantize;
}
