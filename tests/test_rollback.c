/* test_rollback.c - sk_context_rollback's limits around a session load, on
 * a tiny random model: right after sk_context_load no token can be taken
 * back (which ring slots survived is not saved), and once the cache has
 * moved a full ring past the load point, rollback within n_rollback works
 * again and gives the logits of a context that never fed the taken-back
 * tokens. */
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

static sk_context *ctx(const sk_model *m) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = BATCH;
    p.cache.policy = SK_CACHE_SINK;
    p.cache.n_sinks = S;
    p.cache.n_window = W;
    p.cache.n_rollback = ROLL;
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

    sk_context *b = ctx(m);
    assert_int_equal(sk_context_load(b, path, NULL, NULL, &err), SK_OK);
    for (int k = 1; k <= ROLL; k++) /* no slot below the load point is known intact */
        assert_int_equal(sk_context_rollback(b, k, &err), SK_ERR_INVALID);
    sk_context_stats st;
    sk_context_get_stats(b, &st);
    assert_int_equal(st.n_past, 50); /* a refused rollback changes nothing */

    /* a full ring (W + BATCH - 1 + ROLL slots) past the load: possible again */
    feed(b, 50, W + BATCH - 1 + ROLL);
    feed(a, 50, W + BATCH - 1 + ROLL);
    int64_t at = 50 + W + BATCH - 1 + ROLL;
    assert_int_equal(sk_context_rollback(b, 3, &err), SK_OK);
    int32_t t = 5;
    assert_int_equal(sk_decode(b, &t, 1, &err), SK_OK);
    /* the same as a context that fed the same stream without the 3 tokens */
    sk_context *c = ctx(m);
    feed(c, 0, (int)at - 3);
    assert_int_equal(sk_decode(c, &t, 1, &err), SK_OK);
    int64_t nv = sk_model_hparams(m)->n_vocab;
    for (int64_t i = 0; i < nv; i++) assert_true(fabsf(sk_logits(b)[i] - sk_logits(c)[i]) < 1e-5f);

    sk_context_free(a);
    sk_context_free(b);
    sk_context_free(c);
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
