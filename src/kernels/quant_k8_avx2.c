/* quant_k8_avx2.c - AVX2 gemm of Q4_K and Q6_K x Q8_K, 8 weight rows at a
 * time, interleaved per call (the pre-fill path of the AVX2 tier).
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile, by file name); registered by
 * quant_k_avx2.c over quant_k_simd.h's gemm (which stays the AVX-512 tier's
 * and the decode path's: vec_dot is not touched). Scalar twins: the
 * reference vec_dot in quant_ref.c; tests/test_quant.c holds every result
 * to the reference's bits.
 *
 * Widen (once per 8 rows and chunk of KB super-blocks, amortised over every
 * column of the call): each 32-element sub-block of the 8 rows becomes 8
 * vectors whose dword r holds 4 consecutive quants of row r (unsigned:
 * Q4_K 0..15, Q6_K 0..63 = q + 32), an 8 x 8 dword transpose; the rows'
 * scales become i16 vectors with row r's scale in i16 lanes 2r and 2r + 1.
 * Then vpmaddubsw(widened, broadcast of 4 bytes of the column) gives row
 * r's two pair sums in i16 lanes 2r, 2r + 1 for 8 rows at once, and
 * vpmaddwd with the scale vector the row's scaled sum in i32 lane r: no
 * horizontal sums.
 *
 * Ranges (Q8_K y in -128..127): Q4_K pair sums <= 15 * 128 * 2 = 3,840,
 * eight of them (a 32-element sub-block) add in i16 (30,720 < 32,767);
 * Q6_K pair sums <= 63 * 128 * 2 = 16,128, two add in i16 (32,256). The
 * block's integer sums are exact (quant_k_simd.h's range argument), so
 * per (row, column) lane they equal the reference's sumq and summ, and the
 * float part is the reference's, operation for operation:
 *   Q4_K: acc = acc + ((d dy) sumq - (dmin dy) summ)
 *   Q6_K: acc = acc + (d dy) sumq,  sumq = sum_g sc_g sum (q + 32) y - 32 sum_g sc_g bsum_g
 * in super-block order (chunks keep their running sums in s).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "simd256.h"

#define KB 8 /* super-blocks per chunk */
#define K8_INLINE static inline __attribute__((always_inline))
#define U8 _Pragma("GCC unroll 8")

typedef struct {
    __m256i q[KB][8][8];  /* [super-block][sub-block j][dword t]: dword r = row r's quants 32j + 4t.. */
    __m256i sc[KB][16];   /* Q4_K: [j] sc_j; Q6_K: [g] sc_g (16-element groups); i16 lanes 2r, 2r + 1 */
    __m256i off[KB][8];   /* Q4_K: [j] m_j, m_j; Q6_K: [k] sc_2k, sc_2k+1 (i16 lanes 2r, 2r + 1) */
    float d[KB][8];       /* [super-block][row] d; 0 for rows past the group */
    float dmin[KB][8];    /* Q4_K's dmin */
} k8_rows;

/* v[0..8) = the 8 rows' sub-block j vectors -> w->q[i][j] */
K8_INLINE void k8_store(k8_rows *w, int64_t i, int j, __m256i v[8]) {
    transpose8_epi32(v);
    U8 for (int t = 0; t < 8; t++) _mm256_store_si256(&w->q[i][j][t], v[t]);
}

/* ---- widening ---------------------------------------------------------------- */

static void q4_K_widen8(const char *x, size_t xs, int rm, int64_t i0, int64_t nb, k8_rows *w) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t i = 0; i < nb; i++) {
        __m256i sub[8][8]; /* [j][r] */
        _Alignas(32) int16_t sc[8][16], mm[8][16];
        for (int r = 0; r < 8; r++) {
            const sk_block_q4_K *b = r < rm ? (const sk_block_q4_K *)(x + (size_t)r * xs) + i0 + i : NULL;
            for (int k = 0; k < 4; k++) {
                const __m256i q = b ? load32(b->qs + 32 * k) : _mm256_setzero_si256();
                sub[2 * k][r] = _mm256_and_si256(q, m4);
                sub[2 * k + 1][r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            }
            for (int j = 0; j < 8; j++) {
                int s = 0, m = 0;
                if (b)
                    sk_q4k_scale_min(j, b->scales, &s, &m);
                sc[j][2 * r] = sc[j][2 * r + 1] = (int16_t)s;
                mm[j][2 * r] = mm[j][2 * r + 1] = (int16_t)m;
            }
            w->d[i][r] = b ? h2f(b->d) : 0.0f;
            w->dmin[i][r] = b ? h2f(b->dmin) : 0.0f;
        }
        for (int j = 0; j < 8; j++) {
            k8_store(w, i, j, sub[j]);
            w->sc[i][j] = _mm256_load_si256((const __m256i *)sc[j]);
            w->off[i][j] = _mm256_load_si256((const __m256i *)mm[j]);
        }
    }
}

static void q6_K_widen8(const char *x, size_t xs, int rm, int64_t i0, int64_t nb, k8_rows *w) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++) {
        __m256i sub[8][8]; /* [j][r]: elements 32j..32j+31 of row r, q + 32 */
        _Alignas(32) int16_t sc[16][16], sp[8][16];
        for (int r = 0; r < 8; r++) {
            const sk_block_q6_K *b = r < rm ? (const sk_block_q6_K *)(x + (size_t)r * xs) + i0 + i : NULL;
            for (int h = 0; h < 2; h++) { /* quant_k_simd.h's Q6_K layout */
                if (!b) {
                    for (int k = 0; k < 4; k++) sub[4 * h + k][r] = _mm256_setzero_si256();
                    continue;
                }
                const __m256i ql0 = load32(b->ql + 64 * h), ql1 = load32(b->ql + 64 * h + 32);
                const __m256i qh = load32(b->qh + 32 * h);
                sub[4 * h][r] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
                sub[4 * h + 1][r] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
                sub[4 * h + 2][r] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
                sub[4 * h + 3][r] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
            }
            for (int g = 0; g < 16; g++) {
                const int16_t s = b ? b->scales[g] : 0;
                sc[g][2 * r] = sc[g][2 * r + 1] = s;
                sp[g / 2][2 * r + (g & 1)] = s;
            }
            w->d[i][r] = b ? h2f(b->d) : 0.0f;
        }
        for (int j = 0; j < 8; j++) {
            k8_store(w, i, j, sub[j]);
            w->off[i][j] = _mm256_load_si256((const __m256i *)sp[j]);
        }
        for (int g = 0; g < 16; g++)
            w->sc[i][g] = _mm256_load_si256((const __m256i *)sc[g]);
    }
}

/* ---- tiles: 8 rows x rn columns over super-blocks [0, nb) of the chunk ----- */

/* row r's sum over 4t..4t+3 of sub-block j (i16 pair in lanes 2r, 2r + 1) */
#define K8_MUL(i, j, t, yq) \
    _mm256_maddubs_epi16(_mm256_load_si256(&w->q[i][j][t]), _mm256_set1_epi32((int)ld_u32((yq) + 32 * (j) + 4 * (t))))

K8_INLINE void q4_K_tile8(const k8_rows *w, int64_t nb, const int rn, const sk_block_q8_K *const y[4], __m256 acc[4]) {
    for (int64_t i = 0; i < nb; i++) {
        __m256i sq[4] = {0}, sm[4] = {0};
        U8 for (int j = 0; j < 8; j++) {
            U8 for (int c = 0; c < rn; c++) {
                const int8_t *yq = y[c][i].qs;
                __m256i p = K8_MUL(i, j, 0, yq);
                U8 for (int t = 1; t < 8; t++) p = _mm256_add_epi16(p, K8_MUL(i, j, t, yq));
                sq[c] = _mm256_add_epi32(sq[c], _mm256_madd_epi16(p, w->sc[i][j]));
                /* m_j (bsum_2j + bsum_2j+1) */
                sm[c] = _mm256_add_epi32(sm[c], _mm256_madd_epi16(w->off[i][j],
                                                                  _mm256_set1_epi32((int)ld_u32(y[c][i].bsums + 2 * j))));
            }
        }
        const __m256 d = _mm256_load_ps(w->d[i]), dmin = _mm256_load_ps(w->dmin[i]);
        U8 for (int c = 0; c < rn; c++) {
            const __m256 dy = _mm256_set1_ps(y[c][i].d);
            const __m256 a = _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sq[c]));
            const __m256 b = _mm256_mul_ps(_mm256_mul_ps(dmin, dy), _mm256_cvtepi32_ps(sm[c]));
            acc[c] = _mm256_add_ps(acc[c], _mm256_sub_ps(a, b));
        }
    }
}

K8_INLINE void q6_K_tile8(const k8_rows *w, int64_t nb, const int rn, const sk_block_q8_K *const y[4], __m256 acc[4]) {
    for (int64_t i = 0; i < nb; i++) {
        __m256i sq[4] = {0};
        U8 for (int j = 0; j < 8; j++) {
            U8 for (int c = 0; c < rn; c++) {
                const int8_t *yq = y[c][i].qs;
                U8 for (int u = 0; u < 2; u++) { /* group 2j + u: dwords 4u..4u+3, two i16 sums of two */
                    const __m256i p0 = _mm256_add_epi16(K8_MUL(i, j, 4 * u, yq), K8_MUL(i, j, 4 * u + 1, yq));
                    const __m256i p1 = _mm256_add_epi16(K8_MUL(i, j, 4 * u + 2, yq), K8_MUL(i, j, 4 * u + 3, yq));
                    const __m256i s = w->sc[i][2 * j + u];
                    sq[c] = _mm256_add_epi32(sq[c], _mm256_add_epi32(_mm256_madd_epi16(p0, s), _mm256_madd_epi16(p1, s)));
                }
                /* - 32 (sc_2j bsum_2j + sc_2j+1 bsum_2j+1) */
                const __m256i o = _mm256_madd_epi16(w->off[i][j], _mm256_set1_epi32((int)ld_u32(y[c][i].bsums + 2 * j)));
                sq[c] = _mm256_sub_epi32(sq[c], _mm256_slli_epi32(o, 5));
            }
        }
        const __m256 d = _mm256_load_ps(w->d[i]);
        U8 for (int c = 0; c < rn; c++) {
            const __m256 dy = _mm256_set1_ps(y[c][i].d);
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sq[c])));
        }
    }
}

/* ---- the driver -------------------------------------------------------------- */

/* Columns [c, c + rn), rows [g, g + rm), super-blocks [i0, i0 + nb): the
 * running sums from s (zero at i0 = 0), the tile, back to s. */
#define K8_TILE_AT(name)                                                                                   \
    K8_INLINE void name##_tile8_at(const k8_rows *w, const char *vy, size_t ys, int64_t i0, int64_t nb,     \
                                   int c, const int rn, int g, int rm, float *s, size_t ss) {                 \
        const sk_block_q8_K *y[4];                                                                         \
        __m256 acc[4];                                                                                     \
        for (int k = 0; k < rn; k++) {                                                                     \
            y[k] = (const sk_block_q8_K *)(vy + (size_t)(c + k) * ys) + i0;                                \
            const float *o = s + (size_t)(c + k) * ss + g;                                                 \
            _Alignas(32) float t[8] = {0};                                                                 \
            if (i0 > 0)                                                                                    \
                memcpy(t, o, (size_t)rm * sizeof(float));                                                  \
            acc[k] = _mm256_load_ps(t);                                                                    \
        }                                                                                                  \
        name##_tile8(w, nb, rn, y, acc);                                                                   \
        for (int k = 0; k < rn; k++) {                                                                     \
            _Alignas(32) float t[8];                                                                       \
            _mm256_store_ps(t, acc[k]);                                                                    \
            memcpy(s + (size_t)(c + k) * ss + g, t, (size_t)rm * sizeof(float));                           \
        }                                                                                                  \
    }                                                                                                      \
    static void name##_gemm8(int64_t n, int nr, int nc, const void *vx, size_t xs, const void *vy,         \
                             size_t ys, float *s, size_t ss) {                                             \
        const int64_t nbt = n / SK_QK_K;                                                                   \
        _Alignas(32) k8_rows w;                                                                            \
        for (int64_t i0 = 0; i0 < nbt; i0 += KB) {                                                         \
            const int64_t nb = nbt - i0 < KB ? nbt - i0 : KB;                                              \
            for (int g = 0; g < nr; g += 8) {                                                              \
                const int rm = nr - g < 8 ? nr - g : 8;                                                    \
                name##_widen8((const char *)vx + (size_t)g * xs, xs, rm, i0, nb, &w);                      \
                int c = 0;                                                                                 \
                for (; c + 4 <= nc; c += 4)                                                                \
                    name##_tile8_at(&w, vy, ys, i0, nb, c, 4, g, rm, s, ss);                               \
                switch (nc - c) {                                                                          \
                case 3: name##_tile8_at(&w, vy, ys, i0, nb, c, 3, g, rm, s, ss); break;                    \
                case 2: name##_tile8_at(&w, vy, ys, i0, nb, c, 2, g, rm, s, ss); break;                    \
                case 1: name##_tile8_at(&w, vy, ys, i0, nb, c, 1, g, rm, s, ss); break;                    \
                default: break;                                                                            \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }

K8_TILE_AT(q4_K)
K8_TILE_AT(q6_K)

/* Point table's Q4_K and Q6_K gemm at the 8-row kernels. */
void sk_quant_register_k8_avx2(sk_type_traits *t) {
    t[SK_TYPE_Q4_K].gemm = q4_K_gemm8;
    t[SK_TYPE_Q6_K].gemm = q6_K_gemm8;
}
