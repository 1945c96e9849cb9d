/* trainer.c - an sk_trainer: parameters, weight initialization, the AdamW
 * step with its schedule and clipping (include/sinkllm_train.h). */
#include "trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "rng.h"
#include "tgemm.h"

void sk_train_params_default(sk_train_params *p) {
    memset(p, 0, sizeof *p);
    p->n_layer = 4;
    p->n_embd = 128;
    p->n_head = 4;
    p->n_head_kv = 4;
    p->n_ff = 384;
    p->n_ctx = 256;
    p->tied = 1;
    p->norm_eps = 1e-5;
    p->rope_base = 10000.0;
    p->batch = 8;
    p->steps = 1000;
    p->lr = 1e-3;
    p->lr_min = 1e-4;
    p->warmup = 100;
    p->weight_decay = 0.1;
    p->beta1 = 0.9;
    p->beta2 = 0.95;
    p->adam_eps = 1e-8;
    p->clip = 1.0;
    p->seed = 1;
    p->sink_token = -1;
}

#define RANGE(f, lo, hi)                                                                        \
    if (!(p->f >= (lo) && p->f <= (hi)))                                                        \
        return sk_error_set(err, SK_ERR_INVALID, #f " = %g out of range %g..%g", (double)p->f,  \
                            (double)(lo), (double)(hi));

sk_status sk_train_params_validate(const sk_train_params *p, sk_error *err) {
    RANGE(n_layer, 1, SK_TRAIN_MAX_LAYERS);
    RANGE(n_embd, 2, SK_TRAIN_MAX_EMBD);
    RANGE(n_head, 1, p->n_embd);
    RANGE(n_head_kv, 1, p->n_head);
    RANGE(n_ff, 1, 4 * SK_TRAIN_MAX_EMBD);
    RANGE(n_vocab, 2, 1 << 24);
    RANGE(n_ctx, 1, SK_TRAIN_MAX_CTX);
    RANGE(batch, 1, SK_TRAIN_MAX_BATCH);
    RANGE(steps, 1, (double)INT64_C(1000000000000));
    RANGE(lr, 0, 10);
    RANGE(lr_min, 0, p->lr);
    RANGE(warmup, 0, (double)p->steps);
    RANGE(weight_decay, 0, 100);
    RANGE(beta1, 0, 0.999999);
    RANGE(beta2, 0, 0.999999);
    RANGE(adam_eps, 1e-30, 1);
    RANGE(clip, 0, 1e30);
    RANGE(norm_eps, 1e-12, 1);
    RANGE(rope_base, 1.0001, 1e12);
    if (p->n_embd % p->n_head != 0 || (p->n_embd / p->n_head) % 2 != 0)
        return sk_error_set(err, SK_ERR_INVALID,
                            "n_embd %d must be n_head %d times an even head dimension", p->n_embd,
                            p->n_head);
    if (p->n_head % p->n_head_kv != 0)
        return sk_error_set(err, SK_ERR_INVALID, "n_head %d is not divisible by n_head_kv %d",
                            p->n_head, p->n_head_kv);
    if (p->sink_token < -1 || p->sink_token >= p->n_vocab)
        return sk_error_set(err, SK_ERR_INVALID, "sink_token %d out of range -1..%lld", p->sink_token,
                            (long long)p->n_vocab - 1);
    if (p->tied != 0 && p->tied != 1) return sk_error_set(err, SK_ERR_INVALID, "tied must be 0 or 1");
    if (p->softmax1 != 0 && p->softmax1 != 1)
        return sk_error_set(err, SK_ERR_INVALID, "softmax1 must be 0 or 1");
    if (p->sink_logit != 0 && p->sink_logit != 1)
        return sk_error_set(err, SK_ERR_INVALID, "sink_logit must be 0 or 1");
    if (p->softmax1 && p->sink_logit)
        return sk_error_set(err, SK_ERR_INVALID, "softmax1 and sink_logit exclude each other");
    if (p->bf16 != 0 && p->bf16 != 1) return sk_error_set(err, SK_ERR_INVALID, "bf16 must be 0 or 1");
    /* the biggest buffers: attention probabilities and a layer's FFN
     * activations, counted in floats, must stay far below the address space */
    double att = (double)p->n_layer * p->batch * p->n_head * p->n_ctx * p->n_ctx;
    double ffn = (double)p->n_layer * p->batch * p->n_ctx * p->n_ff * 3;
    double emb = (double)p->n_vocab * p->n_embd * (p->tied ? 1 : 2) * 4;
    if (att + ffn + emb > 4e10)
        return sk_error_set(err, SK_ERR_INVALID,
                            "the model and batch need %.0f GB of buffers: too large",
                            (att + ffn + emb) * 4 / 1e9);
    return SK_OK;
}

double sk_train_lr(const sk_train_params *p, int64_t step) {
    if (step < p->warmup) return p->lr * (double)(step + 1) / (double)p->warmup;
    int64_t span = p->steps - p->warmup;
    double x = span > 0 ? (double)(step - p->warmup) / (double)span : 1.0;
    if (x > 1.0) x = 1.0;
    return p->lr_min + 0.5 * (p->lr - p->lr_min) * (1.0 + cos(3.141592653589793 * x));
}

void tr_dims_from_params(const sk_train_params *p, tr_dims *dm) {
    memset(dm, 0, sizeof *dm);
    dm->n_layer = p->n_layer;
    dm->d = p->n_embd;
    dm->nh = p->n_head;
    dm->nkv = p->n_head_kv;
    dm->hd = p->n_embd / p->n_head;
    dm->ff = p->n_ff;
    dm->V = (int)p->n_vocab;
    dm->T = p->n_ctx;
    dm->B = p->batch;
    dm->tied = p->tied;
    dm->softmax1 = p->softmax1;
    dm->sink_logit = p->sink_logit;
    dm->bf16 = p->bf16;
    dm->eps = (double)(float)p->norm_eps; /* as GGUF stores it */
    dm->rope_base = (double)(float)p->rope_base;
}

sk_status tr_trainer_alloc(const sk_train_params *p, int n_threads, sk_trainer **out, sk_error *err) {
    *out = NULL;
    sk_status st = sk_train_params_validate(p, err);
    if (st) return st;
    if (n_threads < 1 || n_threads > SK_MAX_THREADS)
        return sk_error_set(err, SK_ERR_INVALID, "n_threads %d out of range 1..%d", n_threads,
                            SK_MAX_THREADS);
    sk_trainer *t = calloc(1, sizeof *t);
    if (!t) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (trainer)");
    t->p = *p;
    tr_dims_from_params(p, &t->dm);
    tr_layout lay;
    tr_layout_init(&t->dm, &lay);
    t->n_params = lay.n_params;
    t->w = calloc(t->n_params, sizeof *t->w);
    t->m = calloc(t->n_params, sizeof *t->m);
    t->v = calloc(t->n_params, sizeof *t->v);
    t->decay = malloc(t->n_params);
    t->gn_part = malloc(sizeof *t->gn_part * tr_grad_norm_scratch(t->n_params));
    t->batch = calloc((size_t)p->batch * (p->n_ctx + 1), sizeof *t->batch);
    if (!t->w || !t->m || !t->v || !t->decay || !t->gn_part || !t->batch) {
        size_t np = t->n_params;
        sk_trainer_free(t);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (%zu parameters)", np);
    }
    memset(t->decay, 1, t->n_params);
    size_t d = (size_t)p->n_embd;
    memset(t->decay + lay.out_norm, 0, d);
    for (int l = 0; l < p->n_layer; l++) {
        memset(t->decay + lay.blk[l].attn_norm, 0, d);
        memset(t->decay + lay.blk[l].ffn_norm, 0, d);
        if (p->sink_logit) memset(t->decay + lay.blk[l].sinks, 0, (size_t)p->n_head);
    }
    if ((st = sk_pool_new(n_threads, &t->pool, err)) ||
        (st = tr_net_new_f32(&t->dm, t->w, t->pool, &t->net, err))) {
        sk_trainer_free(t);
        return st;
    }
    *out = t;
    return SK_OK;
}

/* N(0, s) for a matrix at off of n elements */
static void init_normal(float *w, size_t n, double s, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) w[i] = (float)(s * tr_rng_normal(rng));
}

sk_status sk_trainer_new(const sk_train_params *p, int n_threads, sk_trainer **out, sk_error *err) {
    sk_status st = tr_trainer_alloc(p, n_threads, out, err);
    if (st) return st;
    sk_trainer *t = *out;
    const tr_layout *lay = tr_net_layout_f32(t->net);
    uint64_t rng = p->seed ^ 0x5eed5eed5eed5eedULL; /* weights; samples use their own stream */
    size_t d = (size_t)p->n_embd, nq = d, nk = (size_t)t->dm.nkv * t->dm.hd, ff = (size_t)p->n_ff,
           V = (size_t)p->n_vocab;
    double s = 0.02, sr = 0.02 / sqrt(2.0 * p->n_layer);
    init_normal(t->w + lay->tok_embd, V * d, s, &rng);
    for (int l = 0; l < p->n_layer; l++) {
        const tr_block_off *b = &lay->blk[l];
        for (size_t i = 0; i < d; i++) t->w[b->attn_norm + i] = t->w[b->ffn_norm + i] = 1.0f;
        for (int h = 0; p->sink_logit && h < p->n_head; h++) t->w[b->sinks + h] = 0.0f; /* softmax1's start */
        init_normal(t->w + b->wq, nq * d, s, &rng);
        init_normal(t->w + b->wk, nk * d, s, &rng);
        init_normal(t->w + b->wv, nk * d, s, &rng);
        init_normal(t->w + b->wo, d * nq, sr, &rng);
        init_normal(t->w + b->wg, ff * d, s, &rng);
        init_normal(t->w + b->wu, ff * d, s, &rng);
        init_normal(t->w + b->wd, d * ff, sr, &rng);
    }
    for (size_t i = 0; i < d; i++) t->w[lay->out_norm + i] = 1.0f;
    if (!p->tied) init_normal(t->w + lay->output, V * d, s, &rng);
    t->rng = p->seed;
    return SK_OK;
}

void sk_trainer_free(sk_trainer *t) {
    if (!t) return;
    tr_net_free_f32(t->net);
    sk_pool_free(t->pool);
    free(t->w);
    free(t->m);
    free(t->v);
    free(t->decay);
    free(t->gn_part);
    free(t->batch);
    free(t);
}

const sk_train_params *sk_trainer_params(const sk_trainer *t) { return &t->p; }
const char *sk_trainer_kernels(const sk_trainer *t) { return (t->p.bf16 ? tg_get_bf16() : tg_get())->name; }
uint64_t sk_trainer_n_params(const sk_trainer *t) { return t->n_params; }
int64_t sk_trainer_steps_done(const sk_trainer *t) { return t->step; }
const float *sk_trainer_weights(const sk_trainer *t) { return t->w; }

static sk_status check_ids(const sk_trainer *t, const int32_t *ids, int64_t n, sk_error *err) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->p.n_vocab)
            return sk_error_set(err, SK_ERR_INVALID, "token %lld = %d out of range 0..%lld",
                                (long long)i, ids[i], (long long)t->p.n_vocab - 1);
    return SK_OK;
}

sk_status sk_trainer_step(sk_trainer *t, const int32_t *tokens, sk_train_stats *st, sk_error *err) {
    const sk_train_params *p = &t->p;
    sk_status s = check_ids(t, tokens, (int64_t)p->batch * (p->n_ctx + 1), err);
    if (s) return s;
    double loss = tr_net_loss_f32(t->net, tokens, p->n_ctx + 1, p->batch, p->n_ctx, 1);
    const float *g = tr_net_grad_f32(t->net);
    double gn = tr_grad_norm(t->pool, g, t->n_params, t->gn_part);
    if (!isfinite(loss) || !isfinite(gn))
        return sk_error_set(err, SK_ERR_INVALID, "diverged at step %lld: loss %g, gradient norm %g "
                            "(lower the learning rate)", (long long)t->step + 1, loss, gn);
    tr_adamw o = {.lr = sk_train_lr(p, t->step), .beta1 = p->beta1, .beta2 = p->beta2,
                  .eps = p->adam_eps, .weight_decay = p->weight_decay, .t = t->step + 1,
                  .grad_scale = p->clip > 0 && gn > p->clip ? p->clip / gn : 1.0};
    tr_adamw_update(t->pool, &o, t->w, g, t->m, t->v, t->decay, t->n_params);
    t->step++;
    if (st) {
        st->loss = loss;
        st->lr = o.lr;
        st->grad_norm = gn;
    }
    return SK_OK;
}

sk_status sk_trainer_loss(sk_trainer *t, const int32_t *tokens, int n_seq, int n_tok, double *loss,
                          sk_error *err) {
    if (n_seq < 1 || n_seq > t->p.batch || n_tok < 1 || n_tok > t->p.n_ctx)
        return sk_error_set(err, SK_ERR_INVALID, "%d sequences of %d tokens: the trainer holds "
                            "%d of %d", n_seq, n_tok, t->p.batch, t->p.n_ctx);
    sk_status s = check_ids(t, tokens, (int64_t)n_seq * (n_tok + 1), err);
    if (s) return s;
    *loss = tr_net_loss_f32(t->net, tokens, n_tok + 1, n_seq, n_tok, 0);
    return SK_OK;
}

sk_status sk_trainer_logits(sk_trainer *t, const int32_t *tokens, int n, float *out, sk_error *err) {
    if (n < 1 || n > t->p.n_ctx)
        return sk_error_set(err, SK_ERR_INVALID, "%d tokens: 1..%d", n, t->p.n_ctx);
    sk_status s = check_ids(t, tokens, n, err);
    if (s) return s;
    tr_net_logits_f32(t->net, tokens, n, out);
    return SK_OK;
}
