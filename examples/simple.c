/* simple.c - the smallest complete program on the public API: what
 * `sinkllm run` does, in one page.
 *
 *   simple MODEL.gguf "PROMPT" [N_PREDICT] [TEMP]
 *
 * Loads the model, tokenizes the prompt (with BOS as the vocabulary asks),
 * creates a context with a StreamingLLM cache (4 sinks + a rolling window,
 * so generation never runs out of context), pre-fills the prompt, then
 * samples with the sampler chain (TEMP 0 = greedy) and streams the text to
 * stdout until an end-of-generation token or N_PREDICT tokens (default 64;
 * -1 = no limit). The prompt is echoed first and a newline ends the text, as
 * `sinkllm run` does, so `simple m.gguf "Hi" 32 0` prints exactly what
 * `sinkllm run -m m.gguf -p "Hi" -n 32 --temp 0` prints. Includes only
 * sinkllm.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkllm.h"

static int fail(const char *what, const sk_error *err) {
    fprintf(stderr, "simple: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_PREDICT] [TEMP]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    long n_predict = argc > 3 ? strtol(argv[3], NULL, 10) : 64;
    sk_error err = {0};

    /* 1. the model and its tokenizer */
    sk_model *m = NULL;
    if (sk_model_load(argv[1], &m, &err)) return fail("load", &err);
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    int64_t n_vocab = sk_tokenizer_n_vocab(tok);

    /* 2. the prompt's tokens: ask for the count, then fill */
    int64_t n_tok = 0;
    if (sk_tokenize(tok, prompt, strlen(prompt), 1, 0, NULL, 0, &n_tok, &err)) return fail("tokenize", &err);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n_tok + 1)); /* (n_tok) */
    if (!ids || sk_tokenize(tok, prompt, strlen(prompt), 1, 0, ids, n_tok, &n_tok, &err)) return 1;
    if (n_tok == 0) ids[n_tok++] = sk_tokenizer_bos(tok) >= 0 ? sk_tokenizer_bos(tok) : 0;

    /* 3. a context with an attention-sink cache, and a sampler chain */
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.cache.policy = SK_CACHE_SINK;
    sk_context *ctx = NULL;
    if (sk_context_new(m, &cp, &ctx, &err)) return fail("context", &err);
    sk_sampler_params sp;
    sk_sampler_params_default(&sp);
    if (argc > 4) sp.temp = strtof(argv[4], NULL);
    sk_sampler *smp = NULL;
    if (sk_sampler_new(&sp, n_vocab, &smp, &err)) return fail("sampler", &err);

    /* 4. pre-fill: the prompt tokens count for the repetition penalties too */
    fputs(prompt, stdout);
    fflush(stdout);
    for (int64_t i = 0; i < n_tok; i++) sk_sampler_accept(smp, ids[i]);
    if (sk_decode(ctx, ids, n_tok, &err)) return fail("decode", &err);

    /* 5. generate: the sampler modifies the logits it is given, so it gets a
     * copy (sk_logits points into the context); nothing allocates here */
    float *logits = malloc(sizeof(float) * (size_t)n_vocab); /* (n_vocab) */
    if (!logits) return 1;
    sk_detok dt;
    sk_detok_init(&dt);
    char piece[512];
    for (long n = 0; n_predict < 0 || n < n_predict; n++) {
        memcpy(logits, sk_logits(ctx), sizeof(float) * (size_t)n_vocab);
        int32_t t = sk_sampler_sample(smp, logits);
        if (sk_token_is_eog(tok, t)) break;
        sk_sampler_accept(smp, t);
        fwrite(piece, 1, sk_detok_push(&dt, tok, t, 0, piece, sizeof piece), stdout);
        fflush(stdout);
        if (sk_decode(ctx, &t, 1, &err)) return fail("decode", &err);
    }
    fwrite(piece, 1, sk_detok_flush(&dt, piece, sizeof piece), stdout);
    fputc('\n', stdout);

    free(logits);
    free(ids);
    sk_sampler_free(smp);
    sk_context_free(ctx);
    sk_model_free(m);
    return 0;
}
