/* tmm_avx2.c - the AVX2+FMA twin of the trainer's f32 matmul kernels
 * (tmm.h); compiled with -mavx2 -mfma, called only when the CPU has them.
 * Register blocking: fwd computes 2 x 4 outputs at once (8 accumulators,
 * 6 loads per 8 FMAs); acc updates 2 rows x 32 columns (8 accumulators,
 * 4 loads and 2 broadcasts per 8 FMAs). The arithmetic of each element is
 * the chain tmm.h states, whatever the blocking. */
#include <immintrin.h>
#include <math.h>

#include "tmm.h"

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float dot1(const float *x, const float *w, int64_t in) {
    __m256 a = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= in; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(w + k), a);
    float s = hsum8(a);
    for (; k < in; k++) s = fmaf(x[k], w[k], s);
    return s;
}

static void fwd_avx2(const float *X, const float *W, float *Y, int64_t t0, int64_t t1, int64_t o0,
                     int64_t o1, int64_t in, int64_t out) {
    int64_t t = t0;
    for (; t + 2 <= t1; t += 2) {
        const float *x0 = X + t * in, *x1 = x0 + in;
        int64_t o = o0;
        for (; o + 4 <= o1; o += 4) {
            const float *w0 = W + o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
                   b3 = a0;
            int64_t k = 0;
            for (; k + 8 <= in; k += 8) {
                __m256 xa = _mm256_loadu_ps(x0 + k), xb = _mm256_loadu_ps(x1 + k), w;
                w = _mm256_loadu_ps(w0 + k), a0 = _mm256_fmadd_ps(xa, w, a0), b0 = _mm256_fmadd_ps(xb, w, b0);
                w = _mm256_loadu_ps(w1 + k), a1 = _mm256_fmadd_ps(xa, w, a1), b1 = _mm256_fmadd_ps(xb, w, b1);
                w = _mm256_loadu_ps(w2 + k), a2 = _mm256_fmadd_ps(xa, w, a2), b2 = _mm256_fmadd_ps(xb, w, b2);
                w = _mm256_loadu_ps(w3 + k), a3 = _mm256_fmadd_ps(xa, w, a3), b3 = _mm256_fmadd_ps(xb, w, b3);
            }
            float r[8] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3),
                          hsum8(b0), hsum8(b1), hsum8(b2), hsum8(b3)};
            const float *ws[4] = {w0, w1, w2, w3};
            for (int64_t kk = k; kk < in; kk++)
                for (int j = 0; j < 4; j++) {
                    r[j] = fmaf(x0[kk], ws[j][kk], r[j]);
                    r[4 + j] = fmaf(x1[kk], ws[j][kk], r[4 + j]);
                }
            for (int j = 0; j < 4; j++) {
                Y[t * out + o + j] = r[j];
                Y[(t + 1) * out + o + j] = r[4 + j];
            }
        }
        for (; o < o1; o++) {
            Y[t * out + o] = dot1(x0, W + o * in, in);
            Y[(t + 1) * out + o] = dot1(x1, W + o * in, in);
        }
    }
    for (; t < t1; t++)
        for (int64_t o = o0; o < o1; o++) Y[t * out + o] = dot1(X + t * in, W + o * in, in);
}

/* one or two rows of out, columns [i0, i0 + 32) */
static inline void acc32(float *o0, float *o1, const float *c0, const float *c1, int64_t cs,
                         const float *M, int64_t j0, int64_t j1, int64_t in) {
    __m256 a0 = _mm256_loadu_ps(o0), a1 = _mm256_loadu_ps(o0 + 8), a2 = _mm256_loadu_ps(o0 + 16),
           a3 = _mm256_loadu_ps(o0 + 24);
    if (o1) {
        __m256 b0 = _mm256_loadu_ps(o1), b1 = _mm256_loadu_ps(o1 + 8),
               b2 = _mm256_loadu_ps(o1 + 16), b3 = _mm256_loadu_ps(o1 + 24);
        for (int64_t j = j0; j < j1; j++) {
            const float *m = M + j * in;
            __m256 g = _mm256_broadcast_ss(c0 + j * cs), h = _mm256_broadcast_ss(c1 + j * cs), v;
            v = _mm256_loadu_ps(m), a0 = _mm256_fmadd_ps(g, v, a0), b0 = _mm256_fmadd_ps(h, v, b0);
            v = _mm256_loadu_ps(m + 8), a1 = _mm256_fmadd_ps(g, v, a1), b1 = _mm256_fmadd_ps(h, v, b1);
            v = _mm256_loadu_ps(m + 16), a2 = _mm256_fmadd_ps(g, v, a2), b2 = _mm256_fmadd_ps(h, v, b2);
            v = _mm256_loadu_ps(m + 24), a3 = _mm256_fmadd_ps(g, v, a3), b3 = _mm256_fmadd_ps(h, v, b3);
        }
        _mm256_storeu_ps(o1, b0), _mm256_storeu_ps(o1 + 8, b1);
        _mm256_storeu_ps(o1 + 16, b2), _mm256_storeu_ps(o1 + 24, b3);
    } else {
        for (int64_t j = j0; j < j1; j++) {
            const float *m = M + j * in;
            __m256 g = _mm256_broadcast_ss(c0 + j * cs);
            a0 = _mm256_fmadd_ps(g, _mm256_loadu_ps(m), a0);
            a1 = _mm256_fmadd_ps(g, _mm256_loadu_ps(m + 8), a1);
            a2 = _mm256_fmadd_ps(g, _mm256_loadu_ps(m + 16), a2);
            a3 = _mm256_fmadd_ps(g, _mm256_loadu_ps(m + 24), a3);
        }
    }
    _mm256_storeu_ps(o0, a0), _mm256_storeu_ps(o0 + 8, a1);
    _mm256_storeu_ps(o0 + 16, a2), _mm256_storeu_ps(o0 + 24, a3);
}

static void acc_avx2(float *out, int64_t ostride, const float *c, int64_t crs, int64_t cs,
                     const float *M, int64_t j0, int64_t j1, int64_t in, int64_t nr) {
    for (int64_t r = 0; r < nr; r += 2) {
        int two = r + 1 < nr;
        float *o0 = out + r * ostride, *o1 = two ? o0 + ostride : 0;
        const float *c0 = c + r * crs, *c1 = two ? c0 + crs : 0;
        int64_t i = 0;
        for (; i + 32 <= in; i += 32) acc32(o0 + i, o1 ? o1 + i : 0, c0, c1, cs, M + i, j0, j1, in);
        for (int k = 0; k < 1 + two; k++) {
            float *oo = k ? o1 : o0;
            const float *cc = k ? c1 : c0;
            int64_t ii = i;
            for (; ii + 8 <= in; ii += 8) {
                __m256 a = _mm256_loadu_ps(oo + ii);
                for (int64_t j = j0; j < j1; j++)
                    a = _mm256_fmadd_ps(_mm256_broadcast_ss(cc + j * cs), _mm256_loadu_ps(M + j * in + ii), a);
                _mm256_storeu_ps(oo + ii, a);
            }
            for (; ii < in; ii++) {
                float a = oo[ii];
                for (int64_t j = j0; j < j1; j++) a = fmaf(cc[j * cs], M[j * in + ii], a);
                oo[ii] = a;
            }
        }
    }
}

static const tr_mm_kernels g_avx2 = {fwd_avx2, acc_avx2, "avx2"};
const tr_mm_kernels *tr_mm_avx2_table(void) { return &g_avx2; }
