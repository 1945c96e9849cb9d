/* quant_k16_avx512.c - AVX-512 VNNI gemm of Q4_K and Q6_K x Q8_K, 16
 * weight rows at a time (the pre-fill path of the AVX-512 tier).
 *
 * Compiled with the AVX-512 flags (Makefile, by file name); registered by
 * quant_k_avx512.c over quant_k_simd.h's gemm (vec_dot, the decode path,
 * stays that header's). Scalar twins: the reference vec_dot in quant_ref.c;
 * tests/test_quant.c holds every result to the reference's bits.
 *
 * Widen (once per 16 rows and chunk of KB super-blocks, amortised over every
 * column of the call): each 32-element sub-block j of the 16 rows becomes 8
 * vectors whose dword r holds 4 consecutive quants of row r (unsigned:
 * Q4_K 0..15, Q6_K 0..63 = q + 32), read with one dword gather per 16 rows
 * (Q4_K: a gather of the nibble bytes gives two sub-blocks; Q6_K: three
 * gathers, ql0 / ql1 / qh, give four); the rows' scales become i32 vectors
 * (row r in dword r) and the offsets i16 pairs. Then, per column, vpdpbusd
 * of the widened vector with the broadcast of 4 bytes of the column gives
 * row r's dot in dword r for 16 rows at once (exact: 4 products u * y, no
 * saturation), vpmulld applies the sub-block's scale, and vpdpwssd the
 * offsets (Q4_K: m_j (bsum_2j + bsum_2j+1); Q6_K: sc_2k bsum_2k +
 * sc_2k+1 bsum_2k+1, times 32 and subtracted): no horizontal sums.
 *
 * Ranges (Q8_K y in -128..127): a Q6_K group dot is at most 16 * 63 * 128,
 * times |sc| <= 128 and over 16 groups < 2^29; Q4_K's sum is smaller; the
 * block's integer sums are exact (quant_k_simd.h's range argument), so per
 * (row, column) lane they equal the reference's sumq and summ, and the
 * float part is the reference's, operation for operation:
 *   Q4_K: acc = acc + ((d dy) sumq - (dmin dy) summ)
 *   Q6_K: acc = acc + (d dy) sumq
 * in super-block order (chunks keep their running sums in s).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "simd256.h"

#define KB 8  /* super-blocks per chunk */
#define NC 8  /* columns per tile: acc, sq, sm/so and dot each, all 32 registers, so the compiler
                * spills a few; NC 4 measured the same (Gemma 3 pp512 1,370-1,492 vs 1,516-1,531
                * tokens/s, a 1B-shaped Q4_K_M pp256 213-214 vs 208-212) */
#define K16_INLINE static inline __attribute__((always_inline))
#define U8 _Pragma("GCC unroll 8")

typedef struct {
    __m512i q[KB][8][8]; /* [super-block][sub-block j][dword t]: dword r = row r's quants 32j + 4t.. */
    __m512i sc[KB][16];  /* Q4_K: [j] sc_j; Q6_K: [g] sc_g (16-element groups); i32, row r in dword r */
    __m512i off[KB][8];  /* Q4_K: [j] m_j, m_j; Q6_K: [k] sc_2k, sc_2k+1 (i16 pair in dword r) */
    float d[KB][16];     /* [super-block][row] d; 0 for rows past the group */
    float dmin[KB][16];  /* Q4_K's dmin */
} k16_rows;

static inline int32_t pair16(int a, int b) { return (int32_t)(uint16_t)(int16_t)a | (int32_t)((uint32_t)(uint16_t)(int16_t)b << 16); }

/* The dword at byte offset o of each live row's block (rows past rm: 0),
 * row r at base + r xs: one gather with 32-bit offsets idx = r xs, or, for
 * rows too long for those (xs > INT32_MAX / 16: a row of over 160 million
 * elements, no real model), 16 plain loads. */
K16_INLINE __m512i gather(__mmask16 live, __m512i idx, const char *base, size_t o, size_t xs) {
    if (xs <= INT32_MAX / 16) return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, base + o, 1);
    _Alignas(64) int32_t v[16] = {0};
    for (int r = 0; r < 16; r++)
        if ((live >> r) & 1) memcpy(&v[r], base + (size_t)r * xs + o, 4);
    return _mm512_load_si512(v);
}

/* ---- widening ---------------------------------------------------------------- */

static void q4_K_widen16(const char *x, size_t xs, int rm, int64_t i0, int64_t nb, k16_rows *w) {
    const __mmask16 live = (__mmask16)((1u << rm) - 1);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)xs));
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t i = 0; i < nb; i++) {
        const char *bi = x + (size_t)(i0 + i) * sizeof(sk_block_q4_K);
        U8 for (int k = 0; k < 4; k++) /* nibble bytes 32k..: sub-blocks 2k (low) and 2k + 1 (high) */
            U8 for (int t = 0; t < 8; t++) {
                const __m512i v = gather(live, idx, bi, offsetof(sk_block_q4_K, qs) + 32 * (size_t)k + 4 * (size_t)t, xs);
                w->q[i][2 * k][t] = _mm512_and_si512(v, m4);
                w->q[i][2 * k + 1][t] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        _Alignas(64) int32_t sc[8][16], mm[8][16];
        for (int r = 0; r < 16; r++) {
            const sk_block_q4_K *b = r < rm ? (const sk_block_q4_K *)(bi + (size_t)r * xs) : NULL;
            for (int j = 0; j < 8; j++) {
                int s = 0, m = 0;
                if (b) sk_q4k_scale_min(j, b->scales, &s, &m);
                sc[j][r] = s;
                mm[j][r] = pair16(m, m);
            }
            w->d[i][r] = b ? h2f(b->d) : 0.0f;
            w->dmin[i][r] = b ? h2f(b->dmin) : 0.0f;
        }
        for (int j = 0; j < 8; j++) {
            w->sc[i][j] = _mm512_load_si512(sc[j]);
            w->off[i][j] = _mm512_load_si512(mm[j]);
        }
    }
}

/* Q6_K: quant_k_simd.h's layout; half h, group k (sub-block 4h + k):
 *   k = 0: ql0 & 15 | (qh & 3) << 4        k = 1: ql1 & 15 | (qh >> 2 & 3) << 4
 *   k = 2: ql0 >> 4 | (qh >> 4 & 3) << 4   k = 3: ql1 >> 4 | (qh >> 6) << 4 */
static void q6_K_widen16(const char *x, size_t xs, int rm, int64_t i0, int64_t nb, k16_rows *w) {
    const __mmask16 live = (__mmask16)((1u << rm) - 1);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)xs));
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++) {
        const char *bi = x + (size_t)(i0 + i) * sizeof(sk_block_q6_K);
        U8 for (int h = 0; h < 2; h++)
            U8 for (int t = 0; t < 8; t++) {
                const size_t o = 4 * (size_t)t;
                const __m512i ql0 = gather(live, idx, bi, offsetof(sk_block_q6_K, ql) + 64 * (size_t)h + o, xs);
                const __m512i ql1 = gather(live, idx, bi, offsetof(sk_block_q6_K, ql) + 64 * (size_t)h + 32 + o, xs);
                const __m512i qh = gather(live, idx, bi, offsetof(sk_block_q6_K, qh) + 32 * (size_t)h + o, xs);
                w->q[i][4 * h][t] = _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m2));
                w->q[i][4 * h + 1][t] = _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m2));
                w->q[i][4 * h + 2][t] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), m4), _mm512_and_si512(qh, m2));
                w->q[i][4 * h + 3][t] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), m4),
                                                        _mm512_and_si512(_mm512_srli_epi16(qh, 2), m2));
            }
        _Alignas(64) int32_t sc[16][16], sp[8][16];
        for (int r = 0; r < 16; r++) {
            const sk_block_q6_K *b = r < rm ? (const sk_block_q6_K *)(bi + (size_t)r * xs) : NULL;
            for (int g = 0; g < 16; g++) sc[g][r] = b ? b->scales[g] : 0;
            for (int k = 0; k < 8; k++) sp[k][r] = pair16(sc[2 * k][r], sc[2 * k + 1][r]);
            w->d[i][r] = b ? h2f(b->d) : 0.0f;
        }
        for (int g = 0; g < 16; g++) w->sc[i][g] = _mm512_load_si512(sc[g]);
        for (int k = 0; k < 8; k++) w->off[i][k] = _mm512_load_si512(sp[k]);
    }
}

/* ---- tiles: 16 rows x rn columns over super-blocks [0, nb) of the chunk ---- */

static inline __m512i bcast(const void *p) { return _mm512_set1_epi32((int)ld_u32(p)); }

/* sq[c] += scale * (dwords t0 .. t0+nt-1 of sub-block j of super-block i,
 * dotted with column c's bytes 32j + 4t..): the integer dot of one scale
 * group (Q4_K: a sub-block, nt = 8; Q6_K: half of one, nt = 4) */
K16_INLINE void scaled_dot(const k16_rows *w, int64_t i, int j, int t0, const int nt, __m512i scale, const int rn,
                           const sk_block_q8_K *const y[NC], __m512i sq[NC]) {
    __m512i dot[NC];
    U8 for (int c = 0; c < rn; c++) dot[c] = _mm512_setzero_si512();
    U8 for (int t = t0; t < t0 + nt; t++) {
        const __m512i q = _mm512_load_si512(&w->q[i][j][t]);
        U8 for (int c = 0; c < rn; c++) dot[c] = _mm512_dpbusd_epi32(dot[c], q, bcast(y[c][i].qs + 32 * j + 4 * t));
    }
    U8 for (int c = 0; c < rn; c++) sq[c] = _mm512_add_epi32(sq[c], _mm512_mullo_epi32(dot[c], scale));
}

/* o[c] += off_j . (bsum_2j, bsum_2j+1) of column c: Q4_K m_j (bsum_2j +
 * bsum_2j+1), Q6_K sc_2j bsum_2j + sc_2j+1 bsum_2j+1 */
K16_INLINE void offset_dot(const k16_rows *w, int64_t i, int j, const int rn, const sk_block_q8_K *const y[NC],
                           __m512i o[NC]) {
    U8 for (int c = 0; c < rn; c++) o[c] = _mm512_dpwssd_epi32(o[c], w->off[i][j], bcast(y[c][i].bsums + 2 * j));
}

K16_INLINE void q4_K_tile16(const k16_rows *w, int64_t nb, const int rn, const sk_block_q8_K *const y[NC],
                            __m512 acc[NC]) {
    for (int64_t i = 0; i < nb; i++) {
        __m512i sq[NC], sm[NC];
        U8 for (int c = 0; c < rn; c++) sq[c] = sm[c] = _mm512_setzero_si512();
        U8 for (int j = 0; j < 8; j++) {
            scaled_dot(w, i, j, 0, 8, w->sc[i][j], rn, y, sq);
            offset_dot(w, i, j, rn, y, sm);
        }
        const __m512 d = _mm512_load_ps(w->d[i]), dmin = _mm512_load_ps(w->dmin[i]);
        U8 for (int c = 0; c < rn; c++) {
            const __m512 dy = _mm512_set1_ps(y[c][i].d);
            const __m512 a = _mm512_mul_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sq[c]));
            const __m512 b = _mm512_mul_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(sm[c]));
            acc[c] = _mm512_add_ps(acc[c], _mm512_sub_ps(a, b));
        }
    }
}

K16_INLINE void q6_K_tile16(const k16_rows *w, int64_t nb, const int rn, const sk_block_q8_K *const y[NC],
                            __m512 acc[NC]) {
    for (int64_t i = 0; i < nb; i++) {
        __m512i sq[NC], so[NC];
        U8 for (int c = 0; c < rn; c++) sq[c] = so[c] = _mm512_setzero_si512();
        U8 for (int j = 0; j < 8; j++) {
            U8 for (int u = 0; u < 2; u++) /* group 2j + u: dwords 4u..4u+3 */
                scaled_dot(w, i, j, 4 * u, 4, w->sc[i][2 * j + u], rn, y, sq);
            offset_dot(w, i, j, rn, y, so);
        }
        const __m512 d = _mm512_load_ps(w->d[i]);
        U8 for (int c = 0; c < rn; c++) {
            const __m512i s = _mm512_sub_epi32(sq[c], _mm512_slli_epi32(so[c], 5)); /* - 32 sum_g sc_g bsum_g */
            const __m512 dy = _mm512_set1_ps(y[c][i].d);
            acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(s)));
        }
    }
}

/* ---- the driver -------------------------------------------------------------- */

/* Columns [c, c + rn), rows [g, g + rm), super-blocks [i0, i0 + nb): the
 * running sums from s (zero at i0 = 0), the tile, back to s. */
#define K16_TILE_AT(name)                                                                                  \
    K16_INLINE void name##_tile16_at(const k16_rows *w, const char *vy, size_t ys, int64_t i0, int64_t nb,  \
                                     int c, const int rn, int g, int rm, float *s, size_t ss) {               \
        const sk_block_q8_K *y[NC];                                                                        \
        __m512 acc[NC];                                                                                    \
        const __mmask16 live = (__mmask16)((1u << rm) - 1);                                                \
        for (int k = 0; k < rn; k++) {                                                                     \
            y[k] = (const sk_block_q8_K *)(vy + (size_t)(c + k) * ys) + i0;                                \
            acc[k] = i0 > 0 ? _mm512_maskz_loadu_ps(live, s + (size_t)(c + k) * ss + g) : _mm512_setzero_ps(); \
        }                                                                                                  \
        name##_tile16(w, nb, rn, y, acc);                                                                  \
        for (int k = 0; k < rn; k++) _mm512_mask_storeu_ps(s + (size_t)(c + k) * ss + g, live, acc[k]);   \
    }                                                                                                      \
    static void name##_gemm16(int64_t n, int nr, int nc, const void *vx, size_t xs, const void *vy,        \
                              size_t ys, float *s, size_t ss) {                                            \
        const int64_t nbt = n / SK_QK_K;                                                                   \
        _Alignas(64) k16_rows w;                                                                           \
        for (int64_t i0 = 0; i0 < nbt; i0 += KB) {                                                         \
            const int64_t nb = nbt - i0 < KB ? nbt - i0 : KB;                                              \
            for (int g = 0; g < nr; g += 16) {                                                             \
                const int rm = nr - g < 16 ? nr - g : 16;                                                  \
                name##_widen16((const char *)vx + (size_t)g * xs, xs, rm, i0, nb, &w);                     \
                int c = 0;                                                                                 \
                for (; c + NC <= nc; c += NC)                                                              \
                    name##_tile16_at(&w, vy, ys, i0, nb, c, NC, g, rm, s, ss);                             \
                switch (nc - c) {                                                                          \
                case 7: name##_tile16_at(&w, vy, ys, i0, nb, c, 7, g, rm, s, ss); break;                   \
                case 6: name##_tile16_at(&w, vy, ys, i0, nb, c, 6, g, rm, s, ss); break;                   \
                case 5: name##_tile16_at(&w, vy, ys, i0, nb, c, 5, g, rm, s, ss); break;                   \
                case 4: name##_tile16_at(&w, vy, ys, i0, nb, c, 4, g, rm, s, ss); break;                   \
                case 3: name##_tile16_at(&w, vy, ys, i0, nb, c, 3, g, rm, s, ss); break;                   \
                case 2: name##_tile16_at(&w, vy, ys, i0, nb, c, 2, g, rm, s, ss); break;                   \
                case 1: name##_tile16_at(&w, vy, ys, i0, nb, c, 1, g, rm, s, ss); break;                   \
                default: break;                                                                            \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }

K16_TILE_AT(q4_K)
K16_TILE_AT(q6_K)

/* Point table's Q4_K and Q6_K gemm at the 16-row kernels. */
void sk_quant_register_k16_avx512(sk_type_traits *t) {
    t[SK_TYPE_Q4_K].gemm = q4_K_gemm16;
    t[SK_TYPE_Q6_K].gemm = q6_K_gemm16;
}
