/* export.c - write a trainer's model as a llama GGUF file (version 3) that
 * the inference side loads (sk_trainer_export).
 *
 * Metadata: general.architecture "llama", general.name, general.file_type,
 * the llama.* hyper-parameters (llama.sink_token_id for a model trained
 * with a sink token), then every tokenizer.* key of the vocab
 * model's file, copied byte for byte (its key/value records are contiguous
 * in that file). Tensors in llama.cpp's names; GGUF lists a matrix (out,
 * in) as ne = [in, out]; data aligned to 32 bytes. A --softmax1 model
 * carries blk.N.attn_sinks.weight of zeros: the inference side adds
 * exp(0 - max) to every denominator, the trainer's zero sink. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/quant.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "trainer.h"

#define ALIGN 32

typedef struct gw {
    FILE *f;
    uint64_t pos;
    int bad;
} gw;

static void w_raw(gw *w, const void *p, size_t n) {
    if (w->bad || !n) return;
    if (fwrite(p, 1, n, w->f) != n) w->bad = 1;
    w->pos += n;
}
static void w_u32(gw *w, uint32_t v) { w_raw(w, &v, 4); }
static void w_u64(gw *w, uint64_t v) { w_raw(w, &v, 8); }
static void w_str(gw *w, const char *s) {
    w_u64(w, strlen(s));
    w_raw(w, s, strlen(s));
}
static void kv_str(gw *w, const char *k, const char *v) {
    w_str(w, k);
    w_u32(w, GGUF_TYPE_STRING);
    w_str(w, v);
}
static void kv_u32(gw *w, const char *k, uint32_t v) {
    w_str(w, k);
    w_u32(w, GGUF_TYPE_UINT32);
    w_u32(w, v);
}
static void kv_f32(gw *w, const char *k, float v) {
    w_str(w, k);
    w_u32(w, GGUF_TYPE_FLOAT32);
    w_raw(w, &v, 4);
}
static void pad(gw *w) {
    static const char z[ALIGN];
    w_raw(w, z, (ALIGN - w->pos % ALIGN) % ALIGN);
}

typedef struct tinfo {
    char name[64];
    size_t off;         /* in the weight vector */
    int64_t ne0, ne1;   /* ne1 = 1: a vector */
    int f16;            /* stored as F16 */
    int zeros;          /* every element 0 (not in the weight vector) */
    uint64_t data_off;  /* in the data section */
} tinfo;

/* The end of the value of a key/value record, from the parsed value
 * (strings and arrays point into the span); NULL for an array of arrays,
 * whose end the parse does not keep. */
static const uint8_t *value_end(const gguf_kv *kv) {
    static const unsigned size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    const uint8_t *v = (const uint8_t *)kv->key.ptr + kv->key.len + 4; /* after the type */
    if (kv->type == GGUF_TYPE_STRING) return (const uint8_t *)kv->v.s.ptr + kv->v.s.len;
    if (kv->type != GGUF_TYPE_ARRAY) return v + size[kv->type];
    const gguf_arr *a = &kv->v.a;
    if (a->n == 0) return v + 12; /* element type, count */
    if (a->type == GGUF_TYPE_STRING) return (const uint8_t *)a->strs[a->n - 1].ptr + a->strs[a->n - 1].len;
    if (a->type == GGUF_TYPE_ARRAY) return NULL;
    return a->data + a->n * size[a->type];
}

/* The byte span [start, end) of key/value record i of g: from its key's
 * length field to the end of its value (or, for an array of arrays, the
 * start of the next record or of the tensor infos: in a file without
 * tensors the last record is followed by the padding before the data). */
static void kv_span(const gguf_ctx *g, uint64_t i, const uint8_t **start, const uint8_t **end) {
    const uint8_t *s = (const uint8_t *)g->kv[i].key.ptr - 8, *e = g->base + g->data_offset;
    for (uint64_t j = 0; j < g->n_kv; j++) {
        const uint8_t *o = (const uint8_t *)g->kv[j].key.ptr - 8;
        if (o > s && o < e) e = o;
    }
    for (uint64_t j = 0; j < g->n_tensors; j++) {
        const uint8_t *o = (const uint8_t *)g->tensors[j].name.ptr - 8;
        if (o > s && o < e) e = o;
    }
    const uint8_t *ve = value_end(&g->kv[i]);
    *start = s;
    *end = ve && ve <= e ? ve : e;
}

static int is_tok_key(gguf_str k) { return k.len > 10 && memcmp(k.ptr, "tokenizer.", 10) == 0; }

sk_status sk_trainer_export(const sk_trainer *t, const sk_model *vocab, const char *path, int f16,
                            sk_error *err) {
    const sk_train_params *p = &t->p;
    if (sk_tokenizer_n_vocab(sk_model_tokenizer(vocab)) != p->n_vocab)
        return sk_error_set(err, SK_ERR_INVALID, "the vocabulary model has %lld tokens, the trained "
                            "model %lld", (long long)sk_tokenizer_n_vocab(sk_model_tokenizer(vocab)),
                            (long long)p->n_vocab);
    const gguf_ctx *g = vocab->gguf;
    const tr_layout *lay = tr_net_layout_f32(t->net);
    const int64_t d = p->n_embd, nq = d, nk = (int64_t)t->dm.nkv * t->dm.hd, ff = p->n_ff,
                  V = p->n_vocab;
    int n_t = 0, cap = 3 + 10 * p->n_layer;
    tinfo *ti = calloc((size_t)cap, sizeof *ti);
    if (!ti) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (export)");
#define ADD(nm, o, a, b, h) (snprintf(ti[n_t].name, sizeof ti[n_t].name, "%s", nm), ti[n_t].off = (o), \
                             ti[n_t].ne0 = (a), ti[n_t].ne1 = (b), ti[n_t].f16 = (h), n_t++)
    ADD("token_embd.weight", lay->tok_embd, d, V, f16);
    ADD("output_norm.weight", lay->out_norm, d, 1, 0);
    if (!p->tied) ADD("output.weight", lay->output, d, V, f16);
    for (int l = 0; l < p->n_layer; l++) {
        const tr_block_off *b = &lay->blk[l];
        char nm[64];
#define BLK(suffix, o, a, bb, h) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), ADD(nm, o, a, bb, h))
        BLK("attn_norm.weight", b->attn_norm, d, 1, 0);
        BLK("attn_q.weight", b->wq, d, nq, f16);
        BLK("attn_k.weight", b->wk, d, nk, f16);
        BLK("attn_v.weight", b->wv, d, nk, f16);
        BLK("attn_output.weight", b->wo, nq, d, f16);
        BLK("ffn_norm.weight", b->ffn_norm, d, 1, 0);
        BLK("ffn_gate.weight", b->wg, d, ff, f16);
        BLK("ffn_up.weight", b->wu, d, ff, f16);
        BLK("ffn_down.weight", b->wd, ff, d, f16);
        if (p->sink_logit) BLK("attn_sinks.weight", b->sinks, p->n_head, 1, 0);
        if (p->softmax1) { /* the zero sink: a sink logit of 0 for every head */
            BLK("attn_sinks.weight", 0, p->n_head, 1, 0);
            ti[n_t - 1].zeros = 1;
        }
#undef BLK
    }
#undef ADD
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        ti[i].data_off = off;
        off += ((uint64_t)ti[i].ne0 * ti[i].ne1 * (ti[i].f16 ? 2 : 4) + ALIGN - 1) / ALIGN * ALIGN;
    }
    uint64_t n_tok_kv = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) n_tok_kv += is_tok_key(g->kv[i].key);

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(ti);
        return sk_error_set(err, SK_ERR_INVALID, "export path too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(ti);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    gw w = {f, 0, 0};
    w_raw(&w, "GGUF", 4);
    w_u32(&w, 3);
    w_u64(&w, (uint64_t)n_t);
    w_u64(&w, 13 + (p->sink_token >= 0) + n_tok_kv);
    char name[96];
    snprintf(name, sizeof name, "sinkllm-train %dL %dd", p->n_layer, p->n_embd);
    kv_str(&w, "general.architecture", "llama");
    kv_str(&w, "general.name", name);
    kv_u32(&w, "general.file_type", f16 ? 1 : 0);
    kv_u32(&w, "llama.context_length", (uint32_t)p->n_ctx);
    kv_u32(&w, "llama.embedding_length", (uint32_t)d);
    kv_u32(&w, "llama.block_count", (uint32_t)p->n_layer);
    kv_u32(&w, "llama.feed_forward_length", (uint32_t)ff);
    kv_u32(&w, "llama.rope.dimension_count", (uint32_t)t->dm.hd);
    kv_u32(&w, "llama.attention.head_count", (uint32_t)p->n_head);
    kv_u32(&w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv);
    kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", (float)p->norm_eps);
    kv_f32(&w, "llama.rope.freq_base", (float)p->rope_base);
    kv_u32(&w, "llama.vocab_size", (uint32_t)V);
    if (p->sink_token >= 0) kv_u32(&w, "llama.sink_token_id", (uint32_t)p->sink_token);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (!is_tok_key(g->kv[i].key)) continue;
        const uint8_t *s, *e;
        kv_span(g, i, &s, &e);
        w_raw(&w, s, (size_t)(e - s));
    }
    for (int i = 0; i < n_t; i++) {
        w_str(&w, ti[i].name);
        w_u32(&w, ti[i].ne1 > 1 ? 2 : 1);
        w_u64(&w, (uint64_t)ti[i].ne0);
        if (ti[i].ne1 > 1) w_u64(&w, (uint64_t)ti[i].ne1);
        w_u32(&w, ti[i].f16 ? SK_TYPE_F16 : SK_TYPE_F32);
        w_u64(&w, ti[i].data_off);
    }
    pad(&w);
    uint16_t *h = NULL;
    for (int i = 0; i < n_t && !w.bad; i++) {
        size_t n = (size_t)ti[i].ne0 * (size_t)ti[i].ne1;
        if (ti[i].zeros) {
            static const float z[64];
            for (size_t k = 0; k < n; k += 64) w_raw(&w, z, (n - k < 64 ? n - k : 64) * 4);
        } else if (ti[i].f16) {
            uint16_t *nh = realloc(h, n * sizeof *h);
            if (!nh) {
                w.bad = 2;
                break;
            }
            h = nh;
            sk_f32_to_f16_row(t->w + ti[i].off, h, (int64_t)n);
            w_raw(&w, h, n * 2);
        } else {
            w_raw(&w, t->w + ti[i].off, n * 4);
        }
        pad(&w);
    }
    free(h);
    free(ti);
    int e = errno;
    if (!w.bad && (fflush(f) != 0 || fsync(fileno(f)) != 0)) w.bad = 1, e = errno;
    if (fclose(f) != 0 && !w.bad) w.bad = 1, e = errno;
    if (w.bad || rename(tmp, path) != 0) {
        if (!w.bad) e = errno;
        remove(tmp);
        if (w.bad == 2) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (export)");
        return sk_error_set(err, SK_ERR_IO, "writing %s: %s", path, strerror(e));
    }
    return SK_OK;
}
