/* vec_avx2.c - AVX2/F16C attention kernels over F16 K/V (see vec.h): the
 * shared kernels of vec_simd.h at 256 bits (8 lanes). Registered over the
 * reference for kq_f16 and av_f16; softmax and SwiGLU stay scalar here. */
#include <immintrin.h>

#include "simd256.h"


#define VF __m256
#define VW 8
#define VF_LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define VF_LOAD(p) _mm256_loadu_ps(p)
#define VF_STORE(p, v) _mm256_storeu_ps((p), (v))
#define VF_SET1(x) _mm256_set1_ps(x)
#define VF_MUL(a, b) _mm256_mul_ps((a), (b))
#define VF_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VF_SUM(v) hsum8(v)
#include "vec_simd.h"

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (kq_fits(hd, n_rep)) kq_keys(0, n, hd, K, n_rep, q, scale, s, ss);
    else sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
}

static void av_f16(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                   float *out) {
    if (av_fits(hd, n_rep)) av_cols(n, hd, V, n_rep, a, as, out);
    else sk_vec_av_f16_ref(n, hd, V, n_rep, a, as, out);
}

/* Override the AVX2 entries of t (see vec_impl.h). */
void sk_vec_register_avx2(sk_vec_kernels *t) {
    t->kq_f16 = kq_f16;
    t->av_f16 = av_f16;
}
