/* tvec.c - the scalar twin of the trainer's row kernels (tvec.h) and the
 * choice between it and the AVX2 set. Plain C: libm's expf, sums in 8
 * interleaved partial sums then a tree, as the AVX2 lanes. */
#include "tvec.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/cpu.h"

static float tree8(const float s[8]) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float max_ref(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float exp_sum_ref(float *y, const float *x, int64_t n, float m) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float e = expf(x[i + k] - m);
            if (y) y[i + k] = e;
            s[k] += e;
        }
    float t = tree8(s);
    for (; i < n; i++) {
        float e = expf(x[i] - m);
        if (y) y[i] = e;
        t += e;
    }
    return t;
}

static void scale_ref(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static float dot_ref(const float *a, const float *b, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    float t = tree8(s);
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

static void dsoft_ref(float *d, const float *p, int64_t n, float s, float c) {
    for (int64_t i = 0; i < n; i++) d[i] = p[i] * (d[i] - s) * c;
}

static void swiglu_ref(float *S, const float *A, const float *U, int64_t n) {
    for (int64_t i = 0; i < n; i++) S[i] = A[i] / (1 + expf(-A[i])) * U[i];
}

/* sig = 1 / (1 + e^-a): d silu/da = sig (1 + a (1 - sig)) */
static void swiglu_bwd_ref(float *dA, float *dU, const float *dS, const float *A, const float *U,
                           int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = A[i], sg = 1 / (1 + expf(-x));
        dA[i] += dS[i] * U[i] * sg * (1 + x * (1 - sg));
        dU[i] += dS[i] * x * sg;
    }
}

static double sumsq_ref(const float *x, int64_t n) {
    double s[4] = {0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += (double)x[i + k] * x[i + k];
    double t = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++) t += (double)x[i] * x[i];
    return t;
}

static void norm_row_ref(float *y, const float *x, const float *g, float r, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * g[i];
}

static float dot3_ref(const float *dy, const float *g, const float *x, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += dy[i + k] * g[i + k] * x[i + k];
    float t = tree8(s);
    for (; i < n; i++) t += dy[i] * g[i] * x[i];
    return t;
}

static void norm_bwd_row_ref(float *dx, const float *dy, const float *g, const float *x, float r,
                             float c, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += r * g[i] * dy[i] - c * x[i];
}

static void norm_dg_row_ref(float *dg, const float *dy, const float *x, float r, int64_t n) {
    for (int64_t i = 0; i < n; i++) dg[i] += dy[i] * x[i] * r;
}

static const tv_kernels g_ref = {max_ref,    exp_sum_ref,    scale_ref,        dot_ref,
                                 dsoft_ref,  swiglu_ref,     swiglu_bwd_ref,   sumsq_ref,
                                 norm_row_ref, dot3_ref,     norm_bwd_row_ref, norm_dg_row_ref,
                                 "scalar"};
static const tv_kernels *g_tv;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    g_tv = strcmp(sk_cpu_isa(), "scalar") != 0 && sk_cpu_has_avx2() ? tv_avx2_table() : &g_ref;
}

const tv_kernels *tv_get(void) {
    pthread_once(&g_once, choose);
    return g_tv;
}
const tv_kernels *tv_get_ref(void) { return &g_ref; }
const tv_kernels *tv_get_avx2(void) { return sk_cpu_has_avx2() ? tv_avx2_table() : NULL; }
