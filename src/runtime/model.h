/* model.h - an immutable transformer of one of the families of arch.h:
 * hyper-parameters, weight views into the mmapped GGUF file, and the
 * tokenizer. Shared by any number of contexts (include/sinkllm.h has the
 * public half). */
#ifndef SK_MODEL_H
#define SK_MODEL_H

#include <stdint.h>

#include "arch.h"
#include "gguf.h"
#include "kernels/quant.h"
#include "kernels/tensor.h"
#include "sinkllm.h"


/* One transformer block. Optional tensors (biases, Q/K norms, post-norms)
 * have data == NULL when the file has none. Fused matrices of the file
 * (attn_qkv, Phi-3's ffn_up) are bound as row views: wq/wk/wv and
 * w_gate/w_up point into them. */
typedef struct sk_layer {
    sk_tensor attn_norm;  /* (n_embd) F32 */
    sk_tensor wq;         /* (n_head * head_dim, n_embd) */
    sk_tensor wk;         /* (n_head_kv * head_dim, n_embd) */
    sk_tensor wv;         /* (n_head_kv * head_dim, n_embd) */
    sk_tensor wo;         /* (n_embd, n_head * head_dim) */
    sk_tensor bq, bk, bv, bo;         /* optional biases, F32, of the output sizes */
    sk_tensor q_norm, k_norm;         /* (head_dim) F32: per-head RMSNorm (qk_norm) */
    sk_tensor post_attn_norm;         /* (n_embd) F32 (post_norms) */
    sk_tensor ffn_norm;   /* (n_embd) F32 */
    sk_tensor w_gate;     /* (n_ff, n_embd) */
    sk_tensor w_up;       /* (n_ff, n_embd) */
    sk_tensor w_down;     /* (n_embd, n_ff) */
    sk_tensor b_gate, b_up, b_down;   /* optional biases */
    sk_tensor post_ffn_norm;          /* (n_embd) F32 (post_norms) */
    sk_tensor sinks;      /* (n_head) F32 attn_sinks: one logit per query head added to
                             every softmax denominator, with no value (gpt-oss,
                             sinkllm train --softmax1/--sink-logit); NULL: none */
    int swa;              /* 1: a local (sliding-window) layer */
    int kv_layer;         /* index of this layer in its cache (global or local) */
} sk_layer;

struct sk_model {
    sk_hparams hp;
    const sk_arch *arch;  /* the family's row of arch.c */
    void *map;            /* read-only mapping of the whole file */
    uint64_t map_size;
    gguf_ctx *gguf;
    sk_tokenizer *tok;
    sk_tensor tok_embd;   /* (n_vocab, n_embd) rows of n_embd */
    sk_tensor output_norm;/* (n_embd) F32 */
    sk_tensor output;     /* (n_vocab, n_embd); == tok_embd when tied */
    sk_layer *layers;     /* n_layer */
    const float *rope_factors; /* (n_rot / 2): frequencies are divided by them; NULL: none */
    const float *rope_factors_long; /* Phi-3: the factors for contexts beyond n_ctx_orig */
    int64_t n_ctx_orig;   /* rope.scaling.original_context_length, else context_length */
    double rope_mscale;   /* cos/sin are multiplied by it (rope.scaling.attn_factor), 1 */
    float embd_scale;     /* embeddings are multiplied by it (1 or sqrt(n_embd)) */
    float q_scale;        /* queries are multiplied by it before the 1/sqrt(head_dim)
                             of the attention kernels (1 for most families) */
    float logit_softcap;  /* final_logit_softcapping, 0: none */
    uint64_t weight_bytes;
    uint64_t n_params;
    char desc[96];
    char *chat_template;  /* NUL-terminated copy, or NULL */
    uint64_t fingerprint; /* FNV-1a over the header and tensor infos */
    int32_t sink_token;   /* <arch>.sink_token_id (sinkllm train --sink-token), -1: none */
    void *pack_mem;       /* anonymous mapping that holds every packed tensor */
    size_t pack_size;
    int vocab_only;       /* sk_model_load_vocab: the tokenizer and no weights */
};

/* Validate hyper-parameters read from metadata (exposed for tests). */
sk_status sk_hparams_validate(const sk_hparams *hp, sk_error *err);

/* Parse a model from a span that the caller owns (the span must outlive
 * the model; sk_model_free will not unmap it). Used by tests to load
 * models built in memory. */
sk_status sk_model_from_span(const void *data, uint64_t size, sk_model **out, sk_error *err);

#endif
