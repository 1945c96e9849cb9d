/* adamw.c - the optimizer step and the gradient norm (adamw.h). */
#include "adamw.h"

#include <math.h>

double tr_grad_norm(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

typedef struct adamw_job {
    const tr_adamw *o;
    float *w, *m, *v;
    const float *g;
    const uint8_t *decay;
    size_t n;
    double bc1, bc2;
} adamw_job;

static void adamw_range(void *arg, int ith, int nth) {
    adamw_job *j = arg;
    const tr_adamw *o = j->o;
    long lo, hi;
    sk_split_range((long)j->n, 64, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        double g = o->grad_scale * j->g[i];
        double m = o->beta1 * j->m[i] + (1.0 - o->beta1) * g;
        double v = o->beta2 * j->v[i] + (1.0 - o->beta2) * g * g;
        double w = j->w[i];
        if (j->decay[i]) w *= 1.0 - o->lr * o->weight_decay;
        w -= o->lr * (m / j->bc1) / (sqrt(v / j->bc2) + o->eps);
        j->m[i] = (float)m;
        j->v[i] = (float)v;
        j->w[i] = (float)w;
    }
}

void tr_adamw_update(sk_pool *pool, const tr_adamw *o, float *w, const float *grad, float *m,
                     float *v, const uint8_t *decay, size_t n) {
    adamw_job j = {o, w, m, v, grad, decay, n, 1.0 - pow(o->beta1, (double)o->t),
                   1.0 - pow(o->beta2, (double)o->t)};
    if (pool) sk_pool_run(pool, adamw_range, &j);
    else adamw_range(&j, 0, 1);
}
