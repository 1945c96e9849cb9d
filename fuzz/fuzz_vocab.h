/* fuzz_vocab.h - the real tokenizers the text and request harnesses run
 * on, read from the model files once (not part of the library).
 *
 * Only the GGUF metadata is read (gguf_parse + sk_tokenizer_from_gguf on a
 * private read-only mapping, unmapped afterwards: the tokenizer copies what
 * it keeps), so a harness does not pay for the weights. */
#ifndef SK_FUZZ_VOCAB_H
#define SK_FUZZ_VOCAB_H

#include <stddef.h>

#include "sinkllm.h"

enum { FUZZ_SMOLLM2 = 0, FUZZ_GEMMA3 = 1, FUZZ_N_VOCABS = 2 };

/* The tokenizer of vocabulary v: SmolLM2 from $SINKLLM_MODEL (else
 * models/SmolLM2-135M-Instruct.Q4_1.gguf), Gemma 3 from
 * $SINKLLM_GEMMA_MODEL (else models/gemma-3-270m-Q4_K_M.gguf). Loaded on
 * the first call and kept for the life of the process. A missing or bad
 * file prints the reason and exits with status 1: a harness that ran on no
 * tokenizer would pass without having tested anything. */
const sk_tokenizer *fuzz_vocab(int v);

/* 1 when the n bytes at s are valid UTF-8 (shared by the harnesses). */
int fuzz_utf8_valid(const unsigned char *s, size_t n);

/* "smollm2" or "gemma3", for messages. */
const char *fuzz_vocab_name(int v);

#endif
