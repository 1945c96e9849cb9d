/* quant_avx2.c - AVX2 + FMA + F16C kernels for the tensor formats.
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile, by file name); only called
 * when cpu.h has chosen AVX2 or better. Each kernel has its scalar twin in
 * quant_ref.c, and tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_0 x Q8_0, Q4_1 x Q8_1, Q8_0 x Q8_0
 * (quant_simd.h's kernels, shared with quant_avx512.c), F16 x F16 and
 * F32 x F32; from_float of Q8_0 and Q8_1 (the activation quantizers);
 * to_float of Q4_1 and Q8_0; F16 <-> F32 rows.
 *
 * Integer block dots use vpmaddubsw (u8 x s8 -> pairs of i16) then vpmaddwd
 * with ones (-> 8 x i32). Nibbles (0..15) are the unsigned side; for Q8_0 x
 * Q8_0 the unsigned side is |x| and y takes x's sign. None of the i16 pair
 * sums can saturate: 15 * 127 * 2 and 127 * 127 * 2 < 32767.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "simd256.h"

/* ---- the integer dots quant_simd.h builds on ------------------------------ */

/* 16 bytes of nibbles -> 32 bytes 0..15: element j in byte j (low nibble of
 * byte j for j < 16, high nibble of byte j - 16 otherwise). */
static inline __m256i q4_expand(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* 8 x i32: lane k = sum over bytes 4k..4k+3 of u * s (u unsigned, s signed) */
static inline __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Q4_0 x Q8_0 block: sum (q - 8) y = sum q y - 8 sum y (i16 pairs cannot overflow) */
static inline __m256i dot_q4_0(__m256i q, __m256i y) {
    __m256i t = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
    return _mm256_madd_epi16(t, _mm256_set1_epi16(1));
}

/* gemm tiles of 4 x 2 (AVX2 has 16 vector registers: 8 accumulators + 4
 * expanded rows + temporaries); Q4_0 and Q8_0 blocks dot directly (Q8_0
 * signed x signed), nothing precomputed per activation block. */
#define RM 4
#define RN 2
#define TILE_CASES(name)                                                                           \
    TILE_CASE(name, 4, 2) TILE_CASE(name, 4, 1) TILE_CASE(name, 3, 2) TILE_CASE(name, 3, 1)        \
    TILE_CASE(name, 2, 2) TILE_CASE(name, 2, 1) TILE_CASE(name, 1, 2)
#define Y_PRE(K, yq) (yq)
#define XQ_Q8_0(qs) load32(qs)
#define DOT_Q4_0(xq, yq, pre) dot_q4_0((xq), (yq))
#define DOT_Q8_0(xq, yq, pre) dot_ss((xq), (yq))

#include "quant_simd.h"

/* ---- Q5_0 x Q8_0: the reference's bits ---------------------------------------
 * q = nibble | bit << 4, x = (q - 16) d. The reference (quant_ref.c) sums
 * each block exactly in integers, then per block, in block order,
 *   sumf += (float)sumi * (dx * dy)     (three float operations, no FMA)
 * The kernels below keep that float part, operation for operation, and
 * compute sumi exactly: so vec_dot and gemm return the reference's bits
 * (tests/test_quant.c checks every result), and a model's numbers do not
 * depend on which of the three computed them.
 *
 * The 32 high bits of qh become 32 bytes (byte j = 0xff where bit j is
 * set: shuffle byte j / 8 of qh into byte j, OR every bit but bit j % 8,
 * compare with all-ones); nibble | (bit & 0x10) is q, 0..31. Integer dot
 * with y (|y| <= 127, Q8_0): vpmaddubsw(q, y) - vpmaddubsw(16, y) gives
 * the 16 i16 pair sums of (q - 16) y (|each| <= 31 * 127 * 2 < 2^15, no
 * saturation), vpmaddwd with ones 8 i32 lanes, summed exactly. */

/* 32 bytes q (0..31) of a Q5_0 block */
static inline __m256i q5_0_quants(const sk_block_q5_0 *b) {
    const __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32((int)ld_u32(b->qh)),
                                          _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_cmpeq_epi8(_mm256_or_si256(h, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                          _mm256_set1_epi64x(-1));
    return _mm256_or_si256(q4_expand(b->qs), _mm256_and_si256(bit, _mm256_set1_epi8(0x10)));
}

/* 8 x i32 whose sum is the block's sum (q - 16) y; p16 = vpmaddubsw(16, y) */
static inline __m256i q5_0_dot(__m256i q, __m256i y, __m256i p16) {
    return _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q, y), p16), _mm256_set1_epi16(1));
}

static inline __m256i p16_of(__m256i y) { return _mm256_maddubs_epi16(_mm256_set1_epi8(16), y); }

/* the exact sums of a's and b's 8 lanes */
static inline void hsum2_epi32(__m256i a, __m256i b, int32_t *sa, int32_t *sb) {
    const __m256i t = _mm256_hadd_epi32(a, b); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    u = _mm_hadd_epi32(u, u); /* a b a b */
    *sa = _mm_cvtsi128_si32(u);
    *sb = _mm_extract_epi32(u, 1);
}

/* 4 blocks at a time: their exact sums, and (float)sumi * (dx * dy), in
 * one vector each, then added to sumf one by one in block order */
static void q5_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q5_0 *x = vx;
    const sk_block_q8_0 *y = vy;
    const int64_t nb = n / SK_QK;
    float sumf = 0;
    int64_t i = 0;
    for (; i + 3 < nb; i += 4) {
        PREFETCH(&x[i]);
        PREFETCH(&x[i + 2]);
        __m256i d[4];
        for (int k = 0; k < 4; k++) {
            const __m256i yk = load32(y[i + k].qs);
            d[k] = q5_0_dot(q5_0_quants(&x[i + k]), yk, p16_of(yk));
        }
        /* the 4 exact sums in lanes 0..3 */
        const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(d[0], d[1]), _mm256_hadd_epi32(d[2], d[3]));
        const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        const __m128 dx = _mm_cvtph_ps(_mm_setr_epi16((short)x[i].d, (short)x[i + 1].d, (short)x[i + 2].d,
                                                      (short)x[i + 3].d, 0, 0, 0, 0));
        const __m128 dy = _mm_cvtph_ps(_mm_setr_epi16((short)y[i].d, (short)y[i + 1].d, (short)y[i + 2].d,
                                                      (short)y[i + 3].d, 0, 0, 0, 0));
        const __m128 p = _mm_mul_ps(_mm_cvtepi32_ps(sums), _mm_mul_ps(dx, dy));
        float pf[4];
        _mm_storeu_ps(pf, p);
        sumf += pf[0];
        sumf += pf[1];
        sumf += pf[2];
        sumf += pf[3];
    }
    for (; i < nb; i++) {
        const __m256i y0 = load32(y[i].qs);
        int32_t s0, s1;
        hsum2_epi32(q5_0_dot(q5_0_quants(&x[i]), y0, p16_of(y0)), _mm256_setzero_si256(), &s0, &s1);
        sumf += (float)s0 * (h2f(x[i].d) * h2f(y[i].d));
    }
    *s = sumf;
}

/* gemm: 8 weight rows at a time, interleaved (llama.cpp's AVX2 repacking
 * idea, done per call into a scratch tile instead of at load time, so the
 * file layout that decode streams stays as it is).
 *
 * Widen: for a chunk of WB blocks, the 8 rows' quants (0..31, one byte
 * each) are transposed by dwords: w->q[i][j] holds bytes 4j..4j+3 of block
 * i of row r in its dword r (an 8 x 8 dword transpose of the rows' blocks).
 * Then vpmaddubsw(w->q[i][j], broadcast of y's dword j) gives, in i16 lane
 * pair r, the two pair sums of row r: 8 rows at once against one column,
 * with no horizontal reduction. Four of them add in i16 (|q y| pair <= 31 *
 * 128 * 2, four pairs <= 31,744 < 32,767), vpmaddwd with ones widens to i32;
 * the block's exact sum per row is that minus 16 sum(y) (the -16 offset of
 * Q5_0, the same for all rows: computed once per column and block).
 *
 * Per (row, column) lane the float part is the reference's:
 *   acc = acc + (float)sumi * (dx * dy)
 * in block order (the chunks keep their running sums in s), so every
 * result has the reference's bits. Tiles are 8 rows x up to 4 columns; the
 * activation-side values (16 sum(y), dy) of a block chunk are computed
 * once per chunk of WC columns. */

#define WB 32 /* blocks per chunk */
#define WC 64 /* columns per chunk */
#define U8 _Pragma("GCC unroll 8")

typedef struct {
    __m256i q[WB][8]; /* [block][dword j]: dword r = row r's quants 4j..4j+3 */
    float d[WB][8];   /* [block][row] scale; 0 for rows past the group */
} rows8;

/* rows [0, rm) (row stride xs), blocks [i0, i0 + nb) -> w */
static void q5_widen8(const char *x, size_t xs, int rm, int64_t i0, int64_t nb, rows8 *w) {
    for (int64_t i = 0; i < nb; i++) {
        __m256i v[8];
        for (int r = 0; r < 8; r++) {
            if (r < rm) {
                const sk_block_q5_0 *b = (const sk_block_q5_0 *)(x + (size_t)r * xs) + i0 + i;
                v[r] = q5_0_quants(b);
                w->d[i][r] = h2f(b->d);
            } else {
                v[r] = _mm256_setzero_si256();
                w->d[i][r] = 0.0f;
            }
        }
        transpose8_epi32(v);
        for (int j = 0; j < 8; j++)
            _mm256_store_si256(&w->q[i][j], v[j]);
    }
}

/* The activation side of a column and block: 16 sum(y) and dy */
typedef struct {
    int32_t off[WC][WB];
    float d[WC][WB];
} q8_cols;

static void q8_cols_fill(const char *y, size_t ys, int cn, int64_t i0, int64_t nb, q8_cols *yc) {
    for (int c = 0; c < cn; c++)
        for (int64_t i = 0; i < nb; i++) {
            const sk_block_q8_0 *b = (const sk_block_q8_0 *)(y + (size_t)c * ys) + i0 + i;
            const __m256i p = _mm256_madd_epi16(p16_of(load32(b->qs)), _mm256_set1_epi16(1));
            __m128i t = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            t = _mm_hadd_epi32(t, t);
            t = _mm_hadd_epi32(t, t);
            yc->off[c][i] = _mm_cvtsi128_si32(t);
            yc->d[c][i] = h2f(b->d);
        }
}

/* 8 rows x rn columns over the chunk's nb blocks; y[c] = block i0 of
 * column c; acc in/out: the running sums, lane r = row r */
static inline __attribute__((always_inline)) void q5_tile8(const rows8 *w, int64_t nb, const int rn,
                                                           const sk_block_q8_0 *const y[4], const q8_cols *yc,
                                                           int c0, __m256 acc[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; i++) {
        __m256i sum[4] = {0};
        U8 for (int h = 0; h < 2; h++) { /* dwords 4h..4h+3: four pair sums per row in i16 */
            __m256i p[4] = {0};
            U8 for (int j = 4 * h; j < 4 * h + 4; j++) {
                const __m256i q = _mm256_load_si256(&w->q[i][j]);
                U8 for (int c = 0; c < rn; c++) {
                    int32_t yj;
                    memcpy(&yj, y[c][i].qs + 4 * j, 4);
                    const __m256i t = _mm256_maddubs_epi16(q, _mm256_set1_epi32(yj));
                    p[c] = _mm256_add_epi16(p[c], t);
                }
            }
            U8 for (int c = 0; c < rn; c++) {
                sum[c] = _mm256_add_epi32(sum[c], _mm256_madd_epi16(p[c], ones));
            }
        }
        const __m256 dx = _mm256_load_ps(w->d[i]);
        U8 for (int c = 0; c < rn; c++) {
            const __m256i si = _mm256_sub_epi32(sum[c], _mm256_set1_epi32(yc->off[c0 + c][i]));
            const __m256 dd = _mm256_mul_ps(dx, _mm256_set1_ps(yc->d[c0 + c][i]));
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_cvtepi32_ps(si), dd));
        }
    }
}

/* The running sums of rows [0, rm) of one output column: zero for the
 * first chunk, else what the previous chunk left in s */
static inline __m256 acc8_load(const float *o, int rm, int first) {
    if (first) return _mm256_setzero_ps();
    if (rm == 8) return _mm256_loadu_ps(o);
    _Alignas(32) float t[8] = {0};
    memcpy(t, o, (size_t)rm * sizeof(float));
    return _mm256_load_ps(t);
}

static inline void acc8_store(float *o, int rm, __m256 acc) {
    if (rm == 8) {
        _mm256_storeu_ps(o, acc);
        return;
    }
    _Alignas(32) float t[8];
    _mm256_store_ps(t, acc);
    memcpy(o, t, (size_t)rm * sizeof(float));
}

/* One tile: columns [c, c + rn) of the column chunk starting at cc; rows
 * [g, g + rm); blocks [i0, i0 + nb) */
static inline __attribute__((always_inline)) void q5_tile8_at(const rows8 *w, const q8_cols *yc,
                                                              const char *vy, size_t ys, int64_t i0, int64_t nb,
                                                              int cc, int c, const int rn, int g, int rm, float *s,
                                                              size_t ss) {
    const sk_block_q8_0 *y[4];
    __m256 acc[4];
    for (int k = 0; k < rn; k++) {
        y[k] = (const sk_block_q8_0 *)(vy + (size_t)(cc + c + k) * ys) + i0;
        acc[k] = acc8_load(s + (size_t)(cc + c + k) * ss + g, rm, i0 == 0);
    }
    q5_tile8(w, nb, rn, y, yc, c, acc);
    for (int k = 0; k < rn; k++) acc8_store(s + (size_t)(cc + c + k) * ss + g, rm, acc[k]);
}

static void q5_0_gemm(int64_t n, int nr, int nc, const void *vx, size_t xs, const void *vy, size_t ys, float *s,
                      size_t ss) {
    if (nc <= 2) { /* widening would cost more than it saves: the same bits by vec_dot */
        for (int c = 0; c < nc; c++)
            for (int r = 0; r < nr; r++)
                q5_0_vec_dot(n, &s[(size_t)c * ss + r], (const char *)vx + (size_t)r * xs, (const char *)vy + (size_t)c * ys);
        return;
    }
    const int64_t nbt = n / SK_QK;
    _Alignas(32) rows8 w;
    q8_cols yc;
    for (int64_t i0 = 0; i0 < nbt; i0 += WB) {
        const int64_t nb = nbt - i0 < WB ? nbt - i0 : WB;
        for (int cc = 0; cc < nc; cc += WC) {
            const int cn = nc - cc < WC ? nc - cc : WC;
            q8_cols_fill((const char *)vy + (size_t)cc * ys, ys, cn, i0, nb, &yc);
            for (int g = 0; g < nr; g += 8) {
                const int rm = nr - g < 8 ? nr - g : 8;
                q5_widen8((const char *)vx + (size_t)g * xs, xs, rm, i0, nb, &w);
                int c = 0;
                for (; c + 4 <= cn; c += 4)
                    q5_tile8_at(&w, &yc, vy, ys, i0, nb, cc, c, 4, g, rm, s, ss);
                switch (cn - c) {
                case 3: q5_tile8_at(&w, &yc, vy, ys, i0, nb, cc, c, 3, g, rm, s, ss); break;
                case 2: q5_tile8_at(&w, &yc, vy, ys, i0, nb, cc, c, 2, g, rm, s, ss); break;
                case 1: q5_tile8_at(&w, &yc, vy, ys, i0, nb, cc, c, 1, g, rm, s, ss); break;
                default: break;
                }
            }
        }
    }
}

/* ---- F32 x F32 and F16 x F16 ------------------------------------------------ */

/* Four 8-wide accumulators, scalar tail; LD8 widens 8 elements, TO_F one. */
#define FLOAT_VEC_DOT(name, T, LD8, TO_F)                                                          \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        const T *x = vx, *y = vy;                                                                  \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            a0 = _mm256_fmadd_ps(LD8(x + i), LD8(y + i), a0);                                      \
            a1 = _mm256_fmadd_ps(LD8(x + i + 8), LD8(y + i + 8), a1);                              \
            a2 = _mm256_fmadd_ps(LD8(x + i + 16), LD8(y + i + 16), a2);                            \
            a3 = _mm256_fmadd_ps(LD8(x + i + 24), LD8(y + i + 24), a3);                            \
        }                                                                                          \
        for (; i + 8 <= n; i += 8)                                                                 \
            a0 = _mm256_fmadd_ps(LD8(x + i), LD8(y + i), a0);                                      \
        float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));            \
        for (; i < n; i++)                                                                         \
            sum += TO_F(x[i]) * TO_F(y[i]);                                                        \
        *s = sum;                                                                                  \
    }

static inline __m256 ld_h8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#define F32_AS_IS(v) (v)

FLOAT_VEC_DOT(f32, float, _mm256_loadu_ps, F32_AS_IS)
FLOAT_VEC_DOT(f16, uint16_t, ld_h8, h2f)

/* float types: plain loop over vec_dot (the kernels are already wide) */
SK_LOOP_GEMM(f32)
SK_LOOP_GEMM(f16)

/* ---- activation quantizers ---------------------------------------------------
 * ggml's x86 numerics (not the reference's): amax over the block,
 * d = amax / 127 stored as f16, q = rint(x * (127 / amax)) ties to even. */

static inline __m256i q8_block(const float *x, float *d_out, int32_t *sum_out) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    *d_out = amax / 127.f;
    const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
    enum { rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }; /* an immediate: a constant expression */
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), rnd));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), rnd));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), rnd));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), rnd));
    if (sum_out) {
        __m256i t = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
        *sum_out = _mm_cvtsi128_si32(u);
    }
    /* packs work per 128-bit lane: dwords come out as i0lo i1lo i2lo i3lo
     * i0hi i1hi i2hi i3hi; the permutation restores element order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        float d;
        __m256i q = q8_block(x + i * SK_QK, &d, NULL);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        float d;
        int32_t sum;
        __m256i q = q8_block(x + i * SK_QK, &d, &sum);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

/* ---- to_float ----------------------------------------------------------------
 * q * d (+ m) as a separate multiply and add, bit-identical to the reference. */

static void q4_1_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        __m256 d = _mm256_set1_ps(h2f(x[i].d)), m = _mm256_set1_ps(h2f(x[i].m));
        __m128i t = _mm_loadu_si128((const __m128i *)x[i].qs);
        __m128i lo = _mm_and_si128(t, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(t, 4), _mm_set1_epi8(15));
        __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
            __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
            _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(q, d), m));
        }
    }
}

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        __m256 d = _mm256_set1_ps(h2f(x[i].d));
        for (int k = 0; k < 4; k++) {
            __m128i b = _mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * k));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d));
        }
    }
}

/* ---- F16 rows (vcvtph2ps / vcvtps2ph, round to nearest even) ---------------- */

static void f16_to_float(const void *vx, float *y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, ld_h8(x + i));
    for (; i < n; i++)
        y[i] = h2f(x[i]);
}

static void f16_from_float(const float *x, void *vy, int64_t n) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* Override the AVX2-accelerated entries of table (see quant_impl.h). */
void sk_quant_register_avx2(sk_type_traits *t) {
    simd_register(t);
    t[SK_TYPE_Q5_0].vec_dot = q5_0_vec_dot;
    t[SK_TYPE_Q5_0].gemm = q5_0_gemm;
    t[SK_TYPE_Q4_1].to_float = q4_1_to_float;
    t[SK_TYPE_Q8_0].to_float = q8_0_to_float;
    t[SK_TYPE_Q8_0].from_float = q8_0_from_float;
    t[SK_TYPE_Q8_1].from_float = q8_1_from_float;
    t[SK_TYPE_F32].vec_dot = f32_vec_dot;
    t[SK_TYPE_F32].gemm = f32_gemm;
    t[SK_TYPE_F16].vec_dot = f16_vec_dot;
    t[SK_TYPE_F16].gemm = f16_gemm;
    t[SK_TYPE_F16].to_float = f16_to_float;
    t[SK_TYPE_F16].from_float = f16_from_float;
}
