/* test_model.c - model loading: bad hyper-parameters, bad vocabularies and
 * bad paths give clear errors (no crash, no leak); a good tiny model loads
 * and runs; what the loader accepts changes the arithmetic as it should
 * (RoPE factors and linear scaling, soft-capping, every optional bias), and
 * the fused layouts (attn_qkv with its bias, Phi-3's gate+up ffn_up) compute
 * exactly what the separate tensors compute. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/gguf.h"
#include "runtime/model.h"
#include "sinkllm.h"
#include "util_tiny.h"

static sk_status load_tiny(const tiny_opts *o, sk_error *err, sk_model **out) {
    uint8_t *buf;
    size_t n;
    tiny_build(o, &buf, &n);
    sk_model *m = NULL;
    sk_status st = sk_model_from_span(buf, n, &m, err);
    if (out && !st) {
        *out = m;
        return st; /* caller frees model and leaks buf deliberately? no: see below */
    }
    sk_model_free(m);
    free(buf);
    return st;
}

static void expect_error(const tiny_opts *o, const char *needle) {
    sk_error err = {0};
    sk_status st = load_tiny(o, &err, NULL);
    if (st == SK_OK) fail_msg("expected an error containing '%s'", needle);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

/* The loader never ignores what it does not compute: each crafted file asks
 * for something unimplemented and must be refused with an error naming it. */
static void test_refusals(void **state) {
    (void)state;
    tiny_opts o;
    struct { const char *key; int type; uint32_t u; float f; const char *s; const char *needle; } keys[] = {
        {"llama.attention.layer_norm_epsilon", 6, 0, 1e-5f, NULL, "llama.attention.layer_norm_epsilon"},
        {"llama.attn_logit_softcapping", 6, 0, 50.0f, NULL, "llama.attn_logit_softcapping"},
        {"llama.expert_count", 4, 8, 0, NULL, "expert_count"},
        {"llama.rope.scaling.type", 8, 0, 0, "yarn", "yarn"},
        {"llama.attention.sliding_window", 4, 4096, 0, NULL, "sliding"},
        {"llama.attention.clamp_kqv", 6, 0, 8.0f, NULL, "llama.attention.clamp_kqv"},
        {"llama.attention.value_length", 4, 4, 0, NULL, "value_length"},
        {"llama.embedding_length_per_layer_input", 4, 16, 0, NULL, "embedding_length_per_layer_input"},
        {"llama.vocab_size", 4, 65, 0, NULL, "vocab_size"},
        {"llama.attention.causal", 4, 0, 0, NULL, "causal"},
        {"llama.attention.sliding_window_pattern", 4, 6, 0, NULL, "sliding_window_pattern"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        tiny_defaults(&o);
        o.extra_key = keys[i].key;
        o.extra_type = keys[i].type;
        o.extra_u32 = keys[i].u;
        o.extra_f32 = keys[i].f;
        o.extra_str = keys[i].s;
        expect_error(&o, keys[i].needle);
    }
    /* tensors: unknown ones, expert tensors, a missing one, a wrong shape */
    const char *extra[] = {"blk.0.ffn_gate_exps.weight", "foo.weight",
                           "blk.0.layer_output_scale.weight", "rope_factors_long.weight"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        tiny_defaults(&o);
        o.extra_tensor = extra[i];
        o.extra_ne0 = 4;
        o.extra_ne1 = 1;
        expect_error(&o, extra[i]);
    }
    /* sink logits (gpt-oss's attn_sinks): one per query head (4), finite or -inf */
    tiny_defaults(&o);
    o.extra_tensor = "blk.1.attn_sinks.weight";
    o.extra_ne0 = 3;
    o.extra_ne1 = 1;
    expect_error(&o, "blk.1.attn_sinks.weight");
    o.extra_ne0 = 4;
    o.extra_value = NAN;
    expect_error(&o, "blk.1.attn_sinks.weight[0] = nan");
    o.extra_value = INFINITY;
    expect_error(&o, "blk.1.attn_sinks.weight[0] = inf");
    o.extra_value = 0.0f; /* random */
    {
        sk_error e2 = {0};
        assert_int_equal(load_tiny(&o, &e2, NULL), SK_OK);
    }
    tiny_defaults(&o);
    o.extra_tensor = "rope_freqs.weight"; /* n_rot / 2 = 4 factors expected */
    o.extra_ne0 = 3;
    o.extra_ne1 = 1;
    expect_error(&o, "rope_freqs.weight");
    tiny_defaults(&o);
    o.extra_tensor = "blk.0.attn_q_norm.weight"; /* the right shape, without attn_k_norm */
    o.extra_ne0 = 8;
    o.extra_ne1 = 1;
    expect_error(&o, "come in pairs");
    tiny_defaults(&o);
    o.omit_tensor = "blk.1.ffn_up.weight";
    expect_error(&o, "missing tensor blk.1.ffn_up.weight");
    /* families: unknown ones name themselves; a family's required tensors */
    tiny_defaults(&o);
    o.arch = "gemma2";
    expect_error(&o, "'gemma2' is not supported");
    tiny_defaults(&o);
    o.arch = "qwen3"; /* needs per-head Q/K norms */
    expect_error(&o, "missing tensor blk.0.attn_q_norm.weight");
    tiny_defaults(&o);
    o.arch = "gemma3"; /* needs post-norms too */
    expect_error(&o, "missing tensor blk.0.attn_q_norm.weight");
    tiny_defaults(&o);
    o.arch = "qwen2"; /* llama's tensors, neox rope: loads */
    sk_error err = {0};
    assert_int_equal(load_tiny(&o, &err, NULL), SK_OK);
}

/* The last-token logits (64) of the model in buf on a fixed prompt. */
static void span_logits(const uint8_t *buf, size_t n, float *out) {
    sk_model *m = NULL;
    sk_error err = {0};
    if (sk_model_from_span(buf, n, &m, &err)) fail_msg("%s", err.msg);
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    sk_context *c = NULL;
    assert_int_equal(sk_context_new(m, &p, &c, &err), SK_OK);
    int32_t toks[12] = {3, 7, 1, 0, 63, 9, 12, 40, 41, 5, 6, 8};
    assert_int_equal(sk_decode(c, toks, 12, &err), SK_OK);
    memcpy(out, sk_logits(c), 64 * sizeof(float));
    sk_context_free(c);
    sk_model_free(m);
}

/* The last-token logits of a tiny model on a fixed prompt. */
static void tiny_logits(const tiny_opts *o, float *out) {
    uint8_t *buf;
    size_t n;
    tiny_build(o, &buf, &n);
    span_logits(buf, n, out);
    free(buf);
}

static double sum_abs_diff(const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < 64; i++) s += fabs((double)a[i] - b[i]);
    return s;
}

/* What the loader accepts it computes: rope_freqs.weight divides the RoPE
 * frequencies (the Llama 3 file that was silently wrong), and
 * final_logit_softcapping bounds the logits. */
static void test_accepted_changes(void **state) {
    (void)state;
    float base[64], alt[64];
    tiny_opts o;
    tiny_defaults(&o);
    tiny_logits(&o, base);
    tiny_defaults(&o);
    o.extra_tensor = "rope_freqs.weight";
    o.extra_ne0 = 4;
    o.extra_ne1 = 1;
    o.extra_value = 1.0f; /* factors of 1: the same model */
    tiny_logits(&o, alt);
    for (int i = 0; i < 64; i++) assert_float_equal(alt[i], base[i], 1e-5);
    o.extra_value = 8.0f;
    tiny_logits(&o, alt);
    double diff = 0;
    for (int i = 0; i < 64; i++) diff += fabs(alt[i] - base[i]);
    if (diff < 1e-3) fail_msg("rope_freqs.weight of 8 changed nothing (sum |diff| %g)", diff);
    tiny_defaults(&o);
    o.extra_key = "llama.final_logit_softcapping";
    o.extra_type = 6;
    o.extra_f32 = 0.5f;
    tiny_logits(&o, alt);
    for (int i = 0; i < 64; i++) {
        assert_true(fabsf(alt[i]) <= 0.5f);
        assert_float_equal(alt[i], 0.5f * tanhf(base[i] / 0.5f), 1e-4);
    }
    /* linear RoPE scaling (rope.scaling.factor without a type: llama.cpp's
     * default "linear") rotates by pos / 4 * theta_i: exactly what factors
     * of 4 in rope_freqs.weight give (pos * theta_i / 4) */
    float lin[64];
    tiny_defaults(&o);
    o.extra_key = "llama.rope.scaling.factor";
    o.extra_type = 6;
    o.extra_f32 = 4.0f;
    tiny_logits(&o, lin);
    tiny_defaults(&o);
    o.extra_tensor = "rope_freqs.weight";
    o.extra_ne0 = 4;
    o.extra_ne1 = 1;
    o.extra_value = 4.0f;
    tiny_logits(&o, alt);
    double md = 0;
    for (int i = 0; i < 64; i++) md = fmax(md, fabs((double)lin[i] - alt[i]));
    printf("    rope.scaling.factor 4 vs rope_freqs.weight of 4: max |logit diff| %g; against no "
           "scaling %g (sum |diff|)\n", md, sum_abs_diff(lin, base));
    if (sum_abs_diff(lin, base) < 1e-3) fail_msg("rope.scaling.factor 4 changed nothing");
    for (int i = 0; i < 64; i++) assert_float_equal(lin[i], alt[i], 1e-5);
}

/* Every optional bias the loader binds is added: each one, random, on
 * layer 1 of the tiny model moves the logits. */
static void test_biases_applied(void **state) {
    (void)state;
    struct { const char *name; int64_t n; } b[] = {
        {"blk.1.attn_q.bias", 32},   {"blk.1.attn_k.bias", 16}, {"blk.1.attn_v.bias", 16},
        {"blk.1.attn_output.bias", 32}, {"blk.1.ffn_gate.bias", 48}, {"blk.1.ffn_up.bias", 48},
        {"blk.1.ffn_down.bias", 32},
    };
    float base[64], alt[64];
    tiny_opts o;
    tiny_defaults(&o);
    tiny_logits(&o, base);
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
        tiny_defaults(&o);
        o.extra_tensor = b[i].name;
        o.extra_ne0 = b[i].n;
        o.extra_ne1 = 1;
        tiny_logits(&o, alt);
        double diff = sum_abs_diff(alt, base);
        printf("    %s moves the logits by %g (sum |diff|)\n", b[i].name, diff);
        if (diff < 1e-3) fail_msg("%s changed nothing (sum |diff| %g)", b[i].name, diff);
    }
}

/* ---- crafted variants of a tiny file: another architecture, fused tensors ---- */

typedef struct ctensor {
    char name[96];
    int64_t ne0, ne1;
    uint32_t type;
    uint8_t *data; /* malloc'ed, nbytes */
    size_t nbytes;
} ctensor;

/* a parsed tiny file whose tensors can be edited before craft_write */
typedef struct craft {
    gguf_ctx *g;
    ctensor t[64];
    int nt;
} craft;

static void craft_open(craft *cr, const uint8_t *buf, size_t n) {
    memset(cr, 0, sizeof *cr);
    sk_error err = {0};
    if (gguf_parse(buf, n, &cr->g, &err)) fail_msg("%s", err.msg);
    assert_true(cr->g->n_tensors <= 64);
    for (uint64_t i = 0; i < cr->g->n_tensors; i++) {
        const gguf_tensor *gt = &cr->g->tensors[i];
        ctensor *t = &cr->t[cr->nt++];
        snprintf(t->name, sizeof t->name, "%.*s", (int)gt->name.len, gt->name.ptr);
        t->ne0 = gt->ne[0];
        t->ne1 = gt->ne[1];
        t->type = gt->type;
        t->nbytes = (size_t)gt->nbytes;
        t->data = malloc(t->nbytes);
        memcpy(t->data, gt->data, t->nbytes);
    }
}

static void craft_free(craft *cr) {
    for (int i = 0; i < cr->nt; i++) free(cr->t[i].data);
    gguf_free(cr->g);
}

static int craft_find(const craft *cr, const char *name) {
    for (int i = 0; i < cr->nt; i++)
        if (strcmp(cr->t[i].name, name) == 0) return i;
    fail_msg("crafted file: no tensor %s", name);
    return -1;
}

/* an F32 vector tensor */
static void craft_add_vec(craft *cr, const char *name, const float *v, int64_t n) {
    assert_true(cr->nt < 64);
    ctensor *t = &cr->t[cr->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = n;
    t->ne1 = 1;
    t->type = SK_TYPE_F32;
    t->nbytes = sizeof(float) * (size_t)n;
    t->data = malloc(t->nbytes);
    memcpy(t->data, v, t->nbytes);
}

/* Replace the tensors parts[0..k) (same row length and type) by one tensor
 * `name` holding their rows in that order; vectors are joined end to end. */
static void craft_concat(craft *cr, const char *name, const char *const *parts, int k) {
    ctensor out = {0};
    snprintf(out.name, sizeof out.name, "%s", name);
    for (int j = 0; j < k; j++) {
        int i = craft_find(cr, parts[j]);
        ctensor *p = &cr->t[i];
        if (j == 0) {
            out.ne0 = p->ne1 == 1 ? 0 : p->ne0;
            out.type = p->type;
        }
        assert_int_equal(p->type, out.type);
        if (p->ne1 == 1) out.ne0 += p->ne0; /* vector */
        else out.ne1 += p->ne1;
        out.data = realloc(out.data, out.nbytes + p->nbytes);
        memcpy(out.data + out.nbytes, p->data, p->nbytes);
        out.nbytes += p->nbytes;
        free(p->data);
        *p = cr->t[--cr->nt];
    }
    if (out.ne1 == 0) out.ne1 = 1;
    cr->t[cr->nt++] = out;
}

typedef struct obuf {
    uint8_t *p;
    size_t n;
} obuf;

static void oput(obuf *b, const void *d, size_t n) {
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void ou32(obuf *b, uint32_t v) { oput(b, &v, 4); }
static void ou64(obuf *b, uint64_t v) { oput(b, &v, 8); }
static void ostr(obuf *b, const char *s, size_t n) {
    ou64(b, n);
    oput(b, s, n);
}

/* Write the crafted model as GGUF v3: every metadata key of the original,
 * "llama." keys renamed "<arch>.", general.architecture = arch; the
 * tensors as edited. The caller frees *out. */
static void craft_write(const craft *cr, const char *arch, uint8_t **out, size_t *n) {
    const gguf_ctx *g = cr->g;
    obuf b = {0};
    oput(&b, "GGUF", 4);
    ou32(&b, 3);
    ou64(&b, (uint64_t)cr->nt);
    ou64(&b, g->n_kv);
    /* each key-value pair's bytes run from its key to the next one's (the
     * last one's to the first tensor info) */
    const uint8_t *kv_end = (const uint8_t *)g->tensors[0].name.ptr - 8;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_str k = g->kv[i].key;
        const uint8_t *val = (const uint8_t *)k.ptr + k.len;
        const uint8_t *end = i + 1 < g->n_kv ? (const uint8_t *)g->kv[i + 1].key.ptr - 8 : kv_end;
        assert_true(end > val && end <= kv_end);
        if (gguf_str_eq(k, "general.architecture")) {
            ostr(&b, k.ptr, k.len);
            ou32(&b, GGUF_TYPE_STRING);
            ostr(&b, arch, strlen(arch));
            continue;
        }
        if (k.len > 6 && memcmp(k.ptr, "llama.", 6) == 0) {
            char key[160];
            int kn = snprintf(key, sizeof key, "%s.%.*s", arch, (int)k.len - 6, k.ptr + 6);
            ostr(&b, key, (size_t)kn);
        } else {
            ostr(&b, k.ptr, k.len);
        }
        oput(&b, val, (size_t)(end - val));
    }
    uint64_t off = 0;
    for (int i = 0; i < cr->nt; i++) {
        const ctensor *t = &cr->t[i];
        ostr(&b, t->name, strlen(t->name));
        ou32(&b, 2);
        ou64(&b, (uint64_t)t->ne0);
        ou64(&b, (uint64_t)t->ne1);
        ou32(&b, t->type);
        ou64(&b, off);
        off += (t->nbytes + 31) & ~(uint64_t)31;
    }
    static const uint8_t zero[32];
    oput(&b, zero, (32 - b.n % 32) % 32);
    for (int i = 0; i < cr->nt; i++) {
        oput(&b, cr->t[i].data, cr->t[i].nbytes);
        oput(&b, zero, (32 - cr->t[i].nbytes % 32) % 32);
    }
    *out = b.p;
    *n = b.n;
}

/* The fused layouts compute what the separate tensors compute: Phi-3 with
 * attn_qkv.weight + attn_qkv.bias (rows Q, K, V) and ffn_up.weight holding
 * gate then up gives the logits of Qwen2 (the same table row otherwise:
 * NEOX RoPE, SiLU) with separate Q/K/V weights and biases and separate
 * gate/up; both differ from the model without the biases. */
static void test_fused_layouts(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o); /* n_embd 32, 4 heads of 8, 2 KV heads, n_ff 48 */
    uint8_t *buf;
    size_t n;
    tiny_build(&o, &buf, &n);
    craft plain, sep, fus;
    craft_open(&plain, buf, n);
    craft_open(&sep, buf, n);
    craft_open(&fus, buf, n);
    for (int l = 0; l < 2; l++) {
        float bias[3][32];
        const char *part[3] = {"attn_q", "attn_k", "attn_v"};
        const int64_t len[3] = {32, 16, 16};
        char nm[3][64], w[3][64], qkv[64];
        for (int j = 0; j < 3; j++) {
            for (int e = 0; e < len[j]; e++)
                bias[j][e] = 0.5f * sinf(1.7f * (float)e + 2.3f * (float)j + (float)l);
            snprintf(nm[j], sizeof nm[j], "blk.%d.%s.bias", l, part[j]);
            snprintf(w[j], sizeof w[j], "blk.%d.%s.weight", l, part[j]);
            craft_add_vec(&sep, nm[j], bias[j], len[j]);
            craft_add_vec(&fus, nm[j], bias[j], len[j]);
        }
        const char *ws[3] = {w[0], w[1], w[2]}, *bs[3] = {nm[0], nm[1], nm[2]};
        snprintf(qkv, sizeof qkv, "blk.%d.attn_qkv.weight", l);
        craft_concat(&fus, qkv, ws, 3);
        snprintf(qkv, sizeof qkv, "blk.%d.attn_qkv.bias", l);
        craft_concat(&fus, qkv, bs, 3);
        char gate[64], up[64];
        snprintf(gate, sizeof gate, "blk.%d.ffn_gate.weight", l);
        snprintf(up, sizeof up, "blk.%d.ffn_up.weight", l);
        const char *gu[2] = {gate, up};
        craft_concat(&fus, up, gu, 2);
    }
    float lp[64], ls[64], lf[64];
    uint8_t *fb;
    size_t fn;
    craft_write(&plain, "qwen2", &fb, &fn);
    span_logits(fb, fn, lp);
    free(fb);
    craft_write(&sep, "qwen2", &fb, &fn);
    span_logits(fb, fn, ls);
    free(fb);
    craft_write(&fus, "phi3", &fb, &fn);
    span_logits(fb, fn, lf);
    free(fb);
    double md = 0;
    for (int i = 0; i < 64; i++) md = fmax(md, fabs((double)lf[i] - ls[i]));
    printf("    fused vs separate: max |logit diff| %g; the biases move the logits by %g (sum |diff|)\n",
           md, sum_abs_diff(ls, lp));
    if (sum_abs_diff(ls, lp) < 1e-3) fail_msg("the Q/K/V biases changed nothing");
    for (int i = 0; i < 64; i++) assert_float_equal(lf[i], ls[i], 1e-5);
    craft_free(&plain);
    craft_free(&sep);
    craft_free(&fus);
    free(buf);
}

static void test_tiny_runs(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    uint8_t *buf;
    size_t n;
    tiny_build(&o, &buf, &n);
    sk_model *m = NULL;
    sk_error err = {0};
    assert_int_equal(sk_model_from_span(buf, n, &m, &err), SK_OK);
    assert_int_equal(sk_model_hparams(m)->n_layer, 2);
    assert_int_equal(sk_model_hparams(m)->n_vocab, 64);
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 2;
    sk_context *c = NULL;
    assert_int_equal(sk_context_new(m, &p, &c, &err), SK_OK);
    int32_t toks[5] = {3, 7, 1, 0, 63};
    assert_int_equal(sk_decode(c, toks, 5, &err), SK_OK);
    const float *lg = sk_logits(c);
    for (int i = 0; i < 64; i++) assert_true(isfinite(lg[i]));
    int32_t bad = 64;
    assert_int_not_equal(sk_decode(c, &bad, 1, &err), SK_OK);
    assert_non_null(strstr(err.msg, "token id"));
    bad = -1;
    assert_int_not_equal(sk_decode(c, &bad, 1, &err), SK_OK);
    sk_context_free(c);
    sk_model_free(m);
    free(buf);
}

static void test_bad_heads(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    o.n_head = 0;
    expect_error(&o, "head_count");
    tiny_defaults(&o);
    o.n_head_kv = 3; /* 4 % 3 != 0 */
    expect_error(&o, "head_count_kv");
    tiny_defaults(&o);
    o.n_head_kv = 0;
    expect_error(&o, "head_count_kv");
    tiny_defaults(&o);
    o.n_head = 5; /* 32 % 5 != 0 */
    expect_error(&o, "divisible");
    tiny_defaults(&o);
    o.n_layer = 0;
    expect_error(&o, "block_count");
    tiny_defaults(&o);
    o.n_embd = 2048; /* one head of 2048: beyond what the attention kernels take */
    o.n_head = 1;
    o.n_head_kv = 1;
    o.n_layer = 1;
    expect_error(&o, "above 1024");
    tiny_defaults(&o);
    o.n_embd = 512; /* 512 heads of 1 sharing one KV head: more than the attention takes */
    o.n_head = 512;
    o.n_head_kv = 1;
    o.n_layer = 1;
    expect_error(&o, "per KV head");
}

static void test_bad_vocab(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    o.n_tokens_override = 60; /* 60 tokens, 64 embedding rows */
    expect_error(&o, "60");
    tiny_defaults(&o);
    o.n_types_override = 10; /* token_type disagrees with tokens */
    expect_error(&o, "token_type");
    tiny_defaults(&o);
    o.bos_id = 64;
    expect_error(&o, "bos");
    tiny_defaults(&o);
    o.eos_id = 1LL << 31;
    expect_error(&o, "eos");
}

static void expect_path_error(const char *path, const char *needle) {
    sk_model *m = (sk_model *)1;
    sk_error err = {0};
    assert_int_not_equal(sk_model_load(path, &m, &err), SK_OK);
    assert_null(m);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_bad_paths(void **state) {
    (void)state;
    expect_path_error("/tmp", "directory");
    expect_path_error("/dev/zero", "not a regular file");
    expect_path_error("/nonexistent/model.gguf", "No such file");
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/sk_fifo_%d", (int)getpid());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_path_error(fifo, "FIFO"); /* must not block on open */
    unlink(fifo);
    char empty[64];
    snprintf(empty, sizeof empty, "/tmp/sk_empty_%d", (int)getpid());
    FILE *f = fopen(empty, "wb");
    fclose(f);
    expect_path_error(empty, "too small");
    unlink(empty);
}

static void test_bad_cache_params(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    uint8_t *buf;
    size_t n;
    tiny_build(&o, &buf, &n);
    sk_model *m = NULL;
    sk_error err = {0};
    assert_int_equal(sk_model_from_span(buf, n, &m, &err), SK_OK);
    struct { sk_cache_policy pol; int sinks, window, ctx, threads, batch; const char *needle; } bad[] = {
        {SK_CACHE_SINK, -1, 16, 0, 1, 8, "sinks"},
        {SK_CACHE_SINK, 4, 0, 0, 1, 8, "window"},
        {SK_CACHE_SINK, 4, -5, 0, 1, 8, "window"},
        {SK_CACHE_SINK, 4, 1 << 30, 0, 1, 8, "window"},
        {SK_CACHE_DENSE, 0, 0, 0, 1, 8, "ctx"},
        {SK_CACHE_DENSE, 0, 0, -1, 1, 8, "ctx"},
        {SK_CACHE_SHIFT, 4, 1, 0, 1, 8, "window"},
        {(sk_cache_policy)99, 4, 16, 0, 1, 8, "policy"},
        {SK_CACHE_SINK, 4, 16, 0, -1, 8, "threads"},
        {SK_CACHE_SINK, 4, 16, 0, 1, 0, "batch"},
        {SK_CACHE_RECOMPUTE, 0, 0, 0, 1, 8, "window"},
    };
    {
        sk_context_params p;
        sk_context_params_default(&p);
        p.cache.policy = SK_CACHE_RECOMPUTE;
        p.cache.n_window = 8;
        p.logits_all = 1;
        sk_context *c = (sk_context *)1;
        assert_int_not_equal(sk_context_new(m, &p, &c, &err), SK_OK);
        assert_null(c);
        assert_non_null(strstr(err.msg, "logits_all"));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sk_context_params p;
        sk_context_params_default(&p);
        p.cache.policy = bad[i].pol;
        p.cache.n_sinks = bad[i].sinks;
        p.cache.n_window = bad[i].window;
        p.cache.n_ctx = bad[i].ctx;
        p.n_threads = bad[i].threads;
        p.n_batch = bad[i].batch;
        sk_context *c = (sk_context *)1;
        memset(&err, 0, sizeof err);
        assert_int_not_equal(sk_context_new(m, &p, &c, &err), SK_OK);
        assert_null(c);
        if (!strstr(err.msg, bad[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
    }
    /* dense: a clear error when the context is full */
    sk_context_params p;
    sk_context_params_default(&p);
    p.cache.policy = SK_CACHE_DENSE;
    p.cache.n_ctx = 8;
    p.n_threads = 1;
    sk_context *c = NULL;
    assert_int_equal(sk_context_new(m, &p, &c, &err), SK_OK);
    int32_t toks[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* too long for the context: refused as a whole, nothing fed */
    assert_int_equal(sk_decode(c, toks, 9, &err), SK_ERR_FULL);
    sk_context_stats st;
    sk_context_get_stats(c, &st);
    assert_int_equal(st.n_past, 0);
    assert_null(sk_logits(c));
    assert_int_equal(sk_decode(c, toks, 8, &err), SK_OK);
    assert_int_equal(sk_decode(c, toks, 1, &err), SK_ERR_FULL);
    assert_non_null(strstr(err.msg, "context full"));
    sk_context_free(c);
    sk_model_free(m);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_runs),
        cmocka_unit_test(test_bad_heads),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_accepted_changes),
        cmocka_unit_test(test_biases_applied),
        cmocka_unit_test(test_fused_layouts),
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_bad_cache_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
