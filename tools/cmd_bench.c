/* cmd_bench.c - `sinkllm bench`: pre-fill (ppN) and decode (tgN) speed, in
 * the spirit of llama-bench: each test runs on a fresh cache, repeated, and
 * reports mean +- standard deviation of tokens/s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "quant.h"
#include "threadpool.h"

static const char *BENCH_USAGE =
    "usage: sinkllm bench [options]\n"
    "\n"
    "Measure pre-fill and decode throughput on a fresh cache.\n"
    "\n"
    "  -m, --model PATH       GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -p, --n-prompt N       prompt tokens for the ppN test (512; 0 = skip)\n"
    "  -n, --n-gen N          generated tokens for the tgN test (128; 0 = skip)\n"
    "  -r, --repetitions N    repetitions (3)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  -b, --batch-size N     pre-fill chunk (default 256)\n"
    "      --cache POLICY ... as for 'sinkllm run' (default: dense, ctx = p + n)\n"
    "      --csv              print CSV rows: engine,threads,test,tokens_per_s\n"
    "      --stream           latency and memory vs cache size and tokens (--stream --help)\n";

static void stats(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 0; i < argc; i++) /* the streaming benchmark has its own flags */
        if (!strcmp(argv[i], "--stream")) return cmd_bench_stream(argc, argv);
    sk_cli o;
    int rc = sk_cli_parse(&o, "bench", OPT_MODEL | OPT_THREADS | OPT_CACHE | OPT_BENCH, argc,
                          argv, BENCH_USAGE);
    if (rc) return rc == 1 ? 0 : rc;
    sk_model *m = sk_cli_load_model(&o, NULL);
    if (!m) return 1;
    const sk_hparams *hp = sk_model_hparams(m);
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o.n_threads;
    cp.n_batch = o.n_batch;
    cp.cache = o.cache;
    if (!o.cache_set) {
        cp.cache.policy = SK_CACHE_DENSE;
        cp.cache.n_ctx = o.pp + o.tg + 1;
    }
    sk_error err = {0};
    sk_context *ctx = NULL;
    if (sk_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        sk_model_free(m);
        return 1;
    }
    int nth = o.n_threads > 0 ? o.n_threads : 0;
    if (!nth) {
        nth = sk_cpu_count();
    }
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(o.pp > 0 ? o.pp : 1));
    double *tps = malloc(sizeof(double) * (size_t)o.reps);
    if (!toks || !tps) return 1;
    unsigned seed = 12345;
    for (int i = 0; i < o.pp; i++) {
        seed = seed * 1103515245u + 12345u;
        toks[i] = (int32_t)((seed >> 8) % (unsigned)hp->n_vocab);
    }
    if (!o.csv) {
        printf("| model | size | params | isa | threads | test | t/s |\n");
        printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    }
    struct { const char *kind; int n; } tests[2] = {{"pp", o.pp}, {"tg", o.tg}};
    for (int ti = 0; ti < 2 && !rc; ti++) {
        if (tests[ti].n <= 0) continue;
        for (int r = -1; r < o.reps && !rc; r++) { /* r = -1: warm-up */
            sk_context_reset(ctx);
            double t0 = sk_now_ms();
            if (ti == 0) {
                rc = sk_decode(ctx, toks, o.pp, &err) != SK_OK;
            } else {
                int32_t t = 1;
                for (int i = 0; i < tests[ti].n && !rc; i++) {
                    rc = sk_decode(ctx, &t, 1, &err) != SK_OK;
                    const float *lg = sk_logits(ctx);
                    int best = 0;
                    for (int64_t v = 1; v < hp->n_vocab; v++) best = lg[v] > lg[best] ? (int)v : best;
                    t = best;
                }
            }
            double dt = sk_now_ms() - t0;
            if (r >= 0) tps[r] = tests[ti].n / (dt / 1e3);
        }
        if (rc) break;
        double mean, sd;
        stats(tps, o.reps, &mean, &sd);
        if (o.csv)
            printf("sinkllm,%d,%s%d,%.2f\n", nth, tests[ti].kind, tests[ti].n, mean);
        else
            printf("| %s | %.1f MiB | %.0fM | %s | %d | %s%d | %.2f ± %.2f |\n",
                   sk_model_desc(m), sk_model_size(m) / 1048576.0, sk_model_n_params(m) / 1e6, sk_quant_isa(), nth,
                   tests[ti].kind, tests[ti].n, mean, sd);
        fflush(stdout);
    }
    if (rc) fprintf(stderr, "error: %s\n", err.msg);
    free(toks);
    free(tps);
    sk_context_free(ctx);
    sk_model_free(m);
    return rc;
}
