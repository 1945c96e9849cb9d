/* tvec_avx2.c - the AVX2+FMA set of the trainer's row kernels (tvec.h);
 * compiled with -mavx2 -mfma, called only when the CPU has them. Rows are
 * processed 8 floats at a time, the tail through masked loads and stores;
 * sums in 8 lanes, added in a fixed tree at the end.
 *
 * exp: x clamped to [-87.3, 88], x = n ln2 + r with n = round(x / ln2) (ln2
 * in two parts, so r is exact), e^r by a polynomial (Cephes's expf
 * coefficients), times 2^n built in the exponent field. Relative error
 * about 2 ulp; below -87.3 (where e^x is under FLT_MIN) the result is 0,
 * the flush of a denormal. NaN stays NaN. */
#include <immintrin.h>

#include "tvec.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
/* lanes [0, r) set, 0 < r < 8 */
static inline __m256i tail_mask(int64_t r) { return _mm256_loadu_si256((const __m256i *)(g_mask + 8 - r)); }

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 exp8(__m256 x) {
    /* lanes to keep: x >= -87.3 or NaN */
    __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_NLT_UQ);
    /* min/max return their second operand when either is NaN: x stays NaN */
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

static float max_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(x[0]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_blendv_ps(_mm256_set1_ps(x[0]), _mm256_maskload_ps(x + i, k), _mm256_castsi256_ps(k));
        m = _mm256_max_ps(m, v);
    }
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float exp_sum_avx2(float *y, const float *x, int64_t n, float m) {
    __m256 acc = _mm256_setzero_ps(), mv = _mm256_set1_ps(m);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        if (y) _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), mv)), _mm256_castsi256_ps(k));
        if (y) _mm256_maskstore_ps(y + i, k, e);
        acc = _mm256_add_ps(acc, e);
    }
    return hsum(acc);
}

static void scale_avx2(float *x, int64_t n, float s) {
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        _mm256_maskstore_ps(x + i, k, _mm256_mul_ps(_mm256_maskload_ps(x + i, k), sv));
    }
}

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    if (i < n) {
        __m256i k = tail_mask(n - i);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k), acc);
    }
    return hsum(acc);
}

static void dsoft_avx2(float *d, const float *p, int64_t n, float s, float c) {
    __m256 sv = _mm256_set1_ps(s), cv = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i),
                                                            _mm256_sub_ps(_mm256_loadu_ps(d + i), sv)), cv));
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(p + i, k),
                                               _mm256_sub_ps(_mm256_maskload_ps(d + i, k), sv)), cv);
        _mm256_maskstore_ps(d + i, k, v);
    }
}

static inline __m256 silu_sig(__m256 a) { /* 1 / (1 + e^-a) */
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), a))));
}

static void swiglu_avx2(float *S, const float *A, const float *U, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(A + i);
        _mm256_storeu_ps(S + i, _mm256_mul_ps(_mm256_mul_ps(a, silu_sig(a)), _mm256_loadu_ps(U + i)));
    }
    if (i < n) {
        __m256i k = tail_mask(n - i);
        __m256 a = _mm256_maskload_ps(A + i, k);
        _mm256_maskstore_ps(S + i, k, _mm256_mul_ps(_mm256_mul_ps(a, silu_sig(a)), _mm256_maskload_ps(U + i, k)));
    }
}

static inline void glu_bwd8(float *dA, float *dU, const float *dS, const float *A, const float *U,
                            __m256i k, int masked) {
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 x = masked ? _mm256_maskload_ps(A, k) : _mm256_loadu_ps(A);
    __m256 ds = masked ? _mm256_maskload_ps(dS, k) : _mm256_loadu_ps(dS);
    __m256 u = masked ? _mm256_maskload_ps(U, k) : _mm256_loadu_ps(U);
    __m256 da = masked ? _mm256_maskload_ps(dA, k) : _mm256_loadu_ps(dA);
    __m256 du = masked ? _mm256_maskload_ps(dU, k) : _mm256_loadu_ps(dU);
    __m256 sg = silu_sig(x);
    __m256 t = _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, sg)));
    da = _mm256_add_ps(da, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(ds, u), sg), t));
    du = _mm256_add_ps(du, _mm256_mul_ps(_mm256_mul_ps(ds, x), sg));
    if (masked) _mm256_maskstore_ps(dA, k, da), _mm256_maskstore_ps(dU, k, du);
    else _mm256_storeu_ps(dA, da), _mm256_storeu_ps(dU, du);
}

static void swiglu_bwd_avx2(float *dA, float *dU, const float *dS, const float *A, const float *U,
                            int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) glu_bwd8(dA + i, dU + i, dS + i, A + i, U + i, _mm256_setzero_si256(), 0);
    if (i < n) glu_bwd8(dA + i, dU + i, dS + i, A + i, U + i, tail_mask(n - i), 1);
}

static double sumsq_avx2(const float *x, int64_t n) {
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a = _mm256_fmadd_pd(lo, lo, a);
        b = _mm256_fmadd_pd(hi, hi, b);
    }
    a = _mm256_add_pd(a, b);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double t = _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    for (; i < n; i++) t += (double)x[i] * x[i];
    return t;
}

static void norm_row_avx2(float *y, const float *x, const float *g, float r, int64_t n) {
    __m256 rv = _mm256_set1_ps(r);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv), _mm256_loadu_ps(g + i)));
    for (; i < n; i++) y[i] = x[i] * r * g[i];
}

static float dot3_avx2(const float *dy, const float *g, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(g + i)),
                              _mm256_loadu_ps(x + i), acc);
    float t = hsum(acc);
    for (; i < n; i++) t += dy[i] * g[i] * x[i];
    return t;
}

static void norm_bwd_row_avx2(float *dx, const float *dy, const float *g, const float *x, float r,
                              float c, int64_t n) {
    __m256 rv = _mm256_set1_ps(r), cv = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(rv, _mm256_loadu_ps(g + i)), _mm256_loadu_ps(dy + i));
        v = _mm256_fnmadd_ps(cv, _mm256_loadu_ps(x + i), v);
        _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_loadu_ps(dx + i), v));
    }
    for (; i < n; i++) dx[i] += r * g[i] * dy[i] - c * x[i];
}

static void norm_dg_row_avx2(float *dg, const float *dy, const float *x, float r, int64_t n) {
    __m256 rv = _mm256_set1_ps(r);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dg + i, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(x + i)),
                                                 rv, _mm256_loadu_ps(dg + i)));
    for (; i < n; i++) dg[i] += dy[i] * x[i] * r;
}

static const tv_kernels g_avx2 = {max_avx2,      exp_sum_avx2,  scale_avx2,        dot_avx2,
                                  dsoft_avx2,    swiglu_avx2,   swiglu_bwd_avx2,   sumsq_avx2,
                                  norm_row_avx2, dot3_avx2,     norm_bwd_row_avx2, norm_dg_row_avx2,
                                  "avx2"};
const tv_kernels *tv_avx2_table(void) { return &g_avx2; }
