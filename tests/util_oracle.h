/* oracle.h - a slow, double-precision reference of the StreamingLLM cache
 * semantics for models with F32 weights (tests only).
 *
 * It keeps every token's PRE-RoPE keys and values for every layer and, for
 * each new token, rebuilds attention from scratch: it lists the visible
 * tokens by the policy's definition, gives them positions 0..n-1 in cache
 * order (the paper's rule), rotates queries and keys at those positions and
 * runs softmax attention in double. It shares no code with src/kvcache.c
 * or the forward pass beyond reading the weights. */
#ifndef SK_TEST_ORACLE_H
#define SK_TEST_ORACLE_H

#include <stdint.h>

#include "runtime/model.h"

typedef struct oracle oracle;

/* policy SINK (n_sinks, n_window), WINDOW, DENSE, SHIFT (n_sinks = keep),
 * RECOMPUTE (n_window); max_tokens bounds the stream length. */
oracle *oracle_new(const sk_model *m, const sk_cache_params *p, int64_t max_tokens);
void oracle_free(oracle *o);
/* Feed one token; logits (n_vocab doubles) of that token's next-token
 * distribution. */
void oracle_step(oracle *o, int32_t tok, double *logits);

#endif
