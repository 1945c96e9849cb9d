/* sampler.h - choose the next token from logits.
 *
 * The chain and its defaults follow llama.cpp's (common sampling):
 *   penalties (repeat / frequency / presence over the last repeat_last_n
 *   accepted tokens) -> top-k -> top-p -> min-p -> temperature -> draw.
 * temp <= 0 is greedy (argmax after penalties; ties -> lowest id).
 * A sampler owns all its scratch (allocated in sk_sampler_new): sampling
 * allocates nothing. Deterministic for a given seed. */
#ifndef SK_SAMPLER_H
#define SK_SAMPLER_H

#include <stdint.h>

#include "status.h"

typedef struct sk_sampler_params {
    float temp;            /* 0.8; <= 0 greedy */
    int32_t top_k;         /* 40; <= 0 disables */
    float top_p;           /* 0.95; >= 1 disables */
    float min_p;           /* 0.05; <= 0 disables */
    float repeat_penalty;  /* 1.0 = off */
    int32_t repeat_last_n; /* 64: penalize tokens among the last 64 accepted;
                              0 disables penalties; -1 = every token accepted
                              since the last reset (llama.cpp: the whole
                              context); at most SK_SAMPLER_MAX_LAST_N */
    float presence_penalty;  /* 0.0 */
    float frequency_penalty; /* 0.0 */
    uint64_t seed;         /* SK_SEED_RANDOM picks one from the clock */
} sk_sampler_params;

#define SK_SEED_RANDOM UINT64_MAX

/* Largest accepted repeat_last_n (the history ring is allocated up front). */
#define SK_SAMPLER_MAX_LAST_N (1 << 20)

/* Fill p with llama.cpp's defaults. */
void sk_sampler_params_default(sk_sampler_params *p);

/* Check ranges: every float finite (not NaN/inf), temp any value (<= 0 is
 * greedy, as in llama.cpp), 0 <= top_p <= 1, 0 <= min_p <= 1,
 * repeat_penalty > 0, -1 <= repeat_last_n <= SK_SAMPLER_MAX_LAST_N.
 * Returns SK_OK or SK_ERR_INVALID with a message naming the field. */
sk_status sk_sampler_params_validate(const sk_sampler_params *p, sk_error *err);

typedef struct sk_sampler sk_sampler;

/* Validate p, then allocate a sampler for a vocabulary of n_vocab tokens
 * (1 <= n_vocab <= INT32_MAX) with all its scratch. On success *out owns it
 * (free with sk_sampler_free); on error *out is NULL and err says why
 * (SK_ERR_INVALID, SK_ERR_NOMEM). */
sk_status sk_sampler_new(const sk_sampler_params *p, int64_t n_vocab, sk_sampler **out,
                         sk_error *err);
/* Release s and all it owns; NULL is a no-op. */
void sk_sampler_free(sk_sampler *s);

/* Choose a token. logits has n_vocab entries and may be modified (penalties
 * are applied in place). Allocates nothing. Returns an id in [0, n_vocab). */
int32_t sk_sampler_sample(sk_sampler *s, float *logits);

/* Run the chain on logits (modified in place as by sk_sampler_sample) but do
 * not draw: write the surviving candidates, best first (logit descending,
 * ties -> lowest id), up to cap of them, into ids and probs (either may be
 * NULL); probs are the draw probabilities after temperature (greedy: the
 * argmax alone, probability 1). Returns the number of survivors, which may
 * exceed cap. Does not advance the generator; allocates nothing. */
int64_t sk_sampler_candidates(sk_sampler *s, float *logits, int32_t *ids, float *probs,
                              int64_t cap);

/* Record a token as part of the history (prompt tokens too) for penalties.
 * Ids outside [0, n_vocab) are ignored. Allocates nothing. */
void sk_sampler_accept(sk_sampler *s, int32_t tok);

/* Forget the history; re-seed the generator with seed (SK_SEED_RANDOM: clock). */
void sk_sampler_reset(sk_sampler *s, uint64_t seed);

/* The seed in use (the one drawn from the clock when SK_SEED_RANDOM was
 * asked for), so that a run can be reproduced. */
uint64_t sk_sampler_seed(const sk_sampler *s);

#endif
