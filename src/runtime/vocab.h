/* vocab.h - the tokenizer of a GGUF file: reads the tokenizer.ggml.* keys
 * and builds a text-layer tokenizer (text/tokenizer.h) from them. */
#ifndef SK_VOCAB_H
#define SK_VOCAB_H

#include "gguf.h"
#include "text/tokenizer.h"

/* Build a tokenizer from GGUF metadata: tokenizer.ggml.model ("gpt2" -> BPE,
 * "llama" -> SPM, anything else SK_ERR_UNSUPPORTED), .pre, .tokens,
 * .scores, .token_type, .merges (BPE), .bos/eos/eot/unknown/padding
 * _token_id, .fim_pre/fim_suf/fim_mid_token_id, .add_bos_token,
 * .add_eos_token, .add_space_prefix. Missing
 * optional keys take llama.cpp's defaults (SPM: unk 0, bos 1, eos 2, add
 * BOS and a space prefix; BPE: no ids, add_bos only for the llama3 family).
 * A key of the wrong type, an array whose length disagrees with the token
 * count, or an id >= n_vocab is an SK_ERR_FORMAT error naming the key.
 * Nothing of g is kept: g may be freed afterwards. */
sk_status sk_tokenizer_from_gguf(const gguf_ctx *g, sk_tokenizer **out, sk_error *err);

/* The arrays an sk_vocab_init points to when read from a GGUF file. */
typedef struct sk_vocab_buf {
    sk_str *tokens, *merges;
    float *scores;
    int32_t *types;
    unsigned char *strip;
} sk_vocab_buf;

/* The first half of sk_tokenizer_from_gguf: read and check the keys into
 * *in, whose arrays live in *buf (free with sk_vocab_buf_free) and whose
 * strings point into g. Also sets in->strip as llama.cpp does for Phi-3
 * models (sk_vocab_strip_phi3). Lets a caller change the vocabulary before
 * sk_tokenizer_new (tests build variants of a real vocabulary this way).
 * On error *buf is empty. */
sk_status sk_vocab_read(const gguf_ctx *g, sk_vocab_init *in, sk_vocab_buf *buf, sk_error *err);
void sk_vocab_buf_free(sk_vocab_buf *b);

/* llama.cpp's per-model token attributes for Phi-3 (llama_vocab::impl::load,
 * applied when general.name contains "phi-3" or "phi3" in any case): every
 * special token (CONTROL, USER_DEFINED, UNKNOWN) and "</s>" get
 * SK_STRIP_RIGHT in strip[0..in->n_vocab), except "<unk>", "<s>" and
 * "<|endoftext|>". */
void sk_vocab_strip_phi3(const sk_vocab_init *in, unsigned char *strip);

#endif
