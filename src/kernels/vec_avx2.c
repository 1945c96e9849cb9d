/* vec_avx2.c - AVX2/FMA/F16C attention kernels (see vec.h).
 *
 * One path for any number of queries (one decode token or a chunk of
 * them, sk_attend_multi): blocked kernels that widen 8 keys (values) at a
 * time into a float tile, reuse it for every query, and return the
 * reference's bits, so that attention does not depend on how tokens were
 * batched. max over 8 lanes; exp_sum and SwiGLU with libm's expf computed 8
 * wide (the same bits); GELU-tanh with a polynomial exp. Each
 * kernel's scalar twin is in vec_ref.c and tests/test_vec.c compares them. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "simd256.h"
#include "vec_exp.h"
#include "vec_impl.h"

#define VF_LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

#define INLINE static inline __attribute__((always_inline))

/* Many queries: the reference's arithmetic exactly (vec_ref.c), so that a
 * chunk of tokens gives the same scores and outputs whichever kernel ran:
 * each score is sum_i q_i k_i accumulated in index order, one rounded
 * multiply and one rounded add per term (no FMA), then times scale; each
 * output element adds w v over the keys in key order, again multiply then
 * add. SIMD runs across keys (kq: 8 keys in the lanes, their widened
 * elements transposed to (hd, 8)) or across output elements (av), never
 * within one sum, so every lane repeats the reference's operations. */

/* 8 x 8 transpose: rows r[0..7] -> columns (the dword transpose of
 * simd256.h on the floats' bits) */
static inline void transpose8(__m256 r[8]) {
    __m256i v[8];
    for (int k = 0; k < 8; k++) v[k] = _mm256_castps_si256(r[k]);
    transpose8_epi32(v);
    for (int k = 0; k < 8; k++) r[k] = _mm256_castsi256_ps(v[k]);
}

/* keys [j0, j0 + nb) of K (F16, (n, hd)) widened and transposed into kt
 * (hd, 8): kt[i * 8 + j] = K[j0 + j][i]; lanes nb..7 zero */
static void widen_t8(const uint16_t *K, int64_t j0, int nb, int hd, float *kt) {
    for (int c = 0; c < hd; c += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; j++)
            r[j] = j < nb ? VF_LOADH(K + (size_t)(j0 + j) * hd + c) : _mm256_setzero_ps();
        transpose8(r);
        for (int e = 0; e < 8; e++) _mm256_store_ps(kt + (size_t)(c + e) * 8, r[e]);
    }
}

/* Keys go 8 to a lane group, KG groups (16 keys) per block, widened once
 * and used by every query. A score is one chain of dependent adds (the
 * reference's order), 3 cycles each, so a tile runs NQ queries x KG groups
 * = up to 8 chains side by side to keep both add pipes busy. Measured
 * (one thread, 2,048 keys, hd 64, Zen 3): against one group of 8 keys, 3
 * queries (SmolLM2's decode) 60 -> 27 us, 4 queries 47 -> 33 us, 48
 * queries 394 -> 308 us; 3 groups or 6 queries per tile spill registers
 * and were slower. */
#define KG 2

/* scores of NQ queries against KG groups of 8 keys: kt holds group g's
 * (hd, 8) tile at kt + g * hd * 8; nk (<= 8 KG) keys are real, the rest
 * zero lanes whose scores are not stored */
INLINE void kq_tile(const int NQ, int hd, const float *kt, const float *q, float scale, float *s, size_t ss,
                    int nk) {
    __m256 acc[4][KG];
    for (int k = 0; k < NQ; k++)
        for (int g = 0; g < KG; g++) acc[k][g] = _mm256_setzero_ps();
    for (int i = 0; i < hd; i++) {
        __m256 kv[KG];
        for (int g = 0; g < KG; g++) kv[g] = _mm256_load_ps(kt + (size_t)g * hd * 8 + (size_t)i * 8);
        for (int k = 0; k < NQ; k++) {
            const __m256 qb = _mm256_broadcast_ss(q + (size_t)k * hd + i);
            for (int g = 0; g < KG; g++) acc[k][g] = _mm256_add_ps(acc[k][g], _mm256_mul_ps(qb, kv[g]));
        }
    }
    for (int k = 0; k < NQ; k++)
        for (int g = 0; g < KG && 8 * g < nk; g++) {
            const __m256 r = _mm256_mul_ps(acc[k][g], _mm256_set1_ps(scale));
            float *sk = s + (size_t)k * ss + 8 * g;
            if (nk - 8 * g >= 8) {
                _mm256_storeu_ps(sk, r);
            } else {
                float t[8];
                _mm256_storeu_ps(t, r);
                for (int j = 0; j < nk - 8 * g; j++) sk[j] = t[j];
            }
        }
}

/* s[i * ss + j] = scale * q_i . K_j, 8 KG keys at a time, 4 (then 3, 2, 1)
 * queries at a time. hd % 8 == 0, hd <= 256. */
static void kq_f16_blocked(int64_t n, int hd, const uint16_t *K, int nq, const float *q, float scale,
                           float *s, size_t ss) {
    _Alignas(32) float kt[KG * 256 * 8];
    for (int64_t j0 = 0; j0 < n; j0 += 8 * KG) {
        const int nk = n - j0 < 8 * KG ? (int)(n - j0) : 8 * KG;
        for (int g = 0; g < KG; g++) {
            const int nb = nk - 8 * g < 0 ? 0 : nk - 8 * g > 8 ? 8 : nk - 8 * g;
            widen_t8(K, j0 + 8 * g, nb, hd, kt + (size_t)g * hd * 8);
        }
        int i = 0;
        const float *qi;
        float *si;
        for (; i + 4 <= nq; i += 4) {
            qi = q + (size_t)i * hd, si = s + (size_t)i * ss + j0;
            kq_tile(4, hd, kt, qi, scale, si, ss, nk);
        }
        qi = q + (size_t)i * hd, si = s + (size_t)i * ss + j0;
        switch (nq - i) {
        case 3: kq_tile(3, hd, kt, qi, scale, si, ss, nk); break;
        case 2: kq_tile(2, hd, kt, qi, scale, si, ss, nk); break;
        case 1: kq_tile(1, hd, kt, qi, scale, si, ss, nk); break;
        default: break;
        }
    }
}

/* columns [0, w) of rows [j0, j0 + nb) of V (F16, row stride vs) widened
 * into vb (nb, w) floats */
static void widen8(const uint16_t *V, size_t vs, int64_t j0, int nb, int w, float *vb) {
    for (int j = 0; j < nb; j++)
        for (int c = 0; c < w; c += 8) _mm256_store_ps(vb + j * w + c, VF_LOADH(V + (size_t)(j0 + j) * vs + c));
}

/* out_i[c .. c + 8 NV) += a_i[j] V_j for the NQ queries i of the tile and
 * its rows j in order: NQ x NV accumulators, each widened value vector
 * loaded once for the NQ queries, one broadcast weight per (query, row) */
INLINE void av_tile(const int NQ, const int NV, int nb, int hd, const float *vb, const float *a, size_t as,
                    float *o, size_t os, int c) {
    __m256 acc[2][8];
    for (int k = 0; k < NQ; k++)
        for (int t = 0; t < NV; t++) acc[k][t] = _mm256_loadu_ps(o + (size_t)k * os + c + 8 * t);
    for (int j = 0; j < nb; j++) {
        __m256 v[8];
        for (int t = 0; t < NV; t++) v[t] = _mm256_load_ps(vb + j * hd + c + 8 * t);
        for (int k = 0; k < NQ; k++) {
            const __m256 w = _mm256_broadcast_ss(a + (size_t)k * as + j);
            for (int t = 0; t < NV; t++) acc[k][t] = _mm256_add_ps(acc[k][t], _mm256_mul_ps(w, v[t]));
        }
    }
    for (int k = 0; k < NQ; k++)
        for (int t = 0; t < NV; t++) _mm256_storeu_ps(o + (size_t)k * os + c + 8 * t, acc[k][t]);
}

/* out[i * os + d] += sum_j a[i * as + j] V[j * vs + d], d < w: values
 * widened VB rows at a time; queries two at a time over 32 columns (or
 * one over 64), the rest 16 columns at a time. w % 16 == 0, w <= 256. */
#define VB 16
static void av_f16_blocked(int64_t n, int w, const uint16_t *V, size_t vs, int nq, const float *a,
                           size_t as, float *out, size_t os) {
    _Alignas(32) float vb[VB * 256];
    for (int64_t j0 = 0; j0 < n; j0 += VB) {
        const int nb = n - j0 < VB ? (int)(n - j0) : VB;
        widen8(V, vs, j0, nb, w, vb);
        int i = 0;
        for (; i + 2 <= nq; i += 2) {
            const float *ai = a + (size_t)i * as + j0;
            float *oi = out + (size_t)i * os;
            int c = 0;
            for (; c + 32 <= w; c += 32) av_tile(2, 4, nb, w, vb, ai, as, oi, os, c);
            for (; c < w; c += 16) av_tile(2, 2, nb, w, vb, ai, as, oi, os, c);
        }
        if (i < nq) {
            const float *ai = a + (size_t)i * as + j0;
            float *oi = out + (size_t)i * os;
            int c = 0;
            for (; c + 64 <= w; c += 64) av_tile(1, 8, nb, w, vb, ai, as, oi, os, c);
            for (; c < w; c += 16) av_tile(1, 2, nb, w, vb, ai, as, oi, os, c);
        }
    }
}

/* the shapes the blocked kernels take, whatever the number of queries */
static int blocked_fits(int w) { return w % 16 == 0 && w <= 256; }

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (blocked_fits(hd)) kq_f16_blocked(n, hd, K, n_rep, q, scale, s, ss);
    else sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
}

void sk_vec_av_f16_avx2(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a, size_t as,
                        float *out, size_t os) {
    if (blocked_fits(w)) av_f16_blocked(n, w, V, vs, n_rep, a, as, out, os);
    else sk_vec_av_f16_ref(n, w, V, vs, n_rep, a, as, out, os);
}

/* ---- max --------------------------------------------------------------------
 * Exact whatever the order. */

/* max_ps(acc, x) keeps acc where x is NaN, as the reference's x > mx does */
static float vmax(const float *a, int64_t n) {
    __m256 acc = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) acc = _mm256_max_ps(_mm256_loadu_ps(a + j), acc);
    float mx;
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    mx = _mm_cvtss_f32(h);
    for (; j < n; j++) mx = a[j] > mx ? a[j] : mx;
    return mx;
}

/* ---- exp with libm's bits: exp_sum and SwiGLU ----------------------------------
 * The reference computes these with libm's expf, and a polynomial exp
 * within 2 ulp of it moved SmolLM2's logits against llama.cpp past
 * test_golden's limits (measured: 2-4 greedy failures from either kernel).
 * So here expf is computed the way the C library computes it (glibc 2.28
 * and later, after Arm's optimized routines; Debian 12 runs it as
 * __expf_fma), four lanes at a time in double precision:
 *   x 32 / ln2 = k + r, k an integer (adding 1.5 2^52 rounds it; k is then
 *   the low bits of the sum), |r| <= 1/2;
 *   exp(x) = 2^(k/32) 2^(r/32), 2^(k/32) = 2^(k mod 32 / 32) from a table,
 *   its exponent raised by k div 32 (the table holds each entry's bits less
 *   (i << 47), so that adding k << 47 does both), 2^(r/32) by the cubic
 *   1 + c2 r + (c1 + c0 r) r^2 (the routine's minimax coefficients), and
 *   one rounding of the double product to float.
 * The double arithmetic leaves such a margin that its rounding to float is
 * libm's on every input of libm's plain path, x in [-0x1.9fe368p6,
 * 0x1.62e42ep6]: a one-off run over all 2^32 floats found no difference,
 * and tests/test_vec.c compares the two on 71 million inputs each run
 * (every 61st float of exp's finite range, every float within 2^16 ulps
 * of the path boundaries and of 0, and the specials).
 * Lanes outside it (libm returns 0 through its underflow code below
 * -103.97, +inf above 88.72; NaN) take libm's expf itself. So exp_sum and
 * SwiGLU give the reference's bits: every tier-2 path keeps the goldens. */
const uint64_t sk_vec_exp2_tab[32] = { /* bits(2^(i/32)) - (i << 47) */
    0x3ff0000000000000ULL, 0x3fefd9b0d3158574ULL, 0x3fefb5586cf9890fULL, 0x3fef9301d0125b51ULL,
    0x3fef72b83c7d517bULL, 0x3fef54873168b9aaULL, 0x3fef387a6e756238ULL, 0x3fef1e9df51fdee1ULL,
    0x3fef06fe0a31b715ULL, 0x3feef1a7373aa9cbULL, 0x3feedea64c123422ULL, 0x3feece086061892dULL,
    0x3feebfdad5362a27ULL, 0x3feeb42b569d4f82ULL, 0x3feeab07dd485429ULL, 0x3feea47eb03a5585ULL,
    0x3feea09e667f3bcdULL, 0x3fee9f75e8ec5f74ULL, 0x3feea11473eb0187ULL, 0x3feea589994cce13ULL,
    0x3feeace5422aa0dbULL, 0x3feeb737b0cdc5e5ULL, 0x3feec49182a3f090ULL, 0x3feed503b23e255dULL,
    0x3feee89f995ad3adULL, 0x3feeff76f2fb5e47ULL, 0x3fef199bdd85529cULL, 0x3fef3720dcef9069ULL,
    0x3fef5818dcfba487ULL, 0x3fef7c97337b9b5fULL, 0x3fefa4afa2a490daULL, 0x3fefd0765b6e4540ULL,
};

/* expf of 4 floats in libm's plain path (see above) */
INLINE __m128 expf4_libm(__m128 x) {
    const __m256d inv = _mm256_set1_pd(SK_EXPF_INV), shift = _mm256_set1_pd(SK_EXPF_SHIFT);
    const __m256d xd = _mm256_cvtps_pd(x);
    __m256d kd = _mm256_fmadd_pd(xd, inv, shift);
    const __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    const __m256d r = _mm256_fmsub_pd(xd, inv, kd);
    __m256i t = _mm256_i64gather_epi64((const long long *)sk_vec_exp2_tab, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    const __m256d c0 = _mm256_set1_pd(SK_EXPF_C0), c1 = _mm256_set1_pd(SK_EXPF_C1), c2 = _mm256_set1_pd(SK_EXPF_C2);
    const __m256d z = _mm256_fmadd_pd(c0, r, c1), r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(z, r2, y);
    return _mm256_cvtpd_ps(_mm256_mul_pd(y, _mm256_castsi256_pd(t)));
}

/* expf of 8 floats: libm's bits */
INLINE __m256 expf8_libm(__m256 x) {
    if (!sk_expf8_plain_ok(x)) return sk_expf8_by_libm(x); /* a lane off libm's plain path (rare) */
    return _mm256_set_m128(expf4_libm(_mm256_extractf128_ps(x, 1)), expf4_libm(_mm256_castps256_ps128(x)));
}

/* The reference's exp_sum: a[j] = expf(a[j] - mx), summed in double in the
 * reference's order: lanes 0-3 and 4-7 of each block of 8 into two 4-lane
 * accumulators (the partial sums p0..p3, p4..p7), joined as
 * ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7)), then the tail. */
static float exp_sum(float *a, int64_t n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = expf8_libm(_mm256_sub_ps(_mm256_loadu_ps(a + j), m));
        _mm256_storeu_ps(a + j, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    const __m256d t = _mm256_add_pd(lo, hi); /* p0+p4, p1+p5, p2+p6, p3+p7 */
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
    double sum = _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
    for (; j < n; j++) sum += (a[j] = expf(a[j] - mx));
    return (float)sum;
}

/* The reference's SwiGLU, g / (1 + expf(-g)) * u, operation for operation */
static void swiglu(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = expf8_libm(_mm256_xor_ps(x, sign));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---- GELU-tanh ----------------------------------------------------------------
 * 0.5 x (1 + tanh z) = x / (1 + exp(-2 z)), z = sqrt(2/pi) (x + 0.044715
 * x^3): the reference's function without its cancellation in 1 + tanh z
 * for x < 0 (tests/test_vec.c holds the two to the reference's own
 * rounding). exp(t) for t <= 150: t = k ln2 + r, |r| <= ln2 / 2 (ln2 split
 * in two for an exact k ln2), exp(r) by its degree-7 Taylor polynomial
 * (truncation < 1e-8 relative), times 2^k as two power-of-two factors
 * 2^(k1) 2^(k - k1), k1 = floor(k / 2), both normal floats for k in [-150,
 * 216] (the first product exact, the second rounds once): below -103.9 it
 * is 0, above 88.7 +inf, where x / (1 + inf) is the -0 of GELU's limit. */
static inline __m256 exp8(__m256 t) {
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(150.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), t);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ki = _mm256_cvtps_epi32(k), k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static void geglu(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), c2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f);
    const __m256 a = _mm256_set1_ps(0.044715f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 z2 = _mm256_mul_ps(c2, _mm256_fmadd_ps(_mm256_mul_ps(a, x), _mm256_mul_ps(x, x), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, exp8(z2))), _mm256_loadu_ps(u + i)));
    }
    const float c = 0.7978845608028654f;
    for (; i < n; i++) {
        const float x = g[i];
        g[i] = x / (1.0f + expf(-2.0f * c * (x + 0.044715f * x * x * x))) * u[i];
    }
}

/* Override the AVX2 entries of t (see vec_impl.h): all six. */
void sk_vec_register_avx2(sk_vec_kernels *t) {
    t->kq_f16 = kq_f16;
    t->av_f16 = sk_vec_av_f16_avx2;
    t->exp_sum = exp_sum;
    t->max = vmax;
    t->swiglu = swiglu;
    t->geglu = geglu;
}
