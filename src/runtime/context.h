/* context.h - the private layout of sk_context (include/sinkllm.h has the
 * public half), shared by context.c (the forward pass) and session.c
 * (saving and restoring a context). */
#ifndef SK_CONTEXT_H
#define SK_CONTEXT_H

#include <stdint.h>

#include "kvcache.h"
#include "model.h"
#include "kernels/threadpool.h"

#define SK_QBLK 16 /* query tokens per block in the chunked attention path */
#define SK_SPLIT_TOK 3 /* up to this many tokens: decode attention split over the keys */

struct sk_context {
    const sk_model *m;
    sk_context_params p;
    sk_pool *pool;       /* its own, or borrowed from p.threads (then not freed here) */
    sk_kvcache *kv;      /* the cache of the global layers (the policy's sinks + window) */
    sk_kvcache *kv_swa;  /* the cache of the local (sliding-window) layers: a plain window
                            of n_swa tokens; NULL when the model has none */
    int n_batch;
    int n_rep;           /* query heads per KV head */
    double *theta;       /* (n_rot / 2) RoPE frequencies (factors applied) */
    double *theta_swa;   /* (n_rot / 2) RoPE frequencies of the local layers */
    /* activations, n_batch rows each */
    float *x;            /* (n_batch, n_embd) residual stream */
    float *xb;           /* (n_batch, n_embd) normed input / matmul output */
    float *q;            /* (n_batch, n_head * head_dim) rotated at stream position */
    float *qp;           /* (n_batch, n_head * head_dim) rotated at cache position */
    float *k;            /* (n_batch, n_head_kv * head_dim) */
    float *v;            /* (n_batch, n_head_kv * head_dim) */
    float *ao;           /* (n_batch, n_head * head_dim) attention output */
    float *hg;           /* (n_batch, n_ff) gate, then act(gate) * up */
    float *hu;           /* (n_batch, n_ff) up */
    float *att;          /* (n_threads, att_stride): per-thread scores and query blocks */
    size_t att_stride;
    float *sc;           /* (SK_SPLIT_TOK * n_head, sc_stride): the decode path's
                            scores, then probabilities, per (token, query head) */
    size_t sc_stride;    /* keys of the larger cache */
    int n_threads;
    uint64_t scratch_bytes; /* every buffer above, KV cache not included */
    float *cs_win;       /* (n_batch, n_rot) cos/sin at stream positions */
    float *cs_pfx;       /* (n_batch, n_rot) cos/sin at cache positions */
    float *cs_swa;       /* (n_batch, n_rot) cos/sin at stream positions, local layers */
    int64_t *lo;         /* (n_batch) lowest visible window position per token */
    int64_t *lo_swa;     /* (n_batch) the same in the local layers' window */
    uint8_t *use_pfx;    /* (n_batch) query needs a second rotation */
    void *qbuf;          /* quantized activations */
    float *rowbuf;       /* precise mode: (n_threads, widest input) dequantized rows */
    float *logits;       /* (n_vocab), or (n_batch, n_vocab) with logits_all */
    int n_logits;        /* rows of logits from the last chunk */
    int n_logits_valid;  /* the last sk_decode call fit in one chunk (sk_logits_ith) */
    int has_logits;
    /* attention capture (diagnostics) */
    const int *cap_layers;
    int cap_n_layers, cap_n_tok;
    float *cap_buf;
    /* the embedding (sk_context_embedding): the sum of every token's final
     * normed hidden state since the reset, in double; emb_ok 0 once it no
     * longer matches the stream (a rollback, a load, a recompute pass) */
    double *emb_sum;     /* (n_embd) */
    int64_t emb_n;
    int emb_ok;
    /* recompute policy: the last n_window tokens */
    int32_t *hist;
    int64_t n_hist;
    int64_t n_recomputed;
};

#endif
