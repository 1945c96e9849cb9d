/* vocab.c - GGUF tokenizer metadata -> sk_tokenizer (vocab.h). */
#include "vocab.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* optional u32-ish id key: absent keeps *id; present must be < n_vocab */
static sk_status gguf_id(const gguf_ctx *g, const char *key, int64_t n_vocab, int32_t *id, sk_error *err) {
    if (!gguf_find_kv(g, key)) return SK_OK;
    uint64_t v;
    sk_status st = gguf_get_u64(g, key, &v, err);
    if (st) return st;
    if (v >= (uint64_t)n_vocab)
        return sk_error_set(err, SK_ERR_FORMAT, "%s = %llu is out of range (n_vocab %lld)", key,
                            (unsigned long long)v, (long long)n_vocab);
    *id = (int32_t)v;
    return SK_OK;
}

static sk_status gguf_flag(const gguf_ctx *g, const char *key, int *v, sk_error *err) {
    if (!gguf_find_kv(g, key)) return SK_OK;
    return gguf_get_bool(g, key, v, err);
}

static sk_status gguf_array(const gguf_ctx *g, const char *key, enum gguf_type want, int64_t n_want, const gguf_arr **out,
                            sk_error *err) {
    sk_status st = gguf_get_arr(g, key, out, err);
    if (st) return st;
    if ((*out)->type != want)
        return sk_error_set(err, SK_ERR_FORMAT, "%s: array of %s, expected %s", key, gguf_type_name((*out)->type),
                            gguf_type_name(want));
    if (n_want >= 0 && (*out)->n != (uint64_t)n_want)
        return sk_error_set(err, SK_ERR_FORMAT, "%s: %llu entries, but there are %lld tokens", key,
                            (unsigned long long)(*out)->n, (long long)n_want);
    return SK_OK;
}

/* Read and check every key; fills *in except tokens, merges, scores and
 * types, whose arrays are returned for the caller to convert. Allocates
 * nothing. */
static sk_status vocab_read(const gguf_ctx *g, sk_vocab_init *in, const gguf_arr **toks,
                            const gguf_arr **merges, const gguf_arr **scores, const gguf_arr **types,
                            sk_error *err) {
    memset(in, 0, sizeof *in);
    in->bos = in->eos = in->eot = in->unk = in->pad = -1;
    *toks = *merges = *scores = *types = NULL;
    gguf_str model;
    sk_status st = gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (st) return st;
    if (gguf_str_eq(model, "gpt2")) {
        in->kind = SK_TOK_BPE;
    } else if (gguf_str_eq(model, "llama")) {
        in->kind = SK_TOK_SPM;
    } else {
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "tokenizer.ggml.model '%.*s' is not supported (gpt2, llama)",
                            (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    gguf_str pre = {NULL, 0};
    if (gguf_find_kv(g, "tokenizer.ggml.pre") && (st = gguf_get_str(g, "tokenizer.ggml.pre", &pre, err))) return st;
    in->pre = (sk_str){pre.ptr, pre.len};

    if ((st = gguf_array(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, -1, toks, err))) return st;
    if ((*toks)->n == 0 || (*toks)->n > INT32_MAX)
        return sk_error_set(err, SK_ERR_FORMAT, "tokenizer.ggml.tokens: bad token count %llu",
                            (unsigned long long)(*toks)->n);
    int64_t n = (int64_t)(*toks)->n;
    in->n_vocab = n;
    if (gguf_find_kv(g, "tokenizer.ggml.scores") &&
        (st = gguf_array(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, n, scores, err)))
        return st;
    if (gguf_find_kv(g, "tokenizer.ggml.token_type") &&
        (st = gguf_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, n, types, err)))
        return st;
    if (in->kind == SK_TOK_BPE) {
        if ((st = gguf_array(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, -1, merges, err))) return st;
        if ((*merges)->n > INT32_MAX) return sk_error_set(err, SK_ERR_FORMAT, "tokenizer.ggml.merges: too many merges");
        in->n_merges = (int64_t)(*merges)->n;
    }

    /* defaults as llama.cpp: SPM has <unk>=0, <s>=1, </s>=2, a BOS and a space prefix */
    int add_bos = 0, add_eos = 0, add_space_prefix = 0;
    if (in->kind == SK_TOK_SPM) {
        in->unk = n > 0 ? 0 : -1;
        in->bos = n > 1 ? 1 : -1;
        in->eos = n > 2 ? 2 : -1;
        add_bos = 1;
        add_space_prefix = 1;
    } else {
        add_bos = sk_tokenizer_pre_adds_bos(in->pre);
    }
    if ((st = gguf_id(g, "tokenizer.ggml.bos_token_id", n, &in->bos, err)) ||
        (st = gguf_id(g, "tokenizer.ggml.eos_token_id", n, &in->eos, err)) ||
        (st = gguf_id(g, "tokenizer.ggml.eot_token_id", n, &in->eot, err)) ||
        (st = gguf_id(g, "tokenizer.ggml.unknown_token_id", n, &in->unk, err)) ||
        (st = gguf_id(g, "tokenizer.ggml.padding_token_id", n, &in->pad, err)) ||
        (st = gguf_flag(g, "tokenizer.ggml.add_bos_token", &add_bos, err)) ||
        (st = gguf_flag(g, "tokenizer.ggml.add_eos_token", &add_eos, err)) ||
        (st = gguf_flag(g, "tokenizer.ggml.add_space_prefix", &add_space_prefix, err)))
        return st;
    in->add_bos = add_bos;
    in->add_eos = add_eos;
    in->add_space_prefix = add_space_prefix;
    return SK_OK;
}

/* The strings of a STRING array as tokenizer string views (malloc'ed). */
static sk_str *str_views(const gguf_arr *a) {
    sk_str *v = malloc((a->n ? a->n : 1) * sizeof *v);
    if (v)
        for (uint64_t i = 0; i < a->n; i++) v[i] = (sk_str){a->strs[i].ptr, a->strs[i].len};
    return v;
}

static int lower_has(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && (char)((s[i + j] >= 'A' && s[i + j] <= 'Z') ? s[i + j] + 32 : s[i + j]) == needle[j]) j++;
        if (j == k) return 1;
    }
    return 0;
}

void sk_vocab_strip_phi3(const sk_vocab_init *in, unsigned char *strip) {
    for (int64_t i = 0; i < in->n_vocab; i++) {
        int ty = in->types ? in->types[i] : SK_TOKTYPE_NORMAL;
        const sk_str *t = &in->tokens[i];
        bool special = ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_USER_DEFINED || ty == SK_TOKTYPE_UNKNOWN;
#define IS(lit) (t->len == sizeof lit - 1 && memcmp(t->ptr, lit, sizeof lit - 1) == 0)
        if (IS("<unk>") || IS("<s>") || IS("<|endoftext|>")) continue;
        if (special || IS("</s>")) strip[i] |= SK_STRIP_RIGHT;
#undef IS
    }
}

/* general.name names a Phi-3 model, as llama.cpp tests it */
static int is_phi3_name(const gguf_ctx *g) {
    gguf_str name = {NULL, 0};
    if (!gguf_find_kv(g, "general.name") || gguf_get_str(g, "general.name", &name, NULL) != SK_OK) return 0;
    return lower_has(name.ptr, name.len, "phi-3") || lower_has(name.ptr, name.len, "phi3");
}

void sk_vocab_buf_free(sk_vocab_buf *b) {
    if (!b) return;
    free(b->tokens);
    free(b->merges);
    free(b->scores);
    free(b->types);
    free(b->strip);
    memset(b, 0, sizeof *b);
}

sk_status sk_vocab_read(const gguf_ctx *g, sk_vocab_init *in, sk_vocab_buf *buf, sk_error *err) {
    if (!in || !buf) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: NULL output");
    memset(buf, 0, sizeof *buf);
    if (!g) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: gguf context is NULL");
    const gguf_arr *toks, *merges, *scores, *types;
    sk_status st = vocab_read(g, in, &toks, &merges, &scores, &types, err);
    if (st) return st;
    int64_t n = in->n_vocab;

    /* string arrays become views; numeric arrays may be unaligned in the file: copy them */
    buf->tokens = str_views(toks);
    buf->merges = merges ? str_views(merges) : NULL;
    buf->scores = scores ? malloc((size_t)n * sizeof *buf->scores) : NULL;
    buf->types = types ? malloc((size_t)n * sizeof *buf->types) : NULL;
    buf->strip = calloc((size_t)n, 1);
    if (!buf->tokens || (merges && !buf->merges) || (scores && !buf->scores) || (types && !buf->types) || !buf->strip) {
        sk_vocab_buf_free(buf);
        return sk_error_set(err, SK_ERR_NOMEM, "tokenizer: out of memory");
    }
    in->tokens = buf->tokens;
    in->merges = buf->merges;
    if (buf->scores) {
        memcpy(buf->scores, scores->data, (size_t)n * sizeof *buf->scores);
        in->scores = buf->scores;
    }
    if (buf->types) {
        memcpy(buf->types, types->data, (size_t)n * sizeof *buf->types);
        for (int64_t i = 0; i < n; i++) {
            if (buf->types[i] < SK_TOKTYPE_UNDEFINED || buf->types[i] > SK_TOKTYPE_BYTE) {
                st = sk_error_set(err, SK_ERR_FORMAT, "tokenizer.ggml.token_type[%lld] = %d is not a token type",
                                  (long long)i, (int)buf->types[i]);
                sk_vocab_buf_free(buf);
                return st;
            }
        }
        in->types = buf->types;
    }
    if (is_phi3_name(g)) {
        sk_vocab_strip_phi3(in, buf->strip);
        in->strip = buf->strip;
    }
    return SK_OK;
}

sk_status sk_tokenizer_from_gguf(const gguf_ctx *g, sk_tokenizer **out, sk_error *err) {
    if (!out) return sk_error_set(err, SK_ERR_INVALID, "tokenizer: out is NULL");
    *out = NULL;
    sk_vocab_init in;
    sk_vocab_buf buf;
    sk_status st = sk_vocab_read(g, &in, &buf, err);
    if (st) return st;
    st = sk_tokenizer_new(&in, out, err);
    /* fill-in-the-middle ids named by the file win over those found by text */
    int32_t fim[3] = {-1, -1, -1};
    if (!st && ((st = gguf_id(g, "tokenizer.ggml.fim_pre_token_id", in.n_vocab, &fim[0], err)) ||
                (st = gguf_id(g, "tokenizer.ggml.fim_suf_token_id", in.n_vocab, &fim[1], err)) ||
                (st = gguf_id(g, "tokenizer.ggml.fim_mid_token_id", in.n_vocab, &fim[2], err)))) {
        sk_tokenizer_free(*out);
        *out = NULL;
    }
    if (!st) sk_tokenizer_set_fim(*out, fim);
    sk_vocab_buf_free(&buf);
    return st;
}
