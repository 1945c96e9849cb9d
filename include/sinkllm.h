/* sinkllm.h - the public C API of sinkllm.
 *
 * A model (sk_model) is immutable after loading: weights are views into one
 * read-only mmap of the GGUF file, and any number of contexts may share it.
 * A context (sk_context) owns a KV cache, scratch buffers and a thread pool;
 * it is used by one thread at a time. Nothing allocates in the token loop.
 *
 * Every call that can fail returns sk_status (0 = SK_OK) and, given an
 * sk_error, a one-line message. The library never prints and never exits. */
#ifndef SINKLLM_H
#define SINKLLM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SINKLLM_VERSION "0.1.0"

typedef struct sk_model sk_model;
typedef struct sk_context sk_context;
typedef struct sk_tokenizer sk_tokenizer;

/* ---- model ------------------------------------------------------------- */

typedef struct sk_hparams {
    char arch[32];          /* "llama" */
    char name[128];         /* general.name, may be empty */
    int64_t n_vocab;
    int64_t n_ctx_train;    /* llama.context_length */
    int n_embd;             /* model width */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;           /* n_embd / n_head */
    int n_ff;
    int n_rot;              /* rope dimension count (<= head_dim) */
    int rope_neox;          /* 1: rotate (i, i + n_rot/2); 0: rotate (2i, 2i+1) */
    double rope_base;       /* rope.freq_base */
    double rope_scale;      /* linear scaling factor: positions are divided by it */
    float norm_eps;
    int tied_output;        /* output matrix is token_embd */
    int file_type;          /* general.file_type, -1 if absent */
} sk_hparams;

/* Load a GGUF file (read-only mmap). Validates the file, the hyper-parameters
 * against the tensor shapes, and the vocabulary. */
sk_status sk_model_load(const char *path, sk_model **out, sk_error *err);
void sk_model_free(sk_model *m);
const sk_hparams *sk_model_hparams(const sk_model *m);
const sk_tokenizer *sk_model_tokenizer(const sk_model *m);
/* Bytes of weights mapped; a short description ("llama 135M Q4_1"). */
uint64_t sk_model_size(const sk_model *m);
uint64_t sk_model_n_params(const sk_model *m);
const char *sk_model_desc(const sk_model *m);
/* Chat template text (tokenizer.chat_template) or NULL. */
const char *sk_model_chat_template(const sk_model *m);

/* ---- KV cache configuration -------------------------------------------- */

typedef enum sk_cache_policy {
    SK_CACHE_SINK = 0,   /* StreamingLLM: n_sinks first tokens + rolling window */
    SK_CACHE_WINDOW,     /* rolling window only (sink with n_sinks = 0) */
    SK_CACHE_DENSE,      /* keep everything up to n_ctx, then fail */
    SK_CACHE_RECOMPUTE,  /* re-encode the last n_window tokens for every token */
    SK_CACHE_SHIFT,      /* llama.cpp: keep n_keep, drop half the rest when full */
} sk_cache_policy;

typedef enum sk_kv_type { SK_KV_F16 = 0, SK_KV_F32, SK_KV_Q8_0 } sk_kv_type;

/* Ranges of the cache and context parameters: the one place they are
 * defined (the library checks them, the tools parse flags against them). */
#define SK_MAX_SINKS 65536            /* n_sinks (SINK), n_keep (SHIFT): 0 .. */
#define SK_MAX_CACHE_TOKENS (1 << 26) /* n_window, n_ctx: 1 .. */
#define SK_MAX_ROLLBACK 65536         /* n_rollback: 0 .. */
#define SK_MAX_BATCH 8192             /* n_batch: 1 .. */
#define SK_MAX_THREADS 1024           /* n_threads: 0 (all cores) .. */

typedef struct sk_cache_params {
    sk_cache_policy policy;
    int n_sinks;        /* SINK: attention sinks kept forever (default 4) */
    int n_window;       /* SINK/WINDOW/RECOMPUTE/SHIFT: window slots, current token included */
    int n_ctx;          /* DENSE: capacity in tokens */
    sk_kv_type kv_type; /* storage of K and V (sinks are never below F16) */
    int n_rollback;     /* SINK/WINDOW/DENSE: extra ring slots so that the last tokens fed
                           can be taken back (sk_context_rollback); 0 (default) .. 65536 */
} sk_cache_params;

/* ---- context ------------------------------------------------------------ */

typedef struct sk_context_params {
    int n_threads;      /* 0: all online cores */
    int n_batch;        /* largest pre-fill chunk (default 256) */
    int logits_all;     /* keep the logits of every token of the last chunk (sk_logits_ith) */
    int precise;        /* reference arithmetic: weights dequantized to F32, activations
                           not quantized (slow; for tests against an f64 forward pass) */
    sk_cache_params cache;
} sk_context_params;

void sk_context_params_default(sk_context_params *p);

/* Validate the context fields (threads, batch, and that logits_all is not
 * combined with recompute); err names the field. The cache parameters are
 * validated when the cache is created (sk_context_new). */
sk_status sk_context_params_validate(const sk_context_params *p, const sk_hparams *hp,
                                     sk_error *err);

sk_status sk_context_new(const sk_model *m, const sk_context_params *p, sk_context **out,
                         sk_error *err);
void sk_context_free(sk_context *c);

/* Feed n tokens (a prompt chunk or one generated token). Pre-fills in chunks
 * of n_batch with eviction between chunks, so any length works with the
 * evicting policies. Afterwards sk_logits() holds the logits after the last
 * token. Ids are validated. */
sk_status sk_decode(sk_context *c, const int32_t *tokens, int64_t n, sk_error *err);

/* Logits (n_vocab floats) after the last token fed; NULL before any. */
const float *sk_logits(const sk_context *c);

/* With logits_all: logits after token i of the last sk_decode call, which
 * must have fed at most n_batch tokens; NULL when i is out of range. */
const float *sk_logits_ith(const sk_context *c, int i);

/* With logits_all: nll[i] = -log softmax(logits of token i of the last
 * sk_decode call)[targets[i]] for i < n, computed on the context's threads
 * (perplexity). A target < 0 or >= n_vocab gives NaN. n must not exceed the
 * rows of the last call. */
sk_status sk_context_nll(sk_context *c, const int32_t *targets, int n, double *nll, sk_error *err);

/* Diagnostics (sinkllm attn): record attention probabilities averaged over
 * heads. buf holds (n_layers, n_tok, n_tok) floats, zeroed by the caller:
 * buf[(k * n_tok + u) * n_tok + p] += the mean over heads of the attention
 * that the query at stream position u pays to the key at stream position p,
 * in layer layers[k], for u, p < n_tok. Slower (attention runs on one
 * thread while recording). buf = NULL stops recording. The buffer and the
 * layer list must outlive the recording. */
sk_status sk_context_capture_attention(sk_context *c, const int *layers, int n_layers, int n_tok,
                                       float *buf, sk_error *err);

/* ---- sessions: save and restore a context ----------------------------- */

/* Write the context's whole state (KV cache, positions, last logits) and an
 * optional caller blob (e.g. the transcript) to path, crash-safely: the file
 * is written to path.tmp.<pid>, fsynced, renamed over path, and the
 * directory fsynced, so path always holds the old or the new version. The
 * file carries a magic, a version, the model's fingerprint, the cache
 * configuration and a checksum. Symlinks at path are replaced, not
 * followed. */
sk_status sk_context_save(const sk_context *c, const char *path, const void *blob,
                          size_t blob_len, sk_error *err);

/* Restore a state written by sk_context_save into a context of the same
 * model and cache configuration. A truncated or corrupt file (checksum), a
 * foreign model, another configuration or version gives a clear error and
 * leaves the context reset. *blob (malloc'ed, caller frees; NULL when empty)
 * and *blob_len receive the caller blob; pass blob NULL to ignore it. */
sk_status sk_context_load(sk_context *c, const char *path, void **blob, size_t *blob_len,
                          sk_error *err);

/* Read only the cache configuration, batch size and caller blob of a
 * session file (to create a matching context before sk_context_load). The
 * blob is checked by the full load, not here. */
sk_status sk_session_peek(const char *path, sk_cache_params *cache, int *n_batch, void **blob,
                          size_t *blob_len, sk_error *err);

/* Forget everything: empty cache, position 0. */
void sk_context_reset(sk_context *c);

/* Take back the last n tokens fed (n_past -= n), as if they had never been
 * fed, so that a conversation whose last turn is re-tokenized differently
 * continues from the point where the tokens diverge instead of being
 * rebuilt. Possible while the window of the new last position is still
 * intact in the ring: always for DENSE; for SINK/WINDOW while n plus the
 * tokens taken back since the high-water mark stays within
 * n_batch - 1 + cache.n_rollback; never for SHIFT and RECOMPUTE, nor right
 * after sk_context_load. Otherwise SK_ERR_INVALID and nothing changes (the
 * caller rebuilds). Logits are gone until the next sk_decode. */
sk_status sk_context_rollback(sk_context *c, int64_t n, sk_error *err);

typedef struct sk_context_stats {
    int64_t n_past;       /* tokens fed since the last reset (stream position) */
    int64_t n_cached;     /* tokens now in the KV cache */
    int64_t n_evicted;    /* tokens evicted so far */
    int64_t cache_capacity;
    uint64_t kv_bytes;    /* bytes of K/V storage */
    uint64_t scratch_bytes; /* activations, scores, logits: every other buffer of the context */
} sk_context_stats;

void sk_context_get_stats(const sk_context *c, sk_context_stats *s);

/* Check every cache parameter against its range (SK_MAX_*) and the
 * policy's needs; err names the field. sk_context_new calls it. */
sk_status sk_cache_params_validate(const sk_cache_params *p, sk_error *err);

/* Parse "sink" / "window" / "dense" / "recompute" / "shift". */
sk_status sk_cache_policy_parse(const char *s, sk_cache_policy *out, sk_error *err);
const char *sk_cache_policy_name(sk_cache_policy p);

#ifdef __cplusplus
}
#endif
#endif
