/* tops_f32.c - the training ops in single precision (the trainer's): RoPE
 * from the template (tops_impl.h), the rest on the blocked matrix product
 * (tgemm.h) and the row kernels (tvec.h), whose scalar twins
 * SINKLLM_ISA=scalar selects.
 *
 * Thread splits as the template's, so that every output element has one
 * writer and one order of operations whatever the thread count: matrix
 * products by rows or columns of the output (tgemm.h), norms by rows (and
 * the gain gradient by columns), the attention by (sequence, head) forward
 * and by (sequence, KV head) backward, cross-entropy by rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tgemm.h"
#include "tops.h"
#include "tvec.h"

#define R float
#define SFX f32
#define EXP expf
#define TR_FAST 1
#include "tops_impl.h"

sk_status tr_ws_init(tr_ws *ws, int nth, int T, int bf16, sk_error *err) {
    memset(ws, 0, sizeof *ws);
    ws->kr = bf16 ? tg_get_bf16() : tg_get();
    size_t g = (size_t)nth * TG_BUF_FLOATS * sizeof(float), a = (size_t)nth * T * T * sizeof(float);
    ws->gemm = aligned_alloc(64, (g + 63) / 64 * 64);
    ws->att = aligned_alloc(64, (a + 63) / 64 * 64);
    if (!ws->gemm || !ws->att) {
        tr_ws_free(ws);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (%d x %.1f MB of scratch)", nth,
                            (double)(g + a) / nth / 1e6);
    }
    ws->nth = nth;
    ws->T = T;
    return SK_OK;
}

void tr_ws_free(tr_ws *ws) {
    free(ws->gemm);
    free(ws->att);
    memset(ws, 0, sizeof *ws);
}

/* ---- matmul ---------------------------------------------------------------- */

void tr_matmul_f32(sk_pool *pool, const tr_ws *ws, float *Y, const float *X, const float *W,
                   int64_t n, int64_t in, int64_t out) {
    /* Y (n, out) = X (n, in) . W^T: B(k, o) = W[o * in + k] */
    tg_gemm(pool, ws->kr, ws->gemm, n, out, in, (tg_mat){X, in, 1}, (tg_mat){W, 1, in}, Y, out, 0);
}

void tr_matmul_bwd_f32(sk_pool *pool, const tr_ws *ws, float *dX, float *dW, const float *dY,
                       const float *X, const float *W, int64_t n, int64_t in, int64_t out) {
    /* dX (n, in) += dY (n, out) . W (out, in) */
    if (dX) tg_gemm(pool, ws->kr, ws->gemm, n, in, out, (tg_mat){dY, out, 1}, (tg_mat){W, in, 1}, dX, in, 1);
    /* dW (out, in) += dY^T (out, n) . X (n, in): A(o, t) = dY[t * out + o] */
    if (dW) tg_gemm(pool, ws->kr, ws->gemm, out, in, n, (tg_mat){dY, 1, out}, (tg_mat){X, in, 1}, dW, in, 1);
}

/* ---- RMSNorm --------------------------------------------------------------- */

typedef struct norm_args {
    float *Y, *rstd, *dX, *dg;
    const float *X, *g, *dY, *rs;
    int64_t n;
    int d;
    double eps;
} norm_args;

static void norm_fwd_rows(void *arg, int64_t lo, int64_t hi, int ith) {
    norm_args *a = arg;
    const tv_kernels *tv = tv_get();
    for (int64_t t = lo; t < hi; t++) {
        const float *x = a->X + t * a->d;
        float r = (float)(1.0 / sqrt(tv->sumsq(x, a->d) / a->d + a->eps));
        a->rstd[t] = r;
        tv->norm_row(a->Y + t * a->d, x, a->g, r, a->d);
    }
}

void tr_rmsnorm_f32(sk_pool *pool, float *Y, float *rstd, const float *X, const float *g, int64_t n,
                    int d, double eps) {
    norm_args a = {.Y = Y, .rstd = rstd, .X = X, .g = g, .n = n, .d = d, .eps = eps};
    par_for_f32(pool, n, 1, norm_fwd_rows, &a);
}

/* dx_j = r g_j dy_j - (r^3 / d) x_j sum_i dy_i g_i x_i (tops_impl.h) */
static void norm_bwd_rows(void *arg, int64_t lo, int64_t hi, int ith) {
    norm_args *a = arg;
    const tv_kernels *tv = tv_get();
    for (int64_t t = lo; t < hi; t++) {
        const float *x = a->X + t * a->d, *dy = a->dY + t * a->d;
        float r = a->rs[t], s = tv->dot3(dy, a->g, x, a->d);
        tv->norm_bwd_row(a->dX + t * a->d, dy, a->g, x, r, r * r * r * s / (float)a->d, a->d);
    }
}

/* dg_i += sum_t dy_ti x_ti r_t for i in [lo, hi) (t ascending) */
static void norm_bwd_cols(void *arg, int64_t lo, int64_t hi, int ith) {
    norm_args *a = arg;
    const tv_kernels *tv = tv_get();
    for (int64_t t = 0; t < a->n; t++)
        tv->norm_dg_row(a->dg + lo, a->dY + t * a->d + lo, a->X + t * a->d + lo, a->rs[t], hi - lo);
}

void tr_rmsnorm_bwd_f32(sk_pool *pool, float *dX, float *dg, const float *dY, const float *X,
                        const float *g, const float *rstd, int64_t n, int d) {
    norm_args a = {.dX = dX, .dg = dg, .X = X, .g = g, .dY = dY, .rs = rstd, .n = n, .d = d};
    par_for_f32(pool, n, 1, norm_bwd_rows, &a);
    par_for_f32(pool, d, 16, norm_bwd_cols, &a);
}

/* ---- attention ------------------------------------------------------------- */
/* Per (sequence, head), all products on the blocked kernel with the causal
 * structure skipped (tgemm.h's flags): S = Q K^T (lower triangle), P =
 * softmax(S / sqrt(hd)) row by row, O = P V (P lower triangular). Backward,
 * per (sequence, KV head) and its query heads h in order: dP = dO V^T (lower
 * triangle), dS = P (dP - rowsum(P dP)) / sqrt(hd) row by row, then
 * dV += P^T dO, dQ += dS K, dK += dS^T Q. */

typedef struct att_args {
    const tr_ws *ws;
    float *O, *P, *dQ, *dK, *dV;
    const float *Q, *K, *V, *dO, *Pc, *sinks;
    float *dsk; /* (nb, nh) the sink gradients of each item's rows */
    int nb, T, nh, nkv, hd, softmax1;
} att_args;

static void att_fwd_items(void *arg, int64_t lo, int64_t hi, int ith) {
    att_args *a = arg;
    const tv_kernels *tv = tv_get();
    const int T = a->T, hd = a->hd, nq = a->nh * hd, nk = a->nkv * hd, rep = a->nh / a->nkv;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *buf = a->ws->gemm + (size_t)ith * TG_BUF_FLOATS;
    for (int64_t it = lo; it < hi; it++) {
        int b = (int)(it / a->nh), h = (int)(it % a->nh), g = h / rep;
        const float *q = a->Q + (size_t)b * T * nq + (size_t)h * hd;
        const float *k = a->K + (size_t)b * T * nk + (size_t)g * hd;
        const float *v = a->V + (size_t)b * T * nk + (size_t)g * hd;
        float *P = a->P + ((size_t)b * a->nh + h) * T * T;
        float *o = a->O + (size_t)b * T * nq + (size_t)h * hd;
        tg_gemm_st(a->ws->kr, buf, T, T, hd, (tg_mat){q, nq, 1}, (tg_mat){k, 1, nk}, P, T, 0, TG_C_LOWER);
        float sk = a->sinks ? a->sinks[h] : a->softmax1 ? 0 : -INFINITY; /* the sink's logit */
        for (int t = 0; t < T; t++) {
            float *p = P + (size_t)t * T;
            tv->scale(p, t + 1, scale);
            float mx = tv->max(p, t + 1);
            if (sk > mx) mx = sk;
            float sum = tv->exp_sum(p, p, t + 1, mx);
            if (sk > -INFINITY) sum += expf(sk - mx);
            tv->scale(p, t + 1, 1.0f / sum);
            memset(p + t + 1, 0, sizeof(float) * (size_t)(T - t - 1));
        }
        tg_gemm_st(a->ws->kr, buf, T, hd, T, (tg_mat){P, T, 1}, (tg_mat){v, nk, 1}, o, nq, 0, TG_A_LOWER);
    }
}

void tr_attention_f32(sk_pool *pool, const tr_ws *ws, float *O, float *P, const float *Q,
                      const float *K, const float *V, int nb, int T, int nh, int nkv, int hd,
                      int softmax1, const float *sinks) {
    att_args a = {.ws = ws, .O = O, .P = P, .Q = Q, .K = K, .V = V, .nb = nb, .T = T, .nh = nh,
                  .nkv = nkv, .hd = hd, .softmax1 = softmax1, .sinks = sinks};
    par_for_f32(pool, (int64_t)nb * nh, 1, att_fwd_items, &a);
}

static void att_bwd_items(void *arg, int64_t lo, int64_t hi, int ith) {
    att_args *a = arg;
    const tv_kernels *tv = tv_get();
    const int T = a->T, hd = a->hd, nq = a->nh * hd, nk = a->nkv * hd, rep = a->nh / a->nkv;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *buf = a->ws->gemm + (size_t)ith * TG_BUF_FLOATS;
    float *dS = a->ws->att + (size_t)ith * a->ws->T * a->ws->T; /* (T, T): dP, then dS */
    for (int64_t it = lo; it < hi; it++) {
        int b = (int)(it / a->nkv), g = (int)(it % a->nkv);
        const float *k = a->K + (size_t)b * T * nk + (size_t)g * hd;
        const float *v = a->V + (size_t)b * T * nk + (size_t)g * hd;
        float *dk = a->dK + (size_t)b * T * nk + (size_t)g * hd;
        float *dv = a->dV + (size_t)b * T * nk + (size_t)g * hd;
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            const float *q = a->Q + (size_t)b * T * nq + (size_t)h * hd;
            const float *dout = a->dO + (size_t)b * T * nq + (size_t)h * hd;
            float *dq = a->dQ + (size_t)b * T * nq + (size_t)h * hd;
            const float *P = a->Pc + ((size_t)b * a->nh + h) * T * T;
            tg_gemm_st(a->ws->kr, buf, T, T, hd, (tg_mat){dout, nq, 1}, (tg_mat){v, 1, nk}, dS, T, 0,
                       TG_C_LOWER);
            double dsk = 0;
            for (int t = 0; t < T; t++) {
                const float *p = P + (size_t)t * T;
                float *ds = dS + (size_t)t * T;
                float s = tv->dot(p, ds, t + 1);
                tv->dsoft(ds, p, t + 1, s, scale);
                memset(ds + t + 1, 0, sizeof(float) * (size_t)(T - t - 1));
                if (a->dsk) {
                    double ps = 1.0;
                    for (int j = 0; j <= t; j++) ps -= p[j];
                    dsk -= ps * s;
                }
            }
            if (a->dsk) a->dsk[(size_t)b * a->nh + h] = (float)dsk;
            /* dV += P^T dO: A(j, t) = P[t][j], zero for t < j */
            tg_gemm_st(a->ws->kr, buf, T, hd, T, (tg_mat){P, 1, T}, (tg_mat){dout, nq, 1}, dv, nk, 1,
                       TG_A_UPPER);
            /* dQ += dS K */
            tg_gemm_st(a->ws->kr, buf, T, hd, T, (tg_mat){dS, T, 1}, (tg_mat){k, nk, 1}, dq, nq, 1,
                       TG_A_LOWER);
            /* dK += dS^T Q */
            tg_gemm_st(a->ws->kr, buf, T, hd, T, (tg_mat){dS, 1, T}, (tg_mat){q, nq, 1}, dk, nk, 1,
                       TG_A_UPPER);
        }
    }
}

void tr_attention_bwd_f32(sk_pool *pool, const tr_ws *ws, float *dQ, float *dK, float *dV,
                          float *dsinks, const float *dO, const float *P, const float *Q,
                          const float *K, const float *V, int nb, int T, int nh, int nkv, int hd,
                          float *scratch) {
    int nth = pool ? sk_pool_size(pool) : 1;
    att_args a = {.ws = ws, .dQ = dQ, .dK = dK, .dV = dV, .dO = dO, .Pc = P, .Q = Q, .K = K,
                  .V = V, .nb = nb, .T = T, .nh = nh, .nkv = nkv, .hd = hd,
                  .dsk = dsinks ? scratch + (size_t)nth * T : NULL};
    par_for_f32(pool, (int64_t)nb * nkv, 1, att_bwd_items, &a);
    for (int b = 0; dsinks && b < nb; b++) /* one writer per (b, h), summed in a fixed order */
        for (int h = 0; h < nh; h++) dsinks[h] += a.dsk[(size_t)b * nh + h];
}

/* ---- SwiGLU ---------------------------------------------------------------- */

typedef struct glu_args {
    float *S, *dA, *dU;
    const float *A, *U, *dS;
} glu_args;

static void glu_fwd(void *arg, int64_t lo, int64_t hi, int ith) {
    glu_args *a = arg;
    tv_get()->swiglu(a->S + lo, a->A + lo, a->U + lo, hi - lo);
}

void tr_swiglu_f32(sk_pool *pool, float *S, const float *A, const float *U, int64_t n) {
    glu_args a = {.S = S, .A = A, .U = U};
    par_for_f32(pool, n, 256, glu_fwd, &a);
}

static void glu_bwd(void *arg, int64_t lo, int64_t hi, int ith) {
    glu_args *a = arg;
    tv_get()->swiglu_bwd(a->dA + lo, a->dU + lo, a->dS + lo, a->A + lo, a->U + lo, hi - lo);
}

void tr_swiglu_bwd_f32(sk_pool *pool, float *dA, float *dU, const float *dS, const float *A,
                       const float *U, int64_t n) {
    glu_args a = {.dA = dA, .dU = dU, .dS = dS, .A = A, .U = U};
    par_for_f32(pool, n, 256, glu_bwd, &a);
}

/* ---- cross-entropy ----------------------------------------------------------- */

typedef struct xent_args {
    float *Z, *loss;
    const int32_t *target;
    int64_t V;
    float scale;
} xent_args;

/* loss = m + log(sum_j e^(z_j - m)) - z_y; gradient scale (e^(z_j - m) / sum - [j = y]) */
static void xent_rows(void *arg, int64_t lo, int64_t hi, int ith) {
    xent_args *a = arg;
    const tv_kernels *tv = tv_get();
    for (int64_t t = lo; t < hi; t++) {
        float *z = a->Z + t * a->V;
        int32_t y = a->target[t];
        float mx = tv->max(z, a->V), zy = z[y];
        float sum = tv->exp_sum(a->scale != 0 ? z : NULL, z, a->V, mx);
        a->loss[t] = (float)((double)mx + log((double)sum) - (double)zy);
        if (a->scale == 0) continue;
        tv->scale(z, a->V, a->scale / sum);
        z[y] -= a->scale;
    }
}

void tr_xent_f32(sk_pool *pool, float *Z, float *loss, const int32_t *target, int64_t n, int64_t V,
                 float grad_scale) {
    xent_args a = {.Z = Z, .loss = loss, .target = target, .V = V, .scale = grad_scale};
    par_for_f32(pool, n, 1, xent_rows, &a);
}
