/* membw.c - this machine's memory READ bandwidth with 1, 2, ... threads: the
 * ceiling for decode, which reads every weight once per token.
 *
 *   build/membw [--size MiB] [--threads 1,2] [--reps N] [--csv]
 *
 * Each thread sums the 64-bit words of its own slice of one array (1 GiB by
 * default, far beyond the last-level cache), touched first by the thread that
 * reads it. All threads start together (a barrier); a repetition's time runs
 * from the earliest start to the latest end. Bandwidth = array bytes / time,
 * in GB/s (1e9 bytes). Prints the best and the median of --reps repetitions
 * (after one warm-up) per thread count; --csv prints the rows
 * threads,best_gb_s,median_gb_s with a header.
 *
 * No dependencies but pthreads. The read loop is plain C with independent
 * accumulators, which the compiler vectorizes: at one or two cores the
 * limit is the number of cache misses in flight, not the width of a load. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_THREADS 256
#define MAX_REPS 1000

typedef struct worker {
    pthread_t tid;
    int idx;
    int n_threads;
    const uint64_t *base; /* (n_words) the whole array */
    size_t n_words;
    int reps;             /* timed repetitions after one warm-up */
    pthread_barrier_t *start, *end;
    double *t0, *t1;      /* (reps + 1) start and end times of this thread */
    volatile uint64_t sink;
} worker;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sum of n words (n a multiple of 8): eight independent chains so that the
 * loop is bound by the loads, not by one add's latency. */
static uint64_t sum_words(const uint64_t *p, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i < n; i += 8) {
        s0 += p[i + 0];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
        s4 += p[i + 4];
        s5 += p[i + 5];
        s6 += p[i + 6];
        s7 += p[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

/* This thread's slice [lo, hi) of the array, a multiple of 8 words long. */
static void slice(const worker *w, size_t *lo, size_t *hi) {
    size_t per = w->n_words / (size_t)w->n_threads / 8 * 8;
    *lo = per * (size_t)w->idx;
    *hi = *lo + per;
}

static void *run_worker(void *arg) {
    worker *w = arg;
    size_t lo, hi;
    slice(w, &lo, &hi);
    uint64_t *mine = (uint64_t *)w->base + lo;
    for (size_t i = 0; i < hi - lo; i++) mine[i] = i * 0x9E3779B97F4A7C15ull; /* first touch */
    for (int r = 0; r <= w->reps; r++) {
        pthread_barrier_wait(w->start);
        w->t0[r] = now_s();
        w->sink += sum_words(w->base + lo, hi - lo);
        w->t1[r] = now_s();
        pthread_barrier_wait(w->end);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Read bandwidth with n threads over words[0 .. n_words): best and median of
 * reps repetitions, GB/s. Returns 0, or -1 with a message printed. */
static int measure(uint64_t *words, size_t n_words, int n, int reps, double *best, double *median) {
    worker *ws = calloc((size_t)n, sizeof *ws);
    double *times = calloc((size_t)n * 2 * (size_t)(reps + 1), sizeof *times);
    double *gbs = calloc((size_t)reps, sizeof *gbs);
    pthread_barrier_t start, end;
    if (!ws || !times || !gbs) {
        fprintf(stderr, "membw: out of memory\n");
        free(ws);
        free(times);
        free(gbs);
        return -1;
    }
    pthread_barrier_init(&start, NULL, (unsigned)n);
    pthread_barrier_init(&end, NULL, (unsigned)n);
    int started = 0;
    for (int i = 0; i < n; i++) {
        worker *w = &ws[i];
        w->idx = i;
        w->n_threads = n;
        w->base = words;
        w->n_words = n_words;
        w->reps = reps;
        w->start = &start;
        w->end = &end;
        w->t0 = times + (size_t)i * 2 * (size_t)(reps + 1);
        w->t1 = w->t0 + reps + 1;
    }
    /* threads 1..n-1 run on their own; thread 0 is this one */
    for (int i = 1; i < n; i++) {
        int e = pthread_create(&ws[i].tid, NULL, run_worker, &ws[i]);
        if (e) {
            fprintf(stderr, "membw: pthread_create: %s\n", strerror(e));
            exit(1); /* the barrier would wait forever for the missing thread */
        }
        started++;
    }
    run_worker(&ws[0]);
    for (int i = 1; i <= started; i++) pthread_join(ws[i].tid, NULL);
    size_t bytes = n_words / (size_t)n / 8 * 8 * (size_t)n * sizeof(uint64_t);
    for (int r = 1; r <= reps; r++) { /* r = 0: warm-up */
        double lo = ws[0].t0[r], hi = ws[0].t1[r];
        for (int i = 1; i < n; i++) {
            if (ws[i].t0[r] < lo) lo = ws[i].t0[r];
            if (ws[i].t1[r] > hi) hi = ws[i].t1[r];
        }
        gbs[r - 1] = bytes / (hi - lo) / 1e9;
    }
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
    *best = gbs[reps - 1];
    *median = reps % 2 ? gbs[reps / 2] : (gbs[reps / 2 - 1] + gbs[reps / 2]) / 2;
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&end);
    free(ws);
    free(times);
    free(gbs);
    return 0;
}

static const char *USAGE =
    "usage: membw [--size MiB] [--threads 1,2] [--reps N] [--csv]\n"
    "\n"
    "Memory read bandwidth: each thread sums its slice of one array.\n"
    "\n"
    "  --size MiB      array size (1024)\n"
    "  --threads LIST  comma-separated thread counts (1,2)\n"
    "  --reps N        timed repetitions after one warm-up (5); best and median\n"
    "  --csv           print threads,best_gb_s,median_gb_s (with a header)\n";

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "membw: %s expects an integer in %ld..%ld, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    long size_mib = 1024, reps = 5;
    int threads[64] = {1, 2}, n_threads = 2, csv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--csv")) {
            csv = 1;
        } else if (!v && (!strcmp(a, "--size") || !strcmp(a, "--reps") || !strcmp(a, "--threads"))) {
            fprintf(stderr, "membw: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--size")) {
            if (parse_long(a, argv[++i], 1, 1 << 20, &size_mib)) return 2;
        } else if (!strcmp(a, "--reps")) {
            if (parse_long(a, argv[++i], 1, MAX_REPS, &reps)) return 2;
        } else if (!strcmp(a, "--threads")) {
            char *list = argv[++i], *save = NULL;
            n_threads = 0;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long t;
                if (n_threads == 64 || parse_long("--threads", tok, 1, MAX_THREADS, &t)) return 2;
                threads[n_threads++] = (int)t;
            }
            if (!n_threads) {
                fprintf(stderr, "membw: --threads expects a list like 1,2\n");
                return 2;
            }
        } else {
            fprintf(stderr, "membw: unknown argument '%s'\n%s", a, USAGE);
            return 2;
        }
    }
    size_t bytes = (size_t)size_mib << 20;
    void *mem = NULL;
    int e = posix_memalign(&mem, 2u << 20, bytes);
    if (e) {
        fprintf(stderr, "membw: cannot allocate %ld MiB: %s\n", size_mib, strerror(e));
        return 1;
    }
    madvise(mem, bytes, MADV_HUGEPAGE); /* fewer TLB misses; only a hint */
    if (csv) printf("threads,best_gb_s,median_gb_s\n");
    for (int k = 0; k < n_threads; k++) {
        double best, median;
        if (measure(mem, bytes / sizeof(uint64_t), threads[k], (int)reps, &best, &median)) return 1;
        if (csv)
            printf("%d,%.2f,%.2f\n", threads[k], best, median);
        else
            printf("read bandwidth, %d thread%s, %ld MiB: best %.2f GB/s, median %.2f GB/s (%ld reps)\n",
                   threads[k], threads[k] > 1 ? "s" : "", size_mib, best, median, reps);
        fflush(stdout);
    }
    free(mem);
    return 0;
}
