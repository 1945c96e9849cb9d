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
 *     goes back to the start (accepts() as a fresh matcher's);
 *   - token masks: over a small synthetic SentencePiece vocabulary (every
 *     byte, some words and JSON pieces, partial UTF-8 included), the mask
 *     at the start, halfway and at the end of the text the grammar took
 *     agrees with the brute force (a clone of the matcher takes the
 *     token's bytes or not) on 32 ids drawn per check; the end token is
 *     allowed exactly when the grammar accepts or nothing else is. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkllm.h"
#include "text/tokenizer.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_grammar: %s:%d: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* the synthetic vocabulary: <unk>, </s> (end), 256 byte tokens, words */
static const char *const g_words[] = {"a", "ab", "abc", "b", "c", "x", "xx", "{\"", "\":", "\"", "true", "false",
                                      "null", "12", "0", "-", ".", "[", "]", "{", "}", ",", ", ", "\u2581x", "\u2581",
                                      "\xc3\xa9", "\xc3", "\xa9t", "\xf0\x9f", "\x98\x80", "\\", "\\n", "::=",
                                      "root", " ", "\n", "  "};
#define N_WORDS (sizeof g_words / sizeof g_words[0])
static sk_tokenizer *g_tok;
static sk_token_trie *g_trie;
static int64_t g_nv;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static char bytes[256][8];
    static sk_str tokens[2 + 256 + N_WORDS];
    static int32_t types[2 + 256 + N_WORDS];
    int n = 0;
    tokens[n] = (sk_str){"<unk>", 5}, types[n++] = SK_TOKTYPE_UNKNOWN;
    tokens[n] = (sk_str){"</s>", 4}, types[n++] = SK_TOKTYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[n] = (sk_str){bytes[b], 6}, types[n++] = SK_TOKTYPE_BYTE;
    }
    for (size_t i = 0; i < N_WORDS; i++) tokens[n] = (sk_str){g_words[i], strlen(g_words[i])}, types[n++] = SK_TOKTYPE_NORMAL;
    sk_vocab_init in = {0};
    in.kind = SK_TOK_SPM;
    in.n_vocab = n;
    in.tokens = tokens;
    in.types = types;
    in.bos = in.eot = in.pad = -1;
    in.unk = 0;
    in.eos = 1;
    sk_error err = {0};
    CHECK(sk_tokenizer_new(&in, &g_tok, &err) == SK_OK);
    CHECK(sk_token_trie_new(g_tok, &g_trie, &err) == SK_OK);
    g_nv = n;
    return 0;
}

/* m's mask (the whole walk) against the brute force on 32 ids drawn from
 * seed, the end token and the count (a full brute force clones the matcher
 * 300 times: too slow to fuzz with). */
static void check_mask(sk_grammar_matcher *m, uint32_t seed) {
    uint8_t mask[2 + 256 + N_WORDS];
    char piece[16];
    sk_error err = {0};
    int64_t n_allowed = sk_grammar_mask(m, g_trie, mask), count = 0;
    for (int32_t id = 0; id < g_nv; id++) count += mask[id];
    CHECK(n_allowed == count && !mask[0]);
    for (int k = 0; k < 32; k++) {
        seed = seed * 1664525u + 1013904223u;
        int32_t id = 2 + (int32_t)(seed >> 8) % (int32_t)(g_nv - 2);
        int len = sk_token_to_piece(g_tok, id, 0, piece, sizeof piece);
        CHECK(len > 0 && len < (int)sizeof piece);
        sk_grammar_matcher *c = NULL;
        CHECK(sk_grammar_matcher_clone(m, &c, &err) == SK_OK);
        int want = sk_grammar_matcher_advance(c, piece, (size_t)len);
        sk_grammar_matcher_free(c);
        CHECK(mask[id] == want);
    }
    CHECK(mask[1] == (sk_grammar_matcher_accepts(m) || count == mask[1]));
}

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
    uint32_t seed = (uint32_t)size * 2654435761u + (size ? data[size - 1] : 0);
    check_mask(a, seed); /* where the text stopped, then at the start (the memo was reset) */
    check_mask(b, seed + 1);
    /* the prefix the grammar took, in two calls split anywhere, and a clone */
    sk_grammar_matcher_reset(b);
    CHECK(sk_grammar_matcher_accepts(b) == acc0);
    size_t half = took / 2;
    CHECK(sk_grammar_matcher_advance(b, text, half));
    check_mask(b, seed + 2); /* halfway, with the memo of the walks before */
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
