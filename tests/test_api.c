/* test_api.c - the public API as a program sees it (only sinkllm.h, and the
 * shared test helpers): the model's tokenizer handle, sk_detokenize
 * (round trip, snprintf-style truncation, bad ids), sk_logits_argmax
 * against a plain scan and the greedy sampler, and sk_system_info_get.
 * Tests that need the real model skip when it is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "util_model.h"

static sk_model *model_or_skip(void) {
    sk_model *m = test_model();
    if (!m) {
        print_message("model %s missing: skipped\n", test_model_path());
        skip();
    }
    return m;
}

static void test_tokenizer_handle(void **state) {
    (void)state;
    sk_model *m = model_or_skip();
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    assert_non_null(tok);
    assert_int_equal(sk_tokenizer_n_vocab(tok), sk_model_hparams(m)->n_vocab);
    int32_t eos = sk_tokenizer_eos(tok);
    assert_true(eos >= 0);
    assert_true(sk_token_is_eog(tok, eos));
    int32_t im_end = sk_token_lookup(tok, "<|im_end|>", 10);
    assert_true(im_end >= 0);
    assert_int_equal(sk_token_type(tok, im_end), SK_TOKTYPE_CONTROL);
    assert_int_equal(sk_token_lookup(tok, "no such token text", 18), -1);
}

static void test_detokenize(void **state) {
    (void)state;
    sk_model *m = model_or_skip();
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    const char *text = "Hello, w\xc3\xb6rld! \xf0\x9f\x98\x80 and <|im_end|> typed";
    int32_t ids[64];
    int64_t n = 0;
    sk_error err = {0};
    assert_int_equal(sk_tokenize(tok, text, strlen(text), 0, 0, ids, 64, &n, &err), SK_OK);
    assert_true(n > 8 && n <= 64);
    char buf[256];
    size_t len = 0;
    assert_int_equal(sk_detokenize(tok, ids, n, 0, buf, sizeof buf, &len, &err), SK_OK);
    assert_int_equal(len, strlen(text));
    assert_string_equal(buf, text);

    /* truncated as snprintf: the full length, a NUL-ended prefix */
    char small[6];
    assert_int_equal(sk_detokenize(tok, ids, n, 0, small, sizeof small, &len, &err), SK_OK);
    assert_int_equal(len, strlen(text));
    assert_string_equal(small, "Hello");
    assert_int_equal(sk_detokenize(tok, ids, n, 0, NULL, 0, &len, &err), SK_OK);
    assert_int_equal(len, strlen(text));

    /* a control token renders only when asked */
    int32_t im_end = sk_token_lookup(tok, "<|im_end|>", 10);
    assert_int_equal(sk_detokenize(tok, &im_end, 1, 0, buf, sizeof buf, &len, &err), SK_OK);
    assert_int_equal(len, 0);
    assert_int_equal(sk_detokenize(tok, &im_end, 1, 1, buf, sizeof buf, &len, &err), SK_OK);
    assert_string_equal(buf, "<|im_end|>");

    /* an id out of range names its index */
    ids[3] = (int32_t)sk_tokenizer_n_vocab(tok);
    assert_int_equal(sk_detokenize(tok, ids, n, 0, buf, sizeof buf, &len, &err), SK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "index 3"));
    ids[3] = -1;
    assert_int_equal(sk_detokenize(tok, ids, n, 0, buf, sizeof buf, &len, &err), SK_ERR_INVALID);
}

static void test_logits_argmax(void **state) {
    (void)state;
    sk_model *m = model_or_skip();
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    int64_t n_vocab = sk_tokenizer_n_vocab(tok);
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = 2;
    cp.cache.n_window = 64;
    sk_context *c = NULL;
    sk_error err = {0};
    assert_int_equal(sk_context_new(m, &cp, &c, &err), SK_OK);
    assert_int_equal(sk_logits_argmax(c), -1); /* nothing fed yet */

    sk_sampler_params sp;
    sk_sampler_params_default(&sp);
    sp.temp = 0;
    sp.repeat_last_n = 0;
    sk_sampler *smp = NULL;
    assert_int_equal(sk_sampler_new(&sp, n_vocab, &smp, &err), SK_OK);
    float *copy = malloc(sizeof(float) * (size_t)n_vocab);
    assert_non_null(copy);

    const char *prompt = "The capital of France is";
    int32_t ids[32];
    int64_t n = 0;
    assert_int_equal(sk_tokenize(tok, prompt, strlen(prompt), 1, 0, ids, 32, &n, &err), SK_OK);
    assert_int_equal(sk_decode(c, ids, n, &err), SK_OK);
    for (int step = 0; step < 8; step++) {
        const float *lg = sk_logits(c);
        assert_non_null(lg);
        int32_t best = 0;
        for (int64_t i = 1; i < n_vocab; i++)
            if (lg[i] > lg[best]) best = (int32_t)i;
        assert_int_equal(sk_logits_argmax(c), best);
        memcpy(copy, lg, sizeof(float) * (size_t)n_vocab);
        assert_int_equal(sk_sampler_sample(smp, copy), best);
        assert_int_equal(sk_decode(c, &best, 1, &err), SK_OK);
    }
    sk_context_reset(c);
    assert_int_equal(sk_logits_argmax(c), -1);
    free(copy);
    sk_sampler_free(smp);
    sk_context_free(c);
}

static void test_system_info(void **state) {
    (void)state;
    sk_system_info si;
    memset(&si, 0, sizeof si);
    sk_system_info_get(&si);
    assert_string_equal(si.version, SINKLLM_VERSION);
    assert_true(si.n_cores >= 1);
    assert_non_null(si.isa);
    assert_non_null(si.isa_best);
    assert_non_null(si.isa_note);
    if (!strcmp(si.isa, "amx")) assert_true(si.cpu_amx && si.cpu_avx512vnni && si.cpu_avx2 && *si.isa_note);
    else if (!strcmp(si.isa, "avx512")) assert_true(si.cpu_avx512vnni && si.cpu_avx2);
    else if (!strcmp(si.isa, "avx2")) assert_true(si.cpu_avx2);
    else assert_string_equal(si.isa, "scalar");
    if (si.cpu_avx512vnni) assert_true(si.cpu_avx2);
    if (!getenv("SINKLLM_ISA") && !getenv("SINKLLM_SCALAR")) { /* the best tier, no error */
        assert_null(si.isa_error);
        assert_string_equal(si.isa, si.isa_best);
    }
    sk_system_info_get(NULL); /* a no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_handle),
        cmocka_unit_test(test_detokenize),
        cmocka_unit_test(test_logits_argmax),
        cmocka_unit_test(test_system_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
