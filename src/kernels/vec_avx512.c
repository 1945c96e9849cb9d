/* vec_avx512.c - AVX-512 attention kernels over F16 K/V (see vec.h).
 * Keys and values are widened 16 halves at a time with vcvtph2ps. One
 * blocked path for any number of queries (a decode token or a chunk), so
 * that a score or an output column gets the same bits however tokens were
 * batched; plus the polynomial softmax and SwiGLU. Registered over every
 * entry of the table. */
#include <immintrin.h>
#include <math.h>

#include "vec_impl.h"

/* Keys widened and transposed 16 at a time into KT (hd, 16), so each
 * query's 16 scores are hd broadcast-FMAs with no horizontal reductions;
 * each lane (key) repeats the same operations whatever the batch. */
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

/* Values widened 16 keys at a time into VB (16, w); each query accumulates
 * its w outputs in registers, key by key. */
static void av_f16_blocked(int64_t n, int w, const uint16_t *V, size_t vs, int nq, const float *a,
                           size_t as, float *out, size_t os) {
    float vb[16 * 256];
    int nc = w / 16;
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        int nb = n - j0 < 16 ? (int)(n - j0) : 16;
        for (int j = 0; j < nb; j++)
            for (int c = 0; c < nc; c++)
                _mm512_storeu_ps(vb + j * w + 16 * c,
                                 _mm512_cvtph_ps(_mm256_loadu_si256(
                                     (const __m256i *)(V + (size_t)(j0 + j) * vs + 16 * c))));
        for (int i = 0; i < nq; i++) {
            const float *ai = a + (size_t)i * as + j0;
            float *oi = out + (size_t)i * os;
            for (int c = 0; c < nc; c += 4) {
                int k = nc - c < 4 ? nc - c : 4;
                __m512 acc[4];
                for (int t = 0; t < k; t++) acc[t] = _mm512_loadu_ps(oi + 16 * (c + t));
                for (int j = 0; j < nb; j++) {
                    __m512 wt = _mm512_set1_ps(ai[j]);
                    for (int t = 0; t < k; t++)
                        acc[t] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(vb + j * w + 16 * (c + t)), acc[t]);
                }
                for (int t = 0; t < k; t++) _mm512_storeu_ps(oi + 16 * (c + t), acc[t]);
            }
        }
    }
}

static int blocked_fits(int w) { return w % 16 == 0 && w <= 256; }

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (blocked_fits(hd)) kq_f16_blocked(n, hd, K, n_rep, q, scale, s, ss);
    else sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
}

static void av_f16(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a, size_t as,
                   float *out, size_t os) {
    if (blocked_fits(w)) av_f16_blocked(n, w, V, vs, n_rep, a, as, out, os);
    else sk_vec_av_f16_ref(n, w, V, vs, n_rep, a, as, out, os);
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
