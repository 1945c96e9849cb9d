/* vec_ref.c - scalar reference of the attention kernels (vec.h): the
 * definition the SIMD twins in vec_avx2.c must agree with
 * (tests/test_vec.c), and their fallback for shapes they do not handle. */
#include <math.h>

#include "half.h"
#include "vec_impl.h"

/* s[r * ss + j] = scale * q_r . K_j, in float, in index order */
void sk_vec_kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                       float *s, size_t ss) {
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

/* out[r * os + i] += a[r * as + j] * V[j * vs + i], i < w, key by key */
void sk_vec_av_f16_ref(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a,
                       size_t as, float *out, size_t os) {
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *v = V + (size_t)j * vs;
        for (int r = 0; r < n_rep; r++) {
            float wt = a[(size_t)r * as + j];
            float *o = out + (size_t)r * os;
            for (int i = 0; i < w; i++) o[i] += wt * sk_f16_to_f32(v[i]);
        }
    }
}

/* The sum in double, in eight interleaved partial sums (p_i over j = i
 * mod 8 of the whole blocks of 8, in order), joined as ((p0 + p4) + (p2 +
 * p6)) + ((p1 + p5) + (p3 + p7)), then the tail in order: one order that a
 * SIMD twin can follow with two 4-lane accumulators. */
static float exp_sum_ref(float *a, int64_t n, float mx) {
    double p[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int i = 0; i < 8; i++) p[i] += (a[j + i] = expf(a[j + i] - mx));
    double sum = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
    for (; j < n; j++) sum += (a[j] = expf(a[j] - mx));
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

static void geglu_ref(float *g, const float *u, int64_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * u[i];
    }
}

/* Every entry of t: the reference kernels. */
void sk_vec_ref_fill(sk_vec_kernels *t) {
    t->kq_f16 = sk_vec_kq_f16_ref;
    t->av_f16 = sk_vec_av_f16_ref;
    t->exp_sum = exp_sum_ref;
    t->max = max_ref;
    t->swiglu = swiglu_ref;
    t->geglu = geglu_ref;
}
