/* tokenizer.h - text <-> token ids from GGUF vocabulary metadata.
 *
 * Two algorithms:
 *   SK_TOK_BPE  byte-level BPE (tokenizer.ggml.model = "gpt2"): bytes are
 *               mapped to printable code points (GPT-2 byte encoder), text is
 *               first split by the pre-tokenizer that tokenizer.ggml.pre
 *               names (regexes of llama.cpp's pre-tokenizer types,
 *               implemented by hand over Unicode category tables), then
 *               merged by merge rank.
 *   SK_TOK_SPM  SentencePiece-style BPE (tokenizer.ggml.model = "llama"):
 *               score-ordered merges, "\xe2\x96\x81" for space, <0xXX> byte
 *               fallback.
 * Special tokens (token_type CONTROL or UNKNOWN) are recognised in the text
 * only when the caller asks (parse_special); text from a user is plain
 * text, so a user typing "<|im_start|>" gets the tokens for those characters.
 * USER_DEFINED tokens (added non-special tokens) are matched always, as
 * llama.cpp and Hugging Face do. Matching is by token text, longest first,
 * as llama.cpp's partition does. As llama.cpp, tokens with the texts of
 * end-of-turn / end-of-generation / fill-in-the-middle markers ("</s>",
 * "<|endoftext|>", "<reponame>", ...) are CONTROL whatever the file says,
 * and a token may drop the whitespace around it (SK_STRIP_*, Phi-3). All of
 * it is checked against llama.cpp token for token (tests/test_tokenizer.c).
 *
 * The tokenizer copies every string it keeps, so the init record and the
 * GGUF span may go away after sk_tokenizer_new.
 *
 * What a program calls (sk_tokenize, sk_token_to_piece, sk_detokenize, the
 * special-token getters, the streaming detokenizer) is declared in the
 * public header include/sinkllm.h; this header holds the construction and
 * the pre-tokenizer, which only the library and its tests use. */
#ifndef SK_TOKENIZER_H
#define SK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "sinkllm.h"

/* A string view: not NUL-terminated (token texts point into the GGUF span). */
typedef struct sk_str {
    const char *ptr;
    uint64_t len;
} sk_str;

enum sk_tok_kind { SK_TOK_BPE = 1, SK_TOK_SPM = 2 };

/* Per-token strip flags of a special token (llama.cpp's LSTRIP/RSTRIP
 * attributes): when the token is cut out of a text, the whitespace before
 * (LEFT) or after (RIGHT) it is dropped. */
enum { SK_STRIP_LEFT = 1, SK_STRIP_RIGHT = 2 };

typedef struct sk_vocab_init {
    enum sk_tok_kind kind;
    sk_str pre;              /* tokenizer.ggml.pre; len 0 = "default" */
    int64_t n_vocab;
    const sk_str *tokens;    /* n_vocab token texts */
    const float *scores;       /* n_vocab, or NULL */
    const int32_t *types;      /* n_vocab enum sk_token_type, or NULL (all NORMAL) */
    int64_t n_merges;
    const sk_str *merges;    /* "left right" pairs, BPE only; rank = index */
    int32_t bos, eos, eot, unk, pad;  /* -1 when absent */
    int add_bos, add_eos, add_space_prefix;
    const unsigned char *strip; /* n_vocab SK_STRIP_* flags, or NULL (none) */
} sk_vocab_init;

/* Build a tokenizer. Validates ids (bos/eos/... < n_vocab), that merges name
 * existing tokens, that the pre-tokenizer is known (unknown names are an
 * SK_ERR_UNSUPPORTED error naming it). Copies all strings. */
sk_status sk_tokenizer_new(const sk_vocab_init *init, sk_tokenizer **out, sk_error *err);
void sk_tokenizer_free(sk_tokenizer *tok);

/* Set the fill-in-the-middle tokens (prefix, suffix, middle) that the
 * vocabulary's metadata names; entries < 0 or >= n_vocab keep those found
 * by their texts (sk_tokenizer_fim). */
void sk_tokenizer_set_fim(sk_tokenizer *t, const int32_t ids[3]);

/* Make add_special put token id first, before BOS (-1: nothing; the
 * default). The loader sets a model's sink token here, so that every
 * sequence starts with it as in training. id out of range: SK_ERR_INVALID. */
sk_status sk_tokenizer_set_lead(sk_tokenizer *t, int32_t id, sk_error *err);

/* SK_STRIP_* flags of token id (0 for none, a bad id or no flags at all). */
int sk_tokenizer_token_strip(const sk_tokenizer *tok, int32_t id);

/* Whether the BPE pre-tokenizer named pre adds a BOS by default (the
 * llama3 family does); 0 for unknown names. */
int sk_tokenizer_pre_adds_bos(sk_str pre);

/* The pre-tokenizer alone (BPE only; for tests and tools): split
 * text[0..len) into the pieces that BPE merges independently, writing the
 * end byte offset of each piece to ends (at most cap) and the full count
 * to *n_out. Special tokens are not looked for. */
sk_status sk_tokenizer_split(const sk_tokenizer *tok, const char *text, size_t len,
                             size_t *ends, int64_t cap, int64_t *n_out, sk_error *err);

#endif
