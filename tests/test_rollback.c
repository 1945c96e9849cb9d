/* test_rollback.c - sk_context_rollback's limits around a session load, on
 * a tiny random model: a session keeps the rows that taking back up to
 * n_rollback tokens reads again, so right after sk_context_load up to
 * n_rollback tokens can be taken back, with the logits (bit for bit) of a
 * context that never fed them, and no more (in a window not yet full,
 * every token after the sinks); a session saved with fewer
 * rows intact below its window than that (just after a load and a
 * rollback) allows only what it kept; once the cache has moved a full ring
 * on, rollback works as before any load. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/model.h"
#include "sinkllm.h"
#include "util_tiny.h"

enum { S = 4, W = 16, ROLL = 8, BATCH = 4 };

static sk_context *ctx_roll(const sk_model *m, int roll) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = BATCH;
    p.cache.policy = SK_CACHE_SINK;
    p.cache.n_sinks = S;
    p.cache.n_window = W;
    p.cache.n_rollback = roll;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("%s", err.msg);
    return c;
}

static sk_context *ctx(const sk_model *m) { return ctx_roll(m, ROLL); }

static int32_t tok(int i) { return (int32_t)((i * 31 + 7) % 64); }

static void feed(sk_context *c, int from, int n) {
    sk_error err = {0};
    for (int i = from; i < from + n; i++) {
        int32_t t = tok(i);
        assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
    }
}

static void test_rollback_after_load(void **state) {
    (void)state;
    tiny_opts o;
    tiny_defaults(&o);
    uint8_t *buf;
    size_t n;
    tiny_build(&o, &buf, &n);
    sk_model *m = NULL;
    sk_error err = {0};
    assert_int_equal(sk_model_from_span(buf, n, &m, &err), SK_OK);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sk_rollback_%d.session", (int)getpid());

    sk_context *a = ctx(m);
    feed(a, 0, 50); /* well past the window: the ring has wrapped */
    assert_int_equal(sk_context_rollback(a, 2, &err), SK_OK); /* before a save: possible */
    feed(a, 48, 2);
    assert_int_equal(sk_context_save(a, path, NULL, 0, &err), SK_OK);

    int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t row = sizeof(float) * (size_t)nv;
    for (int k = 1; k <= ROLL + 1; k++) {
        sk_context *b = ctx(m);
        assert_int_equal(sk_context_load(b, path, NULL, NULL, &err), SK_OK);
        if (k > ROLL) { /* below the rows the session kept */
            assert_int_equal(sk_context_rollback(b, k, &err), SK_ERR_INVALID);
            sk_context_stats st;
            sk_context_get_stats(b, &st);
            assert_int_equal(st.n_past, 50); /* a refused rollback changes nothing */
            sk_context_free(b);
            break;
        }
        assert_int_equal(sk_context_rollback(b, k, &err), SK_OK);
        int32_t t = 5;
        assert_int_equal(sk_decode(b, &t, 1, &err), SK_OK);
        /* the same bits as a context that never fed the k tokens */
        sk_context *c = ctx(m);
        feed(c, 0, 50 - k);
        assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
        if (memcmp(sk_logits(b), sk_logits(c), row)) fail_msg("rollback of %d after a load: logits differ", k);
        sk_context_free(c);
        sk_context_free(b);
    }

    /* saved again right after a load and a rollback of 5: of the rows
     * below the new window only the 3 that were loaded are known (the
     * window moved down from position 35 to 30, the load kept 27..34) */
    sk_context *b = ctx(m);
    assert_int_equal(sk_context_load(b, path, NULL, NULL, &err), SK_OK);
    assert_int_equal(sk_context_rollback(b, 5, &err), SK_OK);
    assert_int_equal(sk_context_save(b, path, NULL, 0, &err), SK_OK);
    assert_int_equal(sk_context_load(b, path, NULL, NULL, &err), SK_OK);
    assert_int_equal(sk_context_rollback(b, 4, &err), SK_ERR_INVALID);
    assert_int_equal(sk_context_rollback(b, 3, &err), SK_OK);

    /* a full ring (W + BATCH - 1 + ROLL slots) past the load: the whole
     * n_rollback again */
    feed(b, 42, W + BATCH - 1 + ROLL);
    int64_t at = 42 + W + BATCH - 1 + ROLL;
    assert_int_equal(sk_context_rollback(b, ROLL, &err), SK_OK);
    at -= ROLL;
    int32_t t = 5;
    assert_int_equal(sk_decode(b, &t, 1, &err), SK_OK);
    /* the same as a context that fed the same stream without the taken-back tokens */
    sk_context *c = ctx(m);
    feed(c, 0, (int)at);
    assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
    if (memcmp(sk_logits(b), sk_logits(c), row)) fail_msg("rollback a ring after a load: logits differ");

    /* a window not yet full: every token after the sinks can go */
    sk_context *e = ctx(m);
    feed(e, 0, 10);
    assert_int_equal(sk_context_save(e, path, NULL, 0, &err), SK_OK);
    for (int k = 1; k <= 10 - S; k++) {
        assert_int_equal(sk_context_load(e, path, NULL, NULL, &err), SK_OK);
        assert_int_equal(sk_context_rollback(e, k, &err), SK_OK);
        int32_t t5 = 5;
        assert_int_equal(sk_decode(e, &t5, 1, &err), SK_OK);
        sk_context *f = ctx(m);
        feed(f, 0, 10 - k);
        assert_int_equal(sk_decode(f, &t5, 1, &err), SK_OK);
        if (memcmp(sk_logits(e), sk_logits(f), row)) fail_msg("rollback of %d in a window not yet full: logits differ", k);
        sk_context_free(f);
    }
    sk_context_free(e);

    /* without n_rollback a session keeps no rows below its window: the
     * ring's chunk slots allow a rollback before the save, none after */
    sk_context *d = ctx_roll(m, 0);
    feed(d, 0, 50);
    assert_int_equal(sk_context_rollback(d, 2, &err), SK_OK);
    feed(d, 48, 2);
    assert_int_equal(sk_context_save(d, path, NULL, 0, &err), SK_OK);
    assert_int_equal(sk_context_load(d, path, NULL, NULL, &err), SK_OK);
    for (int k = 1; k < BATCH; k++) assert_int_equal(sk_context_rollback(d, k, &err), SK_ERR_INVALID);

    sk_context_free(a);
    sk_context_free(b);
    sk_context_free(c);
    sk_context_free(d);
    unlink(path);
    sk_model_free(m);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback_after_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
