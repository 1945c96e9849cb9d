/* cli.h - flag parsing shared by the sinkllm subcommands.
 *
 * Every subcommand declares which option groups it takes; a flag outside
 * them, a missing value or a malformed number is a usage error (exit 2).
 * Flag names follow llama.cpp's where one exists. */
#ifndef SK_CLI_H
#define SK_CLI_H

#include <stdint.h>

#include "sinkllm.h"

enum {
    OPT_MODEL = 1 << 0,   /* -m */
    OPT_THREADS = 1 << 1, /* -t -b */
    OPT_GEN = 1 << 2,     /* -p -f -n --special --no-display-prompt --grammar-file --json-schema */
    OPT_SAMPLE = 1 << 3,  /* --temp --top-k ... --seed */
    OPT_CACHE = 1 << 4,   /* --cache --sinks --window -c --keep --kv-type */
    OPT_BENCH = 1 << 5,   /* -p -n -r --csv (bench meaning) */
    OPT_PPL = 1 << 6,     /* -f --tokens --csv PATH --plot --overlay --score-every --sink-token */
};

typedef struct sk_cli {
    const char *cmd;
    unsigned groups;
    const char *model;
    int n_threads;
    int n_batch;
    const char *prompt;
    const char *prompt_file;
    int64_t n_predict;
    int parse_special;
    int display_prompt;
    const char *grammar_file;     /* constrain the output: GBNF file, or */
    const char *json_schema_file; /*   a JSON schema file */
    sk_sampler_params sp;
    sk_cache_params cache;
    int cache_set;
    int sinks_set;         /* --sinks/--keep given */
    /* bench */
    int pp, tg, reps;
    int csv;
    const char *bench_csv_path;
    /* ppl */
    const char *ppl_file;
    int64_t ppl_tokens;
    const char *ppl_csv;
    const char *ppl_plot;
    int precise;           /* --precise: reference arithmetic (slow) */
    const char *overlay[8];
    int n_overlay;
    int score_every;
    const char *sink_token;
    const char *label;
    int quiet;
} sk_cli;

/* Parse argv (after the subcommand). Returns 0 ok, 1 when --help was
 * printed (exit 0), 2 on a usage error (already printed). */
int sk_cli_parse(sk_cli *o, const char *cmd, unsigned groups, int argc, char **argv,
                 const char *usage);

/* Path of the default model: $SINKLLM_MODEL, else models/<default> next to
 * the working directory or to the executable's parent directory. */
const char *sk_cli_default_model(void);

/* Load the model named by o->model (or the default) and print a clear error
 * on failure (returns NULL). A model trained with a sink token
 * (sk_model_sink_token) keeps only that token as its sink: o->cache.n_sinks
 * becomes 1 unless --sinks was given (a note says so). The tokenizer puts
 * the token first (sk_tokenizer_lead). */
sk_model *sk_cli_load_model(sk_cli *o, double *load_ms);

double sk_now_ms(void);

/* Parse a decimal integer flag value in [lo, hi]; prints an error naming the
 * flag and returns -1 when it is not one. */
int sk_cli_parse_i64(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Read a whole file (or pipe) into a malloc'ed buffer with a NUL after the
 * last byte; NULL on error or past max_bytes. *len gets the byte count. */
char *sk_cli_read_file(const char *path, size_t max_bytes, size_t *len);

/* Resident set size of this process in MiB (/proc/self/statm). */
double sk_rss_mb(void);

int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_stream(int argc, char **argv); /* bench --stream (cmd_stream.c) */
int cmd_ppl(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* cmd_serve.c: OpenAI-compatible HTTP server */
int cmd_train(int argc, char **argv); /* cmd_train.c: pre-training (sinkllm_train.h) */

#endif
