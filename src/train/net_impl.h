/* net_impl.h - the forward and backward pass of a training network (net.h)
 * for one real type. Included by net_f32.c and net_f64.c with R and SFX
 * defined. Every buffer is allocated in tr_net_new: a step allocates
 * nothing. */
#include <stdlib.h>
#include <string.h>

#include "tops.h"

#define TR_CAT2(a, b) a##_##b
#define TR_CAT(a, b) TR_CAT2(a, b)
#define F(name) TR_CAT(name, SFX)

/* Rows of logits computed at once, (chunk, V): about TR_CHUNK_FLOATS floats,
 * a multiple of 256 rows (the output matrix is read 3 times per chunk, so
 * larger chunks read it less), at most the batch. The chunk changes no bit:
 * each logit is its own product, and the output matrix's gradient adds the
 * rows' terms in blocks of TG_KC = 256 (tgemm.h), which chunk boundaries
 * respect. */
#define TR_CHUNK_FLOATS ((int64_t)1 << 23)

struct F(tr_net) {
    tr_dims dm;
    tr_layout lay;
    sk_pool *pool;
    tr_ws ws;              /* the f32 ops' scratch (tops.h) */
    int64_t chunk;         /* rows of logits at once */
    R *w;                  /* (n_params), borrowed */
    R *g;                  /* (n_params) */
    R *cs;                 /* (T, hd/2, 2) RoPE cos/sin */
    /* saved activations, N = B * T rows */
    R *x;                  /* (n_layer + 1, N, d): residual stream entering each block; [L]: final */
    R *xm;                 /* (n_layer, N, d): residual after attention */
    R *rs1, *rs2;          /* (n_layer, N): 1/rms of the two norms */
    R *h1, *h2;            /* (n_layer, N, d): normed inputs of attention and FFN */
    R *q;                  /* (n_layer, N, nh*hd) after RoPE */
    R *k, *v;              /* (n_layer, N, nkv*hd), k after RoPE */
    R *p;                  /* (n_layer, B, nh, T, T) attention probabilities */
    R *ao;                 /* (n_layer, N, nh*hd) attention output */
    R *a, *u, *s;          /* (n_layer, N, ff) gate, up, silu(gate) * up */
    R *rsf, *hf;           /* (N), (N, d): final norm */
    R *lg;                 /* (chunk, V) logits, then their gradient */
    R *lrow;               /* (chunk) loss per row */
    int32_t *tgt;          /* (chunk) targets of the chunk */
    int32_t *in;           /* (N) input ids */
    /* backward scratch */
    R *dx, *dh, *dhf;      /* (N, d) */
    R *dq, *dao;           /* (N, nh*hd) */
    R *dk, *dv;            /* (N, nkv*hd) */
    R *da, *du, *ds;       /* (N, ff) */
    R *scr;                /* (n_threads, T) attention backward */
};

sk_status F(tr_net_new)(const tr_dims *dm, R *w, sk_pool *pool, F(tr_net) **out, sk_error *err) {
    *out = NULL;
    F(tr_net) *n = calloc(1, sizeof *n);
    if (!n) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (network)");
    n->dm = *dm;
    tr_layout_init(dm, &n->lay);
    n->pool = pool;
    n->w = w;
    size_t L = (size_t)dm->n_layer, N = (size_t)dm->B * dm->T, d = (size_t)dm->d,
           nq = (size_t)dm->nh * dm->hd, nk = (size_t)dm->nkv * dm->hd, ff = (size_t)dm->ff,
           T = (size_t)dm->T, nth = pool ? (size_t)sk_pool_size(pool) : 1;
    n->chunk = TR_CHUNK_FLOATS / dm->V / 256 * 256;
    if (n->chunk < 256) n->chunk = 256;
    if (n->chunk > (int64_t)N) n->chunk = (int64_t)N;
    struct { R **p; size_t n; } bufs[] = {
        {&n->g, n->lay.n_params}, {&n->cs, T * (size_t)dm->hd},
        {&n->x, (L + 1) * N * d}, {&n->xm, L * N * d}, {&n->rs1, L * N}, {&n->rs2, L * N},
        {&n->h1, L * N * d}, {&n->h2, L * N * d}, {&n->q, L * N * nq}, {&n->k, L * N * nk},
        {&n->v, L * N * nk}, {&n->p, L * (size_t)dm->B * dm->nh * T * T}, {&n->ao, L * N * nq},
        {&n->a, L * N * ff}, {&n->u, L * N * ff}, {&n->s, L * N * ff}, {&n->rsf, N},
        {&n->hf, N * d}, {&n->lg, (size_t)n->chunk * dm->V}, {&n->lrow, (size_t)n->chunk},
        {&n->dx, N * d}, {&n->dh, N * d}, {&n->dhf, N * d}, {&n->dq, N * nq}, {&n->dao, N * nq},
        {&n->dk, N * nk}, {&n->dv, N * nk}, {&n->da, N * ff}, {&n->du, N * ff}, {&n->ds, N * ff},
        {&n->scr, nth * T + (size_t)dm->B * dm->nh},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i].p = calloc(bufs[i].n, sizeof(R)))) ok = 0;
    n->tgt = calloc((size_t)n->chunk, sizeof *n->tgt);
    n->in = calloc(N, sizeof *n->in);
    if (!ok || !n->tgt || !n->in || tr_ws_init(&n->ws, (int)nth, dm->T, dm->bf16, NULL)) {
        F(tr_net_free)(n);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (activations of a %zu x %zu batch)",
                            (size_t)dm->B, T);
    }
    F(tr_rope_table)(n->cs, dm->T, dm->hd, dm->rope_base);
    *out = n;
    return SK_OK;
}

void F(tr_net_free)(F(tr_net) *n) {
    if (!n) return;
    R *bufs[] = {n->g, n->cs, n->x, n->xm, n->rs1, n->rs2, n->h1, n->h2, n->q, n->k, n->v,
                 n->p, n->ao, n->a, n->u, n->s, n->rsf, n->hf, n->lg, n->lrow, n->dx, n->dh,
                 n->dhf, n->dq, n->dao, n->dk, n->dv, n->da, n->du, n->ds, n->scr};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(n->tgt);
    free(n->in);
    tr_ws_free(&n->ws);
    free(n);
}

R *F(tr_net_grad)(F(tr_net) *n) { return n->g; }
const tr_layout *F(tr_net_layout)(const F(tr_net) *n) { return &n->lay; }

const R *F(tr_net_attention)(const F(tr_net) *n, int l) {
    return n->p + (size_t)l * n->dm.B * n->dm.nh * n->dm.T * n->dm.T;
}

/* The blocks over nb sequences of nt tokens whose ids are n->in: fills the
 * saved activations and hf. */
static void F(forward)(F(tr_net) *n, int nb, int nt) {
    const tr_dims *dm = &n->dm;
    sk_pool *P = n->pool;
    const int64_t N = (int64_t)nb * nt, d = dm->d, nq = (int64_t)dm->nh * dm->hd,
                  nk = (int64_t)dm->nkv * dm->hd, ff = dm->ff, NL = (int64_t)dm->B * dm->T;
    const R *E = n->w + n->lay.tok_embd;
    for (int64_t t = 0; t < N; t++) memcpy(n->x + t * d, E + (int64_t)n->in[t] * d, sizeof(R) * d);
    for (int l = 0; l < dm->n_layer; l++) {
        const tr_block_off *o = &n->lay.blk[l];
        const R *W = n->w;
        R *x = n->x + l * NL * d, *xn = n->x + (l + 1) * NL * d, *xm = n->xm + l * NL * d;
        R *h1 = n->h1 + l * NL * d, *h2 = n->h2 + l * NL * d, *q = n->q + l * NL * nq,
          *k = n->k + l * NL * nk, *v = n->v + l * NL * nk, *ao = n->ao + l * NL * nq,
          *a = n->a + l * NL * ff, *u = n->u + l * NL * ff, *s = n->s + l * NL * ff;
        R *p = n->p + (size_t)l * dm->B * dm->nh * dm->T * dm->T;
        F(tr_rmsnorm)(P, h1, n->rs1 + l * NL, x, W + o->attn_norm, N, dm->d, dm->eps);
        F(tr_matmul)(P, &n->ws, q, h1, W + o->wq, N, d, nq);
        F(tr_matmul)(P, &n->ws, k, h1, W + o->wk, N, d, nk);
        F(tr_matmul)(P, &n->ws, v, h1, W + o->wv, N, d, nk);
        F(tr_rope)(q, N, dm->nh, dm->hd, nt, n->cs, 0);
        F(tr_rope)(k, N, dm->nkv, dm->hd, nt, n->cs, 0);
        F(tr_attention)(P, &n->ws, ao, p, q, k, v, nb, nt, dm->nh, dm->nkv, dm->hd, dm->softmax1,
                        dm->sink_logit ? W + o->sinks : NULL);
        F(tr_matmul)(P, &n->ws, xm, ao, W + o->wo, N, nq, d);
        for (int64_t i = 0; i < N * d; i++) xm[i] = x[i] + xm[i];
        F(tr_rmsnorm)(P, h2, n->rs2 + l * NL, xm, W + o->ffn_norm, N, dm->d, dm->eps);
        F(tr_matmul)(P, &n->ws, a, h2, W + o->wg, N, d, ff);
        F(tr_matmul)(P, &n->ws, u, h2, W + o->wu, N, d, ff);
        F(tr_swiglu)(P, s, a, u, N * ff);
        F(tr_matmul)(P, &n->ws, xn, s, W + o->wd, N, ff, d);
        for (int64_t i = 0; i < N * d; i++) xn[i] = xm[i] + xn[i];
    }
    F(tr_rmsnorm)(P, n->hf, n->rsf, n->x + (int64_t)dm->n_layer * NL * d, n->w + n->lay.out_norm,
                  N, dm->d, dm->eps);
}

/* dE[id] += dx for each input row: the embedding lookup's backward (rows
 * in order, so a repeated id sums in a fixed order) */
static void F(embed_bwd)(R *dE, const int32_t *in, const R *dx, int64_t N, int64_t d) {
    for (int64_t t = 0; t < N; t++) {
        R *e = dE + (int64_t)in[t] * d;
        for (int64_t i = 0; i < d; i++) e[i] += dx[t * d + i];
    }
}

/* The blocks backwards from dx = d(loss)/d(final residual): gradients of
 * every block weight and of the token embedding. */
static void F(backward)(F(tr_net) *n, int nb, int nt) {
    const tr_dims *dm = &n->dm;
    sk_pool *P = n->pool;
    const int64_t N = (int64_t)nb * nt, d = dm->d, nq = (int64_t)dm->nh * dm->hd,
                  nk = (int64_t)dm->nkv * dm->hd, ff = dm->ff, NL = (int64_t)dm->B * dm->T;
    R *dx = n->dx, *dh = n->dh, *G = n->g;
    const R *W = n->w;
    for (int l = dm->n_layer - 1; l >= 0; l--) {
        const tr_block_off *o = &n->lay.blk[l];
        const R *x = n->x + l * NL * d, *xm = n->xm + l * NL * d;
        const R *h1 = n->h1 + l * NL * d, *h2 = n->h2 + l * NL * d, *q = n->q + l * NL * nq,
                *k = n->k + l * NL * nk, *v = n->v + l * NL * nk, *ao = n->ao + l * NL * nq,
                *a = n->a + l * NL * ff, *u = n->u + l * NL * ff, *s = n->s + l * NL * ff;
        const R *p = n->p + (size_t)l * dm->B * dm->nh * dm->T * dm->T;
        /* x_next = xm + s Wd^T: dx flows to xm unchanged */
        memset(n->ds, 0, sizeof(R) * (size_t)(N * ff));
        F(tr_matmul_bwd)(P, &n->ws, n->ds, G + o->wd, dx, s, W + o->wd, N, ff, d);
        memset(n->da, 0, sizeof(R) * (size_t)(N * ff));
        memset(n->du, 0, sizeof(R) * (size_t)(N * ff));
        F(tr_swiglu_bwd)(P, n->da, n->du, n->ds, a, u, N * ff);
        memset(dh, 0, sizeof(R) * (size_t)(N * d));
        F(tr_matmul_bwd)(P, &n->ws, dh, G + o->wg, n->da, h2, W + o->wg, N, d, ff);
        F(tr_matmul_bwd)(P, &n->ws, dh, G + o->wu, n->du, h2, W + o->wu, N, d, ff);
        F(tr_rmsnorm_bwd)(P, dx, G + o->ffn_norm, dh, xm, W + o->ffn_norm, n->rs2 + l * NL, N, dm->d);
        /* xm = x + ao Wo^T */
        memset(n->dao, 0, sizeof(R) * (size_t)(N * nq));
        F(tr_matmul_bwd)(P, &n->ws, n->dao, G + o->wo, dx, ao, W + o->wo, N, nq, d);
        memset(n->dq, 0, sizeof(R) * (size_t)(N * nq));
        memset(n->dk, 0, sizeof(R) * (size_t)(N * nk));
        memset(n->dv, 0, sizeof(R) * (size_t)(N * nk));
        F(tr_attention_bwd)(P, &n->ws, n->dq, n->dk, n->dv, dm->sink_logit ? G + o->sinks : NULL, n->dao, p,
                            q, k, v, nb, nt, dm->nh, dm->nkv, dm->hd, n->scr);
        F(tr_rope)(n->dq, N, dm->nh, dm->hd, nt, n->cs, 1);
        F(tr_rope)(n->dk, N, dm->nkv, dm->hd, nt, n->cs, 1);
        memset(dh, 0, sizeof(R) * (size_t)(N * d));
        F(tr_matmul_bwd)(P, &n->ws, dh, G + o->wq, n->dq, h1, W + o->wq, N, d, nq);
        F(tr_matmul_bwd)(P, &n->ws, dh, G + o->wk, n->dk, h1, W + o->wk, N, d, nk);
        F(tr_matmul_bwd)(P, &n->ws, dh, G + o->wv, n->dv, h1, W + o->wv, N, d, nk);
        F(tr_rmsnorm_bwd)(P, dx, G + o->attn_norm, dh, x, W + o->attn_norm, n->rs1 + l * NL, N, dm->d);
    }
    F(embed_bwd)(G + n->lay.tok_embd, n->in, dx, N, d);
}

double F(tr_net_loss)(F(tr_net) *n, const int32_t *tok, int64_t stride, int nb, int nt, int grad) {
    const tr_dims *dm = &n->dm;
    const int64_t N = (int64_t)nb * nt, d = dm->d, V = dm->V;
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < nt; t++) n->in[(int64_t)b * nt + t] = tok[b * stride + t];
    F(forward)(n, nb, nt);
    if (grad) {
        memset(n->g, 0, sizeof(R) * n->lay.n_params);
        memset(n->dhf, 0, sizeof(R) * (size_t)(N * d));
    }
    const R *E = n->w + n->lay.output;
    R *dE = n->g + n->lay.output;
    double loss = 0.0;
    for (int64_t r0 = 0; r0 < N; r0 += n->chunk) {
        int64_t c = N - r0 < n->chunk ? N - r0 : n->chunk;
        for (int64_t i = 0; i < c; i++) {
            int64_t r = r0 + i, b = r / nt, t = r % nt;
            n->tgt[i] = tok[b * stride + t + 1];
        }
        F(tr_matmul)(n->pool, &n->ws, n->lg, n->hf + r0 * d, E, c, d, V);
        F(tr_xent)(n->pool, n->lg, n->lrow, n->tgt, c, V, grad ? (R)(1.0 / (double)N) : 0);
        for (int64_t i = 0; i < c; i++) loss += n->lrow[i];
        if (grad) F(tr_matmul_bwd)(n->pool, &n->ws, n->dhf + r0 * d, dE, n->lg, n->hf + r0 * d, E, c, d, V);
    }
    if (grad) {
        memset(n->dx, 0, sizeof(R) * (size_t)(N * d));
        F(tr_rmsnorm_bwd)(n->pool, n->dx, n->g + n->lay.out_norm, n->dhf,
                          n->x + (int64_t)dm->n_layer * dm->B * dm->T * d, n->w + n->lay.out_norm,
                          n->rsf, N, dm->d);
        F(backward)(n, nb, nt);
    }
    return loss / (double)N;
}

void F(tr_net_logits)(F(tr_net) *n, const int32_t *tok, int nt, R *out) {
    for (int t = 0; t < nt; t++) n->in[t] = tok[t];
    F(forward)(n, 1, nt);
    F(tr_matmul)(n->pool, &n->ws, out, n->hf, n->w + n->lay.output, nt, n->dm.d, n->dm.V);
}

#undef F
