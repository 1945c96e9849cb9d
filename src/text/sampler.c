/* sampler.c - choose the next token from logits (API: include/sinkllm.h).
 *
 * Chain (llama.cpp's common sampler, same order and meaning):
 *   penalties -> top-k -> top-p -> min-p -> temperature -> draw.
 *
 * After top-k the surviving set is always a best-first prefix of the
 * vocabulary ordered by (logit descending, id ascending), so each stage only
 * shortens that prefix. The prefix is produced lazily by a max-heap over all
 * n_vocab candidates (heapify O(n), each pop O(log n)): with the defaults
 * (top_k 40) one token costs O(n + 40 log n), and with no truncation at all
 * nothing is sorted.
 *
 * Randomness: xoshiro256** (Blackman & Vigna, 2018), its 256-bit state
 * filled from the 64-bit seed by splitmix64, as its authors recommend.
 * Uniform doubles in [0,1) take the top 53 bits of one output.
 *
 * Owns: a copy of the params, the candidate heap and the sorted prefix
 * (n_vocab entries each), per-token counts over the penalty window
 * (n_vocab int32) and the history ring (repeat_last_n ids); with a grammar
 * (sk_sampler_set_grammar) the token mask (n_vocab bytes, allocated there).
 * Nothing is allocated after those two calls.
 *
 * Grammar: the mask is the first stage, before penalties (disallowed ids
 * get -inf); it is computed once per matcher state (the matcher's version
 * number), and the drawn token advances the matcher. */
#include "sampler.h"

#include "grammar.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sk_cand {
    float logit;
    int32_t id;
} sk_cand;

struct sk_sampler {
    sk_sampler_params p;
    int64_t n_vocab;
    uint64_t seed;     /* the seed actually in use */
    uint64_t rng[4];   /* xoshiro256** state */

    sk_cand *heap;     /* (n_vocab) max-heap of candidates not yet popped */
    int64_t n_heap;
    sk_cand *sorted;   /* (n_vocab) candidates popped so far, best first */
    int64_t n_sorted;
    int64_t n_keep;    /* size of the surviving best-first prefix */
    float max_logit;   /* logit of the best candidate */

    int32_t *counts;   /* (n_vocab) occurrences of each id in the window */
    int32_t *ring;     /* (repeat_last_n) last accepted ids; NULL if last_n <= 0 */
    int32_t ring_cap;
    int32_t ring_len;
    int32_t ring_head; /* index of the oldest entry */

    sk_grammar_matcher *gm;   /* the constraint (borrowed), NULL when none */
    const sk_token_trie *gt;  /*   and the vocabulary's piece trie (borrowed) */
    uint8_t *mask;            /* (n_vocab) 1 = allowed, for the matcher state of: */
    uint64_t mask_version;    /*   version mask_version (0: not computed) */
};

/* ---- PRNG ------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_uniform(uint64_t s[4]) {
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

static uint64_t clock_seed(const void *salt) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)salt;
    uint64_t seed = splitmix64(&x);
    return seed == SK_SEED_RANDOM ? 0 : seed;
}

static void rng_seed(sk_sampler *s, uint64_t seed) {
    if (seed == SK_SEED_RANDOM) seed = clock_seed(s);
    s->seed = seed;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* ---- params ------------------------------------------------------------ */

void sk_sampler_params_default(sk_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = SK_SEED_RANDOM;
}

sk_status sk_sampler_params_validate(const sk_sampler_params *p, sk_error *err) {
    if (!p) return sk_error_set(err, SK_ERR_INVALID, "sampler params: NULL");
    const struct { const char *name; float v; } f[] = {
        {"temp", p->temp},
        {"top_p", p->top_p},
        {"min_p", p->min_p},
        {"repeat_penalty", p->repeat_penalty},
        {"presence_penalty", p->presence_penalty},
        {"frequency_penalty", p->frequency_penalty},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!isfinite(f[i].v))
            return sk_error_set(err, SK_ERR_INVALID, "sampler: %s must be a finite number",
                                f[i].name);
    if (p->top_p < 0.0f || p->top_p > 1.0f)
        return sk_error_set(err, SK_ERR_INVALID, "sampler: top_p must be in [0, 1], got %g",
                            (double)p->top_p);
    if (p->min_p < 0.0f || p->min_p > 1.0f)
        return sk_error_set(err, SK_ERR_INVALID, "sampler: min_p must be in [0, 1], got %g",
                            (double)p->min_p);
    if (p->repeat_penalty <= 0.0f)
        return sk_error_set(err, SK_ERR_INVALID, "sampler: repeat_penalty must be > 0, got %g",
                            (double)p->repeat_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > SK_SAMPLER_MAX_LAST_N)
        return sk_error_set(err, SK_ERR_INVALID,
                            "sampler: repeat_last_n must be in [-1, %d], got %d",
                            SK_SAMPLER_MAX_LAST_N, (int)p->repeat_last_n);
    return SK_OK;
}

/* ---- life cycle -------------------------------------------------------- */

sk_status sk_sampler_new(const sk_sampler_params *p, int64_t n_vocab, sk_sampler **out,
                         sk_error *err) {
    if (!out) return sk_error_set(err, SK_ERR_INVALID, "sampler: out is NULL");
    *out = NULL;
    sk_status st = sk_sampler_params_validate(p, err);
    if (st != SK_OK) return st;
    if (n_vocab < 1 || n_vocab > INT32_MAX)
        return sk_error_set(err, SK_ERR_INVALID, "sampler: n_vocab must be in [1, %d], got %lld",
                            INT32_MAX, (long long)n_vocab);

    sk_sampler *s = calloc(1, sizeof *s);
    if (!s) return sk_error_set(err, SK_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->heap = malloc((size_t)n_vocab * sizeof *s->heap);
    s->sorted = malloc((size_t)n_vocab * sizeof *s->sorted);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->ring_cap = p->repeat_last_n > 0 ? p->repeat_last_n : 0;
    if (s->ring_cap > 0) s->ring = malloc((size_t)s->ring_cap * sizeof *s->ring);
    if (!s->heap || !s->sorted || !s->counts || (s->ring_cap > 0 && !s->ring)) {
        sk_sampler_free(s);
        return sk_error_set(err, SK_ERR_NOMEM, "sampler: out of memory (n_vocab %lld)",
                            (long long)n_vocab);
    }
    rng_seed(s, p->seed);
    *out = s;
    return SK_OK;
}

void sk_sampler_free(sk_sampler *s) {
    if (!s) return;
    free(s->heap);
    free(s->sorted);
    free(s->counts);
    free(s->ring);
    free(s->mask);
    free(s);
}

sk_status sk_sampler_set_grammar(sk_sampler *s, sk_grammar_matcher *m, const sk_token_trie *t,
                                 sk_error *err) {
    if (!m || !t) {
        s->gm = NULL;
        s->gt = NULL;
        return SK_OK;
    }
    if (t->n_vocab != s->n_vocab)
        return sk_error_set(err, SK_ERR_INVALID, "sampler: the token trie has %lld tokens, the sampler %lld",
                            (long long)t->n_vocab, (long long)s->n_vocab);
    if (!s->mask && !(s->mask = malloc((size_t)s->n_vocab)))
        return sk_error_set(err, SK_ERR_NOMEM, "sampler: out of memory");
    s->gm = m;
    s->gt = t;
    s->mask_version = 0;
    return SK_OK;
}

void sk_sampler_apply_grammar(sk_sampler *s, float *logits) {
    if (!s->gm) return;
    uint64_t v = g_matcher_version(s->gm);
    if (s->mask_version != v) {
        sk_grammar_mask(s->gm, s->gt, s->mask);
        s->mask_version = v;
    }
    for (int64_t i = 0; i < s->n_vocab; i++)
        if (!s->mask[i]) logits[i] = -INFINITY;
}

void sk_sampler_reset(sk_sampler *s, uint64_t seed) {
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    s->ring_len = 0;
    s->ring_head = 0;
    rng_seed(s, seed);
}

uint64_t sk_sampler_seed(const sk_sampler *s) { return s->seed; }

void sk_sampler_accept(sk_sampler *s, int32_t tok) {
    if (tok < 0 || tok >= s->n_vocab || s->p.repeat_last_n == 0) return;
    if (s->ring_cap > 0) {
        if (s->ring_len == s->ring_cap) { /* evict the oldest */
            s->counts[s->ring[s->ring_head]]--;
            s->ring[s->ring_head] = tok;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = tok;
            s->ring_len++;
        }
    }
    if (s->counts[tok] < INT32_MAX) s->counts[tok]++; /* -1: counts only grow */
}

/* ---- the chain --------------------------------------------------------- */

/* Total order: a before b when its logit is higher, or equal with lower id. */
static int cand_better(sk_cand a, sk_cand b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static void heap_sift_down(sk_cand *h, int64_t n, int64_t i) {
    sk_cand x = h[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_better(h[c + 1], h[c])) c++;
        if (!cand_better(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Pop from the heap into the sorted prefix until it holds at least want
 * entries (or the heap is empty). */
static void ensure_sorted(sk_sampler *s, int64_t want) {
    while (s->n_sorted < want && s->n_heap > 0) {
        s->sorted[s->n_sorted++] = s->heap[0];
        s->heap[0] = s->heap[--s->n_heap];
        if (s->n_heap > 1) heap_sift_down(s->heap, s->n_heap, 0);
    }
}

/* Repeat penalty divides positive logits and multiplies the others; then
 * logit -= count * frequency_penalty + (count > 0) * presence_penalty,
 * for every token seen in the window (llama.cpp's penalties sampler). */
static void apply_penalties(sk_sampler *s, float *logits) {
    const sk_sampler_params *p = &s->p;
    if (p->repeat_last_n == 0) return;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
        return;
    for (int64_t i = 0; i < s->n_vocab; i++) {
        int32_t c = s->counts[i];
        if (c == 0) continue;
        float l = logits[i];
        l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        logits[i] = l - (float)c * p->frequency_penalty - p->presence_penalty;
    }
}

/* Sum of exp(logit - max) over the first n of the best-first order. */
static double prefix_sum_exp(sk_sampler *s, int64_t n) {
    ensure_sorted(s, n);
    double z = 0.0;
    for (int64_t i = 0; i < n; i++) z += exp((double)s->sorted[i].logit - s->max_logit);
    return z;
}

/* Run penalties, top-k, top-p and min-p. Leaves the survivors as the first
 * n_keep of the best-first order: sorted[0..n_sorted) then, when n_keep
 * reaches past it, the whole remaining heap (n_keep == n_sorted + n_heap). */
static void run_chain(sk_sampler *s, float *logits) {
    const sk_sampler_params *p = &s->p;
    const int64_t n = s->n_vocab;
    apply_penalties(s, logits);

    if (p->temp <= 0.0f) { /* greedy: the best alone, by one scan (no heap: 9% of a batched decode) */
        sk_cand best = {-INFINITY, 0};
        for (int64_t i = 0; i < n; i++) {
            sk_cand c = {isnan(logits[i]) ? -INFINITY : logits[i], (int32_t)i};
            if (cand_better(c, best)) best = c;
        }
        s->sorted[0] = best;
        s->n_sorted = 1;
        s->n_heap = 0;
        s->max_logit = best.logit;
        s->n_keep = 1;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float l = logits[i];
        s->heap[i].logit = isnan(l) ? -INFINITY : l;
        s->heap[i].id = (int32_t)i;
    }
    s->n_heap = n;
    s->n_sorted = 0;
    for (int64_t i = n / 2 - 1; i >= 0; i--) heap_sift_down(s->heap, n, i);
    s->max_logit = s->heap[0].logit;
    s->n_keep = n;

    if (!isfinite(s->max_logit)) { /* all -inf: nothing to weigh; keep the best */
        s->n_keep = 1;
        ensure_sorted(s, 1);
        return;
    }

    if (p->top_k > 0 && p->top_k < n) {
        s->n_keep = p->top_k;
        ensure_sorted(s, s->n_keep);
    }

    if (p->top_p < 1.0f) {
        double z;
        if (s->n_keep < n) {
            z = prefix_sum_exp(s, s->n_keep);
        } else { /* nothing popped yet: sum the heap as it stands */
            z = 0.0;
            for (int64_t i = 0; i < s->n_heap; i++)
                z += exp((double)s->heap[i].logit - s->max_logit);
        }
        double cum = 0.0;
        for (int64_t i = 0; i < s->n_keep; i++) {
            ensure_sorted(s, i + 1);
            cum += exp((double)s->sorted[i].logit - s->max_logit) / z;
            if (cum >= p->top_p) {
                s->n_keep = i + 1;
                break;
            }
        }
    }

    if (p->min_p > 0.0f) { /* keep logit >= max + log(min_p), i.e. prob >= min_p * p_max */
        const float thr = s->max_logit + logf(p->min_p);
        int64_t i = 0;
        for (; i < s->n_keep; i++) {
            ensure_sorted(s, i + 1);
            if (s->sorted[i].logit < thr) break;
        }
        s->n_keep = i > 0 ? i : 1;
    }
}

/* Weight of candidate c in the draw. */
static double cand_weight(const sk_sampler *s, sk_cand c, double inv_temp) {
    return exp(((double)c.logit - s->max_logit) * inv_temp);
}

/* The survivors as two spans: sorted[0..*n_a) and heap[0..*n_b). */
static void survivors(sk_sampler *s, int64_t *n_a, int64_t *n_b) {
    if (s->n_keep <= s->n_sorted) {
        *n_a = s->n_keep;
        *n_b = 0;
    } else if (s->n_keep == s->n_sorted + s->n_heap) {
        *n_a = s->n_sorted;
        *n_b = s->n_heap;
    } else { /* only reached if a stage left a partial heap: sort it out */
        ensure_sorted(s, s->n_keep);
        *n_a = s->n_keep;
        *n_b = 0;
    }
}

static double survivors_z(sk_sampler *s, int64_t n_a, int64_t n_b, double inv_temp) {
    double z = 0.0;
    for (int64_t i = 0; i < n_a; i++) z += cand_weight(s, s->sorted[i], inv_temp);
    for (int64_t i = 0; i < n_b; i++) z += cand_weight(s, s->heap[i], inv_temp);
    return z;
}

/* Draw from the chain's survivors (run_chain done). */
static int32_t draw(sk_sampler *s) {
    if (s->n_keep == 1) return s->sorted[0].id;

    int64_t n_a, n_b;
    survivors(s, &n_a, &n_b);
    const double inv_temp = 1.0 / (double)s->p.temp;
    const double z = survivors_z(s, n_a, n_b, inv_temp);
    const double u = rng_uniform(s->rng) * z;
    double cum = 0.0;
    for (int64_t i = 0; i < n_a; i++) {
        cum += cand_weight(s, s->sorted[i], inv_temp);
        if (u < cum) return s->sorted[i].id;
    }
    for (int64_t i = 0; i < n_b; i++) {
        cum += cand_weight(s, s->heap[i], inv_temp);
        if (u < cum) return s->heap[i].id;
    }
    return s->sorted[0].id; /* rounding left u at the very top: the best */
}

int32_t sk_sampler_sample(sk_sampler *s, float *logits) {
    sk_sampler_apply_grammar(s, logits);
    run_chain(s, logits);
    int32_t t = draw(s);
    if (s->gm) sk_grammar_accept_token(s->gm, s->gt, t);
    return t;
}

int64_t sk_sampler_candidates(sk_sampler *s, float *logits, int32_t *ids, float *probs,
                              int64_t cap) {
    sk_sampler_apply_grammar(s, logits);
    run_chain(s, logits);
    const int64_t n_keep = s->n_keep;
    if (cap < 0) cap = 0;
    if (n_keep == 1) {
        if (cap > 0) {
            if (ids) ids[0] = s->sorted[0].id;
            if (probs) probs[0] = 1.0f;
        }
        return 1;
    }
    int64_t n_a, n_b;
    survivors(s, &n_a, &n_b);
    const double inv_temp = 1.0 / (double)s->p.temp;
    const double z = survivors_z(s, n_a, n_b, inv_temp);
    const int64_t n_out = cap < n_keep ? cap : n_keep;
    ensure_sorted(s, n_out); /* moves heap entries into sorted; z is unchanged */
    for (int64_t i = 0; i < n_out; i++) {
        if (ids) ids[i] = s->sorted[i].id;
        if (probs) probs[i] = (float)(cand_weight(s, s->sorted[i], inv_temp) / z);
    }
    return n_keep;
}
