/* adamw_avx2.c - the AVX2 twin of the AdamW element loop (adamw.h): 4
 * doubles a step, each operation of tr_adamw_range_ref in the same order
 * and no FMA, so the same bits; compiled with -mavx2, called only when the
 * CPU has it. */
#include <immintrin.h>
#include <math.h>

#include "adamw.h"

void tr_adamw_range_avx2(const tr_adamw_k *k, float *w, float *m, float *v, const float *g,
                         const uint8_t *decay, size_t n) {
    const __m256d keep = _mm256_set1_pd(k->keep), one = _mm256_set1_pd(1.0),
                  b1 = _mm256_set1_pd(k->b1), c1 = _mm256_set1_pd(k->c1),
                  b2 = _mm256_set1_pd(k->b2), c2 = _mm256_set1_pd(k->c2),
                  gs = _mm256_set1_pd(k->gs), lr = _mm256_set1_pd(k->lr),
                  eps = _mm256_set1_pd(k->eps), bc1 = _mm256_set1_pd(k->bc1),
                  bc2 = _mm256_set1_pd(k->bc2);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d gi = _mm256_mul_pd(gs, _mm256_cvtps_pd(_mm_loadu_ps(g + i)));
        __m256d mi = _mm256_add_pd(_mm256_mul_pd(b1, _mm256_cvtps_pd(_mm_loadu_ps(m + i))),
                                   _mm256_mul_pd(c1, gi));
        __m256d vi = _mm256_add_pd(_mm256_mul_pd(b2, _mm256_cvtps_pd(_mm_loadu_ps(v + i))),
                                   _mm256_mul_pd(_mm256_mul_pd(c2, gi), gi));
        int32_t d4;
        __builtin_memcpy(&d4, decay + i, 4);
        __m256i dm = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(d4));
        __m256d nodecay = _mm256_castsi256_pd(_mm256_cmpeq_epi64(dm, _mm256_setzero_si256()));
        __m256d wi = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(w + i)), _mm256_blendv_pd(keep, one, nodecay));
        __m256d step = _mm256_div_pd(_mm256_mul_pd(lr, _mm256_div_pd(mi, bc1)),
                                     _mm256_add_pd(_mm256_sqrt_pd(_mm256_div_pd(vi, bc2)), eps));
        wi = _mm256_sub_pd(wi, step);
        _mm_storeu_ps(m + i, _mm256_cvtpd_ps(mi));
        _mm_storeu_ps(v + i, _mm256_cvtpd_ps(vi));
        _mm_storeu_ps(w + i, _mm256_cvtpd_ps(wi));
    }
    for (; i < n; i++) { /* the tail: tr_adamw_range_ref's loop (ISO C: no contraction) */
        double gi = k->gs * g[i];
        double mi = k->b1 * m[i] + k->c1 * gi;
        double vi = k->b2 * v[i] + k->c2 * gi * gi;
        double wi = w[i] * (decay[i] ? k->keep : 1.0);
        wi -= k->lr * (mi / k->bc1) / (sqrt(vi / k->bc2) + k->eps);
        m[i] = (float)mi;
        v[i] = (float)vi;
        w[i] = (float)wi;
    }
}
