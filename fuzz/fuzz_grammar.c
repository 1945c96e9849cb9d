/* fuzz_grammar.c - libFuzzer entry point for the GBNF compiler and the
 * matcher (sk_grammar_compile, sk_grammar_matcher_*).
 *
 * Input layout: the grammar text up to the first NUL byte, then the text
 * to match (any bytes). `make fuzz` runs it on fuzz/corpus/grammar with
 * fuzz/grammar.dict; `make test` replays that corpus (fuzz/replay.c).
 * Asserted (a violation aborts), from include/sinkllm.h:
 *   - compilation fails only with SK_ERR_FORMAT or SK_ERR_UNSUPPORTED and
 *     a message that says where ("grammar: ..."); it never hangs (the
 *     limits bound the work);
 *   - advancing by the whole text, or byte by byte, reaches the same
 *     verdict at the same byte; a rejected byte leaves the matcher as it
 *     was (accepts() unchanged, and the next allowed bytes still pass);
 *   - a clone taken halfway continues exactly as the original, and reset
 *     goes back to the start (accepts() as a fresh matcher's). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkllm.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_grammar: %s:%d: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How many bytes of text[0..n) m takes one at a time (m advanced by them). */
static size_t bytewise(sk_grammar_matcher *m, const char *text, size_t n) {
    size_t i = 0;
    for (; i < n; i++) {
        int acc = sk_grammar_matcher_accepts(m);
        if (!sk_grammar_matcher_advance(m, text + i, 1)) {
            CHECK(sk_grammar_matcher_accepts(m) == acc);
            break;
        }
    }
    return i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - glen - 1 : 0;
    sk_grammar *g = NULL;
    sk_error err = {0};
    sk_status st = sk_grammar_compile((const char *)data, glen, &g, &err);
    if (st) {
        CHECK(!g && (st == SK_ERR_FORMAT || st == SK_ERR_UNSUPPORTED) && !strncmp(err.msg, "grammar: ", 9));
        return 0;
    }
    CHECK(g);
    sk_grammar_matcher *a = NULL, *b = NULL, *c = NULL;
    CHECK(sk_grammar_matcher_new(g, &a, &err) == SK_OK && sk_grammar_matcher_new(g, &b, &err) == SK_OK);
    int acc0 = sk_grammar_matcher_accepts(a);
    size_t took = bytewise(a, text, tlen);
    int whole = sk_grammar_matcher_advance(b, text, tlen);
    CHECK(whole == (took == tlen));
    if (whole) CHECK(sk_grammar_matcher_accepts(a) == sk_grammar_matcher_accepts(b));
    else CHECK(sk_grammar_matcher_accepts(b) == acc0);
    /* the prefix the grammar took, in two calls split anywhere, and a clone */
    sk_grammar_matcher_reset(b);
    CHECK(sk_grammar_matcher_accepts(b) == acc0);
    size_t half = took / 2;
    CHECK(sk_grammar_matcher_advance(b, text, half));
    CHECK(sk_grammar_matcher_clone(b, &c, &err) == SK_OK);
    CHECK(sk_grammar_matcher_advance(b, text + half, took - half));
    CHECK(sk_grammar_matcher_advance(c, text + half, took - half));
    CHECK(sk_grammar_matcher_accepts(b) == sk_grammar_matcher_accepts(a));
    CHECK(sk_grammar_matcher_accepts(c) == sk_grammar_matcher_accepts(a));
    if (took < tlen) {
        CHECK(!sk_grammar_matcher_advance(c, text + took, 1));
        CHECK(!sk_grammar_matcher_advance(b, text + took, tlen - took));
    }
    sk_grammar_matcher_free(a);
    sk_grammar_matcher_free(b);
    sk_grammar_matcher_free(c);
    sk_grammar_free(g);
    return 0;
}
