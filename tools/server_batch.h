/* server_batch.h - continuous batching for `sinkllm serve`: one thread
 * runs the forward passes of every slot together (sk_decode_batch), so
 * that N streams read the weights once per step instead of N times.
 *
 * A slot's request thread hands its tokens to the batcher and waits
 * (srv_batcher_decode); the batcher thread gathers what is waiting into a
 * pass: first one token of every generating stream, then pre-fill chunks
 * in arrival order, within a token budget (--batch-tokens). While streams
 * are generating (a pass carried one within the last second), a pre-fill
 * gets at most budget / 32 tokens of a pass, and no more than keep the pass
 * within twice a pass of generating streams alone (the time a pre-fill row
 * adds grows with the depth of its cache: measured, moving averages), so
 * their inter-token latency stays close to a lone stream's; slots join and
 * leave between passes. A pass starts once every active generation is
 * waiting, or LINGER_MS after the first arrival (a stream that is busy
 * elsewhere, sending its last token, does not hold the others up).
 * Results do not depend on what shares a pass (sinkllm.h).
 *
 * Error convention: sk_status + sk_error, as server_slots.c. */
#ifndef SK_SERVER_BATCH_H
#define SK_SERVER_BATCH_H

#include <stdint.h>

#include "sinkllm.h"

typedef struct srv_batcher srv_batcher;

/* Histogram bounds of /metrics (upper bounds; the last bucket is +Inf). */
#define SRV_BATCH_HIST 8

typedef struct srv_batch_stats {
    uint64_t passes, tokens, seqs;        /* passes run, rows and contexts fed in them */
    uint64_t hist_tokens[SRV_BATCH_HIST]; /* passes by rows: <= 1, 2, 4, 8, 16, 64, 256, more */
    uint64_t hist_ms[SRV_BATCH_HIST];     /* passes by time: <= 5, 10, 20, 50, 100, 250, 1000 ms, more */
    double ms_sum;                        /* time in passes */
    int waiting;                          /* contexts waiting now */
} srv_batch_stats;

/* Start the batcher thread for contexts of m created with n_threads
 * threads (0: all cores), at most batch_tokens rows and max_seqs contexts
 * per pass. */
sk_status srv_batcher_new(const sk_model *m, int n_threads, int batch_tokens, int max_seqs, srv_batcher **out,
                          sk_error *err);

/* Stop the thread (waiting callers get SK_ERR_FULL) and free; NULL is a no-op. */
void srv_batcher_free(srv_batcher *b);

/* The library batch b's passes run on: slot contexts borrow its threads
 * (sk_context_params.threads), as only the batcher thread feeds them. */
sk_batch *srv_batcher_batch(srv_batcher *b);

/* Feed t[0..n) to ctx through the coming passes; returns once all are fed
 * (SK_OK, ctx's logits are those after t[n - 1]) or the pass failed (its
 * status; tokens of earlier passes stay fed). generated: t is a stream's
 * one generated token (a decode row, first in a pass), else pre-fill rows.
 * ctx must not be fed by anything else meanwhile. */
sk_status srv_batcher_decode(srv_batcher *b, sk_context *ctx, const int32_t *t, int64_t n, int generated,
                             sk_error *err);

/* A generation starts (+1) or ends (-1): the number of streams a pass
 * waits for. */
void srv_batcher_active(srv_batcher *b, int delta);

void srv_batcher_stats(srv_batcher *b, srv_batch_stats *out);

#endif
