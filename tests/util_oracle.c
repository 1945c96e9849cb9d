/* oracle.c - see oracle.h. Deliberately naive: clarity over speed. */
#include "util_oracle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct oracle {
    const sk_model *m;
    sk_cache_params p;
    int64_t max_tokens, n;
    int32_t *toks;       /* all tokens fed */
    double **kpre, **v;  /* per layer: (max_tokens, n_head_kv * head_dim) */
    int64_t shift_lo;    /* SHIFT: first visible window position */
};

static const float *wrow(const sk_tensor *t, int64_t r) {
    return (const float *)((const char *)t->data + (size_t)r * t->row_size);
}

static void matvec(const sk_tensor *w, const double *x, double *y) {
    for (int64_t r = 0; r < w->ne[1]; r++) {
        const float *row = wrow(w, r);
        double s = 0;
        for (int64_t i = 0; i < w->ne[0]; i++) s += row[i] * x[i];
        y[r] = s;
    }
}

static void rmsnorm(const double *x, const sk_tensor *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    const float *wv = w->data;
    for (int i = 0; i < n; i++) y[i] = x[i] * s * wv[i];
}

static void rope(double *x, int hd, int n_rot, int neox, double base, double pos) {
    for (int i = 0; i < n_rot / 2; i++) {
        double a = pos * pow(base, -2.0 * i / n_rot), c = cos(a), s = sin(a);
        int i0 = neox ? i : 2 * i, i1 = neox ? i + n_rot / 2 : 2 * i + 1;
        double x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * c - x1 * s;
        x[i1] = x0 * s + x1 * c;
    }
}

oracle *oracle_new(const sk_model *m, const sk_cache_params *p, int64_t max_tokens) {
    oracle *o = calloc(1, sizeof *o);
    o->m = m;
    o->p = *p;
    o->max_tokens = max_tokens;
    o->toks = calloc((size_t)max_tokens, sizeof(int32_t));
    int L = m->hp.n_layer, nkv = m->hp.n_head_kv * m->hp.head_dim;
    o->kpre = calloc((size_t)L, sizeof(double *));
    o->v = calloc((size_t)L, sizeof(double *));
    for (int l = 0; l < L; l++) {
        o->kpre[l] = calloc((size_t)(max_tokens * nkv), sizeof(double));
        o->v[l] = calloc((size_t)(max_tokens * nkv), sizeof(double));
    }
    o->shift_lo = p->n_sinks;
    return o;
}

void oracle_free(oracle *o) {
    if (!o) return;
    for (int l = 0; l < o->m->hp.n_layer; l++) {
        free(o->kpre[l]);
        free(o->v[l]);
    }
    free(o->kpre);
    free(o->v);
    free(o->toks);
    free(o);
}

/* Visible stream positions for the query at t, in cache order. */
static int64_t visible(oracle *o, int64_t t, int64_t *vis) {
    int64_t n = 0, S = o->p.n_sinks, W = o->p.n_window;
    switch (o->p.policy) {
    case SK_CACHE_DENSE:
        for (int64_t j = 0; j <= t; j++) vis[n++] = j;
        break;
    case SK_CACHE_WINDOW:
        S = 0;
        /* fall through */
    case SK_CACHE_SINK:
        for (int64_t j = 0; j < S && j <= t; j++) vis[n++] = j;
        for (int64_t j = t - W + 1 > S ? t - W + 1 : S; j <= t; j++) vis[n++] = j;
        break;
    case SK_CACHE_SHIFT:
        for (int64_t j = 0; j < S && j <= t; j++) vis[n++] = j;
        if (t >= S) {
            /* llama.cpp's context shift: when the window would exceed W,
             * drop half of the tokens after the kept ones */
            if (t - o->shift_lo + 1 > W) o->shift_lo += (t - o->shift_lo) / 2;
            for (int64_t j = o->shift_lo; j <= t; j++) vis[n++] = j;
        }
        break;
    default:
        break;
    }
    return n;
}

/* Run one token through the model with the given visible list (cache
 * order) and token positions; K/V of token t are (re)computed and stored. */
static void forward(oracle *o, int64_t t, const int64_t *vis, int64_t nvis, double *logits) {
    const sk_model *m = o->m;
    const sk_hparams *hp = &m->hp;
    int d = hp->n_embd, hd = hp->head_dim, H = hp->n_head, G = hp->n_head_kv, ff = hp->n_ff;
    int nkv = G * hd;
    double *x = calloc((size_t)d, sizeof(double)), *h = calloc((size_t)d, sizeof(double));
    double *q = calloc((size_t)H * hd, sizeof(double)), *att = calloc((size_t)H * hd, sizeof(double));
    double *g = calloc((size_t)ff, sizeof(double)), *u = calloc((size_t)ff, sizeof(double));
    double *tmp = calloc((size_t)(d > ff ? d : ff), sizeof(double));
    double *k = calloc((size_t)hd, sizeof(double)), *sc = calloc((size_t)nvis, sizeof(double));
    const float *e = wrow(&m->tok_embd, o->toks[t]);
    for (int i = 0; i < d; i++) x[i] = e[i];
    double qpos = (double)(nvis - 1) / hp->rope_scale; /* the query is the last visible token */
    for (int l = 0; l < hp->n_layer; l++) {
        const sk_layer *Ly = &m->layers[l];
        rmsnorm(x, &Ly->attn_norm, d, hp->norm_eps, h);
        matvec(&Ly->wq, h, q);
        matvec(&Ly->wk, h, o->kpre[l] + (size_t)t * nkv);
        matvec(&Ly->wv, h, o->v[l] + (size_t)t * nkv);
        for (int hh = 0; hh < H; hh++) {
            int gg = hh / (H / G);
            double qr[1024];
            memcpy(qr, q + (size_t)hh * hd, sizeof(double) * hd);
            rope(qr, hd, hp->n_rot, hp->rope_neox, hp->rope_base, qpos);
            double mx = -INFINITY;
            for (int64_t j = 0; j < nvis; j++) {
                memcpy(k, o->kpre[l] + (size_t)vis[j] * nkv + (size_t)gg * hd, sizeof(double) * hd);
                rope(k, hd, hp->n_rot, hp->rope_neox, hp->rope_base, (double)j / hp->rope_scale);
                double s = 0;
                for (int i = 0; i < hd; i++) s += qr[i] * k[i];
                sc[j] = s / sqrt((double)hd);
                if (sc[j] > mx) mx = sc[j];
            }
            const float *sinks = Ly->sinks.data; /* attn_sinks: a logit with no value */
            if (sinks && sinks[hh] > mx) mx = sinks[hh];
            double sum = 0;
            for (int64_t j = 0; j < nvis; j++) sum += (sc[j] = exp(sc[j] - mx));
            if (sinks) sum += exp((double)sinks[hh] - mx);
            double *out = att + (size_t)hh * hd;
            memset(out, 0, sizeof(double) * hd);
            for (int64_t j = 0; j < nvis; j++) {
                const double *vv = o->v[l] + (size_t)vis[j] * nkv + (size_t)gg * hd;
                for (int i = 0; i < hd; i++) out[i] += sc[j] / sum * vv[i];
            }
        }
        matvec(&Ly->wo, att, tmp);
        for (int i = 0; i < d; i++) x[i] += tmp[i];
        rmsnorm(x, &Ly->ffn_norm, d, hp->norm_eps, h);
        matvec(&Ly->w_gate, h, g);
        matvec(&Ly->w_up, h, u);
        for (int i = 0; i < ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
        matvec(&Ly->w_down, g, tmp);
        for (int i = 0; i < d; i++) x[i] += tmp[i];
    }
    rmsnorm(x, &m->output_norm, d, hp->norm_eps, h);
    matvec(&m->output, h, logits);
    free(x); free(h); free(q); free(att); free(g); free(u); free(tmp); free(k); free(sc);
}

void oracle_step(oracle *o, int32_t tok, double *logits) {
    int64_t t = o->n++;
    SK_ASSERT(t < o->max_tokens);
    o->toks[t] = tok;
    int64_t *vis = calloc((size_t)(t + 1), sizeof(int64_t));
    if (o->p.policy == SK_CACHE_RECOMPUTE) {
        /* re-encode the last W tokens from scratch, at positions 0..W-1:
         * a dense pass over a fresh stream of those tokens */
        int64_t W = o->p.n_window, lo = t - W + 1 > 0 ? t - W + 1 : 0;
        oracle *f = oracle_new(o->m, &(sk_cache_params){.policy = SK_CACHE_DENSE}, W);
        for (int64_t j = lo; j <= t; j++) {
            f->toks[f->n] = o->toks[j];
            int64_t nv = 0;
            for (int64_t i = 0; i <= f->n; i++) vis[nv++] = i;
            forward(f, f->n, vis, nv, logits);
            f->n++;
        }
        oracle_free(f);
    } else {
        int64_t nvis = visible(o, t, vis);
        forward(o, t, vis, nvis, logits);
    }
    free(vis);
}
