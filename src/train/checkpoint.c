/* checkpoint.c - save and restore a trainer exactly (sk_trainer_save,
 * sk_trainer_load).
 *
 * File layout, little-endian:
 *   "SKTRAIN1" | u32 version (1) | u32 0
 *   14 x i64: n_layer n_embd n_head n_head_kv n_ff n_vocab n_ctx tied flags
 *             batch steps warmup seed sink_token
 *             (flags: softmax1 | sink_logit << 1 | bf16 << 2)
 *   9 x f64:  norm_eps rope_base lr lr_min weight_decay beta1 beta2 adam_eps clip
 *   i64 steps done | u64 sample generator | u64 corpus hash | u64 n_params
 *   f32 weights (n_params) | f32 AdamW m (n_params) | f32 AdamW v (n_params)
 *   u64 FNV-1a of every byte before it */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "trainer.h"

#define CKPT_MAGIC "SKTRAIN1"
#define CKPT_VERSION 1u
#define CKPT_N_INT 14
#define CKPT_N_REAL 9
#define CKPT_HEADER (8 + 4 + 4 + 8 * CKPT_N_INT + 8 * CKPT_N_REAL + 8 * 4)

typedef struct wr {
    FILE *f;
    uint64_t h;
    int bad;
} wr;

static void put(wr *w, const void *p, size_t n) {
    if (w->bad) return;
    if (fwrite(p, 1, n, w->f) != n) w->bad = 1;
    w->h = sk_fnv1a(w->h, p, n);
}

sk_status sk_trainer_save(const sk_trainer *t, const char *path, uint64_t data_hash, sk_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sk_error_set(err, SK_ERR_INVALID, "checkpoint path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return sk_error_set(err, SK_ERR_IO, "%s: %s", tmp, strerror(errno));
    const sk_train_params *p = &t->p;
    wr w = {f, SK_FNV_OFFSET, 0};
    uint32_t ver[2] = {CKPT_VERSION, 0};
    int64_t iv[CKPT_N_INT] = {p->n_layer, p->n_embd, p->n_head, p->n_head_kv, p->n_ff, p->n_vocab,
                              p->n_ctx, p->tied, p->softmax1 | p->sink_logit << 1 | p->bf16 << 2, p->batch, p->steps, p->warmup,
                              (int64_t)p->seed, p->sink_token};
    double rv[CKPT_N_REAL] = {p->norm_eps, p->rope_base, p->lr, p->lr_min, p->weight_decay,
                              p->beta1, p->beta2, p->adam_eps, p->clip};
    uint64_t tail[4] = {(uint64_t)t->step, t->rng, data_hash, t->n_params};
    put(&w, CKPT_MAGIC, 8);
    put(&w, ver, sizeof ver);
    put(&w, iv, sizeof iv);
    put(&w, rv, sizeof rv);
    put(&w, tail, sizeof tail);
    put(&w, t->w, sizeof *t->w * t->n_params);
    put(&w, t->m, sizeof *t->m * t->n_params);
    put(&w, t->v, sizeof *t->v * t->n_params);
    uint64_t h = w.h;
    put(&w, &h, sizeof h);
    int e = errno;
    if (!w.bad && fflush(f) != 0) w.bad = 1, e = errno;
    if (!w.bad && fsync(fileno(f)) != 0) w.bad = 1, e = errno;
    if (fclose(f) != 0 && !w.bad) w.bad = 1, e = errno;
    if (w.bad || rename(tmp, path) != 0) {
        if (!w.bad) e = errno;
        remove(tmp);
        return sk_error_set(err, SK_ERR_IO, "writing checkpoint %s: %s", path, strerror(e));
    }
    return SK_OK;
}

sk_status sk_trainer_load(const char *path, int n_threads, sk_trainer **out, uint64_t *data_hash,
                          sk_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char hd[CKPT_HEADER];
    size_t got = fread(hd, 1, sizeof hd, f);
    if (got < 16 || memcmp(hd, CKPT_MAGIC, 8) != 0) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: not a sinkllm training checkpoint", path);
    }
    uint32_t ver, zero;
    memcpy(&ver, hd + 8, 4);
    memcpy(&zero, hd + 12, 4);
    if (ver != CKPT_VERSION || zero != 0) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint version %u.%u (this build reads %u.0)",
                            path, ver, zero, CKPT_VERSION);
    }
    if (got < sizeof hd) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: truncated checkpoint (%zu bytes)", path, got);
    }
    int64_t iv[CKPT_N_INT];
    double rv[CKPT_N_REAL];
    uint64_t tail[4];
    memcpy(iv, hd + 16, sizeof iv);
    memcpy(rv, hd + 16 + sizeof iv, sizeof rv);
    memcpy(tail, hd + 16 + sizeof iv + sizeof rv, sizeof tail);
    sk_train_params p;
    sk_train_params_default(&p);
    for (int i = 0; i < 12; i++)
        if (iv[i] < INT32_MIN || iv[i] > INT32_MAX) {
            if (i == 5 || i == 10 || i == 11) continue; /* the int64 fields */
            fclose(f);
            return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint field %d out of range", path, i);
        }
    p.n_layer = (int)iv[0], p.n_embd = (int)iv[1], p.n_head = (int)iv[2], p.n_head_kv = (int)iv[3];
    p.n_ff = (int)iv[4], p.n_vocab = iv[5], p.n_ctx = (int)iv[6], p.tied = (int)iv[7];
    if (iv[8] & ~(int64_t)7) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint flags 0x%llx unknown", path,
                            (unsigned long long)iv[8]);
    }
    p.softmax1 = (int)(iv[8] & 1), p.sink_logit = (int)(iv[8] >> 1 & 1), p.bf16 = (int)(iv[8] >> 2 & 1);
    p.batch = (int)iv[9], p.steps = iv[10], p.warmup = iv[11];
    p.seed = (uint64_t)iv[12];
    if (iv[13] < -1 || iv[13] > INT32_MAX) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint sink token out of range", path);
    }
    p.sink_token = (int32_t)iv[13];
    p.norm_eps = rv[0], p.rope_base = rv[1], p.lr = rv[2], p.lr_min = rv[3];
    p.weight_decay = rv[4], p.beta1 = rv[5], p.beta2 = rv[6], p.adam_eps = rv[7], p.clip = rv[8];
    sk_error e2;
    if (sk_train_params_validate(&p, &e2)) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint parameters: %s", path, e2.msg);
    }
    tr_dims dm;
    tr_layout lay;
    tr_dims_from_params(&p, &dm);
    tr_layout_init(&dm, &lay);
    if (tail[3] != lay.n_params || (int64_t)tail[0] < 0) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint of %llu parameters, its shape has %zu",
                            path, (unsigned long long)tail[3], lay.n_params);
    }
    /* the size before any allocation: a corrupt shape must not allocate */
    long here = ftell(f), size = (fseek(f, 0, SEEK_END) == 0) ? ftell(f) : -1;
    double want_size = (double)CKPT_HEADER + 12.0 * (double)lay.n_params + 8.0;
    if (size < 0 || here < 0 || (double)size != want_size || fseek(f, here, SEEK_SET) != 0) {
        fclose(f);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint has %ld bytes, its shape needs %.0f "
                            "(truncated or extended)", path, size, want_size);
    }
    sk_trainer *t;
    sk_status st = tr_trainer_alloc(&p, n_threads, &t, err);
    if (st) {
        fclose(f);
        return st;
    }
    uint64_t h = sk_fnv1a(SK_FNV_OFFSET, hd, sizeof hd), want = 0;
    float *bufs[3] = {t->w, t->m, t->v};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        size_t nb = sizeof(float) * t->n_params;
        if (fread(bufs[i], 1, nb, f) != nb) ok = 0;
        else h = sk_fnv1a(h, bufs[i], nb);
    }
    unsigned char extra;
    if (ok && (fread(&want, 1, sizeof want, f) != sizeof want || fread(&extra, 1, 1, f) == 1)) ok = 0;
    fclose(f);
    if (!ok) {
        sk_trainer_free(t);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint has the wrong size (truncated or "
                            "extended)", path);
    }
    if (h != want) {
        sk_trainer_free(t);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: checkpoint checksum mismatch (corrupt file)", path);
    }
    t->step = (int64_t)tail[0];
    t->rng = tail[1];
    if (data_hash) *data_hash = tail[2];
    *out = t;
    return SK_OK;
}
