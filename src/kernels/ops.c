/* ops.c - small float kernels and the parallel quantized matmul (ops.h). */
#include "ops.h"

#include "pack.h"
#include "vec.h"

#include <math.h>
#include <string.h>

void sk_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    /* double accumulation (the mean must not depend on n's size) in eight
     * interleaved partial sums, p[k] over i = k mod 8, combined in a fixed
     * tree: eight independent chains the compiler vectorizes (one chain was
     * a serial add per element, 4% of Gemma 3's pre-fill), the same bits
     * for a row whatever the batch or thread count */
    double p[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) p[k] += (double)x[i + k] * x[i + k];
    for (int k = 0; i < n; i++, k++) p[k] += (double)x[i] * x[i];
    double ss = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

void sk_rope_table(double pos, int n_rot, double base, double scale, float *cs) {
    double p = pos / scale;
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = pow(base, -2.0 * i / n_rot);
        double a = p * theta;
        cs[2 * i] = (float)cos(a);
        cs[2 * i + 1] = (float)sin(a);
    }
}

void sk_rope_apply(float *x, int n_heads, int head_dim, int n_rot, int neox, const float *cs) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void sk_swiglu(float *g, const float *u, int64_t n) { sk_vec_get()->swiglu(g, u, n); }
void sk_geglu(float *g, const float *u, int64_t n) { sk_vec_get()->geglu(g, u, n); }

void sk_embed_row(const sk_tensor *emb, int32_t id, float *out) {
    if (emb->packed && emb->row_size <= 65536) { /* the packed copy: the file pages stay out */
        _Alignas(64) char row[65536];
        sk_unpack_row(emb->type, emb->ne[0],
                      (const char *)emb->packed + (size_t)(id / SK_PACK_ROWS) * emb->pack_gs,
                      id % SK_PACK_ROWS, row);
        emb->tt->to_float(row, out, emb->ne[0]);
        return;
    }
    const char *row = (const char *)emb->data + (size_t)id * emb->row_size;
    emb->tt->to_float(row, out, emb->ne[0]);
}

size_t sk_matmul_scratch_size(int64_t n_in_max, int n_tok) {
    /* the widest dot format is < 2 bytes per element (Q8_x: 34-36 B / 32,
     * Q8_K: 292 B / 256, F16/BF16: 2 B); F32 needs 4 */
    return (size_t)n_tok * ((size_t)n_in_max * 4 + 64) * 2;
}

/* ---- parallel matmul ----------------------------------------------------- */

#define SK_TILE_R 32 /* weight rows per gemm call (the kernels tile within it) */
#define SK_TILE_C 64 /* activation rows per gemm call (the kernels tile within it) */
#define SK_MAX_JOBS 4
#define SK_MAX_DOT_TYPES 4

typedef struct mm_ctx {
    const sk_matmul_job *jobs;
    int n_jobs;
    int n_tok;
    int n_in;
    const float *x;
    size_t x_stride;
    /* quantized input per job (pointer into qbuf) and its row stride */
    const void *xq[SK_MAX_JOBS];
    size_t xq_stride[SK_MAX_JOBS];
    int64_t row_begin[SK_MAX_JOBS + 1]; /* prefix sums of job rows */
    /* quantization work list */
    int n_qt;
    int qt_type[SK_MAX_DOT_TYPES];
    void *qt_buf[SK_MAX_DOT_TYPES];
    size_t qt_stride[SK_MAX_DOT_TYPES];
} mm_ctx;

static void mm_quantize(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    /* rows of (dot type, token) pairs split over threads */
    long total = (long)c->n_qt * c->n_tok, lo, hi;
    sk_split_range(total, 1, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        int q = (int)(i / c->n_tok), t = (int)(i % c->n_tok);
        const float *src = c->x + (size_t)t * c->x_stride;
        char *dst = (char *)c->qt_buf[q] + (size_t)t * c->qt_stride[q];
        if (c->qt_type[q] == SK_TYPE_F32)
            memcpy(dst, src, (size_t)c->n_in * sizeof(float));
        else
            sk_type_get(c->qt_type[q])->from_float(src, dst, c->n_in);
    }
}

static void mm_compute(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    long total = (long)c->row_begin[c->n_jobs], lo, hi;
    sk_split_range(total, 16, ith, nth, &lo, &hi);
    for (int j = 0; j < c->n_jobs; j++) {
        long jb = c->row_begin[j], je = c->row_begin[j + 1];
        long r0 = lo > jb ? lo : jb, r1 = hi < je ? hi : je;
        if (r0 >= r1) continue;
        const sk_tensor *w = c->jobs[j].w;
        const sk_type_traits *tt = w->tt;
        float *out = c->jobs[j].out;
        size_t os = c->jobs[j].out_stride;
        const char *wd = (const char *)w->data;
        r0 -= jb;
        r1 -= jb;
        if (c->n_tok == 1) {
            for (long r = r0; r < r1; r++)
                tt->vec_dot(c->n_in, out + r, wd + (size_t)r * w->row_size, c->xq[j]);
            continue;
        }
        for (long r = r0; r < r1; r += SK_TILE_R) {
            int nr = (int)(r1 - r < SK_TILE_R ? r1 - r : SK_TILE_R);
            for (int t = 0; t < c->n_tok; t += SK_TILE_C) {
                int nc = c->n_tok - t < SK_TILE_C ? c->n_tok - t : SK_TILE_C;
                tt->gemm(c->n_in, nr, nc, wd + (size_t)r * w->row_size, w->row_size,
                         (const char *)c->xq[j] + (size_t)t * c->xq_stride[j], c->xq_stride[j],
                         out + (size_t)t * os + r, os);
            }
        }
    }
}

/* ---- packed weights (pack.h): 16-row groups split over the threads ------ */

typedef struct mmk_ctx {
    const sk_matmul_job *jobs;
    int n_jobs, n_tok, n_in;
    const float *x;
    size_t x_stride;
    sk_block_q8p *xq;       /* n_tok rows of xq_stride bytes */
    size_t xq_stride;
    int64_t group_begin[SK_MAX_JOBS + 1]; /* prefix sums of job groups */
} mmk_ctx;

static void mmk_quantize(void *arg, int ith, int nth) {
    mmk_ctx *c = arg;
    long lo, hi;
    sk_split_range(c->n_tok, 1, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        sk_q8p_quantize(c->x + (size_t)t * c->x_stride,
                        (sk_block_q8p *)((char *)c->xq + (size_t)t * c->xq_stride), c->n_in);
}

static void mmk_compute(void *arg, int ith, int nth) {
    mmk_ctx *c = arg;
    long lo, hi;
    sk_split_range((long)c->group_begin[c->n_jobs], 1, ith, nth, &lo, &hi);
    for (int j = 0; j < c->n_jobs; j++) {
        long jb = (long)c->group_begin[j], je = (long)c->group_begin[j + 1];
        long g0 = lo > jb ? lo : jb, g1 = hi < je ? hi : je;
        if (g0 >= g1) continue;
        const sk_tensor *w = c->jobs[j].w;
        g0 -= jb;
        g1 -= jb;
        sk_packed_gemm(w->type, c->n_in, g1 - g0, c->n_tok,
                       (const char *)w->packed + (size_t)g0 * w->pack_gs, w->pack_gs, c->xq,
                       c->xq_stride, c->jobs[j].out + (size_t)g0 * SK_PACK_ROWS,
                       c->jobs[j].out_stride);
    }
}

static void matmul_packed(sk_pool *pool, const sk_matmul_job *jobs, int n_jobs, const float *x,
                          size_t x_stride, int n_in, int n_tok, void *qbuf) {
    mmk_ctx c = {jobs, n_jobs, n_tok, n_in, x, x_stride, qbuf,
                 sizeof(sk_block_q8p) * (size_t)(n_in / 32), {0}};
    for (int j = 0; j < n_jobs; j++)
        c.group_begin[j + 1] = c.group_begin[j] + jobs[j].w->ne[1] / SK_PACK_ROWS;
    if (n_tok == 1) mmk_quantize(&c, 0, 1);
    else sk_pool_run(pool, mmk_quantize, &c);
    sk_pool_run(pool, mmk_compute, &c);
}

void sk_matmul(sk_pool *pool, const sk_matmul_job *jobs, int n_jobs, const float *x,
               size_t x_stride, int n_in, int n_tok, void *qbuf) {
    SK_ASSERT(n_jobs >= 1 && n_jobs <= SK_MAX_JOBS);
    int all_packed = 1;
    for (int j = 0; j < n_jobs; j++) all_packed &= jobs[j].w->packed != NULL;
    if (all_packed) {
        matmul_packed(pool, jobs, n_jobs, x, x_stride, n_in, n_tok, qbuf);
        return;
    }
    mm_ctx c;
    memset(&c, 0, sizeof c);
    c.jobs = jobs;
    c.n_jobs = n_jobs;
    c.n_tok = n_tok;
    c.n_in = n_in;
    c.x = x;
    c.x_stride = x_stride;
    char *qb = qbuf;
    for (int j = 0; j < n_jobs; j++) {
        SK_ASSERT(jobs[j].w->ne[0] == n_in);
        int dt = jobs[j].w->tt->dot_type;
        int q;
        for (q = 0; q < c.n_qt; q++)
            if (c.qt_type[q] == dt) break;
        if (q == c.n_qt) {
            SK_ASSERT(c.n_qt < SK_MAX_DOT_TYPES);
            c.qt_type[q] = dt;
            c.qt_stride[q] = (dt == SK_TYPE_F32) ? (size_t)n_in * 4 : sk_row_size(dt, n_in);
            SK_ASSERT(c.qt_stride[q] > 0);
            c.qt_buf[q] = qb;
            qb += (c.qt_stride[q] * (size_t)n_tok + 63) & ~(size_t)63;
            c.n_qt++;
        }
        c.xq[j] = c.qt_buf[q];
        c.xq_stride[j] = c.qt_stride[q];
        c.row_begin[j + 1] = c.row_begin[j] + jobs[j].w->ne[1];
    }
    if (n_tok == 1)
        mm_quantize(&c, 0, 1); /* one row: not worth a dispatch */
    else
        sk_pool_run(pool, mm_quantize, &c);
    sk_pool_run(pool, mm_compute, &c);
}

typedef struct mmp_ctx {
    const sk_matmul_job *jobs;
    int n_jobs, n_tok, n_in;
    const float *x;
    size_t x_stride;
    float *rowbuf;
    int64_t row_begin[SK_MAX_JOBS + 1];
} mmp_ctx;

static void mmp_compute(void *arg, int ith, int nth) {
    mmp_ctx *c = arg;
    long lo, hi;
    sk_split_range((long)c->row_begin[c->n_jobs], 1, ith, nth, &lo, &hi);
    float *row = c->rowbuf + (size_t)ith * c->n_in;
    for (long g = lo; g < hi; g++) {
        int j = 0;
        while (g >= c->row_begin[j + 1]) j++;
        const sk_tensor *w = c->jobs[j].w;
        long r = g - (long)c->row_begin[j];
        w->tt->to_float((const char *)w->data + (size_t)r * w->row_size, row, c->n_in);
        for (int t = 0; t < c->n_tok; t++) {
            const float *xt = c->x + (size_t)t * c->x_stride;
            double s = 0;
            for (int i = 0; i < c->n_in; i++) s += (double)row[i] * xt[i];
            c->jobs[j].out[(size_t)t * c->jobs[j].out_stride + (size_t)r] = (float)s;
        }
    }
}

void sk_matmul_precise(sk_pool *pool, const sk_matmul_job *jobs, int n_jobs, const float *x,
                       size_t x_stride, int n_in, int n_tok, float *rowbuf) {
    SK_ASSERT(n_jobs >= 1 && n_jobs <= SK_MAX_JOBS);
    mmp_ctx c = {jobs, n_jobs, n_tok, n_in, x, x_stride, rowbuf, {0}};
    for (int j = 0; j < n_jobs; j++) c.row_begin[j + 1] = c.row_begin[j] + jobs[j].w->ne[1];
    sk_pool_run(pool, mmp_compute, &c);
}
