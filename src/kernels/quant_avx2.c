/* quant_avx2.c - AVX2 + FMA + F16C kernels for the tensor formats.
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile, by file name); only called
 * when quant.c has seen those features in cpuid. Each kernel has its scalar
 * twin in quant_ref.c, and tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_0 x Q8_0, Q4_1 x Q8_1, Q8_0 x Q8_0,
 * F16 x F16 and F32 x F32; from_float of Q8_0 and Q8_1 (the activation
 * quantizers); to_float of Q4_1 and Q8_0; F16 <-> F32 rows.
 *
 * Integer block dots use vpmaddubsw (u8 x s8 -> pairs of i16) then vpmaddwd
 * with ones (-> 8 x i32). Nibbles (0..15) are the unsigned side; for Q8_0 x
 * Q8_0 the unsigned side is |x| and y takes x's sign. None of the i16 pair
 * sums can saturate: 15 * 127 * 2 and 127 * 127 * 2 < 32767.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

/* ---- helpers -------------------------------------------------------------- */

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles -> 32 bytes 0..15: element j in byte j (low nibble of
 * byte j for j < 16, high nibble of byte j - 16 otherwise). */
static inline __m256i q4_expand(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

static inline __m256i load32(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 8 x i32: lane k = sum over bytes 4k..4k+3 of u * s (u unsigned, s signed) */
static inline __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* signed x signed: |x| * (y with x's sign) */
static inline __m256i dot_ss(__m256i x, __m256i y) {
    return dot_us(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
}

/* Q4_0 x Q8_0 block: sum (q - 8) y = sum q y - 8 sum y (i16 pairs cannot overflow) */
static inline __m256i dot_q4_0(__m256i q, __m256i y) {
    __m256i t = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
    return _mm256_madd_epi16(t, _mm256_set1_epi16(1));
}

/* The two halves (d, m) of x and (d, s) of y in one go: [dx dy, mx sy, 0, 0] */
static inline __m128 dm_prod(const void *x, const void *y) {
    int32_t a, b;
    memcpy(&a, x, 4);
    memcpy(&b, y, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(a)), _mm_cvtph_ps(_mm_cvtsi32_si128(b)));
}

/* ---- vec_dot (decode) ------------------------------------------------------
 * Two blocks per iteration into two accumulators: acc += (dx dy) * float(dot). */

static void q4_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_1 *x = vx;
    const sk_block_q8_1 *y = vy;
    const int64_t nb = n / SK_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps(); /* lane 1 collects mx * sy */
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        __m128 p0 = dm_prod(&x[i], &y[i]), p1 = dm_prod(&x[i + 1], &y[i + 1]);
        __m256i d0 = dot_us(q4_expand(x[i].qs), load32(y[i].qs));
        __m256i d1 = dot_us(q4_expand(x[i + 1].qs), load32(y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(p0), _mm256_cvtepi32_ps(d0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(p1), _mm256_cvtepi32_ps(d1), acc1);
        accm = _mm_add_ps(accm, _mm_add_ps(p0, p1));
    }
    if (i < nb) {
        __m128 p0 = dm_prod(&x[i], &y[i]);
        __m256i d0 = dot_us(q4_expand(x[i].qs), load32(y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(p0), _mm256_cvtepi32_ps(d0), acc0);
        accm = _mm_add_ps(accm, p0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1)) + _mm_cvtss_f32(_mm_movehdup_ps(accm));
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_0 *x = vx;
    const sk_block_q8_0 *y = vy;
    const int64_t nb = n / SK_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i d0 = dot_q4_0(q4_expand(x[i].qs), load32(y[i].qs));
        __m256i d1 = dot_q4_0(q4_expand(x[i + 1].qs), load32(y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(d0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)), _mm256_cvtepi32_ps(d1), acc1);
    }
    if (i < nb) {
        __m256i d0 = dot_q4_0(q4_expand(x[i].qs), load32(y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(d0), acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q8_0 *x = vx, *y = vy;
    const int64_t nb = n / SK_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i d0 = dot_ss(load32(x[i].qs), load32(y[i].qs));
        __m256i d1 = dot_ss(load32(x[i + 1].qs), load32(y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(d0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)), _mm256_cvtepi32_ps(d1), acc1);
    }
    if (i < nb) {
        __m256i d0 = dot_ss(load32(x[i].qs), load32(y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(d0), acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

/* F32 x F32 and F16 x F16: four 8-wide accumulators, scalar tail. */
static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        sum += x[i] * y[i];
    *s = sum;
}

static inline __m256 ld_h8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static void f16_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_h8(x + i), ld_h8(y + i), a0);
        a1 = _mm256_fmadd_ps(ld_h8(x + i + 8), ld_h8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_h8(x + i + 16), ld_h8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_h8(x + i + 24), ld_h8(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(ld_h8(x + i), ld_h8(y + i), a0);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        sum += h2f(x[i]) * h2f(y[i]);
    *s = sum;
}

/* ---- gemm (pre-fill) --------------------------------------------------------
 * Register tile of RM weight rows x RN activation rows: each block of a
 * weight row is expanded once and used RN times, each activation block
 * loaded once and used RM times. AVX2 has 16 vector registers: 4 x 2 tiles
 * (8 accumulators + 4 expanded rows + temporaries). Edge tiles reuse the same
 * code with smaller constant sizes. */

#define RM 4
#define RN 2
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

#define XB(T, r) ((const T *)(x + (size_t)(r) * xs) + i)
#define YB(T, c) ((const T *)(y + (size_t)(c) * ys) + i)

/* Q4_1: the block scales come as f16 pairs, (d, m) in x and (d, s) in y.
 * Per block, Y = [dy sy] of the RN columns and, per row, X = [dx mx] x 4:
 * P = X * Y = [dx dy_c, mx sy_c]_c gives every pair's scale (lane 2c,
 * broadcast by a permute) and min term (lane 2c + 1, summed in accm). */
static inline uint32_t ld_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE void q4_1_tile(int64_t nb, const int rm, const int rn, const char *x, size_t xs, const char *y,
                      size_t ys, float *s, size_t ss) {
    __m256 acc[RM][RN], accm[RM];
    UNROLL
    for (int r = 0; r < rm; r++) {
        accm[r] = _mm256_setzero_ps();
        UNROLL
        for (int c = 0; c < rn; c++)
            acc[r][c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        __m256i yq[RN];
        __m128i yv = _mm_cvtsi32_si128((int)ld_u32(YB(sk_block_q8_1, 0)));
        UNROLL
        for (int c = 0; c < rn; c++) {
            yq[c] = load32(YB(sk_block_q8_1, c)->qs);
            if (c == 1)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 1)), 1);
            if (c == 2)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 2)), 2);
            if (c == 3)
                yv = _mm_insert_epi32(yv, (int)ld_u32(YB(sk_block_q8_1, 3)), 3);
        }
        const __m256 yds = _mm256_cvtph_ps(yv);
        UNROLL
        for (int r = 0; r < rm; r++) {
            const __m256i xq = q4_expand(XB(sk_block_q4_1, r)->qs);
            const __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi32((int)ld_u32(XB(sk_block_q4_1, r)))), yds);
            accm[r] = _mm256_add_ps(accm[r], p);
            UNROLL
            for (int c = 0; c < rn; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(p, _mm256_set1_epi32(2 * c)),
                                            _mm256_cvtepi32_ps(dot_us(xq, yq[c])), acc[r][c]);
        }
    }
    UNROLL
    for (int r = 0; r < rm; r++) {
        float m[8];
        _mm256_storeu_ps(m, accm[r]);
        UNROLL
        for (int c = 0; c < rn; c++)
            s[(size_t)c * ss + r] = hsum8(acc[r][c]) + m[2 * c + 1];
    }
}

/* Q4_0 and Q8_0 tiles: same shape, no min term; DOT and XQ pick the format. */
#define SIMPLE_TILE(name, XT, YT, XQ, DOT)                                                         \
    INLINE void name##_tile(int64_t nb, const int rm, const int rn, const char *x, size_t xs,      \
                            const char *y, size_t ys, float *s, size_t ss) {                       \
        __m256 acc[RM][RN];                                                                        \
        UNROLL                                                                                     \
        for (int r = 0; r < rm; r++)                                                               \
            UNROLL                                                                                 \
            for (int c = 0; c < rn; c++)                                                           \
                acc[r][c] = _mm256_setzero_ps();                                                   \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            __m256i xq[RM];                                                                        \
            float dx[RM];                                                                          \
            UNROLL                                                                                 \
            for (int r = 0; r < rm; r++) {                                                         \
                xq[r] = XQ(XB(XT, r)->qs);                                                         \
                dx[r] = h2f(XB(XT, r)->d);                                                         \
            }                                                                                      \
            UNROLL                                                                                 \
            for (int c = 0; c < rn; c++) {                                                         \
                __m256i yq = load32(YB(YT, c)->qs);                                                \
                float dy = h2f(YB(YT, c)->d);                                                      \
                UNROLL                                                                             \
                for (int r = 0; r < rm; r++)                                                       \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dx[r] * dy),                        \
                                                _mm256_cvtepi32_ps(DOT(xq[r], yq)), acc[r][c]);    \
            }                                                                                      \
        }                                                                                          \
        UNROLL                                                                                     \
        for (int c = 0; c < rn; c++)                                                               \
            UNROLL                                                                                 \
            for (int r = 0; r < rm; r++)                                                           \
                s[(size_t)c * ss + r] = hsum8(acc[r][c]);                                          \
    }

SIMPLE_TILE(q4_0, sk_block_q4_0, sk_block_q8_0, q4_expand, dot_q4_0)
SIMPLE_TILE(q8_0, sk_block_q8_0, sk_block_q8_0, load32, dot_ss)

/* Walk the nr x nc output in RM x RN tiles; the switch instantiates each
 * edge size with constants so the tile loops unroll. */
#define GEMM(name)                                                                                 \
    static void name##_gemm(int64_t n, int nr, int nc, const void *vx, size_t xs, const void *vy,   \
                            size_t ys, float *s, size_t ss) {                                      \
        const int64_t nb = n / SK_QK;                                                              \
        for (int r0 = 0; r0 < nr; r0 += RM) {                                                      \
            const char *x = (const char *)vx + (size_t)r0 * xs;                                    \
            int rm = nr - r0 < RM ? nr - r0 : RM;                                                  \
            for (int c0 = 0; c0 < nc; c0 += RN) {                                                  \
                const char *y = (const char *)vy + (size_t)c0 * ys;                                \
                float *o = s + (size_t)c0 * ss + r0;                                               \
                int rn = nc - c0 < RN ? nc - c0 : RN;                                              \
                switch (rm * 8 + rn) {                                                             \
                case 4 * 8 + 2: name##_tile(nb, 4, 2, x, xs, y, ys, o, ss); break;                 \
                case 4 * 8 + 1: name##_tile(nb, 4, 1, x, xs, y, ys, o, ss); break;                 \
                case 3 * 8 + 2: name##_tile(nb, 3, 2, x, xs, y, ys, o, ss); break;                 \
                case 3 * 8 + 1: name##_tile(nb, 3, 1, x, xs, y, ys, o, ss); break;                 \
                case 2 * 8 + 2: name##_tile(nb, 2, 2, x, xs, y, ys, o, ss); break;                 \
                case 2 * 8 + 1: name##_tile(nb, 2, 1, x, xs, y, ys, o, ss); break;                 \
                case 1 * 8 + 2: name##_tile(nb, 1, 2, x, xs, y, ys, o, ss); break;                 \
                default: name##_tile(nb, 1, 1, x, xs, y, ys, o, ss); break;                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

GEMM(q4_1)
GEMM(q4_0)
GEMM(q8_0)

/* float types: plain loop over vec_dot (the kernels are already wide) */
#define LOOP_GEMM(name)                                                                            \
    static void name##_gemm(int64_t n, int nr, int nc, const void *x, size_t xs, const void *y,     \
                            size_t ys, float *s, size_t ss) {                                      \
        for (int c = 0; c < nc; c++)                                                               \
            for (int r = 0; r < nr; r++)                                                           \
                name##_vec_dot(n, &s[(size_t)c * ss + r], (const char *)x + (size_t)r * xs,        \
                               (const char *)y + (size_t)c * ys);                                  \
    }
LOOP_GEMM(f32)
LOOP_GEMM(f16)

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
    const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
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
    t[SK_TYPE_Q4_0].vec_dot = q4_0_vec_dot;
    t[SK_TYPE_Q4_0].gemm = q4_0_gemm;
    t[SK_TYPE_Q4_1].vec_dot = q4_1_vec_dot;
    t[SK_TYPE_Q4_1].gemm = q4_1_gemm;
    t[SK_TYPE_Q4_1].to_float = q4_1_to_float;
    t[SK_TYPE_Q8_0].vec_dot = q8_0_vec_dot;
    t[SK_TYPE_Q8_0].gemm = q8_0_gemm;
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
