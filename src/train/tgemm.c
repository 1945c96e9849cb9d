/* tgemm.c - the blocked, packed matrix product of the trainer (tgemm.h):
 * packing (F32, and BF16 pairs), the loop nest, the split over threads, the
 * scalar twins of the micro-kernels and the choice of kernels. */
#include "tgemm.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/cpu.h"

/* ---- the scalar twin of the micro-kernel --------------------------------- */

/* A multiply then an add per term (ISO C: no contraction), k ascending from
 * 0, then C added. Two rows at a time, so that the 32 sums stay in
 * registers (8 SSE vectors) and the compiler vectorizes over the columns. */
static inline void ukr_ref_2rows(int64_t kc, const float *a0, const float *a1, int64_t as,
                                 const float *b, float *c0, float *c1, int load) {
    float t0[TG_NR] = {0}, t1[TG_NR] = {0};
    for (int64_t k = 0; k < kc; k++, b += TG_NR) {
        float x0 = a0[k * as], x1 = a1[k * as];
        for (int j = 0; j < TG_NR; j++) t0[j] += x0 * b[j];
        for (int j = 0; j < TG_NR; j++) t1[j] += x1 * b[j];
    }
    for (int j = 0; j < TG_NR; j++) c0[j] = load ? c0[j] + t0[j] : t0[j];
    for (int j = 0; j < TG_NR; j++) c1[j] = load ? c1[j] + t1[j] : t1[j];
}

static void ukr_ref(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) {
    for (int i = 0; i < TG_MR; i += 2)
        ukr_ref_2rows(kc, a + i, a + i + 1, TG_MR, b, c + i * ldc, c + (i + 1) * ldc, load);
}

static void ukr_rows_ref(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                         int64_t ldc, int load) {
    for (int i = 0; i < TG_MR; i += 2)
        ukr_ref_2rows(kc, a + i * lda, a + (i + 1) * lda, 1, b, c + i * ldc, c + (i + 1) * ldc, load);
}

static void pack_bt_ref(float *d, const float *w, int64_t ldw, int64_t kc) {
    for (int j = 0; j < TG_NR; j++)
        for (int64_t k = 0; k < kc; k++) d[k * TG_NR + j] = w[j * ldw + k];
}

/* ---- the scalar twin of the BF16 kernels ------------------------------------ */

/* s + x y rounded once (in double: x y is exact, and the sum is exact or so
 * far below s's last bit that one rounding to float is still correct),
 * flushed to a signed zero when tiny as x86 decides it: the sum rounded to
 * 24 bits with an unbounded exponent is below FLT_MIN, i.e. |sum| <
 * FLT_MIN - 2^-151 (from FLT_MIN - 2^-151 up it rounds to FLT_MIN) */
static inline float dp_term(float s, float x, float y) {
    double d = (double)s + (double)x * (double)y;
    return fabs(d) < 0x1p-126 - 0x1p-151 ? copysignf(0.0f, (float)d) : (float)d;
}

static inline void ukr_p_ref_row(int64_t kp, const uint32_t *a, int64_t as, const uint32_t *b,
                                 float *c, int load) {
    float t[TG_NR] = {0};
    for (int64_t p = 0; p < kp; p++, b += TG_NR) {
        uint32_t x = a[p * as];
        float x0 = tg_bf16_f32(x), x1 = tg_bf16_f32(x >> 16);
        for (int j = 0; j < TG_NR; j++) {
            t[j] = dp_term(t[j], x1, tg_bf16_f32(b[j] >> 16));
            t[j] = dp_term(t[j], x0, tg_bf16_f32(b[j]));
        }
    }
    for (int j = 0; j < TG_NR; j++) c[j] = load ? c[j] + t[j] : t[j];
}

static void ukr_p_ref(int64_t kp, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc,
                      int load) {
    for (int i = 0; i < TG_MR; i++) ukr_p_ref_row(kp, a + i, TG_MR, b, c + i * ldc, load);
}

static void ukr_rows_p_ref(int64_t kp, const uint32_t *a, int64_t lda, const uint32_t *b, float *c,
                           int64_t ldc, int load) {
    for (int i = 0; i < TG_MR; i++) ukr_p_ref_row(kp, a + i * lda, 1, b, c + i * ldc, load);
}

static void cvt_pairs_ref(uint32_t *d, const float *x0, const float *x1, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = tg_pair(x0[i], x1 ? x1[i] : 0.0f);
}

static void cvt_row_ref(uint32_t *d, const float *x, int64_t n) {
    for (int64_t p = 0; 2 * p < n; p++) d[p] = tg_pair(x[2 * p], 2 * p + 1 < n ? x[2 * p + 1] : 0.0f);
}

static const tg_kernels g_ref = {.ukr = ukr_ref, .ukr_rows = ukr_rows_ref, .pack_bt = pack_bt_ref,
                                 .name = "scalar"};
static const tg_kernels g_bf16_ref = {.ukr_p = ukr_p_ref, .ukr_rows_p = ukr_rows_p_ref,
                                      .cvt_pairs = cvt_pairs_ref, .cvt_row = cvt_row_ref,
                                      .name = "bf16-scalar"};
static const tg_kernels *g_kr, *g_kr_bf16;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    g_kr = strcmp(sk_cpu_isa(), "scalar") != 0 && sk_cpu_has_avx2() ? tg_avx2_table() : &g_ref;
    g_kr_bf16 = sk_cpu_level() >= SK_ISA_AVX512VNNI && sk_cpu_has_avx512bf16()
                    ? tg_bf16_avx512_table()
                    : &g_bf16_ref;
}

const tg_kernels *tg_get(void) {
    pthread_once(&g_once, choose);
    return g_kr;
}
const tg_kernels *tg_get_ref(void) { return &g_ref; }
const tg_kernels *tg_get_avx2(void) { return sk_cpu_has_avx2() ? tg_avx2_table() : NULL; }
const tg_kernels *tg_get_bf16(void) {
    pthread_once(&g_once, choose);
    return g_kr_bf16;
}
const tg_kernels *tg_get_bf16_ref(void) { return &g_bf16_ref; }
const tg_kernels *tg_get_bf16_avx512(void) {
    return sk_cpu_has_avx512vnni() && sk_cpu_has_avx512bf16() ? tg_bf16_avx512_table() : NULL;
}

/* ---- packing --------------------------------------------------------------- */

/* Rows [i0, i0 + mc), k in [k0, k0 + kc) of A into micro-panels of TG_MR
 * rows: pa[ir * kc + k * TG_MR + i] = A(i0 + ir + i, k0 + k), zero past mc;
 * with tail_only, only a last panel of fewer than TG_MR rows. */
static void pack_a(float *pa, tg_mat A, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                   int tail_only) {
    if (A.rs == 1 && A.cs != 1 && !tail_only && mc % TG_MR == 0) {
        /* columns contiguous (A = dY^T): along each column of A once, all
         * panels at a time (a column of A may be a page away from the next) */
        for (int64_t k = 0; k < kc; k++) {
            const float *col = A.p + i0 + (k0 + k) * A.cs;
            for (int64_t ir = 0; ir < mc; ir += TG_MR)
                memcpy(pa + ir * kc + k * TG_MR, col + ir, sizeof(float) * TG_MR);
        }
        return;
    }
    for (int64_t ir = tail_only ? mc / TG_MR * TG_MR : 0; ir < mc; ir += TG_MR) {
        int mr = mc - ir < TG_MR ? (int)(mc - ir) : TG_MR;
        float *d = pa + ir * kc;
        const float *s = A.p + (i0 + ir) * A.rs + k0 * A.cs;
        if (A.cs == 1) { /* rows contiguous: a transpose, read along the rows */
            for (int i = 0; i < mr; i++) {
                const float *r = s + i * A.rs;
                for (int64_t k = 0; k < kc; k++) d[k * TG_MR + i] = r[k];
            }
            for (int i = mr; i < TG_MR; i++)
                for (int64_t k = 0; k < kc; k++) d[k * TG_MR + i] = 0.0f;
        } else if (A.rs == 1 && mr == TG_MR) { /* columns contiguous: TG_MR floats a step */
            for (int64_t k = 0; k < kc; k++) memcpy(d + k * TG_MR, s + k * A.cs, sizeof(float) * TG_MR);
        } else {
            for (int64_t k = 0; k < kc; k++) {
                const float *col = s + k * A.cs;
                int i = 0;
                for (; i < mr; i++) d[k * TG_MR + i] = col[i * A.rs];
                for (; i < TG_MR; i++) d[k * TG_MR + i] = 0.0f;
            }
        }
    }
}

/* Columns [j0, j0 + nc), k in [k0, k0 + kc) of B into micro-panels of
 * TG_NR columns: pb[jr * kc + k * TG_NR + j] = B(k0 + k, j0 + jr + j), zero
 * past nc. */
static void pack_b(const tg_kernels *kr, float *pb, tg_mat B, int64_t k0, int64_t kc, int64_t j0,
                   int64_t nc) {
    for (int64_t jr = 0; jr < nc; jr += TG_NR) {
        int nr = nc - jr < TG_NR ? (int)(nc - jr) : TG_NR;
        float *d = pb + jr * kc;
        const float *s = B.p + k0 * B.rs + (j0 + jr) * B.cs;
        if (B.cs == 1 && nr == TG_NR) { /* rows of B contiguous: TG_NR floats a step */
            for (int64_t k = 0; k < kc; k++) memcpy(d + k * TG_NR, s + k * B.rs, sizeof(float) * TG_NR);
        } else if (B.cs == 1) {
            for (int64_t k = 0; k < kc; k++) {
                const float *r = s + k * B.rs;
                int j = 0;
                for (; j < nr; j++) d[k * TG_NR + j] = r[j];
                for (; j < TG_NR; j++) d[k * TG_NR + j] = 0.0f;
            }
        } else if (B.rs == 1 && nr == TG_NR) { /* B = W^T: a transpose */
            kr->pack_bt(d, s, B.cs, kc);
        } else {
            for (int j = 0; j < nr; j++) {
                const float *col = s + j * B.cs;
                for (int64_t k = 0; k < kc; k++) d[k * TG_NR + j] = col[k * B.rs];
            }
            for (int j = nr; j < TG_NR; j++)
                for (int64_t k = 0; k < kc; k++) d[k * TG_NR + j] = 0.0f;
        }
    }
}

/* BF16 pairs (kp = (kc + 1) / 2 of them, the last one's odd half 0 when kc
 * is odd), A in one of two layouts:
 *   rows (A's rows contiguous): pa[r * kp + q] = pair q of row i0 + r, for
 *     the rows of whole panels (rows past mc zero), read by ukr_rows_p;
 *   k-major (otherwise): pa[ir * kp + q * TG_MR + i], as pack_a, by ukr_p. */
static void pack_a_pairs(const tg_kernels *kr, uint32_t *pa, tg_mat A, int64_t i0, int64_t mc,
                         int64_t k0, int64_t kc) {
    const int64_t kp = (kc + 1) / 2, rows = (mc + TG_MR - 1) / TG_MR * TG_MR;
    if (A.cs == 1) {
        for (int64_t r = 0; r < mc; r++) kr->cvt_row(pa + r * kp, A.p + (i0 + r) * A.rs + k0, kc);
        memset(pa + mc * kp, 0, sizeof *pa * (size_t)((rows - mc) * kp));
        return;
    }
    uint32_t t[TG_MC + TG_MR] = {0};
    for (int64_t q = 0; q < kp; q++) {
        const float *c0 = A.p + i0 * A.rs + (k0 + 2 * q) * A.cs, *c1 = 2 * q + 1 < kc ? c0 + A.cs : NULL;
        if (A.rs == 1) kr->cvt_pairs(t, c0, c1, mc); /* columns contiguous (A = dY^T) */
        else
            for (int64_t r = 0; r < mc; r++) t[r] = tg_pair(c0[r * A.rs], c1 ? c1[r * A.rs] : 0.0f);
        for (int64_t ir = 0; ir < mc; ir += TG_MR) memcpy(pa + ir * kp + q * TG_MR, t + ir, sizeof *t * TG_MR);
    }
}

/* B's micro-panels in pairs: pb[jr * kp + q * TG_NR + j] = pair q of column
 * j0 + jr + j, zero past nc */
static void pack_b_pairs(const tg_kernels *kr, uint32_t *pb, tg_mat B, int64_t k0, int64_t kc,
                         int64_t j0, int64_t nc) {
    const int64_t kp = (kc + 1) / 2;
    uint32_t t[TG_KC / 2 + 1];
    if (B.cs == 1) { /* rows of B contiguous: two rows make a panel row; along the rows */
        if (nc % TG_NR) memset(pb + nc / TG_NR * TG_NR * kp, 0, sizeof *pb * (size_t)(kp * TG_NR));
        for (int64_t q = 0; q < kp; q++) {
            const float *r0 = B.p + (k0 + 2 * q) * B.rs + j0, *r1 = 2 * q + 1 < kc ? r0 + B.rs : NULL;
            for (int64_t jr = 0; jr < nc; jr += TG_NR)
                kr->cvt_pairs(pb + jr * kp + q * TG_NR, r0 + jr, r1 ? r1 + jr : NULL,
                              nc - jr < TG_NR ? nc - jr : TG_NR);
        }
        return;
    }
    for (int64_t jr = 0; jr < nc; jr += TG_NR) {
        int nr = nc - jr < TG_NR ? (int)(nc - jr) : TG_NR;
        uint32_t *d = pb + jr * kp;
        const float *s = B.p + k0 * B.rs + (j0 + jr) * B.cs;
        if (nr < TG_NR) memset(d, 0, sizeof *d * (size_t)(kp * TG_NR));
        if (B.rs == 1) { /* B = W^T: a column is a row of W */
            for (int j = 0; j < nr; j++) {
                kr->cvt_row(t, s + j * B.cs, kc);
                for (int64_t q = 0; q < kp; q++) d[q * TG_NR + j] = t[q];
            }
        } else {
            for (int j = 0; j < nr; j++)
                for (int64_t q = 0; q < kp; q++) {
                    const float *e = s + j * B.cs + 2 * q * B.rs;
                    d[q * TG_NR + j] = tg_pair(e[0], 2 * q + 1 < kc ? e[B.rs] : 0.0f);
                }
        }
    }
}

/* ---- the loop nest --------------------------------------------------------- */

/* One micro-tile: the F32 kernels on k in [klo, khi) of the block at pc,
 * or the BF16 ones on the pairs that cover it (klo and khi rounded out to
 * the block's pairs: the terms added are exact zeros, by the flags' promise
 * or the packing's pad). t: c, or a tile-sized copy of an edge tile. */
static inline void tile(const tg_kernels *kr, const float *pa, const float *pb, tg_mat A,
                        int64_t m0, int64_t ir, int64_t jr, int64_t pc, int64_t kc, int64_t klo,
                        int64_t khi, int direct, int rows, float *t, int64_t ldt, int load) {
    if (kr->ukr_p) {
        const int64_t kp = (kc + 1) / 2, q0 = (klo - pc) / 2, q1 = (khi - pc + 1) / 2;
        const uint32_t *qa = (const uint32_t *)pa, *b = (const uint32_t *)pb + jr * kp + q0 * TG_NR;
        if (direct) kr->ukr_rows_p(q1 - q0, qa + ir * kp + q0, kp, b, t, ldt, load);
        else kr->ukr_p(q1 - q0, qa + ir * kp + q0 * TG_MR, b, t, ldt, load);
        return;
    }
    const float *b = pb + jr * kc + (klo - pc) * TG_NR;
    if (rows) kr->ukr_rows(khi - klo, A.p + m0 * A.rs + klo, A.rs, b, t, ldt, load);
    else kr->ukr(khi - klo, pa + ir * kc + (klo - pc) * TG_MR, b, t, ldt, load);
}

void tg_gemm_st(const tg_kernels *kr, float *buf, int64_t M, int64_t N, int64_t K, tg_mat A,
                tg_mat B, float *C, int64_t ldc, int acc, int flags) {
    if (!kr) kr = tg_get();
    if (M <= 0 || N <= 0) return;
    float *pa = buf, *pb = buf + (size_t)TG_MC * TG_KC;
    const int bf = kr->ukr_p != NULL;
    const int direct = A.cs == 1; /* F32: A's rows read in place (full panels); BF16: rows packed */
    for (int64_t jc = 0; jc < N; jc += TG_NC) {
        int64_t nc = N - jc < TG_NC ? N - jc : TG_NC;
        /* K = 0 still runs one (empty) block, so that C = 0 without acc */
        for (int64_t pc = 0; pc < K || (pc == 0 && K == 0); pc += TG_KC) {
            int64_t kc = K - pc < TG_KC ? K - pc : TG_KC;
            int load = acc || pc > 0;
            if (bf) pack_b_pairs(kr, (uint32_t *)pb, B, pc, kc, jc, nc);
            else pack_b(kr, pb, B, pc, kc, jc, nc);
            for (int64_t ic = 0; ic < M; ic += TG_MC) {
                int64_t mc = M - ic < TG_MC ? M - ic : TG_MC;
                if (bf) pack_a_pairs(kr, (uint32_t *)pa, A, ic, mc, pc, kc);
                else pack_a(pa, A, ic, mc, pc, kc, direct);
                for (int64_t jr = 0; jr < nc; jr += TG_NR) {
                    int nr = nc - jr < TG_NR ? (int)(nc - jr) : TG_NR;
                    for (int64_t ir = 0; ir < mc; ir += TG_MR) {
                        int mr = mc - ir < TG_MR ? (int)(mc - ir) : TG_MR;
                        int64_t m0 = ic + ir, n0 = jc + jr;
                        if ((flags & TG_C_LOWER) && n0 > m0 + mr - 1) continue;
                        int64_t klo = pc, khi = pc + kc;
                        if ((flags & TG_A_LOWER) && khi > m0 + mr) khi = m0 + mr;
                        if ((flags & TG_A_UPPER) && klo < m0) klo = m0;
                        if (khi <= klo) {
                            if (load) continue; /* nothing to add */
                            klo = khi = pc;     /* C = 0 */
                        }
                        float *c = C + m0 * ldc + n0;
                        int rows = direct && mr == TG_MR;
                        if (mr == TG_MR && nr == TG_NR) {
                            tile(kr, pa, pb, A, m0, ir, jr, pc, kc, klo, khi, direct, rows, c, ldc, load);
                            continue;
                        }
                        float t[TG_MR * TG_NR] = {0};
                        if (load)
                            for (int i = 0; i < mr; i++) memcpy(t + i * TG_NR, c + i * ldc, sizeof(float) * nr);
                        tile(kr, pa, pb, A, m0, ir, jr, pc, kc, klo, khi, direct, rows, t, TG_NR, load);
                        for (int i = 0; i < mr; i++) memcpy(c + i * ldc, t + i * TG_NR, sizeof(float) * nr);
                    }
                }
            }
        }
    }
}

/* ---- over the pool --------------------------------------------------------- */

typedef struct gemm_job {
    const tg_kernels *kr;
    float *bufs;
    int64_t M, N, K, ldc;
    tg_mat A, B;
    float *C;
    int acc;
} gemm_job;

static void gemm_part(void *arg, int ith, int nth) {
    gemm_job *j = arg;
    float *buf = j->bufs + (size_t)ith * TG_BUF_FLOATS;
    long lo, hi;
    if (j->N >= j->M) { /* columns: each thread packs its own part of B, all of A */
        sk_split_range((long)j->N, TG_NR, ith, nth, &lo, &hi);
        if (hi <= lo) return;
        tg_mat B = {j->B.p + lo * j->B.cs, j->B.rs, j->B.cs};
        tg_gemm_st(j->kr, buf, j->M, hi - lo, j->K, j->A, B, j->C + lo, j->ldc, j->acc, TG_FULL);
    } else {
        sk_split_range((long)j->M, TG_MR, ith, nth, &lo, &hi);
        if (hi <= lo) return;
        tg_mat A = {j->A.p + lo * j->A.rs, j->A.rs, j->A.cs};
        tg_gemm_st(j->kr, buf, hi - lo, j->N, j->K, A, j->B, j->C + lo * j->ldc, j->ldc, j->acc,
                   TG_FULL);
    }
}

void tg_gemm(sk_pool *pool, const tg_kernels *kr, float *bufs, int64_t M, int64_t N, int64_t K,
             tg_mat A, tg_mat B, float *C, int64_t ldc, int acc) {
    gemm_job j = {kr ? kr : tg_get(), bufs, M, N, K, ldc, A, B, C, acc};
    /* below ~1 MFLOP a second thread costs more than it saves */
    if (!pool || sk_pool_size(pool) == 1 || (double)M * N * K < 5e5) gemm_part(&j, 0, 1);
    else sk_pool_run(pool, gemm_part, &j);
}
