/* train-gemm.c - GFLOPS of the trainer's matrix products (src/train/tgemm.h)
 * at the shapes of a training step, on 1 and 2 threads: Y = X W^T, dX += dY
 * W and dW += dY^T X for each (rows, in, out), best of 5. Not part of make
 * test. Build:
 *   cc -O3 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude bench/train-gemm.c build/libsinkllm.a -lm -pthread
 * Usage: train-gemm [threads]   (default: 1, then 2)
 * Each shape in F32 and with BF16 operands (train --bf16: the AVX512-BF16
 * kernels where the CPU has them). SINKLLM_ISA=scalar measures the scalar
 * twins. On a machine shared with
 * other work, the figure per thread-second of CPU time (cpu) is steadier
 * than the wall-clock one: it leaves out the time the threads were not
 * running. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/tgemm.h"
#include "train/tops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* the FMA peak of one core: 12 independent chains of 8-float FMAs (two
 * pipes x 4 cycles of latency need at least 8), GFLOPS per CPU-second */
__attribute__((target("avx2,fma"))) static double fma_peak(void) {
    volatile float z = 0.5f;
    __m256 a0 = _mm256_set1_ps(z), a1 = _mm256_set1_ps(z + 1), a2 = _mm256_set1_ps(z + 2),
           a3 = _mm256_set1_ps(z + 3), a4 = _mm256_set1_ps(z + 4), a5 = _mm256_set1_ps(z + 5),
           a6 = _mm256_set1_ps(z + 6), a7 = _mm256_set1_ps(z + 7), a8 = _mm256_set1_ps(z + 8),
           a9 = _mm256_set1_ps(z + 9), a10 = _mm256_set1_ps(z + 10), a11 = _mm256_set1_ps(z + 11);
    const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-6f);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        const long n = 20000000;
        double t = cpu();
        for (long i = 0; i < n; i++) {
#define F1(x) x = _mm256_fmadd_ps(x, m, c);
            F1(a0) F1(a1) F1(a2) F1(a3) F1(a4) F1(a5) F1(a6) F1(a7) F1(a8) F1(a9) F1(a10) F1(a11)
#undef F1
        }
        t = cpu() - t;
        if (n * 12.0 * 16 / t / 1e9 > best) best = n * 12.0 * 16 / t / 1e9;
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] > 0 ? best : -best; /* keeps the chains alive */
}

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    int t0 = argc > 1 ? atoi(argv[1]) : 1, t1 = argc > 1 ? t0 : 2;
    /* rows x in x out: the experiment's shape (4 x 256, ffn 768, V 4096, batch 8 x 256) */
    const int shapes[][3] = {{2048, 256, 256}, {2048, 256, 768}, {2048, 768, 256}, {2048, 256, 4096}};
    printf("kernels: %s, %s\n", tg_get()->name, tg_get_bf16()->name);
    if (strcmp(tg_get()->name, "avx2") == 0) printf("FMA peak: %.1f GFLOPS per core\n", fma_peak());
    for (int nth = t0; nth <= t1; nth++) {
        sk_pool *pool;
        tr_ws ws;
        if (sk_pool_new(nth, &pool, NULL)) return 1;
        for (int bf16 = 0; bf16 < 2; bf16++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            if (tr_ws_init(&ws, nth, 1, bf16, NULL)) return 1;
            int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *X = rnd((size_t)n * in), *W = rnd((size_t)out * in), *Y = rnd((size_t)n * out),
                  *dX = rnd((size_t)n * in), *dW = rnd((size_t)out * in);
            double fl = 2.0 * n * in * out, b[3] = {1e9, 1e9, 1e9}, c[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r < 7; r++)
                for (int k = 0; k < 3; k++) {
                    double t = now(), u = cpu();
                    if (k == 0) tr_matmul_f32(pool, &ws, Y, X, W, n, in, out);
                    if (k == 1) tr_matmul_bwd_f32(pool, &ws, dX, NULL, Y, X, W, n, in, out);
                    if (k == 2) tr_matmul_bwd_f32(pool, &ws, NULL, dW, Y, X, W, n, in, out);
                    if ((t = now() - t) < b[k]) b[k] = t;
                    if ((u = (cpu() - u) / nth) < c[k]) c[k] = u;
                }
            printf("%s %d thread%s  %4d x %4d x %4d   Y=XW^T %5.1f (cpu %5.1f)   dX+=dY W %5.1f (%5.1f)   "
                   "dW+=dY^T X %5.1f (%5.1f) GFLOPS\n", bf16 ? "bf16" : "f32 ", nth, nth > 1 ? "s" : " ", n, in, out,
                   fl / b[0] / 1e9, fl / c[0] / 1e9, fl / b[1] / 1e9, fl / c[1] / 1e9, fl / b[2] / 1e9,
                   fl / c[2] / 1e9);
            free(X), free(W), free(Y), free(dX), free(dW);
            tr_ws_free(&ws);
        }
        sk_pool_free(pool);
    }
    return 0;
}
