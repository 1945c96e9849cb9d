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

/* sqrt(sum g[i]^2), summed in double in index order (thread-count free). */
double tr_grad_norm(const float *g, size_t n);

/* For every i < n, with g = grad_scale * grad[i]:
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   w *= 1 - lr * weight_decay            (only where decay[i])
 *   w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * computed in double per element, stored as float. pool may be NULL. */
void tr_adamw_update(sk_pool *pool, const tr_adamw *o, float *w, const float *grad, float *m,
                     float *v, const uint8_t *decay, size_t n);

#endif
