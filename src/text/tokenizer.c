/* tokenizer.c - text <-> token ids (see tokenizer.h).
 *
 * Owns: the token table (texts copied into one arena), a text -> id hash,
 * a (left id, right id) -> (rank, merged id) hash for BPE merges, the
 * special-token list, the end-of-generation flags and a decoded piece per
 * token. All of it is built once in sk_tokenizer_new and read-only after,
 * so one tokenizer may serve any number of threads; sk_tokenize allocates
 * its scratch per call.
 *
 * The behaviour follows llama.cpp (the reference the tests compare with):
 *   - special tokens are cut out of the text first, longest token text
 *     first, each one at every place it occurs; CONTROL and UNKNOWN tokens
 *     only when parse_special is set, USER_DEFINED tokens always (as
 *     llama.cpp and Hugging Face do for non-special added tokens);
 *   - BPE text is split by the pre-tokenizer's regexes, applied one after
 *     the other, each refining the pieces of the previous one; the regexes
 *     are implemented by hand below (same matching order as the regex);
 *   - each piece is merged by lowest merge rank (ties: leftmost);
 *   - SPM merges the highest-scoring adjacent pair whose concatenation is
 *     a token, and falls back to <0xXX> byte tokens;
 *   - tokens are recognised by their text as llama.cpp does (end-of-turn,
 *     end-of-generation and fill-in-the-middle texts become CONTROL);
 *   - invalid UTF-8: SPM works on the bytes (a stray byte becomes its
 *     <0xXX> token); BPE decodes as llama.cpp does (each byte that does not
 *     start a well-formed sequence is U+FFFD, overlong forms and surrogates
 *     decode as written) and merges the re-encoded text. One difference: a
 *     sequence that decodes above U+10FFFF (F4 90 80 80) is U+FFFD here,
 *     where llama.cpp aborts the process.
 * Checked token for token against llama.cpp by tests/test_tokenizer.c
 * (goldens from scripts/make_tok_golden.py). */
#include "tokenizer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* ------------------------------------------------------------------------
 * pre-tokenizers
 * ---------------------------------------------------------------------- */

enum pre_kind {
    PRE_DEFAULT,   /* [\p{P}\$\+<=>\^~\|]+ , gpt2, \p{N}+ , [0-9][0-9][0-9] */
    PRE_GPT2,      /* gpt2 */
    PRE_STARCODER, /* \p{N} , gpt2 */
    PRE_LLAMA3,    /* llama3 (\p{N}{1,3}) */
    PRE_QWEN2,     /* llama3 with \p{N} one at a time */
    PRE_QWEN35,    /* qwen2 with marks (\p{M}) counted as letters */
    PRE_FALCON,    /* [\p{P}\$\+<=>\^~\|`]+ , gpt2, [0-9][0-9][0-9] */
};

/* the passes a pre-tokenizer runs, in order */
enum pass_kind {
    PASS_END = 0,
    PASS_PUNCT_RUN,          /* [\p{P}\$\+<=>\^~\|]+ */
    PASS_PUNCT_RUN_BACKTICK, /* [\p{P}\$\+<=>\^~\|`]+ */
    PASS_GPT2,               /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    PASS_NUM_EACH,           /* \p{N} */
    PASS_NUM_RUN,            /* \p{N}+ */
    PASS_DIGIT3,             /* [0-9][0-9][0-9] */
    PASS_LLAMA3,             /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    PASS_QWEN2,              /* the same with \p{N} instead of \p{N}{1,3} */
    PASS_QWEN35,             /* qwen2 with [\p{L}\p{M}] for \p{L} (and \p{M} out of the punctuation class) */
};

static const unsigned char pre_passes[][5] = {
    [PRE_DEFAULT] = {PASS_PUNCT_RUN, PASS_GPT2, PASS_NUM_RUN, PASS_DIGIT3, PASS_END},
    [PRE_GPT2] = {PASS_GPT2, PASS_END},
    [PRE_STARCODER] = {PASS_NUM_EACH, PASS_GPT2, PASS_END},
    [PRE_LLAMA3] = {PASS_LLAMA3, PASS_END},
    [PRE_QWEN2] = {PASS_QWEN2, PASS_END},
    [PRE_QWEN35] = {PASS_QWEN35, PASS_END},
    [PRE_FALCON] = {PASS_PUNCT_RUN_BACKTICK, PASS_GPT2, PASS_DIGIT3, PASS_END},
};

/* tokenizer.ggml.pre names (llama.cpp's spelling) -> pre-tokenizer. */
static const struct pre_name {
    const char *name;
    enum pre_kind pre;
    bool ignore_merges; /* a piece that is a whole token is taken as is */
    bool add_bos;       /* default for tokenizer.ggml.add_bos_token */
} pre_names[] = {
    {"default", PRE_DEFAULT, false, false},
    {"gpt-2", PRE_GPT2, false, false},
    {"phi-2", PRE_GPT2, false, false},
    {"mpt", PRE_GPT2, false, false},
    {"olmo", PRE_GPT2, false, false},
    {"jais", PRE_GPT2, false, false},
    {"trillion", PRE_GPT2, false, false},
    {"granite-docling", PRE_GPT2, false, false},
    {"jina-es", PRE_GPT2, false, false},
    {"jina-de", PRE_GPT2, false, false},
    {"gigachat", PRE_GPT2, false, false},
    {"jina-v2-es", PRE_GPT2, false, false},
    {"jina-v2-de", PRE_GPT2, false, false},
    {"a.x-4.0", PRE_GPT2, false, false},
    {"mellum", PRE_GPT2, false, false},
    {"modern-bert", PRE_GPT2, false, false},
    {"exaone4", PRE_GPT2, false, false},
    {"starcoder", PRE_STARCODER, false, false},
    {"refact", PRE_STARCODER, false, false},
    {"command-r", PRE_STARCODER, false, false},
    {"smollm", PRE_STARCODER, false, false},
    {"codeshell", PRE_STARCODER, false, false},
    {"exaone", PRE_STARCODER, false, false},
    {"minerva-7b", PRE_STARCODER, false, false},
    {"mellum2", PRE_STARCODER, false, false},
    {"llama3", PRE_LLAMA3, true, true},
    {"llama-v3", PRE_LLAMA3, true, true},
    {"llama-bpe", PRE_LLAMA3, true, true},
    {"falcon3", PRE_LLAMA3, true, true},
    {"falcon-h1", PRE_LLAMA3, true, true},
    {"pixtral", PRE_LLAMA3, true, true},
    {"midm-2.0", PRE_LLAMA3, true, true},
    {"lfm2", PRE_LLAMA3, true, true},
    {"jina-v5-nano", PRE_LLAMA3, true, true},
    {"chatglm-bpe", PRE_LLAMA3, false, false},
    {"glm4", PRE_LLAMA3, true, false},
    {"glm5", PRE_LLAMA3, true, false},
    {"dbrx", PRE_LLAMA3, false, false},
    {"smaug-bpe", PRE_LLAMA3, false, false},
    {"qwen2", PRE_QWEN2, false, false},
    {"deepseek-r1-qwen", PRE_QWEN2, false, false},
    {"kormo", PRE_QWEN2, false, false},
    {"f2llmv2", PRE_QWEN2, false, false},
    {"qwen35", PRE_QWEN35, false, false},
    {"stablelm2", PRE_QWEN2, false, false},
    {"megrez", PRE_QWEN2, false, false},
    {"hunyuan", PRE_QWEN2, false, false},
    {"solar-open", PRE_QWEN2, false, false},
    {"grok-2", PRE_QWEN2, false, false},
    {"falcon", PRE_FALCON, false, false},
};

static const struct pre_name *pre_find(sk_str name) {
    if (name.len == 0) return &pre_names[0];
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
        size_t n = strlen(pre_names[i].name);
        if (n == name.len && memcmp(pre_names[i].name, name.ptr, n) == 0) return &pre_names[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * the tokenizer record
 * ---------------------------------------------------------------------- */

typedef struct tok_entry {
    uint64_t off;       /* text: arena + off, len bytes */
    uint32_t len;
    int32_t type;       /* enum sk_token_type */
    float score;
    uint64_t piece_off; /* decoded bytes: pieces + piece_off */
    uint32_t piece_len;
} tok_entry;

/* a slot of the text -> id table: the id (-1 = free) and the high half of
 * its text's hash, so a probe rarely has to read the token table */
typedef struct map_slot {
    int32_t id;
    uint32_t tag;
} map_slot;

typedef struct merge_slot {
    uint64_t key;       /* (left << 32) | right; MERGE_EMPTY when free */
    int32_t rank;
    int32_t result;     /* id of left+right, -1 when not a token */
} merge_slot;

#define MERGE_EMPTY UINT64_MAX

struct sk_tokenizer {
    enum sk_tok_kind kind;
    enum pre_kind pre;
    bool ignore_merges;
    int64_t n_vocab;
    tok_entry *tok;         /* (n_vocab) */
    char *arena;            /* token texts */
    char *pieces;           /* decoded token bytes */
    map_slot *map;          /* (map_mask + 1) text -> id */
    uint64_t map_mask;
    merge_slot *merges;     /* (merge_mask + 1) */
    uint64_t merge_mask;
    int32_t *special;       /* (n_special) CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    unsigned char *special_strip; /* (n_special) SK_STRIP_* of special[k] */
    unsigned char *strip;   /* (n_vocab) SK_STRIP_* by id, or NULL when none has any */
    int64_t n_special;
    /* trie of the special texts: finds which of them occur in a text in
     * one pass, so the partition only runs for those (see partition) */
    uint64_t *trie_key;     /* (trie_mask + 1) (node << 8 | byte) + 1 of an edge; 0 = free */
    int32_t *trie_child;    /* (trie_mask + 1) the node that edge leads to */
    uint64_t trie_mask;
    int32_t *trie_term;     /* (n_trie) rank in special[] of the text ending here, or -1 */
    int64_t n_trie;
    unsigned char trie_first[256]; /* 1: some special text starts with this byte */
    unsigned char *eog;     /* (n_vocab) 1 = ends generation */
    int32_t byte_tok[256];  /* token of one input byte (BPE: its byte-encoder char; SPM: <0xXX>) */
    char byte_enc[256][2];  /* GPT-2 byte encoder, as UTF-8 */
    unsigned char byte_enc_len[256];
    int32_t bos, eos, eot, unk, pad;
    int32_t lead;           /* put first by add_special, before BOS (a model's sink token); -1 none */
    int32_t fim[3];         /* fill-in-the-middle prefix, suffix, middle; -1 when absent */
    bool add_bos, add_eos, add_space_prefix;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    return k ^ (k >> 33);
}

static const char *tok_text(const sk_tokenizer *t, int32_t id) { return t->arena + t->tok[id].off; }

static int32_t lookup(const sk_tokenizer *t, const char *s, size_t n) {
    if (n == 0) return -1;
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map[i].id;
        if (id < 0) return -1;
        if (t->map[i].tag == tag && t->tok[id].len == n && memcmp(tok_text(t, id), s, n) == 0) return id;
    }
}

static const merge_slot *merge_find(const sk_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges || left < 0 || right < 0) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *s = &t->merges[i];
        if (s->key == key) return s;
        if (s->key == MERGE_EMPTY) return NULL;
    }
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* GPT-2 byte encoder: printable Latin-1 bytes stand for themselves, the
 * rest are mapped in order to U+0100, U+0101, ... */
static void byte_encoder_init(sk_tokenizer *t) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        char u[4];
        int k = sk_utf8_encode(cp, u);
        memcpy(t->byte_enc[b], u, (size_t)k);
        t->byte_enc_len[b] = (unsigned char)k;
    }
}

/* inverse of the byte encoder: code point -> byte, -1 if not an encoder output */
static int byte_decode_cp(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    int n = (int)(cp - 256);
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (!printable && n-- == 0) return b;
    }
    return -1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xXX>" -> XX, else -1 */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Decoded bytes of token id (render_special form) written to dst (which
 * has room for the token's text length); returns the count. */
static size_t decode_piece(const sk_tokenizer *t, int32_t id, char *dst) {
    const tok_entry *e = &t->tok[id];
    const char *s = tok_text(t, id);
    size_t n = e->len, o = 0;
    switch (e->type) {
    case SK_TOKTYPE_CONTROL:
    case SK_TOKTYPE_UNKNOWN:
    case SK_TOKTYPE_USER_DEFINED:
        memcpy(dst, s, n);
        return n;
    case SK_TOKTYPE_BYTE: {
        int v = byte_token_value(s, n);
        if (v >= 0) {
            dst[0] = (char)v;
            return 1;
        }
        break; /* not <0xXX>: treat as normal text */
    }
    case SK_TOKTYPE_NORMAL:
        break;
    default: /* UNUSED, UNDEFINED: nothing, as llama.cpp */
        return 0;
    }
    if (t->kind == SK_TOK_SPM) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                dst[o++] = ' ';
                i += 3;
            } else {
                dst[o++] = s[i++];
            }
        }
        return o;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = sk_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int b = cp == SK_CP_INVALID ? -1 : byte_decode_cp(cp);
        if (b >= 0) {
            dst[o++] = (char)b;
        } else { /* not a byte-encoder char: keep it */
            memcpy(dst + o, s + i, (size_t)k);
            o += (size_t)k;
        }
        i += (size_t)k;
    }
    return o;
}


/* Special tokens recognised by their text, as llama.cpp does when it loads
 * a vocabulary (llama_vocab::impl::load: "auto-detect special tokens by
 * text"). A token with one of these texts is made a CONTROL token even when
 * the file says otherwise, which changes how text is split (CONTROL tokens
 * are matched only with parse_special) and what its piece is.
 *
 * End of turn, in the order we pick the EOT token from (llama.cpp takes the
 * first it meets in hash order; a vocabulary rarely has two of them). */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c\x65nd\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" /* \x65: e */,
    "<end_of_utterance>",
};
/* every text that ends generation */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c\x65nd\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" /* \x65: e */, "[e~[",
};
/* fill-in-the-middle tokens: each category's first token present becomes
 * CONTROL; pad, repo and separator also end generation */
static const struct fim_texts {
    bool eog;
    const char *texts[9];
} fim_texts[] = {
    {false, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
             "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL}},
    {false, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
             "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL}},
    {false, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
             "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL}},
    {true, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL}},
    {true, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL}},
    {true, {"<|file_sep|>", NULL}},
};

static int32_t lookup_cstr(const sk_tokenizer *t, const char *s) { return lookup(t, s, strlen(s)); }

/* Apply the text rules above to the token types, and mark the tokens that
 * end generation (t->eog, t->eot). Needs the text -> id table. */
static void special_by_text(sk_tokenizer *t, int32_t eot_key) {
    t->eot = eot_key;
    for (size_t k = 0; k < sizeof eot_texts / sizeof eot_texts[0] && t->eot < 0; k++)
        t->eot = lookup_cstr(t, eot_texts[k]);
    t->fim[0] = t->fim[1] = t->fim[2] = -1;
    for (size_t c = 0; c < sizeof fim_texts / sizeof fim_texts[0]; c++) {
        for (const char *const *p = fim_texts[c].texts; *p; p++) {
            int32_t id = lookup_cstr(t, *p);
            if (id < 0) continue;
            t->tok[id].type = SK_TOKTYPE_CONTROL;
            if (fim_texts[c].eog) t->eog[id] = 1;
            if (c < 3) t->fim[c] = id; /* prefix, suffix, middle: the table's first three */
            break;
        }
    }
    for (size_t k = 0; k < sizeof eog_texts / sizeof eog_texts[0]; k++) {
        int32_t id = lookup_cstr(t, eog_texts[k]);
        if (id < 0) continue;
        t->tok[id].type = SK_TOKTYPE_CONTROL;
        t->eog[id] = 1;
    }
    /* gpt-oss: these are always rendered */
    static const char *const always_shown[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t k = 0; k < sizeof always_shown / sizeof always_shown[0]; k++) {
        int32_t id = lookup_cstr(t, always_shown[k]);
        if (id >= 0) t->tok[id].type = SK_TOKTYPE_USER_DEFINED;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    int32_t eom = lookup_cstr(t, "<|eom_id|>");
    if (eom >= 0) t->eog[eom] = 1;
    /* o200k_harmony and solar-open: "<|end|>" is not an end there */
    int32_t end = lookup_cstr(t, "<|end|>");
#define EOG_HAS(s) (lookup_cstr(t, s) >= 0 && t->eog[lookup_cstr(t, s)])
    if (end >= 0 && t->eog[end] &&
        ((EOG_HAS("<|return|>") && EOG_HAS("<|call|>")) || (EOG_HAS("<|calls|>") && EOG_HAS("<|flush|>")))) {
        t->eog[end] = 0;
        t->tok[end].type = SK_TOKTYPE_USER_DEFINED;
        if (t->eot == end) t->eot = -1;
    }
    /* gemma4 and plamo: "</s>" is a normal token */
    int32_t s_end = lookup_cstr(t, "</s>");
    if (s_end >= 0 && t->eog[s_end] && (EOG_HAS("<|tool_response>") || EOG_HAS("<|plamo:eos|>"))) {
        t->eog[s_end] = 0;
        t->tok[s_end].type = SK_TOKTYPE_NORMAL;
    }
#undef EOG_HAS
}

/* order of the special list: longer text first, then lower id, as one key */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void sk_tokenizer_free(sk_tokenizer *tok) {
    if (!tok) return;
    free(tok->tok);
    free(tok->arena);
    free(tok->pieces);
    free(tok->map);
    free(tok->merges);
    free(tok->special);
    free(tok->special_strip);
    free(tok->strip);
    free(tok->trie_key);
    free(tok->trie_child);
    free(tok->trie_term);
    free(tok->eog);
    free(tok);
}

static sk_status check_id(const char *what, int32_t id, int64_t n_vocab, sk_error *err) {
    if (id < -1 || id >= n_vocab)
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: %s id %d out of range (n_vocab %lld)",
                            what, (int)id, (long long)n_vocab);
    return SK_OK;
}

static sk_status build_merges(sk_tokenizer *t, const sk_vocab_init *init, sk_error *err) {
    if (init->n_merges < 0 || init->n_merges > INT32_MAX || (init->n_merges > 0 && !init->merges))
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: bad merge count %lld", (long long)init->n_merges);
    uint64_t cap = pow2_at_least((uint64_t)init->n_merges * 2 + 1);
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory for merges");
    t->merge_mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = MERGE_EMPTY;
    char *buf = NULL;
    size_t buf_cap = 0;
    for (int64_t r = 0; r < init->n_merges; r++) {
        sk_str m = init->merges[r];
        if (m.len > 0 && !m.ptr)
            return free(buf), sk_error_set(err, SK_ERR_INVALID, "tokenizer: merge %lld has no text", (long long)r);
        /* split at the first space after the first byte ("left right") */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp)
            return free(buf), sk_error_set(err, SK_ERR_FORMAT, "tokenizer: merge %lld ('%.*s') is not 'left right'",
                                           (long long)r, (int)(m.len > 64 ? 64 : m.len), m.ptr ? m.ptr : "");
        size_t nl = (size_t)(sp - m.ptr), nr = m.len - nl - 1;
        int32_t left = lookup(t, m.ptr, nl), right = lookup(t, sp + 1, nr);
        if (left < 0 || right < 0)
            return free(buf), sk_error_set(err, SK_ERR_FORMAT, "tokenizer: merge %lld ('%.*s') names a token not in the vocabulary",
                                           (long long)r, (int)(m.len > 64 ? 64 : m.len), m.ptr);
        if (nl + nr > buf_cap) {
            buf_cap = (nl + nr) * 2;
            char *nb = realloc(buf, buf_cap);
            if (!nb) return free(buf), sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory");
            buf = nb;
        }
        memcpy(buf, m.ptr, nl);
        memcpy(buf + nl, sp + 1, nr);
        uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
        uint64_t i = hash_u64(key) & t->merge_mask;
        while (t->merges[i].key != MERGE_EMPTY && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
        if (t->merges[i].key == key) continue; /* duplicate: the first (lowest) rank wins */
        t->merges[i].key = key;
        t->merges[i].rank = (int32_t)r;
        t->merges[i].result = lookup(t, buf, nl + nr);
    }
    free(buf);
    return SK_OK;
}

/* the child of trie node `node` along byte b, or -1 */
static int32_t trie_next(const sk_tokenizer *t, int32_t node, unsigned char b) {
    uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
    for (uint64_t i = hash_u64(key) & t->trie_mask;; i = (i + 1) & t->trie_mask) {
        if (t->trie_key[i] == key) return t->trie_child[i];
        if (t->trie_key[i] == 0) return -1;
    }
}

/* The trie of special[] texts (node 0 is the root) and each one's strip
 * flags. Called once special[] is sorted. */
static sk_status build_trie(sk_tokenizer *t, const sk_vocab_init *init, sk_error *err) {
    uint64_t total = 0;
    for (int64_t k = 0; k < t->n_special; k++) total += t->tok[t->special[k]].len;
    uint64_t cap = pow2_at_least(total * 2 + 2);
    t->special_strip = calloc((size_t)t->n_special, 1);
    t->trie_key = calloc(cap, sizeof *t->trie_key);
    t->trie_child = malloc(cap * sizeof *t->trie_child);
    t->trie_term = malloc((total + 1) * sizeof *t->trie_term);
    if (!t->special_strip || !t->trie_key || !t->trie_child || !t->trie_term)
        return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory for the special-token trie");
    t->trie_mask = cap - 1;
    t->trie_term[0] = -1;
    t->n_trie = 1;
    for (int64_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (init->strip) t->special_strip[k] = init->strip[id] & (SK_STRIP_LEFT | SK_STRIP_RIGHT);
        const unsigned char *s = (const unsigned char *)tok_text(t, id);
        int32_t node = 0;
        for (uint32_t j = 0; j < t->tok[id].len; j++) {
            int32_t next = trie_next(t, node, s[j]);
            if (next < 0) {
                uint64_t key = ((uint64_t)(uint32_t)node << 8 | s[j]) + 1, i = hash_u64(key) & t->trie_mask;
                while (t->trie_key[i] != 0) i = (i + 1) & t->trie_mask;
                next = (int32_t)t->n_trie++;
                t->trie_key[i] = key;
                t->trie_child[i] = next;
                t->trie_term[next] = -1;
            }
            node = next;
        }
        if (t->trie_term[node] < 0) t->trie_term[node] = (int32_t)k; /* texts are unique */
        t->trie_first[s[0]] = 1;
    }
    return SK_OK;
}

sk_status sk_tokenizer_new(const sk_vocab_init *init, sk_tokenizer **out, sk_error *err) {
    if (!out) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: out is NULL");
    *out = NULL;
    if (!init) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: init is NULL");
    if (init->kind != SK_TOK_BPE && init->kind != SK_TOK_SPM)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "tokenizer: unknown tokenizer kind %d", (int)init->kind);
    if (init->n_vocab <= 0 || init->n_vocab > INT32_MAX || !init->tokens)
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: bad vocabulary size %lld", (long long)init->n_vocab);
    const struct pre_name *pn = &pre_names[0];
    if (init->kind == SK_TOK_BPE) {
        if (init->pre.len > 0 && !init->pre.ptr) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: pre name is NULL");
        pn = pre_find(init->pre);
        if (!pn)
            return sk_error_set(err, SK_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%.*s'",
                                (int)(init->pre.len > 64 ? 64 : init->pre.len), init->pre.ptr);
    }
    int64_t n = init->n_vocab;
    sk_status st;
    if ((st = check_id("bos", init->bos, n, err)) || (st = check_id("eos", init->eos, n, err)) ||
        (st = check_id("eot", init->eot, n, err)) || (st = check_id("unknown", init->unk, n, err)) ||
        (st = check_id("padding", init->pad, n, err)))
        return st;
    if (init->add_bos && init->bos < 0)
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: add_bos is set but there is no bos token");
    if (init->add_eos && init->eos < 0)
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: add_eos is set but there is no eos token");

    sk_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory");
    t->kind = init->kind;
    t->pre = pn->pre;
    t->ignore_merges = pn->ignore_merges;
    t->n_vocab = n;
    t->bos = init->bos;
    t->eos = init->eos;
    t->unk = init->unk;
    t->pad = init->pad;
    t->lead = -1;
    t->add_bos = init->add_bos != 0;
    t->add_eos = init->add_eos != 0;
    t->add_space_prefix = init->add_space_prefix != 0;
    byte_encoder_init(t);

    /* token table and text arena */
    uint64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const sk_str *s = &init->tokens[i];
        if (s->len > 0 && !s->ptr) {
            sk_tokenizer_free(t);
            return sk_error_set(err, SK_ERR_INVALID, "tokenizer: token %lld has no text", (long long)i);
        }
        if (s->len > UINT32_MAX / 8) {
            sk_tokenizer_free(t);
            return sk_error_set(err, SK_ERR_FORMAT, "tokenizer: token %lld is too long", (long long)i);
        }
        int32_t ty = init->types ? init->types[i] : SK_TOKTYPE_NORMAL;
        if (ty < SK_TOKTYPE_UNDEFINED || ty > SK_TOKTYPE_BYTE) {
            sk_tokenizer_free(t);
            return sk_error_set(err, SK_ERR_FORMAT, "tokenizer: token %lld has unknown type %d", (long long)i, (int)ty);
        }
        total += s->len;
    }
    t->tok = calloc((size_t)n, sizeof *t->tok);
    t->arena = malloc(total + 1);
    t->pieces = malloc(total + 1); /* a decoded piece is never longer than its text */
    uint64_t map_cap = pow2_at_least((uint64_t)n * 2);
    t->map = malloc(map_cap * sizeof *t->map);
    t->eog = calloc((size_t)n, 1);
    if (!t->tok || !t->arena || !t->pieces || !t->map || !t->eog) {
        sk_tokenizer_free(t);
        return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory for %lld tokens", (long long)n);
    }
    t->map_mask = map_cap - 1;
    memset(t->map, 0xff, map_cap * sizeof *t->map);
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const sk_str *s = &init->tokens[i];
        tok_entry *e = &t->tok[i];
        e->off = off;
        e->len = (uint32_t)s->len;
        e->type = init->types ? init->types[i] : SK_TOKTYPE_NORMAL;
        e->score = init->scores ? init->scores[i] : 0.0f;
        if (s->len) memcpy(t->arena + off, s->ptr, s->len);
        off += s->len;
        if (s->len == 0) continue; /* an empty token can never match */
        uint64_t hf = hash_bytes(s->ptr, s->len);
        for (uint64_t h = hf & t->map_mask;; h = (h + 1) & t->map_mask) {
            int32_t id = t->map[h].id;
            if (id < 0) {
                t->map[h] = (map_slot){(int32_t)i, (uint32_t)(hf >> 32)};
                break;
            }
            if (t->tok[id].len == s->len && memcmp(tok_text(t, id), s->ptr, s->len) == 0) {
                int32_t dup = id;
                sk_tokenizer_free(t);
                return sk_error_set(err, SK_ERR_FORMAT, "tokenizer: duplicate token text '%.*s' (ids %d and %lld)",
                                    (int)(s->len > 64 ? 64 : s->len), s->ptr, (int)dup, (long long)i);
            }
        }
    }

    special_by_text(t, init->eot);
    if (init->strip) {
        if (!(t->strip = malloc((size_t)n))) {
            sk_tokenizer_free(t);
            return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory");
        }
        for (int64_t i = 0; i < n; i++) t->strip[i] = init->strip[i] & (SK_STRIP_LEFT | SK_STRIP_RIGHT);
    }

    /* decoded pieces */
    uint64_t poff = 0;
    for (int64_t i = 0; i < n; i++) {
        t->tok[i].piece_off = poff;
        t->tok[i].piece_len = (uint32_t)decode_piece(t, (int32_t)i, t->pieces + poff);
        poff += t->tok[i].piece_len;
    }

    /* byte -> token */
    for (int b = 0; b < 256; b++) {
        if (t->kind == SK_TOK_BPE) {
            t->byte_tok[b] = lookup(t, t->byte_enc[b], t->byte_enc_len[b]);
        } else {
            char hex[7];
            static const char digits[] = "0123456789ABCDEF";
            hex[0] = '<', hex[1] = '0', hex[2] = 'x', hex[3] = digits[b >> 4], hex[4] = digits[b & 15], hex[5] = '>';
            int32_t id = lookup(t, hex, 6);
            if (id < 0) {
                char c = (char)b;
                id = lookup(t, &c, 1);
            }
            t->byte_tok[b] = id;
        }
    }

    if (t->kind == SK_TOK_BPE && (st = build_merges(t, init, err)) != SK_OK) {
        sk_tokenizer_free(t);
        return st;
    }

    /* special tokens, longest first */
    int64_t ns = 0;
    for (int64_t i = 0; i < n; i++) {
        int ty = t->tok[i].type;
        if ((ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_USER_DEFINED || ty == SK_TOKTYPE_UNKNOWN) && t->tok[i].len > 0) ns++;
    }
    if (ns > 0) {
        uint64_t *keys = malloc((size_t)ns * sizeof *keys);
        t->special = malloc((size_t)ns * sizeof *t->special);
        if (!keys || !t->special) {
            free(keys);
            sk_tokenizer_free(t);
            return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory");
        }
        for (int64_t i = 0, k = 0; i < n; i++) {
            int ty = t->tok[i].type;
            if ((ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_USER_DEFINED || ty == SK_TOKTYPE_UNKNOWN) && t->tok[i].len > 0)
                keys[k++] = ((uint64_t)(UINT32_MAX - t->tok[i].len) << 32) | (uint64_t)i;
        }
        qsort(keys, (size_t)ns, sizeof *keys, cmp_u64);
        for (int64_t k = 0; k < ns; k++) t->special[k] = (int32_t)(keys[k] & 0xffffffffu);
        free(keys);
        t->n_special = ns;
        if ((st = build_trie(t, init, err)) != SK_OK) {
            sk_tokenizer_free(t);
            return st;
        }
    }

    *out = t;
    return SK_OK;
}

/* ------------------------------------------------------------------------
 * per-call scratch
 * ---------------------------------------------------------------------- */

typedef struct sym {
    uint32_t start, len; /* bytes of the piece (BPE) / of the escaped text (SPM) */
    int32_t prev, next;
    int32_t id;          /* token of this symbol or -1 (SPM: known once merged) */
} sym;

typedef struct bigram {
    float score;         /* SPM: higher first */
    int32_t rank;        /* BPE: lower first; SPM: the id of left + right */
    int32_t left, right;
    uint32_t llen, rlen; /* lengths when queued, to detect stale entries */
} bigram;

typedef struct scratch {
    /* pre-tokenizer over one fragment: (n_cp) code points, flags, byte offsets */
    uint32_t *cp;
    uint16_t *fl;
    uint32_t *boff;       /* (n_cp + 1) byte offset of each code point in the text */
    char *enc;            /* (cap_enc) the code points re-encoded, when that differs
                             from the text (invalid UTF-8); see pretokenize */
    uint32_t *eoff;       /* (n_cp + 1) byte offsets into enc */
    size_t cap_enc, cap_eoff;
    bool reenc;           /* the last pretokenize filled enc/eoff */
    uint32_t *ends_a, *ends_b; /* (n_cp) piece ends, in code points */
    size_t cap_cp;
    sym *syms;
    bigram *heap;
    size_t cap_sym, cap_heap, n_heap;
    char *text;           /* SPM escaped text / BPE encoded piece */
    size_t cap_text;
    /* output */
    int32_t *out;
    int64_t cap_out, n_out;
} scratch;

static void scratch_free(scratch *s) {
    free(s->cp);
    free(s->fl);
    free(s->boff);
    free(s->enc);
    free(s->eoff);
    free(s->ends_a);
    free(s->ends_b);
    free(s->syms);
    free(s->heap);
    free(s->text);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static void emit(scratch *s, int32_t id) {
    if (s->n_out < s->cap_out) s->out[s->n_out] = id;
    s->n_out++;
}

/* binary heap of bigrams; BPE orders by (rank, left), SPM by (-score, left) */
static bool bg_before(const bigram *a, const bigram *b, bool spm) {
    if (spm) {
        if (a->score != b->score) return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static bool heap_push(scratch *s, bigram b, bool spm) {
    if (!grow((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap)) return false;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(&b, &s->heap[p], spm)) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
    return true;
}

static bigram heap_pop(scratch *s, bool spm) {
    bigram top = s->heap[0];
    bigram last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bg_before(&s->heap[c + 1], &s->heap[c], spm)) c++;
        if (!bg_before(&s->heap[c], &last, spm)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------------------
 * pre-tokenizer passes. Each pass refines pieces: it reads piece ends
 * (in code points) from `in` and writes finer ones to `out`.
 * ---------------------------------------------------------------------- */

#define OUT_OF_RANGE 0xFFFFFFFEu

typedef struct piece_ctx {
    const uint32_t *cp;
    const uint16_t *fl;
    size_t a, b;      /* current piece [a, b) */
    uint32_t *out;
    size_t n_out;
    size_t prev_end;
} piece_ctx;

static inline uint32_t pc_cp(const piece_ctx *c, size_t i) { return i >= c->a && i < c->b ? c->cp[i] : OUT_OF_RANGE; }
static inline unsigned pc_fl(const piece_ctx *c, size_t i) { return i >= c->a && i < c->b ? c->fl[i] : 0u; }

/* close a piece at `end` (if non-empty); returns its length */
static size_t pc_add(piece_ctx *c, size_t end) {
    size_t len = end - c->prev_end;
    if (len > 0) c->out[c->n_out++] = (uint32_t)end;
    c->prev_end = end;
    return len;
}

#define WLN (SK_UF_WHITESPACE | SK_UF_LETTER | SK_UF_NUMBER)

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive when ci): match length or 0 */
static size_t contraction(const piece_ctx *c, size_t pos, bool ci) {
    if (pc_cp(c, pos) != '\'' || pos + 1 >= c->b) return 0;
    uint32_t n1 = pc_cp(c, pos + 1);
    if (ci) n1 = ascii_lower(n1);
    if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') return 2;
    if (pos + 2 >= c->b) return 0;
    uint32_t n2 = pc_cp(c, pos + 2);
    if (ci) n2 = ascii_lower(n2);
    if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) return 3;
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
/* The last alternatives of the GPT-2 and llama3 splitters, at pos with a
 * run of nws whitespace code points there: \s+(?!\S) (a run before more
 * text leaves its last space to the next piece), then \s+, then one code
 * point alone when nothing matched. Adds the piece; returns its end. */
static size_t pc_tail(piece_ctx *c, size_t pos, size_t nws) {
    if (nws > 1 && pc_cp(c, pos + nws) != OUT_OF_RANGE) pos += nws - 1;
    else if (nws > 0) pos += nws;
    else pos++;
    pc_add(c, pos);
    return pos;
}

static void split_gpt2(piece_ctx *c) {
    for (size_t pos = c->a; pos < c->b;) {
        uint32_t cpt = pc_cp(c, pos);
        unsigned f = pc_fl(c, pos);
        size_t k = contraction(c, pos, false);
        if (k) {
            pos += pc_add(c, pos + k);
            continue;
        }
        unsigned f2 = cpt == ' ' ? pc_fl(c, pos + 1) : f;
        if (f2 & SK_UF_LETTER) {
            pos += cpt == ' ';
            while (pc_fl(c, pos) & SK_UF_LETTER) pos++;
            pc_add(c, pos);
            continue;
        }
        if (f2 & SK_UF_NUMBER) {
            pos += cpt == ' ';
            while (pc_fl(c, pos) & SK_UF_NUMBER) pos++;
            pc_add(c, pos);
            continue;
        }
        if (!(f2 & WLN) && f2) {
            pos += cpt == ' ';
            for (unsigned g = pc_fl(c, pos); !(g & WLN) && g; g = pc_fl(c, ++pos)) {}
            pc_add(c, pos);
            continue;
        }
        size_t nws = 0;
        while (pc_fl(c, pos + nws) & SK_UF_WHITESPACE) nws++;
        pos = pc_tail(c, pos, nws);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with letters = the flags that count as \p{L} (Qwen3.5 adds \p{M}, which
 * then also leaves the punctuation class). */
static void split_llama3(piece_ctx *c, size_t max_digits, unsigned letters) {
    const unsigned wln = WLN | letters;
    for (size_t pos = c->a; pos < c->b;) {
        uint32_t cpt = pc_cp(c, pos);
        unsigned f = pc_fl(c, pos);
        size_t k = contraction(c, pos, true);
        if (k) {
            pos += pc_add(c, pos + k);
            continue;
        }
        if (!(cpt == '\r' || cpt == '\n' || (f & SK_UF_NUMBER))) {
            if ((f & letters) || (pc_fl(c, pos + 1) & letters)) {
                pos++;
                while (pc_fl(c, pos) & letters) pos++;
                pc_add(c, pos);
                continue;
            }
        }
        if (f & SK_UF_NUMBER) {
            size_t ini = pos;
            while (pc_fl(c, pos) & SK_UF_NUMBER) {
                if (++pos - ini >= max_digits) {
                    pc_add(c, pos);
                    ini = pos;
                }
            }
            pc_add(c, pos);
            continue;
        }
        unsigned f2 = cpt == ' ' ? pc_fl(c, pos + 1) : f;
        if (!(f2 & wln) && f) {
            pos += cpt == ' ';
            for (unsigned g = pc_fl(c, pos); !(g & wln) && g; g = pc_fl(c, ++pos)) {}
            for (uint32_t d = pc_cp(c, pos); d == '\r' || d == '\n'; d = pc_cp(c, ++pos)) {}
            pc_add(c, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (pc_fl(c, pos + nws) & SK_UF_WHITESPACE) {
            uint32_t d = pc_cp(c, pos + nws);
            if (d == '\r' || d == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) { /* \s*[\r\n]+ */
            pos = last_rn;
            pc_add(c, pos);
            continue;
        }
        pos = pc_tail(c, pos, nws);
    }
}

/* \p{P} as llama.cpp's collapsed regex sees it: ASCII punctuation, or a
 * non-ASCII code point whose category is P (and that is not whitespace) */
static bool is_punct_class(uint32_t cp, unsigned f, bool backtick) {
    if (cp < 0x80) {
        if (cp == '`') return backtick;
        return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x5E) ||
               cp == '_' || cp == '{' || cp == '|' || cp == '}' || cp == '~';
    }
    return (f & SK_UF_PUNCT) && !(f & SK_UF_WHITESPACE);
}

/* a single-regex pass in the manner of std::regex_iterator: find each
 * leftmost match, and keep the text between matches as pieces too */
static void split_simple(piece_ctx *c, int pass) {
    for (size_t pos = c->a; pos < c->b;) {
        size_t m = 0;
        switch (pass) {
        case PASS_NUM_EACH:
            m = (c->fl[pos] & SK_UF_NUMBER) ? 1 : 0;
            break;
        case PASS_NUM_RUN:
            while (pos + m < c->b && (c->fl[pos + m] & SK_UF_NUMBER)) m++;
            break;
        case PASS_DIGIT3:
            if (pos + 3 <= c->b) {
                m = 3;
                for (size_t i = 0; i < 3; i++)
                    if (c->cp[pos + i] < '0' || c->cp[pos + i] > '9') m = 0;
            }
            break;
        case PASS_PUNCT_RUN:
        case PASS_PUNCT_RUN_BACKTICK:
            while (pos + m < c->b && is_punct_class(c->cp[pos + m], c->fl[pos + m], pass == PASS_PUNCT_RUN_BACKTICK)) m++;
            break;
        default:
            break;
        }
        if (m) {
            pc_add(c, pos);
            pc_add(c, pos + m);
            pos += m;
        } else {
            pos++;
        }
    }
    pc_add(c, c->b);
}

/* run one pass over all pieces in ends[0..n) -> out; returns the new count */
static size_t run_pass(int pass, const uint32_t *cp, const uint16_t *fl, const uint32_t *ends, size_t n, uint32_t *out) {
    piece_ctx c = {.cp = cp, .fl = fl, .out = out};
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        c.a = start;
        c.b = ends[i];
        c.prev_end = start;
        switch (pass) {
        case PASS_GPT2: split_gpt2(&c); break;
        case PASS_LLAMA3: split_llama3(&c, 3, SK_UF_LETTER); break;
        case PASS_QWEN2: split_llama3(&c, 1, SK_UF_LETTER); break;
        case PASS_QWEN35: split_llama3(&c, 1, SK_UF_LETTER | SK_UF_MARK); break;
        default: split_simple(&c, pass); break;
        }
        start = ends[i];
    }
    return c.n_out;
}

/* One code point as llama.cpp decodes it (unicode_cpt_from_utf8): the
 * lead byte gives the length, the continuation bytes must be 10xxxxxx, and
 * nothing else is checked (overlong forms, surrogates and values up to
 * 0x1FFFFF decode as written); anything else is one byte of U+FFFD.
 * Returns the bytes consumed. */
static int utf8_decode_lenient(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    int k = c < 0x80 ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (k == 0 || (size_t)k > n) goto bad;
    for (int i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) goto bad;
    static const unsigned lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t v = c & lead_mask[k];
    for (int i = 1; i < k; i++) v = v << 6 | (s[i] & 0x3Fu);
    *cp = v;
    return k;
bad:
    *cp = 0xFFFD;
    return 1;
}

/* bytes of cp (<= 0x10FFFF) in UTF-8 as llama.cpp writes it (surrogates too) */
static int utf8_len_of(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

static int utf8_encode_any(uint32_t cp, char *out) {
    int k = utf8_len_of(cp);
    static const unsigned char lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    for (int i = k - 1; i > 0; i--, cp >>= 6) out[i] = (char)(0x80 | (cp & 0x3F));
    out[0] = (char)(lead[k] | cp);
    return k;
}

/* Decode text[0..len) and split it into pieces. On success the piece ends
 * (in code points) are in *ends_out (one of the scratch arrays), their count
 * in *n_pieces, and s->boff maps code points to byte offsets. */
static sk_status pretokenize(const sk_tokenizer *t, scratch *s, const char *text, size_t len, uint32_t **ends_out,
                             size_t *n_pieces, sk_error *err) {
    if (len + 1 > s->cap_cp) {
        size_t c = len + 1;
        free(s->cp), free(s->fl), free(s->boff), free(s->ends_a), free(s->ends_b);
        s->cp = malloc(c * sizeof *s->cp);
        s->fl = malloc(c * sizeof *s->fl);
        s->boff = malloc(c * sizeof *s->boff);
        s->ends_a = malloc(c * sizeof *s->ends_a);
        s->ends_b = malloc(c * sizeof *s->ends_b);
        s->cap_cp = c;
        if (!s->cp || !s->fl || !s->boff || !s->ends_a || !s->ends_b) {
            s->cap_cp = 0;
            return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
        }
    }
    const unsigned char *u = (const unsigned char *)text;
    size_t n = 0;
    bool clean = true;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k;
        if (u[i] < 0x80) {
            cp = u[i];
            k = 1;
        } else {
            k = utf8_decode_lenient(u + i, len - i, &cp);
            if (cp > 0x10FFFF) cp = 0xFFFD; /* llama.cpp cannot encode these either */
            if (utf8_len_of(cp) != k) clean = false;
        }
        s->cp[n] = cp;
        s->fl[n] = (uint16_t)sk_unicode_flags(cp);
        s->boff[n] = (uint32_t)i;
        n++;
        i += (size_t)k;
    }
    s->boff[n] = (uint32_t)len;
    s->reenc = !clean;
    if (!clean) { /* the pieces are made of the code points, as in llama.cpp */
        if (!grow((void **)&s->enc, &s->cap_enc, n * 4 + 1, 1) ||
            !grow((void **)&s->eoff, &s->cap_eoff, n + 1, sizeof *s->eoff))
            return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            s->eoff[i] = (uint32_t)o;
            o += (size_t)utf8_encode_any(s->cp[i], s->enc + o);
        }
        s->eoff[n] = (uint32_t)o;
    }
    uint32_t *in = s->ends_a, *out = s->ends_b;
    size_t np = 0;
    if (n > 0) in[np++] = (uint32_t)n;
    for (const unsigned char *p = pre_passes[t->pre]; *p != PASS_END; p++) {
        np = run_pass(*p, s->cp, s->fl, in, np, out);
        uint32_t *tmp = in;
        in = out;
        out = tmp;
    }
    *ends_out = in;
    *n_pieces = np;
    return SK_OK;
}

/* ------------------------------------------------------------------------
 * BPE
 * ---------------------------------------------------------------------- */

static bool bpe_try_pair(const sk_tokenizer *t, scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const merge_slot *m = merge_find(t, s->syms[left].id, s->syms[right].id);
    if (!m) return true;
    bigram b = {.rank = m->rank, .left = left, .right = right, .llen = s->syms[left].len, .rlen = s->syms[right].len};
    return heap_push(s, b, false);
}

/* merge one pre-tokenizer piece (raw bytes w[0..n)) and emit its tokens */
static sk_status bpe_word(const sk_tokenizer *t, scratch *s, const char *w, size_t n, sk_error *err) {
    const unsigned char *u = (const unsigned char *)w;
    if (n == 1 && t->byte_tok[u[0]] >= 0) { /* fast path: one byte */
        emit(s, t->byte_tok[u[0]]);
        return SK_OK;
    }
    if (t->ignore_merges) { /* the whole piece may be a token */
        if (!grow((void **)&s->text, &s->cap_text, n * 2, 1)) return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(s->text + m, t->byte_enc[u[i]], t->byte_enc_len[u[i]]);
            m += t->byte_enc_len[u[i]];
        }
        int32_t id = lookup(t, s->text, m);
        if (id >= 0) {
            emit(s, id);
            return SK_OK;
        }
    }
    if (!grow((void **)&s->syms, &s->cap_sym, n, sizeof *s->syms))
        return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    /* one symbol per byte: the byte encoder gives each byte one code point */
    for (size_t i = 0; i < n; i++) {
        s->syms[i] = (sym){.start = (uint32_t)i, .len = 1, .prev = (int32_t)i - 1,
                           .next = i + 1 < n ? (int32_t)i + 1 : -1, .id = t->byte_tok[u[i]]};
    }
    s->n_heap = 0;
    for (size_t i = 1; i < n; i++)
        if (!bpe_try_pair(t, s, (int32_t)i - 1, (int32_t)i)) return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    while (s->n_heap > 0) {
        bigram b = heap_pop(s, false);
        sym *l = &s->syms[b.left], *r = &s->syms[b.right];
        if (l->len != b.llen || r->len != b.rlen || l->len == 0 || r->len == 0) continue; /* stale */
        const merge_slot *m = merge_find(t, l->id, r->id);
        l->len += r->len;
        l->id = m ? m->result : -1;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->syms[r->next].prev = b.left;
        if (!bpe_try_pair(t, s, l->prev, b.left) || !bpe_try_pair(t, s, b.left, l->next))
            return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    }
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        if (y->id >= 0) {
            emit(s, y->id);
            continue;
        }
        /* not a token: llama.cpp looks up each byte of the encoded text
         * alone and drops what it does not find; a byte that gives no
         * token at all would vanish from the text, so it is an error */
        for (uint32_t j = y->start; j < y->start + y->len; j++) {
            const char *e = t->byte_enc[u[j]];
            int found = 0;
            for (int q = 0; q < t->byte_enc_len[u[j]]; q++) {
                int32_t id = lookup(t, e + q, 1);
                if (id >= 0) emit(s, id), found = 1;
            }
            if (!found)
                return sk_error_set(err, SK_ERR_INVALID,
                                    "tokenize: byte 0x%02x has no token in this vocabulary (it would be dropped)", u[j]);
        }
    }
    return SK_OK;
}

static sk_status bpe_fragment(const sk_tokenizer *t, scratch *s, const char *text, size_t len, sk_error *err) {
    uint32_t *ends;
    size_t np;
    sk_status st = pretokenize(t, s, text, len, &ends, &np, err);
    if (st) return st;
    const uint32_t *off = s->reenc ? s->eoff : s->boff;
    const char *src = s->reenc ? s->enc : text;
    size_t start = 0;
    for (size_t i = 0; i < np; i++) {
        size_t b0 = off[start], b1 = off[ends[i]];
        if ((st = bpe_word(t, s, src + b0, b1 - b0, err))) return st;
        start = ends[i];
    }
    return SK_OK;
}

/* ------------------------------------------------------------------------
 * SPM
 * ---------------------------------------------------------------------- */

static bool spm_try_pair(const sk_tokenizer *t, scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const sym *l = &s->syms[left], *r = &s->syms[right];
    int32_t id = lookup(t, s->text + l->start, l->len + r->len);
    if (id < 0) return true;
    bigram b = {.score = t->tok[id].score, .rank = id, .left = left, .right = right, .llen = l->len, .rlen = r->len};
    return heap_push(s, b, true);
}

static size_t utf8_len_lenient(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

static sk_status spm_fragment(const sk_tokenizer *t, scratch *s, const char *text, size_t len, bool prefix, sk_error *err) {
    /* escaped text: optional leading space, every ' ' -> U+2581 */
    size_t cap = len * 3 + 3;
    if (!grow((void **)&s->text, &s->cap_text, cap, 1)) return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    size_t m = 0;
    if (prefix) {
        memcpy(s->text, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->text + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            s->text[m++] = text[i];
        }
    }
    if (m == 0) return SK_OK;
    if (!grow((void **)&s->syms, &s->cap_sym, m, sizeof *s->syms))
        return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    int32_t ns = 0;
    for (size_t i = 0; i < m;) {
        size_t k = utf8_len_lenient((unsigned char)s->text[i]);
        if (k > m - i) k = m - i;
        s->syms[ns] = (sym){.start = (uint32_t)i, .len = (uint32_t)k, .prev = ns - 1, .next = -1, .id = -1};
        if (ns > 0) s->syms[ns - 1].next = ns;
        ns++;
        i += k;
    }
    s->n_heap = 0;
    for (int32_t i = 1; i < ns; i++)
        if (!spm_try_pair(t, s, i - 1, i)) return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    while (s->n_heap > 0) {
        bigram b = heap_pop(s, true);
        sym *l = &s->syms[b.left], *r = &s->syms[b.right];
        if (l->len == 0 || r->len == 0 || l->len != b.llen || r->len != b.rlen) continue;
        l->len += r->len;
        l->id = b.rank;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->syms[r->next].prev = b.left;
        if (!spm_try_pair(t, s, l->prev, b.left) || !spm_try_pair(t, s, b.left, l->next))
            return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
    }
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        int32_t id = y->id >= 0 ? y->id : lookup(t, s->text + y->start, y->len); /* merged ones know theirs */
        if (id >= 0) {
            emit(s, id);
            continue;
        }
        for (uint32_t j = y->start; j < y->start + y->len; j++) { /* byte fallback */
            int32_t b = t->byte_tok[(unsigned char)s->text[j]];
            if (b < 0) b = t->unk;
            if (b >= 0) emit(s, b);
        }
    }
    return SK_OK;
}

/* ------------------------------------------------------------------------
 * special-token partition and the entry point
 * ---------------------------------------------------------------------- */

typedef struct frag {
    int32_t id;   /* >= 0: a special token; -1: text[off, off + len) */
    size_t off, len;
} frag;

typedef struct frag_list {
    frag *v;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, frag f) {
    if (!grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return false;
    l->v[l->n++] = f;
    return true;
}

static bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Calls fn(ctx, rank, pos) for every place a special token that may be cut
 * out (CONTROL and UNKNOWN only with parse_special) occurs in text: at each
 * byte that can start a special text, walk the trie down as far as the
 * text follows an edge. Stops early when fn returns false. */
static bool specials_scan(const sk_tokenizer *t, const char *text, size_t len, bool parse_special,
                          bool (*fn)(void *, int32_t, size_t), void *ctx) {
    const unsigned char *u = (const unsigned char *)text;
    for (size_t p = 0; p < len; p++) {
        if (!t->trie_first[u[p]]) continue;
        int32_t node = 0;
        for (size_t q = p; q < len && (node = trie_next(t, node, u[q])) >= 0; q++) {
            int32_t k = t->trie_term[node];
            if (k < 0) continue;
            if (!parse_special && t->tok[t->special[k]].type != SK_TOKTYPE_USER_DEFINED) continue;
            if (!fn(ctx, k, p)) return false;
        }
    }
    return true;
}

typedef struct presence {
    unsigned char *seen; /* (n_special) */
    int32_t *ranks;      /* distinct ranks present */
    size_t n_ranks, cap;
    size_t n_occ;        /* occurrences, all ranks */
    bool oom;
} presence;

static bool presence_add(void *ctx, int32_t k, size_t pos) {
    (void)pos;
    presence *pr = ctx;
    pr->n_occ++;
    if (pr->seen[k]) return true;
    pr->seen[k] = 1;
    if (!grow((void **)&pr->ranks, &pr->cap, pr->n_ranks + 1, sizeof *pr->ranks)) return !(pr->oom = true);
    pr->ranks[pr->n_ranks++] = k;
    return true;
}

typedef struct occ_list {
    uint64_t *v; /* (rank << 32) | pos */
    size_t n;
} occ_list;

static bool occ_add(void *ctx, int32_t k, size_t pos) {
    occ_list *o = ctx;
    o->v[o->n++] = (uint64_t)(uint32_t)k << 32 | (uint32_t)pos;
    return true;
}

/* One special token cut out of text[h, h + sl) for partition_occ: the
 * bytes it and the whitespace it strips take are marked in used (1 = the
 * token, 2 = stripped). False when the place is already taken. */
static bool occ_take(const char *text, size_t len, unsigned char *used, size_t h, size_t sl, unsigned strip) {
    for (size_t i = h; i < h + sl; i++)
        if (used[i]) return false;
    memset(used + h, 1, sl);
    if (strip & SK_STRIP_LEFT)
        for (size_t i = h; i > 0 && !used[i - 1] && is_c_space(text[i - 1]); i--) used[i - 1] = 2;
    if (strip & SK_STRIP_RIGHT)
        for (size_t i = h + sl; i < len && !used[i] && is_c_space(text[i]); i++) used[i] = 2;
    return true;
}

/* The same partition as the token-by-token passes below, from the list of
 * occurrences: sorted by (rank, position), each one is taken when none of
 * its bytes is taken yet, which is what cutting each token at its leftmost
 * free places, token after token, does. Costs O(occurrences), not
 * O(tokens present x text length): for texts that hold many distinct
 * special tokens. */
static sk_status partition_occ(const sk_tokenizer *t, const char *text, size_t len, bool parse_special, size_t n_occ,
                               frag_list *res, sk_error *err) {
    occ_list o = {malloc((n_occ ? n_occ : 1) * sizeof *o.v), 0};
    unsigned char *used = calloc(len, 1);
    uint64_t *starts = NULL; /* (pos << 32) | id of each token taken */
    size_t n_starts = 0;
    frag_list a = {0};
    if (!o.v || !used || !(starts = malloc((n_occ ? n_occ : 1) * sizeof *starts))) goto nomem;
    specials_scan(t, text, len, parse_special, occ_add, &o);
    qsort(o.v, o.n, sizeof *o.v, cmp_u64);
    for (size_t i = 0; i < o.n; i++) {
        int32_t k = (int32_t)(o.v[i] >> 32), id = t->special[k];
        size_t h = (size_t)(o.v[i] & 0xffffffffu);
        if (occ_take(text, len, used, h, t->tok[id].len, t->special_strip[k]))
            starts[n_starts++] = (uint64_t)h << 32 | (uint32_t)id;
    }
    qsort(starts, n_starts, sizeof *starts, cmp_u64);
    size_t pos = 0;
    for (size_t i = 0; i <= n_starts; i++) {
        size_t h = i < n_starts ? (size_t)(starts[i] >> 32) : len; /* the gap [pos, h) */
        size_t b0 = pos, b1 = h;
        while (b0 < b1 && used[b0]) b0++; /* stripped after the previous token */
        while (b1 > b0 && used[b1 - 1]) b1--; /* stripped before this one */
        if (b1 > b0 && !frag_push(&a, (frag){-1, b0, b1 - b0})) goto nomem;
        if (i == n_starts) break;
        int32_t id = (int32_t)(starts[i] & 0xffffffffu);
        if (!frag_push(&a, (frag){id, 0, 0})) goto nomem;
        pos = h + t->tok[id].len;
    }
    free(o.v);
    free(used);
    free(starts);
    *res = a;
    return SK_OK;
nomem:
    free(o.v);
    free(used);
    free(starts);
    free(a.v);
    return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
}

/* Cut the special tokens out of the text as llama.cpp does
 * (tokenizer_st_partition): token by token, longest text first, each one
 * at every place it occurs in what is still plain text, leftmost first.
 * A token with SK_STRIP_LEFT / SK_STRIP_RIGHT also drops the whitespace
 * (C isspace) before / after it in its fragment. One pass over the text
 * (the trie) finds which tokens occur at all and how often; then either
 * only those are tried, token by token (cost: tokens present x text
 * length, the cheaper way when few distinct tokens occur, e.g. Gemma's
 * whitespace tokens in a long text), or the occurrences are taken in
 * order (partition_occ; cost: occurrences), whichever costs less. */
static sk_status partition(const sk_tokenizer *t, const char *text, size_t len, bool parse_special, frag_list *res,
                           sk_error *err) {
    frag_list a = {0}, b = {0};
    presence pr = {0};
    if (t->n_special > 0 && len > 0) {
        if (!(pr.seen = calloc((size_t)t->n_special, 1))) return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
        specials_scan(t, text, len, parse_special, presence_add, &pr);
        free(pr.seen);
        if (pr.oom) {
            free(pr.ranks);
            return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
        }
        if (pr.n_ranks > 1 && (double)pr.n_occ * 32.0 < (double)pr.n_ranks * ((double)len / 8.0 + 64.0)) {
            free(pr.ranks);
            return partition_occ(t, text, len, parse_special, pr.n_occ, res, err);
        }
        if (pr.n_ranks > 1) qsort(pr.ranks, pr.n_ranks, sizeof *pr.ranks, cmp_i32); /* none found: ranks is NULL */
    }
    int32_t *ranks = pr.ranks;
    size_t n_ranks = pr.n_ranks;
    if (len > 0 && !frag_push(&a, (frag){-1, 0, len})) goto nomem;
    for (size_t r = 0; r < n_ranks && a.n > 0; r++) {
        int32_t id = t->special[ranks[r]];
        unsigned strip = t->special_strip[ranks[r]];
        const char *stext = tok_text(t, id);
        size_t sl = t->tok[id].len;
        b.n = 0;
        bool found = false;
        for (size_t i = 0; i < a.n; i++) {
            frag f = a.v[i];
            if (f.id >= 0 || f.len < sl) {
                if (!frag_push(&b, f)) goto nomem;
                continue;
            }
            size_t off = f.off, end = f.off + f.len;
            while (off < end) {
                const char *hit = end - off >= sl ? memmem(text + off, end - off, stext, sl) : NULL;
                if (!hit) {
                    if (!frag_push(&b, (frag){-1, off, end - off})) goto nomem;
                    break;
                }
                found = true;
                size_t h = (size_t)(hit - text), left_end = h;
                if (strip & SK_STRIP_LEFT)
                    while (left_end > off && is_c_space(text[left_end - 1])) left_end--;
                if (left_end > off && !frag_push(&b, (frag){-1, off, left_end - off})) goto nomem;
                if (!frag_push(&b, (frag){id, 0, 0})) goto nomem;
                off = h + sl;
                if (strip & SK_STRIP_RIGHT)
                    while (off < end && is_c_space(text[off])) off++;
            }
        }
        if (found) {
            frag_list tmp = a;
            a = b;
            b = tmp;
        }
    }
    free(ranks);
    free(b.v);
    *res = a;
    return SK_OK;
nomem:
    free(ranks);
    free(a.v);
    free(b.v);
    return sk_error_set(err, SK_ERR_NOMEM, "tokenize: out of memory");
}

sk_status sk_tokenize(const sk_tokenizer *tok, const char *text, size_t len, int add_special, int parse_special,
                      int32_t *out, int64_t cap, int64_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len > 0) || cap < 0 || (!out && cap > 0))
        return sk_error_set(err, SK_ERR_INVALID, "tokenize: bad arguments");
    if (len >= UINT32_MAX - 4) return sk_error_set(err, SK_ERR_INVALID, "tokenize: text of %zu bytes is too long", len);
    scratch s = {.out = out, .cap_out = cap};
    frag_list fl = {0};
    sk_status st = partition(tok, text, len, parse_special != 0, &fl, err);
    if (st) return st;
    if (add_special && tok->lead >= 0) emit(&s, tok->lead);
    if (add_special && tok->add_bos) emit(&s, tok->bos);
    bool prev_special = true; /* SPM: a space goes before text at the start or after a special token */
    for (size_t i = 0; i < fl.n && st == SK_OK; i++) {
        const frag *f = &fl.v[i];
        if (f->id >= 0) {
            emit(&s, f->id);
            prev_special = true;
            continue;
        }
        if (tok->kind == SK_TOK_BPE) {
            st = bpe_fragment(tok, &s, text + f->off, f->len, err);
        } else {
            st = spm_fragment(tok, &s, text + f->off, f->len, tok->add_space_prefix && prev_special, err);
            prev_special = false;
        }
    }
    if (st == SK_OK && add_special && tok->add_eos) emit(&s, tok->eos);
    free(fl.v);
    scratch_free(&s);
    if (st == SK_OK) *n_out = s.n_out;
    return st;
}

sk_status sk_tokenizer_split(const sk_tokenizer *tok, const char *text, size_t len, size_t *ends, int64_t cap,
                             int64_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len > 0) || cap < 0 || (!ends && cap > 0))
        return sk_error_set(err, SK_ERR_INVALID, "split: bad arguments");
    if (tok->kind != SK_TOK_BPE) return sk_error_set(err, SK_ERR_UNSUPPORTED, "split: only BPE has a pre-tokenizer");
    if (len >= UINT32_MAX - 4) return sk_error_set(err, SK_ERR_INVALID, "split: text too long");
    scratch s = {0};
    uint32_t *pe;
    size_t np;
    sk_status st = pretokenize(tok, &s, text, len, &pe, &np, err);
    if (st == SK_OK) {
        for (size_t i = 0; i < np && (int64_t)i < cap; i++) ends[i] = s.boff[pe[i]];
        *n_out = (int64_t)np;
    }
    scratch_free(&s);
    return st;
}

/* ------------------------------------------------------------------------
 * pieces, lookups, detokenizer
 * ---------------------------------------------------------------------- */

int sk_token_to_piece(const sk_tokenizer *tok, int32_t id, int render_special, char *buf, size_t cap) {
    if (!tok || id < 0 || id >= tok->n_vocab) return -1;
    const tok_entry *e = &tok->tok[id];
    if (!render_special && (e->type == SK_TOKTYPE_CONTROL || e->type == SK_TOKTYPE_UNKNOWN)) return 0;
    size_t n = e->piece_len;
    if (buf) memcpy(buf, tok->pieces + e->piece_off, n < cap ? n : cap);
    return (int)n;
}

int64_t sk_tokenizer_n_vocab(const sk_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int32_t sk_tokenizer_bos(const sk_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t sk_tokenizer_eos(const sk_tokenizer *tok) { return tok ? tok->eos : -1; }
int32_t sk_tokenizer_eot(const sk_tokenizer *tok) { return tok ? tok->eot : -1; }
int sk_tokenizer_add_bos(const sk_tokenizer *tok) { return tok && tok->add_bos; }
int32_t sk_tokenizer_lead(const sk_tokenizer *tok) { return tok ? tok->lead : -1; }

sk_status sk_tokenizer_set_lead(sk_tokenizer *tok, int32_t id, sk_error *err) {
    if (!tok || id < -1 || id >= tok->n_vocab)
        return sk_error_set(err, SK_ERR_INVALID, "tokenizer: lead token %d is not in the vocabulary", (int)id);
    tok->lead = id;
    return SK_OK;
}

int sk_tokenizer_fim(const sk_tokenizer *tok, int32_t ids[3]) {
    for (int i = 0; i < 3; i++) ids[i] = tok ? tok->fim[i] : -1;
    return ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0;
}

void sk_tokenizer_set_fim(sk_tokenizer *t, const int32_t ids[3]) {
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) t->fim[i] = ids[i];
}

int sk_token_is_eog(const sk_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab && tok->eog[id];
}

int32_t sk_token_lookup(const sk_tokenizer *tok, const char *text, size_t len) {
    if (!tok || !text) return -1;
    return lookup(tok, text, len);
}

int sk_tokenizer_token_strip(const sk_tokenizer *tok, int32_t id) {
    if (!tok || !tok->strip || id < 0 || id >= tok->n_vocab) return 0;
    return tok->strip[id];
}

int sk_token_type(const sk_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return -1;
    return tok->tok[id].type;
}

void sk_detok_init(sk_detok *d) {
    if (d) d->n_pending = 0;
}

/* append bytes if they fit whole; a character never gets cut */
static void put(char *out, size_t cap, size_t *n, const void *p, size_t k) {
    if (*n + k > cap) return;
    memcpy(out + *n, p, k);
    *n += k;
}

/* emit every complete or invalid sequence at the front of pending */
static void detok_drain(sk_detok *d, char *out, size_t cap, size_t *n, bool final) {
    while (d->n_pending > 0) {
        int r = sk_utf8_check(d->pending, (size_t)d->n_pending);
        size_t drop;
        if (r > 0) {
            put(out, cap, n, d->pending, (size_t)r);
            drop = (size_t)r;
        } else if (r == 0 && !final) {
            return; /* incomplete: wait for more */
        } else {
            put(out, cap, n, "\xef\xbf\xbd", 3);
            drop = r < 0 ? (size_t)-r : (size_t)d->n_pending;
        }
        memmove(d->pending, d->pending + drop, (size_t)d->n_pending - drop);
        d->n_pending -= (int)drop;
    }
}

size_t sk_detok_push(sk_detok *d, const sk_tokenizer *tok, int32_t id, int render_special, char *out, size_t cap) {
    if (!d || !tok || !out || id < 0 || id >= tok->n_vocab) return 0;
    const tok_entry *e = &tok->tok[id];
    if (!render_special && (e->type == SK_TOKTYPE_CONTROL || e->type == SK_TOKTYPE_UNKNOWN)) return 0;
    const unsigned char *p = (const unsigned char *)tok->pieces + e->piece_off;
    size_t n = 0;
    for (size_t i = 0; i < e->piece_len; i++) {
        if (d->n_pending == 0 && p[i] < 0x80) {
            put(out, cap, &n, p + i, 1);
            continue;
        }
        d->pending[d->n_pending++] = p[i];
        detok_drain(d, out, cap, &n, false);
    }
    return n;
}

size_t sk_detok_flush(sk_detok *d, char *out, size_t cap) {
    if (!d || !out) return 0;
    size_t n = 0;
    detok_drain(d, out, cap, &n, true);
    d->n_pending = 0;
    return n;
}

/* copy k bytes to buf[*n..] as far as they fit before the NUL; count all */
static void put_trunc(char *buf, size_t cap, size_t *n, const char *p, size_t k) {
    if (cap > 0 && *n < cap - 1) {
        size_t room = cap - 1 - *n;
        memcpy(buf + *n, p, k < room ? k : room);
    }
    *n += k;
}

sk_status sk_detokenize(const sk_tokenizer *tok, const int32_t *ids, int64_t n, int render_special, char *buf,
                        size_t cap, size_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || (n > 0 && !ids) || n < 0 || (cap > 0 && !buf) || !n_out)
        return sk_error_set(err, SK_ERR_INVALID, "sk_detokenize: NULL or negative argument");
    if (cap > 0) buf[0] = 0;
    size_t longest = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return sk_error_set(err, SK_ERR_INVALID, "token %lld (index %lld) is not in [0, %lld)",
                                (long long)ids[i], (long long)i, (long long)tok->n_vocab);
        if (tok->tok[ids[i]].piece_len > longest) longest = tok->tok[ids[i]].piece_len;
    }
    /* one push emits at most the pending bytes and the piece, each byte
     * possibly as a 3-byte U+FFFD */
    char small[512], *piece = small;
    size_t piece_cap = 3 * (longest + sizeof ((sk_detok *)0)->pending);
    if (piece_cap > sizeof small && !(piece = malloc(piece_cap)))
        return sk_error_set(err, SK_ERR_NOMEM, "sk_detokenize: out of memory");
    if (piece == small) piece_cap = sizeof small;
    sk_detok d;
    sk_detok_init(&d);
    size_t len = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t k = sk_detok_push(&d, tok, ids[i], render_special, piece, piece_cap);
        put_trunc(buf, cap, &len, piece, k);
    }
    put_trunc(buf, cap, &len, piece, sk_detok_flush(&d, piece, piece_cap));
    if (piece != small) free(piece);
    if (cap > 0) buf[len < cap - 1 ? len : cap - 1] = 0;
    *n_out = len;
    return SK_OK;
}

int sk_tokenizer_pre_adds_bos(sk_str pre) {
    const struct pre_name *pn = pre_find(pre);
    return pn && pn->add_bos;
}
