/* vocab.h - the tokenizer of a GGUF file: reads the tokenizer.ggml.* keys
 * and builds a text-layer tokenizer (text/tokenizer.h) from them. */
#ifndef SK_VOCAB_H
#define SK_VOCAB_H

#include "gguf.h"
#include "text/tokenizer.h"

/* Build a tokenizer from GGUF metadata: tokenizer.ggml.model ("gpt2" -> BPE,
 * "llama" -> SPM, anything else SK_ERR_UNSUPPORTED), .pre, .tokens,
 * .scores, .token_type, .merges (BPE), .bos/eos/eot/unknown/padding
 * _token_id, .add_bos_token, .add_eos_token, .add_space_prefix. Missing
 * optional keys take llama.cpp's defaults (SPM: unk 0, bos 1, eos 2, add
 * BOS and a space prefix; BPE: no ids, add_bos only for the llama3 family).
 * A key of the wrong type, an array whose length disagrees with the token
 * count, or an id >= n_vocab is an SK_ERR_FORMAT error naming the key.
 * Nothing of g is kept: g may be freed afterwards. */
sk_status sk_tokenizer_from_gguf(const gguf_ctx *g, sk_tokenizer **out, sk_error *err);

#endif
