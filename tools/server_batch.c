/* server_batch.c - the batcher thread (server_batch.h). */
#include "server_batch.h"

#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINGER_MS 2.0     /* longest wait for the other active streams */
#define PREFILL_SHARE 32  /* while streams generate, a pre-fill gets budget / this per pass at most, */
#define FAIR_FACTOR 2.0   /* and no more rows than keep a pass within this many decode-only passes */

/* One caller's tokens, on its stack while it waits. */
typedef struct entry {
    struct entry *next;
    sk_context *ctx;
    const int32_t *t;
    int64_t n, fed;
    int decode;     /* one generated token of a stream (else pre-fill rows) */
    int take;       /* rows in the pass being run */
    int done;
    sk_status st;
    sk_error err;
    pthread_cond_t cv;
} entry;

struct srv_batcher {
    sk_batch *batch;
    int budget, max_seqs;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* work arrived, or stop */
    entry *head, *tail;      /* waiting, first come first */
    int n_waiting, n_active, stop;
    double first_ms;         /* when the oldest waiting entry arrived */
    double decode_ms;        /* when a pass last carried a generating stream's token */
    double *ema_pass_ms;     /* (max_seqs + 1) time of a pass of d generating streams only
                                (moving average per d; 0: not seen yet) */
    double ema_row_ms;       /* time a pre-fill row adds to a pass (moving average; its
                                attention grows with the cache) */
    srv_batch_stats st;
    /* the pass being assembled (batcher thread only) */
    entry **pass;
    sk_context **ctx;
    const int32_t **tok;
    int *n;
};

static void hist_add(uint64_t *h, const double *bounds, double v) {
    int i = 0;
    while (i < SRV_BATCH_HIST - 1 && v > bounds[i]) i++;
    h[i]++;
}

static void unlink_done(srv_batcher *b) {
    entry **pp = &b->head, *last = NULL;
    while (*pp) {
        entry *e = *pp;
        if (e->done) {
            *pp = e->next;
            b->n_waiting--;
            pthread_cond_signal(&e->cv);
        } else {
            last = e;
            pp = &e->next;
        }
    }
    b->tail = last;
    if (b->head) b->first_ms = sk_now_ms();
}

/* The time of a pass of d >= 1 generating streams only: measured for d, or
 * the nearest measured count, scaled up to d from a smaller one (a pass
 * costs less than linearly more per stream, so this errs long, which the
 * pre-fill cap bounds; scaled down from a larger one it would err short
 * and starve the pre-fill) (0 when none was measured). A
 * single average over every d would lag behind a growing batch and
 * charge the extra streams' time to the pre-fill rows, shrinking their
 * share pass after pass (16 clients at once: the last one's first token
 * after 7.2 s instead of 1.2 s). */
static double pass_ms(const srv_batcher *b, int d) {
    if (d < 1) d = 1;
    for (int k = 0; k <= b->max_seqs; k++) {
        if (d - k >= 1 && b->ema_pass_ms[d - k] > 0) return b->ema_pass_ms[d - k] * d / (d - k);
        if (d + k <= b->max_seqs && b->ema_pass_ms[d + k] > 0) return b->ema_pass_ms[d + k];
    }
    return 0;
}

/* Fill the pass from the queue (mu held): one row of every generating
 * stream first, then pre-fill chunks in arrival order. Returns its size. */
static int assemble(srv_batcher *b) {
    int k = 0, rows = 0, decoders = 0;
    for (entry *e = b->head; e && k < b->max_seqs; e = e->next)
        if (e->decode && rows < b->budget) {
            e->take = 1;
            b->pass[k++] = e;
            rows++;
            decoders++;
        } else
            e->take = 0;
    /* streams that generated within the last second may be between two
     * tokens (sampling, sending): their next pass must stay short too */
    if (decoders) b->decode_ms = sk_now_ms();
    int cap = b->budget;
    if (decoders || (b->n_active > 1 && sk_now_ms() - b->decode_ms < 1000.0)) {
        cap = b->budget / PREFILL_SHARE;
        double pass = pass_ms(b, decoders);
        if (pass > 0 && b->ema_row_ms > 0) {
            double fit = (FAIR_FACTOR - 1.0) * pass / b->ema_row_ms;
            if (fit < cap) cap = (int)fit;
        }
    }
    if (cap < 1) cap = 1;
    int prefill = 0;
    for (entry *e = b->head; e && k < b->max_seqs; e = e->next) {
        if (e->take || e->decode) continue;
        int64_t want = e->n - e->fed;
        int room = b->budget - rows < cap - prefill ? b->budget - rows : cap - prefill;
        int lim = sk_context_batch_size(e->ctx);
        int take = (int)(want < room ? want : room);
        if (take > lim) take = lim;
        if (take <= 0) break;
        e->take = take;
        b->pass[k++] = e;
        rows += take;
        prefill += take;
    }
    for (int j = 0; j < k; j++) {
        b->ctx[j] = b->pass[j]->ctx;
        b->tok[j] = b->pass[j]->t + b->pass[j]->fed;
        b->n[j] = b->pass[j]->take;
    }
    return k;
}

static void *batcher_main(void *arg) {
    srv_batcher *b = arg;
    static const double rows_b[SRV_BATCH_HIST - 1] = {1, 2, 4, 8, 16, 64, 256};
    static const double ms_b[SRV_BATCH_HIST - 1] = {5, 10, 20, 50, 100, 250, 1000};
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->stop) break;
        if (!b->head) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        double left = b->first_ms + LINGER_MS - sk_now_ms();
        if (b->n_waiting < b->n_active && left > 0) { /* wait for the other streams a little */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)(left * 1e6);
            ts.tv_sec += ns / 1000000000L;
            ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            continue;
        }
        int k = assemble(b);
        pthread_mutex_unlock(&b->mu);
        double t0 = sk_now_ms();
        sk_error err = {0};
        sk_status st = sk_decode_batch(b->batch, b->ctx, b->tok, b->n, k, &err);
        if (st && k > 1) /* whose? each alone (validation is all or nothing: nothing was fed) */
            for (int j = 0; j < k; j++) {
                sk_error e1 = {0};
                b->pass[j]->st = sk_decode_batch(b->batch, &b->ctx[j], &b->tok[j], &b->n[j], 1, &e1);
                if (b->pass[j]->st) b->pass[j]->err = e1;
            }
        else
            for (int j = 0; j < k; j++)
                if ((b->pass[j]->st = st)) b->pass[j]->err = err;
        double ms = sk_now_ms() - t0;
        pthread_mutex_lock(&b->mu);
        int rows = 0, dec = 0;
        double pass;
        for (int j = 0; j < k; j++) {
            entry *e = b->pass[j];
            rows += e->take;
            dec += e->decode;
            if (e->st) e->done = 1;
            else if ((e->fed += e->take) == e->n) e->done = 1;
        }
        double *ep = &b->ema_pass_ms[dec];
        if (!st && dec && rows == dec) /* generating streams only */
            *ep = *ep > 0 ? 0.8 * *ep + 0.2 * ms : ms;
        else if (!st && dec && (pass = pass_ms(b, dec)) > 0) { /* with pre-fill rows: what each added */
            double row = (ms - pass) / (rows - dec);
            if (row < 0) row = 0;
            b->ema_row_ms = b->ema_row_ms > 0 ? 0.8 * b->ema_row_ms + 0.2 * row : row;
        }
        b->st.passes++;
        b->st.tokens += (uint64_t)rows;
        b->st.seqs += (uint64_t)k;
        b->st.ms_sum += ms;
        hist_add(b->st.hist_tokens, rows_b, rows);
        hist_add(b->st.hist_ms, ms_b, ms);
        unlink_done(b);
    }
    for (entry *e = b->head; e; e = e->next) { /* stopping: nobody is left waiting */
        e->done = 1;
        e->st = sk_error_set(&e->err, SK_ERR_FULL, "the server is shutting down");
    }
    unlink_done(b);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

sk_batch *srv_batcher_batch(srv_batcher *b) { return b->batch; }

sk_status srv_batcher_new(const sk_model *m, int n_threads, int batch_tokens, int max_seqs, srv_batcher **out,
                          sk_error *err) {
    *out = NULL;
    srv_batcher *b = calloc(1, sizeof *b);
    if (!b) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (batcher)");
    b->budget = batch_tokens;
    b->max_seqs = max_seqs;
    b->pass = calloc((size_t)max_seqs, sizeof *b->pass);
    b->ctx = calloc((size_t)max_seqs, sizeof *b->ctx);
    b->tok = calloc((size_t)max_seqs, sizeof *b->tok);
    b->n = calloc((size_t)max_seqs, sizeof *b->n);
    b->ema_pass_ms = calloc((size_t)max_seqs + 1, sizeof *b->ema_pass_ms);
    sk_status st = (!b->pass || !b->ctx || !b->tok || !b->n || !b->ema_pass_ms)
                       ? sk_error_set(err, SK_ERR_NOMEM, "out of memory (batcher)")
                       : sk_batch_new(m, n_threads, batch_tokens, max_seqs, &b->batch, err);
    if (st) {
        free(b->pass), free(b->ctx), free(b->tok), free(b->n), free(b->ema_pass_ms), free(b);
        return st;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, batcher_main, b)) {
        sk_batch_free(b->batch);
        free(b->pass), free(b->ctx), free(b->tok), free(b->n), free(b->ema_pass_ms), free(b);
        return sk_error_set(err, SK_ERR_NOMEM, "cannot start the batcher thread");
    }
    *out = b;
    return SK_OK;
}

void srv_batcher_free(srv_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    sk_batch_free(b->batch);
    free(b->pass), free(b->ctx), free(b->tok), free(b->n), free(b->ema_pass_ms), free(b);
}

sk_status srv_batcher_decode(srv_batcher *b, sk_context *ctx, const int32_t *t, int64_t n, int generated,
                             sk_error *err) {
    if (n <= 0) return SK_OK;
    entry e = {.ctx = ctx, .t = t, .n = n, .decode = generated && n == 1};
    pthread_cond_init(&e.cv, NULL);
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        pthread_cond_destroy(&e.cv);
        return sk_error_set(err, SK_ERR_FULL, "the server is shutting down");
    }
    if (!b->head) b->first_ms = sk_now_ms();
    if (b->tail) b->tail->next = &e;
    else b->head = &e;
    b->tail = &e;
    b->n_waiting++;
    pthread_cond_signal(&b->cv);
    while (!e.done) pthread_cond_wait(&e.cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&e.cv);
    if (e.st && err) *err = e.err;
    return e.st;
}

void srv_batcher_active(srv_batcher *b, int delta) {
    pthread_mutex_lock(&b->mu);
    b->n_active += delta;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void srv_batcher_stats(srv_batcher *b, srv_batch_stats *out) {
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    out->waiting = b->n_waiting;
    pthread_mutex_unlock(&b->mu);
}
