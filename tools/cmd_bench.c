/* cmd_bench.c - `sinkllm bench`: pre-fill (ppN) and decode (tgN) speed, in
 * the spirit of llama-bench: each test runs on a fresh cache, repeated, and
 * reports mean +- standard deviation of tokens/s. With --depth D each
 * repetition first feeds D tokens through the cache (untimed; the evicting
 * policies evict as they go), so the test measures speed at that depth:
 * "tg128 @ d2048", as llama-bench labels it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *BENCH_USAGE =
    "usage: sinkllm bench [options]\n"
    "\n"
    "Measure pre-fill and decode throughput on a fresh cache.\n"
    "\n"
    "  -m, --model PATH       GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -p, --n-prompt N       prompt tokens for the ppN test (512; 0 = skip)\n"
    "  -n, --n-gen N          generated tokens for the tgN test (128; 0 = skip)\n"
    "  -d, --depth N          before each repetition feed N tokens through the cache\n"
    "                         (untimed, in chunks of -b, evicting under sink/window/shift),\n"
    "                         then time the test: 'tg128 @ d2048' (0; no warm-up run when > 0:\n"
    "                         the pre-fill warms up)\n"
    "  -r, --repetitions N    repetitions (3)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  -b, --batch-size N     pre-fill chunk (default 256)\n"
    "      --cache POLICY ... as for 'sinkllm run' (default: dense, ctx = depth + p + n;\n"
    "                         dense without -c sizes its ctx the same way)\n"
    "  -P, --parallel LIST    the tgN test with N streams decoded together, for each N of the\n"
    "                         comma-separated LIST (1..256): one token of each per pass of\n"
    "                         sk_decode_batch, as 'sinkllm serve' batches its slots; prints\n"
    "                         aggregate tokens/s ('tg128 x8'; after -d tokens in each stream)\n"
    "      --csv              print CSV rows: engine,threads,test,tokens_per_s,depth,cache\n"
    "                         (cache: dense, sink4+2044, window2048, shift4+2044,\n"
    "                         recompute2048; ':f32' or ':q8_0' appended for those KV types)\n"
    "      --stream           latency and memory vs cache size and tokens (--stream --help)\n";

/* Largest --depth: far beyond any run's patience, and depth + p + n stays
 * well inside int64. */
#define BENCH_MAX_DEPTH (1LL << 40)
/* Largest dense context that -c accepts (cli.c). */
#define BENCH_MAX_CTX (1LL << 24)

static void stats(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* The cache column of the CSV: policy and sizes, e.g. "sink4+2044". */
static void cache_label(const sk_cache_params *c, char *buf, size_t n) {
    int k;
    switch (c->policy) {
    case SK_CACHE_SINK: k = snprintf(buf, n, "sink%d+%d", c->n_sinks, c->n_window); break;
    case SK_CACHE_SHIFT: k = snprintf(buf, n, "shift%d+%d", c->n_sinks, c->n_window); break;
    case SK_CACHE_WINDOW: k = snprintf(buf, n, "window%d", c->n_window); break;
    case SK_CACHE_RECOMPUTE: k = snprintf(buf, n, "recompute%d", c->n_window); break;
    default: k = snprintf(buf, n, "dense"); break;
    }
    if (k > 0 && (size_t)k < n && c->kv_type != SK_KV_F16)
        snprintf(buf + k, n - (size_t)k, ":%s", c->kv_type == SK_KV_F32 ? "f32" : "q8_0");
}

/* n pseudo-random token ids in [0, n_vocab), continuing the LCG stream in
 * *seed (fixed ids, as llama-bench uses random ones: no text needed). */
static void fill_tokens(int32_t *toks, int64_t n, int64_t n_vocab, unsigned *seed) {
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        toks[i] = (int32_t)((*seed >> 8) % (unsigned)n_vocab);
    }
}

/* Feed `depth` pseudo-random tokens through ctx, in chunks of buf_n (the
 * batch size, so that sk_decode evicts between chunks as a stream would).
 * Returns 0 or -1 with err set. */
static int feed_depth(sk_context *ctx, int64_t depth, int32_t *buf, int64_t buf_n, int64_t n_vocab,
                      sk_error *err) {
    unsigned seed = 777;
    for (int64_t done = 0; done < depth;) {
        int64_t n = depth - done < buf_n ? depth - done : buf_n;
        fill_tokens(buf, n, n_vocab, &seed);
        if (sk_decode(ctx, buf, n, err) != SK_OK) return -1;
        done += n;
    }
    return 0;
}

/* --parallel: a comma-separated list of stream counts into par[BENCH_MAX_PAR]
 * (*n_par of them). Returns 0, or -1 after a usage error (printed). */
#define BENCH_MAX_PAR 16
static int parse_list(const char *flag, const char *s, int *par, int *n_par) {
    char item[32];
    for (const char *p = s;;) {
        size_t len = strcspn(p, ",");
        int64_t v;
        if (len == 0 || len >= sizeof item || *n_par == BENCH_MAX_PAR) {
            fprintf(stderr, "error: %s '%s': give up to %d counts separated by commas\n"
                    "see 'sinkllm bench --help'\n", flag, s, BENCH_MAX_PAR);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (sk_cli_parse_i64(flag, item, 1, SK_MAX_BATCH_SEQS, &v)) {
            fprintf(stderr, "see 'sinkllm bench --help'\n");
            return -1;
        }
        par[(*n_par)++] = (int)v;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

/* Take --depth/-d and --parallel/-P out of argv (the shared parser does not
 * know them) into *depth and par/n_par, and note whether -c/--ctx-size was given. argv_out has room for
 * argc pointers. Returns the new argc, or -1 after a usage error (printed). */
static int take_bench_flags(int argc, char **argv, char **argv_out, int64_t *depth, int *ctx_given,
                            int *par, int *n_par) {
    int n = 0;
    *depth = 0;
    *ctx_given = 0;
    *n_par = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-d") || !strcmp(a, "--depth")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: %s needs a value\nsee 'sinkllm bench --help'\n", a);
                return -1;
            }
            if (sk_cli_parse_i64(a, argv[++i], 0, BENCH_MAX_DEPTH, depth)) {
                fprintf(stderr, "see 'sinkllm bench --help'\n");
                return -1;
            }
            continue;
        }
        if (!strcmp(a, "-P") || !strcmp(a, "--parallel")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: %s needs a value\nsee 'sinkllm bench --help'\n", a);
                return -1;
            }
            if (parse_list(a, argv[++i], par, n_par)) return -1;
            continue;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) *ctx_given = 1;
        argv_out[n++] = argv[i];
    }
    return n;
}

/* The tgN test with n_seq streams decoded together: n_seq contexts on one
 * batch (its threads), each fed `depth` tokens (untimed), then o->tg passes
 * of sk_decode_batch, each one greedy token of every stream. Aggregate
 * tokens/s of each repetition into tps[o->reps]. Returns 0 or -1 with err set. */
static int bench_parallel(const sk_cli *o, const sk_model *m, int64_t depth, int n_seq, double *tps,
                          sk_error *err) {
    const sk_hparams *hp = sk_model_hparams(m);
    int rc = -1;
    sk_batch *b = NULL;
    sk_context **ctx = calloc((size_t)n_seq, sizeof *ctx);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_seq);     /* (n_seq) the token of each stream */
    const int32_t **tp = malloc(sizeof(int32_t *) * (size_t)n_seq); /* (n_seq) &tok[j] */
    int *one = malloc(sizeof(int) * (size_t)n_seq);               /* (n_seq) 1 */
    int32_t *fill = malloc(sizeof(int32_t) * (size_t)o->n_batch); /* (n_batch) depth ids */
    if (!ctx || !tok || !tp || !one || !fill) {
        sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (sk_batch_new(m, o->n_threads, n_seq, n_seq, &b, err)) goto out;
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o->n_threads;
    cp.n_batch = o->n_batch;
    cp.cache = o->cache;
    cp.threads = b;
    for (int j = 0; j < n_seq; j++) {
        if (sk_context_new(m, &cp, &ctx[j], err)) goto out;
        tp[j] = &tok[j];
        one[j] = 1;
    }
    for (int r = depth > 0 ? 0 : -1; r < o->reps; r++) { /* r = -1: warm-up */
        for (int j = 0; j < n_seq; j++) {
            sk_context_reset(ctx[j]);
            if (feed_depth(ctx[j], depth, fill, o->n_batch, hp->n_vocab, err)) goto out;
            tok[j] = 1 + j; /* distinct streams */
        }
        double t0 = sk_now_ms();
        for (int i = 0; i < o->tg; i++) {
            if (sk_decode_batch(b, ctx, tp, one, n_seq, err)) goto out;
            for (int j = 0; j < n_seq; j++) tok[j] = sk_logits_argmax(ctx[j]);
        }
        double dt = sk_now_ms() - t0;
        if (r >= 0) tps[r] = (double)n_seq * o->tg / (dt / 1e3);
    }
    rc = 0;
out:
    for (int j = 0; ctx && j < n_seq; j++) sk_context_free(ctx[j]);
    sk_batch_free(b);
    free(ctx);
    free(tok);
    free(tp);
    free(one);
    free(fill);
    return rc;
}

/* One result: the mean and spread of tps[o->reps] as a CSV row (test) or a
 * table row (label, then " @ dD" from at). */
static void report(const sk_cli *o, const sk_model *m, const char *isa, int nth, const char *test,
                   const char *label, const char *at, int64_t depth, const char *cache, const double *tps) {
    double mean, sd;
    stats(tps, o->reps, &mean, &sd);
    if (o->csv)
        printf("sinkllm,%d,%s,%.2f,%lld,%s\n", nth, test, mean, (long long)depth, cache);
    else
        printf("| %s | %.1f MiB | %.0fM | %s | %d | %s%s | %.2f ± %.2f |\n", sk_model_desc(m),
               sk_model_size(m) / 1048576.0, sk_model_n_params(m) / 1e6, isa, nth, label, at, mean, sd);
    fflush(stdout);
}

int cmd_bench(int argc, char **argv) {
    for (int i = 0; i < argc; i++) /* the streaming benchmark has its own flags */
        if (!strcmp(argv[i], "--stream")) return cmd_bench_stream(argc, argv);
    char **args = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    if (!args) return 1;
    int64_t depth;
    int ctx_given, par[BENCH_MAX_PAR], n_par;
    int n_args = take_bench_flags(argc, argv, args, &depth, &ctx_given, par, &n_par);
    if (n_args < 0) {
        free(args);
        return 2;
    }
    sk_cli o;
    int rc = sk_cli_parse(&o, "bench", OPT_MODEL | OPT_THREADS | OPT_CACHE | OPT_BENCH, n_args,
                          args, BENCH_USAGE);
    free(args);
    if (rc) return rc == 1 ? 0 : rc;
    /* pp and tg each run after `depth` tokens on a fresh cache: a dense cache
     * needs depth + max(p, n) slots. Without -c it gets depth + p + n + 1. */
    if (!o.cache_set) o.cache.policy = SK_CACHE_DENSE;
    int dense = o.cache.policy == SK_CACHE_DENSE;
    int64_t need = depth + (o.pp > o.tg ? o.pp : o.tg);
    if (dense && !ctx_given) {
        if (depth + o.pp + o.tg + 1 > BENCH_MAX_CTX) {
            fprintf(stderr,
                    "error: --depth %lld with a dense cache needs a context of %lld tokens, "
                    "beyond the largest (%lld); use an evicting --cache (sink, window)\n"
                    "see 'sinkllm bench --help'\n",
                    (long long)depth, (long long)(depth + o.pp + o.tg + 1), BENCH_MAX_CTX);
            return 2;
        }
        o.cache.n_ctx = (int)(depth + o.pp + o.tg + 1);
    } else if (dense && need > o.cache.n_ctx) {
        fprintf(stderr,
                "error: the dense cache needs %lld tokens (depth %lld + %d), but -c is %d "
                "(leave -c out to size it automatically)\nsee 'sinkllm bench --help'\n",
                (long long)need, (long long)depth, o.pp > o.tg ? o.pp : o.tg, o.cache.n_ctx);
        return 2;
    }
    double t_load = sk_now_ms();
    sk_model *m = sk_cli_load_model(&o, NULL);
    if (!m) return 1;
    t_load = sk_now_ms() - t_load;
    const sk_hparams *hp = sk_model_hparams(m);
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o.n_threads;
    cp.n_batch = o.n_batch;
    cp.cache = o.cache;
    sk_error err = {0};
    sk_context *ctx = NULL;
    if (sk_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        sk_model_free(m);
        return 1;
    }
    sk_system_info si;
    sk_system_info_get(&si);
    int nth = o.n_threads > 0 ? o.n_threads : si.n_cores;
    char cache[64], at[40] = "";
    cache_label(&o.cache, cache, sizeof cache);
    if (depth > 0) snprintf(at, sizeof at, " @ d%lld", (long long)depth);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(o.pp > 0 ? o.pp : 1)); /* (pp) prompt ids */
    int32_t *fill = malloc(sizeof(int32_t) * (size_t)o.n_batch); /* (n_batch) depth ids */
    double *tps = malloc(sizeof(double) * (size_t)o.reps);
    if (!toks || !fill || !tps) {
        fprintf(stderr, "error: out of memory\n");
        free(toks);
        free(fill);
        free(tps);
        sk_context_free(ctx);
        sk_model_free(m);
        return 1;
    }
    unsigned seed = 12345;
    fill_tokens(toks, o.pp, hp->n_vocab, &seed);
    if (!o.csv) {
        printf("| model | size | params | isa | threads | test | t/s |\n");
        printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    }
    /* with --parallel the tg test runs in its parallel form only (below) */
    struct { const char *kind; int n; } tests[2] = {{"pp", o.pp}, {"tg", n_par ? 0 : o.tg}};
    for (int ti = 0; ti < 2 && !rc; ti++) {
        if (tests[ti].n <= 0) continue;
        /* r = -1: warm-up, unless the depth pre-fill already warms up */
        for (int r = depth > 0 ? 0 : -1; r < o.reps && !rc; r++) {
            sk_context_reset(ctx);
            if (feed_depth(ctx, depth, fill, o.n_batch, hp->n_vocab, &err)) {
                rc = 1;
                break;
            }
            double t0 = sk_now_ms();
            if (ti == 0) {
                rc = sk_decode(ctx, toks, o.pp, &err) != SK_OK;
            } else {
                int32_t t = 1;
                for (int i = 0; i < tests[ti].n && !rc; i++) {
                    rc = sk_decode(ctx, &t, 1, &err) != SK_OK;
                    t = sk_logits_argmax(ctx); /* greedy, vectorized */
                }
            }
            double dt = sk_now_ms() - t0;
            if (r >= 0) tps[r] = tests[ti].n / (dt / 1e3);
        }
        if (rc) break;
        char test[32];
        snprintf(test, sizeof test, "%s%d", tests[ti].kind, tests[ti].n);
        report(&o, m, si.isa, nth, test, test, at, depth, cache, tps);
    }
    for (int pi = 0; pi < n_par && !rc && o.tg > 0; pi++) {
        rc = bench_parallel(&o, m, depth, par[pi], tps, &err) != 0;
        if (rc) break;
        char test[32], label[32];
        snprintf(test, sizeof test, "tg%dx%d", o.tg, par[pi]);
        snprintf(label, sizeof label, "tg%d x%d", o.tg, par[pi]);
        report(&o, m, si.isa, nth, test, label, at, depth, cache, tps);
    }
    if (rc) fprintf(stderr, "error: %s\n", err.msg);
    if (!rc && !o.csv)
        printf("\nkernel tier %s%s%s (best on this CPU: %s), weights %s\n", si.isa, *si.isa_note ? ": " : "",
               si.isa_note, si.isa_best,
               si.nopack || !strcmp(si.isa, "scalar") ? "in the file layout" : "packed");
    if (!rc && !o.csv) {
        /* where the resident memory goes (KV: allocated; the pages a short
         * run never writes are not resident) */
        sk_context_stats st;
        sk_context_get_stats(ctx, &st);
        double rss = sk_rss_mb(), w = sk_model_size(m) / 1048576.0;
        double kv = st.kv_bytes / 1048576.0, sc = st.scratch_bytes / 1048576.0;
        printf("\nmodel load %.1f ms; RSS %.1f MiB = weights %.1f + KV cache %.1f (allocated) + "
               "context scratch %.1f + the rest %.1f (tokenizer, code, libc)\n",
               t_load, rss, w, kv, sc, rss - w - kv - sc);
    }
    free(toks);
    free(fill);
    free(tps);
    sk_context_free(ctx);
    sk_model_free(m);
    return rc;
}
