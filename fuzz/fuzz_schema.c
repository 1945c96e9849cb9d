/* fuzz_schema.c - libFuzzer entry point for the JSON schema translation
 * (sk_json_schema_to_gbnf, sk_grammar_from_json_schema).
 *
 * Input: the schema's JSON text (any bytes). `make fuzz` runs it on
 * fuzz/corpus/schema with fuzz/schema.dict; `make test` replays that
 * corpus (fuzz/replay.c). Asserted (a violation aborts), from
 * include/sinkllm.h:
 *   - translation fails only with SK_ERR_FORMAT or SK_ERR_UNSUPPORTED and
 *     a non-empty message, and an unknown keyword's message names it;
 *   - what it writes compiles, except a schema that only refers to itself
 *     (left recursion, SK_ERR_FORMAT) or one past a limit
 *     (SK_ERR_UNSUPPORTED);
 *   - the compiled grammar runs: a few JSON texts go through a matcher. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkllm.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_schema: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = NULL;
    size_t n = 0;
    sk_error err = {0};
    sk_status st = sk_json_schema_to_gbnf((const char *)data, size, &text, &n, &err);
    if (st) {
        CHECK(!text && (st == SK_ERR_FORMAT || st == SK_ERR_UNSUPPORTED) && err.msg[0]);
        if (strstr(err.msg, "unsupported JSON schema keyword '")) CHECK(strchr(strstr(err.msg, "'") + 1, '\''));
        return 0;
    }
    CHECK(text && strlen(text) == n);
    sk_grammar *g = NULL;
    st = sk_grammar_compile(text, n, &g, &err);
    if (st) {
        if (!(st == SK_ERR_UNSUPPORTED || (st == SK_ERR_FORMAT && strstr(err.msg, "left-recursive"))))
            fprintf(stderr, "fuzz_schema: the translation does not compile: %s\n%s\n", err.msg, text);
        CHECK(st == SK_ERR_UNSUPPORTED || (st == SK_ERR_FORMAT && strstr(err.msg, "left-recursive")));
        free(text);
        return 0;
    }
    static const char *const samples[] = {"{}", "[]", "{\"a\": [1, 2.5e3, \"x\\u00e9\"]}", "null", "\"abc\"", "-0"};
    sk_grammar_matcher *m = NULL;
    CHECK(sk_grammar_matcher_new(g, &m, &err) == SK_OK);
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        sk_grammar_matcher_reset(m);
        (void)sk_grammar_matcher_advance(m, samples[i], strlen(samples[i]));
    }
    sk_grammar_matcher_free(m);
    sk_grammar_free(g);
    free(text);
    return 0;
}
