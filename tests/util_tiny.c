/* util_tiny.c - see util_tiny.h. A minimal GGUF v3 writer. */
#include "util_tiny.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *d, size_t n) {
    if (w->n + n > w->cap) {
        while (w->n + n > w->cap) w->cap = w->cap ? w->cap * 2 : 4096;
        w->p = realloc(w->p, w->cap);
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}
static void u32(wbuf *w, uint32_t v) { put(w, &v, 4); }
static void u64(wbuf *w, uint64_t v) { put(w, &v, 8); }
static void str(wbuf *w, const char *s) {
    u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_u32(wbuf *w, const char *k, uint32_t v) { str(w, k); u32(w, 4); u32(w, v); }
static void kv_f32(wbuf *w, const char *k, float v) { str(w, k); u32(w, 6); put(w, &v, 4); }
static void kv_str(wbuf *w, const char *k, const char *v) { str(w, k); u32(w, 8); str(w, v); }
static void kv_bool(wbuf *w, const char *k, int v) { uint8_t b = (uint8_t)v; str(w, k); u32(w, 7); put(w, &b, 1); }

void tiny_defaults(tiny_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_vocab = 64;
    o->n_embd = 32;
    o->n_layer = 2;
    o->n_head = 4;
    o->n_head_kv = 2;
    o->n_ff = 48;
    o->ctx_len = 2048;
    o->seed = 1;
    o->bos_id = 1;
    o->eos_id = 2;
}

typedef struct tinfo {
    char name[64];
    int64_t ne0, ne1;
    int type;
    int norm;
} tinfo;

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

void tiny_build(const tiny_opts *o, uint8_t **buf, size_t *size) {
    int d = o->n_embd, hd = o->n_head > 0 ? d / o->n_head : d, ff = o->n_ff, nv = o->n_vocab;
    int nkv = o->n_head_kv > 0 ? o->n_head_kv * hd : hd;
    int wt = o->weight_type ? o->weight_type : SK_TYPE_F32;
    tinfo *t = calloc((size_t)(4 + 10 * o->n_layer), sizeof *t);
    int nt = 0;
#define ADD(nm, a, b, norm_) do { snprintf(t[nt].name, 64, "%s", nm); t[nt].ne0 = a; t[nt].ne1 = b; t[nt].norm = norm_; t[nt].type = norm_ ? SK_TYPE_F32 : wt; nt++; } while (0)
    ADD("token_embd.weight", d, nv, 0);
    ADD("output_norm.weight", d, 1, 1);
    for (int l = 0; l < o->n_layer; l++) {
        char nm[64];
#define L(s, a, b, n) do { snprintf(nm, 64, "blk.%d.%s", l, s); ADD(nm, a, b, n); } while (0)
        L("attn_norm.weight", d, 1, 1);
        L("attn_q.weight", d, d, 0);
        L("attn_k.weight", d, nkv, 0);
        L("attn_v.weight", d, nkv, 0);
        L("attn_output.weight", d, d, 0);
        L("ffn_norm.weight", d, 1, 1);
        L("ffn_gate.weight", d, ff, 0);
        L("ffn_up.weight", d, ff, 0);
        L("ffn_down.weight", ff, d, 0);
#undef L
    }
    if (o->extra_tensor) ADD(o->extra_tensor, o->extra_ne0, o->extra_ne1, 1);
    for (int l = 0; o->attn_sinks && l < o->n_layer; l++) {
        char nm[64];
        snprintf(nm, 64, "blk.%d.attn_sinks.weight", l);
        ADD(nm, o->n_head, 1, 2);
    }
    if (o->omit_tensor)
        for (int i = 0; i < nt; i++)
            if (strcmp(t[i].name, o->omit_tensor) == 0) {
                memmove(&t[i], &t[i + 1], sizeof *t * (size_t)(nt - i - 1));
                nt--;
                break;
            }
#undef ADD
    wbuf w = {0};
    put(&w, "GGUF", 4);
    u32(&w, 3);
    u64(&w, (uint64_t)nt);
    int n_tok = o->n_tokens_override > 0 ? o->n_tokens_override : nv;
    int n_types = o->n_types_override > 0 ? o->n_types_override : n_tok;
    u64(&w, (o->omit_head_count_kv ? 17 : 18) + (o->extra_key ? 1 : 0));
    const char *a = o->arch ? o->arch : "llama";
    char key[128];
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    kv_str(&w, "general.architecture", a);
    kv_str(&w, "general.name", "tiny");
    kv_u32(&w, K("block_count"), (uint32_t)o->n_layer);
    kv_u32(&w, K("context_length"), (uint32_t)o->ctx_len);
    kv_u32(&w, K("embedding_length"), (uint32_t)d);
    kv_u32(&w, K("feed_forward_length"), (uint32_t)ff);
    kv_u32(&w, K("attention.head_count"), (uint32_t)o->n_head);
    if (!o->omit_head_count_kv) kv_u32(&w, K("attention.head_count_kv"), (uint32_t)o->n_head_kv);
    kv_f32(&w, K("rope.freq_base"), 10000.0f);
    kv_f32(&w, K("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef K
    if (o->extra_key && o->extra_type == 4) kv_u32(&w, o->extra_key, o->extra_u32);
    if (o->extra_key && o->extra_type == 6) kv_f32(&w, o->extra_key, o->extra_f32);
    if (o->extra_key && o->extra_type == 8) kv_str(&w, o->extra_key, o->extra_str);
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_str(&w, "tokenizer.ggml.pre", "default");
    /* tokens: printable ASCII characters starting at '!' */
    str(&w, "tokenizer.ggml.tokens");
    u32(&w, 9);
    u32(&w, 8);
    u64(&w, (uint64_t)n_tok);
    for (int i = 0; i < n_tok; i++) {
        char s[16];
        if (i < 90) { s[0] = (char)('!' + i); s[1] = 0; }
        else snprintf(s, sizeof s, "t%d", i);
        str(&w, s);
    }
    str(&w, "tokenizer.ggml.token_type");
    u32(&w, 9);
    u32(&w, 5);
    u64(&w, (uint64_t)n_types);
    for (int i = 0; i < n_types; i++) u32(&w, 1);
    str(&w, "tokenizer.ggml.merges");
    u32(&w, 9);
    u32(&w, 8);
    u64(&w, 0);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)o->bos_id);
    kv_u32(&w, "tokenizer.ggml.eos_token_id", (uint32_t)o->eos_id);
    kv_bool(&w, "tokenizer.ggml.add_bos_token", 0);
    /* tensor infos */
    uint64_t off = 0;
    uint64_t *offs = calloc((size_t)nt, sizeof *offs);
    for (int i = 0; i < nt; i++) {
        str(&w, t[i].name);
        u32(&w, 2);
        u64(&w, (uint64_t)t[i].ne0);
        u64(&w, (uint64_t)t[i].ne1);
        u32(&w, (uint32_t)t[i].type);
        offs[i] = off;
        u64(&w, off);
        size_t nb = sk_row_size(t[i].type, t[i].ne0) * (size_t)t[i].ne1;
        off += (nb + 31) & ~(uint64_t)31;
    }
    while (w.n % 32) put(&w, "", 1);
    size_t base = w.n;
    uint8_t zero[32] = {0};
    uint32_t seed = o->seed;
    for (int i = 0; i < nt; i++) {
        while (w.n < base + offs[i]) put(&w, zero, 1);
        int64_t n = t[i].ne0 * t[i].ne1;
        float *x = malloc(sizeof(float) * (size_t)n);
        float scale = t[i].norm ? 0.0f : 1.0f / (float)t[i].ne0 * 3.0f;
        for (int64_t k = 0; k < n; k++) x[k] = t[i].norm ? 1.0f + 0.1f * frand(&seed) : frand(&seed) * scale * 2.0f;
        if (t[i].norm == 2) /* sink logits */
            for (int64_t k = 0; k < n; k++) x[k] = o->attn_sinks == 2 ? -INFINITY : 2.0f * frand(&seed);
        if (o->extra_tensor && strcmp(t[i].name, o->extra_tensor) == 0 && o->extra_value != 0.0f)
            for (int64_t k = 0; k < n; k++) x[k] = o->extra_value;
        if (t[i].type == SK_TYPE_F32) {
            put(&w, x, (size_t)n * 4);
        } else {
            size_t rs = sk_row_size(t[i].type, t[i].ne0);
            uint8_t *q = malloc(rs * (size_t)t[i].ne1);
            for (int64_t r = 0; r < t[i].ne1; r++)
                sk_type_get_ref(t[i].type)->from_float(x + r * t[i].ne0, q + r * rs, t[i].ne0);
            put(&w, q, rs * (size_t)t[i].ne1);
            free(q);
        }
        free(x);
    }
    free(offs);
    free(t);
    *buf = w.p;
    *size = w.n;
}
