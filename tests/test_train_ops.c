/* test_train_ops.c - the trainer's backward passes against finite
 * differences, in double precision.
 *
 * Every op of src/train/tops.h: its f64 backward against central
 * differences of its f64 forward (L = sum(c * Y) for a random c, step
 * 1e-5: truncation error ~1e-10, so a wrong term shows as an error of
 * order 1 while a correct one stays below 1e-6 relative), and its f32
 * twin against the f64 op (forward and backward, F32 rounding). Then the
 * whole network (src/train/net.h) the same way: every parameter of a tiny
 * model (2 layers, GQA, tied and untied, with the zero sink, with sink logits)
 * against central differences of the f64 mean loss, and the f32 network's
 * gradient against the f64 one.
 * Figure reported: the max relative error max|a - n| / max|n| per op. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "train/net.h"
#include "train/tgemm.h"
#include "train/tops.h"
#include "train/tvec.h"

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}
static double *rnd(size_t n, double s) {
    double *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = urand() * s;
    return p;
}
static float *tof(const double *x, size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)x[i];
    return p;
}
/* max |a - b| / max |b| */
static double relerr(const double *a, const double *b, size_t n) {
    double e = 0, m = 1e-300;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return e / m;
}
static double relerr_f(const float *a, const double *b, size_t n) {
    double e = 0, m = 1e-300;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return e / m;
}

/* An op as a function of its inputs: writes L = sum(c * Y). */
typedef double (*loss_fn)(void *ctx);

/* Central differences of fn over x[0..n) into num. */
static void numgrad(loss_fn fn, void *ctx, double *x, size_t n, double *num) {
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = fn(ctx);
        x[i] = x0 - h;
        double lm = fn(ctx);
        x[i] = x0;
        num[i] = (lp - lm) / (2 * h);
    }
}
static double dotc(const double *c, const double *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += c[i] * y[i];
    return s;
}

#define CHECK(name, an, num, n, tol)                                                     \
    do {                                                                                 \
        double e_ = relerr(an, num, n);                                                  \
        print_message("  %-28s f64 vs central differences: max rel err %.2e\n", name, e_); \
        if (!(e_ < (tol))) fail_msg("%s: relative error %.3e above %.1e", name, e_, (double)(tol)); \
    } while (0)
#define CHECK32(name, a, b, n, tol)                                                      \
    do {                                                                                 \
        double e_ = relerr_f(a, b, n);                                                   \
        print_message("  %-28s f32 vs f64: max rel err %.2e\n", name, e_);              \
        if (!(e_ < (tol))) fail_msg("%s: f32 relative error %.3e above %.1e", name, e_, (double)(tol)); \
    } while (0)

/* ---- matmul --------------------------------------------------------------- */
enum { MN = 5, MI = 7, MO = 9 };
typedef struct { double *X, *W, *Y, *c; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *m = p;
    tr_matmul_f64(NULL, NULL, m->Y, m->X, m->W, MN, MI, MO);
    return dotc(m->c, m->Y, MN * MO);
}
static void test_matmul(void **state) {
    (void)state;
    mm_ctx m = {rnd(MN * MI, 1), rnd(MO * MI, 1), calloc(MN * MO, 8), rnd(MN * MO, 1)};
    double *dX = calloc(MN * MI, 8), *dW = calloc(MO * MI, 8), *nX = calloc(MN * MI, 8),
           *nW = calloc(MO * MI, 8);
    tr_matmul_bwd_f64(NULL, NULL, dX, dW, m.c, m.X, m.W, MN, MI, MO);
    numgrad(mm_loss, &m, m.X, MN * MI, nX);
    numgrad(mm_loss, &m, m.W, MO * MI, nW);
    CHECK("matmul dX", dX, nX, MN * MI, 1e-8);
    CHECK("matmul dW", dW, nW, MO * MI, 1e-8);
    /* f32 twin, on a pool of 2 threads (split over rows and over columns) */
    sk_pool *pool;
    tr_ws ws;
    assert_int_equal(sk_pool_new(2, &pool, NULL), SK_OK);
    assert_int_equal(tr_ws_init(&ws, 2, 1, 0, NULL), SK_OK);
    float *X = tof(m.X, MN * MI), *W = tof(m.W, MO * MI), *c = tof(m.c, MN * MO);
    float *Y = calloc(MN * MO, 4), *fX = calloc(MN * MI, 4), *fW = calloc(MO * MI, 4);
    mm_loss(&m);
    tr_matmul_f32(pool, &ws, Y, X, W, MN, MI, MO);
    CHECK32("matmul Y", Y, m.Y, MN * MO, 1e-6);
    tr_matmul_bwd_f32(pool, &ws, fX, fW, c, X, W, MN, MI, MO);
    CHECK32("matmul dX", fX, dX, MN * MI, 1e-6);
    CHECK32("matmul dW", fW, dW, MO * MI, 1e-6);
    sk_pool_free(pool);
    tr_ws_free(&ws);
    free(m.X), free(m.W), free(m.Y), free(m.c), free(dX), free(dW), free(nX), free(nW);
    free(X), free(W), free(c), free(Y), free(fX), free(fW);
}

/* ---- the blocked matrix product (tgemm.h): AVX2 kernel vs scalar twin ---- */

/* x rounded to BF16 (tg_bf16), as a float */
static float bf16r(float x) { return tg_bf16_f32(tg_bf16(x)); }

/* C (M x N, row stride ldc) = C0 + A B in double; bf16: of the operands
 * rounded to BF16 */
static void gemm_f64(int64_t M, int64_t N, int64_t K, tg_mat A, tg_mat B, const float *C0,
                     double *C, int bf16) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = C0[m * N + n];
            for (int64_t k = 0; k < K; k++) {
                float a = A.p[m * A.rs + k * A.cs], b = B.p[k * B.rs + n * B.cs];
                s += bf16 ? (double)bf16r(a) * bf16r(b) : (double)a * b;
            }
            C[m * N + n] = s;
        }
}
static float *frnd(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)urand();
    return p;
}
static float *fdup(const float *x, size_t n) {
    float *p = malloc(n * sizeof *p);
    memcpy(p, x, n * sizeof *p);
    return p;
}
/* equal as floats (+0 == -0) over C(m, n), n <= m only when lower */
static int same_vals(const float *a, const float *b, int64_t M, int64_t N, int lower) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N && (!lower || n <= m); n++)
            if (!(a[m * N + n] == b[m * N + n])) return 0;
    return 1;
}

/* For shapes with tails in every dimension (the last ones crossing TG_MC,
 * TG_KC and TG_NC) and the trainer's three operand layouts (X W^T, dY W,
 * dY^T X): each kernel against the product in double (relative 1e-5 of
 * max |C|); the product computed whole vs as four rectangles with K in two
 * parts at TG_KC (acc), vs on a pool of 2 threads, and C = AB vs C = 0 + AB:
 * the same bits (the per-element arithmetic of tgemm.h). Then the triangle flags:
 * the skipped terms are exact zeros, the kept elements unchanged. */
static void gemm_check(const tg_kernels *ks[2], int bf16) {
    float *buf = aligned_alloc(64, 2 * TG_BUF_FLOATS * sizeof(float));
    sk_pool *pool;
    assert_int_equal(sk_pool_new(2, &pool, NULL), SK_OK);
    const int sh[][3] = {{1, 1, 1},    {7, 15, 7},     {13, 17, 8},    {6, 16, 33},
                         {25, 40, 71}, {100, 33, 300}, {200, 1030, 260}};
    double worst[2] = {0, 0};
    for (size_t si = 0; si < sizeof sh / sizeof *sh; si++)
        for (int L = 0; L < 3; L++) {
            const int64_t M = sh[si][0], N = sh[si][1], K = sh[si][2];
            float *as = frnd((size_t)(M * K)), *bs = frnd((size_t)(K * N)), *C0 = frnd((size_t)(M * N));
            tg_mat A = L == 2 ? (tg_mat){as, 1, M} : (tg_mat){as, K, 1};
            tg_mat B = L == 0 ? (tg_mat){bs, 1, K} : (tg_mat){bs, N, 1};
            double *Cd = malloc(sizeof(double) * M * N), mx = 0;
            gemm_f64(M, N, K, A, B, C0, Cd, bf16);
            for (int64_t i = 0; i < M * N; i++) mx = fmax(mx, fabs(Cd[i]));
            float *Cs[2] = {NULL, NULL};
            for (int k = 0; k < 2; k++) {
                if (!ks[k]) continue;
                float *C1 = fdup(C0, M * N), *C2 = fdup(C0, M * N);
                tg_gemm_st(ks[k], buf, M, N, K, A, B, C1, N, 1, TG_FULL);
                Cs[k] = fdup(C1, M * N);
                double e = 0;
                for (int64_t i = 0; i < M * N; i++) e = fmax(e, fabs(C1[i] - Cd[i]));
                worst[k] = fmax(worst[k], e / mx);
                /* four rectangles, K in two parts where it is longer than a K block */
                int64_t m1 = M / 3, n1 = N / 2 + 1 < N ? N / 2 + 1 : N, k1 = K > TG_KC ? TG_KC : K;
                for (int r = 0; r < 4; r++) {
                    int64_t mo = r & 1 ? m1 : 0, mh = r & 1 ? M - m1 : m1;
                    int64_t no = r & 2 ? n1 : 0, nh = r & 2 ? N - n1 : n1;
                    for (int kp = 0; kp < 2; kp++) {
                        int64_t ko = kp ? k1 : 0, kh = kp ? K - k1 : k1;
                        tg_mat Ap = {A.p + mo * A.rs + ko * A.cs, A.rs, A.cs};
                        tg_mat Bp = {B.p + ko * B.rs + no * B.cs, B.rs, B.cs};
                        tg_gemm_st(ks[k], buf, mh, nh, kh, Ap, Bp, C2 + mo * N + no, N, 1, TG_FULL);
                    }
                }
                assert_memory_equal(C1, C2, sizeof(float) * M * N);
                /* overwrite (C holds NaN) vs accumulate onto zeros */
                for (int64_t i = 0; i < M * N; i++) C1[i] = NAN, C2[i] = 0;
                tg_gemm_st(ks[k], buf, M, N, K, A, B, C1, N, 0, TG_FULL);
                tg_gemm_st(ks[k], buf, M, N, K, A, B, C2, N, 1, TG_FULL);
                assert_memory_equal(C1, C2, sizeof(float) * M * N);
                { /* the pool's split (rows or columns) */
                    memcpy(C2, C0, sizeof(float) * M * N);
                    memcpy(C1, C0, sizeof(float) * M * N);
                    tg_gemm_st(ks[k], buf, M, N, K, A, B, C1, N, 1, TG_FULL);
                    tg_gemm(pool, ks[k], buf, M, N, K, A, B, C2, N, 1);
                    assert_memory_equal(C1, C2, sizeof(float) * M * N);
                }
                free(C1), free(C2);
            }
            /* BF16: the SIMD kernels give the scalar twin's bits */
            if (bf16 && Cs[0] && Cs[1]) assert_memory_equal(Cs[0], Cs[1], sizeof(float) * M * N);
            free(Cs[0]), free(Cs[1]);
            free(as), free(bs), free(C0), free(Cd);
        }
    /* the triangles: T x T products with K = T (and T > TG_KC) */
    const int Ts[] = {5, 37, 300};
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        const int64_t T = Ts[ti];
        float *P = frnd((size_t)(T * T)), *U = frnd((size_t)(T * T)), *Bm = frnd((size_t)(T * T));
        for (int64_t m = 0; m < T; m++)
            for (int64_t j = 0; j < T; j++) {
                if (j > m) P[m * T + j] = 0; /* lower */
                if (j < m) U[m * T + j] = 0; /* upper */
            }
        for (int k = 0; k < 2; k++) {
            if (!ks[k]) continue;
            float *C1 = malloc(sizeof(float) * T * T), *C2 = malloc(sizeof(float) * T * T);
            tg_mat B = {Bm, T, 1};
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){U, T, 1}, B, C1, T, 0, TG_FULL);
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){U, T, 1}, B, C2, T, 0, TG_C_LOWER);
            assert_true(same_vals(C1, C2, T, T, 1));
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){P, T, 1}, B, C1, T, 0, TG_FULL);
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){P, T, 1}, B, C2, T, 0, TG_A_LOWER);
            assert_true(same_vals(C1, C2, T, T, 0));
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){U, T, 1}, B, C1, T, 0, TG_FULL);
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){U, T, 1}, B, C2, T, 0, TG_A_UPPER);
            assert_true(same_vals(C1, C2, T, T, 0));
            /* transposed operands, accumulating (the attention backward's dV, dK) */
            for (int64_t i = 0; i < T * T; i++) C1[i] = C2[i] = (float)(0.5 * sin((double)i));
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){P, 1, T}, B, C1, T, 1, TG_FULL);
            tg_gemm_st(ks[k], buf, T, T, T, (tg_mat){P, 1, T}, B, C2, T, 1, TG_A_UPPER);
            assert_true(same_vals(C1, C2, T, T, 0));
            free(C1), free(C2);
        }
        free(P), free(U), free(Bm);
    }
    if (!bf16) { /* the transposing packer: the same bits in both sets (a copy); the
                  * kernel reading A in place = the one reading it packed, bit for bit */
        const int64_t ldw = 43, kc = 37; /* kc: 4 blocks of 8 and a tail */
        float *w = frnd(TG_NR * ldw), *a = frnd(TG_MR * ldw), *ap = malloc(sizeof(float) * TG_MR * kc);
        float *d[2], c[2][TG_MR * TG_NR], r[2][TG_MR * TG_NR];
        for (int k = 0; k < 2; k++) d[k] = aligned_alloc(64, sizeof(float) * TG_NR * 40);
        for (int64_t k = 0; k < kc; k++)
            for (int i = 0; i < TG_MR; i++) ap[k * TG_MR + i] = a[i * ldw + k];
        for (int k = 0; k < 2; k++) {
            if (!ks[k]) continue;
            ks[k]->pack_bt(d[k], w, ldw, kc);
            for (int64_t kk = 0; kk < kc; kk++)
                for (int j = 0; j < TG_NR; j++) assert_true(d[k][kk * TG_NR + j] == w[j * ldw + kk]);
            for (int i = 0; i < TG_MR * TG_NR; i++) c[k][i] = r[k][i] = (float)urand();
            ks[k]->ukr(kc, ap, d[k], c[k], TG_NR, 1);
            ks[k]->ukr_rows(kc, a, ldw, d[k], r[k], TG_NR, 1);
            assert_memory_equal(c[k], r[k], sizeof c[k]);
        }
        free(w), free(a), free(ap), free(d[0]), free(d[1]);
    }
    print_message("  gemm vs double%s, 7 shapes x 3 layouts: %s %.2e, %s %.2e (max rel)\n",
                  bf16 ? " (of the BF16-rounded operands)" : "", ks[0]->name, worst[0],
                  ks[1] ? ks[1]->name : "-", worst[1]);
    assert_true(worst[0] < 1e-5 && worst[1] < 1e-5);
    sk_pool_free(pool);
    free(buf);
}

static void test_gemm_kernels(void **state) {
    (void)state;
    const tg_kernels *ks[2] = {tg_get_ref(), tg_get_avx2()};
    if (!ks[1]) print_message("  no AVX2: the scalar twin alone\n");
    gemm_check(ks, 0);
}

/* 32 random bits (a separate stream from urand's) */
static uint64_t g_lcg = 1;
static uint32_t rbits(void) {
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_lcg >> 32);
}

/* a float from raw bits */
static float fbits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* BF16 mixed precision (tgemm.h): the conversions on edge values (ties,
 * subnormals, FLT_MIN, overflow to infinity, NaN) and every tail length;
 * the micro-kernels on operands over the whole exponent range (flushes,
 * overflow) against the scalar twin, bit for bit; then the loop nest as
 * test_gemm_kernels checks F32, plus the SIMD result = the twin's bits. */
static void test_gemm_bf16(void **state) {
    (void)state;
    const tg_kernels *ks[2] = {tg_get_bf16_ref(), tg_get_bf16_avx512()};
    if (!ks[1]) print_message("  no AVX512-BF16: the scalar twin alone (the SIMD set skipped)\n");
    /* tg_bf16 itself: known values */
    assert_int_equal(tg_bf16(1.0f), 0x3F80);
    assert_int_equal(tg_bf16(fbits(0x3F808000u)), 0x3F80); /* tie to even (down) */
    assert_int_equal(tg_bf16(fbits(0x3F818000u)), 0x3F82); /* tie to even (up) */
    assert_int_equal(tg_bf16(fbits(0x3F808001u)), 0x3F81);
    assert_int_equal(tg_bf16(fbits(0x00400000u)), 0x0000); /* subnormal to zero */
    assert_int_equal(tg_bf16(fbits(0x80000001u)), 0x8000);
    assert_int_equal(tg_bf16(fbits(0x7F7FFFFFu)), 0x7F80); /* FLT_MAX rounds to infinity */
    assert_int_equal(tg_bf16(fbits(0x7FC00000u)), 0x7FC0);
    assert_int_equal(tg_bf16(fbits(0x7F800001u)) & 0x7FC0, 0x7FC0); /* NaN stays NaN, quiet */
    /* the conversions: every table against tg_pair, lengths 1..70 */
    enum { NX = 72 };
    float x0[NX], x1[NX];
    const uint32_t edge[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u,
                             0x80800000u, 0x3F808000u, 0x3F818000u, 0x7F7FFFFFu, 0xFF7FFFFFu,
                             0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u, 0x3F7FFFFFu};
    for (int i = 0; i < NX; i++) {
        uint32_t u = rbits();
        x0[i] = i < (int)(sizeof edge / sizeof *edge) ? fbits(edge[i]) : fbits(u);
        x1[i] = i % 3 ? (float)urand() : fbits(edge[(i * 7) % (sizeof edge / sizeof *edge)]);
    }
    for (int k = 0; k < 2; k++) {
        if (!ks[k]) continue;
        for (int64_t n = 1; n <= 70; n++) {
            uint32_t d[NX + 1], want[NX + 1];
            for (int i = 0; i <= NX; i++) d[i] = 0xDEADBEEFu;
            ks[k]->cvt_pairs(d, x0, x1, n);
            for (int64_t i = 0; i < n; i++) assert_int_equal(d[i], tg_pair(x0[i], x1[i]));
            assert_int_equal(d[n], 0xDEADBEEFu);
            ks[k]->cvt_pairs(d, x1, NULL, n);
            for (int64_t i = 0; i < n; i++) assert_int_equal(d[i], tg_pair(x1[i], 0.0f));
            for (int i = 0; i <= NX; i++) d[i] = 0xDEADBEEFu;
            ks[k]->cvt_row(d, x0, n);
            for (int64_t p = 0; 2 * p < n; p++) want[p] = tg_pair(x0[2 * p], 2 * p + 1 < n ? x0[2 * p + 1] : 0.0f);
            assert_memory_equal(d, want, sizeof *d * (size_t)((n + 1) / 2));
            assert_int_equal(d[(n + 1) / 2], 0xDEADBEEFu);
        }
    }
    /* the micro-kernels: pairs of random finite BF16 over every exponent
     * (sums that flush, overflow, cancel), k-major vs rows, C loaded or not */
    if (ks[1]) {
        enum { KP = 37 };
        uint32_t a[KP * TG_MR], ar[TG_MR * KP], b[KP * TG_NR];
        for (int round = 0; round < 200; round++) {
            /* biased exponents: all; around 1; products near FLT_MIN (sums that
             * flush); a narrow band around 1 (long carries) */
            const int base[4] = {0, 112, 58, 124}, span = (int[4]){0xFF, 0x1F, 12, 6}[round % 4];
            for (int i = 0; i < KP * TG_MR + KP * TG_NR; i++) {
                uint32_t v = 0;
                for (int h = 0; h < 2; h++) {
                    uint32_t r = rbits() >> 1;
                    uint32_t e = (uint32_t)base[round % 4] + r % (uint32_t)span;
                    uint32_t w = (r >> 10 & 0x8000u) | e << 7 | (r >> 20 & 0x7Fu);
                    v |= w << (16 * h);
                }
                if (i < KP * TG_MR) a[i] = v;
                else b[i - KP * TG_MR] = v;
            }
            for (int q = 0; q < KP; q++)
                for (int i = 0; i < TG_MR; i++) ar[i * KP + q] = a[q * TG_MR + i];
            float c[2][2][TG_MR * TG_NR];
            for (int load = 0; load < 2; load++) {
                for (int i = 0; i < TG_MR * TG_NR; i++)
                    c[0][0][i] = c[0][1][i] = c[1][0][i] = c[1][1][i] =
                        round % 2 ? (float)urand() : fbits(0x00000010u);
                for (int k = 0; k < 2; k++) {
                    ks[k]->ukr_p(KP - round % 5, a, b, c[k][0], TG_NR, load);
                    ks[k]->ukr_rows_p(KP - round % 5, ar, KP, b, c[k][1], TG_NR, load);
                }
                assert_memory_equal(c[0][0], c[1][0], sizeof c[0][0]);
                assert_memory_equal(c[0][0], c[0][1], sizeof c[0][0]);
                assert_memory_equal(c[1][0], c[1][1], sizeof c[0][0]);
            }
        }
    }
    /* the flush decided before the subnormal rounding: FLT_MIN (2^-63 2^-63)
     * then - 2^-150 (2^-75 2^-75) is exact in 24 bits and tiny: +0 (rounded
     * to the subnormal grid first it would be a tie to FLT_MIN); and from
     * FLT_MIN - 2^-151 up, FLT_MIN */
    for (int k = 0; k < 2; k++) {
        if (!ks[k]) continue;
        uint32_t a[TG_MR] = {0}, b[TG_NR] = {0};
        float c[TG_MR * TG_NR];
        a[0] = tg_pair(0x1p-75f, 0x1p-63f);  /* (even, odd) */
        b[0] = tg_pair(-0x1p-75f, 0x1p-63f); /* column 0: FLT_MIN - 2^-150 */
        b[1] = tg_pair(0x1p-75f, 0x1p-63f);  /* column 1: FLT_MIN + 2^-150, a tie */
        ks[k]->ukr_p(1, a, b, c, TG_NR, 0);
        assert_true(c[0] == 0.0f && !signbit(c[0]));
        assert_true(c[1] == 0x1p-126f); /* a tie, to even */
        a[0] = tg_pair(0x1p-76f, 0x1p-63f); /* FLT_MIN - 2^-151: a tie, to FLT_MIN */
        ks[k]->ukr_p(1, a, b, c, TG_NR, 0);
        assert_true(c[0] == 0x1p-126f);
    }
    gemm_check(ks, 1);
}

/* ---- the row kernels (tvec.h): AVX2 set and scalar twin vs double -------- */

static void test_row_kernels(void **state) {
    (void)state;
    const tv_kernels *ks[2] = {tv_get_ref(), tv_get_avx2()};
    const int ns[] = {1, 5, 8, 13, 64, 257};
    double worst[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (!ks[k]) continue;
        const tv_kernels *tv = ks[k];
        double w = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            const int n = ns[ni];
            float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n),
                  *g = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n),
                  *e = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) x[i] = (float)(10 * urand()), g[i] = (float)urand(), d[i] = (float)urand();
            /* max: exact */
            float m = x[0];
            for (int i = 1; i < n; i++) m = fmaxf(m, x[i]);
            assert_true(tv->max(x, n) == m);
            /* exp_sum over [-10, 10] and over [-100, 0] (underflow) */
            for (int r = 0; r < 2; r++) {
                if (r) for (int i = 0; i < n; i++) x[i] = (float)(50 * urand() - 50);
                float mm = r ? 0.0f : m;
                double s = 0;
                for (int i = 0; i < n; i++) s += exp((double)(x[i] - mm)); /* the rounded argument */
                float fs = tv->exp_sum(e, x, n, mm);
                w = fmax(w, s > 1.2e-38 ? fabs(fs - s) / s : fabs(fs - s) * 1e30);
                assert_true(fabs(tv->exp_sum(NULL, x, n, mm) - fs) == 0);
                for (int i = 0; i < n; i++) {
                    double t = exp((double)(x[i] - mm)); /* below FLT_MIN: absolute */
                    w = fmax(w, t > 1.2e-38 ? fabs(e[i] - t) / t : fabs(e[i] - t) * 1e30);
                }
            }
            /* dot, dot3, sumsq: relative to the sum of |terms| */
            double s = 0, a = 0, s3 = 0, a3 = 0, q = 0;
            for (int i = 0; i < n; i++) {
                s += (double)x[i] * g[i], a += fabs((double)x[i] * g[i]);
                s3 += (double)d[i] * g[i] * x[i], a3 += fabs((double)d[i] * g[i] * x[i]);
                q += (double)x[i] * x[i];
            }
            w = fmax(w, fabs(tv->dot(x, g, n) - s) / a);
            w = fmax(w, fabs(tv->dot3(d, g, x, n) - s3) / a3);
            w = fmax(w, fabs(tv->sumsq(x, n) - q) / q);
            /* elementwise: scale, dsoft, norm rows */
            memcpy(y, d, sizeof(float) * n);
            tv->scale(y, n, 0.37f);
            for (int i = 0; i < n; i++) w = fmax(w, fabs(y[i] - d[i] * 0.37) / (fabs(d[i] * 0.37) + 1e-30));
            memcpy(y, d, sizeof(float) * n);
            tv->dsoft(y, g, n, 0.25f, 0.125f);
            for (int i = 0; i < n; i++) {
                double t = (double)g[i] * (d[i] - 0.25) * 0.125;
                w = fmax(w, fabs(y[i] - t) / 0.25);
            }
            tv->norm_row(y, x, g, 0.3f, n);
            for (int i = 0; i < n; i++) w = fmax(w, fabs(y[i] - (double)x[i] * 0.3 * g[i]) / 15);
            memcpy(y, d, sizeof(float) * n);
            tv->norm_bwd_row(y, d, g, x, 0.3f, 0.01f, n);
            for (int i = 0; i < n; i++)
                w = fmax(w, fabs(y[i] - (d[i] + 0.3 * g[i] * d[i] - 0.01 * x[i])) / 2);
            memcpy(y, g, sizeof(float) * n);
            tv->norm_dg_row(y, d, x, 0.3f, n);
            for (int i = 0; i < n; i++) w = fmax(w, fabs(y[i] - (g[i] + (double)d[i] * x[i] * 0.3)) / 5);
            /* SwiGLU over [-20, 20] */
            for (int i = 0; i < n; i++) x[i] = (float)(20 * urand());
            tv->swiglu(y, x, g, n);
            for (int i = 0; i < n; i++) {
                double sg = 1 / (1 + exp(-(double)x[i]));
                w = fmax(w, fabs(y[i] - x[i] * sg * g[i]) / 20);
            }
            memcpy(y, d, sizeof(float) * n);
            memcpy(e, g, sizeof(float) * n);
            tv->swiglu_bwd(y, e, d, x, g, n);
            for (int i = 0; i < n; i++) {
                double xi = x[i], sg = 1 / (1 + exp(-xi));
                w = fmax(w, fabs(y[i] - (d[i] + (double)d[i] * g[i] * sg * (1 + xi * (1 - sg)))) / 20);
                w = fmax(w, fabs(e[i] - (g[i] + (double)d[i] * xi * sg)) / 20);
            }
            free(x), free(y), free(g), free(d), free(e);
        }
        worst[k] = w;
    }
    print_message("  row kernels vs double, 6 lengths: scalar twin %.2e, avx2 %.2e (max rel)\n",
                  worst[0], worst[1]);
    assert_true(worst[0] < 1e-6 && worst[1] < 1e-6);
}

/* ---- RMSNorm -------------------------------------------------------------- */
enum { NN = 4, ND = 16 };
typedef struct { double *X, *g, *Y, *r, *c; } norm_ctx;
static double norm_loss(void *p) {
    norm_ctx *m = p;
    tr_rmsnorm_f64(NULL, m->Y, m->r, m->X, m->g, NN, ND, 1e-5);
    return dotc(m->c, m->Y, NN * ND);
}
static void test_rmsnorm(void **state) {
    (void)state;
    norm_ctx m = {rnd(NN * ND, 1), rnd(ND, 1), calloc(NN * ND, 8), calloc(NN, 8), rnd(NN * ND, 1)};
    double *dX = calloc(NN * ND, 8), *dg = calloc(ND, 8), *nX = calloc(NN * ND, 8), *ng = calloc(ND, 8);
    norm_loss(&m);
    tr_rmsnorm_bwd_f64(NULL, dX, dg, m.c, m.X, m.g, m.r, NN, ND);
    numgrad(norm_loss, &m, m.X, NN * ND, nX);
    numgrad(norm_loss, &m, m.g, ND, ng);
    CHECK("rmsnorm dX", dX, nX, NN * ND, 1e-7);
    CHECK("rmsnorm dg", dg, ng, ND, 1e-7);
    float *X = tof(m.X, NN * ND), *g = tof(m.g, ND), *c = tof(m.c, NN * ND), *Y = calloc(NN * ND, 4),
          *r = calloc(NN, 4), *fX = calloc(NN * ND, 4), *fg = calloc(ND, 4);
    norm_loss(&m);
    tr_rmsnorm_f32(NULL, Y, r, X, g, NN, ND, 1e-5);
    CHECK32("rmsnorm Y", Y, m.Y, NN * ND, 1e-6);
    tr_rmsnorm_bwd_f32(NULL, fX, fg, c, X, g, r, NN, ND);
    CHECK32("rmsnorm dX", fX, dX, NN * ND, 1e-5);
    CHECK32("rmsnorm dg", fg, dg, ND, 1e-5);
    free(m.X), free(m.g), free(m.Y), free(m.r), free(m.c), free(dX), free(dg), free(nX), free(ng);
    free(X), free(g), free(c), free(Y), free(r), free(fX), free(fg);
}

/* ---- RoPE ----------------------------------------------------------------- */
enum { RT = 6, RH = 2, RD = 8 };
typedef struct { double *X, *Y, *cs, *c; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *m = p;
    memcpy(m->Y, m->X, sizeof(double) * 2 * RT * RH * RD);
    tr_rope_f64(m->Y, 2 * RT, RH, RD, RT, m->cs, 0);
    return dotc(m->c, m->Y, 2 * RT * RH * RD);
}
static void test_rope(void **state) {
    (void)state;
    const size_t n = 2 * RT * RH * RD;
    rope_ctx m = {rnd(n, 1), calloc(n, 8), calloc(RT * RD, 8), rnd(n, 1)};
    tr_rope_table_f64(m.cs, RT, RD, 10000.0);
    double *dX = malloc(n * 8), *nX = calloc(n, 8);
    memcpy(dX, m.c, n * 8);
    tr_rope_f64(dX, 2 * RT, RH, RD, RT, m.cs, 1);
    numgrad(rope_loss, &m, m.X, n, nX);
    CHECK("rope dX", dX, nX, n, 1e-8);
    /* the table: t * base^(-2i/hd) */
    for (int t = 0; t < RT; t++)
        for (int i = 0; i < RD / 2; i++)
            assert_true(fabs(m.cs[(t * RD / 2 + i) * 2] - cos(t * pow(10000.0, -2.0 * i / RD))) < 1e-15);
    free(m.X), free(m.Y), free(m.cs), free(m.c), free(dX), free(nX);
}

/* ---- attention ------------------------------------------------------------ */
enum { AB = 2, AT = 5, AH = 4, AK = 2, AD = 4 };
typedef struct { double *Q, *K, *V, *O, *P, *c, *S; int s1; } att_ctx;
static double att_loss(void *p) {
    att_ctx *m = p;
    tr_attention_f64(NULL, NULL, m->O, m->P, m->Q, m->K, m->V, AB, AT, AH, AK, AD, m->s1, m->S);
    return dotc(m->c, m->O, AB * AT * AH * AD);
}
/* s1: 0 vanilla, 1 the zero sink, 2 sink logits (one per head, in [-1.5, 1.5]) */
static void att_case(int s1) {
    const size_t nq = AB * AT * AH * AD, nk = AB * AT * AK * AD, np = AB * AH * AT * AT;
    att_ctx m = {rnd(nq, 1.5), rnd(nk, 1.5), rnd(nk, 1), calloc(nq, 8), calloc(np, 8), rnd(nq, 1),
                 s1 == 2 ? rnd(AH, 1.5) : NULL, s1 == 1};
    double *dQ = calloc(nq, 8), *dK = calloc(nk, 8), *dV = calloc(nk, 8), *nQ = calloc(nq, 8),
           *nK = calloc(nk, 8), *nV = calloc(nk, 8), *scr = calloc(AT + AB * AH, 8),
           *dS = calloc(AH, 8), *nS = calloc(AH, 8);
    const char *nm = s1 == 2 ? "attention+sink" : s1 ? "attention+1" : "attention";
    char name[64];
#define NM(what) (snprintf(name, sizeof name, "%s %s", nm, what), name)
    att_loss(&m);
    /* each row of P sums to 1 (or less with the zero sink) */
    for (int r = 0; r < AB * AH * AT; r++) {
        double s = 0;
        for (int j = 0; j < AT; j++) s += m.P[r * AT + j];
        if (s1 == 1) assert_true(s < 1 && s > 0.1);
        else if (s1 == 2) assert_true(s < 1 && s > 0);
        else assert_true(fabs(s - 1) < 1e-12);
    }
    tr_attention_bwd_f64(NULL, NULL, dQ, dK, dV, m.S ? dS : NULL, m.c, m.P, m.Q, m.K, m.V, AB, AT, AH, AK, AD,
                         scr);
    numgrad(att_loss, &m, m.Q, nq, nQ);
    numgrad(att_loss, &m, m.K, nk, nK);
    numgrad(att_loss, &m, m.V, nk, nV);
    CHECK(NM("dQ"), dQ, nQ, nq, 1e-7);
    CHECK(NM("dK"), dK, nK, nk, 1e-7);
    CHECK(NM("dV"), dV, nV, nk, 1e-7);
    if (m.S) {
        numgrad(att_loss, &m, m.S, AH, nS);
        CHECK(NM("dsinks"), dS, nS, AH, 1e-7);
    }
    sk_pool *pool;
    tr_ws ws;
    assert_int_equal(sk_pool_new(2, &pool, NULL), SK_OK);
    assert_int_equal(tr_ws_init(&ws, 2, AT, 0, NULL), SK_OK);
    float *Q = tof(m.Q, nq), *K = tof(m.K, nk), *V = tof(m.V, nk), *c = tof(m.c, nq),
          *O = calloc(nq, 4), *P = calloc(np, 4), *fQ = calloc(nq, 4), *fK = calloc(nk, 4),
          *fV = calloc(nk, 4), *fs = calloc(2 * AT + AB * AH, 4), *S = m.S ? tof(m.S, AH) : NULL,
          *fS = calloc(AH, 4);
    att_loss(&m);
    tr_attention_f32(pool, &ws, O, P, Q, K, V, AB, AT, AH, AK, AD, s1 == 1, S);
    CHECK32(NM("O"), O, m.O, nq, 1e-5);
    tr_attention_bwd_f32(pool, &ws, fQ, fK, fV, S ? fS : NULL, c, P, Q, K, V, AB, AT, AH, AK, AD, fs);
    CHECK32(NM("dQ"), fQ, dQ, nq, 1e-5);
    CHECK32(NM("dK"), fK, dK, nk, 1e-5);
    CHECK32(NM("dV"), fV, dV, nk, 1e-5);
    if (S) CHECK32(NM("dsinks"), fS, dS, AH, 1e-5);
#undef NM
    free(m.S), free(dS), free(nS), free(S), free(fS);
    sk_pool_free(pool);
    tr_ws_free(&ws);
    free(m.Q), free(m.K), free(m.V), free(m.O), free(m.P), free(m.c);
    free(dQ), free(dK), free(dV), free(nQ), free(nK), free(nV), free(scr);
    free(Q), free(K), free(V), free(c), free(O), free(P), free(fQ), free(fK), free(fV), free(fs);
}
static void test_attention(void **state) {
    (void)state;
    att_case(0);
    att_case(1);
    att_case(2);
}

/* ---- SwiGLU --------------------------------------------------------------- */
enum { GN = 40 };
typedef struct { double *A, *U, *S, *c; } glu_ctx;
static double glu_loss(void *p) {
    glu_ctx *m = p;
    tr_swiglu_f64(NULL, m->S, m->A, m->U, GN);
    return dotc(m->c, m->S, GN);
}
static void test_swiglu(void **state) {
    (void)state;
    glu_ctx m = {rnd(GN, 4), rnd(GN, 2), calloc(GN, 8), rnd(GN, 1)};
    double *dA = calloc(GN, 8), *dU = calloc(GN, 8), *nA = calloc(GN, 8), *nU = calloc(GN, 8);
    tr_swiglu_bwd_f64(NULL, dA, dU, m.c, m.A, m.U, GN);
    numgrad(glu_loss, &m, m.A, GN, nA);
    numgrad(glu_loss, &m, m.U, GN, nU);
    CHECK("swiglu dA", dA, nA, GN, 1e-8);
    CHECK("swiglu dU", dU, nU, GN, 1e-8);
    float *A = tof(m.A, GN), *U = tof(m.U, GN), *c = tof(m.c, GN), *S = calloc(GN, 4),
          *fA = calloc(GN, 4), *fU = calloc(GN, 4);
    glu_loss(&m);
    tr_swiglu_f32(NULL, S, A, U, GN);
    CHECK32("swiglu S", S, m.S, GN, 1e-6);
    tr_swiglu_bwd_f32(NULL, fA, fU, c, A, U, GN);
    CHECK32("swiglu dA", fA, dA, GN, 1e-6);
    CHECK32("swiglu dU", fU, dU, GN, 1e-6);
    free(m.A), free(m.U), free(m.S), free(m.c), free(dA), free(dU), free(nA), free(nU);
    free(A), free(U), free(c), free(S), free(fA), free(fU);
}

/* ---- cross-entropy -------------------------------------------------------- */
enum { XN = 3, XV = 11 };
typedef struct { double *Z, *W, *loss; int32_t tgt[XN]; } xent_ctx;
static double xent_loss(void *p) {
    xent_ctx *m = p;
    memcpy(m->W, m->Z, sizeof(double) * XN * XV);
    tr_xent_f64(NULL, m->W, m->loss, m->tgt, XN, XV, 0);
    double s = 0;
    for (int i = 0; i < XN; i++) s += m->loss[i];
    return s / XN;
}
static void test_xent(void **state) {
    (void)state;
    xent_ctx m = {rnd(XN * XV, 3), calloc(XN * XV, 8), calloc(XN, 8), {3, 0, 10}};
    double *dZ = malloc(XN * XV * 8), *nZ = calloc(XN * XV, 8);
    memcpy(dZ, m.Z, XN * XV * 8);
    tr_xent_f64(NULL, dZ, m.loss, m.tgt, XN, XV, 1.0 / XN);
    /* the loss itself: logsumexp - z[target] */
    double lse = 0;
    for (int j = 0; j < XV; j++) lse += exp(m.Z[j]);
    assert_true(fabs(m.loss[0] - (log(lse) - m.Z[3])) < 1e-12);
    numgrad(xent_loss, &m, m.Z, XN * XV, nZ);
    CHECK("cross-entropy dZ", dZ, nZ, XN * XV, 1e-8);
    float *Z = tof(m.Z, XN * XV), *l = calloc(XN, 4);
    tr_xent_f32(NULL, Z, l, m.tgt, XN, XV, 1.0f / XN);
    CHECK32("cross-entropy dZ", Z, dZ, XN * XV, 1e-6);
    free(m.Z), free(m.W), free(m.loss), free(dZ), free(nZ), free(Z), free(l);
}

/* ---- the whole network ---------------------------------------------------- */
typedef struct { tr_net_f64 *n; int32_t *tok; int nb, nt; } net_ctx;
static double net_loss(void *p) {
    net_ctx *m = p;
    return tr_net_loss_f64(m->n, m->tok, m->nt + 1, m->nb, m->nt, 0);
}
/* softmax1: 1 the zero sink, 2 sink logits */
static void net_case(int tied, int softmax1) {
    tr_dims dm = {.n_layer = 2, .d = 8, .nh = 2, .nkv = 1, .hd = 4, .ff = 12, .V = 11, .T = 5,
                  .B = 2, .tied = tied, .softmax1 = softmax1 == 1, .sink_logit = softmax1 == 2,
                  .eps = 1e-5, .rope_base = 10000.0};
    tr_layout lay;
    tr_layout_init(&dm, &lay);
    size_t np = lay.n_params;
    double *w = rnd(np, 0.5);
    for (size_t i = 0; i < np; i++)
        if (tr_layout_is_norm(&dm, &lay, i)) w[i] = 1 + 0.3 * w[i];
    int32_t tok[2 * 6];
    for (int i = 0; i < 12; i++) tok[i] = (int32_t)((urand() + 1) * 5.5) % 11;
    tr_net_f64 *n;
    assert_int_equal(tr_net_new_f64(&dm, w, NULL, &n, NULL), SK_OK);
    /* a shorter batch than allocated (nb 2 of 2, nt 5 of 5; then 1 x 4) */
    for (int shape = 0; shape < 2; shape++) {
        net_ctx m = {n, tok, shape ? 1 : 2, shape ? 4 : 5};
        double *num = calloc(np, 8), *an = malloc(np * 8);
        tr_net_loss_f64(n, tok, m.nt + 1, m.nb, m.nt, 1);
        memcpy(an, tr_net_grad_f64(n), np * 8);
        numgrad(net_loss, &m, w, np, num);
        char name[64];
        snprintf(name, sizeof name, "net %s%s %dx%d (%zu params)", tied ? "tied" : "untied",
                 softmax1 == 2 ? " +sink" : softmax1 ? " +1" : "", m.nb, m.nt, np);
        CHECK(name, an, num, np, 1e-6);
        /* the f32 network on 2 threads against the f64 gradient */
        if (shape == 0) {
            float *wf = tof(w, np);
            sk_pool *pool;
            assert_int_equal(sk_pool_new(2, &pool, NULL), SK_OK);
            tr_net_f32 *nf;
            assert_int_equal(tr_net_new_f32(&dm, wf, pool, &nf, NULL), SK_OK);
            double lf = tr_net_loss_f32(nf, tok, m.nt + 1, m.nb, m.nt, 1);
            double ld = tr_net_loss_f64(n, tok, m.nt + 1, m.nb, m.nt, 0);
            assert_true(fabs(lf - ld) < 1e-5 * fabs(ld));
            CHECK32(name, tr_net_grad_f32(nf), an, np, 1e-4);
            tr_net_free_f32(nf);
            /* BF16 products: within BF16's rounding (8 bits) of the f64 gradient */
            tr_dims db = dm;
            db.bf16 = 1;
            assert_int_equal(tr_net_new_f32(&db, wf, pool, &nf, NULL), SK_OK);
            lf = tr_net_loss_f32(nf, tok, m.nt + 1, m.nb, m.nt, 1);
            assert_true(fabs(lf - ld) < 1e-2 * fabs(ld));
            char nb[80];
            snprintf(nb, sizeof nb, "%s bf16", name);
            CHECK32(nb, tr_net_grad_f32(nf), an, np, 3e-2);
            tr_net_free_f32(nf);
            sk_pool_free(pool);
            free(wf);
        }
        free(num), free(an);
    }
    tr_net_free_f64(n);
    free(w);
}
static void test_net(void **state) {
    (void)state;
    net_case(1, 0);
    net_case(0, 0);
    net_case(1, 1);
    net_case(1, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul), cmocka_unit_test(test_gemm_kernels), cmocka_unit_test(test_gemm_bf16),
        cmocka_unit_test(test_row_kernels), cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention), cmocka_unit_test(test_swiglu), cmocka_unit_test(test_xent),
        cmocka_unit_test(test_net),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
