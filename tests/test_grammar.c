/* test_grammar.c - constrained output: the GBNF compiler, the matcher, the
 * JSON schema translation, token masks and the sampler hook.
 *
 * Independent references: hand-written accept/reject tables (what each
 * grammar means is worked out in the comments); for the masks, a brute
 * force over the real SmolLM2 vocabulary: a token is allowed exactly when
 * a clone of the matcher accepts its bytes (the trie walk must agree with
 * that on every id); for the sampler, every drawn token is re-checked by
 * an independent matcher and the text the sampler builds must be a
 * sentence of the grammar. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/grammar.h"
#include "text/sampler.h"
#include "util_model.h"

static sk_grammar *compile(const char *text) {
    sk_grammar *g = NULL;
    sk_error err = {0};
    if (sk_grammar_compile(text, strlen(text), &g, &err)) fail_msg("compile %s: %s", text, err.msg);
    return g;
}

/* 1: the whole of s is a sentence; 0: a prefix only; -1: rejected. */
static int run(const sk_grammar *g, const char *s) {
    sk_grammar_matcher *m = NULL;
    sk_error err = {0};
    assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
    int r = sk_grammar_matcher_advance(m, s, strlen(s)) ? sk_grammar_matcher_accepts(m) : -1;
    sk_grammar_matcher_free(m);
    return r;
}

typedef struct gcase {
    const char *grammar;
    const char *text;
    int want; /* as run() */
} gcase;

static void test_accept_reject(void **state) {
    (void)state;
    static const gcase cases[] = {
        {"root ::= \"ab\" | \"c\"", "ab", 1},
        {"root ::= \"ab\" | \"c\"", "a", 0},
        {"root ::= \"ab\" | \"c\"", "ac", -1},
        {"root ::= \"ab\" | \"c\"", "abc", -1},
        /* x* y+ z? */
        {"root ::= \"x\"* \"y\"+ \"z\"?", "y", 1},
        {"root ::= \"x\"* \"y\"+ \"z\"?", "xxxyyz", 1},
        {"root ::= \"x\"* \"y\"+ \"z\"?", "xxz", -1},
        {"root ::= \"x\"* \"y\"+ \"z\"?", "xx", 0},
        /* counted repetition: 2 to 3 digits */
        {"root ::= [0-9]{2,3}", "1", 0},
        {"root ::= [0-9]{2,3}", "12", 1},
        {"root ::= [0-9]{2,3}", "123", 1},
        {"root ::= [0-9]{2,3}", "1234", -1},
        {"root ::= \"a\"{3}", "aaa", 1},
        {"root ::= \"a\"{3}", "aaaa", -1},
        {"root ::= \"a\"{2,}", "aaaaaaa", 1},
        {"root ::= \"a\"{2,}", "a", 0},
        {"root ::= \"a\"{,2}", "", 1},
        {"root ::= \"a\"{,2}", "aaa", -1},
        /* a repeated literal repeats as a whole */
        {"root ::= \"ab\"{2}", "abab", 1},
        {"root ::= \"ab\"{2}", "abb", -1},
        /* classes: ranges, negation, any */
        {"root ::= [a-cx]+", "abxc", 1},
        {"root ::= [a-cx]+", "abd", -1},
        {"root ::= [^a-z]+", "AB1", 1},
        {"root ::= [^a-z]+", "Ab", -1},
        {"root ::= . .", "\xc3\xa9!", 1},
        /* escapes */
        {"root ::= \"\\x41\\u00e9\\n\\\"\"", "A\xc3\xa9\n\"", 1},
        {"root ::= [\\]\\-]+", "]-]", 1},
        {"root ::= \"\\U0001F600\"", "\xf0\x9f\x98\x80", 1},
        /* groups, references, comments, continuation lines, newlines in groups */
        {"# a comment\nroot ::= item (\",\" item)* # trailing\nitem ::= [a-z]+\n", "ab,c,de", 1},
        {"root ::= \"a\"\n  | \"b\"\n  | \"c\"\n", "c", 1},
        {"root ::= (\n  \"a\" |\n  \"b\"\n)+\n", "abba", 1},
        /* recursion (not left recursion): balanced parentheses */
        {"root ::= p\np ::= \"(\" p* \")\"", "(()(()))", 1},
        {"root ::= p\np ::= \"(\" p* \")\"", "(()", 0},
        {"root ::= p\np ::= \"(\" p* \")\"", "())", -1},
        /* empty alternatives */
        {"root ::= \"\" | \"a\"", "", 1},
        {"root ::= ", "", 1},
        {"root ::= ", "x", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_grammar *g = compile(cases[i].grammar);
        int got = run(g, cases[i].text);
        if (got != cases[i].want)
            fail_msg("grammar %s text \"%s\": got %d, want %d", cases[i].grammar, cases[i].text, got, cases[i].want);
        sk_grammar_free(g);
    }
}

/* A code point split across advance calls: each prefix is viable, the
 * matcher does not accept mid-character, and a byte that cannot continue
 * an allowed character is refused without changing the state. */
static void test_utf8_split(void **state) {
    (void)state;
    sk_grammar *g = compile("root ::= [\\u00e0-\\u00ff] \"\\U0001F600\"");
    sk_grammar_matcher *m = NULL;
    sk_error err = {0};
    assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
    assert_true(sk_grammar_matcher_advance(m, "\xc3", 1));   /* U+00C0..U+00FF: lead C3 */
    assert_false(sk_grammar_matcher_accepts(m));
    assert_false(sk_grammar_matcher_advance(m, "\x80", 1)); /* C3 80 = U+00C0: outside */
    assert_true(sk_grammar_matcher_advance(m, "\xa9", 1));  /* U+00E9 */
    assert_true(sk_grammar_matcher_advance(m, "\xf0\x9f", 2));
    assert_false(sk_grammar_matcher_accepts(m));
    assert_true(sk_grammar_matcher_advance(m, "\x98", 1));
    assert_true(sk_grammar_matcher_advance(m, "\x80", 1));
    assert_true(sk_grammar_matcher_accepts(m));
    /* a lead byte whose characters the class cannot contain is refused at once */
    sk_grammar_matcher_reset(m);
    assert_false(sk_grammar_matcher_advance(m, "\xe2", 1)); /* U+2000.. are not in [à-ÿ] */
    assert_false(sk_grammar_matcher_advance(m, "a", 1));
    /* F0 starts only U+10000 and up (the bits it carries are all zero):
     * not viable where only ASCII may come */
    sk_grammar *ascii = compile("root ::= [\\x00-\\x7f]");
    sk_grammar_matcher *am = NULL;
    assert_int_equal(sk_grammar_matcher_new(ascii, &am, &err), SK_OK);
    assert_false(sk_grammar_matcher_advance(am, "\xf0", 1));
    assert_false(sk_grammar_matcher_advance(am, "\xc2", 1));
    sk_grammar_matcher_free(am);
    sk_grammar_free(ascii);
    /* invalid UTF-8: overlong, surrogate, past U+10FFFF */
    sk_grammar *any = compile("root ::= .*");
    sk_grammar_matcher *a = NULL;
    assert_int_equal(sk_grammar_matcher_new(any, &a, &err), SK_OK);
    assert_false(sk_grammar_matcher_advance(a, "\xc0\x80", 2));
    assert_false(sk_grammar_matcher_advance(a, "\xed\xa0\x80", 3));
    assert_false(sk_grammar_matcher_advance(a, "\xf4\x90\x80\x80", 4));
    assert_true(sk_grammar_matcher_advance(a, "ok \xe2\x82\xac", 6));
    assert_true(sk_grammar_matcher_accepts(a));
    sk_grammar_matcher_free(a);
    sk_grammar_free(any);
    sk_grammar_matcher_free(m);
    sk_grammar_free(g);
}

/* A clone continues independently; reset returns to the start. */
static void test_clone_reset(void **state) {
    (void)state;
    sk_grammar *g = compile("root ::= \"ab\" [0-9]+ | \"ac\"");
    sk_grammar_matcher *m = NULL, *c = NULL;
    sk_error err = {0};
    assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
    assert_true(sk_grammar_matcher_advance(m, "a", 1));
    assert_int_equal(sk_grammar_matcher_clone(m, &c, &err), SK_OK);
    assert_true(sk_grammar_matcher_advance(m, "b1", 2));
    assert_true(sk_grammar_matcher_accepts(m));
    assert_true(sk_grammar_matcher_advance(c, "c", 1)); /* the clone did not see "b1" */
    assert_true(sk_grammar_matcher_accepts(c));
    assert_true(sk_grammar_matcher_done(c));
    assert_false(sk_grammar_matcher_done(m));
    sk_grammar_matcher_reset(m);
    assert_false(sk_grammar_matcher_accepts(m));
    assert_true(sk_grammar_matcher_advance(m, "ac", 2));
    sk_grammar_matcher_free(c);
    sk_grammar_matcher_free(m);
    sk_grammar_free(g);
}

/* Long and deep texts: right recursion does not grow the stack (100,000
 * characters through x*), nesting is bounded by SK_GRAMMAR_MAX_DEPTH (a
 * text nested deeper is refused, not a crash). */
static void test_long_and_deep(void **state) {
    (void)state;
    sk_grammar *g = compile("root ::= [a-z]* \"!\"");
    size_t n = 100000;
    char *s = malloc(n + 2);
    memset(s, 'q', n);
    s[n] = '!';
    s[n + 1] = 0;
    assert_int_equal(run(g, s), 1);
    sk_grammar_free(g);
    g = compile("root ::= p\np ::= \"[\" p? \"]\"");
    size_t d = SK_GRAMMAR_MAX_DEPTH / 2;
    char *t = malloc(2 * d + 1);
    memset(t, '[', d);
    memset(t + d, ']', d);
    t[2 * d] = 0;
    assert_int_equal(run(g, t), 1);
    free(t);
    d = SK_GRAMMAR_MAX_DEPTH * 2;
    t = malloc(d + 1);
    memset(t, '[', d);
    t[d] = 0;
    assert_int_equal(run(g, t), -1);
    free(t);
    free(s);
    sk_grammar_free(g);
    /* ambiguity: 4000 optional pairs before "b" keep thousands of parses
     * alive; the step past SK_GRAMMAR_MAX_STEP visits fails (quickly)
     * instead of costing without bound */
    g = compile("root ::= (\"a\"? \"a\"?){4000} \"b\"");
    assert_int_equal(run(g, "ab"), -1);
    sk_grammar_free(g);
    g = compile("root ::= (\"a\"? \"a\"?){20} \"b\"");
    assert_int_equal(run(g, "aaab"), 1);
    sk_grammar_free(g);
}

typedef struct ecase {
    const char *grammar;
    sk_status code;
    const char *msg; /* a part of the message */
} ecase;

static void test_errors(void **state) {
    (void)state;
    char *big = malloc(400);
    snprintf(big, 400, "root ::= \"a\"{%d}", SK_GRAMMAR_MAX_REPEAT + 1);
    char nest[256] = "root ::= ";
    char *wide = malloc(400); /* a 300-character literal 4096 times: 1.2 million elements */
    strcpy(wide, "root ::= \"");
    memset(wide + 10, 'w', 300);
    strcpy(wide + 310, "\"{4096}");
    for (int i = 0; i < SK_GRAMMAR_MAX_NEST + 1; i++) strcat(nest, "(");
    const ecase cases[] = {
        {"", SK_ERR_FORMAT, "no rule named 'root'"},
        {"start ::= \"a\"", SK_ERR_FORMAT, "no rule named 'root'"},
        {"root ::= foo", SK_ERR_FORMAT, "line 1, column 10: undefined rule 'foo'"},
        {"root ::= \"a\"\nroot ::= \"b\"", SK_ERR_FORMAT, "line 2, column 1: rule 'root' is defined twice"},
        {"root ::= \"abc", SK_ERR_FORMAT, "line 1, column 10: unterminated string literal"},
        {"root ::= [a-", SK_ERR_FORMAT, "unterminated character class"},
        {"root ::= [z-a]", SK_ERR_FORMAT, "is before its start"},
        {"root ::= \"\\q\"", SK_ERR_FORMAT, "unknown escape '\\q'"},
        {"root ::= \"\\x4\"", SK_ERR_FORMAT, "needs 2 hex digits"},
        {"root ::= (\"a\"", SK_ERR_FORMAT, "'(' without its ')'"},
        {"root ::= * \"a\"", SK_ERR_FORMAT, "'*' has nothing before it"},
        {"root ::= \"a\"{3,1}", SK_ERR_FORMAT, "the maximum is below the minimum"},
        {"root ::= \"a\" )", SK_ERR_FORMAT, "line 1, column 14: unexpected ')'"},
        {"root = \"a\"", SK_ERR_FORMAT, "expected '::='"},
        {"root ::= \"\xff\"", SK_ERR_FORMAT, "invalid UTF-8"},
        /* left recursion, direct, indirect and through something empty */
        {"root ::= root \"a\" | \"b\"", SK_ERR_FORMAT, "rule 'root' is left-recursive"},
        {"root ::= a\na ::= b \"x\"\nb ::= a | \"y\"", SK_ERR_FORMAT, "is left-recursive"},
        {"root ::= (\"a\"?)*", SK_ERR_FORMAT, "is left-recursive"},
        {"root ::= e root \"x\" | \"y\"\ne ::= \"\"", SK_ERR_FORMAT, "is left-recursive"},
        /* limits */
        {big, SK_ERR_UNSUPPORTED, "repetition count above"},
        {wide, SK_ERR_UNSUPPORTED, "expands to more than"},
        {nest, SK_ERR_UNSUPPORTED, "groups nested deeper than"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_grammar *g = (sk_grammar *)1;
        sk_error err = {0};
        sk_status st = sk_grammar_compile(cases[i].grammar, strlen(cases[i].grammar), &g, &err);
        if (st != cases[i].code || g || !strstr(err.msg, cases[i].msg))
            fail_msg("grammar \"%.60s\": status %d message \"%s\", want %d with \"%s\"", cases[i].grammar, st, err.msg,
                     cases[i].code, cases[i].msg);
    }
    free(big);
    free(wide);
}

/* ---- JSON schema ---------------------------------------------------------- */

typedef struct scase {
    const char *schema;
    const char *json;
    int want; /* as run() */
} scase;

static void test_schema(void **state) {
    (void)state;
    static const scase cases[] = {
        {"{\"type\":\"integer\"}", "-12", 1},
        {"{\"type\":\"integer\"}", "1.5", -1},
        {"{\"type\":\"integer\"}", "012", -1},
        {"{\"type\":\"number\"}", "1.5e-3", 1},
        {"{\"type\":\"boolean\"}", "false", 1},
        {"{\"type\":\"null\"}", "null", 1},
        {"{\"type\":[\"string\",\"null\"]}", "null", 1},
        {"{\"type\":[\"string\",\"null\"]}", "\"a\\u00e9\\n\"", 1},
        {"{\"type\":\"string\",\"nullable\":true}", "null", 1},
        {"{\"type\":\"string\"}", "\"\\ud800\"", -1}, /* a surrogate escape is not one character */
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"a\"", -1},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"\\u00e9\\\"\"", 1},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"", -1},
        {"{\"enum\":[\"red\",1,null,{\"a\":[true]}]}", "{\"a\":[true]}", 1},
        {"{\"enum\":[\"red\",1,null]}", "\"blue\"", -1},
        {"{\"type\":\"string\",\"enum\":[\"red\",1]}", "1", -1}, /* enum filtered by type */
        {"{\"const\":\"x\"}", "\"x\"", 1},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1]", -1},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1, 2,3]", 1},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1,2,3,4]", -1},
        {"{\"type\":\"array\",\"maxItems\":0}", "[ ]", 1},
        {"{\"type\":\"array\"}", "[1,\"a\",{\"b\":null},[]]", 1},
        /* objects: required always, optional in order, nothing else */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
         "{\"b\":\"x\"}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
         "{\"a\":1,\"b\":\"x\"}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
         "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
         "{\"b\":\"x\",\"c\":1}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{}", 1},
        {"{\"type\":\"object\",\"additionalProperties\":false}", "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":1,\"y\":2}", 1},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":\"1\"}", -1},
        {"{\"type\":\"object\"}", "{ \"k\" : [1, {\"z\": false}] }", 1},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}]}", "[1,2]", 1},
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"boolean\"}]}", "\"s\"", -1},
        /* a recursive schema through $defs, and through "#" */
        {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"next\":{\"anyOf\":"
         "[{\"$ref\":\"#/$defs/n\"},{\"type\":\"null\"}]}},\"required\":[\"v\",\"next\"]}},\"$ref\":\"#/$defs/n\"}",
         "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3,\"next\":null}}}", 1},
        {"{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}", "[[],[[[]]]]", 1},
        {"{\"definitions\":{\"x\":{\"type\":\"boolean\"}},\"type\":\"object\",\"properties\":{\"b\":"
         "{\"$ref\":\"#/definitions/x\",\"description\":\"d\"}},\"required\":[\"b\"]}",
         "{\"b\":true}", 1},
        /* bounded whitespace: 20 blanks, not 21 */
        {"{\"type\":\"array\"}", "[                    1]", 1},
        {"{\"type\":\"array\"}", "[                     1]", -1},
        {"{}", "\"anything\"", 1},
        {"true", "[null]", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_grammar *g = NULL;
        sk_error err = {0};
        if (sk_grammar_from_json_schema(cases[i].schema, strlen(cases[i].schema), &g, &err))
            fail_msg("schema %s: %s", cases[i].schema, err.msg);
        int got = run(g, cases[i].json);
        if (got != cases[i].want)
            fail_msg("schema %s json %s: got %d, want %d", cases[i].schema, cases[i].json, got, cases[i].want);
        sk_grammar_free(g);
    }
    /* json_object mode: any object, nothing else */
    sk_grammar *g = NULL;
    sk_error err = {0};
    assert_int_equal(sk_grammar_from_json_schema(NULL, 0, &g, &err), SK_OK);
    assert_int_equal(run(g, "{\"a\": [1, 2]}"), 1);
    assert_int_equal(run(g, "[1]"), -1);
    sk_grammar_free(g);
}

static void test_schema_errors(void **state) {
    (void)state;
    static const struct {
        const char *schema;
        sk_status code;
        const char *msg;
    } cases[] = {
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", SK_ERR_UNSUPPORTED, "unsupported JSON schema keyword 'pattern' (at /)"},
        {"{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"}}}", SK_ERR_UNSUPPORTED,
         "unsupported JSON schema keyword 'format' (at /properties/d)"},
        {"{\"type\":\"integer\",\"minimum\":0}", SK_ERR_UNSUPPORTED, "unsupported JSON schema keyword 'minimum'"},
        {"{\"allOf\":[{}]}", SK_ERR_UNSUPPORTED, "unsupported JSON schema keyword 'allOf'"},
        {"{\"type\":\"array\",\"items\":[{}]}", SK_ERR_UNSUPPORTED, "'items' as an array"},
        {"{\"$ref\":\"http://x/y\"}", SK_ERR_UNSUPPORTED, "only local references"},
        {"{\"$ref\":\"#/$defs/none\"}", SK_ERR_FORMAT, "does not resolve"},
        {"{\"type\":\"strin\"}", SK_ERR_FORMAT, "'type' must be"},
        {"{\"type\":\"string\",\"maxLength\":-1}", SK_ERR_FORMAT, "'maxLength' must be a non-negative integer"},
        {"{\"type\":\"string\",\"maxLength\":100000}", SK_ERR_UNSUPPORTED, "'maxLength' above"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", SK_ERR_FORMAT, "below 'minItems'"},
        {"{\"enum\":[1],\"type\":\"string\"}", SK_ERR_UNSUPPORTED, "'enum' leaves no value"},
        {"{\"type\":\"object\"", SK_ERR_FORMAT, "malformed JSON"},
        {"{\"a\":\"\\ud800\"}", SK_ERR_FORMAT, "lone surrogate"},
        {"false", SK_ERR_UNSUPPORTED, "allows nothing"},
        {"{\"anyOf\":[]}", SK_ERR_FORMAT, "'anyOf' must be a non-empty array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = (char *)1;
        size_t n = 1;
        sk_error err = {0};
        sk_status st = sk_json_schema_to_gbnf(cases[i].schema, strlen(cases[i].schema), &text, &n, &err);
        if (st != cases[i].code || text || !strstr(err.msg, cases[i].msg))
            fail_msg("schema %s: status %d \"%s\", want %d with \"%s\"", cases[i].schema, st, err.msg, cases[i].code,
                     cases[i].msg);
    }
    /* {"$ref":"#"} alone translates but cannot compile: it is left recursion */
    sk_grammar *g = NULL;
    sk_error err = {0};
    assert_int_equal(sk_grammar_from_json_schema("{\"$ref\":\"#\"}", 12, &g, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "left-recursive"));
    /* nesting past the reader's limit */
    char deep[200] = "";
    for (int i = 0; i < 70; i++) strcat(deep, "[");
    assert_int_equal(sk_json_schema_to_gbnf(deep, strlen(deep), (char **)&g, NULL, &err), SK_ERR_UNSUPPORTED);
}

/* ---- token masks and the sampler ---------------------------------------- */

static const sk_tokenizer *tokenizer(void) {
    sk_model *m = test_model();
    return m ? sk_model_tokenizer(m) : NULL;
}

/* The trie walk against the brute force, on every id, in several states. */
static void test_mask_matches_brute_force(void **state) {
    (void)state;
    const sk_tokenizer *tok = tokenizer();
    if (!tok) skip();
    sk_token_trie *t = NULL;
    sk_error err = {0};
    assert_int_equal(sk_token_trie_new(tok, &t, &err), SK_OK);
    const int64_t nv = sk_tokenizer_n_vocab(tok);
    uint8_t *mask = malloc((size_t)nv);
    char piece[1100];
    sk_grammar *g = NULL;
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},"
                         "\"n\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"\\u00e9t\\u00e9\",\"b\"]}}},"
                         "\"required\":[\"name\",\"n\"]}";
    assert_int_equal(sk_grammar_from_json_schema(schema, strlen(schema), &g, &err), SK_OK);
    static const char *const prefixes[] = {"", "{", "{\"name\": \"ab", "{\"name\":\"x\",\"n\":12", "{\"name\":\"x\",\"n\":1,\"tags\":[\"\xc3",
                                           "{\"name\":\"x\",\"n\":1}"};
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        sk_grammar_matcher *m = NULL;
        assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
        assert_true(sk_grammar_matcher_advance(m, prefixes[k], strlen(prefixes[k])));
        int64_t n_allowed = sk_grammar_mask(m, t, mask), count = 0;
        for (int32_t id = 0; id < nv; id++) {
            int want;
            if (sk_token_is_eog(tok, id)) {
                want = sk_grammar_matcher_accepts(m);
            } else {
                int ty = sk_token_type(tok, id);
                int len = sk_token_to_piece(tok, id, 0, piece, sizeof piece);
                want = 0;
                if (ty != SK_TOKTYPE_CONTROL && ty != SK_TOKTYPE_UNKNOWN && ty != SK_TOKTYPE_UNUSED && len > 0) {
                    sk_grammar_matcher *c = NULL;
                    assert_int_equal(sk_grammar_matcher_clone(m, &c, &err), SK_OK);
                    want = sk_grammar_matcher_advance(c, piece, (size_t)len);
                    sk_grammar_matcher_free(c);
                }
            }
            if (want != mask[id]) fail_msg("prefix '%s' token %d: mask %d, brute force %d", prefixes[k], id, mask[id], want);
            count += want;
        }
        assert_int_equal(count, n_allowed);
        assert_true(n_allowed > 0);
        sk_grammar_matcher_free(m);
    }
    /* one matcher through a whole reply, so that the walk's memo and its
     * cache of whole masks are reused across steps (counted string
     * positions, a state that comes back): each step's mask against the
     * brute force, then the step takes the allowed token of that step's
     * chosen index */
    sk_grammar_free(g);
    const char *schema2 = "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":3},\"maxItems\":4}";
    assert_int_equal(sk_grammar_from_json_schema(schema2, strlen(schema2), &g, &err), SK_OK);
    sk_grammar_matcher *m = NULL;
    assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
    for (int step = 0; step < 12 && !sk_grammar_matcher_done(m); step++) {
        int64_t n_allowed = sk_grammar_mask(m, t, mask), pick = (step * 7919) % (n_allowed > 0 ? n_allowed : 1);
        int32_t chosen = -1;
        for (int32_t id = 0; id < nv; id++) {
            int want = 0;
            int ty = sk_token_type(tok, id);
            int len = sk_token_to_piece(tok, id, 0, piece, sizeof piece);
            if (sk_token_is_eog(tok, id)) {
                want = sk_grammar_matcher_accepts(m);
            } else if (ty != SK_TOKTYPE_CONTROL && ty != SK_TOKTYPE_UNKNOWN && ty != SK_TOKTYPE_UNUSED && len > 0) {
                sk_grammar_matcher *c = NULL;
                assert_int_equal(sk_grammar_matcher_clone(m, &c, &err), SK_OK);
                want = sk_grammar_matcher_advance(c, piece, (size_t)len);
                sk_grammar_matcher_free(c);
            }
            if (want != mask[id]) fail_msg("step %d token %d: mask %d, brute force %d", step, id, mask[id], want);
            if (want && !sk_token_is_eog(tok, id) && pick-- == 0) chosen = id;
        }
        if (chosen < 0) break;
        assert_true(sk_grammar_accept_token(m, t, chosen));
    }
    sk_grammar_matcher_free(m);
    free(mask);
    sk_grammar_free(g);
    sk_token_trie_free(t);
}

/* The sampler under a grammar: random logits, temperature 1, every drawn
 * token allowed (checked by an independent matcher on the text), the end
 * token only where the grammar accepts; the text is a sentence at the end. */
static void test_sampler_constrained(void **state) {
    (void)state;
    const sk_tokenizer *tok = tokenizer();
    if (!tok) skip();
    sk_token_trie *t = NULL;
    sk_error err = {0};
    assert_int_equal(sk_token_trie_new(tok, &t, &err), SK_OK);
    const int64_t nv = sk_tokenizer_n_vocab(tok);
    sk_grammar *g = compile("root ::= \"{\\\"ok\\\": \" (\"true\" | \"false\") \", \\\"n\\\": \" [1-9] [0-9]{0,2} \"}\"");
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 1.0f;
    p.top_k = 0;
    p.seed = 7;
    float *logits = malloc(sizeof *logits * (size_t)nv);
    uint64_t x = 12345;
    for (int run_i = 0; run_i < 5; run_i++) {
        sk_sampler *s = NULL;
        sk_grammar_matcher *m = NULL, *check = NULL;
        assert_int_equal(sk_sampler_new(&p, nv, &s, &err), SK_OK);
        assert_int_equal(sk_grammar_matcher_new(g, &m, &err), SK_OK);
        assert_int_equal(sk_grammar_matcher_new(g, &check, &err), SK_OK);
        assert_int_equal(sk_sampler_set_grammar(s, m, t, &err), SK_OK);
        char text[256];
        size_t len = 0;
        int ended = 0;
        for (int step = 0; step < 64 && !ended; step++) {
            for (int64_t i = 0; i < nv; i++) { /* uniform-ish noise: the grammar must do all the work */
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                logits[i] = (float)((x >> 40) % 1000) / 100.0f;
            }
            int32_t id = sk_sampler_sample(s, logits);
            if (sk_token_is_eog(tok, id)) {
                text[len] = 0;
                if (!sk_grammar_matcher_accepts(check)) fail_msg("run %d: end token %d after '%s'", run_i, id, text);
                ended = 1;
                break;
            }
            char piece[64];
            int n = sk_token_to_piece(tok, id, 0, piece, sizeof piece);
            assert_true(n > 0 && len + (size_t)n < sizeof text);
            assert_true(sk_grammar_matcher_advance(check, piece, (size_t)n));
            memcpy(text + len, piece, (size_t)n);
            len += (size_t)n;
        }
        text[len] = 0;
        if (!ended) fail_msg("run %d: no end token after 64 steps: %s", run_i, text);
        assert_int_equal(run(g, text), 1);
        sk_grammar_matcher_free(m);
        sk_grammar_matcher_free(check);
        sk_sampler_free(s);
    }
    free(logits);
    sk_grammar_free(g);
    sk_token_trie_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_reject),
        cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_clone_reset),
        cmocka_unit_test(test_long_and_deep),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_mask_matches_brute_force),
        cmocka_unit_test(test_sampler_constrained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
