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
 * llama.cpp and Hugging Face do. Matching is by token text, longest first.
 *
 * The tokenizer copies every string it keeps, so the init record and the
 * GGUF span may go away after sk_tokenizer_new. */
#ifndef SK_TOKENIZER_H
#define SK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* A string view: not NUL-terminated (token texts point into the GGUF span). */
typedef struct sk_str {
    const char *ptr;
    uint64_t len;
} sk_str;

enum sk_tok_kind { SK_TOK_BPE = 1, SK_TOK_SPM = 2 };

/* GGUF tokenizer.ggml.token_type values */
enum sk_token_type {
    SK_TOKTYPE_UNDEFINED = 0,
    SK_TOKTYPE_NORMAL = 1,
    SK_TOKTYPE_UNKNOWN = 2,
    SK_TOKTYPE_CONTROL = 3,
    SK_TOKTYPE_USER_DEFINED = 4,
    SK_TOKTYPE_UNUSED = 5,
    SK_TOKTYPE_BYTE = 6,
};

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
} sk_vocab_init;

typedef struct sk_tokenizer sk_tokenizer;

/* Build a tokenizer. Validates ids (bos/eos/... < n_vocab), that merges name
 * existing tokens, that the pre-tokenizer is known (unknown names are an
 * SK_ERR_UNSUPPORTED error naming it). Copies all strings. */
sk_status sk_tokenizer_new(const sk_vocab_init *init, sk_tokenizer **out, sk_error *err);
void sk_tokenizer_free(sk_tokenizer *tok);

/* Whether the BPE pre-tokenizer named pre adds a BOS by default (the
 * llama3 family does); 0 for unknown names. */
int sk_tokenizer_pre_adds_bos(sk_str pre);


/* The pre-tokenizer alone (BPE only; for tests and tools): split
 * text[0..len) into the pieces that BPE merges independently, writing the
 * end byte offset of each piece to ends (at most cap) and the full count
 * to *n_out. Special tokens are not looked for. */
sk_status sk_tokenizer_split(const sk_tokenizer *tok, const char *text, size_t len,
                             size_t *ends, int64_t cap, int64_t *n_out, sk_error *err);

/* Tokenize text[0..len) (UTF-8; invalid bytes are encoded as their bytes).
 * add_special: prepend BOS / append EOS as the vocabulary says (add_bos...).
 * parse_special: recognise CONTROL/UNKNOWN token texts in the input
 * (USER_DEFINED ones are recognised either way).
 * Writes at most cap ids to out and sets *n_out to the full count; call
 * again with a larger buffer when *n_out > cap. */
sk_status sk_tokenize(const sk_tokenizer *tok, const char *text, size_t len,
                      int add_special, int parse_special,
                      int32_t *out, int64_t cap, int64_t *n_out, sk_error *err);

/* The bytes a token stands for (byte-level decoded; SPM "\xe2\x96\x81" ->
 * ' ', <0xXX> -> that byte). Control tokens render as their text only when
 * render_special is set, else as "". Returns the byte count (which may
 * exceed cap: then only cap bytes were written), or -1 for an id out of
 * range. */
int sk_token_to_piece(const sk_tokenizer *tok, int32_t id, int render_special,
                      char *buf, size_t cap);

int64_t sk_tokenizer_n_vocab(const sk_tokenizer *tok);
int32_t sk_tokenizer_bos(const sk_tokenizer *tok);
int32_t sk_tokenizer_eos(const sk_tokenizer *tok);
/* -1 if none; when the vocabulary names none, the first CONTROL token of
 * "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
 * ... (llama.cpp's list) is taken. */
int32_t sk_tokenizer_eot(const sk_tokenizer *tok);
/* Is id an end-of-generation token (EOS, EOT, or e.g. <|im_end|>)? */
int sk_token_is_eog(const sk_tokenizer *tok, int32_t id);
/* Token id of an exact token text (e.g. "<|im_start|>"), -1 if none. */
int32_t sk_token_lookup(const sk_tokenizer *tok, const char *text, size_t len);
int sk_token_type(const sk_tokenizer *tok, int32_t id);

/* Streaming detokenizer: feeds pieces and emits only whole UTF-8
 * characters, holding back an incomplete tail (at most 3 bytes) until the
 * next piece completes it. Invalid sequences are emitted as U+FFFD. */
typedef struct sk_detok {
    unsigned char pending[8];
    int n_pending;
} sk_detok;

void sk_detok_init(sk_detok *d);
/* Append the printable bytes of token id to out (cap bytes); returns bytes
 * written (pieces are short: cap >= 256 + 8 always suffices). */
size_t sk_detok_push(sk_detok *d, const sk_tokenizer *tok, int32_t id, int render_special,
                     char *out, size_t cap);
/* Emit whatever is still pending (as U+FFFD for an incomplete sequence). */
size_t sk_detok_flush(sk_detok *d, char *out, size_t cap);

#endif
