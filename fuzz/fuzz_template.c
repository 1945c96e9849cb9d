/* fuzz_template.c - libFuzzer entry point for chat template rendering
 * (sk_chat_render, sk_chat_render_text, sk_chat_render_turn_end) with the
 * real SmolLM2 and Gemma 3 vocabularies, through every chat kind.
 *
 * Input layout:
 *   byte 0   bits 0-2 the kind (sk_chat_kind), bit 3 SK_CHAT_ADD_GEN,
 *            bit 4 SK_CHAT_CONTINUE, bit 5 the vocabulary (SmolLM2,
 *            Gemma 3), bits 6-7 both set: an unknown flag (0x4) as well
 *   then     messages, each a role byte (0 system, 1 user, 2 assistant,
 *            3 "tool"; 0xFF: role user with a NULL content) and its content
 *            up to the next NUL byte (or the end), at most 64 messages.
 * Asserted (a violation aborts), from include/sinkllm.h:
 *   - the status is the one the contract names: SK_ERR_INVALID exactly for
 *     an unknown flag, role or NULL content, and for Llama-2, Mistral and
 *     Gemma a message order other than [system] user assistant user ...;
 *     besides that only SK_ERR_INVALID for a content byte the vocabulary
 *     has no token for (SmolLM2's missing control bytes, or an overlong
 *     form of one in invalid UTF-8);
 *   - the counting call (cap 0), the full call and a short call agree, and
 *     nothing is written past cap (ids and text alike);
 *   - special-token injection: "message content is always tokenized as
 *     plain text". The sequence of special ids (CONTROL or UNKNOWN tokens,
 *     and any token whose text is a template marker of any family) is the
 *     same as that of the same conversation with every content empty: no
 *     content adds, removes or changes a special token;
 *   - every id is in [0, n_vocab); every message content, without its
 *     surrounding whitespace (the templates that strip it), is in the
 *     detokenized prompt (when the content is valid UTF-8; with Gemma's
 *     U+2581 read as a space) and in the prompt text;
 *   - sk_chat_render_turn_end gives special tokens and plain text only.
 * The tokenizers are read once, on the first input (fuzz/fuzz_vocab.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vocab.h"
#include "text/unicode.h"

#define MAX_MSGS 64

static int g_v, g_kind; /* the case being checked, for CHECK's message */

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_template: %s:%d: %s (vocab %s, kind %s)\n", __FILE__, __LINE__,   \
                    #c, fuzz_vocab_name(g_v), sk_chat_kind_name((sk_chat_kind)g_kind));            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* every family's marker texts: a token with one of these texts is special
 * whatever its type, so a USER_DEFINED marker typed into a message counts */
static const char *const g_markers[] = {
    "<|im_start|>", "<|im_end|>",  "[INST]",   "[/INST]",       "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<start_of_turn>", "<end_of_turn>", "<|system|>",
    "<|user|>",     "<|assistant|>", "<|end|>",
};
#define N_MARKERS (sizeof g_markers / sizeof g_markers[0])
static int32_t g_marker_id[FUZZ_N_VOCABS][N_MARKERS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    for (int v = 0; v < FUZZ_N_VOCABS; v++)
        for (size_t i = 0; i < N_MARKERS; i++)
            g_marker_id[v][i] = sk_token_lookup(fuzz_vocab(v), g_markers[i], strlen(g_markers[i]));
    return 0;
}

static int is_special(const sk_tokenizer *t, int32_t id) {
    int ty = sk_token_type(t, id);
    if (ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_UNKNOWN) return 1;
    for (size_t i = 0; i < N_MARKERS; i++)
        if (id == g_marker_id[g_v][i]) return 1;
    return 0;
}

static int role_index(const char *r) {
    if (!r) return -1;
    return !strcmp(r, "system") ? 0 : !strcmp(r, "user") ? 1 : !strcmp(r, "assistant") ? 2 : -1;
}

/* Does the contract accept this conversation? (validate() in chat.c, as
 * include/sinkllm.h states it) */
static int expect_valid(sk_chat_kind k, const sk_chat_msg *m, int n, int flags) {
    if (flags & ~(SK_CHAT_ADD_GEN | SK_CHAT_CONTINUE)) return 0;
    for (int i = 0; i < n; i++)
        if (role_index(m[i].role) < 0 || !m[i].content) return 0;
    if (k != SK_CHAT_LLAMA2 && k != SK_CHAT_MISTRAL && k != SK_CHAT_GEMMA) return 1;
    int first = n > 0 && role_index(m[0].role) == 0;
    if (first && n == 1) return 0;
    for (int i = first; i < n; i++)
        if (role_index(m[i].role) != ((i - first) % 2 == 0 ? 1 : 2)) return 0;
    return 1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* s without its surrounding ASCII whitespace: *len bytes from the result */
static const char *core(const char *s, size_t *len) {
    size_t n = strlen(s);
    while (n > 0 && is_ws(*s)) s++, n--;
    while (n > 0 && is_ws(s[n - 1])) n--;
    *len = n;
    return s;
}

/* Gemma's detokenizer reads U+2581 as a space: compare in that form */
static size_t norm(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (g_v == FUZZ_GEMMA3 && i + 2 < n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            out[k++] = ' ';
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

/* Render ids with the calling convention checked. Returns the status;
 * on SK_OK *ids (malloc'ed, *n of them). */
static sk_status render(const sk_tokenizer *t, sk_chat_kind k, const sk_chat_msg *m, int n, int flags,
                        int32_t **ids, int64_t *n_ids, sk_error *err) {
    int64_t need = -1, got = -1;
    sk_status st = sk_chat_render(t, k, m, n, flags, NULL, 0, &need, err);
    if (st != SK_OK) return st;
    int32_t *out = malloc(sizeof *out * (size_t)(need + 1));
    CHECK(out);
    out[need] = -7;
    CHECK(sk_chat_render(t, k, m, n, flags, out, need, &got, err) == SK_OK && got == need && out[need] == -7);
    int64_t nv = sk_tokenizer_n_vocab(t);
    for (int64_t i = 0; i < need; i++) CHECK(out[i] >= 0 && out[i] < nv);
    if (need > 1) {
        int64_t cap = need / 2;
        int32_t *part = malloc(sizeof *part * (size_t)(cap + 1));
        CHECK(part);
        part[cap] = -7;
        CHECK(sk_chat_render(t, k, m, n, flags, part, cap, &got, err) == SK_OK && got == need);
        CHECK(part[cap] == -7 && !memcmp(part, out, sizeof *out * (size_t)cap));
        free(part);
    }
    *ids = out;
    *n_ids = need;
    return SK_OK;
}

/* the special ids of ids, in order (*n of them, into a malloc'ed array) */
static int32_t *specials(const sk_tokenizer *t, const int32_t *ids, int64_t n, int64_t *n_sp) {
    int32_t *sp = malloc(sizeof *sp * (size_t)(n + 1));
    CHECK(sp);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (is_special(t, ids[i])) sp[k++] = ids[i];
    *n_sp = k;
    return sp;
}

static void check_text(sk_chat_kind k, const sk_chat_msg *m, int n, int flags, int valid) {
    size_t need = 0, got = 0;
    sk_error err = {0};
    sk_status st = sk_chat_render_text(k, m, n, flags, NULL, 0, &need, &err);
    CHECK(valid ? st == SK_OK : st == SK_ERR_INVALID && need == 0);
    if (!valid) return;
    char *text = malloc(need + 2);
    CHECK(text);
    text[need + 1] = 'Z';
    CHECK(sk_chat_render_text(k, m, n, flags, text, need + 1, &got, &err) == SK_OK && got == need);
    CHECK(text[need] == 0 && text[need + 1] == 'Z');
    if (need > 0) {
        size_t cap = need / 2 + 1;
        char *part = malloc(cap + 1);
        CHECK(part);
        part[cap] = 'Z';
        CHECK(sk_chat_render_text(k, m, n, flags, part, cap, &got, &err) == SK_OK && got == need);
        CHECK(part[cap - 1] == 0 && part[cap] == 'Z' && !memcmp(part, text, cap - 1));
        free(part);
    }
    for (int i = 0; i < n; i++) {
        size_t cl;
        const char *c = core(m[i].content, &cl);
        CHECK(cl == 0 || memmem(text, need, c, cl));
    }
    free(text);
}

static void check_ids(const sk_tokenizer *t, sk_chat_kind k, const sk_chat_msg *m, int n, int flags, int valid) {
    sk_error err = {0};
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    sk_status st = render(t, k, m, n, flags, &ids, &n_ids, &err);
    if (!valid) {
        CHECK(st == SK_ERR_INVALID);
        return;
    }
    if (st != SK_OK) { /* only a content byte without a token */
        unsigned b = 256;
        const char *p = strstr(err.msg, "byte 0x");
        CHECK(st == SK_ERR_INVALID && p && strstr(err.msg, "has no token"));
        CHECK(sscanf(p, "byte 0x%2x", &b) == 1 && b > 0 && b < 256);
        int found = 0;
        for (int i = 0; i < n && !found; i++) /* or an overlong form of it (fuzz_tokenizer.c) */
            found = strchr(m[i].content, (int)b) || !fuzz_utf8_valid((const unsigned char *)m[i].content, strlen(m[i].content));
        CHECK(found);
        return;
    }
    /* injection: the special ids do not depend on the contents */
    sk_chat_msg empty[MAX_MSGS];
    for (int i = 0; i < n; i++) empty[i] = (sk_chat_msg){m[i].role, ""};
    int32_t *ref = NULL;
    int64_t n_ref = 0, n_sp = 0, n_sp_ref = 0;
    CHECK(render(t, k, empty, n, flags, &ref, &n_ref, &err) == SK_OK);
    int32_t *sp = specials(t, ids, n_ids, &n_sp), *sp_ref = specials(t, ref, n_ref, &n_sp_ref);
    CHECK(n_sp == n_sp_ref && !memcmp(sp, sp_ref, sizeof *sp * (size_t)n_sp));
    free(sp);
    free(sp_ref);
    free(ref);
    /* contents survive: in the detokenized prompt */
    size_t len = 0;
    CHECK(sk_detokenize(t, ids, n_ids, 0, NULL, 0, &len, &err) == SK_OK);
    char *text = malloc(len + 1);
    CHECK(text);
    CHECK(sk_detokenize(t, ids, n_ids, 0, text, len + 1, &len, &err) == SK_OK);
    for (int i = 0; i < n; i++) {
        size_t cl;
        const char *c = core(m[i].content, &cl);
        if (cl == 0 || !fuzz_utf8_valid((const unsigned char *)c, cl)) continue;
        char *want = malloc(cl);
        CHECK(want);
        size_t wl = norm(c, cl, want);
        CHECK(memmem(text, len, want, wl));
        free(want);
    }
    free(text);
    free(ids);
}

/* One input: decode the conversation, render it as the contract says. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const sk_chat_kind k = (sk_chat_kind)(data[0] & 7);
    int flags = (data[0] >> 3) & 3;
    if ((data[0] >> 6) == 3) flags |= 4;
    g_v = (data[0] >> 5) & 1;
    g_kind = (int)k;
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    sk_chat_msg m[MAX_MSGS];
    char *copies[MAX_MSGS];
    int n = 0;
    for (size_t i = 1; i < size && n < MAX_MSGS;) {
        uint8_t r = data[i++];
        const uint8_t *end = memchr(data + i, 0, size - i);
        size_t len = end ? (size_t)(end - (data + i)) : size - i;
        copies[n] = malloc(len + 1);
        CHECK(copies[n]);
        memcpy(copies[n], data + i, len);
        copies[n][len] = 0;
        m[n].role = roles[r == 0xFF ? 1 : r % 4];
        m[n].content = r == 0xFF ? NULL : copies[n];
        n++;
        i += len + 1;
    }
    const sk_tokenizer *t = fuzz_vocab(g_v);
    int valid = expect_valid(k, m, n, flags);
    check_ids(t, k, m, n, flags, valid);
    check_text(k, m, n, flags, valid);
    int32_t end[16];
    int64_t n_end = 0;
    sk_error err = {0};
    CHECK(sk_chat_render_turn_end(t, k, end, 16, &n_end, &err) == SK_OK && n_end >= 1 && n_end <= 16);
    for (int i = 0; i < n; i++) free(copies[i]);
    return 0;
}
