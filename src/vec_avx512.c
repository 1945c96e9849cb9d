/* vec_avx512.c - AVX-512 attention kernels over F16 K/V (see vec.h).
 * Keys and values are widened 16 halves at a time with vcvtph2ps. */
#include <immintrin.h>

#include "vec.h"

void sk_vec_kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                       float scale, float *s, size_t ss);
void sk_vec_av_f16_ref(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                       float *out);

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (hd % 16 || n_rep > SK_VEC_MAX_REP || hd > 256) {
        sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
        return;
    }
    int nc = hd / 16;
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *k = K + (size_t)j * hd;
        __m512 kv[16];
        for (int c = 0; c < nc; c++)
            kv[c] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * c)));
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            __m512 acc = _mm512_mul_ps(kv[0], _mm512_loadu_ps(qr));
            for (int c = 1; c < nc; c++) acc = _mm512_fmadd_ps(kv[c], _mm512_loadu_ps(qr + 16 * c), acc);
            s[(size_t)r * ss + j] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
}

static void av_f16(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                   float *out) {
    if (hd % 16 || n_rep > SK_VEC_MAX_REP) {
        sk_vec_av_f16_ref(n, hd, V, n_rep, a, as, out);
        return;
    }
    for (int c = 0; c < hd / 16; c++) {
        __m512 acc[SK_VEC_MAX_REP];
        for (int r = 0; r < n_rep; r++) acc[r] = _mm512_loadu_ps(out + (size_t)r * hd + 16 * c);
        for (int64_t j = 0; j < n; j++) {
            __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(V + (size_t)j * hd + 16 * c)));
            for (int r = 0; r < n_rep; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)r * as + j]), v, acc[r]);
        }
        for (int r = 0; r < n_rep; r++) _mm512_storeu_ps(out + (size_t)r * hd + 16 * c, acc[r]);
    }
}

static const sk_vec_kernels g_avx512 = {kq_f16, av_f16, "avx512"};
const sk_vec_kernels *sk_vec_get_avx512(void) { return &g_avx512; }
