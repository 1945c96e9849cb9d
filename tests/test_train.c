/* test_train.c - the trainer through its public API (sinkllm_train.h).
 *
 *   adamw     two AdamW steps of three weights against a hand computation
 *             (decay, clipping scale, bias correction, eps);
 *   step      the trainer's first step: schedule, lr * sign(g) moves, the
 *             decay mask (norms not decayed, unread rows only decayed);
 *   schedule  warm-up and cosine values;
 *   overfit   a tiny model learns a short text by heart: loss from ln(V)
 *             to below 0.05 nats;
 *   resume    5 steps + save + load + 5 steps == 10 steps, bit for bit
 *             (weights and moments, through the file); 1 thread == 2;
 *   corrupt   truncated, extended, flipped-byte, foreign and missing
 *             checkpoints, and a bit flipped in each of the first 400
 *             bytes: a clear error, never a crash;
 *   corpus    empty, non-UTF-8, NUL, too short: clear errors;
 *   sink      --sink-token: every sample and held-out window starts with
 *             the sink, the export carries it (sk_model_sink_token), and
 *             the engine's logits after the sink match the trainer's;
 *   export    the model exported to GGUF (F32) and loaded by the
 *             inference engine gives the trainer's logits (F32 reference
 *             arithmetic, F32 KV cache); F16 export within F16 rounding;
 *             a --softmax1 model is refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "sinkllm_train.h"
#include "runtime/model.h"
#include "kernels/cpu.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "util_model.h"

static const char *TEXT =
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.";

/* a tiny model over byte ids (V = 128) */
static void tiny_params(sk_train_params *p) {
    sk_train_params_default(p);
    p->n_layer = 2;
    p->n_embd = 32;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->n_ff = 64;
    p->n_vocab = 128;
    p->n_ctx = 32;
    p->batch = 4;
    p->steps = 200;
    p->warmup = 10;
    p->lr = 1e-2;
    p->lr_min = 1e-3;
    p->weight_decay = 0.0;
}

static sk_train_data *text_data(double val_frac) {
    size_t n = strlen(TEXT);
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (unsigned char)TEXT[i];
    sk_train_data *d;
    assert_int_equal(sk_train_data_from_ids(ids, (int64_t)n, val_frac, &d, NULL), SK_OK);
    free(ids);
    return d;
}

static void test_schedule(void **state) {
    (void)state;
    sk_train_params p;
    sk_train_params_default(&p);
    p.lr = 1e-3, p.lr_min = 1e-4, p.warmup = 10, p.steps = 110;
    assert_true(fabs(sk_train_lr(&p, 0) - 1e-4) < 1e-15);
    assert_true(fabs(sk_train_lr(&p, 9) - 1e-3) < 1e-15);
    assert_true(fabs(sk_train_lr(&p, 10) - 1e-3) < 1e-15);
    assert_true(fabs(sk_train_lr(&p, 60) - 5.5e-4) < 1e-12); /* halfway down the cosine */
    assert_true(fabs(sk_train_lr(&p, 110) - 1e-4) < 1e-15);
    assert_true(fabs(sk_train_lr(&p, 500) - 1e-4) < 1e-15);
}

/* AdamW (src/train/adamw.h) against a hand computation: three weights,
 * the first two decayed, lr 0.01, betas 0.9/0.95, eps 1e-8, decay 0.1.
 * Step 1 (t = 1, gradients scaled by 0.5 as clipping would): the bias-
 * corrected update is lr * g / |g| = lr * sign(g), so
 *   w0 = 0.5 (1 - 0.001) - 0.01 = 0.4895, w1 = -1 (0.999) + 0.01 = -0.989,
 *   w2 = 2 - 0.01 * 5e-4 / (5e-4 + 1e-8) = 1.9900002 (no decay, eps shows).
 * Step 2 (scale 1): m = 0.9 m + 0.1 g, v = 0.95 v + 0.05 g^2, corrections
 * 1 - 0.9^2 and 1 - 0.95^2; the literals are that recursion evaluated in
 * double (Python, by the formula of the comment in adamw.h). */
static void test_adamw(void **state) {
    (void)state;
    float w[3] = {0.5f, -1.0f, 2.0f}, m[3] = {0}, v[3] = {0};
    const float g1[3] = {0.2f, -0.4f, 1e-3f}, g2[3] = {0.1f, 0.3f, -2.0f};
    const uint8_t decay[3] = {1, 1, 0};
    tr_adamw o = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                  .t = 1, .grad_scale = 0.5};
    tr_adamw_update(NULL, &o, w, g1, m, v, decay, 3);
    const double w1[3] = {0.4895, -0.989, 1.9900002}, m1[3] = {0.01, -0.02, 5e-5},
                 v1[3] = {0.0005, 0.002, 1.25e-8};
    for (int i = 0; i < 3; i++) {
        assert_true(fabs(w[i] - w1[i]) < 2e-7 * fabs(w1[i]) + 1e-9);
        assert_true(fabs(m[i] - m1[i]) < 1e-7 * fabs(m1[i]));
        assert_true(fabs(v[i] - v1[i]) < 1e-7 * fabs(v1[i]));
    }
    o.t = 2, o.grad_scale = 1.0;
    tr_adamw_update(NULL, &o, w, g2, m, v, decay, 3);
    const double w2[3] = {0.479010502, -0.990476131, 1.997348146};
    double worst = 0;
    for (int i = 0; i < 3; i++) worst = fmax(worst, fabs(w[i] - w2[i]) / fabs(w2[i]));
    print_message("  AdamW two steps vs hand computation: max rel err %.2e\n", worst);
    assert_true(worst < 3e-7);
    /* the gradient norm: summed in double */
    const float g[4] = {3, 4, 0, 0};
    double part[2];
    assert_true(tr_grad_norm_scratch(4) <= 2 && tr_grad_norm(NULL, g, 4, part) == 5.0);
    /* the AVX2 element loop == the scalar twin, bit for bit */
    if (sk_cpu_has_avx2()) {
        const size_t na = 1003;
        float *aw[2], *am[2], *av[2], *ag = malloc(na * 4);
        uint8_t *dec = malloc(na);
        for (int k = 0; k < 2; k++) aw[k] = malloc(na * 4), am[k] = malloc(na * 4), av[k] = malloc(na * 4);
        for (size_t i = 0; i < na; i++) {
            ag[i] = (float)sin(3.0 * i), dec[i] = i % 3 != 0;
            for (int k = 0; k < 2; k++)
                aw[k][i] = (float)cos(1.0 * i), am[k][i] = (float)(0.01 * sin(i)), av[k][i] = (float)(1e-4 * (1 + cos(i)));
        }
        tr_adamw_k kk = {1 - 0.01 * 0.1, 0.9, 0.1, 0.95, 0.05, 0.7, 0.01, 1e-8, 1 - 0.9 * 0.9, 1 - 0.95 * 0.95};
        tr_adamw_range_ref(&kk, aw[0], am[0], av[0], ag, dec, na);
        tr_adamw_range_avx2(&kk, aw[1], am[1], av[1], ag, dec, na);
        assert_memory_equal(aw[0], aw[1], na * 4);
        assert_memory_equal(am[0], am[1], na * 4);
        assert_memory_equal(av[0], av[1], na * 4);
        for (int k = 0; k < 2; k++) free(aw[k]), free(am[k]), free(av[k]);
        free(ag), free(dec);
    }
    /* blocks on a pool of 2 == one thread, bit for bit; vs a plain sum */
    size_t n = 200003;
    float *big = malloc(n * sizeof *big);
    double *sc = malloc(tr_grad_norm_scratch(n) * sizeof *sc), ref = 0;
    for (size_t i = 0; i < n; i++) big[i] = (float)sin((double)i), ref += (double)big[i] * big[i];
    sk_pool *pool;
    assert_int_equal(sk_pool_new(2, &pool, NULL), SK_OK);
    double n1 = tr_grad_norm(NULL, big, n, sc), n2 = tr_grad_norm(pool, big, n, sc);
    assert_true(n1 == n2 && fabs(n1 - sqrt(ref)) < 1e-12 * sqrt(ref));
    sk_pool_free(pool);
    free(big), free(sc);
}

/* The trainer's step applies the schedule, clipping and the decay mask:
 * with t = 1 and a gradient far above eps, every weight with a gradient
 * moves by lr * sign(g) after decay; the norms (no decay) move by exactly
 * lr, whatever the clipping. */
static void test_step(void **state) {
    (void)state;
    sk_train_params p;
    tiny_params(&p);
    p.n_layer = 1, p.steps = 10, p.warmup = 0, p.lr = 1e-3, p.lr_min = 1e-3, p.weight_decay = 0.5;
    p.tied = 0; /* so that an embedding row no token reads gets no gradient */
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    size_t n = sk_trainer_n_params(t);
    float *w0 = malloc(n * 4);
    memcpy(w0, sk_trainer_weights(t), n * 4);
    sk_train_data *d = text_data(0);
    int32_t *tok = malloc(sizeof *tok * (size_t)p.batch * (p.n_ctx + 1));
    assert_int_equal(sk_trainer_sample(t, d, tok, NULL), SK_OK);
    sk_train_stats st;
    assert_int_equal(sk_trainer_step(t, tok, &st, NULL), SK_OK);
    assert_true(fabs(st.lr - 1e-3) < 1e-15);
    assert_true(st.grad_norm > 0.1 && st.grad_norm < 100);
    const float *w1 = sk_trainer_weights(t);
    /* the first norm vector sits right after the embedding (128 x 32) */
    size_t norm0 = 128 * 32, exact = 0;
    for (size_t i = norm0; i < norm0 + 32; i++)
        if (fabs(fabs((double)w1[i] - w0[i]) - 1e-3) < 1e-6) exact++;
    assert_true(exact >= 30); /* a gradient below eps is rare */
    /* an embedding row no token reads: decayed only */
    int used[128] = {0};
    for (int i = 0; i < p.batch * (p.n_ctx + 1); i++) used[tok[i]] = 1;
    int row = 0;
    while (used[row]) row++;
    for (int i = 0; i < 32; i++)
        assert_true(fabs((double)w1[row * 32 + i] - w0[row * 32 + i] * (1 - 1e-3 * 0.5)) <
                    1e-7 * fabs(w0[row * 32 + i]) + 1e-12);
    assert_int_equal(sk_trainer_steps_done(t), 1);
    free(w0), free(tok);
    sk_train_data_free(d);
    sk_trainer_free(t);
}

static void overfit_case(int bf16) {
    sk_train_params p;
    tiny_params(&p);
    /* one window, the whole text from its first byte: every prediction has
     * its full left context, so the text can be learnt to zero loss */
    p.n_ctx = (int)strlen(TEXT) - 1, p.batch = 1, p.steps = 150, p.warmup = 10;
    p.bf16 = bf16;
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    sk_train_data *d = text_data(0);
    int32_t *tok = malloc(sizeof *tok * (size_t)p.batch * (p.n_ctx + 1));
    sk_train_stats st;
    double first = 0, last = 0;
    char line[512] = "";
    for (int64_t s = 0; s < p.steps; s++) {
        assert_int_equal(sk_trainer_sample(t, d, tok, NULL), SK_OK);
        sk_error e;
        if (sk_trainer_step(t, tok, &st, &e)) fail_msg("%s", e.msg);
        if (s == 0) first = st.loss;
        if (s % 25 == 0 || s == p.steps - 1)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %lld:%.3f", (long long)s, st.loss);
        last = st.loss;
    }
    double full;
    assert_int_equal(sk_trainer_eval(t, d, 0, &full, NULL), SK_ERR_INVALID); /* nothing held out */
    print_message("  overfit (%llu params, V 128%s): loss by step%s\n",
                  (unsigned long long)sk_trainer_n_params(t), bf16 ? ", bf16 products" : "", line);
    assert_true(fabs(first - log(128.0)) < 0.1);
    assert_true(last < 0.05);
    free(tok);
    sk_train_data_free(d);
    sk_trainer_free(t);
}

static void test_overfit(void **state) {
    (void)state;
    overfit_case(0);
    overfit_case(1);
}

static void run_steps(sk_trainer *t, sk_train_data *d, int n) {
    const sk_train_params *p = sk_trainer_params(t);
    int32_t *tok = malloc(sizeof *tok * (size_t)p->batch * (p->n_ctx + 1));
    for (int i = 0; i < n; i++) {
        assert_int_equal(sk_trainer_sample(t, d, tok, NULL), SK_OK);
        assert_int_equal(sk_trainer_step(t, tok, NULL, NULL), SK_OK);
    }
    free(tok);
}

static char g_dir[64];

static void resume_case(int sink_logit, int bf16) {
    sk_train_params p;
    tiny_params(&p);
    p.steps = 10, p.warmup = 3, p.weight_decay = 0.1, p.clip = 0.5;
    p.sink_logit = sink_logit;
    p.bf16 = bf16;
    sk_train_data *d = text_data(0.2);
    sk_trainer *a, *b, *c, *r;
    assert_int_equal(sk_trainer_new(&p, 1, &a, NULL), SK_OK);
    assert_int_equal(sk_trainer_new(&p, 2, &b, NULL), SK_OK);
    assert_int_equal(sk_trainer_new(&p, 1, &c, NULL), SK_OK);
    run_steps(a, d, 10);
    run_steps(b, d, 10);
    size_t n = sk_trainer_n_params(a);
    assert_memory_equal(sk_trainer_weights(a), sk_trainer_weights(b), n * 4); /* 1 thread == 2 */
    run_steps(c, d, 5);
    char path[128], path2[128];
    snprintf(path, sizeof path, "%s/a.ckpt", g_dir);
    snprintf(path2, sizeof path2, "%s/b.ckpt", g_dir);
    assert_int_equal(sk_trainer_save(c, path, sk_train_data_hash(d), NULL), SK_OK);
    uint64_t h = 0;
    sk_error e;
    if (sk_trainer_load(path, 2, &r, &h, &e)) fail_msg("%s", e.msg);
    assert_true(h == sk_train_data_hash(d));
    assert_int_equal(sk_trainer_params(r)->sink_logit, sink_logit);
    assert_int_equal(sk_trainer_params(r)->bf16, bf16);
    assert_int_equal(sk_trainer_steps_done(r), 5);
    run_steps(r, d, 5);
    assert_memory_equal(sk_trainer_weights(a), sk_trainer_weights(r), n * 4);
    /* moments too: the two final checkpoints are the same bytes */
    assert_int_equal(sk_trainer_save(a, path, 7, NULL), SK_OK);
    assert_int_equal(sk_trainer_save(r, path2, 7, NULL), SK_OK);
    FILE *f1 = fopen(path, "rb"), *f2 = fopen(path2, "rb");
    int same = 1, c1, c2;
    long bytes = 0;
    do {
        c1 = fgetc(f1), c2 = fgetc(f2), bytes++;
        if (c1 != c2) same = 0;
    } while (c1 != EOF && c2 != EOF);
    fclose(f1), fclose(f2);
    assert_true(same);
    double vl_a, vl_r;
    assert_int_equal(sk_trainer_eval(a, d, 0, &vl_a, NULL), SK_OK);
    assert_int_equal(sk_trainer_eval(r, d, 0, &vl_r, NULL), SK_OK);
    assert_true(vl_a == vl_r);
    print_message("  resume%s%s: 5 + save/load + 5 steps == 10 steps, checkpoints equal (%ld bytes); "
                  "1 thread == 2; held-out loss %.4f\n", sink_logit ? " (sink logits)" : "",
                  bf16 ? " (bf16 products)" : "", bytes - 1, vl_a);
    sk_trainer_free(a), sk_trainer_free(b), sk_trainer_free(c), sk_trainer_free(r);
    sk_train_data_free(d);
    unlink(path), unlink(path2);
}

static void test_resume(void **state) {
    (void)state;
    resume_case(0, 0);
    resume_case(1, 0);
    resume_case(0, 1);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_corrupt(void **state) {
    (void)state;
    sk_train_params p;
    tiny_params(&p);
    sk_trainer *t, *r = NULL;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/c.ckpt", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", g_dir);
    assert_int_equal(sk_trainer_save(t, path, 0, NULL), SK_OK);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    sk_error e;
    struct { const char *what; long len; long flip; const char *needle; } cases[] = {
        {"empty", 0, -1, "not a sinkllm"},
        {"truncated header", 40, -1, "truncated"},
        {"truncated weights", n - 100, -1, "bytes"},
        {"extended", n + 1, -1, "bytes"},
        {"flipped weight byte", n, n / 2, "checksum"},
        {"flipped checksum", n, n - 3, "checksum"},
        {"flipped shape", n, 16 + 8, ""},
        {"foreign magic", n, 0, "not a sinkllm"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char *c = malloc((size_t)n + 1);
        memcpy(c, b, (size_t)n);
        c[n] = 0;
        if (cases[i].flip >= 0) c[cases[i].flip] ^= 0x40;
        write_bytes(bad, c, (size_t)cases[i].len);
        sk_status st = sk_trainer_load(bad, 1, &r, NULL, &e);
        if (st != SK_ERR_FORMAT || r) fail_msg("%s: status %d", cases[i].what, st);
        if (!strstr(e.msg, cases[i].needle)) fail_msg("%s: message '%s'", cases[i].what, e.msg);
        print_message("  %-20s -> %s\n", cases[i].what, e.msg + strlen(bad) + 2);
        free(c);
    }
    /* every byte of the header and of the first weights flipped in turn:
     * each a format error (shape checks or the checksum), never a crash */
    int n_flip = 0;
    for (long i = 0; i < 400 && i < n; i++) {
        b[i] ^= 0x01;
        write_bytes(bad, b, (size_t)n);
        b[i] ^= 0x01;
        sk_status st = sk_trainer_load(bad, 1, &r, NULL, &e);
        if (st != SK_ERR_FORMAT || r) fail_msg("byte %ld flipped: status %d (%s)", i, st, e.msg);
        n_flip++;
    }
    print_message("  %d single-bit flips in the first bytes: each refused\n", n_flip);
    snprintf(bad, sizeof bad, "%s/none.ckpt", g_dir);
    assert_int_equal(sk_trainer_load(bad, 1, &r, NULL, &e), SK_ERR_IO);
    assert_int_equal(sk_trainer_load(g_dir, 1, &r, NULL, &e), SK_ERR_FORMAT); /* a directory */
    free(b);
    sk_trainer_free(t);
    unlink(path);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", g_dir);
    unlink(bad);
}

static void test_params(void **state) {
    (void)state;
    sk_train_params p;
    tiny_params(&p);
    sk_error e;
    assert_int_equal(sk_train_params_validate(&p, &e), SK_OK);
    sk_train_params q = p;
    q.n_head = 3;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.n_head_kv = 3;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.lr = NAN;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.lr_min = 1;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.warmup = p.steps + 1;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.n_vocab = 1;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.sink_logit = 2;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    q = p, q.sink_logit = 1, q.softmax1 = 1;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "exclude"));
    q = p, q.bf16 = 2;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "bf16"));
    q = p, q.n_ctx = 8192, q.batch = 4096;
    assert_int_equal(sk_train_params_validate(&q, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "GB"));
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 0, &t, &e), SK_ERR_INVALID);
    assert_int_equal(sk_trainer_new(&p, 1, &t, &e), SK_OK);
    int32_t tok[33 * 4] = {0};
    tok[5] = 128;
    assert_int_equal(sk_trainer_step(t, tok, NULL, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "out of range"));
    assert_int_equal(sk_trainer_steps_done(t), 0);
    sk_trainer_free(t);
}

static void test_corpus(void **state) {
    (void)state;
    sk_train_data *d;
    sk_error e;
    assert_int_equal(sk_train_data_new(NULL, "", 0, 0.1, &d, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(sk_train_data_new(NULL, "ab\xff" "cd", 5, 0.1, &d, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "offset 2"));
    assert_int_equal(sk_train_data_new(NULL, "ab\xe2\x82", 4, 0.1, &d, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "UTF-8"));
    assert_int_equal(sk_train_data_new(NULL, "ab\0cd", 5, 0.1, &d, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "NUL"));
    int32_t ids[3] = {1, 2, 3};
    assert_int_equal(sk_train_data_from_ids(ids, 1, 0, &d, &e), SK_ERR_INVALID);
    assert_int_equal(sk_train_data_from_ids(ids, 3, 0.9, &d, &e), SK_ERR_INVALID);
    assert_int_equal(sk_train_data_from_ids(ids, 3, 1.0, &d, &e), SK_ERR_INVALID);
    assert_int_equal(sk_train_data_from_ids(ids, 3, 0, &d, &e), SK_OK);
    /* too short for a sample of n_ctx + 1 */
    sk_train_params p;
    tiny_params(&p);
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    int32_t tok[33 * 4];
    assert_int_equal(sk_trainer_sample(t, d, tok, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "fewer than"));
    sk_train_data_free(d);
    sk_trainer_free(t);
}

static void test_export(void **state) {
    (void)state;
    sk_model *vocab = test_model();
    if (!vocab) skip();
    const sk_tokenizer *tk = sk_model_tokenizer(vocab);
    sk_train_params p;
    tiny_params(&p);
    p.n_vocab = sk_tokenizer_n_vocab(tk);
    p.n_ctx = 24, p.batch = 2, p.steps = 8, p.lr = 3e-3, p.warmup = 2;
    sk_train_data *d;
    sk_error e;
    const char *text = "The quick brown fox jumps over the lazy dog. A journey of a thousand miles "
                       "begins with a single step. All that glitters is not gold.";
    assert_int_equal(sk_train_data_new(tk, text, strlen(text), 0.0, &d, &e), SK_OK);
    /* tied, untied, tied with the zero sink (softmax1), tied with sink logits */
    for (int v = 0; v < 4; v++) {
        int tied = v != 1;
        p.tied = tied;
        p.softmax1 = v == 2;
        p.sink_logit = v == 3;
        sk_trainer *t;
        assert_int_equal(sk_trainer_new(&p, 2, &t, NULL), SK_OK);
        run_steps(t, d, 8); /* trained weights, not the initial ones */
        if (p.sink_logit) { /* logits far from their start (0): -2.5 .. 2.1 */
            const tr_layout *lay = tr_net_layout_f32(t->net);
            for (int l = 0; l < p.n_layer; l++)
                for (int h = 0; h < p.n_head; h++) t->w[lay->blk[l].sinks + h] += (float)(1.5 * (h - 1) - l);
        }
        char path[128];
        snprintf(path, sizeof path, "%s/m.gguf", g_dir);
        for (int f16 = 0; f16 <= 1; f16++) {
            if (sk_trainer_export(t, vocab, path, f16, &e)) fail_msg("export: %s", e.msg);
            sk_model *m;
            if (sk_model_load(path, &m, &e)) fail_msg("load: %s", e.msg);
            assert_int_equal(sk_model_hparams(m)->tied_output, tied);
            sk_context_params cp;
            sk_context_params_default(&cp);
            cp.n_threads = 1;
            cp.logits_all = 1;
            cp.precise = 1;
            cp.cache.policy = SK_CACHE_DENSE;
            cp.cache.n_ctx = 64;
            cp.cache.kv_type = SK_KV_F32;
            sk_context *c;
            if (sk_context_new(m, &cp, &c, &e)) fail_msg("context: %s", e.msg);
            int32_t ids[24];
            int64_t n = 0;
            assert_int_equal(sk_tokenize(tk, text, strlen(text), 0, 0, ids, 24, &n, NULL), SK_OK);
            int nt = 24;
            assert_int_equal(sk_decode(c, ids, nt, &e), SK_OK);
            size_t V = (size_t)p.n_vocab;
            float *lt = malloc(sizeof *lt * V * nt);
            assert_int_equal(sk_trainer_logits(t, ids, nt, lt, NULL), SK_OK);
            double worst = 0, scale = 0;
            for (int i = 0; i < nt; i++) {
                const float *li = sk_logits_ith(c, i);
                for (size_t j = 0; j < V; j++) {
                    worst = fmax(worst, fabs((double)li[j] - lt[i * V + j]));
                    scale = fmax(scale, fabs((double)lt[i * V + j]));
                }
            }
            print_message("  export %s%s %s: %d tokens x %zu logits, max |engine - trainer| %.2e "
                          "(max |logit| %.2f)\n", tied ? "tied" : "untied",
                          p.softmax1 ? " softmax1" : p.sink_logit ? " sink-logit" : "",
                          f16 ? "F16" : "F32",
                          nt, V, worst, scale);
            assert_true(worst < (f16 ? 2e-2 : 1e-4) * fmax(1.0, scale));
            if ((p.softmax1 || p.sink_logit) && !f16) { /* the sink logits matter */
                double off = 0;
                for (int l = 0; l < p.n_layer; l++) {
                    const float *sk = m->layers[l].sinks.data;
                    assert_non_null(sk);
                    const tr_layout *lay = tr_net_layout_f32(t->net);
                    for (int h = 0; h < p.n_head; h++)
                        assert_true(sk[h] == (p.softmax1 ? 0.0f : t->w[lay->blk[l].sinks + h]));
                    m->layers[l].sinks.data = NULL;
                }
                sk_context *c0;
                if (sk_context_new(m, &cp, &c0, &e)) fail_msg("context: %s", e.msg);
                assert_int_equal(sk_decode(c0, ids, nt, &e), SK_OK);
                for (int i = 0; i < nt; i++)
                    for (size_t j = 0; j < V; j++)
                        off = fmax(off, fabs((double)sk_logits_ith(c0, i)[j] - lt[i * V + j]));
                print_message("    (the same weights without the sink logits: %.2e away)\n", off);
                assert_true(off > 100 * worst);
                sk_context_free(c0);
            }
            free(lt);
            sk_context_free(c);
            sk_model_free(m);
        }
        unlink(path);
        sk_trainer_free(t);
    }
    /* a vocabulary of another size */
    sk_trainer *t;
    p.softmax1 = 0, p.sink_logit = 0, p.tied = 1, p.n_vocab = 128;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    assert_int_equal(sk_trainer_export(t, vocab, "/nonexistent/x.gguf", 0, &e), SK_ERR_INVALID);
    sk_trainer_free(t);
    sk_train_data_free(d);
}

static void test_sink(void **state) {
    (void)state;
    sk_model *vocab = test_model();
    if (!vocab) skip();
    const sk_tokenizer *tk = sk_model_tokenizer(vocab);
    sk_train_params p;
    tiny_params(&p);
    p.n_vocab = sk_tokenizer_n_vocab(tk);
    p.n_ctx = 16, p.batch = 3, p.steps = 4, p.warmup = 1;
    p.sink_token = sk_token_lookup(tk, "<|endoftext|>", 13);
    assert_true(p.sink_token >= 0);
    sk_train_data *d;
    sk_error e;
    const char *text = "It was the best of times, it was the worst of times, it was the age of "
                       "wisdom, it was the age of foolishness, it was the epoch of belief.";
    assert_int_equal(sk_train_data_new(tk, text, strlen(text), 0.3, &d, &e), SK_OK);
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    int32_t tok[3 * 17];
    assert_int_equal(sk_trainer_sample(t, d, tok, NULL), SK_OK);
    for (int b = 0; b < 3; b++) {
        assert_int_equal(tok[b * 17], p.sink_token);
        for (int i = 1; i < 17; i++) assert_int_not_equal(tok[b * 17 + i], p.sink_token);
    }
    run_steps(t, d, 4);
    double vl;
    assert_int_equal(sk_trainer_eval(t, d, 0, &vl, NULL), SK_OK);
    assert_true(isfinite(vl) && vl > 0);
    /* a checkpoint keeps it */
    char path[128];
    snprintf(path, sizeof path, "%s/s.ckpt", g_dir);
    assert_int_equal(sk_trainer_save(t, path, 0, NULL), SK_OK);
    sk_trainer *r;
    assert_int_equal(sk_trainer_load(path, 1, &r, NULL, NULL), SK_OK);
    assert_int_equal(sk_trainer_params(r)->sink_token, p.sink_token);
    sk_trainer_free(r);
    unlink(path);
    /* the export: the key, and the engine's logits after the sink */
    snprintf(path, sizeof path, "%s/s.gguf", g_dir);
    assert_int_equal(sk_trainer_export(t, vocab, path, 0, &e), SK_OK);
    sk_model *m;
    if (sk_model_load(path, &m, &e)) fail_msg("load: %s", e.msg);
    assert_int_equal(sk_model_sink_token(m), p.sink_token);
    assert_int_equal(sk_model_sink_token(vocab), -1);
    { /* every sequence starts with it, as in training: add_special and chat put it first */
        const sk_tokenizer *tm = sk_model_tokenizer(m), *tv = sk_model_tokenizer(vocab);
        assert_int_equal(sk_tokenizer_lead(tm), p.sink_token);
        assert_int_equal(sk_tokenizer_lead(tv), -1);
        int32_t a[32], b[32];
        int64_t na = 0, nb = 0;
        assert_int_equal(sk_tokenize(tm, "Call me Ishmael.", 16, 1, 0, a, 32, &na, &e), SK_OK);
        assert_int_equal(sk_tokenize(tv, "Call me Ishmael.", 16, 1, 0, b, 32, &nb, &e), SK_OK);
        assert_int_equal(na, nb + 1);
        assert_int_equal(a[0], p.sink_token);
        assert_memory_equal(a + 1, b, sizeof(int32_t) * (size_t)nb);
        assert_int_equal(sk_tokenize(tm, "Call me Ishmael.", 16, 0, 0, a, 32, &na, &e), SK_OK);
        assert_int_equal(na, nb); /* without add_special: the text alone */
        sk_chat_msg msg = {.role = "user", .content = "Hi"};
        assert_int_equal(sk_chat_render(tm, SK_CHAT_CHATML, &msg, 1, SK_CHAT_ADD_GEN, a, 32, &na, &e), SK_OK);
        assert_int_equal(sk_chat_render(tv, SK_CHAT_CHATML, &msg, 1, SK_CHAT_ADD_GEN, b, 32, &nb, &e), SK_OK);
        assert_int_equal(na, nb + 1);
        assert_int_equal(a[0], p.sink_token);
        assert_memory_equal(a + 1, b, sizeof(int32_t) * (size_t)nb);
        assert_int_equal(sk_chat_render(tm, SK_CHAT_CHATML, &msg, 1, SK_CHAT_ADD_GEN | SK_CHAT_CONTINUE, a, 32, &na,
                                        &e), SK_OK);
        assert_int_equal(na, nb); /* a continued conversation has it already */
    }
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = 1, cp.logits_all = 1, cp.precise = 1;
    cp.cache.policy = SK_CACHE_DENSE, cp.cache.n_ctx = 32, cp.cache.kv_type = SK_KV_F32;
    sk_context *c;
    assert_int_equal(sk_context_new(m, &cp, &c, &e), SK_OK);
    assert_int_equal(sk_decode(c, tok, 16, &e), SK_OK);
    size_t V = (size_t)p.n_vocab;
    float *lt = malloc(sizeof *lt * V * 16);
    assert_int_equal(sk_trainer_logits(t, tok, 16, lt, NULL), SK_OK);
    double worst = 0;
    for (int i = 0; i < 16; i++)
        for (size_t j = 0; j < V; j++) worst = fmax(worst, fabs((double)sk_logits_ith(c, i)[j] - lt[i * V + j]));
    print_message("  sink token %d: held-out loss %.3f, export logits max |diff| %.2e\n", p.sink_token, vl, worst);
    assert_true(worst < 1e-4);
    free(lt);
    sk_context_free(c);
    sk_model_free(m);
    /* the loader checks the key: the id patched to the vocabulary size */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    char *buf = malloc((size_t)n);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    const char *key = "llama.sink_token_id";
    char *at = memmem(buf, (size_t)n, key, strlen(key));
    assert_non_null(at);
    uint32_t bad = (uint32_t)p.n_vocab; /* after the key: u32 type, then the u32 value */
    fseek(f, (long)(at - buf) + (long)strlen(key) + 4, SEEK_SET);
    assert_int_equal(fwrite(&bad, 4, 1, f), 1);
    fclose(f);
    free(buf);
    assert_int_equal(sk_model_load(path, &m, &e), SK_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "sink_token_id"));
    print_message("  a sink token outside the vocabulary: %s\n", strstr(e.msg, "llama."));
    unlink(path);
    sk_trainer_free(t);
    sk_train_data_free(d);
    /* out of range */
    p.sink_token = (int32_t)p.n_vocab;
    assert_int_equal(sk_train_params_validate(&p, &e), SK_ERR_INVALID);
}

/* ids of text with tok (no BOS, plain text) into ids[cap]; returns the count */
static int64_t ids_of(const sk_tokenizer *tok, const char *text, int32_t *ids, int64_t cap) {
    int64_t n = -1;
    assert_int_equal(sk_tokenize(tok, text, strlen(text), 0, 0, ids, cap, &n, NULL), SK_OK);
    return n;
}

/* The experiment's vocabulary, a vocabulary-only GGUF (data/vocab4k.gguf,
 * scripts/make_vocab.py), as the trainer's --vocab: sk_model_load_vocab
 * reads it (and the tokenizer alone of a model file, with the ids
 * sk_model_load's tokenizer gives); an export trained on it carries its
 * tokenizer and runs in the engine, the sink token included; sk_model_load
 * refuses the file, sk_context_new and sk_store_open the weightless model. */
static void test_vocab_only(void **state) {
    (void)state;
    const char *vpath = test_data_path("../data/vocab4k.gguf");
    sk_model *v = NULL, *m = NULL;
    sk_error e;
    if (sk_model_load_vocab(vpath, &v, &e)) fail_msg("%s", e.msg);
    const sk_tokenizer *tk = sk_model_tokenizer(v);
    assert_int_equal(sk_tokenizer_n_vocab(tk), 4096);
    assert_int_equal(sk_model_hparams(v)->n_vocab, 4096);
    assert_int_equal(sk_model_hparams(v)->n_layer, 0);
    assert_string_equal(sk_model_hparams(v)->arch, "llama");
    assert_non_null(strstr(sk_model_desc(v), "vocabulary only"));
    assert_int_equal(sk_model_sink_token(v), -1);
    assert_int_equal(sk_tokenizer_bos(tk), 0);
    assert_int_equal(sk_tokenizer_eos(tk), 0);
    assert_int_equal(sk_tokenizer_add_bos(tk), 0);
    int32_t sink = sk_token_lookup(tk, "<|endoftext|>", 13);
    assert_int_equal(sink, 0);
    assert_int_equal(sk_token_type(tk, sink), SK_TOKTYPE_CONTROL);
    int32_t ids[256];
    assert_true(ids_of(tk, "<|endoftext|>", ids, 256) > 1); /* plain text: never the token */

    /* no weights: refused by the loader of models and by what runs one */
    assert_int_equal(sk_model_load(vpath, &m, &e), SK_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "vocabulary-only"));
    sk_context_params cp;
    sk_context_params_default(&cp);
    sk_context *c = NULL;
    assert_int_equal(sk_context_new(v, &cp, &c, &e), SK_ERR_INVALID);
    assert_non_null(strstr(e.msg, "without its weights"));
    sk_batch *bt = NULL;
    assert_int_equal(sk_batch_new(v, 1, 16, 1, &bt, &e), SK_ERR_INVALID);
    sk_store *so = NULL;
    assert_int_equal(sk_store_open(NULL, v, &so, &e), SK_ERR_INVALID);
    assert_int_equal(sk_model_load_vocab("/nonexistent/v.gguf", &m, &e), SK_ERR_IO);
    assert_null(m);

    /* a model file read as a vocabulary: the tokenizer of sk_model_load */
    sk_model *full = test_model();
    if (full) {
        sk_model *fv;
        if (sk_model_load_vocab(test_model_path(), &fv, &e)) fail_msg("%s", e.msg);
        int32_t a[256], b[256];
        int64_t na = ids_of(sk_model_tokenizer(full), TEXT, a, 256), nb = ids_of(sk_model_tokenizer(fv), TEXT, b, 256);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, sizeof *a * (size_t)na);
        assert_int_equal(sk_model_hparams(fv)->n_vocab, sk_model_hparams(full)->n_vocab);
        assert_int_equal(sk_model_hparams(fv)->n_layer, 0);
        sk_model_free(fv);
    }

    /* trained on it with the sink token, exported, run by the engine */
    sk_train_params p;
    tiny_params(&p);
    p.n_vocab = sk_tokenizer_n_vocab(tk);
    p.n_ctx = 16, p.batch = 2, p.steps = 4, p.warmup = 1, p.sink_token = sink;
    const char *text = "In the beginning God created the heaven and the earth. And the earth was "
                       "without form, and void; and darkness was upon the face of the deep.";
    sk_train_data *d;
    assert_int_equal(sk_train_data_new(tk, text, strlen(text), 0.0, &d, &e), SK_OK);
    sk_trainer *t;
    assert_int_equal(sk_trainer_new(&p, 1, &t, NULL), SK_OK);
    run_steps(t, d, 4);
    char path[128];
    snprintf(path, sizeof path, "%s/v.gguf", g_dir);
    if (sk_trainer_export(t, v, path, 0, &e)) fail_msg("export: %s", e.msg);
    if (sk_model_load(path, &m, &e)) fail_msg("load: %s", e.msg);
    const sk_tokenizer *mt = sk_model_tokenizer(m);
    assert_int_equal(sk_tokenizer_n_vocab(mt), 4096);
    assert_int_equal(sk_model_sink_token(m), sink);
    int32_t a[256], b[256];
    int64_t na = ids_of(tk, text, a, 256), nb = ids_of(mt, text, b, 256);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof *a * (size_t)na);
    char pa[64], pb[64];
    for (int32_t i = 0; i < 4096; i++) {
        int la = sk_token_to_piece(tk, i, 1, pa, sizeof pa), lb = sk_token_to_piece(mt, i, 1, pb, sizeof pb);
        assert_int_equal(la, lb);
        assert_memory_equal(pa, pb, (size_t)la);
        assert_int_equal(sk_token_type(tk, i), sk_token_type(mt, i));
    }
    /* the engine's logits after the sink token are the trainer's */
    int32_t seq[17] = {sink};
    memcpy(seq + 1, a, sizeof *a * 16);
    cp.n_threads = 1, cp.logits_all = 1, cp.precise = 1;
    cp.cache.policy = SK_CACHE_DENSE, cp.cache.n_ctx = 32, cp.cache.kv_type = SK_KV_F32;
    assert_int_equal(sk_context_new(m, &cp, &c, &e), SK_OK);
    assert_int_equal(sk_decode(c, seq, 16, &e), SK_OK);
    float *lt = malloc(sizeof *lt * 4096 * 16);
    assert_int_equal(sk_trainer_logits(t, seq, 16, lt, NULL), SK_OK);
    double worst = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 4096; j++) worst = fmax(worst, fabs((double)sk_logits_ith(c, i)[j] - lt[i * 4096 + j]));
    print_message("  vocab-only export: 4,096 tokens, logits max |diff| %.2e\n", worst);
    assert_true(worst < 1e-4);
    free(lt);
    sk_context_free(c);
    sk_model_free(m);
    unlink(path);
    sk_trainer_free(t);
    sk_train_data_free(d);
    sk_model_free(v);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_train_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    rmdir(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule), cmocka_unit_test(test_params), cmocka_unit_test(test_adamw), cmocka_unit_test(test_step),
        cmocka_unit_test(test_overfit), cmocka_unit_test(test_resume), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_corpus), cmocka_unit_test(test_sink), cmocka_unit_test(test_export),
        cmocka_unit_test(test_vocab_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
