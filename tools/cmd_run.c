/* cmd_run.c - `sinkllm run`: generate text from a prompt, streaming. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *RUN_USAGE =
    "usage: sinkllm run -p PROMPT [options]\n"
    "\n"
    "Generate text after PROMPT, streaming tokens to stdout as they come.\n"
    "\n"
    "  -m, --model PATH        GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -p, --prompt TEXT       prompt text\n"
    "  -f, --file PATH         read the prompt from a file\n"
    "  -n, --n-predict N       tokens to generate (-1: until end of text; default -1)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "  -b, --batch-size N      pre-fill chunk size (default 256)\n"
    "      --special           parse special-token spellings in the prompt\n"
    "      --no-display-prompt do not echo the prompt\n"
    "      --grammar-file F    constrain the output to the GBNF grammar in F\n"
    "      --json-schema F     constrain the output to the JSON schema in F\n"
    "sampling (llama.cpp's names and defaults):\n"
    "      --temp T            temperature (0.8; 0 = greedy)\n"
    "      --top-k N           (40; 0 = off)      --top-p P   (0.95; 1 = off)\n"
    "      --min-p P           (0.05; 0 = off)    -s, --seed N (-1 = random)\n"
    "      --repeat-penalty X  (1.0 = off)        --repeat-last-n N (64)\n"
    "      --presence-penalty X (0)               --frequency-penalty X (0)\n"
    "KV cache:\n"
    "      --cache POLICY      sink (default), window, dense, recompute, shift\n"
    "      --sinks N           attention sinks (4); with shift: --keep N\n"
    "      --window N          rolling window in tokens (2044)\n"
    "  -c, --ctx-size N        dense capacity (4096)\n"
    "      --kv-type T         f16 (default), f32, q8_0\n";

/* The constraint -grammar-file / --json-schema ask for, compiled; *g NULL
 * when none. Returns 0, or 1 with the error printed. */
static int load_constraint(const sk_cli *o, sk_grammar **g) {
    *g = NULL;
    if (o->grammar_file && o->json_schema_file) {
        fprintf(stderr, "error: give --grammar-file or --json-schema, not both\n");
        return 1;
    }
    const char *path = o->grammar_file ? o->grammar_file : o->json_schema_file;
    if (!path) return 0;
    size_t len = 0;
    char *text = sk_cli_read_file(path, SK_GRAMMAR_MAX_TEXT, &len);
    if (!text) {
        fprintf(stderr, "error: cannot read %s\n", path);
        return 1;
    }
    sk_error err = {0};
    sk_status st = o->grammar_file ? sk_grammar_compile(text, len, g, &err)
                                   : sk_grammar_from_json_schema(text, len, g, &err);
    free(text);
    if (st) fprintf(stderr, "error: %s: %s\n", path, err.msg);
    return st ? 1 : 0;
}

int cmd_run(int argc, char **argv) {
    sk_cli o;
    int rc = sk_cli_parse(&o, "run", OPT_MODEL | OPT_THREADS | OPT_GEN | OPT_SAMPLE | OPT_CACHE,
                          argc, argv, RUN_USAGE);
    if (rc) return rc == 1 ? 0 : rc;
    char *text = NULL;
    size_t text_len = 0;
    sk_grammar *gram = NULL;
    if (load_constraint(&o, &gram)) return 1;
    if (o.prompt_file) {
        text = sk_cli_read_file(o.prompt_file, (size_t)1 << 30, &text_len);
        if (!text) {
            fprintf(stderr, "error: cannot read %s\n", o.prompt_file);
            return 1;
        }
    } else if (o.prompt) {
        text_len = strlen(o.prompt);
        text = malloc(text_len + 1);
        if (!text) return 1;
        memcpy(text, o.prompt, text_len + 1);
    } else {
        fprintf(stderr, "error: give a prompt with -p or -f\nsee 'sinkllm run --help'\n");
        sk_grammar_free(gram);
        return 2;
    }
    double load_ms = 0;
    sk_model *m = sk_cli_load_model(&o, &load_ms);
    if (!m) {
        free(text);
        sk_grammar_free(gram);
        return 1;
    }
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    sk_error err = {0};
    int64_t n_tok = 0;
    int32_t *ids = NULL;
    if (sk_tokenize(tok, text, text_len, 1, o.parse_special, NULL, 0, &n_tok, &err) == SK_OK) {
        ids = malloc(sizeof(int32_t) * (size_t)(n_tok + 1));
        if (ids) sk_tokenize(tok, text, text_len, 1, o.parse_special, ids, n_tok, &n_tok, &err);
    }
    if (!ids || err.code) {
        fprintf(stderr, "error: %s\n", err.msg[0] ? err.msg : "tokenize: out of memory");
        free(text);
        free(ids);
        sk_grammar_free(gram);
        sk_model_free(m);
        return 1;
    }
    if (n_tok == 0) { /* nothing to condition on: start from BOS as llama.cpp does */
        ids[0] = sk_tokenizer_bos(tok) >= 0 ? sk_tokenizer_bos(tok) : 0;
        n_tok = 1;
    }
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = o.n_threads;
    cp.n_batch = o.n_batch;
    cp.cache = o.cache;
    sk_context *ctx = NULL;
    sk_sampler *smp = NULL;
    sk_token_trie *trie = NULL;
    sk_grammar_matcher *gm = NULL;
    if (sk_context_new(m, &cp, &ctx, &err) ||
        sk_sampler_new(&o.sp, sk_model_hparams(m)->n_vocab, &smp, &err) ||
        (gram && (sk_token_trie_new(tok, &trie, &err) || sk_grammar_matcher_new(gram, &gm, &err) ||
                  sk_sampler_set_grammar(smp, gm, trie, &err)))) {
        fprintf(stderr, "error: %s\n", err.msg);
        free(text);
        free(ids);
        sk_sampler_free(smp);
        sk_grammar_matcher_free(gm);
        sk_token_trie_free(trie);
        sk_grammar_free(gram);
        sk_context_free(ctx);
        sk_model_free(m);
        return 1;
    }
    if (o.display_prompt) {
        fwrite(text, 1, text_len, stdout);
        fflush(stdout);
    }
    for (int64_t i = 0; i < n_tok; i++) sk_sampler_accept(smp, ids[i]);
    double t0 = sk_now_ms();
    rc = 0;
    if (sk_decode(ctx, ids, n_tok, &err)) {
        fprintf(stderr, "\nerror: %s\n", err.msg);
        rc = 1;
    }
    double t1 = sk_now_ms();
    int64_t n_gen = 0;
    sk_detok dt;
    sk_detok_init(&dt);
    char piece[512];
    float *logits = malloc(sizeof(float) * (size_t)sk_model_hparams(m)->n_vocab);
    size_t nvb = sizeof(float) * (size_t)sk_model_hparams(m)->n_vocab;
    double mask_ms = 0;
    while (!rc && logits && (o.n_predict < 0 || n_gen < o.n_predict)) {
        memcpy(logits, sk_logits(ctx), nvb);
        if (gm) { /* the mask alone, timed (the sampler reuses it) */
            double tm = sk_now_ms();
            sk_sampler_apply_grammar(smp, logits);
            mask_ms += sk_now_ms() - tm;
        }
        int32_t t = sk_sampler_sample(smp, logits);
        if (sk_token_is_eog(tok, t)) break;
        sk_sampler_accept(smp, t);
        size_t k = sk_detok_push(&dt, tok, t, 0, piece, sizeof piece);
        fwrite(piece, 1, k, stdout);
        fflush(stdout);
        n_gen++;
        if (sk_decode(ctx, &t, 1, &err)) {
            fprintf(stderr, "\nerror: %s\n", err.msg);
            rc = 1;
        }
    }
    size_t k = sk_detok_flush(&dt, piece, sizeof piece);
    fwrite(piece, 1, k, stdout);
    fputc('\n', stdout);
    double t2 = sk_now_ms();
    sk_context_stats st;
    sk_context_get_stats(ctx, &st);
    fprintf(stderr,
            "\nload: %.1f ms | prefill: %lld tokens, %.1f tokens/s | decode: %lld tokens, %.1f "
            "tokens/s | cache: %s %lld cached, %lld evicted\n",
            load_ms, (long long)n_tok, n_tok / ((t1 - t0) / 1e3), (long long)n_gen,
            n_gen > 0 ? n_gen / ((t2 - t1) / 1e3) : 0.0, sk_cache_policy_name(o.cache.policy),
            (long long)st.n_cached, (long long)st.n_evicted);
    if (gm && n_gen > 0)
        fprintf(stderr, "grammar: %.3f ms/token for the token masks (%s)\n", mask_ms / (double)n_gen,
                sk_grammar_matcher_accepts(gm) ? "complete" : "incomplete");
    /* a sampled reply is reproduced by its seed (--seed N) */
    if (o.sp.temp > 0) fprintf(stderr, "seed: %llu (--seed to reproduce)\n", (unsigned long long)sk_sampler_seed(smp));
    free(logits);
    free(text);
    free(ids);
    sk_sampler_free(smp);
    sk_grammar_matcher_free(gm);
    sk_token_trie_free(trie);
    sk_grammar_free(gram);
    sk_context_free(ctx);
    sk_model_free(m);
    return rc;
}
