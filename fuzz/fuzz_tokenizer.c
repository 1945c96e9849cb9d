/* fuzz_tokenizer.c - libFuzzer entry point for the tokenizer and the
 * detokenizer (sk_tokenize, sk_detokenize, sk_detok_*), on the two real
 * vocabularies the tests use: SmolLM2 (byte-level BPE, "smollm"
 * pre-tokenizer) and Gemma 3 (SentencePiece-style BPE with byte fallback).
 *
 * An input is byte 0, bit 0 the vocabulary (SmolLM2, Gemma 3) and bit 1
 * parse_special, then the text (arbitrary bytes). Every promise of
 * include/sinkllm.h that can be checked from outside is asserted (a
 * violation aborts, which libFuzzer reports as a crash):
 *   - sk_tokenize either succeeds or, only for a byte the vocabulary has no
 *     token for (SmolLM2 lacks six ASCII control bytes), fails with
 *     SK_ERR_INVALID naming that byte, which occurs in the text, or (BPE
 *     decodes an overlong form as written, src/text/tokenizer.c: C0 96 is
 *     U+0016) comes from an invalid sequence of it;
 *   - a call with room and a short call (cap 0 with out NULL for a single
 *     id) agree: the same *n_out, the same leading ids, nothing written
 *     past cap;
 *   - every id is in [0, n_vocab); without parse_special no id is a
 *     CONTROL or UNKNOWN token (text from a user is plain text);
 *   - add_special only wraps the ids in what the vocabulary adds to the
 *     empty text (BOS, EOS);
 *   - sk_detokenize (special tokens rendered exactly when they were
 *     parsed) gives valid UTF-8; for valid UTF-8 text it gives the text
 *     back, except that SentencePiece writes U+2581 for a space, so a
 *     U+2581 in the text comes back as a space (sk_token_to_piece's
 *     contract); for invalid text its output y is a fixed point: y
 *     tokenizes and detokenizes to itself;
 *   - the streaming detokenizer emits whole characters on every push and
 *     the same bytes as sk_detokenize; sk_detokenize truncates as snprintf.
 * The tokenizers are read once, on the first input (fuzz/fuzz_vocab.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vocab.h"
#include "text/unicode.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_tokenizer: %s:%d: %s (vocab %s, parse_special %d)\n", __FILE__,   \
                    __LINE__, #c, fuzz_vocab_name(g_v), g_ps);                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int g_v, g_ps; /* the case being checked, for CHECK's message */
static int32_t g_wrap[FUZZ_N_VOCABS][2]; /* ids add_special puts around "" */
static int64_t g_n_wrap[FUZZ_N_VOCABS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    for (int v = 0; v < FUZZ_N_VOCABS; v++) {
        sk_error err = {0};
        g_v = v;
        CHECK(sk_tokenize(fuzz_vocab(v), "", 0, 1, 0, g_wrap[v], 2, &g_n_wrap[v], &err) == SK_OK);
        CHECK(g_n_wrap[v] <= 2);
    }
    return 0;
}

/* text as the detokenizer gives it back: SPM's U+2581 (E2 96 81) -> ' ' */
static size_t spm_norm(int v, const unsigned char *s, size_t n, unsigned char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (v == FUZZ_GEMMA3 && i + 2 < n && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            out[k++] = ' ';
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

/* Tokenize and check the calling convention. Returns the ids (malloc'ed,
 * *n of them), or NULL when the vocabulary refused a byte of the text. */
static int32_t *tokenize(const sk_tokenizer *t, const unsigned char *x, size_t n, int add, int64_t *n_ids) {
    sk_error err = {0};
    /* at most 3 ids a byte (an invalid byte is U+FFFD, 3 byte tokens) and BOS, EOS */
    const int64_t room = 3 * (int64_t)n + 2;
    int32_t *ids = malloc(sizeof *ids * (size_t)(room + 1));
    CHECK(ids);
    ids[room] = -7;
    int64_t need = -1;
    sk_status st = sk_tokenize(t, (const char *)x, n, add, g_ps, ids, room, &need, &err);
    if (st != SK_OK) {
        unsigned b = 256;
        const char *p = strstr(err.msg, "byte 0x");
        CHECK(st == SK_ERR_INVALID && p && strstr(err.msg, "has no token"));
        CHECK(sscanf(p, "byte 0x%2x", &b) == 1 && b < 256);
        CHECK(memchr(x, (int)b, n) != NULL || !fuzz_utf8_valid(x, n));
        CHECK(need == 0);
        free(ids);
        return NULL;
    }
    CHECK(need >= 0 && need <= room && ids[room] == -7);
    int64_t nv = sk_tokenizer_n_vocab(t);
    for (int64_t i = 0; i < need; i++) CHECK(ids[i] >= 0 && ids[i] < nv);
    if (need > 0) { /* a short buffer: the same count, the same first ids, nothing past cap */
        int64_t cap = need / 2, got = -1;
        int32_t *part = malloc(sizeof *part * (size_t)(cap + 1));
        CHECK(part);
        part[cap] = -7;
        CHECK(sk_tokenize(t, (const char *)x, n, add, g_ps, cap ? part : NULL, cap, &got, &err) == SK_OK);
        CHECK(got == need && part[cap] == -7 && !memcmp(part, ids, sizeof *ids * (size_t)cap));
        free(part);
    }
    *n_ids = need;
    return ids;
}

/* sk_detokenize into a malloc'ed buffer (*len bytes, NUL-terminated), with
 * the snprintf-style truncation and the streaming detokenizer checked
 * against it. */
static char *detokenize(const sk_tokenizer *t, const int32_t *ids, int64_t n, size_t *len) {
    sk_error err = {0};
    size_t need = 0, got = 0, room = 0;
    for (int64_t i = 0; i < n; i++) room += (size_t)sk_token_to_piece(t, ids[i], g_ps, NULL, 0);
    room = 3 * room + 16; /* each byte at worst a U+FFFD */
    char *out = malloc(room + 1);
    CHECK(out);
    out[room] = 'Z';
    CHECK(sk_detokenize(t, ids, n, g_ps, out, room, &need, &err) == SK_OK);
    CHECK(need < room && out[need] == 0 && out[room] == 'Z');
    CHECK(fuzz_utf8_valid((const unsigned char *)out, need));
    {
        size_t cap = need / 2; /* cap 0: only the count */
        char *part = malloc(cap + 1);
        CHECK(part);
        part[cap] = 'Z';
        CHECK(sk_detokenize(t, ids, n, g_ps, cap ? part : NULL, cap, &got, &err) == SK_OK && got == need);
        CHECK(part[cap] == 'Z' && (cap == 0 || (part[cap - 1] == 0 && !memcmp(part, out, cap - 1))));
        free(part);
    }
    /* streaming: whole characters per push, the same bytes in all */
    char *s = malloc(need + 300);
    CHECK(s);
    sk_detok d;
    sk_detok_init(&d);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        CHECK(k <= need);
        size_t w = sk_detok_push(&d, t, ids[i], g_ps, s + k, 264);
        CHECK(fuzz_utf8_valid((const unsigned char *)s + k, w));
        k += w;
    }
    CHECK(k <= need);
    k += sk_detok_flush(&d, s + k, 264);
    CHECK(k == need && !memcmp(s, out, need));
    free(s);
    *len = need;
    return out;
}

static void check_one(int v, int ps, const unsigned char *x, size_t n) {
    g_v = v;
    g_ps = ps;
    const sk_tokenizer *t = fuzz_vocab(v);
    int64_t n_ids = 0, n_add = 0;
    int32_t *ids = tokenize(t, x, n, 0, &n_ids);
    if (!ids) return;
    if (!ps)
        for (int64_t i = 0; i < n_ids; i++) {
            int ty = sk_token_type(t, ids[i]);
            CHECK(ty != SK_TOKTYPE_CONTROL && ty != SK_TOKTYPE_UNKNOWN);
        }
    /* add_special: the same ids inside what it adds to "" */
    int32_t *with = tokenize(t, x, n, 1, &n_add);
    CHECK(with && n_add == n_ids + g_n_wrap[v]);
    int64_t lead = g_n_wrap[v] == 2 ? 1 : g_n_wrap[v] == 1 && g_wrap[v][0] == sk_tokenizer_bos(t) ? 1 : 0;
    for (int64_t i = 0; i < lead; i++) CHECK(with[i] == g_wrap[v][i]);
    for (int64_t i = lead; i < g_n_wrap[v]; i++) CHECK(with[n_ids + i] == g_wrap[v][i]);
    CHECK(!memcmp(with + lead, ids, sizeof *ids * (size_t)n_ids));
    free(with);

    size_t len = 0;
    char *back = detokenize(t, ids, n_ids, &len);
    free(ids);
    unsigned char *want = malloc(n + 1);
    CHECK(want);
    if (fuzz_utf8_valid(x, n)) {
        size_t wn = spm_norm(v, x, n, want);
        CHECK(len == wn && !memcmp(back, want, wn));
    } else { /* the detokenized text is a fixed point */
        int32_t *again = tokenize(t, (const unsigned char *)back, len, 0, &n_ids);
        CHECK(again);
        size_t len2 = 0;
        char *back2 = detokenize(t, again, n_ids, &len2);
        unsigned char *want2 = malloc(len + 1);
        CHECK(want2);
        size_t wn = spm_norm(v, (const unsigned char *)back, len, want2);
        CHECK(len2 == wn && !memcmp(back2, want2, wn));
        free(want2);
        free(back2);
        free(again);
    }
    free(want);
    free(back);
}

/* One input: the case byte, then the text. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    check_one(data[0] & 1, (data[0] >> 1) & 1, data + 1, size - 1);
    return 0;
}
