/* cmd_attn.c - `sinkllm attn`: attention maps of a few layers, averaged over
 * heads, for the first tokens of a text (the paper's Fig. 2). The column at
 * token 0 is the attention sink. Also prints, per layer, the mean share of
 * attention that queries pay to token 0 and to the first four tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"

static const char *ATTN_USAGE =
    "usage: sinkllm attn -f FILE --png OUT.png [options]\n"
    "\n"
    "Run the first N tokens of FILE through a dense cache and draw the attention of\n"
    "some layers (averaged over heads) as heat maps: query rows, key columns.\n"
    "\n"
    "  -f, --file PATH       text\n"
    "      --tokens N        tokens (default 256, at most 1024)\n"
    "      --png OUT.png     output picture\n"
    "      --layers LIST     comma-separated layer indices (default: 0,1,2,n/2,n-1)\n"
    "      --gamma G         colour gamma (default 0.5; 0 = log scale)\n"
    "  -m, --model PATH      GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "  -t, --threads N       threads\n";

int cmd_attn(int argc, char **argv) {
    const char *file = NULL, *png = NULL, *model = NULL, *layers_s = NULL;
    int n_tok = 256, n_threads = 0;
    double gamma = 0.5;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(ATTN_USAGE, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "error: unknown or incomplete option '%s'\nsee 'sinkllm attn --help'\n", a);
            return 2;
        }
        char *end = NULL;
        if (!strcmp(a, "-f") || !strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--png")) png = v;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--layers")) layers_s = v;
        else if (!strcmp(a, "--tokens")) {
            long x = strtol(v, &end, 10);
            if (*end || x < 2 || x > 1024) {
                fprintf(stderr, "error: --tokens expects 2..1024, got '%s'\n", v);
                return 2;
            }
            n_tok = (int)x;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long x = strtol(v, &end, 10);
            if (*end || x < 1 || x > 1024) {
                fprintf(stderr, "error: --threads expects 1..1024, got '%s'\n", v);
                return 2;
            }
            n_threads = (int)x;
        } else if (!strcmp(a, "--gamma")) {
            gamma = strtod(v, &end);
            if (*end || !(gamma >= 0 && gamma <= 10)) {
                fprintf(stderr, "error: --gamma expects 0..10, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "error: unknown option '%s'\nsee 'sinkllm attn --help'\n", a);
            return 2;
        }
        i++;
    }
    if (!file || !png) {
        fprintf(stderr, "error: need -f FILE and --png OUT.png\nsee 'sinkllm attn --help'\n");
        return 2;
    }
    sk_cli o;
    memset(&o, 0, sizeof o);
    o.model = model;
    sk_model *m = sk_cli_load_model(&o, NULL);
    if (!m) return 1;
    const sk_hparams *hp = sk_model_hparams(m);
    int layers[16], nl = 0;
    if (layers_s) {
        const char *p = layers_s;
        while (*p && nl < 16) {
            char *end;
            long x = strtol(p, &end, 10);
            if (end == p || x < 0 || x >= hp->n_layer) {
                fprintf(stderr, "error: --layers: bad layer list '%s' (0..%d)\n", layers_s, hp->n_layer - 1);
                sk_model_free(m);
                return 2;
            }
            layers[nl++] = (int)x;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') break;
        }
    } else {
        int def[5] = {0, 1, 2, hp->n_layer / 2, hp->n_layer - 1};
        for (int i = 0; i < 5; i++)
            if (def[i] < hp->n_layer && (nl == 0 || def[i] != layers[nl - 1])) layers[nl++] = def[i];
    }
    size_t len = 0;
    char *text = sk_cli_read_file(file, (size_t)1 << 30, &len);
    if (!text) {
        fprintf(stderr, "error: cannot read %s\n", file);
        sk_model_free(m);
        return 1;
    }
    sk_error err = {0};
    int64_t nt = 0;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(len + 2));
    if (!toks || sk_tokenize(sk_model_tokenizer(m), text, len, 1, 0, toks, (int64_t)len + 1, &nt, &err)) {
        fprintf(stderr, "error: %s: %s\n", file, toks ? err.msg : "out of memory");
        free(text);
        free(toks);
        sk_model_free(m);
        return 1;
    }
    free(text);
    if (nt < n_tok) n_tok = (int)nt;
    if (n_tok < 2) {
        fprintf(stderr, "error: %s has fewer than 2 tokens\n", file);
        free(toks);
        sk_model_free(m);
        return 1;
    }
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = n_threads;
    cp.cache.policy = SK_CACHE_DENSE;
    cp.cache.n_ctx = n_tok;
    sk_context *c = NULL;
    float *buf = calloc((size_t)nl * n_tok * n_tok, sizeof(float));
    int rc = 0;
    if (!buf || sk_context_new(m, &cp, &c, &err) ||
        sk_context_capture_attention(c, layers, nl, n_tok, buf, &err) ||
        sk_decode(c, toks, n_tok, &err)) {
        fprintf(stderr, "error: %s\n", err.msg[0] ? err.msg : "out of memory");
        rc = 1;
    }
    if (!rc) {
        printf("attention paid to the first tokens (mean over heads and over queries 16..%d):\n", n_tok - 1);
        /* sink logit: what a layer's attn_sinks take, 1 - the row's sum (0 without them) */
        printf("| layer | token 0 | tokens 0-3 | uniform share of 4 tokens | sink logit |\n"
               "| ---: | ---: | ---: | ---: | ---: |\n");
        const float *mats[16];
        int rows[16], cols[16];
        char tbuf[16][32];
        const char *titles[16];
        for (int k = 0; k < nl; k++) {
            const float *M = buf + (size_t)k * n_tok * n_tok;
            double s0 = 0, s4 = 0, uni = 0, sk = 0;
            int nq = 0;
            for (int u = 16; u < n_tok; u++, nq++) {
                s0 += M[(size_t)u * n_tok];
                for (int p = 0; p < 4; p++) s4 += M[(size_t)u * n_tok + p];
                double row = 0;
                for (int p = 0; p <= u; p++) row += M[(size_t)u * n_tok + p];
                sk += 1 - row;
                uni += 4.0 / (u + 1);
            }
            if (nq)
                printf("| %d | %.3f | %.3f | %.3f | %.3f |\n", layers[k], s0 / nq, s4 / nq, uni / nq,
                       fabs(sk / nq) < 5e-4 ? 0.0 : sk / nq);
            mats[k] = M;
            rows[k] = cols[k] = n_tok;
            snprintf(tbuf[k], sizeof tbuf[k], "layer %d", layers[k]);
            titles[k] = tbuf[k];
        }
        char sup[128];
        snprintf(sup, sizeof sup, "attention averaged over heads, %d tokens (rows: queries, columns: keys)", n_tok);
        if (sk_heatmap_write_png(png, nl, mats, rows, cols, titles, sup, gamma, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
        } else {
            printf("wrote %s\n", png);
        }
    }
    free(buf);
    free(toks);
    sk_context_free(c);
    sk_model_free(m);
    return rc;
}
