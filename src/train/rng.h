/* rng.h - the trainer's random numbers: splitmix64, one 64-bit state, so
 * that a checkpoint saves the whole generator in one integer and a resumed
 * run draws exactly what the uninterrupted run would have drawn. */
#ifndef SK_TRAIN_RNG_H
#define SK_TRAIN_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t tr_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in (0, 1): never 0, so that log() is finite */
static inline double tr_rng_uniform(uint64_t *s) {
    return ((double)(tr_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* standard normal (Box-Muller, one of the pair: two draws per number) */
static inline double tr_rng_normal(uint64_t *s) {
    double u1 = tr_rng_uniform(s), u2 = tr_rng_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* uniform integer in [0, n), n >= 1 (the modulo bias is below 2^-40 for
 * the corpus sizes we draw from) */
static inline uint64_t tr_rng_below(uint64_t *s, uint64_t n) { return tr_rng_next(s) % n; }

#endif
