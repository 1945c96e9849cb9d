/* trainer.h - the inside of an sk_trainer (include/sinkllm_train.h), shared
 * by the files of this layer: trainer.c (steps), data.c (samples and
 * evaluation), checkpoint.c, export.c. */
#ifndef SK_TRAIN_TRAINER_H
#define SK_TRAIN_TRAINER_H

#include <stdint.h>

#include "kernels/threadpool.h"
#include "net.h"
#include "sinkllm_train.h"

struct sk_trainer {
    sk_train_params p;
    tr_dims dm;
    sk_pool *pool;
    tr_net_f32 *net;
    float *w;            /* (n_params) weights */
    float *m, *v;        /* (n_params) AdamW moments */
    uint8_t *decay;      /* (n_params) 1: weight decay applies (matrices, not norms) */
    double *gn_part;     /* the gradient norm's block sums (adamw.h) */
    int32_t *batch;      /* (batch, n_ctx + 1) scratch of sk_trainer_eval */
    size_t n_params;
    int64_t step;        /* steps done */
    uint64_t rng;        /* the sample generator (splitmix64 state) */
};

/* Net dimensions of validated params. */
void tr_dims_from_params(const sk_train_params *p, tr_dims *dm);

/* A trainer with every buffer allocated and the weights uninitialized
 * (sk_trainer_new initializes them, sk_trainer_load reads them). */
sk_status tr_trainer_alloc(const sk_train_params *p, int n_threads, sk_trainer **out, sk_error *err);

#endif
