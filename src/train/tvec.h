/* tvec.h - the trainer's f32 row kernels (softmax pieces, the attention's
 * softmax backward, SwiGLU, RMSNorm): the AVX2+FMA set (tvec_avx2.c, its exp
 * a polynomial of about 2 ulp) or the scalar twin (tvec.c, libm's expf),
 * chosen once from the CPU tier like tgemm.h (SINKLLM_ISA=scalar forces the
 * twin). Each works on one row at a time, so that a split of rows over
 * threads never changes a bit; the sums are in a fixed order (8 lanes, a
 * tree, then the tail) in both sets, which differ only in rounding. */
#ifndef SK_TRAIN_TVEC_H
#define SK_TRAIN_TVEC_H

#include <stdint.h>

typedef struct tv_kernels {
    /* max of x[0..n), n >= 1 */
    float (*max)(const float *x, int64_t n);
    /* sum of exp(x[i] - m); y (may be x, or NULL) receives the terms */
    float (*exp_sum)(float *y, const float *x, int64_t n, float m);
    /* x[i] *= s */
    void (*scale)(float *x, int64_t n, float s);
    /* sum of a[i] b[i] */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* d[i] = p[i] (d[i] - s) c: the softmax backward of a row */
    void (*dsoft)(float *d, const float *p, int64_t n, float s, float c);
    /* S[i] = silu(A[i]) U[i] */
    void (*swiglu)(float *S, const float *A, const float *U, int64_t n);
    /* dA[i] += dS[i] U[i] silu'(A[i]), dU[i] += dS[i] silu(A[i]) */
    void (*swiglu_bwd)(float *dA, float *dU, const float *dS, const float *A, const float *U,
                       int64_t n);
    /* sum of x[i]^2, accumulated in double */
    double (*sumsq)(const float *x, int64_t n);
    /* y[i] = x[i] r g[i] */
    void (*norm_row)(float *y, const float *x, const float *g, float r, int64_t n);
    /* sum of dy[i] g[i] x[i] */
    float (*dot3)(const float *dy, const float *g, const float *x, int64_t n);
    /* dx[i] += r g[i] dy[i] - c x[i] */
    void (*norm_bwd_row)(float *dx, const float *dy, const float *g, const float *x, float r,
                         float c, int64_t n);
    /* dg[i] += dy[i] x[i] r */
    void (*norm_dg_row)(float *dg, const float *dy, const float *x, float r, int64_t n);
    const char *name;
} tv_kernels;

const tv_kernels *tv_get(void);
const tv_kernels *tv_get_ref(void);
const tv_kernels *tv_get_avx2(void); /* NULL without AVX2 + FMA */
const tv_kernels *tv_avx2_table(void);

#endif
