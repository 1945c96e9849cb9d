/* test_tokenizer.c - the tokenizer against hand-worked vocabularies and
 * against llama.cpp on the real model.
 *
 *   - UTF-8 and the category table on known code points;
 *   - every pre-tokenizer's split of tricky strings (worked out by hand
 *     from the regexes; cross-checked with llama.cpp when written);
 *   - byte-level BPE and SentencePiece on tiny vocabularies built here,
 *     where the merge order can be followed step by step in the comments;
 *   - special tokens, BOS/EOS, end-of-generation, pieces, the streaming
 *     detokenizer (emoji and CJK split across byte tokens, bad bytes);
 *   - bad input: unknown pre-tokenizer, bad merges, ids out of range,
 *     malformed GGUF metadata (built in memory here);
 *   - with the real model (skipped when missing): tests/golden/tokens.json
 *     (written by llama.cpp) token for token plus the detokenized round
 *     trip, and all of moby-dick.txt (count from llama.cpp, and speed);
 *   - the pre-training experiment's vocabulary (data/vocab4k.gguf, loaded
 *     as sinkllm train --vocab loads it) against tests/golden/vocab4k.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/gguf.h"
#include "text/tokenizer.h"
#include "runtime/vocab.h"
#include "text/unicode.h"
#include "util_model.h"

/* ------------------------------------------------------------------------
 * helpers
 * ---------------------------------------------------------------------- */

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* tokenize into a fixed buffer; fails the test on error */
static int64_t tok_ids(const sk_tokenizer *t, const char *s, int add_special, int parse_special, int32_t *ids,
                       int64_t cap) {
    int64_t n = -1;
    sk_error err = {0};
    sk_status st = sk_tokenize(t, s, strlen(s), add_special, parse_special, ids, cap, &n, &err);
    if (st != SK_OK) fail_msg("sk_tokenize(%s): %s", s, err.msg);
    assert_true(n <= cap);
    return n;
}

static void expect_ids(const sk_tokenizer *t, const char *s, int add_special, int parse_special, const int32_t *want,
                       size_t n_want) {
    int32_t ids[256];
    int64_t n = tok_ids(t, s, add_special, parse_special, ids, N_OF(ids));
    if ((size_t)n != n_want) {
        print_error("text '%s': got %lld tokens:", s, (long long)n);
        for (int64_t i = 0; i < n; i++) print_error(" %d", ids[i]);
        print_error("\n");
    }
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n_want; i++) assert_int_equal(ids[i], want[i]);
}

/* concatenated pieces of ids */
static size_t detok_all(const sk_tokenizer *t, const int32_t *ids, int64_t n, int render_special, char *out, size_t cap) {
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int k = sk_token_to_piece(t, ids[i], render_special, out + o, cap - o);
        assert_true(k >= 0);
        assert_true(o + (size_t)k <= cap);
        o += (size_t)k;
    }
    return o;
}

/* GPT-2 byte encoder (written again here from its definition, so the test
 * does not share the code under test) */
static void gpt2_byte_char(int b, char out[3]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    unsigned cp = (unsigned)b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
        cp = 256u + (unsigned)n;
    }
    memset(out, 0, 3);
    if (cp < 0x80) {
        out[0] = (char)cp;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
    }
}

/* ------------------------------------------------------------------------
 * a tiny byte-level BPE vocabulary: ids 0..255 are the 256 byte tokens in
 * byte order (so byte b has id b), then merged tokens, then specials
 * ---------------------------------------------------------------------- */

enum {
    T_HE = 256, T_LL, T_HELL, T_HELLO, T_SP_W, T_OR, T_SP_WOR, T_LD, T_SP_WORLD, T_EL,
    T_IM_START, T_IM_END, T_TOOL, T_EOT_TEXT, T_BPE_N
};

static char g_bytechars[256][3];
static const char *const bpe_extra[] = {
    "he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld", "\xc4\xa0world", "el",
    "<|im_start|>", "<|im_end|>", "<tool>", "<|endoftext|>",
};
/* rank order: "h e" first, "e l" last, so "hello" never splits as h+el */
static const char *const bpe_merges[] = {
    "h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d", "\xc4\xa0wor ld", "e l",
};

static sk_tokenizer *make_bpe(const char *pre, int add_bos, int add_eos, sk_status want, const char *want_msg) {
    static sk_str toks[T_BPE_N];
    static sk_str merges[N_OF(bpe_merges)];
    static int32_t types[T_BPE_N];
    for (int b = 0; b < 256; b++) {
        gpt2_byte_char(b, g_bytechars[b]);
        toks[b] = (sk_str){g_bytechars[b], strlen(g_bytechars[b])};
        types[b] = SK_TOKTYPE_NORMAL;
    }
    for (size_t i = 0; i < N_OF(bpe_extra); i++) {
        toks[256 + i] = (sk_str){bpe_extra[i], strlen(bpe_extra[i])};
        types[256 + i] = SK_TOKTYPE_NORMAL;
    }
    types[T_IM_START] = types[T_IM_END] = types[T_EOT_TEXT] = SK_TOKTYPE_CONTROL;
    types[T_TOOL] = SK_TOKTYPE_USER_DEFINED;
    for (size_t i = 0; i < N_OF(bpe_merges); i++) merges[i] = (sk_str){bpe_merges[i], strlen(bpe_merges[i])};
    sk_vocab_init in = {
        .kind = SK_TOK_BPE, .pre = {pre, strlen(pre)}, .n_vocab = T_BPE_N, .tokens = toks, .types = types,
        .n_merges = N_OF(bpe_merges), .merges = merges,
        .bos = T_EOT_TEXT, .eos = T_EOT_TEXT, .eot = -1, .unk = -1, .pad = -1,
        .add_bos = add_bos, .add_eos = add_eos,
    };
    sk_tokenizer *t = NULL;
    sk_error err = {0};
    sk_status st = sk_tokenizer_new(&in, &t, &err);
    if (st != want) fail_msg("sk_tokenizer_new(pre=%s): status %d (%s), want %d", pre, st, err.msg, want);
    if (want_msg) assert_non_null(strstr(err.msg, want_msg));
    return t;
}

/* ------------------------------------------------------------------------
 * UTF-8 and categories
 * ---------------------------------------------------------------------- */

static void test_utf8(void **state) {
    (void)state;
    uint32_t cp;
    assert_int_equal(sk_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(sk_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(sk_utf8_decode((const unsigned char *)"\xe4\xb8\xad", 3, &cp), 3);
    assert_int_equal(cp, 0x4E2D);
    assert_int_equal(sk_utf8_decode((const unsigned char *)"\xf0\x9f\x99\x82", 4, &cp), 4);
    assert_int_equal(cp, 0x1F642);
    /* invalid: lone continuation, overlong, surrogate, past U+10FFFF, truncated */
    const char *bad[] = {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe4\xb8", "\xff"};
    for (size_t i = 0; i < N_OF(bad); i++) {
        assert_int_equal(sk_utf8_decode((const unsigned char *)bad[i], strlen(bad[i]), &cp), 1);
        assert_int_equal(cp, SK_CP_INVALID);
    }
    /* check: incomplete prefix -> 0, bad second byte -> -1 */
    assert_int_equal(sk_utf8_check((const unsigned char *)"\xf0\x9f", 2), 0);
    assert_int_equal(sk_utf8_check((const unsigned char *)"\xe4\x41", 2), -1);
    assert_int_equal(sk_utf8_check((const unsigned char *)"\xf0\x9f\x41", 3), -2);
    char buf[4];
    assert_int_equal(sk_utf8_encode(0x1F642, buf), 4);
    assert_memory_equal(buf, "\xf0\x9f\x99\x82", 4);
    assert_int_equal(sk_utf8_encode(0xD800, buf), 0);
    assert_int_equal(sk_utf8_encode(0x110000, buf), 0);
}

static void test_unicode_flags(void **state) {
    (void)state;
    struct { uint32_t cp; unsigned want; } cases[] = {
        {'a', SK_UF_LETTER}, {'Z', SK_UF_LETTER}, {'7', SK_UF_NUMBER}, {' ', SK_UF_SEPARATOR | SK_UF_WHITESPACE},
        {'\n', SK_UF_CONTROL | SK_UF_WHITESPACE}, {'!', SK_UF_PUNCT}, {'$', SK_UF_SYMBOL}, {0xE9, SK_UF_LETTER},
        {0x4E2D, SK_UF_LETTER}, {0x0663, SK_UF_NUMBER}, {0x00B2, SK_UF_NUMBER}, {0x2167, SK_UF_NUMBER},
        {0x0301, SK_UF_MARK}, {0x3000, SK_UF_SEPARATOR | SK_UF_WHITESPACE}, {0x0085, SK_UF_CONTROL | SK_UF_WHITESPACE},
        {0x00A0, SK_UF_SEPARATOR | SK_UF_WHITESPACE}, {0x200B, SK_UF_CONTROL}, {0x1F642, SK_UF_SYMBOL},
        {0x2014, SK_UF_PUNCT}, {0x001C, SK_UF_CONTROL}, /* \x1c is not \s for llama.cpp */
        {0x0378, SK_UF_UNDEFINED}, {0x10FFFF, SK_UF_UNDEFINED}, {SK_CP_INVALID, SK_UF_UNDEFINED},
        {0xE000, SK_UF_CONTROL}, {0x10400, SK_UF_LETTER},
        /* assigned in Unicode 15.0/15.1, as in llama.cpp's table (15.1): CJK
         * extension H, Kawi letter and digit, Kannada mark, ideographic
         * description characters; Garay (16.0) is not assigned there */
        {0x31350, SK_UF_LETTER}, {0x11F04, SK_UF_LETTER}, {0x11F50, SK_UF_NUMBER}, {0x0CF3, SK_UF_MARK},
        {0x2FFC, SK_UF_SYMBOL}, {0x31EF, SK_UF_SYMBOL}, {0x10D40, SK_UF_UNDEFINED},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        if (sk_unicode_flags(cases[i].cp) != cases[i].want)
            fail_msg("U+%04X: flags 0x%x, want 0x%x", cases[i].cp, sk_unicode_flags(cases[i].cp), cases[i].want);
    }
}

/* ------------------------------------------------------------------------
 * pre-tokenizer splits
 * ---------------------------------------------------------------------- */

/* pieces joined with '|' */
static void split_str(const sk_tokenizer *t, const char *s, char *out, size_t cap) {
    size_t ends[256];
    int64_t n = -1;
    sk_error err = {0};
    if (sk_tokenizer_split(t, s, strlen(s), ends, N_OF(ends), &n, &err) != SK_OK) fail_msg("split: %s", err.msg);
    size_t o = 0, start = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t k = ends[i] - start;
        assert_true(ends[i] > start);
        assert_true(o + k + 2 < cap);
        if (i) out[o++] = '|';
        memcpy(out + o, s + start, k);
        o += k;
        start = ends[i];
    }
    assert_int_equal(start, strlen(s));
    out[o] = 0;
}

typedef struct split_case {
    const char *pre, *text, *want;
} split_case;

static void test_pre_split(void **state) {
    (void)state;
    static const split_case cases[] = {
        /* GPT-2: contractions, optional space before letters/numbers/other, \s+(?!\S) keeps the last space for the word */
        {"gpt-2", "Hello world 1234 don't  x\n\ny", "Hello| world| 1234| don|'t| | x|\n|\n|y"},
        {"gpt-2", "I'M he's we're 'll'", "I|'|M| he|'s| we|'re| '|ll|'"}, /* " '" is " ?[^\\s\\p{L}\\p{N}]+" */
        {"gpt-2", "a+=b;  // c", "a|+=|b|;| | //| c"},
        {"gpt-2", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82\xf0\x9f\x99\x82!", "caf\xc3\xa9| \xe4\xb8\xad\xe6\x96\x87| \xf0\x9f\x99\x82\xf0\x9f\x99\x82!"},
        {"gpt-2", "end   ", "end|   "},
        {"gpt-2", "\xe3\x80\x80x \xc2\xa0y", "\xe3\x80\x80|x| |\xc2\xa0|y"}, /* only U+0020 may lead a word */
        /* StarCoder/SmolLM: every digit alone first, then GPT-2 */
        {"smollm", "Hello world 1234 don't  x\n\ny", "Hello| world| |1|2|3|4| don|'t| | x|\n|\n|y"},
        {"starcoder", "x1y22 \xd9\xa3\xd9\xa4", "x|1|y|2|2| |\xd9\xa3|\xd9\xa4"},
        /* Llama 3: case-insensitive contractions, a non-letter may lead a word, digits by three, newlines kept with space */
        {"llama-bpe", "Hello world 1234 don't  x\n\ny", "Hello| world| |123|4| don|'t| | x|\n\n|y"},
        {"llama3", "I'M ok...\n\n  (x) 12345678", "I|'M| ok|...\n\n| | (|x|)| |123|456|78"},
        {"llama3", "a \n b\r\n\r\nc", "a| \n| b|\r\n\r\n|c"},
        /* Unicode 15 characters: Kawi digits are \p{N}, a CJK extension H ideograph \p{L} */
        {"llama3", "x1\xf0\x91\xbd\x90\xf0\x91\xbd\x91\xf0\x91\xbd\x92y",
         "x|1\xf0\x91\xbd\x90\xf0\x91\xbd\x91|\xf0\x91\xbd\x92|y"},
        {"gpt-2", "ab\xf0\xb1\x8d\x90" "cd ?", "ab\xf0\xb1\x8d\x90" "cd| ?"},
        /* Qwen2: Llama 3 with single digits */
        {"qwen2", "x 1234y", "x| |1|2|3|4|y"},
        /* Qwen3.5: marks (U+0301) are letters, and not punctuation */
        {"qwen2", "e\xcc\x81x !\xcc\x81y", "e|\xcc\x81x| !\xcc\x81|y"},
        {"qwen35", "e\xcc\x81x !\xcc\x81y", "e\xcc\x81x| !|\xcc\x81y"},
        /* default: punctuation runs, GPT-2, number runs, then groups of three ASCII digits */
        {"default", "don't 12345 a.b", "don|'|t| |123|45| a|.|b"},
        {"default", "x==y $5", "x|==|y| |$|5"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        sk_tokenizer *t = make_bpe(cases[i].pre, 0, 0, SK_OK, NULL);
        char got[1024];
        split_str(t, cases[i].text, got, sizeof got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("pre %s, text '%s':\n got  '%s'\n want '%s'", cases[i].pre, cases[i].text, got, cases[i].want);
        sk_tokenizer_free(t);
    }
}

/* ------------------------------------------------------------------------
 * byte-level BPE
 * ---------------------------------------------------------------------- */

static void test_bpe_merges(void **state) {
    (void)state;
    sk_tokenizer *t = make_bpe("gpt-2", 0, 0, SK_OK, NULL);
    /* "hello": h e l l o -> (h e)=r0 -> (l l)=r1 -> (he ll)=r2 -> (hell o)=r3; "e l" (r9) never wins */
    expect_ids(t, "hello", 0, 0, (int32_t[]){T_HELLO}, 1);
    /* " world": Ġ w o r l d -> Ġw (r4), or (r5), Ġwor (r6), ld (r7), Ġworld (r8) */
    expect_ids(t, "hello world", 0, 0, (int32_t[]){T_HELLO, T_SP_WORLD}, 2);
    /* two spaces: the first stands alone (\s+(?!\S)), the second joins the word */
    expect_ids(t, "hello  world", 0, 0, (int32_t[]){T_HELLO, ' ', T_SP_WORLD}, 3);
    /* "hel": only "h e" applies, then no merge has "he l" */
    expect_ids(t, "hel", 0, 0, (int32_t[]){T_HE, 'l'}, 2);
    /* "ell": "e l" (r9) and "l l" (r1) compete: l l wins, leaving e + ll */
    expect_ids(t, "ell", 0, 0, (int32_t[]){'e', T_LL}, 2);
    /* as in llama.cpp, a byte that does not start a UTF-8 sequence is
     * U+FFFD (EF BF BD; byte b is token b here), each byte of a truncated
     * sequence too; an overlong form decodes as written ("\xc0\xaf" = '/')
     * and a surrogate stays as it is */
    expect_ids(t, "a\xff", 0, 0, (int32_t[]){'a', 0xef, 0xbf, 0xbd}, 4);
    expect_ids(t, "\xe4\xb8", 0, 0, (int32_t[]){0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd}, 6);
    expect_ids(t, "\xc0\xaf", 0, 0, (int32_t[]){'/'}, 1);
    expect_ids(t, "\xed\xa0\x80", 0, 0, (int32_t[]){0xed, 0xa0, 0x80}, 3);
    /* an emoji is four byte tokens */
    expect_ids(t, "\xf0\x9f\x99\x82", 0, 0, (int32_t[]){0xf0, 0x9f, 0x99, 0x82}, 4);
    expect_ids(t, "", 0, 0, NULL, 0);
    /* pieces: byte-decoded */
    char buf[64];
    assert_int_equal(sk_token_to_piece(t, T_SP_WORLD, 0, buf, sizeof buf), 6);
    assert_memory_equal(buf, " world", 6);
    assert_int_equal(sk_token_to_piece(t, 0xff, 0, buf, sizeof buf), 1);
    assert_int_equal((unsigned char)buf[0], 0xff);
    assert_int_equal(sk_token_to_piece(t, T_BPE_N, 0, buf, sizeof buf), -1);
    assert_int_equal(sk_token_to_piece(t, -1, 0, buf, sizeof buf), -1);
    /* short buffer: the full length comes back, only cap bytes are written */
    memset(buf, 'z', sizeof buf);
    assert_int_equal(sk_token_to_piece(t, T_SP_WORLD, 0, buf, 2), 6);
    assert_memory_equal(buf, " wz", 3);
    assert_int_equal(sk_token_lookup(t, "hello", 5), T_HELLO);
    assert_int_equal(sk_token_lookup(t, "hellox", 6), -1);
    assert_int_equal(sk_tokenizer_n_vocab(t), T_BPE_N);
    sk_tokenizer_free(t);
}

static void test_bpe_cap(void **state) {
    (void)state;
    sk_tokenizer *t = make_bpe("gpt-2", 0, 0, SK_OK, NULL);
    int32_t ids[3] = {-7, -7, -7};
    int64_t n = -1;
    sk_error err = {0};
    /* too small: full count reported, only cap ids written */
    assert_int_equal(sk_tokenize(t, "hello world", 11, 0, 0, ids, 1, &n, &err), SK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], T_HELLO);
    assert_int_equal(ids[1], -7);
    assert_int_equal(sk_tokenize(t, "hello world", 11, 0, 0, NULL, 0, &n, &err), SK_OK);
    assert_int_equal(n, 2);
    /* bad arguments are errors, not crashes */
    assert_int_equal(sk_tokenize(t, NULL, 3, 0, 0, ids, 3, &n, &err), SK_ERR_INVALID);
    assert_int_equal(sk_tokenize(t, "x", 1, 0, 0, ids, -1, &n, &err), SK_ERR_INVALID);
    assert_int_equal(sk_tokenize(t, "x", 1, 0, 0, NULL, 3, &n, &err), SK_ERR_INVALID);
    assert_int_equal(sk_tokenize(NULL, "x", 1, 0, 0, ids, 3, &n, &err), SK_ERR_INVALID);
    assert_int_equal(sk_tokenize(t, "x", 1, 0, 0, ids, 3, NULL, &err), SK_ERR_INVALID);
    sk_tokenizer_free(t);
    sk_tokenizer_free(NULL);
}

static void test_bpe_special(void **state) {
    (void)state;
    sk_tokenizer *t = make_bpe("gpt-2", 1, 1, SK_OK, NULL);
    /* parse_special: control texts become their ids, the rest tokenizes as usual */
    expect_ids(t, "<|im_start|>hello<|im_end|>", 0, 1, (int32_t[]){T_IM_START, T_HELLO, T_IM_END}, 3);
    /* without it "<|im_start|>" is plain text: < | im _ start | > */
    int32_t ids[64];
    int64_t n = tok_ids(t, "<|im_start|>", 0, 0, ids, N_OF(ids));
    assert_true(n > 1);
    for (int64_t i = 0; i < n; i++) assert_true(ids[i] < 256);
    char text[64];
    assert_int_equal(detok_all(t, ids, n, 0, text, sizeof text), 12);
    assert_memory_equal(text, "<|im_start|>", 12);
    /* USER_DEFINED texts are matched either way (as llama.cpp does) */
    expect_ids(t, "a<tool>b", 0, 0, (int32_t[]){'a', T_TOOL, 'b'}, 3);
    /* add_special: BOS and EOS around */
    expect_ids(t, "hello", 1, 0, (int32_t[]){T_EOT_TEXT, T_HELLO, T_EOT_TEXT}, 3);
    expect_ids(t, "", 1, 0, (int32_t[]){T_EOT_TEXT, T_EOT_TEXT}, 2);
    /* control pieces render only on request; user-defined always */
    char buf[32];
    assert_int_equal(sk_token_to_piece(t, T_IM_START, 0, buf, sizeof buf), 0);
    assert_int_equal(sk_token_to_piece(t, T_IM_START, 1, buf, sizeof buf), 12);
    assert_memory_equal(buf, "<|im_start|>", 12);
    assert_int_equal(sk_token_to_piece(t, T_TOOL, 0, buf, sizeof buf), 6);
    /* end of generation: eos, and <|im_end|> (also the detected eot) */
    assert_true(sk_token_is_eog(t, T_EOT_TEXT));
    assert_true(sk_token_is_eog(t, T_IM_END));
    assert_false(sk_token_is_eog(t, T_IM_START));
    assert_false(sk_token_is_eog(t, T_HELLO));
    assert_false(sk_token_is_eog(t, -1));
    assert_false(sk_token_is_eog(t, T_BPE_N));
    assert_int_equal(sk_tokenizer_eot(t), T_IM_END);
    assert_int_equal(sk_tokenizer_bos(t), T_EOT_TEXT);
    assert_int_equal(sk_tokenizer_eos(t), T_EOT_TEXT);
    assert_int_equal(sk_token_type(t, T_IM_START), SK_TOKTYPE_CONTROL);
    assert_int_equal(sk_token_type(t, T_TOOL), SK_TOKTYPE_USER_DEFINED);
    assert_int_equal(sk_token_type(t, 99999), -1);
    sk_tokenizer_free(t);
}

static void test_bpe_bad_init(void **state) {
    (void)state;
    /* unknown pre-tokenizer: unsupported, and the message names it */
    assert_null(make_bpe("no-such-pre", 0, 0, SK_ERR_UNSUPPORTED, "no-such-pre"));
    /* add_bos with no bos */
    static sk_str toks[] = {{"a", 1}, {"b", 1}, {"ab", 2}};
    static sk_str merges_ok[] = {{"a b", 3}};
    sk_vocab_init in = {.kind = SK_TOK_BPE, .n_vocab = 3, .tokens = toks, .n_merges = 1, .merges = merges_ok,
                        .bos = -1, .eos = -1, .eot = -1, .unk = -1, .pad = -1};
    sk_tokenizer *t = NULL;
    sk_error err = {0};
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_OK);
    expect_ids(t, "abba", 0, 0, (int32_t[]){2, 1, 0}, 3); /* default pre; "b" "a" have no merge */
    sk_tokenizer_free(t);
    in.add_bos = 1;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_INVALID);
    assert_null(t);
    in.add_bos = 0;
    /* ids out of range */
    in.eos = 3;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "eos"));
    in.eos = -1;
    in.pad = -2;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_INVALID);
    in.pad = -1;
    /* a merge naming a token that does not exist, and one without a space */
    static sk_str merges_bad[] = {{"a c", 3}};
    static sk_str merges_nospace[] = {{"ab", 2}};
    in.merges = merges_bad;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "merge 0"));
    in.merges = merges_nospace;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_FORMAT);
    in.merges = merges_ok;
    /* duplicate token text */
    static sk_str dup[] = {{"a", 1}, {"b", 1}, {"a", 1}};
    in.tokens = dup;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "duplicate"));
    in.tokens = toks;
    /* bad token type, bad sizes, bad kind */
    static int32_t types[] = {1, 9, 1};
    in.types = types;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_FORMAT);
    in.types = NULL;
    in.n_vocab = 0;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_INVALID);
    in.n_vocab = 3;
    in.kind = (enum sk_tok_kind)7;
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_ERR_UNSUPPORTED);
    assert_int_equal(sk_tokenizer_new(NULL, &t, &err), SK_ERR_INVALID);
    assert_int_equal(sk_tokenizer_new(&in, NULL, &err), SK_ERR_INVALID);
    assert_null(t);
}

/* ------------------------------------------------------------------------
 * SentencePiece
 * ---------------------------------------------------------------------- */

#define SPM_BYTE(b) (3 + (b))
enum {
    S_SP = 259, S_H, S_E, S_L, S_O, S_W, S_R, S_D, S_SP_H, S_SP_HE, S_LL, S_LLO, S_SP_HELLO,
    S_SP_W, S_OR, S_SP_WOR, S_LD, S_SP_WORLD, S_N
};

static sk_tokenizer *make_spm(int add_space_prefix) {
    static char bytes[256][7];
    static sk_str toks[S_N];
    static float scores[S_N];
    static int32_t types[S_N];
    static const char *const words[] = {
        "\xe2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "\xe2\x96\x81h", "\xe2\x96\x81he", "ll", "llo",
        "\xe2\x96\x81hello", "\xe2\x96\x81w", "or", "\xe2\x96\x81wor", "ld", "\xe2\x96\x81world",
    };
    /* higher is merged first: ll (-3) before ▁h (-5); ▁he (-4); llo (-6); ▁hello (-1) */
    static const float word_scores[] = {-10, -20, -20, -20, -20, -20, -20, -20, -5, -4, -3, -6, -1, -5, -3, -4, -3, -1};
    toks[0] = (sk_str){"<unk>", 5};
    toks[1] = (sk_str){"<s>", 3};
    toks[2] = (sk_str){"</s>", 4};
    types[0] = SK_TOKTYPE_UNKNOWN;
    types[1] = types[2] = SK_TOKTYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[SPM_BYTE(b)] = (sk_str){bytes[b], 6};
        types[SPM_BYTE(b)] = SK_TOKTYPE_BYTE;
    }
    for (size_t i = 0; i < N_OF(words); i++) {
        toks[S_SP + i] = (sk_str){words[i], strlen(words[i])};
        scores[S_SP + i] = word_scores[i];
        types[S_SP + i] = SK_TOKTYPE_NORMAL;
    }
    sk_vocab_init in = {
        .kind = SK_TOK_SPM, .n_vocab = S_N, .tokens = toks, .scores = scores, .types = types,
        .bos = 1, .eos = 2, .eot = -1, .unk = 0, .pad = -1, .add_bos = 1, .add_space_prefix = add_space_prefix,
    };
    sk_tokenizer *t = NULL;
    sk_error err = {0};
    if (sk_tokenizer_new(&in, &t, &err) != SK_OK) fail_msg("spm: %s", err.msg);
    return t;
}

static void test_spm(void **state) {
    (void)state;
    sk_tokenizer *t = make_spm(1);
    /* " hello" -> ▁ h e l l o: ll(-3), ▁h(-5), ▁he(-4), llo(-6), ▁hello(-1) */
    expect_ids(t, "hello", 0, 0, (int32_t[]){S_SP_HELLO}, 1);
    expect_ids(t, "hello world", 1, 0, (int32_t[]){1, S_SP_HELLO, S_SP_WORLD}, 3);
    /* unknown characters fall back to bytes: the emoji is four <0xXX> */
    expect_ids(t, "hello\xf0\x9f\x99\x82", 0, 0,
               (int32_t[]){S_SP_HELLO, SPM_BYTE(0xf0), SPM_BYTE(0x9f), SPM_BYTE(0x99), SPM_BYTE(0x82)}, 5);
    /* special tokens: a space prefix follows them too */
    expect_ids(t, "<s>hello</s>", 0, 1, (int32_t[]){1, S_SP_HELLO, 2}, 3);
    /* without parse_special "<s>" is text: ▁ <0x3C> s... and "hello" has no ▁ */
    expect_ids(t, "<s>hello", 0, 0,
               (int32_t[]){S_SP, SPM_BYTE('<'), SPM_BYTE('s'), SPM_BYTE('>'), S_H, S_E, S_LLO}, 7);
    char buf[32];
    assert_int_equal(sk_token_to_piece(t, S_SP_HELLO, 0, buf, sizeof buf), 6);
    assert_memory_equal(buf, " hello", 6);
    assert_int_equal(sk_token_to_piece(t, SPM_BYTE(0x41), 0, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'A');
    assert_int_equal(sk_token_to_piece(t, 1, 0, buf, sizeof buf), 0);
    assert_int_equal(sk_token_to_piece(t, 0, 1, buf, sizeof buf), 5); /* <unk> */
    assert_true(sk_token_is_eog(t, 2));
    assert_false(sk_token_is_eog(t, 1));
    sk_tokenizer_free(t);

    t = make_spm(0);
    /* no prefix: h e l l o -> ll, llo; nothing joins h or e */
    expect_ids(t, "hello", 0, 0, (int32_t[]){S_H, S_E, S_LLO}, 3);
    expect_ids(t, " world", 0, 0, (int32_t[]){S_SP_WORLD}, 1);
    sk_tokenizer_free(t);
}

/* ------------------------------------------------------------------------
 * streaming detokenizer
 * ---------------------------------------------------------------------- */

static void test_detok_stream(void **state) {
    (void)state;
    sk_tokenizer *t = make_spm(1);
    sk_detok d;
    sk_detok_init(&d);
    char out[300];
    /* 🙂 = F0 9F 99 82 one byte token at a time: nothing until complete */
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xf0), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0x9f), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0x99), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0x82), 0, out, sizeof out), 4);
    assert_memory_equal(out, "\xf0\x9f\x99\x82", 4);
    /* 中 = E4 B8 AD, then a word: the word comes out with the completed char */
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xe4), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xb8), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xad), 0, out, sizeof out), 3);
    assert_memory_equal(out, "\xe4\xb8\xad", 3);
    assert_int_equal(sk_detok_push(&d, t, S_SP_HELLO, 0, out, sizeof out), 6);
    assert_memory_equal(out, " hello", 6);
    /* an invalid byte is U+FFFD at once; an interrupted sequence too */
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xff), 0, out, sizeof out), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xe4), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE('A'), 0, out, sizeof out), 4);
    assert_memory_equal(out, "\xef\xbf\xbd" "A", 4);
    /* a tail left at the end is flushed as U+FFFD */
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0xf0), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, SPM_BYTE(0x9f), 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_flush(&d, out, sizeof out), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    assert_int_equal(sk_detok_flush(&d, out, sizeof out), 0);
    /* control tokens: nothing unless rendered */
    assert_int_equal(sk_detok_push(&d, t, 2, 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, t, 2, 1, out, sizeof out), 4);
    assert_int_equal(sk_detok_push(&d, t, 99999, 1, out, sizeof out), 0);
    sk_tokenizer_free(t);
}

/* ------------------------------------------------------------------------
 * GGUF metadata validation (files built in memory)
 * ---------------------------------------------------------------------- */

typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
} gbuf;

static void gb_put(gbuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void gb_u32(gbuf *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gbuf *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_key(gbuf *b, const char *k, uint32_t type) {
    gb_str(b, k);
    gb_u32(b, type);
}

/* variants of a valid 3-token BPE vocabulary */
enum gguf_variant {
    GV_OK, GV_SCORES_STRINGS, GV_TYPES_SHORT, GV_BOS_RANGE, GV_MODEL_BERT, GV_PRE_UNKNOWN, GV_TOKENS_INT,
    GV_NO_MERGES, GV_BOS_STRING, GV_TYPE_VALUE,
};

static sk_status gguf_variant(enum gguf_variant v, sk_error *err, sk_tokenizer **out) {
    gbuf b = {0};
    gb_put(&b, "GGUF", 4);
    gb_u32(&b, 3);
    gb_u64(&b, 0); /* tensors */
    uint64_t n_kv = v == GV_NO_MERGES ? 6 : 7;
    gb_u64(&b, n_kv);
    gb_key(&b, "tokenizer.ggml.model", GGUF_TYPE_STRING);
    gb_str(&b, v == GV_MODEL_BERT ? "bert" : "gpt2");
    gb_key(&b, "tokenizer.ggml.pre", GGUF_TYPE_STRING);
    gb_str(&b, v == GV_PRE_UNKNOWN ? "klingon" : "gpt-2");
    gb_key(&b, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    if (v == GV_TOKENS_INT) {
        gb_u32(&b, GGUF_TYPE_INT32);
        gb_u64(&b, 3);
        for (int i = 0; i < 3; i++) gb_u32(&b, (uint32_t)i);
    } else {
        gb_u32(&b, GGUF_TYPE_STRING);
        gb_u64(&b, 3);
        gb_str(&b, "a");
        gb_str(&b, "b");
        gb_str(&b, "ab");
    }
    if (v != GV_NO_MERGES) {
        gb_key(&b, "tokenizer.ggml.merges", GGUF_TYPE_ARRAY);
        gb_u32(&b, GGUF_TYPE_STRING);
        gb_u64(&b, 1);
        gb_str(&b, "a b");
    }
    gb_key(&b, "tokenizer.ggml.scores", GGUF_TYPE_ARRAY);
    if (v == GV_SCORES_STRINGS) {
        gb_u32(&b, GGUF_TYPE_STRING);
        gb_u64(&b, 3);
        for (int i = 0; i < 3; i++) gb_str(&b, "0");
    } else {
        gb_u32(&b, GGUF_TYPE_FLOAT32);
        gb_u64(&b, 3);
        float f = 0.0f;
        for (int i = 0; i < 3; i++) gb_put(&b, &f, 4);
    }
    gb_key(&b, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY);
    gb_u32(&b, GGUF_TYPE_INT32);
    uint64_t nt = v == GV_TYPES_SHORT ? 2 : 3;
    gb_u64(&b, nt);
    for (uint64_t i = 0; i < nt; i++) gb_u32(&b, v == GV_TYPE_VALUE && i == 1 ? 77 : 1);
    if (v == GV_BOS_STRING) {
        gb_key(&b, "tokenizer.ggml.bos_token_id", GGUF_TYPE_STRING);
        gb_str(&b, "1");
    } else {
        gb_key(&b, "tokenizer.ggml.bos_token_id", GGUF_TYPE_UINT32);
        gb_u32(&b, v == GV_BOS_RANGE ? 3 : 2);
    }
    while (b.n % 32) gb_put(&b, "", 1); /* data section alignment */
    gguf_ctx *g = NULL;
    sk_status st = gguf_parse(b.p, b.n, &g, err);
    if (st != SK_OK) fail_msg("test gguf does not parse: %s", err->msg);
    st = sk_tokenizer_from_gguf(g, out, err);
    gguf_free(g);
    free(b.p);
    return st;
}

static void test_from_gguf_validation(void **state) {
    (void)state;
    sk_error err = {0};
    sk_tokenizer *t = NULL;
    assert_int_equal(gguf_variant(GV_OK, &err, &t), SK_OK);
    assert_non_null(t);
    expect_ids(t, "ab", 0, 0, (int32_t[]){2}, 1);
    assert_int_equal(sk_tokenizer_bos(t), 2);
    sk_tokenizer_free(t);
    struct { enum gguf_variant v; sk_status want; const char *msg; } bad[] = {
        {GV_SCORES_STRINGS, SK_ERR_FORMAT, "tokenizer.ggml.scores"},
        {GV_TYPES_SHORT, SK_ERR_FORMAT, "tokenizer.ggml.token_type"},
        {GV_TYPE_VALUE, SK_ERR_FORMAT, "tokenizer.ggml.token_type"},
        {GV_BOS_RANGE, SK_ERR_FORMAT, "tokenizer.ggml.bos_token_id"},
        {GV_BOS_STRING, SK_ERR_FORMAT, "tokenizer.ggml.bos_token_id"},
        {GV_MODEL_BERT, SK_ERR_UNSUPPORTED, "bert"},
        {GV_PRE_UNKNOWN, SK_ERR_UNSUPPORTED, "klingon"},
        {GV_TOKENS_INT, SK_ERR_FORMAT, "tokenizer.ggml.tokens"},
        {GV_NO_MERGES, SK_ERR_INVALID, "tokenizer.ggml.merges"},
    };
    for (size_t i = 0; i < N_OF(bad); i++) {
        memset(&err, 0, sizeof err);
        t = (sk_tokenizer *)1;
        sk_status st = gguf_variant(bad[i].v, &err, &t);
        if (st != bad[i].want || !strstr(err.msg, bad[i].msg))
            fail_msg("variant %d: status %d '%s', want %d naming '%s'", (int)bad[i].v, st, err.msg, bad[i].want, bad[i].msg);
        assert_null(t);
    }
    assert_int_equal(sk_tokenizer_from_gguf(NULL, &t, &err), SK_ERR_INVALID);
}

/* ------------------------------------------------------------------------
 * the real model (skipped when missing)
 * ---------------------------------------------------------------------- */

typedef struct model_ctx {
    void *map;
    size_t size;
    gguf_ctx *g;
    sk_tokenizer *tok;
} model_ctx;

static model_ctx g_model;

/* map path and build its tokenizer into *m; 0 when done or the file is
 * missing (m->tok stays NULL), -1 on a load error */
static int vocab_load(model_ctx *m, const char *path) {
    if (m->tok) return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
        close(fd);
        return -1;
    }
    m->size = (size_t)sb.st_size;
    m->map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m->map == MAP_FAILED) return -1;
    sk_error err = {0};
    if (gguf_parse(m->map, m->size, &m->g, &err) != SK_OK || sk_tokenizer_from_gguf(m->g, &m->tok, &err) != SK_OK) {
        print_error("%s: %s\n", path, err.msg);
        return -1;
    }
    return 0;
}

static void vocab_unload(model_ctx *m) {
    sk_tokenizer_free(m->tok);
    gguf_free(m->g);
    if (m->map && m->map != MAP_FAILED) munmap(m->map, m->size);
    memset(m, 0, sizeof *m);
}

static int model_setup(void **state) {
    (void)state;
    return vocab_load(&g_model, test_model_path());
}

static int model_teardown(void **state) {
    (void)state;
    vocab_unload(&g_model);
    return 0;
}

#define NEED_MODEL()                                                     \
    do {                                                                 \
        if (!g_model.tok) { /* fails under make test (util_model.h) */  \
            if (test_need_file("the model", test_model_path()))          \
                fail_msg("model %s did not load", test_model_path());    \
            skip();                                                      \
        }                                                                \
    } while (0)

static void test_model_basics(void **state) {
    (void)state;
    NEED_MODEL();
    const sk_tokenizer *t = g_model.tok;
    /* values printed by llama.cpp for SmolLM2-135M-Instruct */
    assert_int_equal(sk_tokenizer_n_vocab(t), 49152);
    assert_int_equal(sk_tokenizer_bos(t), 1);
    assert_int_equal(sk_tokenizer_eos(t), 2);
    expect_ids(t, "Hello world", 0, 0, (int32_t[]){19556, 905}, 2);
    expect_ids(t, "Hello world 1234 don't <|im_start|>", 1, 0,
               (int32_t[]){19556, 905, 216, 33, 34, 35, 36, 1326, 982, 2067, 108, 306, 79, 3738, 108, 46}, 16);
    expect_ids(t, "Hello world 1234 don't <|im_start|>", 1, 1,
               (int32_t[]){19556, 905, 216, 33, 34, 35, 36, 1326, 982, 216, 1}, 11); /* add_bos_token = false */
    assert_int_equal(sk_token_lookup(t, "<|im_start|>", 12), 1);
    assert_true(sk_token_is_eog(t, 2));  /* <|im_end|> = eos */
    assert_true(sk_token_is_eog(t, 0));  /* <|endoftext|> */
    assert_false(sk_token_is_eog(t, 1)); /* <|im_start|> */
    assert_int_equal(sk_tokenizer_eot(t), 2);
}

/* SmolLM2's vocabulary has no token for six control bytes (0x04, 0x06,
 * 0x13, 0x14, 0x16, 0x1d); llama.cpp drops them ("a\x04b" -> "ab"), we
 * refuse the text naming the byte. Every other byte round-trips. */
static void test_model_missing_bytes(void **state) {
    (void)state;
    NEED_MODEL();
    const sk_tokenizer *t = g_model.tok;
    int refused = 0;
    for (int b = 1; b < 128; b++) { /* ASCII: valid UTF-8 alone */
        char text[4] = {'a', (char)b, 'b', 0};
        int32_t ids[8];
        int64_t n = 0;
        sk_error err = {0};
        sk_status st = sk_tokenize(t, text, 3, 0, 0, ids, 8, &n, &err);
        if (st) {
            char want[64];
            snprintf(want, sizeof want, "byte 0x%02x", b);
            assert_int_equal(st, SK_ERR_INVALID);
            assert_non_null(strstr(err.msg, want));
            refused++;
            continue;
        }
        char out[16];
        size_t len = 0;
        assert_int_equal(sk_detokenize(t, ids, n, 0, out, sizeof out, &len, &err), SK_OK);
        assert_int_equal(len, 3);
        assert_memory_equal(out, text, 3);
    }
    assert_int_equal(refused, 6);
}

/* detokenize ids through the streaming detokenizer; every push must end on
 * a character boundary */
static size_t stream_all(const sk_tokenizer *t, const int32_t *ids, int64_t n, int render, char *out, size_t cap) {
    sk_detok d;
    sk_detok_init(&d);
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(cap - o >= 264);
        size_t k = sk_detok_push(&d, t, ids[i], render, out + o, cap - o);
        for (size_t j = 0; j < k;) { /* whole valid characters only */
            int c = sk_utf8_check((const unsigned char *)out + o + j, k - j);
            assert_true(c > 0);
            j += (size_t)c;
        }
        o += k;
    }
    o += sk_detok_flush(&d, out + o, cap - o);
    return o;
}

static void test_model_stream(void **state) {
    (void)state;
    NEED_MODEL();
    const char *texts[] = {
        "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd thumbs", "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe7\xac\xa6\xe6\xb5\x8b\xe8\xaf\x95",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
        "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 family \xf0\x9f\xa4\x96",
    };
    for (size_t i = 0; i < N_OF(texts); i++) {
        int32_t ids[128];
        int64_t n = tok_ids(g_model.tok, texts[i], 0, 0, ids, N_OF(ids));
        char out[4096];
        size_t k = stream_all(g_model.tok, ids, n, 0, out, sizeof out);
        assert_int_equal(k, strlen(texts[i]));
        assert_memory_equal(out, texts[i], k);
    }
    /* at least one of these must actually split a character across tokens */
    int32_t ids[16];
    int64_t n = tok_ids(g_model.tok, "\xf0\x9f\xa4\x96", 0, 0, ids, N_OF(ids));
    assert_true(n > 1);
    sk_detok d;
    sk_detok_init(&d);
    char out[300];
    for (int64_t i = 0; i + 1 < n; i++) assert_int_equal(sk_detok_push(&d, g_model.tok, ids[i], 0, out, sizeof out), 0);
    assert_int_equal(sk_detok_push(&d, g_model.tok, ids[n - 1], 0, out, sizeof out), 4);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long sz = ftell(f);
    rewind(f);
    char *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[sz] = 0;
        *n = (size_t)sz;
    }
    return b;
}

static void test_model_golden(void **state) {
    (void)state;
    NEED_MODEL();
    const char *path = test_data_path("golden/tokens.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (test_need_file("golden/tokens.json", path)) fail_msg("%s: %s", path, jerr.text);
        skip();
    }
    json_t *cases = json_is_array(root) ? root : json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    assert_true(json_array_size(cases) > 0);
    json_t *nv = json_is_object(root) ? json_object_get(root, "n_vocab") : NULL;
    if (nv) assert_int_equal(json_integer_value(nv), sk_tokenizer_n_vocab(g_model.tok));
    size_t n_cases = json_array_size(cases), n_tokens = 0, bad = 0;
    size_t cap = 1 << 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *text = malloc(cap * 8);
    assert_non_null(ids);
    assert_non_null(text);
    for (size_t i = 0; i < n_cases; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, "ids");
        assert_true(json_is_string(jt) && json_is_array(jids));
        const char *s = json_string_value(jt);
        size_t len = json_string_length(jt);
        int special = json_is_true(json_object_get(c, "special"));
        int64_t n = -1;
        sk_error err = {0};
        assert_int_equal(sk_tokenize(g_model.tok, s, len, 0, special, ids, (int64_t)cap, &n, &err), SK_OK);
        assert_true(n <= (int64_t)cap);
        size_t nw = json_array_size(jids);
        int same = (size_t)n == nw;
        for (size_t k = 0; same && k < nw; k++) same = ids[k] == (int32_t)json_integer_value(json_array_get(jids, k));
        if (!same) {
            bad++;
            print_error("golden case %zu ('%.60s', special=%d): %lld ids, llama.cpp %zu\n", i, s, special, (long long)n, nw);
        }
        n_tokens += (size_t)n;
        /* round trip: the pieces give the text back (control tokens as text when parsed from it) */
        size_t k = detok_all(g_model.tok, ids, n, special, text, cap * 8);
        if (k != len || memcmp(text, s, len) != 0) {
            bad++;
            print_error("golden case %zu: detokenized text differs\n", i);
        }
        k = stream_all(g_model.tok, ids, n, special, text, cap * 8);
        if (k != len || memcmp(text, s, len) != 0) {
            bad++;
            print_error("golden case %zu: streamed text differs\n", i);
        }
    }
    print_message("golden: %zu cases, %zu tokens, %zu mismatches\n", n_cases, n_tokens, bad);
    assert_int_equal(bad, 0);
    free(ids);
    free(text);
    json_decref(root);
}

static void test_model_moby(void **state) {
    (void)state;
    NEED_MODEL();
    const char *env = getenv("SINKLLM_CORPUS");
    const char *paths[] = {env ? env : "", test_data_path("../../shared/data/moby-dick.txt"),
                           "/work/shared/data/moby-dick.txt"};
    char *text = NULL;
    size_t len = 0;
    for (size_t i = 0; i < N_OF(paths) && !text; i++)
        if (paths[i][0]) text = read_file(paths[i], &len);
    if (!text) {
        if (test_need_file("moby-dick.txt (SINKLLM_CORPUS or shared/data)", paths[1]))
            fail_msg("moby-dick.txt: cannot read");
        skip();
    }
    int32_t *ids = malloc(len * sizeof *ids);
    assert_non_null(ids);
    int64_t n = -1;
    sk_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(sk_tokenize(g_model.tok, text, len, 0, 0, ids, (int64_t)len, &n, &err), SK_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("moby-dick: %zu bytes -> %lld tokens in %.3f s (%.0f tokens/s)\n", len, (long long)n, dt,
                  (double)n / dt);
    if (len == 1235323) assert_int_equal(n, 321322); /* llama.cpp's count for this file */
    assert_true(dt < 10.0); /* ~0.2 s optimized; generous for sanitizer builds */
    char *back = malloc(len + 1024);
    assert_non_null(back);
    size_t k = detok_all(g_model.tok, ids, n, 0, back, len + 1024);
    assert_int_equal(k, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    free(text);
}

/* ------------------------------------------------------------------------
 * llama.cpp goldens made by scripts/make_tok_golden.py: Gemma 3's
 * SentencePiece vocabulary, and SmolLM2's byte-level BPE vocabulary under
 * each pre-tokenizer
 * ---------------------------------------------------------------------- */

/* hex -> bytes (malloc'ed, NUL-terminated for printing) */
static char *hex_bytes(const char *hex, size_t *n) {
    size_t len = strlen(hex);
    assert_true(len % 2 == 0);
    char *b = malloc(len / 2 + 1);
    assert_non_null(b);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10;
        int lo = hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' : hex[2 * i + 1] - 'a' + 10;
        b[i] = (char)(hi * 16 + lo);
    }
    b[len / 2] = 0;
    *n = len / 2;
    return b;
}

/* 64-bit FNV-1a of ids as int32 little-endian (as the script hashes them) */
static uint64_t ids_fnv1a64(const int32_t *ids, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++) h = (h ^ ((v >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    }
    return h;
}

static int is_valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int c = sk_utf8_check((const unsigned char *)s + i, n - i);
        if (c <= 0) return 0;
        i += (size_t)c;
    }
    return 1;
}

/* The cases of a golden file against t: ids (add_special, parse_special as
 * recorded); llama.cpp's text of those ids ("back_hex", or the input when
 * absent) must equal our pieces put together, and sk_detokenize's text when
 * that text is valid UTF-8 (otherwise ours must be valid UTF-8: it writes
 * U+FFFD).
 * Returns the number of mismatches, each printed. */
static size_t check_cases(const sk_tokenizer *t, json_t *cases, const char *tag, size_t *n_tokens) {
    size_t bad = 0, cap = 1 << 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *text = malloc(cap * 8), *text2 = malloc(cap * 8);
    assert_non_null(ids);
    assert_non_null(text);
    assert_non_null(text2);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *jids = json_object_get(c, "ids");
        assert_true(json_is_array(jids));
        size_t len;
        char *s = hex_bytes(json_string_value(json_object_get(c, "hex")), &len);
        int special = json_is_true(json_object_get(c, "special")), add = json_is_true(json_object_get(c, "add_special"));
        int64_t n = -1;
        sk_error err = {0};
        assert_int_equal(sk_tokenize(t, s, len, add, special, ids, (int64_t)cap, &n, &err), SK_OK);
        assert_true(n <= (int64_t)cap);
        size_t nw = json_array_size(jids);
        int same = (size_t)n == nw;
        for (size_t k = 0; same && k < nw; k++) same = ids[k] == (int32_t)json_integer_value(json_array_get(jids, k));
        if (!same) {
            bad++;
            print_error("%s case %zu ('%.50s', special=%d, add=%d): %lld ids, llama.cpp %zu:\n  ours", tag, i, s,
                        special, add, (long long)n, nw);
            for (int64_t k = 0; k < n && k < 24; k++) print_error(" %d", ids[k]);
            print_error("\n  llama.cpp");
            for (size_t k = 0; k < nw && k < 24; k++) print_error(" %d", (int)json_integer_value(json_array_get(jids, k)));
            print_error("\n");
        }
        *n_tokens += (size_t)n;
        {
            json_t *jb = json_object_get(c, "back_hex");
            size_t wl = len;
            char *want = jb ? hex_bytes(json_string_value(jb), &wl) : memcpy(malloc(len + 1), s, len + 1);
            assert_non_null(want);
            size_t k = detok_all(t, ids, n, special, text, cap * 8);
            if (k != wl || memcmp(text, want, wl) != 0) {
                bad++;
                print_error("%s case %zu: pieces give %zu bytes, llama.cpp %zu\n", tag, i, k, wl);
            }
            size_t k2 = 0;
            assert_int_equal(sk_detokenize(t, ids, n, special, text2, cap * 8, &k2, &err), SK_OK);
            if (is_valid_utf8(want, wl) ? (k2 != wl || memcmp(text2, want, wl) != 0) : !is_valid_utf8(text2, k2)) {
                bad++;
                print_error("%s case %zu: sk_detokenize differs\n", tag, i);
            }
            free(want);
        }
        free(s);
    }
    free(ids);
    free(text);
    free(text2);
    return bad;
}

/* tokenize the whole of moby-dick.txt and compare with the count and hash
 * of llama.cpp's ids in rec; prints the speed */
static void check_moby(const sk_tokenizer *t, json_t *rec, const char *tag) {
    const char *env = getenv("SINKLLM_CORPUS");
    char own[4096]; /* the repository's copy (test_data_path's buffer is static) */
    snprintf(own, sizeof own, "%s", test_data_path("../data/moby-dick.txt"));
    const char *paths[] = {env ? env : "", test_data_path("../../shared/data/moby-dick.txt"),
                           "/work/shared/data/moby-dick.txt", own};
    char *text = NULL;
    size_t len = 0;
    for (size_t i = 0; i < N_OF(paths) && !text; i++)
        if (paths[i][0]) text = read_file(paths[i], &len);
    if (!text) {
        if (test_need_file("moby-dick.txt (SINKLLM_CORPUS or shared/data)", paths[1]))
            fail_msg("moby-dick.txt: cannot read");
        return;
    }
    int32_t *ids = malloc((len + 16) * sizeof *ids);
    assert_non_null(ids);
    int64_t n = -1;
    sk_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(sk_tokenize(t, text, len, 0, 0, ids, (int64_t)len + 16, &n, &err), SK_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("%s moby-dick: %zu bytes -> %lld tokens in %.3f s (%.0f tokens/s)\n", tag, len, (long long)n, dt,
                  (double)n / dt);
    if ((json_int_t)len == json_integer_value(json_object_get(rec, "bytes"))) {
        assert_int_equal(n, json_integer_value(json_object_get(rec, "n_tokens")));
        char h[17];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)ids_fnv1a64(ids, n));
        assert_string_equal(h, json_string_value(json_object_get(rec, "ids_fnv1a64")));
    } else {
        print_message("%s: moby-dick.txt is not the file of the golden (%zu bytes): count not compared\n", tag, len);
    }
    assert_true(dt < 20.0); /* linear time: ~0.3-0.6 s optimized; generous for sanitizers */
    free(ids);
    free(text);
}

static model_ctx g_gemma;
static double g_gemma_load_s;

static const char *gemma_path(void) {
    const char *p = getenv("SINKLLM_GEMMA_MODEL");
    return p && *p ? p : "models/gemma-3-270m-Q4_K_M.gguf";
}

static int gemma_setup(void **state) {
    (void)state;
    if (g_gemma.tok) return 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = vocab_load(&g_gemma, gemma_path());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    g_gemma_load_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return r;
}

static int gemma_teardown(void **state) {
    (void)state;
    vocab_unload(&g_gemma);
    return 0;
}

/* The Gemma model is optional: missing, its tests print "skipped:" and
 * skip, unless SINKLLM_GEMMA_MODEL names it (then missing is a failure). */
#define NEED_GEMMA()                                                                           \
    do {                                                                                       \
        if (!g_gemma.tok) {                                                                    \
            const char *e_ = getenv("SINKLLM_GEMMA_MODEL");                                    \
            if (e_ && *e_) fail_msg("SINKLLM_GEMMA_MODEL=%s: cannot read it", e_);             \
            printf("skipped: Gemma 3 model %s not found (SINKLLM_GEMMA_MODEL)\n", gemma_path()); \
            skip();                                                                            \
        }                                                                                      \
    } while (0)

static json_t *load_golden(const char *rel) {
    const char *path = test_data_path(rel);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root) fail_msg("%s: %s", path, jerr.text);
    return root;
}

/* The pre-training experiment's vocabulary: 4,096 byte-level BPE tokens
 * trained on the corpus (scripts/make_vocab.py), a vocabulary-only GGUF,
 * loaded with sk_model_load_vocab as sinkllm train --vocab loads it. The
 * ids llama.cpp gives (tests/golden/vocab4k.json, by
 * scripts/make_vocab_golden.py) for 260 lines of the corpus (training and
 * held-out parts), 20 runs of lines, 40 paragraphs of moby-dick, the
 * <|endoftext|> control token with and without parse_special, and the
 * count and hash of the whole of moby-dick. Both files are committed: the
 * test needs neither the corpus nor a model. */
static void test_vocab4k_golden(void **state) {
    (void)state;
    const char *gpath = test_data_path("golden/vocab4k.json");
    json_error_t jerr;
    json_t *root = json_load_file(gpath, 0, &jerr);
    if (!root) fail_msg("%s: %s", gpath, jerr.text);
    sk_model *v = NULL;
    sk_error err = {0};
    if (sk_model_load_vocab(test_data_path("../data/vocab4k.gguf"), &v, &err)) fail_msg("%s", err.msg);
    const sk_tokenizer *t = sk_model_tokenizer(v);
    assert_int_equal(json_integer_value(json_object_get(root, "n_vocab")), sk_tokenizer_n_vocab(t));
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases) && json_array_size(cases) > 300);
    size_t n_tokens = 0, bad = check_cases(t, cases, "vocab4k", &n_tokens);
    print_message("vocab4k: %zu cases, %zu tokens, %zu mismatches\n", json_array_size(cases), n_tokens, bad);
    assert_int_equal(bad, 0);
    check_moby(t, json_object_get(root, "moby"), "vocab4k");
    sk_model_free(v);
    json_decref(root);
}

static void test_gemma_golden(void **state) {
    (void)state;
    NEED_GEMMA();
    const sk_tokenizer *t = g_gemma.tok;
    json_t *root = load_golden("golden/gemma3/tokens.json");
    assert_int_equal(sk_tokenizer_n_vocab(t), json_integer_value(json_object_get(root, "n_vocab")));
    assert_int_equal(sk_tokenizer_bos(t), json_integer_value(json_object_get(root, "bos_id")));
    assert_int_equal(sk_tokenizer_eos(t), json_integer_value(json_object_get(root, "eos_id")));
    print_message("gemma vocab: %lld tokens loaded in %.3f s (GGUF parse + tokenizer)\n",
                  (long long)sk_tokenizer_n_vocab(t), g_gemma_load_s);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) > 100);
    size_t n_tokens = 0, bad = check_cases(t, cases, "gemma", &n_tokens);
    /* single pieces: byte tokens, specials, unused, user-defined, ... */
    json_t *pieces = json_object_get(root, "pieces");
    char buf[512];
    for (size_t i = 0; i < json_array_size(pieces); i++) {
        json_t *p = json_array_get(pieces, i);
        int32_t id = (int32_t)json_integer_value(json_object_get(p, "id"));
        for (int special = 0; special < 2; special++) {
            size_t wl;
            char *want = hex_bytes(json_string_value(json_object_get(p, special ? "special_hex" : "plain_hex")), &wl);
            int k = sk_token_to_piece(t, id, special, buf, sizeof buf);
            if (k < 0 || (size_t)k != wl || memcmp(buf, want, wl) != 0) {
                bad++;
                print_error("gemma piece of %d (special=%d): %d bytes, llama.cpp %zu\n", id, special, k, wl);
            }
            free(want);
        }
    }
    print_message("gemma golden: %zu cases, %zu tokens, %zu pieces, %zu mismatches\n", json_array_size(cases), n_tokens,
                  json_array_size(pieces), bad);
    assert_int_equal(bad, 0);
    check_moby(t, json_object_get(root, "moby"), "gemma");
    json_decref(root);
}

/* Each pre-tokenizer on SmolLM2's vocabulary (tokenizer.ggml.pre
 * replaced, as the script's GGUF copies have it) against llama.cpp. */
static void test_pretok_golden(void **state) {
    (void)state;
    NEED_MODEL();
    static const char *const pres[] = {"default", "gpt-2", "smollm", "llama-bpe", "llama3", "dbrx",
                                       "qwen2", "qwen35", "falcon", "stablelm2", "glm4"};
    size_t bad = 0;
    for (size_t p = 0; p < N_OF(pres); p++) {
        char rel[128];
        snprintf(rel, sizeof rel, "golden/pretok/%s.json", pres[p]);
        json_t *root = load_golden(rel);
        assert_string_equal(json_string_value(json_object_get(root, "pre")), pres[p]);
        sk_vocab_init in;
        sk_vocab_buf buf;
        sk_error err = {0};
        assert_int_equal(sk_vocab_read(g_model.g, &in, &buf, &err), SK_OK);
        assert_int_equal(in.n_vocab, json_integer_value(json_object_get(root, "n_vocab")));
        in.pre = (sk_str){pres[p], strlen(pres[p])};
        sk_tokenizer *t = NULL;
        if (sk_tokenizer_new(&in, &t, &err) != SK_OK) fail_msg("pre %s: %s", pres[p], err.msg);
        sk_vocab_buf_free(&buf);
        size_t n_tokens = 0, b = check_cases(t, json_object_get(root, "cases"), pres[p], &n_tokens);
        print_message("pre-tokenizer %-10s %zu cases, %zu tokens, %zu mismatches\n", pres[p],
                      json_array_size(json_object_get(root, "cases")), n_tokens, b);
        bad += b;
        check_moby(t, json_object_get(root, "moby"), pres[p]);
        sk_tokenizer_free(t);
        json_decref(root);
    }
    assert_int_equal(bad, 0);
}

/* Fill-in-the-middle tokens: found by their texts (the first of each
 * category, made CONTROL), overridden by ids the metadata names (the
 * setter sk_tokenizer_from_gguf uses), absent when a text is missing. */
static void test_fim_tokens(void **state) {
    (void)state;
    static sk_str toks[] = {{"a", 1}, {"<fim_prefix>", 12}, {"<PRE>", 5}, {"<fim_suffix>", 12},
                            {"<fim_middle>", 12}, {"<x>", 3}};
    sk_vocab_init in = {.kind = SK_TOK_BPE, .n_vocab = 6, .tokens = toks, .bos = -1, .eos = -1, .eot = -1,
                        .unk = -1, .pad = -1};
    sk_tokenizer *t = NULL;
    sk_error err = {0};
    int32_t ids[3];
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_OK);
    assert_int_equal(sk_tokenizer_fim(t, ids), 1);
    assert_int_equal(ids[0], 1); /* "<fim_prefix>" comes before "<PRE>" in llama.cpp's list */
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);
    assert_int_equal(sk_token_type(t, 4), SK_TOKTYPE_CONTROL);
    assert_false(sk_token_is_eog(t, 1));
    assert_int_equal(sk_tokenizer_add_bos(t), 0);
    sk_tokenizer_set_fim(t, (const int32_t[3]){5, -1, 6}); /* 6 is out of range: kept */
    assert_int_equal(sk_tokenizer_fim(t, ids), 1);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);
    sk_tokenizer_free(t);
    toks[4] = (sk_str){"b", 1}; /* no middle token */
    assert_int_equal(sk_tokenizer_new(&in, &t, &err), SK_OK);
    assert_int_equal(sk_tokenizer_fim(t, ids), 0);
    assert_int_equal(ids[2], -1);
    sk_tokenizer_set_fim(t, (const int32_t[3]){-1, -1, 0});
    assert_int_equal(sk_tokenizer_fim(t, ids), 1);
    sk_tokenizer_free(t);
    toks[4] = (sk_str){"<fim_middle>", 12};
    assert_int_equal(sk_tokenizer_fim(NULL, ids), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fim_tokens),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_unicode_flags),
        cmocka_unit_test(test_pre_split),
        cmocka_unit_test(test_bpe_merges),
        cmocka_unit_test(test_bpe_cap),
        cmocka_unit_test(test_bpe_special),
        cmocka_unit_test(test_bpe_bad_init),
        cmocka_unit_test(test_spm),
        cmocka_unit_test(test_detok_stream),
        cmocka_unit_test(test_from_gguf_validation),
        cmocka_unit_test_setup(test_model_basics, model_setup),
        cmocka_unit_test_setup(test_model_stream, model_setup),
        cmocka_unit_test_setup(test_model_missing_bytes, model_setup),
        cmocka_unit_test_setup(test_model_golden, model_setup),
        cmocka_unit_test_setup(test_pretok_golden, model_setup),
        cmocka_unit_test_setup_teardown(test_model_moby, model_setup, model_teardown),
        cmocka_unit_test_setup_teardown(test_gemma_golden, gemma_setup, gemma_teardown),
        cmocka_unit_test(test_vocab4k_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
