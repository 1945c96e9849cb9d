/* ops.h - the small float kernels of the forward pass and the parallel
 * matrix multiply over quantized weights. */
#ifndef SK_OPS_H
#define SK_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"
#include "threadpool.h"

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n. out may alias x. */
void sk_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* RoPE rotation table for one position: cs[2*i] = cos(a_i), cs[2*i+1] =
 * sin(a_i), a_i = (pos / scale) * base^(-2i / n_rot), i < n_rot / 2. The
 * angle is computed in double precision: positions reach the millions. */
void sk_rope_table(double pos, int n_rot, double base, double scale, float *cs);

/* Rotate the first n_rot dims of each of n_heads vectors of head_dim floats
 * in place. neox = 0: pairs (2i, 2i+1); neox = 1: pairs (i, i + n_rot/2). */
void sk_rope_apply(float *x, int n_heads, int head_dim, int n_rot, int neox, const float *cs);

/* x[i] = silu(g[i]) * u[i] (SwiGLU), written into g. */
void sk_swiglu(float *g, const float *u, int64_t n);

/* x[i] = gelu_tanh(g[i]) * u[i] (GEGLU, Gemma), written into g. */
void sk_geglu(float *g, const float *u, int64_t n);

/* One matrix multiply in a batch that shares its input:
 *   out[t * out_stride + r] = W_r . x_t   for r < W->ne[1], t < n_tok */
typedef struct sk_matmul_job {
    const sk_tensor *w;
    float *out;
    size_t out_stride;    /* floats */
} sk_matmul_job;

/* Scratch for activation quantization: large enough for n_tok rows of the
 * widest input in any dot type (see sk_matmul_scratch_size). */
size_t sk_matmul_scratch_size(int64_t n_in_max, int n_tok);

/* Run up to 4 matmuls that share the input x (n_tok rows of n_in floats,
 * row stride x_stride floats) on the pool. The input is quantized once per
 * dot type into qbuf. All jobs' weights must have ne[0] == n_in. */
void sk_matmul(sk_pool *pool, const sk_matmul_job *jobs, int n_jobs, const float *x,
               size_t x_stride, int n_in, int n_tok, void *qbuf);

/* The same product in reference arithmetic: each weight row is dequantized
 * to F32 (rowbuf: n_threads * n_in floats of scratch) and dotted with the
 * F32 input, accumulating in double. */
void sk_matmul_precise(sk_pool *pool, const sk_matmul_job *jobs, int n_jobs, const float *x,
                       size_t x_stride, int n_in, int n_tok, float *rowbuf);

/* out (n_embd floats) = row `id` of the embedding matrix, dequantized. */
void sk_embed_row(const sk_tensor *emb, int32_t id, float *out);

#endif
