/* adamw.c - the optimizer step and the gradient norm (adamw.h). */
#include "adamw.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/cpu.h"

/* blocks of TR_NORM_BLOCK elements, each summed in 8 interleaved partial
 * sums and a tree; the block sums added in index order: the same bits
 * whatever the thread count, which only decides who sums which block */
#define TR_NORM_BLOCK 65536

typedef struct norm_job {
    const float *g;
    size_t n;
    double *part; /* one per block */
} norm_job;

static double block_sumsq(const float *g, size_t n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++) s[0] += (double)g[i] * g[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void norm_blocks(void *arg, int ith, int nth) {
    norm_job *j = arg;
    size_t nb = (j->n + TR_NORM_BLOCK - 1) / TR_NORM_BLOCK;
    long lo, hi;
    sk_split_range((long)nb, 1, ith, nth, &lo, &hi);
    for (long b = lo; b < hi; b++) {
        size_t o = (size_t)b * TR_NORM_BLOCK, m = j->n - o < TR_NORM_BLOCK ? j->n - o : TR_NORM_BLOCK;
        j->part[b] = block_sumsq(j->g + o, m);
    }
}

double tr_grad_norm(sk_pool *pool, const float *g, size_t n, double *scratch) {
    norm_job j = {g, n, scratch};
    if (pool) sk_pool_run(pool, norm_blocks, &j);
    else norm_blocks(&j, 0, 1);
    double s = 0.0;
    for (size_t b = 0; b < (n + TR_NORM_BLOCK - 1) / TR_NORM_BLOCK; b++) s += scratch[b];
    return sqrt(s);
}

size_t tr_grad_norm_scratch(size_t n) { return (n + TR_NORM_BLOCK - 1) / TR_NORM_BLOCK + 1; }

typedef struct adamw_job {
    const tr_adamw *o;
    float *w, *m, *v;
    const float *g;
    const uint8_t *decay;
    size_t n;
    double bc1, bc2;
} adamw_job;

void tr_adamw_range_ref(const tr_adamw_k *k, float *w, float *m, float *v, const float *g,
                        const uint8_t *decay, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double gi = k->gs * g[i];
        double mi = k->b1 * m[i] + k->c1 * gi;
        double vi = k->b2 * v[i] + k->c2 * gi * gi;
        double wi = w[i] * (decay[i] ? k->keep : 1.0); /* * 1 is exact: as no decay */
        wi -= k->lr * (mi / k->bc1) / (sqrt(vi / k->bc2) + k->eps);
        m[i] = (float)mi;
        v[i] = (float)vi;
        w[i] = (float)wi;
    }
}

static tr_adamw_fn g_fn;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void choose(void) {
    g_fn = strcmp(sk_cpu_isa(), "scalar") != 0 && sk_cpu_has_avx2() ? tr_adamw_range_avx2
                                                                      : tr_adamw_range_ref;
}
tr_adamw_fn tr_adamw_range(void) {
    pthread_once(&g_once, choose);
    return g_fn;
}

static void adamw_range(void *arg, int ith, int nth) {
    adamw_job *j = arg;
    const tr_adamw *o = j->o;
    long lo, hi;
    sk_split_range((long)j->n, 64, ith, nth, &lo, &hi);
    tr_adamw_k k = {1.0 - o->lr * o->weight_decay, o->beta1, 1.0 - o->beta1, o->beta2,
                    1.0 - o->beta2, o->grad_scale, o->lr, o->eps, j->bc1, j->bc2};
    if (hi > lo) tr_adamw_range()(&k, j->w + lo, j->m + lo, j->v + lo, j->g + lo, j->decay + lo,
                                  (size_t)(hi - lo));
}

void tr_adamw_update(sk_pool *pool, const tr_adamw *o, float *w, const float *grad, float *m,
                     float *v, const uint8_t *decay, size_t n) {
    adamw_job j = {o, w, m, v, grad, decay, n, 1.0 - pow(o->beta1, (double)o->t),
                   1.0 - pow(o->beta2, (double)o->t)};
    if (pool) sk_pool_run(pool, adamw_range, &j);
    else adamw_range(&j, 0, 1);
}
