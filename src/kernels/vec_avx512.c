/* vec_avx512.c - AVX-512 attention kernels over F16 K/V (see vec.h).
 * Keys and values are widened 16 halves at a time with vcvtph2ps. The
 * one-key-at-a-time and column-loop kernels are vec_simd.h's at 512 bits;
 * this file adds the blocked kernels for many queries, the 16-key tiles
 * and register-resident shapes for few, and the polynomial softmax and
 * SwiGLU. Registered over every entry of the table. */
#include <immintrin.h>
#include <math.h>

#define VF __m512
#define VW 16
#define VF_LOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define VF_LOAD(p) _mm512_loadu_ps(p)
#define VF_STORE(p, v) _mm512_storeu_ps((p), (v))
#define VF_SET1(x) _mm512_set1_ps(x)
#define VF_MUL(a, b) _mm512_mul_ps((a), (b))
#define VF_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VF_SUM(v) _mm512_reduce_add_ps(v)
#include "vec_simd.h"

/* Many queries (nq >= 8): keys are widened and transposed 16 at a time into
 * KT (hd, 16), so each query's 16 scores are hd broadcast-FMAs with no
 * horizontal reductions. */
static void kq_f16_blocked(int64_t n, int hd, const uint16_t *K, int nq, const float *q,
                           float scale, float *s, size_t ss) {
    float kb[16 * 256], kt[256 * 16];
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        int nb = n - j0 < 16 ? (int)(n - j0) : 16;
        for (int j = 0; j < nb; j++)
            for (int c = 0; c < hd / 16; c++)
                _mm512_storeu_ps(kb + j * hd + 16 * c,
                                 _mm512_cvtph_ps(_mm256_loadu_si256(
                                     (const __m256i *)(K + (size_t)(j0 + j) * hd + 16 * c))));
        for (int d = 0; d < hd; d++) {
            for (int j = 0; j < nb; j++) kt[d * 16 + j] = kb[j * hd + d];
            for (int j = nb; j < 16; j++) kt[d * 16 + j] = 0.0f;
        }
        __mmask16 m = (__mmask16)((1u << nb) - 1);
        for (int i = 0; i < nq; i++) {
            const float *qi = q + (size_t)i * hd;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (int d = 0; d < hd; d += 2) {
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d]), _mm512_loadu_ps(kt + d * 16), a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 1]), _mm512_loadu_ps(kt + (d + 1) * 16), a1);
            }
            _mm512_mask_storeu_ps(s + (size_t)i * ss + j0, m,
                                  _mm512_mul_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(scale)));
        }
    }
}

/* Many queries: values widened 16 keys at a time into VB (16, hd); each
 * query accumulates its (hd) output in registers. */
static void av_f16_blocked(int64_t n, int hd, const uint16_t *V, int nq, const float *a, size_t as,
                           float *out) {
    float vb[16 * 256];
    int nc = hd / 16;
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        int nb = n - j0 < 16 ? (int)(n - j0) : 16;
        for (int j = 0; j < nb; j++)
            for (int c = 0; c < nc; c++)
                _mm512_storeu_ps(vb + j * hd + 16 * c,
                                 _mm512_cvtph_ps(_mm256_loadu_si256(
                                     (const __m256i *)(V + (size_t)(j0 + j) * hd + 16 * c))));
        for (int i = 0; i < nq; i++) {
            const float *ai = a + (size_t)i * as + j0;
            float *oi = out + (size_t)i * hd;
            for (int c = 0; c < nc; c += 4) {
                int k = nc - c < 4 ? nc - c : 4;
                __m512 acc[4];
                for (int t = 0; t < k; t++) acc[t] = _mm512_loadu_ps(oi + 16 * (c + t));
                for (int j = 0; j < nb; j++) {
                    __m512 w = _mm512_set1_ps(ai[j]);
                    for (int t = 0; t < k; t++)
                        acc[t] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vb + j * hd + 16 * (c + t)), acc[t]);
                }
                for (int t = 0; t < k; t++) _mm512_storeu_ps(oi + 16 * (c + t), acc[t]);
            }
        }
    }
}

/* s[j] = sum of the 16 lanes of v[j], j < 16, in one vector: four levels of
 * pairwise shuffles and adds (46 ops instead of 16 horizontal reductions).
 * After the levels, lane 4k + e holds key base[k] + jm[e] with base =
 * {0, 8, 4, 12}, jm = {0, 2, 1, 3}; the last permute puts keys in order. */
static inline __m512 reduce16(__m512 v[16]) {
    __m512 a[8], b[4], c[2];
    for (int j = 0; j < 8; j++)
        a[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[j], v[j + 8], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[j], v[j + 8], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int j = 0; j < 4; j++)
        b[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a[j], a[j + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(a[j], a[j + 4], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int j = 0; j < 2; j++)
        c[j] = _mm512_add_ps(_mm512_shuffle_ps(b[j], b[j + 2], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(b[j], b[j + 2], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
    /* key -> lane: key = base[k] + jm[e] sits at 4k + e */
    const __m512i idx = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(idx, d);
}

/* Few queries (decode): 16 keys at a time are widened once into a staging
 * tile, then each query's 16 dot products are FMAs over the tile plus one
 * reduce16. */
static void kq_f16_tile16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                          float scale, float *s, size_t ss) {
    float kb[16 * 256];
    int nc = hd / 16;
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) {
        const uint16_t *k = K + (size_t)j0 * hd;
        for (int t = 0; t < 16 * nc; t++)
            _mm512_storeu_ps(kb + 16 * t, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * t))));
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            __m512 acc[16];
            __m512 q0 = _mm512_loadu_ps(qr);
            for (int j = 0; j < 16; j++) acc[j] = _mm512_mul_ps(q0, _mm512_loadu_ps(kb + j * hd));
            for (int c = 1; c < nc; c++) {
                __m512 qc = _mm512_loadu_ps(qr + 16 * c);
                for (int j = 0; j < 16; j++)
                    acc[j] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kb + j * hd + 16 * c), acc[j]);
            }
            _mm512_storeu_ps(s + (size_t)r * ss + j0, _mm512_mul_ps(reduce16(acc), vs));
        }
    }
    kq_keys(j0, n, hd, K, n_rep, q, scale, s, ss); /* the last < 16 keys */
}

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (hd % 16 == 0 && hd <= 256 && n_rep >= 8) {
        kq_f16_blocked(n, hd, K, n_rep, q, scale, s, ss);
        return;
    }
    if (!kq_fits(hd, n_rep)) {
        sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
        return;
    }
    kq_f16_tile16(n, hd, K, n_rep, q, scale, s, ss);
}

/* Few queries: all R * NC accumulators in registers (R, NC constants in
 * each instantiation, so the compiler keeps them there), V read once in
 * order. */
static inline __attribute__((always_inline)) void av_regs(const int R, const int NC, int64_t n,
                                                          int hd, const uint16_t *V, const float *a,
                                                          size_t as, float *out) {
    __m512 acc[24];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < NC; c++) acc[r * NC + c] = _mm512_loadu_ps(out + (size_t)r * hd + 16 * c);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *v = V + (size_t)j * hd;
        for (int c = 0; c < NC; c++) {
            __m512 vc = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * c)));
            for (int r = 0; r < R; r++)
                acc[r * NC + c] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)r * as + j]), vc, acc[r * NC + c]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < NC; c++) _mm512_storeu_ps(out + (size_t)r * hd + 16 * c, acc[r * NC + c]);
}

#define AV_CASE(R, NC) \
    case R * 16 + NC: av_regs(R, NC, n, hd, V, a, as, out); return;

static void av_f16(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                   float *out) {
    if (hd % 16 == 0 && hd <= 256 && n_rep >= 8) {
        av_f16_blocked(n, hd, V, n_rep, a, as, out);
        return;
    }
    if (!av_fits(hd, n_rep)) {
        sk_vec_av_f16_ref(n, hd, V, n_rep, a, as, out);
        return;
    }
    int nc = hd / 16;
    switch (n_rep * 16 + nc) {
        AV_CASE(1, 4) AV_CASE(2, 4) AV_CASE(3, 4) AV_CASE(4, 4) AV_CASE(5, 4) AV_CASE(6, 4)
        AV_CASE(1, 8) AV_CASE(2, 8) AV_CASE(3, 8)
        AV_CASE(1, 2) AV_CASE(2, 2) AV_CASE(3, 2) AV_CASE(4, 2)
    default: break;
    }
    av_cols(n, hd, V, n_rep, a, as, out);
}

/* exp(x) for x <= 0: x = k ln2 + r, |r| <= ln2 / 2 (ln2 split in two for
 * an exact k ln2), exp(r) by its degree-7 Taylor polynomial (truncation
 * < 1e-8 relative), times 2^k with vscalefps. Inputs below -88 give 0
 * or a denormal, as expf does. */
static inline __m512 exp_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-103.0f));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static float exp_sum(float *a, int64_t n, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp_neg(_mm512_sub_ps(_mm512_loadu_ps(a + j), m));
        _mm512_storeu_ps(a + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
        __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, a + j), m));
        _mm512_mask_storeu_ps(a + j, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

static float vmax(const float *a, int64_t n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(a + j));
    if (j < n)
        acc = _mm512_mask_max_ps(acc, (__mmask16)((1u << (n - j)) - 1), acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - j)) - 1), a + j));
    return _mm512_reduce_max_ps(acc);
}

/* exp_neg also serves positive arguments below 88 (k <= 127); beyond, it
 * gives +inf and x / (1 + inf) = -0, silu's limit. */
static void swiglu(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512 e = exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Override every entry of t with the AVX-512 kernels (see vec_impl.h). */
void sk_vec_register_avx512(sk_vec_kernels *t) {
    t->kq_f16 = kq_f16;
    t->av_f16 = av_f16;
    t->exp_sum = exp_sum;
    t->max = vmax;
    t->swiglu = swiglu;
}
