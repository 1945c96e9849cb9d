/* vec_avx2.c - AVX2/F16C attention kernels over F16 K/V (see vec.h). */
#include <immintrin.h>

#include "vec.h"

void sk_vec_kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                       float scale, float *s, size_t ss);
void sk_vec_av_f16_ref(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                       float *out);

static inline float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (hd % 16 || n_rep > SK_VEC_MAX_REP || hd > 256) {
        sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
        return;
    }
    int nc = hd / 8;
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *k = K + (size_t)j * hd;
        __m256 kv[32];
        for (int c = 0; c < nc; c++)
            kv[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 8 * c)));
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            __m256 acc = _mm256_mul_ps(kv[0], _mm256_loadu_ps(qr));
            for (int c = 1; c < nc; c++) acc = _mm256_fmadd_ps(kv[c], _mm256_loadu_ps(qr + 8 * c), acc);
            s[(size_t)r * ss + j] = hsum8(acc) * scale;
        }
    }
}

static void av_f16(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                   float *out) {
    if (hd % 16 || n_rep > SK_VEC_MAX_REP) {
        sk_vec_av_f16_ref(n, hd, V, n_rep, a, as, out);
        return;
    }
    for (int c = 0; c < hd / 8; c++) {
        __m256 acc[SK_VEC_MAX_REP];
        for (int r = 0; r < n_rep; r++) acc[r] = _mm256_loadu_ps(out + (size_t)r * hd + 8 * c);
        for (int64_t j = 0; j < n; j++) {
            __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(V + (size_t)j * hd + 8 * c)));
            for (int r = 0; r < n_rep; r++)
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(a[(size_t)r * as + j]), v, acc[r]);
        }
        for (int r = 0; r < n_rep; r++) _mm256_storeu_ps(out + (size_t)r * hd + 8 * c, acc[r]);
    }
}

float sk_vec_exp_sum_ref(float *a, int64_t n, float mx);
float sk_vec_max_ref(const float *a, int64_t n);
void sk_vec_swiglu_ref(float *g, const float *u, int64_t n);

static const sk_vec_kernels g_avx2 = {kq_f16, av_f16, sk_vec_exp_sum_ref, sk_vec_max_ref,
                                      sk_vec_swiglu_ref, "avx2"};
const sk_vec_kernels *sk_vec_get_avx2(void) { return &g_avx2; }
