/* cli.c - shared flag parsing and model loading for the subcommands. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL_NAME "SmolLM2-135M-Instruct.Q4_1.gguf"

double sk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *sk_cli_read_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = max_bytes < (1u << 16) ? max_bytes + 1 : 1u << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n > max_bytes) {
            free(buf);
            buf = NULL;
            break;
        }
        if (n == cap) {
            char *nb = cap * 2 <= max_bytes ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

double sk_rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int sk_cli_parse_i64(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "error: %s expects an integer in %lld..%lld, got '%s'\n", flag,
                (long long)lo, (long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
    int64_t v;
    if (sk_cli_parse_i64(flag, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "error: %s expects a number in %g..%g, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

const char *sk_cli_default_model(void) {
    static char buf[4096];
    const char *env = getenv("SINKLLM_MODEL");
    if (env && *env) return env;
    snprintf(buf, sizeof buf, "models/%s", DEFAULT_MODEL_NAME);
    if (access(buf, R_OK) == 0) return buf;
    char exe[3000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0; /* build/ */
            slash = strrchr(exe, '/');
            if (slash) *slash = 0; /* repo root */
            snprintf(buf, sizeof buf, "%s/models/%s", exe, DEFAULT_MODEL_NAME);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    snprintf(buf, sizeof buf, "models/%s", DEFAULT_MODEL_NAME);
    return buf;
}

sk_model *sk_cli_load_model(sk_cli *o, double *load_ms) {
    const char *path = o->model ? o->model : sk_cli_default_model();
    sk_error err = {0};
    sk_model *m = NULL;
    double t0 = sk_now_ms();
    if (sk_model_load(path, &m, &err)) {
        fprintf(stderr, "error: cannot load model: %s\n", err.msg);
        if (!o->model && access(path, F_OK) != 0)
            fprintf(stderr, "hint: run 'make model' to fetch the default model\n");
        return NULL;
    }
    if (load_ms) *load_ms = sk_now_ms() - t0;
    int32_t sink = sk_model_sink_token(m);
    if (sink >= 0 && !o->sinks_set && o->cache.n_sinks != 1 &&
        (o->cache.policy == SK_CACHE_SINK || o->cache.policy == SK_CACHE_SHIFT)) {
        o->cache.n_sinks = 1;
        fprintf(stderr, "note: the model's sink token %d (%s.sink_token_id) starts every sequence and is "
                "its only sink (--sinks N keeps N)\n", (int)sink, sk_model_hparams(m)->arch);
    }
    return m;
}

static int usage_error(const sk_cli *o, const char *fmt, const char *arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nsee 'sinkllm %s --help'\n", o->cmd);
    return 2;
}

int sk_cli_parse(sk_cli *o, const char *cmd, unsigned groups, int argc, char **argv,
                 const char *usage) {
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->groups = groups;
    o->n_threads = 0;
    o->n_batch = 256;
    o->n_predict = -1;
    o->display_prompt = 1;
    sk_sampler_params_default(&o->sp);
    sk_context_params cp;
    sk_context_params_default(&cp);
    o->cache = cp.cache;
    o->pp = 512;
    o->tg = 128;
    o->reps = 3;
    o->score_every = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                    \
    do {                                                                                \
        if (!v) return usage_error(o, "%s needs a value", a);                          \
        i++;                                                                            \
    } while (0)
#define IS(s) (strcmp(a, s) == 0)
#define GROUP(g) (groups & (g))
        if (IS("-h") || IS("--help")) {
            fputs(usage, stdout);
            return 1;
        } else if (GROUP(OPT_MODEL) && (IS("-m") || IS("--model"))) {
            NEED_VALUE();
            o->model = v;
        } else if (GROUP(OPT_THREADS) && (IS("-t") || IS("--threads"))) {
            NEED_VALUE();
            if (parse_int(a, v, 1, SK_MAX_THREADS, &o->n_threads)) return 2;
        } else if (GROUP(OPT_THREADS) && (IS("-b") || IS("--batch-size"))) {
            NEED_VALUE();
            if (parse_int(a, v, 1, SK_MAX_BATCH, &o->n_batch)) return 2;
        } else if (GROUP(OPT_GEN) && (IS("-p") || IS("--prompt"))) {
            NEED_VALUE();
            o->prompt = v;
        } else if (GROUP(OPT_GEN) && (IS("-f") || IS("--file"))) {
            NEED_VALUE();
            o->prompt_file = v;
        } else if (GROUP(OPT_GEN) && (IS("-n") || IS("--n-predict"))) {
            NEED_VALUE();
            if (sk_cli_parse_i64(a, v, -1, INT64_MAX / 2, &o->n_predict)) return 2;
        } else if (GROUP(OPT_GEN) && IS("--special")) {
            o->parse_special = 1;
        } else if (GROUP(OPT_GEN) && IS("--no-display-prompt")) {
            o->display_prompt = 0;
        } else if (GROUP(OPT_GEN) && IS("--grammar-file")) {
            NEED_VALUE();
            o->grammar_file = v;
        } else if (GROUP(OPT_GEN) && IS("--json-schema")) {
            NEED_VALUE();
            o->json_schema_file = v;
        } else if (GROUP(OPT_SAMPLE) && IS("--temp")) {
            NEED_VALUE();
            if (parse_float(a, v, 0, 100, &o->sp.temp)) return 2; /* the server's range */
        } else if (GROUP(OPT_SAMPLE) && IS("--top-k")) {
            NEED_VALUE();
            if (parse_int(a, v, INT_MIN, INT_MAX, &o->sp.top_k)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--top-p")) {
            NEED_VALUE();
            if (parse_float(a, v, 0, 1, &o->sp.top_p)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--min-p")) {
            NEED_VALUE();
            if (parse_float(a, v, 0, 1, &o->sp.min_p)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--repeat-penalty")) {
            NEED_VALUE();
            if (parse_float(a, v, 1e-6, 1e6, &o->sp.repeat_penalty)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--repeat-last-n")) {
            NEED_VALUE();
            if (parse_int(a, v, -1, 1 << 24, &o->sp.repeat_last_n)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--presence-penalty")) {
            NEED_VALUE();
            if (parse_float(a, v, -1e6, 1e6, &o->sp.presence_penalty)) return 2;
        } else if (GROUP(OPT_SAMPLE) && IS("--frequency-penalty")) {
            NEED_VALUE();
            if (parse_float(a, v, -1e6, 1e6, &o->sp.frequency_penalty)) return 2;
        } else if (GROUP(OPT_SAMPLE) && (IS("-s") || IS("--seed"))) {
            NEED_VALUE();
            /* -1, or any 64-bit seed (a drawn seed, which `run` prints, may
             * exceed INT64_MAX) */
            char *end;
            errno = 0;
            unsigned long long u = strtoull(v, &end, 10);
            if (!strcmp(v, "-1")) o->sp.seed = SK_SEED_RANDOM;
            else if (end == v || *end || errno || v[0] == '-' || u == (unsigned long long)SK_SEED_RANDOM)
                return usage_error(o, "--seed expects -1 or an integer in 0..18446744073709551614, got '%s'", v);
            else o->sp.seed = (uint64_t)u;
        } else if (GROUP(OPT_CACHE) && IS("--cache")) {
            NEED_VALUE();
            sk_error err;
            if (sk_cache_policy_parse(v, &o->cache.policy, &err))
                return usage_error(o, "%s", err.msg);
            o->cache_set = 1;
        } else if (GROUP(OPT_CACHE) && (IS("--sinks") || IS("--keep"))) {
            NEED_VALUE();
            if (parse_int(a, v, 0, SK_MAX_SINKS, &o->cache.n_sinks)) return 2;
            o->sinks_set = 1;
        } else if (GROUP(OPT_CACHE) && IS("--window")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, SK_MAX_CACHE_TOKENS, &o->cache.n_window)) return 2;
        } else if (GROUP(OPT_CACHE) && (IS("-c") || IS("--ctx-size"))) {
            NEED_VALUE();
            if (parse_int(a, v, 1, SK_MAX_CACHE_TOKENS, &o->cache.n_ctx)) return 2;
        } else if (GROUP(OPT_CACHE) && (IS("--kv-type") || IS("--cache-type-k"))) {
            NEED_VALUE();
            if (strcmp(v, "f16") == 0) o->cache.kv_type = SK_KV_F16;
            else if (strcmp(v, "f32") == 0) o->cache.kv_type = SK_KV_F32;
            else if (strcmp(v, "q8_0") == 0) o->cache.kv_type = SK_KV_Q8_0;
            else return usage_error(o, "unknown KV type '%s' (f16, f32, q8_0)", v);
        } else if (GROUP(OPT_PPL) && (IS("-f") || IS("--file"))) {
            NEED_VALUE();
            o->ppl_file = v;
        } else if (GROUP(OPT_PPL) && IS("--tokens")) {
            NEED_VALUE();
            if (sk_cli_parse_i64(a, v, 2, INT64_MAX / 4, &o->ppl_tokens)) return 2;
        } else if (GROUP(OPT_PPL) && IS("--csv")) {
            NEED_VALUE();
            o->ppl_csv = v;
        } else if (GROUP(OPT_PPL) && IS("--precise")) {
            o->precise = 1;
        } else if (GROUP(OPT_PPL) && IS("--plot")) {
            NEED_VALUE();
            o->ppl_plot = v;
        } else if (GROUP(OPT_PPL) && IS("--overlay")) {
            NEED_VALUE();
            if (o->n_overlay >= 8) return usage_error(o, "%s", "at most 8 --overlay files");
            o->overlay[o->n_overlay++] = v;
        } else if (GROUP(OPT_PPL) && IS("--score-every")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 1 << 30, &o->score_every)) return 2;
        } else if (GROUP(OPT_PPL) && IS("--sink-token")) {
            NEED_VALUE();
            o->sink_token = v;
        } else if (GROUP(OPT_PPL) && IS("--label")) {
            NEED_VALUE();
            o->label = v;
        } else if (GROUP(OPT_PPL) && (IS("-q") || IS("--quiet"))) {
            o->quiet = 1;
        } else if (GROUP(OPT_BENCH) && (IS("-p") || IS("--n-prompt"))) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 1 << 20, &o->pp)) return 2;
        } else if (GROUP(OPT_BENCH) && (IS("-n") || IS("--n-gen"))) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 1 << 20, &o->tg)) return 2;
        } else if (GROUP(OPT_BENCH) && (IS("-r") || IS("--repetitions"))) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 1000, &o->reps)) return 2;
        } else if (GROUP(OPT_BENCH) && IS("--csv")) {
            o->csv = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(o, "unknown option '%s'", a);
        } else {
            return usage_error(o, "unexpected argument '%s'", a);
        }
#undef NEED_VALUE
#undef IS
#undef GROUP
    }
    if (groups & OPT_SAMPLE) {
        sk_error err;
        if (sk_sampler_params_validate(&o->sp, &err)) return usage_error(o, "%s", err.msg);
    }
    return 0;
}
