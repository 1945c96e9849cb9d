/* tops_impl.h - the body of the training ops (tops.h), for one real type.
 * Included by tops_f32.c and tops_f64.c with R (float, double), SFX (f32,
 * f64) and EXP (expf, exp) defined. Plain C, the compiler vectorizing what
 * it can without changing our summation order (no -ffast-math): the f64
 * twin that the gradient checks difference. The f32 build defines TR_FAST
 * and takes only RoPE and the thread split from here; its other ops
 * (tops_f32.c) run on the blocked matrix product (tgemm.h) and the row
 * kernels (tvec.h), each with a scalar twin. */
#include <math.h>
#include <string.h>

#define TR_CAT2(a, b) a##_##b
#define TR_CAT(a, b) TR_CAT2(a, b)
#define F(name) TR_CAT(name, SFX)

/* Run fn over [0, n) on the pool (or inline): each call gets a range. */
typedef void (*F(range_fn))(void *arg, int64_t lo, int64_t hi, int ith);
typedef struct F(range_job) {
    F(range_fn) fn;
    void *arg;
    int64_t n, align;
} F(range_job);

static void F(range_tramp)(void *arg, int ith, int nth) {
    F(range_job) *j = arg;
    long lo, hi;
    sk_split_range((long)j->n, (long)j->align, ith, nth, &lo, &hi);
    if (hi > lo) j->fn(j->arg, lo, hi, ith);
}

static void F(par_for)(sk_pool *pool, int64_t n, int64_t align, F(range_fn) fn, void *arg) {
    if (!pool || sk_pool_size(pool) == 1 || n <= align) {
        if (n > 0) fn(arg, 0, n, 0);
        return;
    }
    F(range_job) j = {fn, arg, n, align};
    sk_pool_run(pool, F(range_tramp), &j);
}

/* ---- RoPE ----------------------------------------------------------------- */

void F(tr_rope_table)(R *cs, int T, int hd, double base) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
            double a = (double)t * pow(base, -2.0 * i / hd);
            cs[((size_t)t * (hd / 2) + i) * 2] = (R)cos(a);
            cs[((size_t)t * (hd / 2) + i) * 2 + 1] = (R)sin(a);
        }
}

void F(tr_rope)(R *X, int64_t n, int heads, int hd, int T, const R *cs, int inverse) {
    for (int64_t t = 0; t < n; t++) {
        const R *c = cs + (size_t)(t % T) * hd;
        for (int h = 0; h < heads; h++) {
            R *v = X + (t * heads + h) * hd;
            for (int i = 0; i < hd / 2; i++) {
                R co = c[2 * i], si = inverse ? -c[2 * i + 1] : c[2 * i + 1];
                R x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * co - x1 * si;
                v[2 * i + 1] = x0 * si + x1 * co;
            }
        }
    }
}

#ifndef TR_FAST

/* dot product in a fixed order: 8 interleaved partial sums, then a tree */
static R F(dot)(const R *a, const R *b, int64_t n) {
    R s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    for (; i < n; i++) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* y[i] += a * x[i] */
static void F(axpy)(R *y, R a, const R *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---- matmul --------------------------------------------------------------- */

static void F(mm_fwd_ref)(const R *X, const R *W, R *Y, int64_t t0, int64_t t1, int64_t o0,
                          int64_t o1, int64_t in, int64_t out) {
    for (int64_t t = t0; t < t1; t++)
        for (int64_t o = o0; o < o1; o++) Y[t * out + o] = F(dot)(X + t * in, W + o * in, in);
}

static void F(mm_acc_ref)(R *out, int64_t ostride, const R *c, int64_t crs, int64_t cs,
                          const R *M, int64_t j0, int64_t j1, int64_t in, int64_t nr) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t j = j0; j < j1; j++) F(axpy)(out + r * ostride, c[r * crs + j * cs], M + j * in, in);
}

#define MM_FWD F(mm_fwd_ref)
#define MM_ACC F(mm_acc_ref)

typedef struct F(mm_args) {
    R *Y, *dX, *dW;
    const R *X, *W, *dY;
    int64_t n, in, out;
} F(mm_args);

#define MM_BLOCK 32   /* rows of W per forward block (in cache while X streams) */
#define MM_OBLOCK 128 /* rows of W per block of the input gradient */
#define MM_TBLOCK 256 /* rows of X per block of the weight gradient (= TR_CHUNK of net_impl.h:
                       * the logits gradient then reads the output matrix once per chunk) */

/* Y[t][o] for o in [lo, hi), all t */
static void F(mm_fwd_cols)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(mm_args) *a = arg;
    for (int64_t o0 = lo; o0 < hi; o0 += MM_BLOCK)
        MM_FWD(a->X, a->W, a->Y, 0, a->n, o0, o0 + MM_BLOCK < hi ? o0 + MM_BLOCK : hi, a->in, a->out);
}

/* Y[t][o] for t in [lo, hi), all o */
static void F(mm_fwd_rows)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(mm_args) *a = arg;
    for (int64_t o0 = 0; o0 < a->out; o0 += MM_BLOCK)
        MM_FWD(a->X, a->W, a->Y, lo, hi, o0, o0 + MM_BLOCK < a->out ? o0 + MM_BLOCK : a->out, a->in,
               a->out);
}

void F(tr_matmul)(sk_pool *pool, const tr_ws *ws, R *Y, const R *X, const R *W, int64_t n, int64_t in,
                  int64_t out) {
    F(mm_args) a = {.Y = Y, .X = X, .W = W, .n = n, .in = in, .out = out};
    if (out >= n) F(par_for)(pool, out, MM_BLOCK, F(mm_fwd_cols), &a);
    else F(par_for)(pool, n, 1, F(mm_fwd_rows), &a);
}

/* dX[t] += sum_o dY[t][o] W[o] for t in [lo, hi); o ascending for every t */
static void F(mm_bwd_x)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(mm_args) *a = arg;
    for (int64_t o0 = 0; o0 < a->out; o0 += MM_OBLOCK)
        MM_ACC(a->dX + lo * a->in, a->in, a->dY + lo * a->out, a->out, 1, a->W, o0,
               o0 + MM_OBLOCK < a->out ? o0 + MM_OBLOCK : a->out, a->in, hi - lo);
}

/* dW[o] += sum_t dY[t][o] X[t] for o in [lo, hi); t ascending for every o */
static void F(mm_bwd_w)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(mm_args) *a = arg;
    for (int64_t t0 = 0; t0 < a->n; t0 += MM_TBLOCK)
        MM_ACC(a->dW + lo * a->in, a->in, a->dY + lo, 1, a->out, a->X, t0,
               t0 + MM_TBLOCK < a->n ? t0 + MM_TBLOCK : a->n, a->in, hi - lo);
}

void F(tr_matmul_bwd)(sk_pool *pool, const tr_ws *ws, R *dX, R *dW, const R *dY, const R *X,
                      const R *W, int64_t n, int64_t in, int64_t out) {
    F(mm_args) a = {.dX = dX, .dW = dW, .dY = dY, .X = X, .W = W, .n = n, .in = in, .out = out};
    if (dX) F(par_for)(pool, n, 1, F(mm_bwd_x), &a);
    if (dW) F(par_for)(pool, out, 1, F(mm_bwd_w), &a);
}

#undef MM_FWD
#undef MM_ACC

/* ---- RMSNorm -------------------------------------------------------------- */

typedef struct F(norm_args) {
    R *Y, *rstd, *dX, *dg;
    const R *X, *g, *dY, *rs;
    int64_t n;
    int d;
    double eps;
} F(norm_args);

static void F(norm_fwd_rows)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(norm_args) *a = arg;
    for (int64_t t = lo; t < hi; t++) {
        const R *x = a->X + t * a->d;
        R *y = a->Y + t * a->d;
        double ss = 0.0;
        for (int i = 0; i < a->d; i++) ss += (double)x[i] * x[i];
        R r = (R)(1.0 / sqrt(ss / a->d + a->eps));
        a->rstd[t] = r;
        for (int i = 0; i < a->d; i++) y[i] = x[i] * r * a->g[i];
    }
}

void F(tr_rmsnorm)(sk_pool *pool, R *Y, R *rstd, const R *X, const R *g, int64_t n, int d,
                   double eps) {
    F(norm_args) a = {.Y = Y, .rstd = rstd, .X = X, .g = g, .n = n, .d = d, .eps = eps};
    F(par_for)(pool, n, 1, F(norm_fwd_rows), &a);
}

/* y_i = x_i r g_i, r = (sum x^2 / d + eps)^(-1/2), dr/dx_j = -r^3 x_j / d:
 *   dx_j = r g_j dy_j - (r^3 / d) x_j sum_i dy_i g_i x_i */
static void F(norm_bwd_rows)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(norm_args) *a = arg;
    for (int64_t t = lo; t < hi; t++) {
        const R *x = a->X + t * a->d, *dy = a->dY + t * a->d;
        R *dx = a->dX + t * a->d;
        R r = a->rs[t], s = 0;
        for (int i = 0; i < a->d; i++) s += dy[i] * a->g[i] * x[i];
        R c = r * r * r * s / (R)a->d;
        for (int i = 0; i < a->d; i++) dx[i] += r * a->g[i] * dy[i] - c * x[i];
    }
}

/* dg_i += sum_t dy_ti x_ti r_t for i in [lo, hi) (t ascending) */
static void F(norm_bwd_cols)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(norm_args) *a = arg;
    for (int64_t t = 0; t < a->n; t++) {
        const R *x = a->X + t * a->d, *dy = a->dY + t * a->d;
        R r = a->rs[t];
        for (int64_t i = lo; i < hi; i++) a->dg[i] += dy[i] * x[i] * r;
    }
}

void F(tr_rmsnorm_bwd)(sk_pool *pool, R *dX, R *dg, const R *dY, const R *X, const R *g,
                       const R *rstd, int64_t n, int d) {
    F(norm_args) a = {.dX = dX, .dg = dg, .X = X, .g = g, .dY = dY, .rs = rstd, .n = n, .d = d};
    F(par_for)(pool, n, 1, F(norm_bwd_rows), &a);
    F(par_for)(pool, d, 16, F(norm_bwd_cols), &a);
}

/* ---- attention ------------------------------------------------------------ */

typedef struct F(att_args) {
    R *O, *P, *dQ, *dK, *dV, *scr;
    const R *Q, *K, *V, *dO, *Pc, *sinks;
    R *dsk;   /* (nb, nh) the sink gradients of each item's rows */
    int nb, T, nh, nkv, hd, softmax1;
} F(att_args);

/* items (b, h) in [lo, hi): s_j = q_t . k_j / sqrt(hd), p = softmax(s_0..s_t
 * [, 0]), o_t = sum_j p_j v_j */
static void F(att_fwd_items)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(att_args) *a = arg;
    const int T = a->T, hd = a->hd, nq = a->nh * hd, nk = a->nkv * hd, rep = a->nh / a->nkv;
    const R scale = (R)(1.0 / sqrt((double)hd));
    for (int64_t it = lo; it < hi; it++) {
        int b = (int)(it / a->nh), h = (int)(it % a->nh), g = h / rep;
        for (int t = 0; t < T; t++) {
            const R *q = a->Q + ((size_t)b * T + t) * nq + (size_t)h * hd;
            R *p = a->P + (((size_t)b * a->nh + h) * T + t) * T;
            R sk = a->sinks ? a->sinks[h] : a->softmax1 ? 0 : -INFINITY; /* the sink's logit */
            R mx = sk;
            for (int j = 0; j <= t; j++) {
                p[j] = F(dot)(q, a->K + ((size_t)b * T + j) * nk + (size_t)g * hd, hd) * scale;
                if (p[j] > mx) mx = p[j];
            }
            double sum = sk > -INFINITY ? (double)EXP(sk - mx) : 0.0;
            for (int j = 0; j <= t; j++) {
                p[j] = EXP(p[j] - mx);
                sum += p[j];
            }
            R inv = (R)(1.0 / sum);
            R *o = a->O + ((size_t)b * T + t) * nq + (size_t)h * hd;
            memset(o, 0, sizeof *o * (size_t)hd);
            for (int j = 0; j <= t; j++) {
                p[j] *= inv;
                F(axpy)(o, p[j], a->V + ((size_t)b * T + j) * nk + (size_t)g * hd, hd);
            }
            for (int j = t + 1; j < T; j++) p[j] = 0;
        }
    }
}

void F(tr_attention)(sk_pool *pool, const tr_ws *ws, R *O, R *P, const R *Q, const R *K, const R *V, int nb,
                     int T, int nh, int nkv, int hd, int softmax1, const R *sinks) {
    F(att_args) a = {.O = O, .P = P, .Q = Q, .K = K, .V = V, .nb = nb, .T = T, .nh = nh,
                     .nkv = nkv, .hd = hd, .softmax1 = softmax1, .sinks = sinks};
    F(par_for)(pool, (int64_t)nb * nh, 1, F(att_fwd_items), &a);
}

/* items (b, g) in [lo, hi): the KV head g of sequence b and its query heads,
 * so that dK and dV rows have one writer. With dp_j = do_t . v_j:
 *   ds_j = p_j (dp_j - sum_k p_k dp_k)   (also with the zero sink: its
 *   value is 0, so its dp is 0; a sink logit's gradient is that of its
 *   score: p_sink (0 - sum_k p_k dp_k), p_sink = 1 - sum_j p_j)
 *   dq_t += scale sum_j ds_j k_j,  dk_j += scale ds_j q_t,  dv_j += p_j do_t */
static void F(att_bwd_items)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(att_args) *a = arg;
    const int T = a->T, hd = a->hd, nq = a->nh * hd, nk = a->nkv * hd, rep = a->nh / a->nkv;
    const R scale = (R)(1.0 / sqrt((double)hd));
    R *dp = a->scr + (size_t)ith * T;
    for (int64_t it = lo; it < hi; it++) {
        int b = (int)(it / a->nkv), g = (int)(it % a->nkv);
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            double dsk = 0;
            for (int t = 0; t < T; t++) {
                size_t rq = ((size_t)b * T + t) * nq + (size_t)h * hd;
                const R *p = a->Pc + (((size_t)b * a->nh + h) * T + t) * T;
                const R *dout = a->dO + rq;
                R s = 0;
                for (int j = 0; j <= t; j++) {
                    size_t rk = ((size_t)b * T + j) * nk + (size_t)g * hd;
                    dp[j] = F(dot)(dout, a->V + rk, hd);
                    s += p[j] * dp[j];
                    F(axpy)(a->dV + rk, p[j], dout, hd);
                }
                for (int j = 0; j <= t; j++) {
                    size_t rk = ((size_t)b * T + j) * nk + (size_t)g * hd;
                    R ds = p[j] * (dp[j] - s) * scale;
                    F(axpy)(a->dQ + rq, ds, a->K + rk, hd);
                    F(axpy)(a->dK + rk, ds, a->Q + rq, hd);
                }
                if (a->dsk) {
                    double ps = 1.0;
                    for (int j = 0; j <= t; j++) ps -= p[j];
                    dsk -= ps * s;
                }
            }
            if (a->dsk) a->dsk[(size_t)b * a->nh + h] = (R)dsk;
        }
    }
}

void F(tr_attention_bwd)(sk_pool *pool, const tr_ws *ws, R *dQ, R *dK, R *dV, R *dsinks,
                         const R *dO, const R *P, const R *Q, const R *K, const R *V, int nb, int T,
                         int nh, int nkv, int hd, R *scratch) {
    int nth = pool ? sk_pool_size(pool) : 1;
    F(att_args) a = {.dQ = dQ, .dK = dK, .dV = dV, .dO = dO, .Pc = P, .Q = Q, .K = K, .V = V,
                     .nb = nb, .T = T, .nh = nh, .nkv = nkv, .hd = hd, .scr = scratch,
                     .dsk = dsinks ? scratch + (size_t)nth * T : NULL};
    F(par_for)(pool, (int64_t)nb * nkv, 1, F(att_bwd_items), &a);
    for (int b = 0; dsinks && b < nb; b++) /* one writer per (b, h), summed in a fixed order */
        for (int h = 0; h < nh; h++) dsinks[h] += a.dsk[(size_t)b * nh + h];
}

/* ---- SwiGLU --------------------------------------------------------------- */

typedef struct F(glu_args) {
    R *S, *dA, *dU;
    const R *A, *U, *dS;
} F(glu_args);

static void F(glu_fwd)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(glu_args) *a = arg;
    for (int64_t i = lo; i < hi; i++) a->S[i] = a->A[i] / (1 + EXP(-a->A[i])) * a->U[i];
}

void F(tr_swiglu)(sk_pool *pool, R *S, const R *A, const R *U, int64_t n) {
    F(glu_args) a = {.S = S, .A = A, .U = U};
    F(par_for)(pool, n, 256, F(glu_fwd), &a);
}

/* sig = 1 / (1 + e^-a): d silu/da = sig (1 + a (1 - sig)) */
static void F(glu_bwd)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(glu_args) *a = arg;
    for (int64_t i = lo; i < hi; i++) {
        R x = a->A[i], sg = 1 / (1 + EXP(-x));
        a->dA[i] += a->dS[i] * a->U[i] * sg * (1 + x * (1 - sg));
        a->dU[i] += a->dS[i] * x * sg;
    }
}

void F(tr_swiglu_bwd)(sk_pool *pool, R *dA, R *dU, const R *dS, const R *A, const R *U,
                      int64_t n) {
    F(glu_args) a = {.dA = dA, .dU = dU, .dS = dS, .A = A, .U = U};
    F(par_for)(pool, n, 256, F(glu_bwd), &a);
}

/* ---- cross-entropy -------------------------------------------------------- */

typedef struct F(xent_args) {
    R *Z, *loss;
    const int32_t *target;
    int64_t V;
    R scale;
} F(xent_args);

static void F(xent_rows)(void *arg, int64_t lo, int64_t hi, int ith) {
    F(xent_args) *a = arg;
    for (int64_t t = lo; t < hi; t++) {
        R *z = a->Z + t * a->V;
        R mx = z[0];
        for (int64_t j = 1; j < a->V; j++)
            if (z[j] > mx) mx = z[j];
        double sum = 0.0;
        for (int64_t j = 0; j < a->V; j++) sum += EXP(z[j] - mx);
        double lse = (double)mx + log(sum);
        int32_t y = a->target[t];
        a->loss[t] = (R)(lse - (double)z[y]);
        if (a->scale == 0) continue;
        R l = (R)lse;
        for (int64_t j = 0; j < a->V; j++) z[j] = EXP(z[j] - l) * a->scale;
        z[y] -= a->scale;
    }
}

void F(tr_xent)(sk_pool *pool, R *Z, R *loss, const int32_t *target, int64_t n, int64_t V,
                R grad_scale) {
    F(xent_args) a = {.Z = Z, .loss = loss, .target = target, .V = V, .scale = grad_scale};
    F(par_for)(pool, n, 1, F(xent_rows), &a);
}

#endif /* TR_FAST */

#undef F
