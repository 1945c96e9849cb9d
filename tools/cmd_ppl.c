/* cmd_ppl.c - `sinkllm ppl`: streaming perplexity, the StreamingLLM paper's
 * protocol. One persistent cache; every token is scored given everything the
 * cache policy lets it see. Tokens are fed in chunks with all logits kept:
 * the chunked pre-fill gives each token exactly the cache it would have had
 * when fed alone (tests/test_kvcache.c proves the equivalence), so this is
 * the token-by-token protocol at pre-fill speed. The recompute baseline
 * re-encodes the last W tokens from scratch for each scored token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"

static const char *PPL_USAGE =
    "usage: sinkllm ppl -f FILE [options]\n"
    "\n"
    "Streaming perplexity: feed FILE token by token through one persistent KV cache\n"
    "and score every next-token prediction. The last line is 'PPL = x.xxxx' with\n"
    "the cache configuration and token count.\n"
    "\n"
    "  -f, --file PATH         text to score (looped when --tokens exceeds it)\n"
    "      --tokens N          tokens to stream (default: the whole file once)\n"
    "      --cache POLICY      sink (default), window, dense, recompute, shift\n"
    "      --sinks N           attention sinks (4)         --window N  window (2044)\n"
    "  -c, --ctx-size N        dense capacity (default: the token count)\n"
    "      --kv-type T         f16 (default), f32, q8_0\n"
    "      --precise           reference arithmetic: F32 weights and activations, F32 KV,\n"
    "                          double sums (an oracle; many times slower)\n"
    "      --sink-token TEXT   feed this token (one token) n_sinks times first and use\n"
    "                          them as the sinks (the paper's \"\\n\" sinks variant). A model\n"
    "                          with llama.sink_token_id always gets its token fed first\n"
    "                          (every window with recompute), never scored, and it is the\n"
    "                          only sink (sink, shift) unless --sinks N keeps N\n"
    "      --score-every K     score only positions p with p % K == 0 (same positions for\n"
    "                          every policy; keeps recompute affordable)\n"
    "      --csv OUT           per-token NLL as CSV (pos,token,nll,rss_mb)\n"
    "      --plot OUT.png      log-perplexity against tokens\n"
    "      --overlay CSV       add another run's CSV to the plot (repeatable)\n"
    "      --label TEXT        this run's name in the plot\n"
    "  -m, --model PATH        GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "  -b, --batch-size N      tokens per chunk (default 64)\n"
    "  -q, --quiet             no progress bar\n";

/* -log softmax(logits)[target] */
static double nll_of(const float *lg, int64_t n, int32_t target) {
    float mx = lg[0];
    for (int64_t i = 1; i < n; i++) mx = lg[i] > mx ? lg[i] : mx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp((double)lg[i] - mx);
    return log(s) + mx - lg[target];
}

static void config_label(const sk_cli *o, char *buf, size_t n) {
    const sk_cache_params *c = &o->cache;
    switch (c->policy) {
    case SK_CACHE_SINK: snprintf(buf, n, "sink %d+%d", c->n_sinks, c->n_window); break;
    case SK_CACHE_WINDOW: snprintf(buf, n, "window 0+%d", c->n_window); break;
    case SK_CACHE_DENSE: snprintf(buf, n, "dense"); break;
    case SK_CACHE_RECOMPUTE: snprintf(buf, n, "recompute %d", c->n_window); break;
    case SK_CACHE_SHIFT: snprintf(buf, n, "shift keep %d, %d", c->n_sinks, c->n_window); break;
    }
}

static void progress(int64_t done, int64_t total, double sum, int64_t n_scored, double t0) {
    double el = (sk_now_ms() - t0) / 1e3, eta = done > 0 ? el * (total - done) / done : 0;
    int w = 30, f = (int)(w * done / (total > 0 ? total : 1));
    fprintf(stderr, "\r[%.*s%*s] %3d%% %lld/%lld tok  ppl %.4f  %.0f tok/s  eta %dm%02ds ", f,
            "##############################", w - f, "", (int)(100 * done / (total ? total : 1)),
            (long long)done, (long long)total, n_scored ? exp(sum / n_scored) : 0.0,
            el > 0 ? done / el : 0.0, (int)eta / 60, (int)eta % 60);
}

/* series for the plot: the mean NLL over a trailing span of 1/50 of the
 * stream (in positions, so that runs scored at every token and at every
 * K-th token are smoothed alike), from a CSV or from this run */
static int add_series(sk_plot *p, const char *label, const int64_t *pos, const double *nll,
                      int64_t n) {
    if (n <= 0) return 0;
    int64_t span = pos[n - 1] / 50 > 1 ? pos[n - 1] / 50 : 1;
    double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n);
    if (!x || !y) {
        free(x);
        free(y);
        return -1;
    }
    double acc = 0;
    int64_t m = 0, lo = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += nll[i];
        while (pos[lo] <= pos[i] - span) acc -= nll[lo++];
        if (pos[i] >= span) {
            x[m] = (double)pos[i];
            y[m] = acc / (double)(i - lo + 1);
            m++;
        }
    }
    int rc = sk_plot_add_series(p, label, x, y, m, NULL);
    free(x);
    free(y);
    return rc;
}

static int add_overlay(sk_plot *p, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "error: cannot read %s\n", path);
        return -1;
    }
    char line[512], label[128] = "";
    int64_t cap = 1 << 16, n = 0;
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)cap);
    double *nll = malloc(sizeof(double) * (size_t)cap);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            char *l = strstr(line, "label=");
            if (l) {
                snprintf(label, sizeof label, "%s", l + 6);
                label[strcspn(label, "\n")] = 0;
            }
            continue;
        }
        long long ps, tk;
        double v;
        if (sscanf(line, "%lld,%lld,%lf", &ps, &tk, &v) != 3) continue;
        if (n == cap) {
            cap *= 2;
            pos = realloc(pos, sizeof(int64_t) * (size_t)cap);
            nll = realloc(nll, sizeof(double) * (size_t)cap);
        }
        pos[n] = ps;
        nll[n++] = v;
    }
    fclose(f);
    int rc = add_series(p, label[0] ? label : path, pos, nll, n);
    free(pos);
    free(nll);
    return rc;
}

int cmd_ppl(int argc, char **argv) {
    sk_cli o;
    int rc = sk_cli_parse(&o, "ppl", OPT_MODEL | OPT_THREADS | OPT_CACHE | OPT_PPL, argc, argv,
                          PPL_USAGE);
    if (rc) return rc == 1 ? 0 : rc;
    int batch_set = 0;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-b") || !strcmp(argv[i], "--batch-size")) batch_set = 1;
    if (!batch_set) o.n_batch = 64;
    if (!o.ppl_file) {
        fprintf(stderr, "error: give the text with -f FILE\nsee 'sinkllm ppl --help'\n");
        return 2;
    }
    size_t len = 0;
    char *text = sk_cli_read_file(o.ppl_file, (size_t)1 << 30, &len);
    if (!text) {
        fprintf(stderr, "error: cannot read %s\n", o.ppl_file);
        return 1;
    }
    sk_model *m = sk_cli_load_model(&o, NULL);
    if (!m) {
        free(text);
        return 1;
    }
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    int64_t nv = sk_model_hparams(m)->n_vocab;
    sk_error err = {0};
    int64_t n_text = 0;
    sk_tokenize(tok, text, len, 1, 0, NULL, 0, &n_text, &err);
    int32_t *ttoks = malloc(sizeof(int32_t) * (size_t)(n_text + 1));
    if (!ttoks || sk_tokenize(tok, text, len, 1, 0, ttoks, n_text, &n_text, &err) || n_text < 2) {
        fprintf(stderr, "error: %s\n", err.msg[0] ? err.msg : "text has fewer than 2 tokens");
        return 1;
    }
    free(text);
    if (sk_tokenizer_lead(tok) >= 0) { /* fed once below, not looped with the text */
        if (o.sink_token) {
            fprintf(stderr, "error: --sink-token: the model has its own sink token %d (sink_token_id)\n",
                    sk_tokenizer_lead(tok));
            return 2;
        }
        memmove(ttoks, ttoks + 1, sizeof(int32_t) * (size_t)--n_text);
        if (n_text < 2) {
            fprintf(stderr, "error: text has fewer than 2 tokens\n");
            return 1;
        }
    }
    int64_t N = o.ppl_tokens > 0 ? o.ppl_tokens : n_text;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)N);
    if (!toks) return 1;
    for (int64_t i = 0; i < N; i++) toks[i] = ttoks[i % n_text]; /* loop the text */
    free(ttoks);
    /* optional artificial sinks: n_sinks copies of one token, fed first */
    int n_pre = 0;
    int32_t pre_tok = -1;
    if (o.sink_token) {
        int32_t one[4];
        int64_t k = 0;
        sk_tokenize(tok, o.sink_token, strlen(o.sink_token), 0, 1, one, 4, &k, &err);
        if (k != 1) {
            fprintf(stderr, "error: --sink-token '%s' is %lld tokens, not one\n", o.sink_token,
                    (long long)k);
            return 2;
        }
        pre_tok = one[0];
        if (o.cache.policy != SK_CACHE_SINK && o.cache.policy != SK_CACHE_SHIFT) {
            fprintf(stderr, "error: --sink-token needs a policy with sinks (sink, shift)\n");
            return 2;
        }
        n_pre = o.cache.n_sinks;
    } else if (sk_tokenizer_lead(tok) >= 0) {
        /* a model trained with a sink token (llama.sink_token_id): the
         * tokenizer put it first; it is fed first and never scored, and
         * sk_cli_load_model made it the only sink unless --sinks was given */
        pre_tok = sk_tokenizer_lead(tok);
        n_pre = 1;
    }
    int recompute = o.cache.policy == SK_CACHE_RECOMPUTE;
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o.n_threads;
    cp.n_batch = o.n_batch;
    cp.logits_all = !recompute;
    cp.precise = o.precise;
    cp.cache = o.cache;
    if (recompute) { /* a fresh dense pass over the last W tokens per scored token */
        cp.cache.policy = SK_CACHE_DENSE;
        cp.cache.n_ctx = o.cache.n_window;
        if (cp.n_batch > o.cache.n_window) cp.n_batch = o.cache.n_window;
    }
    if (o.cache.policy == SK_CACHE_DENSE) {
        int ctx_given = 0;
        for (int i = 0; i < argc; i++)
            if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size")) ctx_given = 1;
        if (!ctx_given) cp.cache.n_ctx = (int)(N + n_pre < (1 << 24) ? N + n_pre : (1 << 24));
    }
    sk_context *c = NULL;
    if (sk_context_new(m, &cp, &c, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    char cfg[96];
    config_label(&o, cfg, sizeof cfg);
    const char *kvn = o.cache.kv_type == SK_KV_F32 ? "f32" : o.cache.kv_type == SK_KV_Q8_0 ? "q8_0" : "f16";
    FILE *csv = NULL;
    if (o.ppl_csv) {
        csv = fopen(o.ppl_csv, "w");
        if (!csv) {
            fprintf(stderr, "error: cannot write %s\n", o.ppl_csv);
            return 1;
        }
        fprintf(csv, "# sinkllm ppl file=%s tokens=%lld kv=%s sink_token=%s score_every=%d\n",
                o.ppl_file, (long long)N, kvn, o.sink_token ? "yes" : "no", o.score_every);
        fprintf(csv, "# label=%s\npos,token,nll,rss_mb\n", o.label ? o.label : cfg);
    }
    /* per-token records only when this run draws its own plot: a long run
     * keeps constant memory (the CSV has them too) */
    int64_t cap = o.ppl_plot ? N / o.score_every + 2 : 1, n_scored = 0;
    int64_t *spos = malloc(sizeof(int64_t) * (size_t)cap);
    double *snll = malloc(sizeof(double) * (size_t)cap);
    int tty = isatty(2) && !o.quiet;
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)o.n_batch);
    double *nllv = malloc(sizeof(double) * (size_t)o.n_batch);
    if (!tgt || !nllv || !spos || !snll) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    double sum = 0, t0 = sk_now_ms(), last_prog = 0, rss = sk_rss_mb();
    rc = 0;
    for (int i = 0; i < n_pre && !rc; i++) /* the artificial sinks, one at a time */
        if (sk_decode(c, &pre_tok, 1, &err)) rc = 1;
    /* position p (1 <= p < N) is the prediction of toks[p] */
#define SCORED(p) ((p) % o.score_every == 0)
    if (recompute) {
        /* the model's sink token (n_pre 1; --sink-token needs sink or shift)
         * starts every window */
        int64_t W = o.cache.n_window - n_pre > 1 ? o.cache.n_window - n_pre : 1;
        for (int64_t p = 1; p < N && !rc; p++) {
            if (!SCORED(p)) continue;
            int64_t lo = p - W > 0 ? p - W : 0;
            sk_context_reset(c);
            if ((n_pre && sk_decode(c, &pre_tok, 1, &err)) || sk_decode(c, toks + lo, p - lo, &err)) {
                rc = 1;
                break;
            }
            double v = nll_of(sk_logits(c), nv, toks[p]);
            sum += v;
            if (o.ppl_plot) {
                spos[n_scored] = p;
                snll[n_scored] = v;
            }
            n_scored++;
            if (csv) fprintf(csv, "%lld,%d,%.6f,%.1f\n", (long long)p, toks[p], v, rss);
            if (tty && sk_now_ms() - last_prog > 200) {
                rss = sk_rss_mb();
                progress(p, N, sum, n_scored, t0);
                last_prog = sk_now_ms();
            }
        }
    } else {
        for (int64_t i = 0; i < N - 1 && !rc; i += o.n_batch) {
            int n = (int)(N - 1 - i < o.n_batch ? N - 1 - i : o.n_batch);
            if (sk_decode(c, toks + i, n, &err)) {
                rc = 1;
                break;
            }
            rss = sk_rss_mb();
            for (int j = 0; j < n; j++) tgt[j] = SCORED(i + j + 1) ? toks[i + j + 1] : -1;
            if (sk_context_nll(c, tgt, n, nllv, &err)) {
                rc = 1;
                break;
            }
            for (int j = 0; j < n; j++) {
                int64_t p = i + j + 1;
                if (!SCORED(p)) continue;
                double v = nllv[j];
                sum += v;
                if (o.ppl_plot) {
                    spos[n_scored] = p;
                    snll[n_scored] = v;
                }
                n_scored++;
                if (csv) fprintf(csv, "%lld,%d,%.6f,%.1f\n", (long long)p, toks[p], v, rss);
            }
            if (tty && sk_now_ms() - last_prog > 200) {
                progress(i + n + 1, N, sum, n_scored, t0);
                last_prog = sk_now_ms();
            }
        }
    }
    if (tty && !rc) progress(N, N, sum, n_scored, t0); /* the bar ends at 100% */
    if (tty) fprintf(stderr, "\n");
    if (rc) fprintf(stderr, "error: %s\n", err.msg);
    double secs = (sk_now_ms() - t0) / 1e3;
    if (!rc) {
        printf("PPL = %.4f (%s, kv %s%s, %lld tokens, %lld scored, %.1f s, %.0f tok/s)\n",
               exp(sum / (n_scored ? n_scored : 1)), cfg, kvn,
               o.sink_token ? ", artificial sinks" : "", (long long)N, (long long)n_scored, secs,
               N / secs);
    }
    if (csv) fclose(csv);
    if (!rc && o.ppl_plot) {
        sk_plot *p = sk_plot_new(1000, 600, "streaming perplexity", "tokens", "log perplexity (moving average)");
        add_series(p, o.label ? o.label : cfg, spos, snll, n_scored);
        for (int i = 0; i < o.n_overlay; i++) add_overlay(p, o.overlay[i]);
        sk_error perr = {0};
        if (!p || sk_plot_write_png(p, o.ppl_plot, &perr)) {
            fprintf(stderr, "error: plot: %s\n", p ? perr.msg : "cannot create");
            rc = 1;
        }
        sk_plot_free(p);
    }
    free(spos);
    free(snll);
    free(tgt);
    free(nllv);
    free(toks);
    sk_context_free(c);
    sk_model_free(m);
    return rc;
}

static const char *PLOT_USAGE =
    "usage: sinkllm plot -o OUT.png [--title TEXT] CSV...\n"
    "\n"
    "Overlay the per-token NLL of several 'sinkllm ppl --csv' runs: log perplexity\n"
    "(mean over a trailing 1/50 of each run) against tokens, one line per CSV.\n";

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *title = "streaming perplexity";
    const char *files[32];
    int nf = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(PLOT_USAGE, stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--title")) && i + 1 < argc) {
            if (argv[i][1] == 'o') out = argv[++i];
            else title = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "error: unknown or incomplete option '%s'\nsee 'sinkllm plot --help'\n", argv[i]);
            return 2;
        } else if (nf < 32) {
            files[nf++] = argv[i];
        } else {
            fprintf(stderr, "error: at most 32 CSV files\n");
            return 2;
        }
    }
    if (!out || nf == 0) {
        fprintf(stderr, "error: need -o OUT.png and at least one CSV\nsee 'sinkllm plot --help'\n");
        return 2;
    }
    sk_plot *p = sk_plot_new(1000, 600, title, "tokens", "log perplexity (moving average)");
    if (!p) return 1;
    int rc = 0;
    for (int i = 0; i < nf && !rc; i++) rc = add_overlay(p, files[i]) ? 1 : 0;
    sk_error err = {0};
    if (!rc && sk_plot_write_png(p, out, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
    }
    sk_plot_free(p);
    return rc;
}
