/* vec-bench.c - single-thread time of the attention kernels (vec.h) per
 * kernel set: the reference, AVX2's (vec_avx2.c) and, where the CPU has
 * AVX-512, the AVX-512 file's (vec_avx512.c), whichever vec.c installs.
 *
 * Shapes of SmolLM2-135M (head 64, 3 queries per KV head) against n keys:
 * decode (3 queries; av over the whole head and over a 32-column half, as
 * two threads split it) and a pre-fill chunk (3 x 64 queries), plus the
 * softmax numerator (exp_sum) over n scores. Prints microseconds per call,
 * the median of the repetitions. Not part of make test. Build:
 *   cc -O3 -std=c11 -D_GNU_SOURCE -Isrc bench/vec-bench.c build/libsinkllm.a -lm -pthread
 * Usage: vec-bench [n]   (default 2048)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu.h"
#include "kernels/half.h"
#include "kernels/vec_impl.h"

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

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { HD = 64, REPS = 31 };

/* median microseconds of one call of what, in reps timed batches */
#define TIME(us, calls, what)                                                                      \
    do {                                                                                           \
        double t_[REPS];                                                                           \
        for (int r_ = 0; r_ < REPS; r_++) {                                                        \
            double t0_ = now();                                                                    \
            for (int c_ = 0; c_ < (calls); c_++) { what; }                                         \
            t_[r_] = (now() - t0_) / (calls) * 1e6;                                                \
        }                                                                                          \
        qsort(t_, REPS, sizeof *t_, cmp_d);                                                        \
        (us) = t_[REPS / 2];                                                                       \
    } while (0)

static void bench(const char *name, const sk_vec_kernels *k, int64_t n, const uint16_t *K, const float *q,
                  float *s, float *o, float *e) {
    const int nd = 3, np = 3 * 64, calls_d = 20, calls_p = 2;
    double kq_d, av_d, av_h, kq_p, av_p, ex;
    TIME(kq_d, calls_d, k->kq_f16(n, HD, K, nd, q, 0.125f, s, (size_t)n));
    TIME(av_d, calls_d, k->av_f16(n, HD, K, HD, nd, s, (size_t)n, o, HD));
    TIME(av_h, calls_d, k->av_f16(n, HD / 2, K, HD, nd, s, (size_t)n, o, HD));
    TIME(kq_p, calls_p, k->kq_f16(n, HD, K, np, q, 0.125f, s, (size_t)n));
    TIME(av_p, calls_p, k->av_f16(n, HD, K, HD, np, s, (size_t)n, o, HD));
    TIME(ex, calls_d, memcpy(e, s, sizeof(float) * (size_t)n); k->exp_sum(e, n, 4.0f));
    printf("| %-9s | %8.1f | %8.1f | %8.1f | %9.1f | %9.1f | %7.1f |\n", name, kq_d, av_d, av_h, kq_p, av_p, ex);
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 2048;
    if (n < 1 || n > (1 << 20)) {
        fprintf(stderr, "usage: vec-bench [n keys, 1..1048576]\n");
        return 1;
    }
    uint16_t *K = malloc(sizeof(uint16_t) * (size_t)n * HD);
    float *q = malloc(sizeof(float) * 3 * 64 * HD), *s = malloc(sizeof(float) * (size_t)n * 3 * 64);
    float *o = calloc(3 * 64 * HD, sizeof(float)), *e = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n * HD; i++) K[i] = sk_f32_to_f16(frand());
    for (int i = 0; i < 3 * 64 * HD; i++) q[i] = frand();
    for (int64_t i = 0; i < n * 3 * 64; i++) s[i] = frand() / (float)n;
    printf("%lld keys, head %d; microseconds per call, one thread, median of %d\n\n", (long long)n, HD, REPS);
    printf("| kernels   | kq 3 q   | av 3 q   | av 3 q/2 | kq 192 q  | av 192 q  | exp_sum |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    sk_vec_kernels t;
    sk_vec_ref_fill(&t);
    bench("reference", &t, n, K, q, s, o, e);
    if (sk_cpu_has_avx2()) {
        sk_vec_fill(&t, SK_ISA_AVX2);
        bench("avx2", &t, n, K, q, s, o, e);
    }
    if (sk_cpu_has_avx512vnni()) {
        sk_vec_fill(&t, SK_ISA_AVX2);
        sk_vec_register_avx512(&t);
        bench("avx512", &t, n, K, q, s, o, e);
    }
    printf("\nvec.c installs: %s\n", sk_cpu_wide512() ? "avx512 (512-bit operations at full width)"
                                                     : sk_cpu_has_avx2() ? "avx2" : "reference");
    free(K), free(q), free(s), free(o), free(e);
    return 0;
}
