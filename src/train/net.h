/* net.h - a LLaMA-architecture network for training: its dimensions, where
 * each weight lives in the one flat parameter vector, and the forward and
 * backward pass over a batch (net_impl.h, compiled for float and double
 * like tops.h: tr_net_f32 is the trainer's, tr_net_f64 the twin whose
 * gradients the tests check against central differences).
 *
 * Block (pre-norm, as llama.cpp's llama graph):
 *   h = rmsnorm(x) * attn_norm; q, k, v = h Wq^T, h Wk^T, h Wv^T; RoPE on q, k
 *   x = x + attention(q, k, v) Wo^T
 *   h = rmsnorm(x) * ffn_norm;  x = x + (silu(h Wg^T) * h Wu^T) Wd^T
 * logits = (rmsnorm(x) * output_norm) E^T, E = the output matrix or, tied,
 * the token embedding. */
#ifndef SK_TRAIN_NET_H
#define SK_TRAIN_NET_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/threadpool.h"
#include "status.h"

typedef struct tr_dims {
    int n_layer, d, nh, nkv, hd, ff; /* hd = d / nh */
    int V;                           /* vocabulary */
    int T, B;                        /* tokens per sequence, sequences per batch */
    int tied;                        /* output matrix = token embedding */
    int softmax1;                    /* +1 in every attention denominator */
    int sink_logit;                  /* a learnable logit per head in every denominator */
    int bf16;                        /* the f32 net's matrix products on BF16 operands */
    double eps, rope_base;
} tr_dims;

/* Offsets (in elements) of one block's weights in the parameter vector. */
typedef struct tr_block_off {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd;
    size_t sinks; /* (nh) sink logits, after wd (sink_logit only) */
} tr_block_off;

#define TR_MAX_LAYERS 256

/* Where every weight lives; matrices are (out, in) rows. Order: token_embd
 * (V, d), then each block (attn_norm (d), wq (nh*hd, d), wk (nkv*hd, d),
 * wv (nkv*hd, d), wo (d, nh*hd), ffn_norm (d), wg (ff, d), wu (ff, d),
 * wd (d, ff)), output_norm (d), output (V, d) unless tied. */
typedef struct tr_layout {
    size_t tok_embd, out_norm, output; /* output == tok_embd when tied */
    tr_block_off blk[TR_MAX_LAYERS];
    size_t n_params;
} tr_layout;

void tr_layout_init(const tr_dims *dm, tr_layout *lay);

/* Is parameter i a gain vector (a norm weight: no weight decay, init 1)? */
int tr_layout_is_norm(const tr_dims *dm, const tr_layout *lay, size_t i);

#define TR_DECLARE_NET(R, SFX)                                                                  \
    typedef struct tr_net_##SFX tr_net_##SFX;                                                   \
    /* Allocate the activations and gradients of a network of dims dm; the weights are w       \
     * (n_params, borrowed: the caller owns and updates them), the gradients g (n_params,       \
     * owned). pool may be NULL. SK_ERR_NOMEM. */                                               \
    sk_status tr_net_new_##SFX(const tr_dims *dm, R *w, sk_pool *pool, tr_net_##SFX **out,      \
                               sk_error *err);                                                  \
    void tr_net_free_##SFX(tr_net_##SFX *n);                                                    \
    /* The gradient vector (n_params), valid until tr_net_free. */                              \
    R *tr_net_grad_##SFX(tr_net_##SFX *n);                                                      \
    const tr_layout *tr_net_layout_##SFX(const tr_net_##SFX *n);                                \
    /* Mean cross-entropy of nb <= B sequences of nt <= T tokens: inputs tok[b * stride + t],    \
     * targets tok[b * stride + t + 1] (stride >= nt + 1). With grad, the gradient vector is    \
     * overwritten with d(mean loss)/dw. Ids must be in [0, V). */                              \
    double tr_net_loss_##SFX(tr_net_##SFX *n, const int32_t *tok, int64_t stride, int nb,       \
                             int nt, int grad);                                                 \
    /* Logits (nt, V) of one sequence tok[0..nt), nt <= T, into out. */                         \
    void tr_net_logits_##SFX(tr_net_##SFX *n, const int32_t *tok, int nt, R *out);              \
    /* Attention probabilities of layer l of the last forward of nb x nt: (nb, nh, nt, nt). */         \
    const R *tr_net_attention_##SFX(const tr_net_##SFX *n, int l);

TR_DECLARE_NET(float, f32)
TR_DECLARE_NET(double, f64)

#endif
