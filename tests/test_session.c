/* test_session.c - saving and restoring a context: a restored session
 * continues with logits identical to one never interrupted; corrupt,
 * truncated, foreign-model and other-configuration files give clear errors;
 * a writer killed with SIGKILL in the middle of saves leaves the old or the
 * new file, never garbage. The session store (sk_store_*): a round trip of
 * cache and record, corrupt records (magic, version, kind, every length,
 * NUL in the system prompt), token ids out of range on save and on load,
 * bad names, listing and deleting, stale temporary files. A model with
 * sliding-window layers (the tiny Gemma 3 of $SINKLLM_TINY_DIR, whose local
 * layers keep their own cache) round-trips both caches, and a rollback takes
 * both back or neither. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/model.h"
#include "sinkllm.h"
#include "util_model.h"
#include "util_tiny.h"

static uint8_t *g_buf;
static sk_model *g_m;
static char g_dir[64];
static sk_model *g_gemma; /* gemma(): loaded on first use */
static int g_gemma_tried;

static int setup(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    size_t n;
    tiny_build(&o, &g_buf, &n);
    sk_error err = {0};
    if (sk_model_from_span(g_buf, n, &g_m, &err)) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_sess_%d", (int)getpid());
    return mkdir(g_dir, 0700) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sk_model_free(g_m);
    sk_model_free(g_gemma);
    free(g_buf);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static sk_context *ctx(const sk_model *m, sk_cache_policy pol, int S, int W) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = 8;
    p.cache.policy = pol;
    p.cache.n_sinks = S;
    p.cache.n_window = W;
    p.cache.n_ctx = 256;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("%s", err.msg);
    return c;
}

static int32_t tok(int i) { return (int32_t)((i * 31 + 7) % 64); }

static void feed(sk_context *c, int from, int n) {
    sk_error err = {0};
    for (int i = from; i < from + n; i++) {
        int32_t t = tok(i);
        assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
    }
}

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* The tiny Gemma 3 of tests/test_families.c ($SINKLLM_TINY_DIR/gemma3.gguf,
 * written by scripts/make_tiny_models.py): 7 layers, 6 of them local with a
 * sliding window of 8 in their own cache. NULL when SINKLLM_TINY_DIR is not
 * set (the caller skips); under make test a missing file fails. */
static sk_model *gemma(void) {
    if (g_gemma_tried) return g_gemma;
    g_gemma_tried = 1;
    const char *d = getenv("SINKLLM_TINY_DIR");
    if (!d || !*d) {
        printf("skipped: SINKLLM_TINY_DIR is not set (make test generates the tiny models and sets it)\n");
        return NULL;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/gemma3.gguf", d);
    if (!test_need_file("the tiny Gemma 3 (make tiny)", path)) return NULL;
    sk_error err = {0};
    if (sk_model_load(path, &g_gemma, &err)) fail_msg("%s", err.msg);
    const sk_hparams *hp = sk_model_hparams(g_gemma);
    if (hp->n_layer_swa < 1 || hp->n_swa < 1) fail_msg("%s has no sliding-window layers", path);
    return g_gemma;
}

static void feed_v(sk_context *c, int from, int n, int64_t n_vocab) {
    sk_error err = {0};
    for (int i = from; i < from + n; i++) {
        int32_t t = (int32_t)(((int64_t)i * 131 + 7) % n_vocab);
        if (sk_decode(c, &t, 1, &err)) fail_msg("decode: %s", err.msg);
    }
}

/* A model with local layers: the file holds both caches, and a context
 * that had decoded another stream continues exactly as the saved one. */
static void test_roundtrip_swa(void **state) {
    (void)state;
    sk_model *m = gemma();
    if (!m) skip();
    int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t lb = sizeof(float) * (size_t)nv;
    sk_cache_policy pols[] = {SK_CACHE_SINK, SK_CACHE_WINDOW, SK_CACHE_DENSE};
    for (size_t k = 0; k < sizeof pols / sizeof *pols; k++) {
        sk_context *a = ctx(m, pols[k], 4, 16), *b = ctx(m, pols[k], 4, 16);
        feed_v(a, 0, 40, nv); /* the local window of 8 wrapped several times */
        feed_v(b, 1000, 13, nv); /* what the load must replace */
        char path[128];
        path_of(path, sizeof path, "swa.sess");
        sk_error err = {0};
        assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);
        if (sk_context_load(b, path, NULL, NULL, &err)) fail_msg("load: %s", err.msg);
        assert_memory_equal(sk_logits(a), sk_logits(b), lb);
        for (int i = 40; i < 60; i++) { /* continue both: bit-identical */
            feed_v(a, i, 1, nv);
            feed_v(b, i, 1, nv);
            if (memcmp(sk_logits(a), sk_logits(b), lb) != 0)
                fail_msg("%s: the restored session differs from the saved one at token %d",
                         sk_cache_policy_name(pols[k]), i);
        }
        sk_context_stats sa, sb;
        sk_context_get_stats(a, &sa);
        sk_context_get_stats(b, &sb);
        assert_int_equal(sa.n_past, sb.n_past);
        assert_int_equal(sa.n_evicted, sb.n_evicted);
        sk_context_free(a);
        sk_context_free(b);
    }
}

/* Rollback on a model with local layers takes both caches back or neither:
 * the SHIFT policy's cache refuses after the local one accepted, and must
 * leave it as it was; an accepted rollback then the same tokens again is
 * the stream that never rolled back. */
static void test_rollback_swa(void **state) {
    (void)state;
    sk_model *m = gemma();
    if (!m) skip();
    int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t lb = sizeof(float) * (size_t)nv;
    sk_error err = {0};
    sk_context *a = ctx(m, SK_CACHE_SHIFT, 4, 16), *b = ctx(m, SK_CACHE_SHIFT, 4, 16);
    feed_v(a, 0, 30, nv);
    feed_v(b, 0, 30, nv);
    assert_int_not_equal(sk_context_rollback(a, 1, &err), SK_OK);
    for (int i = 30; i < 45; i++) {
        feed_v(a, i, 1, nv);
        feed_v(b, i, 1, nv);
        if (memcmp(sk_logits(a), sk_logits(b), lb) != 0)
            fail_msg("a refused rollback changed the stream (token %d)", i);
    }
    sk_context_free(a);
    sk_context_free(b);
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = 8;
    p.cache.policy = SK_CACHE_SINK;
    p.cache.n_sinks = 4;
    p.cache.n_window = 16;
    p.cache.n_rollback = 4;
    assert_int_equal(sk_context_new(m, &p, &a, &err), SK_OK);
    assert_int_equal(sk_context_new(m, &p, &b, &err), SK_OK);
    feed_v(a, 0, 40, nv);
    feed_v(b, 0, 37, nv);
    if (sk_context_rollback(a, 3, &err)) fail_msg("rollback: %s", err.msg);
    for (int i = 37; i < 50; i++) {
        feed_v(a, i, 1, nv);
        feed_v(b, i, 1, nv);
        if (memcmp(sk_logits(a), sk_logits(b), lb) != 0)
            fail_msg("after a rollback of 3 the stream differs at token %d", i);
    }
    sk_context_free(a);
    sk_context_free(b);
}

static void test_roundtrip_identical(void **state) {
    (void)state;
    sk_cache_policy pols[] = {SK_CACHE_SINK, SK_CACHE_WINDOW, SK_CACHE_DENSE, SK_CACHE_SHIFT, SK_CACHE_RECOMPUTE};
    for (size_t k = 0; k < sizeof pols / sizeof *pols; k++) {
        sk_context *a = ctx(g_m, pols[k], 4, 16), *b = ctx(g_m, pols[k], 4, 16);
        feed(a, 0, 50); /* several ring wraps */
        char path[128];
        path_of(path, sizeof path, "rt.sess");
        sk_error err = {0};
        const char blob[] = "transcript: hello";
        assert_int_equal(sk_context_save(a, path, blob, sizeof blob, &err), SK_OK);
        void *got = NULL;
        size_t got_len = 0;
        assert_int_equal(sk_context_load(b, path, &got, &got_len, &err), SK_OK);
        assert_int_equal(got_len, sizeof blob);
        assert_memory_equal(got, blob, sizeof blob);
        free(got);
        assert_memory_equal(sk_logits(a), sk_logits(b), 64 * sizeof(float));
        for (int i = 50; i < 90; i++) { /* continue both: bit-identical */
            feed(a, i, 1);
            feed(b, i, 1);
            assert_memory_equal(sk_logits(a), sk_logits(b), 64 * sizeof(float));
        }
        sk_context_stats sa, sb;
        sk_context_get_stats(a, &sa);
        sk_context_get_stats(b, &sb);
        assert_int_equal(sa.n_past, sb.n_past);
        assert_int_equal(sa.n_evicted, sb.n_evicted);
        assert_int_equal(sa.n_shifts, sb.n_shifts); /* restored, and counting on */
        if (pols[k] == SK_CACHE_SHIFT) assert_true(sa.n_shifts > 0);
        else assert_int_equal(sa.n_shifts, 0);
        sk_context_free(a);
        sk_context_free(b);
    }
}

static void expect_load_error(sk_context *c, const char *path, const char *needle) {
    sk_error err = {0};
    void *blob = (void *)1;
    size_t n = 7;
    assert_int_not_equal(sk_context_load(c, path, &blob, &n, &err), SK_OK);
    assert_null(blob);
    assert_int_equal(n, 0);
    if (!strstr(err.msg, needle)) fail_msg("'%s' lacks '%s'", err.msg, needle);
    /* the context is usable (reset) afterwards */
    sk_context_stats st;
    sk_context_get_stats(c, &st);
    assert_int_equal(st.n_past, 0);
    assert_null(sk_logits(c));
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_bad_files(void **state) {
    (void)state;
    sk_context *a = ctx(g_m, SK_CACHE_SINK, 4, 16), *b = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(a, 0, 30);
    char path[128], bad[128];
    path_of(path, sizeof path, "good.sess");
    path_of(bad, sizeof bad, "bad.sess");
    sk_error err = {0};
    assert_int_equal(sk_context_save(a, path, "x", 1, &err), SK_OK);
    size_t n;
    uint8_t *good = slurp(path, &n);
    /* every truncation (a sample of prefixes, all of the header) */
    for (size_t len = 0; len < n; len += (len < 256 ? 1 : 97)) {
        spit(bad, good, len);
        expect_load_error(b, bad, "");
    }
    /* a flipped byte in the payload, and in each header field region */
    for (size_t off = 0; off < n; off += 53) {
        uint8_t *c = malloc(n);
        memcpy(c, good, n);
        c[off] ^= 0x40;
        spit(bad, c, n);
        expect_load_error(b, bad, "");
        free(c);
    }
    uint8_t *c = malloc(n + 1);
    memcpy(c, good, n);
    c[n - 1] ^= 1;
    spit(bad, c, n);
    expect_load_error(b, bad, "checksum");
    memcpy(c, good, n);
    c[0] = 'X';
    spit(bad, c, n);
    expect_load_error(b, bad, "not a sinkllm session");
    memcpy(c, good, n);
    c[n] = 0;
    spit(bad, c, n + 1);
    expect_load_error(b, bad, "trailing");
    free(c);
    free(good);
    /* another cache configuration */
    sk_context *w = ctx(g_m, SK_CACHE_SINK, 4, 17);
    expect_load_error(w, path, "configuration");
    sk_context_free(w);
    /* another model (different weights, same shapes) */
    tiny_opts o;
    tiny_defaults(&o);
    o.seed = 99;
    uint8_t *buf2;
    size_t n2;
    tiny_build(&o, &buf2, &n2);
    sk_model *m2 = NULL;
    assert_int_equal(sk_model_from_span(buf2, n2, &m2, &err), SK_OK);
    sk_context *x = ctx(m2, SK_CACHE_SINK, 4, 16);
    expect_load_error(x, path, "another model");
    sk_context_free(x);
    sk_model_free(m2);
    free(buf2);
    /* a symlink is not followed; a directory and a missing file are errors */
    char link[128];
    path_of(link, sizeof link, "link.sess");
    assert_int_equal(symlink(path, link), 0);
    expect_load_error(b, link, "symbolic link");
    expect_load_error(b, g_dir, "");
    path_of(bad, sizeof bad, "missing.sess");
    expect_load_error(b, bad, "No such file");
    /* saving over a symlink replaces the link, the target is untouched */
    size_t before;
    free(slurp(path, &before));
    sk_context *e = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(e, 0, 3);
    assert_int_equal(sk_context_save(e, link, NULL, 0, &err), SK_OK);
    size_t after;
    free(slurp(path, &after));
    assert_int_equal(before, after);
    assert_int_equal(sk_context_load(b, link, NULL, NULL, &err), SK_OK); /* now a plain file */
    sk_context_free(e);
    sk_context_free(a);
    sk_context_free(b);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Patch an int64 header field and re-seal the checksum, as an attacker
 * would: the loader must reject states that decoding cannot produce. */
static void patch_and_reseal(uint8_t *b, size_t n, size_t off, int64_t v) {
    memcpy(b + off, &v, 8);
    memset(b + 136, 0, 8);
    uint64_t h = fnv(0xcbf29ce484222325ULL, b + 192, n - 192);
    h = fnv(h, b, 192);
    memcpy(b + 136, &h, 8);
}

static void test_crafted_state(void **state) {
    (void)state;
    struct { sk_cache_policy pol; size_t off; int64_t v; } cases[] = {
        {SK_CACHE_SHIFT, 64, 1000000},          /* n_past far ahead of shift_lo */
        {SK_CACHE_SHIFT, 72, 1},                /* shift_lo below the kept prefix */
        {SK_CACHE_SINK, 64, INT64_MAX - 3},     /* n_past near overflow */
        {SK_CACHE_SINK, 72, 7},                 /* shift state on a sink cache */
        {SK_CACHE_DENSE, 64, 257},              /* past n_ctx */
        {SK_CACHE_RECOMPUTE, 96, 2},            /* history shorter than the cache */
        {SK_CACHE_WINDOW, 64, -5},
        {SK_CACHE_SINK, 144, 1},                /* rows below the window without n_rollback */
        {SK_CACHE_SHIFT, 152, -1},              /* a negative count of them (local cache) */
    };
    char path[128], bad[128];
    path_of(path, sizeof path, "craft.sess");
    path_of(bad, sizeof bad, "craft-bad.sess");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        sk_context *a = ctx(g_m, cases[k].pol, 4, 8), *b = ctx(g_m, cases[k].pol, 4, 8);
        feed(a, 0, cases[k].pol == SK_CACHE_RECOMPUTE ? 12 : 6);
        sk_error err = {0};
        assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);
        size_t n;
        uint8_t *buf = slurp(path, &n);
        /* the unpatched, resealed file still loads: the reseal is right */
        patch_and_reseal(buf, n, 200 - 200, *(int64_t *)(void *)buf);
        spit(bad, buf, n);
        assert_int_equal(sk_context_load(b, bad, NULL, NULL, &err), SK_OK);
        patch_and_reseal(buf, n, cases[k].off, cases[k].v);
        spit(bad, buf, n);
        expect_load_error(b, bad, "out of range");
        free(buf);
        sk_context_free(a);
        sk_context_free(b);
    }
}

/* Version 2 files (before rows below the window were kept: back[] zero)
 * still load; a version 2 header with back[] set, or a version from the
 * future, is refused. */
static void test_versions(void **state) {
    (void)state;
    char path[128], bad[128];
    path_of(path, sizeof path, "ver.sess");
    path_of(bad, sizeof bad, "ver-bad.sess");
    sk_context *a = ctx(g_m, SK_CACHE_SINK, 4, 8), *b = ctx(g_m, SK_CACHE_SINK, 4, 8);
    feed(a, 0, 20);
    sk_error err = {0};
    assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    patch_and_reseal(buf, n, 8, (int64_t)192 << 32 | 2); /* version 2, header 192 bytes */
    spit(bad, buf, n);
    assert_int_equal(sk_context_load(b, bad, NULL, NULL, &err), SK_OK);
    patch_and_reseal(buf, n, 144, 1);
    spit(bad, buf, n);
    expect_load_error(b, bad, "out of range");
    patch_and_reseal(buf, n, 144, 0);
    patch_and_reseal(buf, n, 8, (int64_t)192 << 32 | 4);
    spit(bad, buf, n);
    expect_load_error(b, bad, "session version 4");
    free(buf);
    sk_context_free(a);
    sk_context_free(b);
}

/* A recompute session's history is fed back through the embedding: a
 * crafted id (negative, n_vocab, huge) with a resealed checksum is refused
 * by name instead of read out of bounds (issue 11). */
static void test_crafted_history(void **state) {
    (void)state;
    const int32_t bad_ids[] = {-1, (int32_t)sk_model_hparams(g_m)->n_vocab, INT32_MAX};
    char path[128], bad[128];
    path_of(path, sizeof path, "hist.sess");
    path_of(bad, sizeof bad, "hist-bad.sess");
    sk_context *a = ctx(g_m, SK_CACHE_RECOMPUTE, 4, 8), *b = ctx(g_m, SK_CACHE_RECOMPUTE, 4, 8);
    feed(a, 0, 12);
    sk_error err = {0};
    assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    for (size_t k = 0; k < sizeof bad_ids / sizeof *bad_ids; k++) {
        uint8_t *t = malloc(n);
        assert_non_null(t);
        memcpy(t, buf, n);
        /* no blob: the history starts right after the 192-byte header; the
         * int64 patch at 192 writes ids 0 and 1 of it */
        int64_t two = (int64_t)(uint32_t)bad_ids[k] | (int64_t)((uint64_t)(uint32_t)5 << 32);
        patch_and_reseal(t, n, 192, two);
        spit(bad, t, n);
        expect_load_error(b, bad, "out of range");
        free(t);
    }
    /* the same file with a valid id still loads */
    patch_and_reseal(buf, n, 192, (int64_t)7 | ((int64_t)5 << 32));
    spit(bad, buf, n);
    assert_int_equal(sk_context_load(b, bad, NULL, NULL, &err), SK_OK);
    free(buf);
    sk_context_free(a);
    sk_context_free(b);
}

/* A child saves two states alternately into one path and is killed at a
 * random moment; the file must always load as one of the two. */
static void test_kill9_during_save(void **state) {
    (void)state;
    char path[128];
    path_of(path, sizeof path, "kill.sess");
    sk_context *a = ctx(g_m, SK_CACHE_SINK, 4, 16), *b = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(a, 0, 20);
    feed(b, 100, 27);
    float la[64], lb[64];
    memcpy(la, sk_logits(a), sizeof la);
    memcpy(lb, sk_logits(b), sizeof lb);
    sk_error err = {0};
    assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);
    srand((unsigned)time(NULL));
    int n_a = 0, n_b = 0;
    for (int round = 0; round < 30; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0;; i++) sk_context_save(i % 2 ? b : a, path, NULL, 0, NULL);
        }
        struct timespec ts = {0, (long)(rand() % 20000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        sk_context *r = ctx(g_m, SK_CACHE_SINK, 4, 16);
        assert_int_equal(sk_context_load(r, path, NULL, NULL, &err), SK_OK);
        if (!memcmp(sk_logits(r), la, sizeof la)) n_a++;
        else if (!memcmp(sk_logits(r), lb, sizeof lb)) n_b++;
        else fail_msg("round %d: restored state is neither version", round);
        sk_context_free(r);
    }
    printf("  30 kills: file held state A %d times, state B %d times, never garbage\n", n_a, n_b);
    /* leftover temporary files are the only debris */
    sk_context_free(a);
    sk_context_free(b);
}

/* ---- the session store (sk_store_*) ------------------------------------ */

static sk_store *store_at(const char *sub) {
    char dir[128];
    path_of(dir, sizeof dir, sub);
    sk_store *st = NULL;
    sk_error err = {0};
    if (sk_store_open(dir, g_m, &st, &err)) fail_msg("%s", err.msg);
    return st;
}

static void test_store_roundtrip(void **state) {
    (void)state;
    sk_store *st = store_at("store_rt"); /* the directory is made by the first save */
    sk_context *a = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(a, 0, 40);
    int32_t tr[40];
    for (int i = 0; i < 40; i++) tr[i] = tok(i);
    tr[39] = 63; /* the largest id */
    const char *sys = "You are terse. \xc3\xbc";
    sk_error err = {0};
    assert_int_equal(sk_store_save(st, "conv-1_A", a, SK_CHAT_LLAMA3, sys, tr, 40, &err), SK_OK);
    assert_true(sk_store_exists(st, "conv-1_A"));

    sk_session_info info;
    assert_int_equal(sk_store_peek(st, "conv-1_A", &info, &err), SK_OK);
    assert_int_equal(info.chat_kind, SK_CHAT_LLAMA3);
    assert_string_equal(info.system, sys);
    assert_int_equal(info.n_tokens, 40);
    assert_memory_equal(info.tokens, tr, sizeof tr);
    assert_int_equal(info.cache.policy, SK_CACHE_SINK);
    assert_int_equal(info.cache.n_sinks, 4);
    assert_int_equal(info.cache.n_window, 16);
    assert_int_equal(info.n_batch, 8);
    assert_int_equal(info.n_turns, -1); /* sk_store_save records no turn count */
    sk_session_info_free(&info);
    assert_null(info.system);

    /* with a turn count: record version 2, 8 bytes longer, the count back */
    char file0[128];
    struct stat sb0;
    path_of(file0, sizeof file0, "store_rt/conv-1_A.session");
    assert_int_equal(stat(file0, &sb0), 0);
    assert_int_equal(sk_store_save_turns(st, "turns", a, SK_CHAT_LLAMA3, sys, tr, 40, 7, &err), SK_OK);
    assert_int_equal(sk_store_peek(st, "turns", &info, &err), SK_OK);
    assert_int_equal(info.n_turns, 7);
    assert_string_equal(info.system, sys);
    assert_memory_equal(info.tokens, tr, sizeof tr);
    sk_session_info_free(&info);
    char file1[128];
    struct stat sb1;
    path_of(file1, sizeof file1, "store_rt/turns.session");
    assert_int_equal(stat(file1, &sb1), 0);
    assert_int_equal((long)sb1.st_size, (long)sb0.st_size + 8);
    assert_int_equal(sk_store_save_turns(st, "turns", a, SK_CHAT_LLAMA3, NULL, NULL, 0, 0, &err), SK_OK);
    sk_context *t = ctx(g_m, SK_CACHE_SINK, 4, 16);
    assert_int_equal(sk_store_load(st, "turns", t, &info, &err), SK_OK);
    assert_int_equal(info.n_turns, 0);
    sk_session_info_free(&info);
    sk_context_free(t);

    sk_context *b = ctx(g_m, SK_CACHE_SINK, 4, 16);
    assert_int_equal(sk_store_load(st, "conv-1_A", b, &info, &err), SK_OK);
    assert_string_equal(info.system, sys);
    assert_memory_equal(info.tokens, tr, sizeof tr);
    assert_int_equal(info.cache.n_window, 16);
    sk_session_info_free(&info);
    assert_null(sk_logits(b)); /* a store session keeps no logits: the next turn is fed first */
    feed(a, 40, 5);
    feed(b, 40, 5);
    assert_memory_equal(sk_logits(a), sk_logits(b), 64 * sizeof(float));

    /* the same bytes in memory (a store of no directory) continue alike */
    sk_store *mem = NULL;
    assert_int_equal(sk_store_open(NULL, g_m, &mem, &err), SK_OK);
    void *bytes = NULL;
    size_t n_bytes = 0;
    assert_int_equal(sk_store_encode(mem, "conv-1_A", a, SK_CHAT_LLAMA3, sys, tr, 40, &bytes, &n_bytes, &err), SK_OK);
    assert_int_equal(sk_store_save(mem, "conv-1_A", a, SK_CHAT_LLAMA3, sys, tr, 40, &err), SK_ERR_INVALID);
    assert_int_equal(sk_store_save(st, "conv-1_A", a, SK_CHAT_LLAMA3, sys, tr, 40, &err), SK_OK);
    char file[128];
    path_of(file, sizeof file, "store_rt/conv-1_A.session");
    FILE *fp = fopen(file, "rb");
    assert_non_null(fp);
    char *disk = malloc(n_bytes + 1);
    assert_int_equal(fread(disk, 1, n_bytes + 1, fp), n_bytes); /* the file holds exactly those bytes */
    fclose(fp);
    assert_memory_equal(disk, bytes, n_bytes);
    free(disk);
    assert_int_equal(sk_store_peek_bytes(mem, "x", bytes, n_bytes, &info, &err), SK_OK);
    assert_int_equal(info.n_tokens, 40);
    sk_session_info_free(&info);
    sk_context *d = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(d, 100, 30); /* stale rows everywhere in its ring */
    assert_int_equal(sk_store_load_bytes(mem, "x", bytes, n_bytes, d, &info, &err), SK_OK);
    sk_session_info_free(&info);
    feed(a, 45, 3);
    feed(d, 45, 3);
    assert_memory_equal(sk_logits(a), sk_logits(d), 64 * sizeof(float));
    ((char *)bytes)[n_bytes - 1] ^= 1; /* a flipped bit in the last cache row */
    assert_int_equal(sk_store_load_bytes(mem, "x", bytes, n_bytes, d, &info, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum"));
    assert_int_equal(sk_store_load_bytes(mem, "x", bytes, n_bytes - 1, d, &info, &err), SK_ERR_FORMAT);
    assert_int_equal(sk_store_load_bytes(mem, "x", bytes, 10, d, &info, &err), SK_ERR_FORMAT);
    free(bytes);
    sk_context_free(d);
    sk_store_free(mem);

    /* no system prompt, no transcript; info may be NULL */
    assert_int_equal(sk_store_save(st, "empty", a, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_OK);
    assert_int_equal(sk_store_load(st, "empty", b, NULL, &err), SK_OK);
    assert_int_equal(sk_store_peek(st, "empty", &info, &err), SK_OK);
    assert_string_equal(info.system, "");
    assert_null(info.tokens);
    assert_int_equal(info.n_tokens, 0);
    sk_session_info_free(&info);

    /* a context of another configuration is refused and left reset */
    sk_context *w = ctx(g_m, SK_CACHE_SINK, 4, 32);
    feed(w, 0, 3);
    assert_int_not_equal(sk_store_load(st, "conv-1_A", w, &info, &err), SK_OK);
    assert_null(sk_logits(w));
    assert_null(info.system);
    sk_context_free(w);
    sk_context_free(a);
    sk_context_free(b);
    sk_store_free(st);
}

/* Write a session whose record is rec (as a broken writer would) and check
 * that peek and load refuse it with a message containing needle. */
static void expect_bad_record(sk_store *st, sk_context *c, const void *rec, size_t len, const char *needle) {
    char path[256];
    sk_error err = {0};
    assert_int_equal(sk_store_path(st, "bad", path, sizeof path, &err), SK_OK);
    assert_int_equal(sk_context_save(c, path, rec, len, &err), SK_OK);
    sk_session_info info;
    assert_int_equal(sk_store_peek(st, "bad", &info, &err), SK_ERR_FORMAT);
    if (!strstr(err.msg, needle)) fail_msg("peek: '%s' lacks '%s'", err.msg, needle);
    assert_null(info.system);
    sk_context *d = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(d, 0, 2);
    memset(&err, 0, sizeof err);
    assert_int_equal(sk_store_load(st, "bad", d, &info, &err), SK_ERR_FORMAT);
    if (!strstr(err.msg, needle)) fail_msg("load: '%s' lacks '%s'", err.msg, needle);
    assert_null(sk_logits(d)); /* reset */
    assert_null(info.tokens);
    sk_context_free(d);
}

/* a well-formed record: system "hi", tokens {5, 6} */
static size_t good_record(unsigned char *r) {
    uint32_t ver = 1, kind = SK_CHAT_CHATML;
    uint64_t ns = 2, nt = 2;
    int32_t t[2] = {5, 6};
    memcpy(r, "SKSTORE\0", 8);
    memcpy(r + 8, &ver, 4);
    memcpy(r + 12, &kind, 4);
    memcpy(r + 16, &ns, 8);
    memcpy(r + 24, &nt, 8);
    memcpy(r + 32, "hi", 2);
    memcpy(r + 34, t, 8);
    return 42;
}

/* the same as version 2 with a turn count */
static size_t good_record_v2(unsigned char *r, int64_t turns) {
    unsigned char v1[64];
    size_t n = good_record(v1);
    uint32_t ver = 2;
    memcpy(r, v1, 32);
    memcpy(r + 8, &ver, 4);
    memcpy(r + 32, &turns, 8);
    memcpy(r + 40, v1 + 32, n - 32);
    return n + 8;
}

/* A store session costs what it holds: the file is the header, the record
 * and exactly the cache rows later tokens can read (the sinks and the last
 * W - 1 tokens; every row of a dense cache), counted here from the policy's
 * definition, not from the library, whatever the ring's size. */
static void test_store_costs_what_it_holds(void **state) {
    (void)state;
    sk_store *st = store_at("store_cost");
    const sk_hparams *hp = sk_model_hparams(g_m);
    const long per_tok = 2L * hp->n_layer * hp->n_head_kv * hp->head_dim * 2; /* K and V rows, F16 */
    struct {
        sk_cache_policy pol;
        int S, W;
    } cases[] = {{SK_CACHE_SINK, 4, 16}, {SK_CACHE_WINDOW, 0, 16}, {SK_CACHE_DENSE, 0, 16}};
    const int lens[] = {1, 3, 4, 5, 19, 20, 21, 40, 57};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            int n = lens[j], S = cases[k].S, W = cases[k].W;
            if (cases[k].pol == SK_CACHE_DENSE && n > 40) continue;
            sk_context *a = ctx(g_m, cases[k].pol, S, W);
            feed(a, 0, n);
            int32_t tr[64];
            for (int i = 0; i < n; i++) tr[i] = tok(i);
            sk_error err = {0};
            assert_int_equal(sk_store_save(st, "s", a, SK_CHAT_CHATML, "sys", tr, n, &err), SK_OK);
            long cached = cases[k].pol == SK_CACHE_DENSE ? n
                          : (n < S ? n : S) + (n - S > 0 ? (n - S < W - 1 ? n - S : W - 1) : 0);
            char file[128];
            path_of(file, sizeof file, "store_cost/s.session");
            struct stat sb;
            assert_int_equal(stat(file, &sb), 0);
            long want = 192 + 32 + 3 + 4L * n + cached * per_tok;
            if ((long)sb.st_size != want)
                fail_msg("%s %d+%d after %d tokens: %ld bytes, expected %ld (%ld cached)",
                         sk_cache_policy_name(cases[k].pol), S, W, n, (long)sb.st_size, want, cached);
            sk_context *b = ctx(g_m, cases[k].pol, S, W);
            feed(b, 200, 9);
            assert_int_equal(sk_store_load(st, "s", b, NULL, &err), SK_OK);
            if (cases[k].pol != SK_CACHE_DENSE || n + 2 <= 40) {
                feed(a, n, 2);
                feed(b, n, 2);
                assert_memory_equal(sk_logits(a), sk_logits(b), 64 * sizeof(float));
            }
            sk_context_free(a);
            sk_context_free(b);
        }
    sk_store_free(st);
}

static void test_store_corrupt_record(void **state) {
    (void)state;
    sk_store *st = store_at("store_bad");
    sk_context *c = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(c, 0, 10);
    sk_error err = {0};
    assert_int_equal(sk_store_save(st, "seed", c, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_OK);
    unsigned char r[64] = {0}; /* n + 1 below reads r[42] */
    size_t n = good_record(r);
    /* the good one passes: the checks below fail for their own reason */
    char path[256];
    assert_int_equal(sk_store_path(st, "good", path, sizeof path, &err), SK_OK);
    assert_int_equal(sk_context_save(c, path, r, n, &err), SK_OK);
    sk_session_info info;
    assert_int_equal(sk_store_peek(st, "good", &info, &err), SK_OK);
    assert_string_equal(info.system, "hi");
    assert_int_equal(info.tokens[1], 6);
    assert_int_equal(info.n_turns, -1); /* a version-1 record (before turn counts) still loads */
    sk_session_info_free(&info);
    /* version 2: the turn count after the token count */
    n = good_record_v2(r, 3);
    assert_int_equal(sk_context_save(c, path, r, n, &err), SK_OK);
    assert_int_equal(sk_store_peek(st, "good", &info, &err), SK_OK);
    assert_string_equal(info.system, "hi");
    assert_int_equal(info.tokens[1], 6);
    assert_int_equal(info.n_turns, 3);
    sk_session_info_free(&info);
    n = good_record_v2(r, -1);
    expect_bad_record(st, c, r, n, "turn count -1");
    expect_bad_record(st, c, r, 36, "cut short");
    n = good_record_v2(r, 3);
    expect_bad_record(st, c, r, n - 1, "does not hold");

    expect_bad_record(st, c, r, 0, "not a session-store record");        /* no record */
    expect_bad_record(st, c, "0system", 8, "not a session-store record"); /* the old chat blob */
    n = good_record(r);
    r[3] = 'X';
    expect_bad_record(st, c, r, n, "not a session-store record");
    n = good_record(r);
    r[8] = 3;
    expect_bad_record(st, c, r, n, "record version 3");
    n = good_record(r);
    r[12] = SK_CHAT_N_KINDS;
    expect_bad_record(st, c, r, n, "chat kind");
    n = good_record(r);
    expect_bad_record(st, c, r, n - 1, "does not hold");     /* truncated */
    expect_bad_record(st, c, r, n + 1, "does not hold");     /* a byte too many */
    n = good_record(r);
    r[16] = 200;                                              /* system longer than the record */
    expect_bad_record(st, c, r, n, "does not hold");
    n = good_record(r);
    memset(r + 24, 0xff, 8);                                  /* token count that overflows */
    expect_bad_record(st, c, r, n, "does not hold");
    n = good_record(r);
    r[33] = 0;
    expect_bad_record(st, c, r, n, "NUL byte");
    sk_context_free(c);
    sk_store_free(st);
}

static void test_store_token_range(void **state) {
    (void)state;
    sk_store *st = store_at("store_range");
    sk_context *c = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(c, 0, 10);
    sk_error err = {0};
    /* on save: refused, nothing written */
    int32_t tr[3] = {1, 64, 2}; /* the tiny vocabulary has 64 tokens */
    assert_int_equal(sk_store_save(st, "r", c, SK_CHAT_CHATML, NULL, tr, 3, &err), SK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "token 1 is 64"));
    tr[1] = -1;
    assert_int_equal(sk_store_save(st, "r", c, SK_CHAT_CHATML, NULL, tr, 3, &err), SK_ERR_INVALID);
    assert_false(sk_store_exists(st, "r"));
    assert_int_equal(sk_store_save(st, "r", c, SK_CHAT_CHATML, NULL, NULL, 2, &err), SK_ERR_INVALID);
    /* on load: a file that holds one (the directory made by a good save) */
    assert_int_equal(sk_store_save(st, "r", c, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_OK);
    unsigned char r[64] = {0};
    size_t n = good_record(r);
    int32_t big = 64, neg = -5;
    memcpy(r + 38, &big, 4);
    expect_bad_record(st, c, r, n, "token 1 is 64");
    memcpy(r + 34, &neg, 4);
    expect_bad_record(st, c, r, n, "token 0 is -5");
    sk_context_free(c);
    sk_store_free(st);
}

static void test_store_names(void **state) {
    (void)state;
    char longest[SK_STORE_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[SK_STORE_NAME_MAX] = 0;
    assert_true(sk_store_valid_name(longest));
    assert_true(sk_store_valid_name("A-z_09"));
    longest[SK_STORE_NAME_MAX] = 'a';
    longest[SK_STORE_NAME_MAX + 1] = 0;
    const char *bad[] = {"", "../x", "a/b", "..", ".", "a.b", "a b", "x\xc3\xa9", "a\n", longest};
    sk_store *st = store_at("store_names");
    sk_context *c = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(c, 0, 3);
    assert_false(sk_store_valid_name(NULL));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sk_error err = {0};
        sk_session_info info;
        char path[256];
        assert_false(sk_store_valid_name(bad[i]));
        assert_int_equal(sk_store_save(st, bad[i], c, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_ERR_INVALID);
        assert_non_null(strstr(err.msg, "session names are"));
        assert_int_equal(sk_store_peek(st, bad[i], &info, &err), SK_ERR_INVALID);
        assert_int_equal(sk_store_load(st, bad[i], c, NULL, &err), SK_ERR_INVALID);
        assert_int_equal(sk_store_delete(st, bad[i], &err), SK_ERR_INVALID);
        assert_int_equal(sk_store_path(st, bad[i], path, sizeof path, &err), SK_ERR_INVALID);
        assert_false(sk_store_exists(st, bad[i]));
    }
    /* nothing was written anywhere */
    char dir[128];
    path_of(dir, sizeof dir, "store_names");
    struct stat sb;
    assert_int_not_equal(stat(dir, &sb), 0);
    sk_context_free(c);
    sk_store_free(st);
}

/* create an empty file */
static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot create %s", path);
    fclose(f);
}

static void test_store_directory(void **state) {
    (void)state;
    sk_store *st = store_at("store_dir");
    sk_error err = {0};
    char **names = NULL;
    int64_t n = -1;
    assert_int_equal(sk_store_list(st, &names, &n, &err), SK_OK); /* no directory yet */
    assert_int_equal(n, 0);
    sk_store_list_free(names, n);
    sk_session_info info;
    assert_int_equal(sk_store_peek(st, "nothere", &info, &err), SK_ERR_IO);
    assert_non_null(strstr(err.msg, "No such file"));

    sk_context *c = ctx(g_m, SK_CACHE_SINK, 4, 16);
    feed(c, 0, 3);
    assert_int_equal(sk_store_save(st, "zeta", c, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_OK);
    assert_int_equal(sk_store_save(st, "alpha", c, SK_CHAT_CHATML, NULL, NULL, 0, &err), SK_OK);
    assert_int_equal(sk_store_save(st, "alpha", c, SK_CHAT_GEMMA, NULL, NULL, 0, &err), SK_OK); /* replaced */
    assert_int_equal(sk_store_peek(st, "alpha", &info, &err), SK_OK);
    assert_int_equal(info.chat_kind, SK_CHAT_GEMMA);
    sk_session_info_free(&info);
    /* what is not a session is not listed, and cannot be peeked */
    char p[256], q[256];
    path_of(p, sizeof p, "store_dir/notes.txt");
    touch(p);
    path_of(p, sizeof p, "store_dir/a b.session");
    touch(p);
    path_of(p, sizeof p, "store_dir/sub.session");
    assert_int_equal(mkdir(p, 0700), 0);
    path_of(p, sizeof p, "store_dir/link.session");
    path_of(q, sizeof q, "store_dir/zeta.session");
    assert_int_equal(symlink(q, p), 0);
    assert_false(sk_store_exists(st, "sub"));
    assert_int_equal(sk_store_peek(st, "sub", &info, &err), SK_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(sk_store_peek(st, "link", &info, &err), SK_ERR_IO);
    assert_int_equal(sk_store_list(st, &names, &n, &err), SK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "alpha");
    assert_string_equal(names[1], "zeta");
    sk_store_list_free(names, n);

    assert_int_equal(sk_store_delete(st, "alpha", &err), SK_OK);
    assert_false(sk_store_exists(st, "alpha"));
    assert_int_equal(sk_store_delete(st, "alpha", &err), SK_ERR_IO);
    assert_int_equal(sk_store_list(st, &names, &n, &err), SK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "zeta");
    sk_store_list_free(names, n);
    sk_context_free(c);
    sk_store_free(st);
}

static void test_store_remove_stale(void **state) {
    (void)state;
    sk_store *st = store_at("store_stale");
    sk_error err = {0};
    int removed = -1;
    assert_int_equal(sk_store_remove_stale(st, &removed, &err), SK_OK); /* no directory */
    assert_int_equal(removed, 0);
    char dir[128], p[256];
    path_of(dir, sizeof dir, "store_stale");
    assert_int_equal(mkdir(dir, 0700), 0);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    assert_true(dead > 0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    snprintf(p, sizeof p, "%s/s.session.tmp.%d", dir, (int)dead);
    touch(p);
    char live[256];
    snprintf(live, sizeof live, "%s/s.session.tmp.%d", dir, (int)getppid());
    touch(live);
    assert_int_equal(sk_store_remove_stale(st, &removed, &err), SK_OK);
    assert_int_equal(removed, 1);
    struct stat sb;
    assert_int_not_equal(stat(p, &sb), 0);
    assert_int_equal(stat(live, &sb), 0);
    sk_store_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_identical),
        cmocka_unit_test(test_roundtrip_swa),
        cmocka_unit_test(test_rollback_swa),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_crafted_state),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_crafted_history),
        cmocka_unit_test(test_kill9_during_save),
        cmocka_unit_test(test_store_roundtrip),
        cmocka_unit_test(test_store_costs_what_it_holds),
        cmocka_unit_test(test_store_corrupt_record),
        cmocka_unit_test(test_store_token_range),
        cmocka_unit_test(test_store_names),
        cmocka_unit_test(test_store_directory),
        cmocka_unit_test(test_store_remove_stale),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
