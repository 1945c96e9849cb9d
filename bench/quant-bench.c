/* quant-bench.c - single-thread throughput of the matrix-vector kernels.
 *
 * For each weight type and each instruction set the CPU has, runs vec_dot
 * over every row of a rows x n matrix against one activation row (decode)
 * and gemm against 64 activation rows (pre-fill), and prints GB/s of weight
 * bytes read (vec_dot) and weight-GB/s x columns (gemm); for the formats
 * pack.h covers, the same for the packed kernels of each tier (16-row
 * groups; Q8P activations). Not part of make test. Build:
 *   cc -O3 -std=c11 -D_GNU_SOURCE -Isrc bench/quant-bench.c build/libsinkllm.a -lm -pthread
 * Usage: quant-bench [rows n]   (default 1536 576: SmolLM2-135M ffn_up)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/quant.h"
#include "kernels/cpu.h"
#include "kernels/quant_impl.h"
#include "kernels/pack_impl.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t g_rng = 1;
static float frand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(g_rng >> 40) * 0x1p-23f - 1.0f;
}

static void bench(const char *isa, const sk_type_traits *tab, int type, int rows, int n) {
    const sk_type_traits *t = &tab[type], *dt = &tab[t->dot_type];
    size_t xrs = sk_row_size(type, n), yrs = sk_row_size(t->dot_type, n);
    enum { NC = 64 };
    float *f = malloc(sizeof(float) * (size_t)n * (rows > NC ? rows : NC));
    char *x = malloc(xrs * rows), *y = malloc(yrs * NC);
    float *out = malloc(sizeof(float) * (size_t)rows * NC);
    for (size_t i = 0; i < (size_t)n * rows; i++)
        f[i] = frand();
    t->from_float(f, x, (int64_t)n * rows);
    dt->from_float(f, y, (int64_t)n * NC);

    double best = 1e9;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now();
        for (int r = 0; r < rows; r++)
            t->vec_dot(n, &out[r], x + (size_t)r * xrs, y);
        double dt_s = now() - t0;
        best = dt_s < best ? dt_s : best;
    }
    double gbs = (double)xrs * rows / best * 1e-9;

    double bestg = 1e9;
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        for (int r = 0; r < rows; r += 32) /* as src/kernels/ops.c calls it: 32 rows per call */
            t->gemm(n, rows - r < 32 ? rows - r : 32, NC, x + (size_t)r * xrs, xrs, y, yrs, out + r, rows);
        double dt_s = now() - t0;
        bestg = dt_s < bestg ? dt_s : bestg;
    }
    double gops = 2.0 * n * rows * NC / bestg * 1e-9;

    double best1 = 1e9; /* gemm with one activation row: the decode path through gemm */
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now();
        t->gemm(n, rows, 1, x, xrs, y, yrs, out, rows);
        double dt_s = now() - t0;
        best1 = dt_s < best1 ? dt_s : best1;
    }
    printf("%-11s %-5s vec_dot %6.2f GB/s (%6.1f us)  gemm x1 %6.2f GB/s  gemm x%d %6.1f GOP/s\n", isa, t->name,
           gbs, best * 1e6, (double)xrs * rows / best1 * 1e-9, NC, gops);
    free(f);
    free(x);
    free(y);
    free(out);
}

/* The packed kernels of tier isa on the same shapes: the whole matrix per
 * call (ops.c splits groups over threads), 1 column (decode) and 64. */
static void bench_packed(const char *isa, int tier, int type, int rows, int n) {
    if (!sk_pack_supported(type, n, rows)) return;
    sk_pack_kernels k;
    sk_pack_fill(&k, tier);
    const sk_type_traits *t = sk_type_get_ref(type);
    size_t xrs = sk_row_size(type, n), gs = sk_pack_group_size(type, n), ys = sizeof(sk_block_q8p) * (size_t)(n / 32);
    enum { NC = 64 };
    const int64_t ng = rows / SK_PACK_ROWS;
    float *f = malloc(sizeof(float) * (size_t)n * (rows > NC ? rows : NC));
    char *x = malloc(xrs * rows), *p = malloc(gs * (size_t)ng), *y = malloc(ys * NC);
    float *out = malloc(sizeof(float) * (size_t)rows * NC);
    for (size_t i = 0; i < (size_t)n * rows; i++) f[i] = frand();
    t->from_float(f, x, (int64_t)n * rows);
    sk_pack_rows(type, n, ng, x, xrs, p);
    for (int c = 0; c < NC; c++) k.quantize(f + (size_t)c * n, (sk_block_q8p *)(y + (size_t)c * ys), n);
    double best1 = 1e9, best = 1e9;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now();
        k.gemm(type, n, ng, 1, p, gs, y, ys, out, rows);
        double dt_s = now() - t0;
        best1 = dt_s < best1 ? dt_s : best1;
    }
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        k.gemm(type, n, ng, NC, p, gs, y, ys, out, rows);
        double dt_s = now() - t0;
        best = dt_s < best ? dt_s : best;
    }
    printf("%-11s %-5s packed  x1 %6.2f GB/s (%6.1f us)                    packed x%d %6.1f GOP/s\n", isa,
           t->name, (double)xrs * rows / best1 * 1e-9, best1 * 1e6, NC, 2.0 * n * rows * NC / best * 1e-9);
    free(f);
    free(x);
    free(p);
    free(y);
    free(out);
}

int main(int argc, char **argv) {
    int rows = argc > 2 ? atoi(argv[1]) : 1536, n = argc > 2 ? atoi(argv[2]) : 576;
    sk_quant_init();
    static sk_type_traits tabs[SK_ISA_COUNT][SK_TYPE_COUNT];
    const char *names[SK_ISA_COUNT];
    int n_isa = 0, tiers[SK_ISA_COUNT];
    for (int tier = 0; tier < SK_ISA_COUNT; tier++) /* every tier the CPU has, as dispatched */
        if (sk_cpu_has_isa((sk_isa)tier)) {
            names[n_isa] = sk_isa_name((sk_isa)tier);
            tiers[n_isa] = tier;
            sk_quant_fill(tabs[n_isa++], tier);
        }
    printf("matrix %d x %d, one thread, dispatch = %s\n", rows, n, sk_cpu_isa());
    static const int types[] = {SK_TYPE_Q4_1, SK_TYPE_Q8_0, SK_TYPE_Q4_0, SK_TYPE_Q5_0, SK_TYPE_Q4_K, SK_TYPE_Q6_K, SK_TYPE_F16};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        if (n % tabs[0][types[k]].blck) { /* K-quants: rows of whole 256-element blocks */
            printf("%-11s %-5s skipped: n = %d is not a multiple of %d\n", "", tabs[0][types[k]].name, n,
                   tabs[0][types[k]].blck);
            continue;
        }
        for (int a = 0; a < n_isa; a++)
            bench(names[a], tabs[a], types[k], rows, n);
        for (int a = 1; a < n_isa; a++) bench_packed(names[a], tiers[a], types[k], rows, n);
    }
    return 0;
}
