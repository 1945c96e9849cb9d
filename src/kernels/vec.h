/* vec.h - attention kernels over F16 keys and values.
 *
 * Scalar references live in vec_ref.c; vec_avx2.c and vec_avx512.c hold
 * the SIMD twins (tests/test_vec.c compares them; the AVX-512 ones where
 * the CPU runs 512-bit operations at full width, vec_impl.h). sk_vec_get() returns the
 * kernel set cpu.h chose, installed once; SINKLLM_ISA=scalar forces the
 * reference (the same switch as the tensor formats). */
#ifndef SK_VEC_H
#define SK_VEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_vec_kernels {
    /* Scores of n_rep queries against n keys:
     *   s[r * ss + j] = scale * sum_i q[r * hd + i] * K[j * hd + i]
     * K: (n, hd) F16; q: (n_rep, hd) F32; r < n_rep, j < n. */
    void (*kq_f16)(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss);
    /* Weighted sum of n values for n_rep queries, over w columns:
     *   out[r * os + i] += sum_j a[r * as + j] * V[j * vs + i],  i < w
     * accumulated key by key in order j = 0, 1, ... for every (r, i), so
     * that a column's result does not depend on w, n_rep or where the
     * columns start (a slice of the head gives the bits of the whole).
     * V: (n, vs) F16; a: (n_rep, as) F32 weights; out: (n_rep, os) F32. */
    void (*av_f16)(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a,
                   size_t as, float *out, size_t os);
    /* Softmax numerator in place: a[j] = exp(a[j] - mx) for j < n (mx >= every
     * a[j]); returns the sum of the new a[j]. The reference uses libm's
     * expf and sums in double (eight interleaved partial sums, vec_ref.c);
     * every SIMD set gives its bits (libm's expf computed in double, 4 or
     * 8 lanes; tests/test_vec.c). */
    float (*exp_sum)(float *a, int64_t n, float mx);
    /* max of a[0..n), -inf for n = 0 */
    float (*max)(const float *a, int64_t n);
    /* SwiGLU in place: g[i] = g[i] / (1 + exp(-g[i])) * u[i] */
    void (*swiglu)(float *g, const float *u, int64_t n);
    /* GELU (tanh form) gate in place:
     *   g[i] = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * u[i] */
    void (*geglu)(float *g, const float *u, int64_t n);
} sk_vec_kernels;

/* The SIMD kernels handle hd (kq) and w (av) multiples of 16 up to 256,
 * whatever n_rep, with one code path per instruction set, so a score or an
 * output column gets the same bits for one query as for a chunk of them;
 * other shapes take the reference (also for every n_rep). */

const sk_vec_kernels *sk_vec_get(void);
const sk_vec_kernels *sk_vec_get_ref(void);

#endif
