/* test_model.c - model loading: bad hyper-parameters, bad vocabularies and
 * bad paths give clear errors (no crash, no leak); a good tiny model loads
 * and runs. */
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
    const char *extra[] = {"blk.0.ffn_gate_exps.weight", "blk.1.attn_sinks.weight", "foo.weight",
                           "blk.0.layer_output_scale.weight", "rope_factors_long.weight"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        tiny_defaults(&o);
        o.extra_tensor = extra[i];
        o.extra_ne0 = 4;
        o.extra_ne1 = 1;
        expect_error(&o, extra[i]);
    }
    tiny_defaults(&o);
    o.extra_tensor = "rope_freqs.weight"; /* n_rot / 2 = 4 factors expected */
    o.extra_ne0 = 3;
    o.extra_ne1 = 1;
    expect_error(&o, "rope_freqs.weight");
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

/* The last-token logits of a tiny model on a fixed prompt. */
static void tiny_logits(const tiny_opts *o, float *out) {
    uint8_t *buf;
    size_t n;
    tiny_build(o, &buf, &n);
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
    free(buf);
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
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_bad_cache_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
