/* tops.h - the training ops: forward and backward of every operation of a
 * LLaMA block, written once (tops_impl.h) for a real type and compiled
 * twice: tr_*_f32 (the trainer) and tr_*_f64 (the double-precision twin
 * that tests/test_train_ops.c checks against central differences, and the
 * f32 ops against).
 *
 * Conventions: matrices are row-major, a weight W of a linear map from in
 * to out features is (out, in) as in GGUF; "n rows" are tokens. Backward
 * functions ADD into their gradient outputs (the caller zeroes them), so
 * that a value used twice collects both contributions. Every op that
 * reduces splits its work so that each output element is summed by one
 * thread in a fixed order: results do not depend on the thread count.
 * pool may be NULL (one thread). */
#ifndef SK_TRAIN_TOPS_H
#define SK_TRAIN_TOPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/threadpool.h"

/* Scratch of the f32 ops, allocated once (tr_ws_init): per thread of the
 * pool, the packed panels of the matrix product (TG_BUF_FLOATS of tgemm.h)
 * and a (T, T) matrix of the attention backward. The f64 ops ignore it
 * (NULL). */
typedef struct tr_ws {
    const struct tg_kernels *kr; /* the matrix products' kernels: F32, or BF16 (mixed precision) */
    float *gemm; /* (nth, TG_BUF_FLOATS), 64-byte aligned */
    float *att;  /* (nth, T * T) */
    int nth, T;
} tr_ws;

/* For a pool of nth threads and sequences of up to T tokens; bf16: the
 * matrix products (linear maps and attention) on BF16 operands (tgemm.h's
 * mixed precision). SK_ERR_NOMEM. */
sk_status tr_ws_init(tr_ws *ws, int nth, int T, int bf16, sk_error *err);
void tr_ws_free(tr_ws *ws);

#define TR_DECLARE_OPS(R, SFX)                                                                  \
    /* Y (n, out) = X (n, in) W^T, W (out, in) */                                               \
    void tr_matmul_##SFX(sk_pool *pool, const tr_ws *ws, R *Y, const R *X, const R *W,          \
                         int64_t n, int64_t in, int64_t out);                                   \
    /* dX (n, in) += dY (n, out) W (skipped when dX is NULL);                                   \
     * dW (out, in) += dY^T X (skipped when dW is NULL) */                                      \
    void tr_matmul_bwd_##SFX(sk_pool *pool, const tr_ws *ws, R *dX, R *dW, const R *dY,         \
                             const R *X, const R *W, int64_t n, int64_t in, int64_t out);       \
    /* Y[t] = X[t] * r[t] * g with r[t] = 1 / sqrt(mean(X[t]^2) + eps) (sum in double);         \
     * rstd (n) receives r */                                                                   \
    void tr_rmsnorm_##SFX(sk_pool *pool, R *Y, R *rstd, const R *X, const R *g, int64_t n,      \
                          int d, double eps);                                                   \
    /* dX (n, d) += and dg (d) += the gradients of rmsnorm given dY and the forward's rstd */   \
    void tr_rmsnorm_bwd_##SFX(sk_pool *pool, R *dX, R *dg, const R *dY, const R *X, const R *g, \
                              const R *rstd, int64_t n, int d);                                 \
    /* cs (T, hd/2, 2): cos and sin of t * base^(-2i/hd), computed in double */                 \
    void tr_rope_table_##SFX(R *cs, int T, int hd, double base);                                \
    /* In place on X (n, heads, hd), row t at position t % T: rotate the pairs (2i, 2i+1)       \
     * by the angle of cs (the llama layout, rope_neox = 0); inverse = 1 rotates back           \
     * (the backward of a rotation is its inverse) */                                           \
    void tr_rope_##SFX(R *X, int64_t n, int heads, int hd, int T, const R *cs, int inverse);    \
    /* Causal attention of nb sequences of T tokens (rows b*T + t). Q (n, nh*hd),               \
     * K, V (n, nkv*hd) (grouped: query head h reads KV head h / (nh/nkv)); P (nb, nh, T, T)    \
     * receives the probabilities (row t, columns 0..t); O (n, nh*hd). softmax1: one more       \
     * logit of 0 in every denominator, with no value (the "zero sink"); sinks (nh) or NULL:   \
     * head h's logit in every one of its denominators instead (sink logits, gpt-oss's form) */ \
    void tr_attention_##SFX(sk_pool *pool, const tr_ws *ws, R *O, R *P, const R *Q,             \
                            const R *K, const R *V, int nb, int T, int nh, int nkv, int hd,     \
                            int softmax1, const R *sinks);                                      \
    /* dQ (n, nh*hd), dK, dV (n, nkv*hd) += the gradients of attention given dO and the         \
     * forward's P; dsinks (nh) += the sink logits' gradients, or NULL; scratch:               \
     * (n_threads * T + nb * nh) */                                                             \
    void tr_attention_bwd_##SFX(sk_pool *pool, const tr_ws *ws, R *dQ, R *dK, R *dV,            \
                                R *dsinks, const R *dO, const R *P, const R *Q, const R *K,     \
                                const R *V, int nb, int T, int nh, int nkv, int hd,             \
                                R *scratch);                                                    \
    /* S (n) = silu(A) * U with silu(a) = a / (1 + exp(-a)) */                                  \
    void tr_swiglu_##SFX(sk_pool *pool, R *S, const R *A, const R *U, int64_t n);               \
    /* dA, dU (n) += the gradients of swiglu given dS */                                        \
    void tr_swiglu_bwd_##SFX(sk_pool *pool, R *dA, R *dU, const R *dS, const R *A, const R *U,  \
                             int64_t n);                                                        \
    /* Cross-entropy of n rows of logits Z (n, V) against targets: loss[t] = logsumexp(Z[t]) -  \
     * Z[t][target[t]]. With grad_scale != 0, Z is overwritten by its gradient                  \
     * grad_scale * (softmax(Z[t]) - onehot(target[t])). Targets are in [0, V). */              \
    void tr_xent_##SFX(sk_pool *pool, R *Z, R *loss, const int32_t *target, int64_t n,          \
                       int64_t V, R grad_scale);

TR_DECLARE_OPS(float, f32)
TR_DECLARE_OPS(double, f64)

#endif
