/* data.c - a training corpus (sk_train_data): a text tokenized once and
 * split into a training part and a held-out tail; drawing sample windows
 * from it and evaluating the held-out loss (include/sinkllm_train.h). */
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"
#include "rng.h"
#include "text/unicode.h"
#include "trainer.h"

struct sk_train_data {
    int32_t *ids;   /* (n) the whole corpus */
    int64_t n;
    int64_t n_train; /* ids[0, n_train) train, ids[n_train, n) held out */
};

static sk_status split(sk_train_data *d, double val_frac, sk_error *err) {
    if (!(val_frac >= 0.0 && val_frac < 1.0))
        return sk_error_set(err, SK_ERR_INVALID, "held-out fraction %g out of range [0, 1)", val_frac);
    d->n_train = d->n - (int64_t)((double)d->n * val_frac);
    if (d->n_train < 2)
        return sk_error_set(err, SK_ERR_INVALID, "the training part has %lld tokens (at least 2)",
                            (long long)d->n_train);
    return SK_OK;
}

sk_status sk_train_data_from_ids(const int32_t *ids, int64_t n, double val_frac,
                                 sk_train_data **out, sk_error *err) {
    *out = NULL;
    if (n < 2) return sk_error_set(err, SK_ERR_INVALID, "a corpus of %lld tokens (at least 2)", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0) return sk_error_set(err, SK_ERR_INVALID, "token %lld is negative", (long long)i);
    sk_train_data *d = calloc(1, sizeof *d);
    if (!d || !(d->ids = malloc(sizeof *d->ids * (size_t)n))) {
        free(d);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (%lld tokens)", (long long)n);
    }
    memcpy(d->ids, ids, sizeof *ids * (size_t)n);
    d->n = n;
    sk_status st = split(d, val_frac, err);
    if (st) {
        sk_train_data_free(d);
        return st;
    }
    *out = d;
    return SK_OK;
}

sk_status sk_train_data_new(const sk_tokenizer *tok, const char *text, size_t len, double val_frac,
                            sk_train_data **out, sk_error *err) {
    *out = NULL;
    if (len == 0) return sk_error_set(err, SK_ERR_INVALID, "the corpus is empty");
    for (size_t i = 0; i < len;) {
        if (text[i] == 0) return sk_error_set(err, SK_ERR_INVALID, "the corpus has a NUL byte at offset %zu", i);
        int k = sk_utf8_check((const unsigned char *)text + i, len - i);
        if (k <= 0)
            return sk_error_set(err, SK_ERR_INVALID, "the corpus is not UTF-8: %s sequence at byte offset %zu",
                                k == 0 ? "truncated" : "invalid", i);
        i += (size_t)k;
    }
    int64_t cap = (int64_t)len + 16, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    if (!ids) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (tokenizing %zu bytes)", len);
    sk_status st = sk_tokenize(tok, text, len, 0, 0, ids, cap, &n, err);
    if (!st && n > cap) st = sk_error_set(err, SK_ERR_INVALID, "%lld tokens from %zu bytes", (long long)n, len);
    if (!st) st = sk_train_data_from_ids(ids, n, val_frac, out, err);
    free(ids);
    return st;
}

void sk_train_data_free(sk_train_data *d) {
    if (!d) return;
    free(d->ids);
    free(d);
}

int64_t sk_train_data_n_tokens(const sk_train_data *d, int held_out) {
    return held_out ? d->n - d->n_train : d->n_train;
}

uint64_t sk_train_data_hash(const sk_train_data *d) {
    uint64_t h = sk_fnv1a(SK_FNV_OFFSET, d->ids, sizeof *d->ids * (size_t)d->n);
    return (h ^ (uint64_t)d->n_train) * 0x100000001b3ULL;
}

static sk_status check_vocab(const sk_trainer *t, const int32_t *ids, int64_t n, sk_error *err) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= t->p.n_vocab)
            return sk_error_set(err, SK_ERR_INVALID, "corpus token %d is outside the model's "
                                "vocabulary of %lld", ids[i], (long long)t->p.n_vocab);
    return SK_OK;
}

sk_status sk_trainer_sample(sk_trainer *t, const sk_train_data *d, int32_t *tokens, sk_error *err) {
    const int64_t w = t->p.n_ctx + 1, sk = t->p.sink_token >= 0, nt = w - sk; /* text tokens */
    if (d->n_train < nt)
        return sk_error_set(err, SK_ERR_INVALID, "the training part has %lld tokens, fewer than "
                            "a sample of %lld", (long long)d->n_train, (long long)nt);
    for (int b = 0; b < t->p.batch; b++) {
        int64_t off = (int64_t)tr_rng_below(&t->rng, (uint64_t)(d->n_train - nt + 1));
        if (sk) tokens[b * w] = t->p.sink_token;
        memcpy(tokens + b * w + sk, d->ids + off, sizeof *tokens * (size_t)nt);
    }
    return check_vocab(t, tokens, (int64_t)t->p.batch * w, err);
}

sk_status sk_trainer_eval(sk_trainer *t, const sk_train_data *d, int max_windows, double *loss,
                          sk_error *err) {
    const int64_t nv = d->n - d->n_train;
    const int32_t *v = d->ids + d->n_train;
    if (nv < 2) return sk_error_set(err, SK_ERR_INVALID, "the held-out part has %lld tokens (at least 2)",
                                    (long long)nv);
    sk_status st = check_vocab(t, v, nv, err);
    if (st) return st;
    const int T = t->p.n_ctx, sk = t->p.sink_token >= 0;
    /* window w scores text tokens (w * T, (w + 1) * T] after their left
     * neighbour, or with a sink [w * T, (w + 1) * T) after the sink */
    if (nv < T + 1 - sk) {
        if (!sk) return sk_trainer_loss(t, v, 1, (int)nv - 1, loss, err);
        t->batch[0] = t->p.sink_token;
        memcpy(t->batch + 1, v, sizeof *v * (size_t)nv);
        return sk_trainer_loss(t, t->batch, 1, (int)nv, loss, err);
    }
    int64_t nw = (nv - 1 + sk) / T;
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    double sum = 0.0;
    for (int64_t w0 = 0; w0 < nw; w0 += t->p.batch) {
        int nb = (int)(nw - w0 < t->p.batch ? nw - w0 : t->p.batch);
        for (int b = 0; b < nb; b++) {
            int32_t *row = t->batch + (int64_t)b * (T + 1);
            if (sk) row[0] = t->p.sink_token;
            memcpy(row + sk, v + (w0 + b) * T, sizeof *v * (size_t)(T + 1 - sk));
        }
        double l;
        if ((st = sk_trainer_loss(t, t->batch, nb, T, &l, err))) return st;
        sum += l * nb;
    }
    *loss = sum / (double)nw;
    return SK_OK;
}
