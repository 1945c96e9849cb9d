/* sampler.h - the sampler chain (sampler.c): penalties, top-k, top-p,
 * min-p, temperature, draw.
 *
 * The whole sampler API is public: it is declared in include/sinkllm.h
 * (section "sampler"), which this header forwards to for the library
 * sources that name it. */
#ifndef SK_SAMPLER_H
#define SK_SAMPLER_H

#include "sinkllm.h"

#endif
