/* test_bpe_ranks.c - BPE merge ranks on a five-token vocabulary: the
 * lowest rank merges first, and a merge listed twice keeps its first
 * (lowest) rank, as llama.cpp's bpe_ranks does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "text/tokenizer.h"

static void expect(sk_str *merges, int n_merges, const char *text, const int32_t *want, int n_want) {
    static sk_str toks[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"ab", 2}, {"bc", 2}};
    sk_vocab_init in = {.kind = SK_TOK_BPE, .n_vocab = 5, .tokens = toks, .n_merges = n_merges,
                        .merges = merges, .bos = -1, .eos = -1, .eot = -1, .unk = -1, .pad = -1};
    sk_tokenizer *t = NULL;
    sk_error err = {0};
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_OK);
    int32_t ids[8];
    int64_t n = 0;
    assert_int_equal(sk_tokenize(t, text, strlen(text), 0, 0, ids, 8, &n, &err), SK_OK);
    assert_int_equal(n, n_want);
    for (int i = 0; i < n_want; i++) assert_int_equal(ids[i], want[i]);
    sk_tokenizer_free(t);
}

static void test_ranks(void **state) {
    (void)state;
    /* "a b" first: ab c */
    sk_str m1[] = {{"a b", 3}, {"b c", 3}};
    expect(m1, 2, "abc", (int32_t[]){3, 2}, 2);
    /* "b c" first: a bc */
    sk_str m2[] = {{"b c", 3}, {"a b", 3}};
    expect(m2, 2, "abc", (int32_t[]){0, 4}, 2);
    /* "a b" listed again after "b c": its first rank (0) stands */
    sk_str m3[] = {{"a b", 3}, {"b c", 3}, {"a b", 3}};
    expect(m3, 3, "abc", (int32_t[]){3, 2}, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
