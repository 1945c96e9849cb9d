/* cmd_stream.c - `sinkllm bench --stream`: the StreamingLLM paper's Fig. 10,
 * decode latency and memory of the sink cache against its two baselines.
 *
 *  1. Latency against cache size C: the sink cache (4 sinks + a C-4 window)
 *     and the sliding window with re-computation (window C, which re-encodes
 *     the whole window for every token), each timed on a full cache.
 *  2. Latency against tokens generated: sink 4+1020 over a long stream and
 *     dense attention, whose per-token cost and memory grow with the history
 *     (so its stream is capped).
 *
 * Tables go to stdout, CSV rows (section,policy,cache,tokens,ms_per_token,
 * rss_mb) to --csv, two charts to PREFIX-cache.png and PREFIX-tokens.png.
 * Each configuration gets its own context, created and freed here; the timed
 * loops call only sk_decode, sk_logits and an argmax (no allocation). RSS is
 * the process's resident set from /proc/self/statm: it includes the model's
 * mapped weights once touched, so compare its changes, not its level. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"

#define MAX_CACHES 32
#define N_SINKS 4          /* the paper's sink count */
#define STREAM_CACHE 1024  /* section 2: sink 4 + 1020 */
#define DENSE_SLACK 16     /* dense n_ctx = dense tokens + this (room for the prompt) */

static const char *STREAM_USAGE =
    "usage: sinkllm bench --stream [options]\n"
    "\n"
    "Decode latency and memory of the sink cache (the StreamingLLM paper's Fig. 10):\n"
    "  1. ms/token against cache size C: sink (4 sinks + C-4 window) vs the sliding\n"
    "     window with re-computation (window C), each on a full cache;\n"
    "  2. ms/token against tokens generated: sink 4+1020 vs dense attention.\n"
    "Greedy decoding; RSS from /proc/self/statm (includes the touched model weights).\n"
    "\n"
    "  -m, --model PATH       GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "      --caches LIST      cache sizes, comma-separated (256,512,1024,2048,4096)\n"
    "      --steps N          decode steps timed per cache size (32; recompute uses\n"
    "                         max(2, N/8): each of its steps re-encodes the window)\n"
    "      --tokens N         tokens generated with the sink cache (100000; 0 = skip)\n"
    "      --dense-tokens N   tokens generated with the dense cache (16384; 0 = skip):\n"
    "                         dense costs O(T) per token, O(T^2) in all, so it is capped\n"
    "      --kv-type T        f16 (default), f32, q8_0\n"
    "      --csv OUT          CSV rows (default bench/out/stream.csv):\n"
    "                         section,policy,cache,tokens,ms_per_token,rss_mb\n"
    "      --png PREFIX       charts PREFIX-cache.png and PREFIX-tokens.png\n"
    "                         (default bench/out/stream)\n";

typedef struct stream_opts {
    const char *model;
    int n_threads;                /* 0: all cores */
    int caches[MAX_CACHES];       /* ascending */
    int n_caches;
    int64_t tokens;               /* sink stream length, 0 = skip */
    int64_t dense_tokens;         /* dense stream length, 0 = skip */
    int steps;
    const char *csv;
    const char *png;
    sk_kv_type kv_type;
} stream_opts;

/* One curve of section 2: mean ms/token and RSS at the end of each block. */
typedef struct curve {
    const char *policy;
    int cache;                    /* capacity in tokens */
    int64_t n_blocks;
    double *end;                  /* (n_blocks) tokens generated at the block end */
    double *ms;                   /* (n_blocks) mean ms/token over the block */
    double *rss;                  /* (n_blocks) RSS MiB at the block end */
} curve;

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nsee 'sinkllm bench --stream --help'\n");
    return 2;
}

static int parse_num(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (sk_cli_parse_i64(flag, s, lo, hi, out) == 0) return 0;
    fprintf(stderr, "see 'sinkllm bench --stream --help'\n");
    return -1;
}

/* "256,512,..." -> o->caches, sorted ascending. Returns 0 or -1 (printed). */
static int parse_caches(const char *s, stream_opts *o) {
    o->n_caches = 0;
    const char *p = s;
    for (;;) {
        char item[32];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item || o->n_caches == MAX_CACHES) {
            fprintf(stderr, "error: --caches expects comma-separated sizes (at most %d), got '%s'\n",
                    MAX_CACHES, s);
            fprintf(stderr, "see 'sinkllm bench --stream --help'\n");
            return -1;
        }
        memcpy(item, p, n);
        item[n] = 0;
        int64_t v;
        if (parse_num("--caches", item, 16, 1 << 20, &v)) return -1;
        int i = o->n_caches++;
        while (i > 0 && o->caches[i - 1] > v) { /* insertion sort */
            o->caches[i] = o->caches[i - 1];
            i--;
        }
        o->caches[i] = (int)v;
        if (!p[n]) break;
        p += n + 1;
    }
    return 0;
}

/* Returns 0 ok, 1 when --help was printed, 2 on a usage error (printed). */
static int parse_opts(stream_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    static const int def_caches[] = {256, 512, 1024, 2048, 4096};
    for (int i = 0; i < 5; i++) o->caches[i] = def_caches[i];
    o->n_caches = 5;
    o->tokens = 100000;
    o->dense_tokens = 16384;
    o->steps = 32;
    o->csv = "bench/out/stream.csv";
    o->png = "bench/out/stream";
    o->kv_type = SK_KV_F16;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
#define IS(s) (strcmp(a, s) == 0)
#define NEED_VALUE()                                                   \
    do {                                                               \
        if (!v) return usage_error("%s needs a value", a);             \
        i++;                                                           \
    } while (0)
        if (IS("--stream")) {
            continue;
        } else if (IS("-h") || IS("--help")) {
            fputs(STREAM_USAGE, stdout);
            return 1;
        } else if (IS("-m") || IS("--model")) {
            NEED_VALUE();
            o->model = v;
        } else if (IS("-t") || IS("--threads")) {
            NEED_VALUE();
            if (parse_num(a, v, 1, 1024, &n)) return 2;
            o->n_threads = (int)n;
        } else if (IS("--caches")) {
            NEED_VALUE();
            if (parse_caches(v, o)) return 2;
        } else if (IS("--tokens")) {
            NEED_VALUE();
            if (parse_num(a, v, 0, 1000000000, &o->tokens)) return 2;
        } else if (IS("--dense-tokens")) {
            NEED_VALUE();
            if (parse_num(a, v, 0, (1 << 24) - DENSE_SLACK, &o->dense_tokens)) return 2;
        } else if (IS("--steps")) {
            NEED_VALUE();
            if (parse_num(a, v, 1, 1000000, &n)) return 2;
            o->steps = (int)n;
        } else if (IS("--csv")) {
            NEED_VALUE();
            o->csv = v;
        } else if (IS("--png")) {
            NEED_VALUE();
            o->png = v;
        } else if (IS("--kv-type")) {
            NEED_VALUE();
            if (!strcmp(v, "f16")) o->kv_type = SK_KV_F16;
            else if (!strcmp(v, "f32")) o->kv_type = SK_KV_F32;
            else if (!strcmp(v, "q8_0")) o->kv_type = SK_KV_Q8_0;
            else return usage_error("unknown KV type '%s' (f16, f32, q8_0)", v);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
#undef IS
#undef NEED_VALUE
    }
    return 0;
}

/* Create the directory holding path (one level) if it is missing; returns 0
 * when it exists and is writable, else -1 with a message printed. */
static int ensure_parent_dir(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0; /* the working directory */
    if (slash == dir) slash[1] = 0;
    else *slash = 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "error: cannot create directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "error: cannot write in %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Status line on stderr, rewritten in place; only when stderr is a TTY. */
static void progress(int tty, const char *fmt, ...) {
    if (!tty) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

static int32_t argmax(const float *lg, int64_t n) {
    int64_t best = 0;
    for (int64_t v = 1; v < n; v++)
        if (lg[v] > lg[best]) best = v;
    return (int32_t)best;
}

/* n greedy steps: feed *tok, then set *tok to the argmax of the logits.
 * Allocates nothing (the timed loop). */
static sk_status greedy(sk_context *c, int32_t *tok, int64_t n, int64_t nv, sk_error *err) {
    for (int64_t i = 0; i < n; i++) {
        sk_status st = sk_decode(c, tok, 1, err);
        if (st) return st;
        *tok = argmax(sk_logits(c), nv);
    }
    return SK_OK;
}

static sk_context *new_context(const sk_model *m, const stream_opts *o, sk_cache_policy pol,
                               int n_sinks, int n_window, int n_ctx) {
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o->n_threads;
    cp.cache.policy = pol;
    cp.cache.n_sinks = n_sinks;
    cp.cache.n_window = n_window;
    cp.cache.n_ctx = n_ctx;
    cp.cache.kv_type = o->kv_type;
    sk_error err = {0};
    sk_context *c = NULL;
    if (sk_context_new(m, &cp, &c, &err)) {
        fprintf(stderr, "error: %s context: %s\n", sk_cache_policy_name(pol), err.msg);
        return NULL;
    }
    return c;
}

/* Section 1, one configuration: fill the cache with fill[0..C), then time
 * n_steps greedy steps. Returns 0 (ms/token and RSS set) or -1 (printed). */
static int time_full_cache(const sk_model *m, const stream_opts *o, sk_cache_policy pol, int C,
                           const int32_t *fill, int n_steps, int tty, double *ms, double *rss) {
    int64_t nv = sk_model_hparams(m)->n_vocab;
    sk_context *c = pol == SK_CACHE_SINK ? new_context(m, o, pol, N_SINKS, C - N_SINKS, 0)
                                         : new_context(m, o, pol, 0, C, 0);
    if (!c) return -1;
    sk_error err = {0};
    const char *name = sk_cache_policy_name(pol);
    progress(tty, "cache %d: %s: filling %d tokens", C, name, C);
    int rc = sk_decode(c, fill, C, &err) ? -1 : 0;
    if (!rc) {
        progress(tty, "cache %d: %s: timing %d steps", C, name, n_steps);
        int32_t tok = argmax(sk_logits(c), nv);
        double t0 = sk_now_ms();
        rc = greedy(c, &tok, n_steps, nv, &err) ? -1 : 0;
        *ms = (sk_now_ms() - t0) / n_steps;
        *rss = sk_rss_mb();
    }
    if (rc) fprintf(stderr, "%serror: %s, cache %d: %s\n", tty ? "\n" : "", name, C, err.msg);
    sk_context_free(c);
    return rc;
}

/* Section 2, one curve: feed the prompt, then generate n tokens greedily in
 * blocks of blk, recording each block's mean ms/token and the RSS at its
 * end. cv's arrays hold ceil(n / blk) entries. Returns 0 or -1 (printed). */
static int run_curve(const sk_model *m, curve *cv, sk_context *c, int64_t n, int64_t blk,
                     const int32_t *prompt, int64_t n_prompt, int tty) {
    int64_t nv = sk_model_hparams(m)->n_vocab;
    sk_error err = {0};
    cv->n_blocks = 0;
    if (sk_decode(c, prompt, n_prompt, &err)) {
        fprintf(stderr, "%serror: %s prompt: %s\n", tty ? "\n" : "", cv->policy, err.msg);
        return -1;
    }
    int32_t tok = argmax(sk_logits(c), nv);
    double t_start = sk_now_ms();
    for (int64_t done = 0; done < n;) {
        int64_t k = n - done < blk ? n - done : blk;
        double t0 = sk_now_ms();
        if (greedy(c, &tok, k, nv, &err)) {
            fprintf(stderr, "%serror: %s at token %lld: %s\n", tty ? "\n" : "", cv->policy,
                    (long long)done, err.msg);
            return -1;
        }
        double ms = (sk_now_ms() - t0) / (double)k;
        done += k;
        int64_t b = cv->n_blocks++;
        cv->end[b] = (double)done;
        cv->ms[b] = ms;
        cv->rss[b] = sk_rss_mb();
        double el = (sk_now_ms() - t_start) / 1e3, eta = el * (double)(n - done) / (double)done;
        progress(tty, "tokens: %s %lld/%lld  %.2f ms/tok  rss %.0f MiB  eta %dm%02ds", cv->policy,
                 (long long)done, (long long)n, ms, cv->rss[b], (int)eta / 60, (int)eta % 60);
    }
    return 0;
}

/* Index of the block holding token number t (1-based count), or -1. */
static int64_t block_of(const curve *cv, int64_t blk, int64_t t) {
    if (cv->n_blocks == 0 || t > (int64_t)cv->end[cv->n_blocks - 1]) return -1;
    int64_t b = (t - 1) / blk;
    return b < cv->n_blocks ? b : cv->n_blocks - 1;
}

static void print_cell(const curve *cv, int64_t b) {
    if (b < 0) printf(" - | - |");
    else printf(" %.2f | %.0f |", cv->ms[b], cv->rss[b]);
}

/* A line chart of ms/token: log x and y (cache sizes double), or linear
 * axes with y from 0 so that a flat curve looks flat. */
static int write_chart(const char *path, const char *title, const char *xlabel, int log_axes,
                       const char *const *labels, const double *const *xs,
                       const double *const *ys, const int64_t *ns, int n_series) {
    sk_plot *p = sk_plot_new(1000, 600, title, xlabel, "ms per token");
    if (!p) {
        fprintf(stderr, "error: cannot create the chart %s\n", path);
        return -1;
    }
    sk_plot_set_logx(p, log_axes);
    sk_plot_set_logy(p, log_axes);
    sk_error err = {0};
    int rc = 0;
    double ymax = 0;
    for (int i = 0; i < n_series; i++)
        for (int64_t j = 0; j < ns[i]; j++) ymax = ys[i][j] > ymax ? ys[i][j] : ymax;
    if (!log_axes && ymax > 0) rc = sk_plot_set_yrange(p, 0, ymax * 1.1, &err) ? -1 : 0;
    for (int i = 0; i < n_series && !rc; i++)
        rc = sk_plot_add_series(p, labels[i], xs[i], ys[i], ns[i], &err) ? -1 : 0;
    if (!rc) rc = sk_plot_write_png(p, path, &err) ? -1 : 0;
    if (rc) fprintf(stderr, "error: %s: %s\n", path, err.msg);
    else printf("wrote %s\n", path);
    sk_plot_free(p);
    return rc;
}

/* `sinkllm bench --stream [options]`: argv may hold "--stream" anywhere
 * (cmd_bench dispatches here on it). Returns the exit status: 0, 1 on a
 * failure (printed), 2 on a usage error. */
int cmd_bench_stream(int argc, char **argv) {
    stream_opts o;
    int rc = parse_opts(&o, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    size_t plen = strlen(o.png) + 16;
    char *png_cache = malloc(plen), *png_tokens = malloc(plen);
    if (!png_cache || !png_tokens) {
        free(png_cache);
        free(png_tokens);
        return 1;
    }
    snprintf(png_cache, plen, "%s-cache.png", o.png);
    snprintf(png_tokens, plen, "%s-tokens.png", o.png);
    /* check the outputs before a long run, not after */
    if (ensure_parent_dir(o.csv) || ensure_parent_dir(png_cache)) {
        free(png_cache);
        free(png_tokens);
        return 1;
    }
    sk_cli lo;
    memset(&lo, 0, sizeof lo);
    lo.model = o.model;
    sk_model *m = sk_cli_load_model(&lo, NULL);
    FILE *csv = m ? fopen(o.csv, "w") : NULL;
    if (!csv) {
        if (m) fprintf(stderr, "error: cannot write %s: %s\n", o.csv, strerror(errno));
        sk_model_free(m);
        free(png_cache);
        free(png_tokens);
        return 1;
    }
    fprintf(csv, "section,policy,cache,tokens,ms_per_token,rss_mb\n");
    const sk_hparams *hp = sk_model_hparams(m);
    int tty = isatty(2);
    sk_system_info si;
    sk_system_info_get(&si);
    int nth = o.n_threads > 0 ? o.n_threads : si.n_cores;
    const char *kvn = o.kv_type == SK_KV_F32 ? "f32" : o.kv_type == SK_KV_Q8_0 ? "q8_0" : "f16";

    /* the prompt of section 2 (at most DENSE_SLACK tokens, so dense fits) */
    static const char *PROMPT = "The three most important ideas in computer science are";
    int32_t prompt[64];
    int64_t n_prompt = 0;
    sk_error err = {0};
    if (sk_tokenize(sk_model_tokenizer(m), PROMPT, strlen(PROMPT), 1, 0, prompt, 64, &n_prompt,
                    &err) ||
        n_prompt < 1) {
        prompt[0] = 0;
        n_prompt = 1;
    }
    if (n_prompt > DENSE_SLACK) n_prompt = DENSE_SLACK;
    /* section 1 fills: the prompt, then pseudo-random ids */
    int max_c = o.caches[o.n_caches - 1];
    int32_t *fill = malloc(sizeof(int32_t) * (size_t)max_c);
    double *s1 = malloc(sizeof(double) * (size_t)o.n_caches * 5); /* x, sink, rec, rss x2 */
    int64_t blk = 1000, nmin = 0;
    if (o.tokens > 0) nmin = o.tokens;
    if (o.dense_tokens > 0 && (nmin == 0 || o.dense_tokens < nmin)) nmin = o.dense_tokens;
    if (nmin < 8000) blk = 256;
    curve cs = {"sink", STREAM_CACHE, 0, NULL, NULL, NULL};
    curve cd = {"dense", (int)o.dense_tokens + DENSE_SLACK, 0, NULL, NULL, NULL};
    int64_t nb_s = (o.tokens + blk - 1) / blk, nb_d = (o.dense_tokens + blk - 1) / blk;
    cs.end = malloc(sizeof(double) * (size_t)(3 * nb_s + 1));
    cd.end = malloc(sizeof(double) * (size_t)(3 * nb_d + 1));
    if (!fill || !s1 || !cs.end || !cd.end) {
        fprintf(stderr, "error: out of memory\n");
        rc = 1;
        goto done;
    }
    cs.ms = cs.end + nb_s;
    cs.rss = cs.ms + nb_s;
    cd.ms = cd.end + nb_d;
    cd.rss = cd.ms + nb_d;
    unsigned seed = 12345;
    for (int i = 0; i < max_c; i++) {
        seed = seed * 1103515245u + 12345u;
        fill[i] = i < n_prompt ? prompt[i] : (int32_t)((seed >> 8) % (unsigned)hp->n_vocab);
    }

    printf("sinkllm bench --stream: %s, %d thread%s, %s, kv %s; RSS after load %.0f MiB, "
           "weights %.1f MiB mapped\n(RSS below is the whole process: it counts the weights "
           "once touched and the KV cache as it fills)\n\n",
           sk_model_desc(m), nth, nth == 1 ? "" : "s", si.isa, kvn, sk_rss_mb(),
           sk_model_size(m) / 1048576.0);

    /* ---- 1. latency vs cache size ------------------------------------- */
    int rsteps = o.steps / 8 > 2 ? o.steps / 8 : 2;
    printf("1. decode latency vs cache size: sink = %d sinks + (C-%d) window, recompute = "
           "window C re-encoded per token;\n   cache filled first, then %d greedy steps timed "
           "(recompute: %d)\n\n",
           N_SINKS, N_SINKS, o.steps, rsteps);
    printf("| cache | sink ms/tok | recompute ms/tok | speedup | sink RSS MB | recompute RSS MB |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    double *sx = s1, *sms = s1 + o.n_caches, *rms = s1 + 2 * o.n_caches;
    double *srss = s1 + 3 * o.n_caches, *rrss = s1 + 4 * o.n_caches;
    for (int i = 0; i < o.n_caches; i++) {
        int C = o.caches[i];
        sx[i] = C;
        if (time_full_cache(m, &o, SK_CACHE_SINK, C, fill, o.steps, tty, &sms[i], &srss[i]) ||
            time_full_cache(m, &o, SK_CACHE_RECOMPUTE, C, fill, rsteps, tty, &rms[i],
                            &rrss[i])) {
            rc = 1;
            goto done;
        }
        progress(tty, "");
        printf("| %d | %.2f | %.2f | %.1fx | %.0f | %.0f |\n", C, sms[i], rms[i],
               rms[i] / sms[i], srss[i], rrss[i]);
        fflush(stdout);
        fprintf(csv, "cache,sink,%d,%d,%.4f,%.1f\n", C, o.steps, sms[i], srss[i]);
        fprintf(csv, "cache,recompute,%d,%d,%.4f,%.1f\n", C, rsteps, rms[i], rrss[i]);
        fflush(csv);
    }
    {
        const char *labels[2] = {"sink (4 + C-4)", "recompute (window C)"};
        const double *xs[2] = {sx, sx}, *ys[2] = {sms, rms};
        int64_t ns[2] = {o.n_caches, o.n_caches};
        printf("\n");
        if (write_chart(png_cache, "decode latency vs cache size (log-log)",
                        "cache size (tokens)", 1, labels, xs, ys, ns, 2))
            rc = 1;
    }

    /* ---- 2. latency vs tokens generated ------------------------------- */
    if (o.tokens == 0 && o.dense_tokens == 0) goto done;
    printf("\n2. decode latency vs tokens generated: greedy from a %lld-token prompt, mean "
           "ms/token per block of %lld tokens\n",
           (long long)n_prompt, (long long)blk);
    if (o.dense_tokens > 0)
        printf("   dense stops at %lld tokens (--dense-tokens): every dense step attends to all "
               "earlier tokens, so a token\n   costs O(T) and the stream O(T^2), and its cache "
               "grows without bound; the sink cache stays at %d\n",
               (long long)o.dense_tokens, STREAM_CACHE);
    printf("\n");
    fflush(stdout);
    curve *curves[2] = {&cs, &cd};
    for (int k = 0; k < 2; k++) {
        curve *cv = curves[k];
        int64_t n = k == 0 ? o.tokens : o.dense_tokens;
        if (n == 0) continue;
        sk_context *c = k == 0 ? new_context(m, &o, SK_CACHE_SINK, N_SINKS,
                                             STREAM_CACHE - N_SINKS, 0)
                               : new_context(m, &o, SK_CACHE_DENSE, 0, 0, cv->cache);
        int crc = c ? run_curve(m, cv, c, n, blk, prompt, n_prompt, tty) : -1;
        sk_context_free(c);
        if (crc) {
            rc = 1;
            goto done;
        }
        for (int64_t b = 0; b < cv->n_blocks; b++)
            fprintf(csv, "tokens,%s,%d,%lld,%.4f,%.1f\n", cv->policy, cv->cache,
                    (long long)cv->end[b], cv->ms[b], cv->rss[b]);
        fflush(csv);
    }
    progress(tty, "");
    printf("| tokens | sink %d+%d ms/tok | sink RSS MB | dense ms/tok | dense RSS MB |\n", N_SINKS,
           STREAM_CACHE - N_SINKS);
    printf("| ---: | ---: | ---: | ---: | ---: |\n");
    static const int64_t checkpoints[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000};
    int n_rows = 0;
    for (size_t i = 0; i <= sizeof checkpoints / sizeof checkpoints[0]; i++) {
        int64_t t;
        if (i < sizeof checkpoints / sizeof checkpoints[0]) {
            t = checkpoints[i];
        } else { /* streams under 1K: one row at the end */
            if (n_rows) break;
            t = (int64_t)(cs.n_blocks ? cs.end[cs.n_blocks - 1] : cd.end[cd.n_blocks - 1]);
        }
        int64_t bs = block_of(&cs, blk, t), bd = block_of(&cd, blk, t);
        if (bs < 0 && bd < 0) continue;
        n_rows++;
        if (t % 1000 == 0) printf("| %lldK |", (long long)(t / 1000));
        else printf("| %lld |", (long long)t);
        print_cell(&cs, bs);
        print_cell(&cd, bd);
        printf("\n");
    }
    printf("(each row: the %lld-token block holding that token)\n\n", (long long)blk);
    for (int k = 0; k < 2; k++) {
        const curve *cv = curves[k];
        if (cv->n_blocks == 0) continue;
        int64_t l = cv->n_blocks - 1;
        printf("%-5s last/first block latency: %.2f / %.2f ms = %.2fx; RSS %.0f -> %.0f MiB "
               "(%lld tokens)\n",
               cv->policy, cv->ms[l], cv->ms[0], cv->ms[l] / cv->ms[0], cv->rss[0], cv->rss[l],
               (long long)cv->end[l]);
    }
    {
        char l0[64], l1[64];
        snprintf(l0, sizeof l0, "sink %d+%d", N_SINKS, STREAM_CACHE - N_SINKS);
        snprintf(l1, sizeof l1, "dense (%lld tokens max)", (long long)o.dense_tokens);
        const char *labels[2] = {l0, l1};
        const double *xs[2] = {cs.end, cd.end}, *ys[2] = {cs.ms, cd.ms};
        int64_t ns[2] = {cs.n_blocks, cd.n_blocks};
        printf("\n");
        if (write_chart(png_tokens, "decode latency vs tokens generated", "tokens generated", 0,
                        labels, xs, ys, ns, 2))
            rc = 1;
    }

done:
    progress(tty, "");
    printf("wrote %s\n", o.csv);
    if (fclose(csv) != 0) {
        fprintf(stderr, "error: cannot write %s\n", o.csv);
        rc = 1;
    }
    free(fill);
    free(s1);
    free(cs.end);
    free(cd.end);
    free(png_cache);
    free(png_tokens);
    sk_model_free(m);
    return rc;
}
