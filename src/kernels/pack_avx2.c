/* pack_avx2.c - AVX2 kernels over the packed layouts (pack.h).
 *
 * The same 16-row groups as the AVX-512 kernels, taken as two 8-row halves:
 * quant register k of a group-block is 64 bytes, rows 0-7 in its first 32
 * and rows 8-15 in its last 32, so one ymm holds four bytes of each of 8
 * rows (measured against a separate 8-row layout: not needed, a group of
 * <= 16 KB stays in L1 while its second half runs, and the packing, the
 * unpacking and the embedding lookups stay one code for every tier).
 *
 * Without vpdpbusd (this tier has no AVX-VNNI requirement), vpmaddubsw
 * (u8 x s8 -> adjacent pairs summed to s16) then vpmaddwd with ones (-> s32)
 * give each row's four-byte dot in its dword, all exact:
 *   - Q4_0, Q4_1: nibbles u <= 15, |q| <= 127, so a 16-bit lane is at most
 *     2 * 15 * 127 = 3810 and the eight products of a block are summed in
 *     16 bits (<= 30480, no saturation, no wrap), widened once per block;
 *     Q4_0's -8 * sum(q) is added after widening.
 *   - Q5_0: u <= 31, a lane is at most 2 * 31 * 127 = 7874, so the products
 *     are summed in 16 bits four at a time (<= 31496) and widened twice per
 *     block; -16 * sum(q) is added after widening. Register k's fifth bits
 *     are bit k of each hb byte: a 16-bit shift by 4 - k (or k - 4) puts
 *     them at bit 4 without crossing a byte, and a mask keeps them.
 *   - Q8_0: the stored u = w + 128 would saturate vpmaddubsw (2 * 255 * 127),
 *     so the kernel flips it back to the file's signed w and multiplies |w|
 *     by sign(w) * q (<= 2 * 128 * 127 = 32512 per lane), widening each
 *     product; sum w q equals the AVX-512 kernel's sum u q - 128 sum(q).
 *
 * Per block and column the float part is, operation for operation, the
 * AVX-512 kernel's: f = (float)dot; acc = fma(f, d_r * dy, acc); for Q4_1
 * acc = fma(m_r, dy * sum(q), acc). Each column has its own accumulator and
 * runs the blocks in order, whatever the column count or the column's
 * place in a tile: the output of a column is the same bits for nc = 1
 * (decode) and any pre-fill batch (batch invariance, tests/test_pack.c),
 * and the same bits as the AVX-512 kernel's. Scalar twins: pack_ref.c
 * (sk_packed_gemm_ref, sk_q8p_quantize_ref). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "pack_impl.h"
#include "quant.h"

#define NC 4 /* activation columns per tile: 8 expanded weight registers + 4 accumulators */
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

static inline __m256i bcast32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* s[c * ss + r] for r < 8, c < nc: rows 8h .. 8h+7 of one group (nb blocks)
 * times nc columns; type and nc are constants in each instantiation.
 * w: the group; y: nc rows of Q8P blocks, ys bytes apart. */
INLINE void half_tile(const int type, const int nc, int64_t nb, const uint8_t *w, int h,
                      const char *y, size_t ys, float *s, size_t ss) {
    const int hb = sk_pack_head_bytes(type), bb = sk_pack_block_bytes(type);
    const int K = type == SK_TYPE_Q4_0 ? 8 : type == SK_TYPE_Q5_0 ? 16 : 0; /* Q8_0 is made signed below */
    const __m256i low4 = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
    __m256 acc[NC];
    UNROLL
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *o = w + (size_t)i * (size_t)bb;
        const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * h)));
        __m256 mx = _mm256_setzero_ps();
        if (type == SK_TYPE_Q4_1) mx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 32 + 16 * h)));
        const uint8_t *q = o + hb + 32 * h;
        __m256i wv[8], wa[8]; /* Q8_0: wv the signed quants, wa their magnitudes */
        if (type == SK_TYPE_Q8_0) {
            UNROLL
            for (int k = 0; k < 8; k++) {
                wv[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + 64 * k)),
                                         _mm256_set1_epi8(-128));
                wa[k] = _mm256_abs_epi8(wv[k]);
            }
        } else {
            UNROLL
            for (int k = 0; k < 4; k++) {
                __m256i raw = _mm256_loadu_si256((const __m256i *)(q + 64 * k));
                wv[k] = _mm256_and_si256(raw, low4);
                wv[k + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
            }
            if (type == SK_TYPE_Q5_0) {
                const __m256i fifth = _mm256_loadu_si256((const __m256i *)(o + 32 + 32 * h));
                UNROLL
                for (int k = 0; k < 8; k++) {
                    const __m256i t = k <= 4 ? _mm256_slli_epi16(fifth, 4 - k) : _mm256_srli_epi16(fifth, k - 4);
                    wv[k] = _mm256_or_si256(wv[k], _mm256_and_si256(t, bit4));
                }
            }
        }
        UNROLL
        for (int c = 0; c < nc; c++) {
            const sk_block_q8p *yb = (const sk_block_q8p *)(y + (size_t)c * ys) + i;
            __m256i d;
            if (type == SK_TYPE_Q8_0) {
                d = _mm256_setzero_si256();
                UNROLL
                for (int k = 0; k < 8; k++) {
                    __m256i p = _mm256_maddubs_epi16(wa[k], _mm256_sign_epi8(bcast32(yb->qs + 4 * k), wv[k]));
                    d = _mm256_add_epi32(d, _mm256_madd_epi16(p, ones));
                }
            } else if (type == SK_TYPE_Q5_0) {
                __m256i p0 = _mm256_maddubs_epi16(wv[0], bcast32(yb->qs)),
                        p1 = _mm256_maddubs_epi16(wv[4], bcast32(yb->qs + 16));
                UNROLL
                for (int k = 1; k < 4; k++) {
                    p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(wv[k], bcast32(yb->qs + 4 * k)));
                    p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(wv[k + 4], bcast32(yb->qs + 16 + 4 * k)));
                }
                d = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
                d = _mm256_add_epi32(d, _mm256_set1_epi32(-K * yb->sum));
            } else {
                __m256i p = _mm256_maddubs_epi16(wv[0], bcast32(yb->qs));
                UNROLL
                for (int k = 1; k < 8; k++)
                    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(wv[k], bcast32(yb->qs + 4 * k)));
                d = _mm256_madd_epi16(p, ones);
                if (K) d = _mm256_add_epi32(d, _mm256_set1_epi32(-K * yb->sum));
            }
            const __m256 f = _mm256_cvtepi32_ps(d);
            acc[c] = _mm256_fmadd_ps(f, _mm256_mul_ps(dx, _mm256_set1_ps(yb->d)), acc[c]);
            if (type == SK_TYPE_Q4_1)
                acc[c] = _mm256_fmadd_ps(mx, _mm256_set1_ps(yb->d * (float)yb->sum), acc[c]);
        }
    }
    UNROLL
    for (int c = 0; c < nc; c++) _mm256_storeu_ps(s + (size_t)c * ss, acc[c]);
}

#define COLS_CASE(T, k) \
    case k: half_tile(T, k, nb, wg, h, yc, ys, sc, ss); break;

/* groups one after the other; per group each half runs over all columns in
 * tiles of NC (the group stays in L1 between the halves and the tiles) */
#define TYPE_GEMM(name, T)                                                                         \
    static void name(int64_t nb, int64_t ng, int nc, const uint8_t *w, size_t gs, const char *y,   \
                     size_t ys, float *s, size_t ss) {                                             \
        for (int64_t g = 0; g < ng; g++) {                                                         \
            const uint8_t *wg = w + (size_t)g * gs;                                                \
            for (int h = 0; h < 2; h++)                                                            \
                for (int c0 = 0; c0 < nc; c0 += NC) {                                              \
                    const char *yc = y + (size_t)c0 * ys;                                          \
                    float *sc = s + (size_t)c0 * ss + (size_t)g * SK_PACK_ROWS + 8 * (size_t)h;    \
                    switch (nc - c0 < NC ? nc - c0 : NC) {                                         \
                        COLS_CASE(T, 1) COLS_CASE(T, 2) COLS_CASE(T, 3)                            \
                    default: half_tile(T, NC, nb, wg, h, yc, ys, sc, ss); break;                   \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }

SK_PACK_GEMMS(TYPE_GEMM)

/* Per block: |x| max of 32 floats, d = max / 127, q = round(x / d) half away
 * from zero as trunc(x * (1 / d) + copysign(0.5, .)), sum of q: the
 * AVX-512 quantizer's operations, so both tiers give the same Q8P bytes. */
static void q8p_quantize(const float *x, sk_block_q8p *y, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        __m256 v[4];
        UNROLL
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i qi[4];
        UNROLL
        for (int k = 0; k < 4; k++) {
            __m256 t = _mm256_mul_ps(v[k], vid);
            t = _mm256_add_ps(t, _mm256_or_ps(half, _mm256_and_ps(t, sign)));
            qi[k] = _mm256_cvttps_epi32(t);
        }
        __m256i t = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
        __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
        /* packs work per 128-bit lane: the permutation restores element order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        y[i].d = d;
        y[i].sum = _mm_cvtsi128_si32(u);
        _mm256_storeu_si256((__m256i *)y[i].qs, p);
    }
}

/* Override both entries of t (see pack_impl.h). */
void sk_pack_register_avx2(sk_pack_kernels *t) {
    t->gemm = packed_gemm;
    t->quantize = q8p_quantize;
}
