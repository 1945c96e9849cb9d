/* vec.c - scalar reference attention kernels and their dispatch (vec.h). */
#include "vec.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

static void kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                       float scale, float *s, size_t ss) {
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *k = K + (size_t)j * hd;
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            float d = 0.0f;
            for (int i = 0; i < hd; i++) d += qr[i] * sk_f16_to_f32(k[i]);
            s[(size_t)r * ss + j] = d * scale;
        }
    }
}

static void av_f16_ref(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                       float *out) {
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *v = V + (size_t)j * hd;
        for (int r = 0; r < n_rep; r++) {
            float w = a[(size_t)r * as + j];
            float *o = out + (size_t)r * hd;
            for (int i = 0; i < hd; i++) o[i] += w * sk_f16_to_f32(v[i]);
        }
    }
}

static float exp_sum_ref(float *a, int64_t n, float mx) {
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) sum += (a[j] = expf(a[j] - mx));
    return (float)sum;
}

static float max_ref(const float *a, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = a[j] > mx ? a[j] : mx;
    return mx;
}

static void swiglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

static const sk_vec_kernels g_ref = {kq_f16_ref, av_f16_ref, exp_sum_ref, max_ref, swiglu_ref,
                                     "scalar"};
static const sk_vec_kernels *g_sel = &g_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void vec_init_once(void) {
    const char *env = getenv("SINKLLM_SCALAR");
    if (env && env[0] && strcmp(env, "0") != 0) return;
    if (sk_quant_cpu_has_avx512vnni()) g_sel = sk_vec_get_avx512();
    else if (sk_quant_cpu_has_avx2()) g_sel = sk_vec_get_avx2();
}

const sk_vec_kernels *sk_vec_get(void) {
    pthread_once(&g_once, vec_init_once);
    return g_sel;
}

const sk_vec_kernels *sk_vec_get_ref(void) { return &g_ref; }

/* entry points the SIMD files fall back to */
void sk_vec_kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                       float scale, float *s, size_t ss) {
    kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
}
void sk_vec_av_f16_ref(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                       float *out) {
    av_f16_ref(n, hd, V, n_rep, a, as, out);
}
float sk_vec_exp_sum_ref(float *a, int64_t n, float mx) { return exp_sum_ref(a, n, mx); }
float sk_vec_max_ref(const float *a, int64_t n) { return max_ref(a, n); }
void sk_vec_swiglu_ref(float *g, const float *u, int64_t n) { swiglu_ref(g, u, n); }
