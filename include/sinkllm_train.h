/* sinkllm_train.h - the public training API of sinkllm: pre-train a small
 * LLaMA-architecture model (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU, tied or untied embeddings) on a plain text, from scratch, on the
 * CPU, in F32; checkpoint and resume it exactly; export it as a GGUF file
 * that sk_model_load (and so `sinkllm run`, `ppl`, `chat`) reads.
 *
 * A trainer (sk_trainer) owns its weights, gradients, AdamW moments, every
 * activation buffer of a (batch, n_ctx) step, a thread pool and a random
 * generator for drawing samples: a step allocates nothing. One thread uses
 * it at a time. Results do not depend on the thread count: every sum is
 * split so that one thread computes it in a fixed order, so a run on 1
 * thread and on 8 gives the same bits.
 *
 * A corpus (sk_train_data) is a UTF-8 text tokenized with a model's
 * tokenizer, split into a training part and a held-out tail.
 *
 * Errors follow sinkllm.h: sk_status and a one-line message; nothing is
 * printed; free functions accept NULL. */
#ifndef SINKLLM_TRAIN_H
#define SINKLLM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "sinkllm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameters ---------------------------------------------------------- */

typedef struct sk_train_params {
    /* the model */
    int n_layer;         /* blocks (4) */
    int n_embd;          /* width (128) */
    int n_head;          /* query heads (4); head_dim = n_embd / n_head, even */
    int n_head_kv;       /* key/value heads (4), divides n_head */
    int n_ff;            /* SwiGLU hidden width (384) */
    int64_t n_vocab;     /* vocabulary: the tokenizer's size (49152 for SmolLM2's) */
    int n_ctx;           /* tokens per training sample (256) */
    int tied;            /* 1: the output matrix is the token embedding (default 1) */
    int softmax1;        /* 1: +1 in every attention denominator (the "zero sink");
                            exported as sink logits of 0 (attn_sinks) */
    int sink_logit;      /* 1: one learnable logit per head and layer in every attention
                            denominator, with no value (gpt-oss's form; init 0, no weight
                            decay); exported as attn_sinks. Not with softmax1 */
    int32_t sink_token;  /* >= 0: this token starts every sample (the paper's learnable
                            sink: its embedding learns the sink role; take a control
                            token the corpus never contains); -1: none (default) */
    double norm_eps;     /* RMSNorm epsilon (1e-5; rounded to F32, as GGUF stores it) */
    double rope_base;    /* RoPE base (10000) */
    /* the optimisation */
    int batch;           /* sequences per step (8) */
    int64_t steps;       /* total steps of the schedule (1000) */
    double lr;           /* peak learning rate (1e-3) */
    double lr_min;       /* learning rate at the end of the cosine (1e-4) */
    int64_t warmup;      /* linear warm-up steps (100) */
    double weight_decay; /* AdamW decoupled decay of the matrices (0.1; not the norms) */
    double beta1, beta2, adam_eps; /* 0.9, 0.95, 1e-8 */
    double clip;         /* clip the global gradient norm to this; 0: no clipping (1.0) */
    int bf16;            /* 1: mixed precision: the matrix products (linear maps and
                            attention, forward and backward) on operands rounded to BF16,
                            summed in F32 (AVX512-BF16's VDPBF16PS where the CPU has it, a
                            scalar twin with the same bits elsewhere); weights, gradients
                            and AdamW state stay F32. 0: F32 throughout (default) */
    uint64_t seed;       /* weights and sample draws (1) */
} sk_train_params;

/* Ranges checked by sk_train_params_validate. */
#define SK_TRAIN_MAX_LAYERS 256
#define SK_TRAIN_MAX_EMBD 8192
#define SK_TRAIN_MAX_CTX 8192
#define SK_TRAIN_MAX_BATCH 4096

/* Fill p with the defaults above (n_vocab 0: set it from the tokenizer). */
void sk_train_params_default(sk_train_params *p);

/* Check every field: sizes in range, n_embd divisible by n_head with an
 * even head dimension, n_head divisible by n_head_kv, n_vocab 2..2^24,
 * finite rates with 0 <= lr_min <= lr, 0 <= warmup <= steps, betas in
 * [0, 1), clip >= 0, -1 <= sink_token < n_vocab, softmax1 and sink_logit 0 or
 * 1 and not both, and activations that fit in memory's address range.
 * SK_ERR_INVALID with a message naming the field. */
sk_status sk_train_params_validate(const sk_train_params *p, sk_error *err);

/* Learning rate of step (0-based): linear warm-up to lr over warmup steps
 * (lr * (step + 1) / warmup), then a cosine from lr to lr_min at step
 * `steps`; lr_min after. */
double sk_train_lr(const sk_train_params *p, int64_t step);

/* ---- trainer ------------------------------------------------------------- */

typedef struct sk_trainer sk_trainer;

/* A trainer with freshly initialized weights: matrices N(0, 0.02) (the
 * residual projections attn_output and ffn_down divided by sqrt(2 n_layer)),
 * norms 1, drawn from p->seed. n_threads >= 1. Allocates everything a step
 * needs. SK_ERR_INVALID (params), SK_ERR_NOMEM. */
sk_status sk_trainer_new(const sk_train_params *p, int n_threads, sk_trainer **out, sk_error *err);
void sk_trainer_free(sk_trainer *t);

const sk_train_params *sk_trainer_params(const sk_trainer *t);
/* The matrix-product kernels a step runs (static): "avx2" or "scalar" in
 * F32, "bf16-avx512" or "bf16-scalar" (the slow twin) with bf16. */
const char *sk_trainer_kernels(const sk_trainer *t);
/* Number of weights (the token embedding counted once when tied). */
uint64_t sk_trainer_n_params(const sk_trainer *t);
/* Steps done so far (0 for a new trainer; restored by sk_trainer_load). */
int64_t sk_trainer_steps_done(const sk_trainer *t);

typedef struct sk_train_stats {
    double loss;      /* mean cross-entropy of the batch (nats per token), before the update */
    double lr;        /* learning rate applied */
    double grad_norm; /* global gradient norm before clipping */
} sk_train_stats;

/* One AdamW step on tokens (batch, n_ctx + 1): sequence b reads
 * tokens[b * (n_ctx + 1) + t] and predicts token t + 1. Every id must be in
 * [0, n_vocab) (else SK_ERR_INVALID, nothing changed). A non-finite loss or
 * gradient norm is SK_ERR_INVALID ("diverged") and leaves the weights as
 * they were. st may be NULL. */
sk_status sk_trainer_step(sk_trainer *t, const int32_t *tokens, sk_train_stats *st, sk_error *err);

/* Mean cross-entropy of n_seq <= batch sequences of n_tok + 1 tokens
 * (1 <= n_tok <= n_ctx), laid out (n_seq, n_tok + 1); no update. */
sk_status sk_trainer_loss(sk_trainer *t, const int32_t *tokens, int n_seq, int n_tok, double *loss,
                          sk_error *err);

/* Logits (n, n_vocab) of the sequence tokens[0..n), 1 <= n <= n_ctx, into
 * out: row i predicts the token after tokens[i]. */
sk_status sk_trainer_logits(sk_trainer *t, const int32_t *tokens, int n, float *out, sk_error *err);

/* The weights, as a flat vector (sk_trainer_n_params floats), read-only:
 * for comparing two trainers. */
const float *sk_trainer_weights(const sk_trainer *t);

/* ---- corpus -------------------------------------------------------------- */

typedef struct sk_train_data sk_train_data;

/* Tokenize text[0..len) with tok (no BOS or EOS added; special-token texts
 * are plain text) and split it: the last val_frac (0 <= val_frac < 1) of
 * the tokens are held out. SK_ERR_INVALID: empty text, text that is not
 * valid UTF-8 (the message gives the byte offset), a NUL byte, fewer than
 * 2 tokens in the training part. */
sk_status sk_train_data_new(const sk_tokenizer *tok, const char *text, size_t len, double val_frac,
                            sk_train_data **out, sk_error *err);
/* The same from token ids (copied); ids must be >= 0. For tests and for
 * corpora tokenized elsewhere. */
sk_status sk_train_data_from_ids(const int32_t *ids, int64_t n, double val_frac,
                                 sk_train_data **out, sk_error *err);
void sk_train_data_free(sk_train_data *d);
/* Tokens of the training part (held_out 0) or the held-out part (1). */
int64_t sk_train_data_n_tokens(const sk_train_data *d, int held_out);
/* FNV-1a of the ids and the split: a checkpoint records it, so that a
 * resumed run can tell that its corpus changed. */
uint64_t sk_train_data_hash(const sk_train_data *d);

/* Fill tokens (batch, n_ctx + 1) with windows of the training part at
 * offsets drawn from the trainer's generator (saved in checkpoints): n_ctx
 * + 1 text tokens, or with a sink token, the sink then n_ctx text tokens.
 * SK_ERR_INVALID when the training part has fewer than n_ctx + 1 tokens or
 * an id >= n_vocab. */
sk_status sk_trainer_sample(sk_trainer *t, const sk_train_data *d, int32_t *tokens, sk_error *err);

/* Mean cross-entropy over the held-out part: consecutive windows of n_ctx
 * tokens (the first max_windows of them; max_windows <= 0: all), or one
 * shorter window when the part is shorter; with a sink token, each window
 * is scored after the sink, as it was trained. SK_ERR_INVALID when it has
 * fewer than 2 tokens. Uses the trainer's buffers; no update. */
sk_status sk_trainer_eval(sk_trainer *t, const sk_train_data *d, int max_windows, double *loss,
                          sk_error *err);

/* ---- checkpoints --------------------------------------------------------- */

/* Write everything a run needs to continue exactly (parameters, steps
 * done, the sample generator, weights, AdamW moments) and data_hash, with
 * a checksum, crash-safely: written to path.tmp, fsynced, renamed. A run
 * resumed from it gives the bits the uninterrupted run gives. */
sk_status sk_trainer_save(const sk_trainer *t, const char *path, uint64_t data_hash, sk_error *err);

/* A trainer restored from a checkpoint, on n_threads threads. *data_hash
 * (may be NULL) receives the corpus hash saved with it. SK_ERR_IO (cannot
 * read), SK_ERR_FORMAT (not a checkpoint, another version, truncated,
 * checksum mismatch, parameters out of range: the message says which). */
sk_status sk_trainer_load(const char *path, int n_threads, sk_trainer **out, uint64_t *data_hash,
                          sk_error *err);

/* ---- export -------------------------------------------------------------- */

/* Write the model as a GGUF file of architecture llama: matrices in F32
 * (f16 = 0) or F16 (f16 = 1), norms in F32, hyper-parameters as llama.*
 * keys (with a sink token: llama.sink_token_id, which sk_model_load reads
 * and sk_model_sink_token reports), and every tokenizer.* key of vocab's
 * file copied as is (vocab must
 * be the model whose tokenizer made the corpus: its vocabulary size must
 * equal n_vocab). Written to path.tmp and renamed. SK_ERR_INVALID (vocab
 * size mismatch), SK_ERR_IO. A softmax1 model carries a sink logit of 0
 * per head and layer (blk.N.attn_sinks.weight), which the engine adds to
 * every attention denominator. */
sk_status sk_trainer_export(const sk_trainer *t, const sk_model *vocab, const char *path, int f16,
                            sk_error *err);

#ifdef __cplusplus
}
#endif

#endif
