/* model.c - load a GGUF of one of the families of arch.h into an immutable
 * sk_model.
 *
 * The file is mapped read-only once; every weight is a view into the map.
 * Everything read from the file is validated here: hyper-parameters against
 * each other and against tensor shapes, tensor types against what we can
 * compute with, vocabulary sizes against the embedding. */
#include "model.h"

#include "kernels/hash.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

#include "kernels/cpu.h"
#include "kernels/pack.h"
#include "vocab.h"

#define SK_MAX_LAYERS 4096
#define SK_MAX_DIM (1 << 20)

sk_status sk_hparams_validate(const sk_hparams *hp, sk_error *err) {
    if (hp->n_layer < 1 || hp->n_layer > SK_MAX_LAYERS)
        return sk_error_set(err, SK_ERR_FORMAT, "block_count %d out of range 1..%d", hp->n_layer,
                            SK_MAX_LAYERS);
    if (hp->n_embd < 1 || hp->n_embd > SK_MAX_DIM)
        return sk_error_set(err, SK_ERR_FORMAT, "embedding_length %d out of range", hp->n_embd);
    if (hp->n_ff < 1 || hp->n_ff > 4 * SK_MAX_DIM)
        return sk_error_set(err, SK_ERR_FORMAT, "feed_forward_length %d out of range", hp->n_ff);
    if (hp->n_head < 1 || hp->n_head > hp->n_embd)
        return sk_error_set(err, SK_ERR_FORMAT, "attention.head_count %d out of range 1..%d",
                            hp->n_head, hp->n_embd);
    if (hp->n_head_kv < 1 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "attention.head_count %d is not divisible by head_count_kv %d",
                            hp->n_head, hp->n_head_kv);
    if (hp->head_dim > 1024)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "head dimension %d is above 1024",
                            hp->head_dim);
    if (hp->n_head / hp->n_head_kv > 256)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "%d query heads per KV head (at most 256)",
                            hp->n_head / hp->n_head_kv);
    if (hp->head_dim < 2 || hp->head_dim % 2 != 0)
        return sk_error_set(err, SK_ERR_FORMAT, "head dimension %d is odd or below 2", hp->head_dim);
    if (hp->n_rot < 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "rope.dimension_count %d must be even and <= head dimension %d",
                            hp->n_rot, hp->head_dim);
    if (!(hp->rope_base > 1.0) || hp->rope_base > 1e12)
        return sk_error_set(err, SK_ERR_FORMAT, "rope.freq_base %g out of range", hp->rope_base);
    if (!(hp->rope_scale > 0.0) || hp->rope_scale > 1e6)
        return sk_error_set(err, SK_ERR_FORMAT, "rope scaling factor %g out of range",
                            hp->rope_scale);
    if (!(hp->norm_eps > 0.0f) || hp->norm_eps > 1.0f)
        return sk_error_set(err, SK_ERR_FORMAT, "layer_norm_rms_epsilon %g out of range",
                            (double)hp->norm_eps);
    if (hp->n_vocab < 1 || hp->n_vocab > (1 << 24))
        return sk_error_set(err, SK_ERR_FORMAT, "vocabulary size %lld out of range",
                            (long long)hp->n_vocab);
    return SK_OK;
}

/* The loader's bookkeeping: which metadata keys and tensors the load has
 * consumed. Whatever it has not consumed at the end is refused (the file
 * asks for arithmetic we do not implement), never ignored. */
typedef struct loader {
    const gguf_ctx *g;
    const char *arch;
    uint8_t *kv_used;  /* n_kv */
    uint8_t *t_used;   /* n_tensors */
} loader;

static const gguf_kv *ld_kv(loader *ld, const char *suffix, char *key, size_t cap) {
    snprintf(key, cap, "%s.%s", ld->arch, suffix);
    const gguf_kv *kv = gguf_find_kv(ld->g, key);
    if (kv) ld->kv_used[kv - ld->g->kv] = 1;
    return kv;
}

/* Read an integer key "<arch>.<suffix>" into *out; absent keys keep *out
 * unless required. Values above INT32_MAX are rejected. */
static sk_status arch_int(loader *ld, const char *suffix, int required, int *out, sk_error *err) {
    char key[128];
    if (!ld_kv(ld, suffix, key, sizeof key)) {
        if (required) return sk_error_set(err, SK_ERR_FORMAT, "missing metadata key %s", key);
        return SK_OK;
    }
    uint64_t v;
    sk_status st = gguf_get_u64(ld->g, key, &v, err);
    if (st) return st;
    if (v > INT32_MAX) return sk_error_set(err, SK_ERR_FORMAT, "%s = %llu is too large", key,
                                           (unsigned long long)v);
    *out = (int)v;
    return SK_OK;
}

static sk_status arch_f64(loader *ld, const char *suffix, double *out, sk_error *err) {
    char key[128];
    if (!ld_kv(ld, suffix, key, sizeof key)) return SK_OK;
    return gguf_get_f64(ld->g, key, out, err);
}

/* Look up a tensor, mark it used and check its type and shape: ne0 x ne1
 * (ne1 = 1 for a vector). Vectors (norms, biases, factors) must be F32.
 * Absent: SK_ERR_FORMAT when required, else t->data stays NULL. */
static sk_status bind(loader *ld, const char *name, int64_t ne0, int64_t ne1, int is_vec,
                      int required, sk_tensor *t, sk_error *err) {
    const gguf_tensor *gt = gguf_find_tensor(ld->g, name);
    if (!gt) {
        if (!required) return SK_OK;
        return sk_error_set(err, SK_ERR_FORMAT, "missing tensor %s", name);
    }
    ld->t_used[gt - ld->g->tensors] = 1;
    if (gt->ne[0] != ne0 || gt->ne[1] != ne1 || gt->ne[2] != 1 || gt->ne[3] != 1)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                            name, (long long)gt->ne[0], (long long)gt->ne[1],
                            (long long)gt->ne[2], (long long)gt->ne[3], (long long)ne0,
                            (long long)ne1);
    const sk_type_traits *tt = sk_type_get((int)gt->type);
    if (is_vec) {
        if (gt->type != SK_TYPE_F32)
            return sk_error_set(err, SK_ERR_UNSUPPORTED, "tensor %s: type %s, expected F32", name,
                                tt ? tt->name : "unknown");
    } else if (!tt || !tt->vec_dot || !tt->to_float) {
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "tensor %s: type %u cannot be a weight",
                            name, gt->type);
    }
    t->data = gt->data;
    t->type = (int)gt->type;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->row_size = sk_row_size(t->type, ne0);
    t->tt = tt;
    return SK_OK;
}

/* Rows [r0, r0 + n) of a bound matrix, as a matrix of its own. */
static sk_tensor rows_view(const sk_tensor *w, int64_t r0, int64_t n) {
    sk_tensor v = *w;
    v.data = (const char *)w->data + (size_t)r0 * w->row_size;
    v.ne[1] = n;
    return v;
}

static int clip_len(gguf_str s) { return (int)(s.len > 48 ? 48 : s.len); }

/* Which layers are local (sliding-window) ones: sliding_window_pattern is
 * a period n (every n-th layer global, as llama.cpp's set_swa_pattern) or
 * an array of booleans (true: local). */
static sk_status load_swa(loader *ld, sk_model *m, sk_error *err) {
    sk_hparams *hp = &m->hp;
    const sk_arch *A = m->arch;
    char key[128];
    int n_swa = 0;
    sk_status st = arch_int(ld, "attention.sliding_window", 0, &n_swa, err);
    if (st) return st;
    double base_swa = 10000.0;
    if ((st = arch_f64(ld, "rope.freq_base_swa", &base_swa, err))) return st;
    const gguf_kv *pk = ld_kv(ld, "attention.sliding_window_pattern", key, sizeof key);
    if (n_swa <= 0 || A->swa_ignored) {
        if (pk) return sk_error_set(err, SK_ERR_UNSUPPORTED, "%s is set but %s has no sliding-window layers",
                                    key, hp->arch);
        return SK_OK; /* phi3: the key is read and not applied, as llama.cpp does */
    }
    if (!A->swa_pattern)
        return sk_error_set(err, SK_ERR_UNSUPPORTED,
                            "%s.attention.sliding_window = %d: sliding-window attention is not "
                            "implemented for %s", hp->arch, n_swa, hp->arch);
    if (!(base_swa > 1.0) || base_swa > 1e12)
        return sk_error_set(err, SK_ERR_FORMAT, "rope.freq_base_swa %g out of range", base_swa);
    hp->n_swa = n_swa;
    hp->rope_base_swa = base_swa;
    int period = A->swa_pattern;
    if (pk && pk->type == GGUF_TYPE_ARRAY) {
        const gguf_arr *a = &pk->v.a;
        if (a->type != GGUF_TYPE_BOOL || a->n != (uint64_t)hp->n_layer)
            return sk_error_set(err, SK_ERR_FORMAT, "%s: expected %d booleans", key, hp->n_layer);
        for (int l = 0; l < hp->n_layer; l++) m->layers[l].swa = gguf_arr_i64(a, (uint64_t)l) != 0;
    } else {
        if (pk && (st = arch_int(ld, "attention.sliding_window_pattern", 0, &period, err))) return st;
        for (int l = 0; l < hp->n_layer; l++)
            m->layers[l].swa = period == 0 || l % period < period - 1;
    }
    int n_local = 0, n_global = 0;
    for (int l = 0; l < hp->n_layer; l++)
        m->layers[l].kv_layer = m->layers[l].swa ? n_local++ : n_global++;
    if (n_global == 0)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "every layer is a sliding-window layer");
    hp->n_layer_swa = n_local;
    return SK_OK;
}

static sk_status load_hparams(loader *ld, sk_model *m, sk_error *err) {
    const gguf_ctx *g = ld->g;
    sk_hparams *hp = &m->hp;
    gguf_str arch;
    sk_status st = gguf_get_str(g, "general.architecture", &arch, err);
    if (st) return st;
    m->arch = sk_arch_find(arch);
    if (!m->arch)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (%s)",
                            clip_len(arch), arch.ptr, sk_arch_names());
    snprintf(hp->arch, sizeof hp->arch, "%s", m->arch->name);
    ld->arch = hp->arch;
    gguf_str name;
    if (gguf_find_kv(g, "general.name") && gguf_get_str(g, "general.name", &name, NULL) == SK_OK)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(name.len > 127 ? 127 : name.len),
                 name.ptr);
    int ctx = 0;
    if ((st = arch_int(ld, "block_count", 1, &hp->n_layer, err))) return st;
    if ((st = arch_int(ld, "embedding_length", 1, &hp->n_embd, err))) return st;
    if ((st = arch_int(ld, "feed_forward_length", 1, &hp->n_ff, err))) return st;
    if ((st = arch_int(ld, "attention.head_count", 1, &hp->n_head, err))) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = arch_int(ld, "attention.head_count_kv", 0, &hp->n_head_kv, err))) return st;
    if ((st = arch_int(ld, "context_length", 0, &ctx, err))) return st;
    hp->n_ctx_train = ctx;
    if (hp->n_head < 1)
        return sk_error_set(err, SK_ERR_FORMAT, "attention.head_count %d out of range",
                            hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    char key[128];
    int has_kl = ld_kv(ld, "attention.key_length", key, sizeof key) != NULL;
    if ((st = arch_int(ld, "attention.key_length", 0, &hp->head_dim, err))) return st;
    int vl = hp->head_dim;
    if ((st = arch_int(ld, "attention.value_length", 0, &vl, err))) return st;
    if (vl != hp->head_dim)
        return sk_error_set(err, SK_ERR_UNSUPPORTED,
                            "%s.attention.value_length %d differs from key_length %d (not implemented)",
                            hp->arch, vl, hp->head_dim);
    if (!has_kl && hp->n_embd % hp->n_head != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "embedding_length %d is not divisible by head_count %d", hp->n_embd,
                            hp->n_head);
    hp->n_rot = hp->head_dim;
    if ((st = arch_int(ld, "rope.dimension_count", 0, &hp->n_rot, err))) return st;
    hp->rope_base = 10000.0;
    if ((st = arch_f64(ld, "rope.freq_base", &hp->rope_base, err))) return st;
    hp->rope_scale = 1.0;
    gguf_str stype = {0};
    if (ld_kv(ld, "rope.scaling.type", key, sizeof key) && (st = gguf_get_str(g, key, &stype, err)))
        return st;
    double factor = 1.0;
    if ((st = arch_f64(ld, "rope.scaling.factor", &factor, err))) return st;
    if (stype.len && !gguf_str_eq(stype, "none") && !gguf_str_eq(stype, "linear"))
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "%s.rope.scaling.type '%.*s' is not implemented "
                            "(none, linear)", hp->arch, clip_len(stype), stype.ptr);
    if (gguf_str_eq(stype, "linear") || (!stype.len && factor != 1.0 && factor > 0))
        hp->rope_scale = factor;
    m->rope_mscale = 1.0;
    if ((st = arch_f64(ld, "rope.scaling.attn_factor", &m->rope_mscale, err))) return st;
    if (!(m->rope_mscale > 0.0) || m->rope_mscale > 100.0)
        return sk_error_set(err, SK_ERR_FORMAT, "rope.scaling.attn_factor %g out of range",
                            m->rope_mscale);
    double eps = 1e-5;
    if ((st = arch_f64(ld, "attention.layer_norm_rms_epsilon", &eps, err))) return st;
    hp->norm_eps = (float)eps;
    double cap = 0.0;
    if ((st = arch_f64(ld, "final_logit_softcapping", &cap, err))) return st;
    if (cap < 0.0 || cap > 1e6)
        return sk_error_set(err, SK_ERR_FORMAT, "final_logit_softcapping %g out of range", cap);
    m->logit_softcap = (float)cap;
    /* mixture-of-experts keys of a dense model (count 0) change nothing */
    int n_expert = 0, n_expert_used = 0;
    if ((st = arch_int(ld, "expert_count", 0, &n_expert, err))) return st;
    if ((st = arch_int(ld, "expert_used_count", 0, &n_expert_used, err))) return st;
    if (n_expert > 0 || n_expert_used > 0)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "%s.expert_count %d: mixture-of-experts "
                            "layers are not implemented", hp->arch, n_expert);
    /* causal attention is all we compute */
    const gguf_kv *ck = ld_kv(ld, "attention.causal", key, sizeof key);
    if (ck && !(ck->type == GGUF_TYPE_BOOL && ck->v.u == 1))
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "%s: only causal attention is implemented", key);
    /* informational keys: they do not change the arithmetic */
    int n_orig = ctx;
    if ((st = arch_int(ld, "rope.scaling.original_context_length", 0, &n_orig, err))) return st;
    m->n_ctx_orig = n_orig;
    /* the token a model was pre-trained with at the start of every sample
     * (sinkllm train --sink-token): checked against the vocabulary below */
    m->sink_token = -1;
    int sink = -1;
    if ((st = arch_int(ld, "sink_token_id", 0, &sink, err))) return st;
    m->sink_token = sink;
    static const char *const info[] = {"vocab_size", "rope.scaling.finetuned"};
    for (size_t i = 0; i < sizeof info / sizeof *info; i++) ld_kv(ld, info[i], key, sizeof key);
    hp->rope_neox = m->arch->rope_neox;
    hp->file_type = -1;
    uint64_t ft;
    if (gguf_find_kv(g, "general.file_type") && gguf_get_u64(g, "general.file_type", &ft, NULL) == SK_OK)
        hp->file_type = (int)(ft & 0xffff);
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return sk_error_set(err, SK_ERR_FORMAT, "missing tensor token_embd.weight");
    hp->n_vocab = emb->ne[1];
    const gguf_kv *vs = ld_kv(ld, "vocab_size", key, sizeof key);
    uint64_t nv;
    if (vs && gguf_get_u64(g, key, &nv, NULL) == SK_OK && nv != (uint64_t)hp->n_vocab)
        return sk_error_set(err, SK_ERR_FORMAT, "%s = %llu but token_embd.weight has %lld rows",
                            key, (unsigned long long)nv, (long long)hp->n_vocab);
    return sk_hparams_validate(hp, err);
}

static sk_status load_weights(loader *ld, sk_model *m, sk_error *err) {
    const gguf_ctx *g = ld->g;
    sk_hparams *hp = &m->hp;
    const sk_arch *A = m->arch;
    sk_status st;
    int64_t d = hp->n_embd, hd = hp->head_dim, nq = (int64_t)hp->n_head * hd,
            nkv = (int64_t)hp->n_head_kv * hd, ff = hp->n_ff, nv = hp->n_vocab;
    if ((st = bind(ld, "token_embd.weight", d, nv, 0, 1, &m->tok_embd, err))) return st;
    if ((st = bind(ld, "output_norm.weight", d, 1, 1, 1, &m->output_norm, err))) return st;
    if ((st = bind(ld, "output.weight", d, nv, 0, 0, &m->output, err))) return st;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (layers)");
    for (int l = 0; l < hp->n_layer; l++) m->layers[l].kv_layer = l;
    if ((st = load_swa(ld, m, err))) return st;
    /* RoPE frequency factors: one vector for the model (llama.cpp also
     * accepts per-layer copies, which converters do not write) */
    m->rope_factors = NULL;
    if (A->rope_factors) {
        sk_tensor rf = {0};
        const char *rname = A->rope_factors == SK_ROPE_FACTORS_FREQS ? "rope_freqs.weight"
                                                                      : "rope_factors_short.weight";
        if ((st = bind(ld, rname, hp->n_rot / 2, 1, 1, 0, &rf, err))) return st;
        if (A->rope_factors == SK_ROPE_FACTORS_PHI3) {
            /* which of the two applies depends on the context (context.c) */
            sk_tensor rl = {0};
            if ((st = bind(ld, "rope_factors_long.weight", hp->n_rot / 2, 1, 1, 0, &rl, err))) return st;
            m->rope_factors_long = rl.data;
        }
        m->rope_factors = rf.data;
        const float *fs[2] = {m->rope_factors, m->rope_factors_long};
        for (int k = 0; k < 2; k++)
            for (int i = 0; fs[k] && i < hp->n_rot / 2; i++)
                if (!(fs[k][i] > 0.0f) || fs[k][i] > 1e6f)
                    return sk_error_set(err, SK_ERR_FORMAT, "RoPE factor [%d] = %g out of range", i,
                                        (double)fs[k][i]);
    }
    for (int l = 0; l < hp->n_layer; l++) {
        sk_layer *L = &m->layers[l];
        char name[96];
#define T(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        sk_tensor qkv = {0};
        if ((st = bind(ld, T("attn_qkv.weight"), d, nq + 2 * nkv, 0, 0, &qkv, err))) return st;
        if (qkv.data) {
            L->wq = rows_view(&qkv, 0, nq);
            L->wk = rows_view(&qkv, nq, nkv);
            L->wv = rows_view(&qkv, nq + nkv, nkv);
            sk_tensor b = {0};
            if ((st = bind(ld, T("attn_qkv.bias"), nq + 2 * nkv, 1, 1, 0, &b, err))) return st;
            if (b.data) {
                L->bq = b, L->bk = b, L->bv = b;
                L->bk.data = (const float *)b.data + nq;
                L->bv.data = (const float *)b.data + nq + nkv;
            }
        } else {
            if ((st = bind(ld, T("attn_q.weight"), d, nq, 0, 1, &L->wq, err))) return st;
            if ((st = bind(ld, T("attn_k.weight"), d, nkv, 0, 1, &L->wk, err))) return st;
            if ((st = bind(ld, T("attn_v.weight"), d, nkv, 0, 1, &L->wv, err))) return st;
        }
        if (!L->bq.data) {
            if ((st = bind(ld, T("attn_q.bias"), nq, 1, 1, 0, &L->bq, err))) return st;
            if ((st = bind(ld, T("attn_k.bias"), nkv, 1, 1, 0, &L->bk, err))) return st;
            if ((st = bind(ld, T("attn_v.bias"), nkv, 1, 1, 0, &L->bv, err))) return st;
        }
        struct { const char *suffix; int64_t ne0, ne1; int vec, req; sk_tensor *t; } w[] = {
            {"attn_norm.weight", d, 1, 1, 1, &L->attn_norm},
            {"attn_output.weight", nq, d, 0, 1, &L->wo},
            {"attn_output.bias", d, 1, 1, 0, &L->bo},
            {"attn_q_norm.weight", hd, 1, 1, A->qk_norm, &L->q_norm},
            {"attn_k_norm.weight", hd, 1, 1, A->qk_norm, &L->k_norm},
            {"post_attention_norm.weight", d, 1, 1, A->post_norms, &L->post_attn_norm},
            {"ffn_norm.weight", d, 1, 1, 1, &L->ffn_norm},
            {"ffn_down.weight", ff, d, 0, 1, &L->w_down},
            {"ffn_down.bias", d, 1, 1, 0, &L->b_down},
            {"post_ffw_norm.weight", d, 1, 1, A->post_norms, &L->post_ffn_norm},
            {"attn_sinks.weight", hp->n_head, 1, 1, 0, &L->sinks},
        };
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if ((st = bind(ld, T(w[i].suffix), w[i].ne0, w[i].ne1, w[i].vec, w[i].req, w[i].t, err)))
                return st;
        for (int h = 0; L->sinks.data && h < hp->n_head; h++) { /* -inf: no sink */
            float s = ((const float *)L->sinks.data)[h];
            if (isnan(s) || s == INFINITY)
                return sk_error_set(err, SK_ERR_FORMAT, "blk.%d.attn_sinks.weight[%d] = %g", l, h, (double)s);
        }
        if (!A->qk_norm && (L->q_norm.data || L->k_norm.data)) /* both or neither */
            if (!L->q_norm.data || !L->k_norm.data)
                return sk_error_set(err, SK_ERR_FORMAT, "blk.%d: attn_q_norm and attn_k_norm come in pairs", l);
        if (A->fused_gate_up) {
            sk_tensor up = {0};
            if ((st = bind(ld, T("ffn_up.weight"), d, 2 * ff, 0, 1, &up, err))) return st;
            L->w_gate = rows_view(&up, 0, ff);
            L->w_up = rows_view(&up, ff, ff);
        } else {
            if ((st = bind(ld, T("ffn_gate.weight"), d, ff, 0, 1, &L->w_gate, err))) return st;
            if ((st = bind(ld, T("ffn_up.weight"), d, ff, 0, 1, &L->w_up, err))) return st;
            if ((st = bind(ld, T("ffn_gate.bias"), ff, 1, 1, 0, &L->b_gate, err))) return st;
            if ((st = bind(ld, T("ffn_up.bias"), ff, 1, 1, 0, &L->b_up, err))) return st;
        }
#undef T
    }
    /* never silently ignored: every tensor and every "<arch>." key of the
     * file must have been consumed above */
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!ld->t_used[i])
            return sk_error_set(err, SK_ERR_UNSUPPORTED,
                                "tensor %.*s is not used by sinkllm's %s (not implemented)",
                                (int)(g->tensors[i].name.len > 64 ? 64 : g->tensors[i].name.len),
                                g->tensors[i].name.ptr, hp->arch);
    size_t al = strlen(hp->arch);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_str k = g->kv[i].key;
        if (!ld->kv_used[i] && k.len > al && memcmp(k.ptr, hp->arch, al) == 0 && k.ptr[al] == '.')
            return sk_error_set(err, SK_ERR_UNSUPPORTED,
                                "metadata key %.*s is not implemented (it may change the arithmetic)",
                                (int)(k.len > 80 ? 80 : k.len), k.ptr);
    }
    /* the query scale of the attention kernels is 1/sqrt(head_dim); Gemma 3
     * 27B scales by 1/sqrt(n_embd / n_head) instead (llama.cpp keys it on
     * the layer count of that model, 62) */
    m->q_scale = 1.0f;
    if (gguf_str_eq((gguf_str){hp->arch, strlen(hp->arch)}, "gemma3") && hp->n_layer == 62)
        m->q_scale = sqrtf((float)hd) / sqrtf((float)(hp->n_embd / hp->n_head));
    m->embd_scale = A->embd_scale ? sqrtf((float)d) : 1.0f;
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) bytes += g->tensors[i].nbytes;
    m->weight_bytes = bytes;
    return SK_OK;
}

/* The weight matrices that the matmul reads, in model order. */
static int matmul_tensors(sk_model *m, sk_tensor **t) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        sk_layer *L = &m->layers[l];
        sk_tensor *lt[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof lt / sizeof *lt; i++) t[n++] = lt[i];
    }
    t[n++] = &m->output;
    return n;
}

/* Copy every packable matrix into the pack.h layout (one anonymous
 * mapping, 64-byte aligned tensors). Without packing, or when the mapping
 * fails, the matmul uses the original layout: not an error. */
typedef struct pack_job {
    sk_tensor **t;
    char **dst;
    int lo, hi;
} pack_job;

static void *pack_range(void *arg) {
    pack_job *j = arg;
    for (int i = j->lo; i < j->hi; i++) {
        sk_tensor *w = j->t[i];
        sk_pack_rows(w->type, w->ne[0], w->ne[1] / SK_PACK_ROWS, w->data, w->row_size, j->dst[i]);
    }
    return NULL;
}

/* Copy every packable matrix into the pack.h layout (one anonymous
 * mapping, 64-byte aligned tensors), on two threads: half of the bytes
 * each (the copy and the page faults of fresh memory both scale). Without
 * packing, or when memory is short, the matmul uses the original layout:
 * not an error. */
static void pack_weights(sk_model *m) {
    if (!sk_pack_enabled()) return;
    int cap = 7 * m->hp.n_layer + 1, n = 0;
    sk_tensor **all = malloc(sizeof *all * (size_t)cap), **t = malloc(sizeof *t * (size_t)cap);
    char **dst = malloc(sizeof *dst * (size_t)cap);
    if (!all || !t || !dst) goto out;
    int n_all = matmul_tensors(m, all);
    size_t total = 0;
    for (int i = 0; i < n_all; i++)
        if (sk_pack_supported(all[i]->type, all[i]->ne[0], all[i]->ne[1])) {
            t[n] = all[i];
            dst[n++] = (char *)(uintptr_t)total; /* offset until the mapping exists */
            total += (sk_pack_group_size(all[i]->type, all[i]->ne[0]) *
                          (size_t)(all[i]->ne[1] / SK_PACK_ROWS) + 63) & ~(size_t)63;
        }
    if (!total) goto out;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) goto out;
    madvise(mem, total, MADV_HUGEPAGE);
    int half = 0; /* first tensor that starts in the second half of the bytes */
    while (half < n && (size_t)(uintptr_t)dst[half] * 2 < total) half++;
    for (int i = 0; i < n; i++) dst[i] = (char *)mem + (uintptr_t)dst[i];
    pack_job j0 = {t, dst, 0, half}, j1 = {t, dst, half, n};
    pthread_t th;
    int threaded = pthread_create(&th, NULL, pack_range, &j1) == 0;
    pack_range(&j0);
    if (threaded) pthread_join(th, NULL);
    else pack_range(&j1);
    for (int i = 0; i < n; i++) {
        t[i]->packed = dst[i];
        t[i]->pack_gs = sk_pack_group_size(t[i]->type, t[i]->ne[0]);
    }
    if (m->hp.tied_output && m->output.packed) { /* lookups read the packed copy too */
        m->tok_embd.packed = m->output.packed;
        m->tok_embd.pack_gs = m->output.pack_gs;
    }
    mprotect(mem, total, PROT_READ);
    m->pack_mem = mem;
    m->pack_size = total;
out:
    free(all);
    free(t);
    free(dst);
}

/* Give back the file pages of the packed matrices (the matmul reads the
 * packed copies; a later read, e.g. an embedding row, faults the page back
 * in from the page cache). Only for file mappings that we own. */
static void drop_packed_originals(sk_model *m) {
    if (!m->pack_mem || !m->map) return;
    int cap = 7 * m->hp.n_layer + 1;
    sk_tensor **t = malloc(sizeof *t * (size_t)cap);
    if (!t) return;
    int n = matmul_tensors(m, t);
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n; i++) {
        if (!t[i]->packed) continue;
        uintptr_t a = ((uintptr_t)t[i]->data + pg - 1) & ~(pg - 1);
        uintptr_t b = ((uintptr_t)t[i]->data + t[i]->row_size * (size_t)t[i]->ne[1]) & ~(pg - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
    free(t);
}

sk_status sk_model_from_span(const void *data, uint64_t size, sk_model **out, sk_error *err) {
    *out = NULL;
    sk_quant_init();
    sk_model *m = calloc(1, sizeof *m);
    if (!m) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (model)");
    sk_status st = gguf_parse(data, size, &m->gguf, err);
    if (!st && m->gguf->n_tensors == 0 && gguf_find_kv(m->gguf, "tokenizer.ggml.model"))
        st = sk_error_set(err, SK_ERR_FORMAT, "no tensors: a vocabulary-only file (sinkllm train "
                          "--vocab reads it; sk_model_load_vocab)");
    loader ld = {m->gguf, "", NULL, NULL};
    if (!st) {
        ld.kv_used = calloc(m->gguf->n_kv + 1, 1);
        ld.t_used = calloc(m->gguf->n_tensors + 1, 1);
        if (!ld.kv_used || !ld.t_used) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory (loader)");
    }
    if (!st) st = load_hparams(&ld, m, err);
    if (!st) st = load_weights(&ld, m, err);
    free(ld.kv_used);
    free(ld.t_used);
    if (!st) st = sk_tokenizer_from_gguf(m->gguf, &m->tok, err);
    if (!st && sk_tokenizer_n_vocab(m->tok) != m->hp.n_vocab)
        st = sk_error_set(err, SK_ERR_FORMAT,
                          "vocabulary has %lld tokens but token_embd.weight has %lld rows",
                          (long long)sk_tokenizer_n_vocab(m->tok), (long long)m->hp.n_vocab);
    if (!st && m->sink_token >= m->hp.n_vocab)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s.sink_token_id %d is not a token of the vocabulary "
                          "of %lld", m->hp.arch, m->sink_token, (long long)m->hp.n_vocab);
    if (!st && m->sink_token >= 0) st = sk_tokenizer_set_lead(m->tok, m->sink_token, err);
    if (!st && gguf_find_kv(m->gguf, "tokenizer.chat_template")) {
        gguf_str t;
        if (gguf_get_str(m->gguf, "tokenizer.chat_template", &t, NULL) == SK_OK &&
            t.len < (1u << 20)) {
            m->chat_template = malloc(t.len + 1);
            if (!m->chat_template) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
            else {
                memcpy(m->chat_template, t.ptr, t.len);
                m->chat_template[t.len] = 0;
            }
        }
    }
    if (st) {
        sk_model_free(m);
        return st;
    }
    pack_weights(m);
    /* fingerprint: header + tensor infos (up to the data section) and a
     * sample of each tensor's bytes (start, middle, end), so that two
     * fine-tunes of one shape differ */
    uint64_t h = SK_FNV_OFFSET;
    h = sk_fnv1a(h, data, m->gguf->data_offset < size ? m->gguf->data_offset : size);
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        size_t nb = (size_t)t->nbytes, k = nb < 64 ? nb : 64;
        const char *d = t->data;
        h = sk_fnv1a(h, d, k);
        h = sk_fnv1a(h, d + nb / 2 - (nb / 2 < k ? nb / 2 : k / 2), k);
        h = sk_fnv1a(h, d + nb - k, k);
    }
    m->fingerprint = h;
    const char *ftn[] = {"F32", "F16", "Q4_0", "Q4_1", "?", "?", "?", "Q8_0", "Q5_0", "Q5_1",
                         "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                         "Q5_K_M", "Q6_K"};
    const char *ft = (m->hp.file_type >= 0 && m->hp.file_type < (int)(sizeof ftn / sizeof *ftn))
                         ? ftn[m->hp.file_type] : m->tok_embd.tt->name;
    double params = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        params += (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    m->n_params = (uint64_t)params;
    snprintf(m->desc, sizeof m->desc, "%s %.0fM %s", m->hp.arch, params / 1e6, ft);
    *out = m;
    return SK_OK;
}

/* Map path read-only (populate: read it all in now). */
static sk_status map_file(const char *path, int populate, void **map_out, uint64_t *size_out,
                          sk_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: not a regular file (%s)", path,
                            S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO"
                            : S_ISCHR(sb.st_mode) ? "a character device" : "special file");
    }
    if (sb.st_size < 8) {
        close(fd);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: file too small to be GGUF (%lld bytes)", path,
                            (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return sk_error_set(err, SK_ERR_IO, "%s: mmap: %s", path, strerror(e));
    *map_out = map;
    *size_out = (uint64_t)sb.st_size;
    return SK_OK;
}

/* prefix err's message with the path */
static void name_path(sk_error *err, const char *path, sk_status st) {
    if (!err) return;
    char tmp[SK_ERRMSG_LEN];
    snprintf(tmp, sizeof tmp, "%s", err->msg);
    sk_error_set(err, st, "%s: %s", path, tmp);
}

sk_status sk_model_load(const char *path, sk_model **out, sk_error *err) {
    *out = NULL;
    if (sk_cpu_error()) return sk_error_set(err, SK_ERR_UNSUPPORTED, "%s", sk_cpu_error());
    void *map;
    uint64_t size;
    sk_status st = map_file(path, sk_pack_enabled(), &map, &size, err);
    if (st) return st;
    sk_model *m;
    st = sk_model_from_span(map, size, &m, err);
    if (st) {
        munmap(map, (size_t)size);
        name_path(err, path, st);
        return st;
    }
    m->map = map;
    m->map_size = size;
    drop_packed_originals(m);
    *out = m;
    return SK_OK;
}

sk_status sk_model_load_vocab(const char *path, sk_model **out, sk_error *err) {
    *out = NULL;
    void *map;
    uint64_t size;
    sk_status st = map_file(path, 0, &map, &size, err);
    if (st) return st;
    sk_model *m = calloc(1, sizeof *m);
    if (!m) {
        munmap(map, (size_t)size);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (model)");
    }
    m->map = map;
    m->map_size = size;
    m->vocab_only = 1;
    m->sink_token = -1;
    m->hp.file_type = -1;
    st = gguf_parse(map, size, &m->gguf, err);
    if (!st) st = sk_tokenizer_from_gguf(m->gguf, &m->tok, err);
    if (st) {
        sk_model_free(m);
        name_path(err, path, st);
        return st;
    }
    gguf_str s;
    if (gguf_find_kv(m->gguf, "general.architecture") &&
        gguf_get_str(m->gguf, "general.architecture", &s, NULL) == SK_OK)
        snprintf(m->hp.arch, sizeof m->hp.arch, "%.*s", clip_len(s), s.ptr);
    if (gguf_find_kv(m->gguf, "general.name") && gguf_get_str(m->gguf, "general.name", &s, NULL) == SK_OK)
        snprintf(m->hp.name, sizeof m->hp.name, "%.*s", (int)(s.len > 127 ? 127 : s.len), s.ptr);
    m->hp.n_vocab = sk_tokenizer_n_vocab(m->tok);
    snprintf(m->desc, sizeof m->desc, "vocabulary only, %lld tokens", (long long)m->hp.n_vocab);
    *out = m;
    return SK_OK;
}

void sk_model_free(sk_model *m) {
    if (!m) return;
    sk_tokenizer_free(m->tok);
    gguf_free(m->gguf);
    free(m->layers);
    free(m->chat_template);
    if (m->map) munmap(m->map, (size_t)m->map_size);
    if (m->pack_mem) munmap(m->pack_mem, m->pack_size);
    free(m);
}

const sk_hparams *sk_model_hparams(const sk_model *m) { return &m->hp; }
const sk_tokenizer *sk_model_tokenizer(const sk_model *m) { return m->tok; }
uint64_t sk_model_size(const sk_model *m) { return m->weight_bytes; }
uint64_t sk_model_n_params(const sk_model *m) { return m->n_params; }
const char *sk_model_desc(const sk_model *m) { return m->desc; }
const char *sk_model_chat_template(const sk_model *m) { return m->chat_template; }
int32_t sk_model_sink_token(const sk_model *m) { return m->sink_token; }
