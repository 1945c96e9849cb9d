/* adamw.h - AdamW with decoupled weight decay (Loshchilov & Hutter), in the
 * form PyTorch's torch.optim.AdamW computes, and the global gradient norm
 * for clipping. */
#ifndef SK_TRAIN_ADAMW_H
#define SK_TRAIN_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/threadpool.h"

typedef struct tr_adamw {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t t;          /* this step's number, 1-based (bias correction) */
    double grad_scale;  /* gradients are multiplied by it first (clipping) */
} tr_adamw;

/* sqrt(sum g[i]^2) in double: blocks of 65,536 summed on the pool (8
 * partial sums each), the block sums added in index order, so the same bits
 * whatever the thread count. scratch: tr_grad_norm_scratch(n) doubles.
 * pool may be NULL. */
double tr_grad_norm(sk_pool *pool, const float *g, size_t n, double *scratch);
size_t tr_grad_norm_scratch(size_t n);

/* For every i < n, with g = grad_scale * grad[i]:
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   w *= 1 - lr * weight_decay            (only where decay[i])
 *   w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * computed in double per element, stored as float. pool may be NULL. */
void tr_adamw_update(sk_pool *pool, const tr_adamw *o, float *w, const float *grad, float *m,
                     float *v, const uint8_t *decay, size_t n);

/* The element loop of the update, its constants folded: the scalar twin
 * (adamw.c) and the AVX2 one (adamw_avx2.c: 4 doubles a step, the same
 * operations in the same order, no FMA: the same bits). */
typedef struct tr_adamw_k {
    double keep;         /* 1 - lr weight_decay */
    double b1, c1, b2, c2; /* beta1, 1 - beta1, beta2, 1 - beta2 */
    double gs, lr, eps, bc1, bc2;
} tr_adamw_k;
typedef void (*tr_adamw_fn)(const tr_adamw_k *k, float *w, float *m, float *v, const float *g,
                            const uint8_t *decay, size_t n);
void tr_adamw_range_ref(const tr_adamw_k *k, float *w, float *m, float *v, const float *g,
                        const uint8_t *decay, size_t n);
void tr_adamw_range_avx2(const tr_adamw_k *k, float *w, float *m, float *v, const float *g,
                         const uint8_t *decay, size_t n);
/* the one in use (SINKLLM_ISA=scalar: the twin) */
tr_adamw_fn tr_adamw_range(void);

#endif
