/* cmd_train.c - `sinkllm train`: pre-train a small LLaMA-architecture model
 * from scratch on a UTF-8 text (include/sinkllm_train.h), with a progress
 * line, a CSV of the loss, checkpoints that resume exactly, and a GGUF
 * export that `sinkllm run`/`ppl` load. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sinkllm_train.h"

static const char *TRAIN_USAGE =
    "usage: sinkllm train -f TEXT [options]\n"
    "\n"
    "Pre-train a small LLaMA-architecture model (RMSNorm, RoPE, grouped-query\n"
    "attention, SwiGLU) from scratch on a UTF-8 text, on the CPU, in F32, with\n"
    "AdamW, a warm-up + cosine schedule and gradient clipping. Samples are random\n"
    "windows of --ctx tokens of the text's first part; the last --val-frac of it\n"
    "is held out. Results do not depend on --threads.\n"
    "\n"
    "data:\n"
    "  -f, --data PATH        the training text (UTF-8, no NUL bytes)\n"
    "  -m, --vocab PATH       GGUF file whose tokenizer tokenizes the text and is\n"
    "                         copied into the export: a model or a vocabulary-only\n"
    "                         file (make vocab: 4,096 tokens; default: the bundled\n"
    "                         SmolLM2, 49,152 tokens, then the embedding is most of\n"
    "                         the model)\n"
    "      --val-frac X       held-out tail of the tokens (default 0.05)\n"
    "model:\n"
    "      --layers N         blocks (default 4)\n"
    "      --dim N            width (default 128)\n"
    "      --heads N          query heads (default 4; dim / heads must be even)\n"
    "      --kv-heads N       key/value heads (default: --heads; divides it)\n"
    "      --ffn N            SwiGLU hidden width (default 3 x dim)\n"
    "      --ctx N            tokens per sample (default 256)\n"
    "      --untied           a separate output matrix (default: tied to the embedding)\n"
    "      --softmax1         +1 in every attention denominator (the zero sink;\n"
    "                         exported as attn_sinks logits of 0)\n"
    "      --sink-logit       a learnable logit per head and layer in every attention\n"
    "                         denominator, no value (gpt-oss's form; exported as\n"
    "                         attn_sinks); not with --softmax1\n"
    "      --sink-token TEXT  start every sample with this token (one token of the\n"
    "                         vocabulary, e.g. '<|endoftext|>'): the paper's learnable\n"
    "                         sink; written to the export as llama.sink_token_id\n"
    "optimisation:\n"
    "      --batch N          samples per step (default 8)\n"
    "      --steps N          steps (default 1000)\n"
    "      --lr X             peak learning rate (default 1e-3)\n"
    "      --lr-min X         final learning rate of the cosine (default lr / 10)\n"
    "      --warmup N         linear warm-up steps (default min(100, steps / 10))\n"
    "      --weight-decay X   AdamW decay of the matrices (default 0.1)\n"
    "      --clip X           clip the gradient norm (default 1; 0: off)\n"
    "      --bf16             mixed precision: matrix products on BF16 operands, F32\n"
    "                         sums, weights and optimizer (fast with AVX512-BF16;\n"
    "                         elsewhere a scalar twin, same bits, slow)\n"
    "  -s, --seed N           weights and samples (default 1)\n"
    "run:\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "      --eval-every N     held-out loss every N steps and at the end (default 100;\n"
    "                         0: at the end only)\n"
    "      --eval-windows N   windows of --ctx tokens per evaluation (default 16; 0: all)\n"
    "      --csv PATH         per step: step,tokens,lr,loss,grad_norm,val_loss,tok_per_s\n"
    "                         (appended to on --resume)\n"
    "      --save PATH        checkpoint, written every --save-every steps, at the end\n"
    "                         and on Ctrl-C (crash-safe: a killed run resumes from it)\n"
    "      --save-every N     (default 100)\n"
    "      --stop-at N        stop after step N as an interruption would (saved with\n"
    "                         --save; continue with --resume): a long run in parts\n"
    "      --resume PATH      continue a checkpoint exactly (its model and schedule:\n"
    "                         model and optimisation flags are refused with it)\n"
    "      --export PATH      write the model as GGUF at the end\n"
    "      --export-type T    f32 (default) or f16\n"
    "  -q, --quiet            no progress line\n";

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

static int parse_f64(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "error: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = x;
    return 0;
}

static void fmt_eta(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, cap, "?");
    else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

int cmd_train(int argc, char **argv) {
    sk_train_params p;
    sk_train_params_default(&p);
    const char *data = NULL, *vocab = NULL, *csv = NULL, *save = NULL, *resume = NULL,
               *export = NULL, *sink = NULL;
    int64_t threads = 0, stop_at = 0, eval_every = 100, eval_windows = 16, save_every = 100, v;
    double val_frac = 0.05, x;
    int quiet = 0, f16 = 0, set_ffn = 0, set_kv = 0, set_lr_min = 0, set_warmup = 0;
    const char *model_flag = NULL; /* the first model/optimisation flag given */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(TRAIN_USAGE, stdout);
            return 0;
        }
        /* flags without a value */
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--untied")) { p.tied = 0; model_flag = model_flag ? model_flag : a; continue; }
        if (!strcmp(a, "--softmax1")) { p.softmax1 = 1; model_flag = model_flag ? model_flag : a; continue; }
        if (!strcmp(a, "--sink-logit")) { p.sink_logit = 1; model_flag = model_flag ? model_flag : a; continue; }
        if (!strcmp(a, "--bf16")) { p.bf16 = 1; model_flag = model_flag ? model_flag : a; continue; }
        if (!val || a[0] != '-') {
            fprintf(stderr, "error: unknown or incomplete option '%s'\nsee 'sinkllm train --help'\n", a);
            return 2;
        }
        i++;
        int model_opt = 1;
        if (!strcmp(a, "-f") || !strcmp(a, "--data")) data = val, model_opt = 0;
        else if (!strcmp(a, "--vocab") || !strcmp(a, "-m") || !strcmp(a, "--model")) vocab = val, model_opt = 0;
        else if (!strcmp(a, "--csv")) csv = val, model_opt = 0;
        else if (!strcmp(a, "--save")) save = val, model_opt = 0;
        else if (!strcmp(a, "--resume")) resume = val, model_opt = 0;
        else if (!strcmp(a, "--sink-token")) sink = val;
        else if (!strcmp(a, "--export")) export = val, model_opt = 0;
        else if (!strcmp(a, "--export-type")) {
            model_opt = 0;
            if (!strcmp(val, "f32")) f16 = 0;
            else if (!strcmp(val, "f16")) f16 = 1;
            else {
                fprintf(stderr, "error: --export-type expects f32 or f16, got '%s'\n", val);
                return 2;
            }
        }        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            model_opt = 0;
            if (sk_cli_parse_i64(a, val, 1, SK_MAX_THREADS, &threads)) return 2;
        } else if (!strcmp(a, "--eval-every")) {
            model_opt = 0;
            if (sk_cli_parse_i64(a, val, 0, INT64_MAX / 2, &eval_every)) return 2;
        } else if (!strcmp(a, "--stop-at")) {
            model_opt = 0;
            if (sk_cli_parse_i64(a, val, 1, INT64_MAX / 2, &stop_at)) return 2;
        } else if (!strcmp(a, "--eval-windows")) {
            model_opt = 0;
            if (sk_cli_parse_i64(a, val, 0, 1 << 30, &eval_windows)) return 2;
        } else if (!strcmp(a, "--save-every")) {
            model_opt = 0;
            if (sk_cli_parse_i64(a, val, 1, INT64_MAX / 2, &save_every)) return 2;
        } else if (!strcmp(a, "--val-frac")) {
            model_opt = 0;
            if (parse_f64(a, val, 0, 0.9, &val_frac)) return 2;
        } else if (!strcmp(a, "--layers")) {
            if (sk_cli_parse_i64(a, val, 1, SK_TRAIN_MAX_LAYERS, &v)) return 2;
            p.n_layer = (int)v;
        } else if (!strcmp(a, "--dim")) {
            if (sk_cli_parse_i64(a, val, 2, SK_TRAIN_MAX_EMBD, &v)) return 2;
            p.n_embd = (int)v;
        } else if (!strcmp(a, "--heads")) {
            if (sk_cli_parse_i64(a, val, 1, SK_TRAIN_MAX_EMBD, &v)) return 2;
            p.n_head = (int)v;
        } else if (!strcmp(a, "--kv-heads")) {
            if (sk_cli_parse_i64(a, val, 1, SK_TRAIN_MAX_EMBD, &v)) return 2;
            p.n_head_kv = (int)v, set_kv = 1;
        } else if (!strcmp(a, "--ffn")) {
            if (sk_cli_parse_i64(a, val, 1, 4 * SK_TRAIN_MAX_EMBD, &v)) return 2;
            p.n_ff = (int)v, set_ffn = 1;
        } else if (!strcmp(a, "--ctx")) {
            if (sk_cli_parse_i64(a, val, 1, SK_TRAIN_MAX_CTX, &v)) return 2;
            p.n_ctx = (int)v;
        } else if (!strcmp(a, "--batch")) {
            if (sk_cli_parse_i64(a, val, 1, SK_TRAIN_MAX_BATCH, &v)) return 2;
            p.batch = (int)v;
        } else if (!strcmp(a, "--steps")) {
            if (sk_cli_parse_i64(a, val, 1, INT64_C(1000000000000), &p.steps)) return 2;
        } else if (!strcmp(a, "--warmup")) {
            if (sk_cli_parse_i64(a, val, 0, INT64_C(1000000000000), &p.warmup)) return 2;
            set_warmup = 1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (sk_cli_parse_i64(a, val, 0, INT64_MAX, &v)) return 2;
            p.seed = (uint64_t)v;
        } else if (!strcmp(a, "--lr")) {
            if (parse_f64(a, val, 0, 10, &p.lr)) return 2;
        } else if (!strcmp(a, "--lr-min")) {
            if (parse_f64(a, val, 0, 10, &p.lr_min)) return 2;
            set_lr_min = 1;
        } else if (!strcmp(a, "--weight-decay")) {
            if (parse_f64(a, val, 0, 100, &p.weight_decay)) return 2;
        } else if (!strcmp(a, "--clip")) {
            if (parse_f64(a, val, 0, 1e30, &x)) return 2;
            p.clip = x;
        } else {
            fprintf(stderr, "error: unknown option '%s'\nsee 'sinkllm train --help'\n", a);
            return 2;
        }
        if (model_opt && !model_flag) model_flag = a;
    }
    if (!data) {
        fprintf(stderr, "error: no training text: give -f PATH\nsee 'sinkllm train --help'\n");
        return 2;
    }
    if (resume && model_flag) {
        fprintf(stderr, "error: %s cannot be given with --resume: the checkpoint holds the model "
                "and its schedule\n", model_flag);
        return 2;
    }
    if (!set_kv) p.n_head_kv = p.n_head;
    if (!set_ffn) p.n_ff = 3 * p.n_embd;
    if (!set_lr_min) p.lr_min = p.lr / 10;
    if (!set_warmup) p.warmup = p.steps / 10 < 100 ? p.steps / 10 : 100;
    if (p.softmax1 && p.sink_logit) {
        fprintf(stderr, "error: --softmax1 and --sink-logit exclude each other (the zero sink is a sink "
                "logit fixed at 0)\n");
        return 2;
    }
    if (threads == 0) {
        sk_system_info si;
        sk_system_info_get(&si);
        threads = si.n_cores > 0 ? si.n_cores : 1;
    }

    /* the tokenizer (only: the weights of a model file are not read), then the corpus */
    const char *vpath = vocab ? vocab : sk_cli_default_model();
    sk_model *vm = NULL;
    sk_error verr = {0};
    if (sk_model_load_vocab(vpath, &vm, &verr)) {
        fprintf(stderr, "error: cannot load the vocabulary: %s\n", verr.msg);
        if (!vocab && access(vpath, F_OK) != 0)
            fprintf(stderr, "hint: run 'make model' to fetch the default model\n");
        return 1;
    }
    const sk_tokenizer *tok = sk_model_tokenizer(vm);
    size_t len = 0;
    char *text = sk_cli_read_file(data, (size_t)1 << 31, &len);
    if (!text) {
        fprintf(stderr, "error: cannot read %s (or larger than 2 GiB)\n", data);
        sk_model_free(vm);
        return 1;
    }
    sk_error err;
    sk_train_data *d = NULL;
    sk_trainer *t = NULL;
    FILE *cf = NULL;
    int32_t *batch = NULL;
    int rc = 1;
    double t_load = sk_now_ms();
    if (sk_train_data_new(tok, text, len, val_frac, &d, &err)) {
        fprintf(stderr, "error: %s: %s\n", data, err.msg);
        goto out;
    }
    free(text);
    text = NULL;
    uint64_t hash = sk_train_data_hash(d);
    if (resume) {
        uint64_t h;
        if (sk_trainer_load(resume, (int)threads, &t, &h, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            goto out;
        }
        if (h != hash) {
            fprintf(stderr, "error: %s was trained on another corpus (or split): a resumed run "
                    "must read the same text with the same --val-frac and --vocab\n", resume);
            goto out;
        }
        if (sk_trainer_params(t)->n_vocab != sk_tokenizer_n_vocab(tok)) {
            fprintf(stderr, "error: %s has a vocabulary of %lld, --vocab has %lld\n", resume,
                    (long long)sk_trainer_params(t)->n_vocab, (long long)sk_tokenizer_n_vocab(tok));
            goto out;
        }
    } else {
        p.n_vocab = sk_tokenizer_n_vocab(tok);
        if (sink) {
            int32_t one[4];
            int64_t k = 0;
            if (sk_tokenize(tok, sink, strlen(sink), 0, 1, one, 4, &k, &err) || k != 1) {
                fprintf(stderr, "error: --sink-token '%s' is %lld tokens of the vocabulary, not one\n",
                        sink, (long long)k);
                rc = 2;
                goto out;
            }
            p.sink_token = one[0];
        }
        if (sk_trainer_new(&p, (int)threads, &t, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 2;
            goto out;
        }
    }
    const sk_train_params *tp = sk_trainer_params(t);
    if (sk_train_data_n_tokens(d, 0) < tp->n_ctx + (tp->sink_token < 0)) {
        fprintf(stderr, "error: %s: the training part has %lld tokens, fewer than a sample (--ctx%s)\n",
                data, (long long)sk_train_data_n_tokens(d, 0), tp->sink_token < 0 ? " + 1" : "");
        goto out;
    }
    int has_val = sk_train_data_n_tokens(d, 1) >= 2;
    double emb = (double)tp->n_vocab * tp->n_embd * (tp->tied ? 1 : 2);
    char sk_note[48] = "";
    if (tp->sink_token >= 0) snprintf(sk_note, sizeof sk_note, ", sink token %d", tp->sink_token);
    fprintf(stderr, "model: %d layers, dim %d, %d heads (%d kv), ffn %d, vocab %lld, %s%s%s: %.2fM "
            "parameters (%.2fM in the embedding%s)\n", tp->n_layer, tp->n_embd, tp->n_head,
            tp->n_head_kv, tp->n_ff, (long long)tp->n_vocab, tp->tied ? "tied" : "untied",
            tp->softmax1 ? ", softmax1" : tp->sink_logit ? ", sink logits" : "", sk_note, sk_trainer_n_params(t) / 1e6, emb / 1e6,
            tp->tied ? "" : " and output");
    fprintf(stderr, "corpus: %lld tokens for training, %lld held out (%.0f ms to tokenize)\n",
            (long long)sk_train_data_n_tokens(d, 0), (long long)sk_train_data_n_tokens(d, 1),
            sk_now_ms() - t_load);
    fprintf(stderr, "schedule: %lld steps of %d x %d tokens, lr %g -> %g, warm-up %lld, decay %g, "
            "clip %g, %lld threads%s\n", (long long)tp->steps, tp->batch, tp->n_ctx, tp->lr,
            tp->lr_min, (long long)tp->warmup, tp->weight_decay, tp->clip, (long long)threads,
            resume ? "" : "");
    const char *kern = sk_trainer_kernels(t);
    fprintf(stderr, "precision: %s (matrix products: %s)\n",
            tp->bf16 ? "BF16 products, F32 sums, weights and optimizer" : "F32", kern);
    if (tp->bf16 && !strcmp(kern, "bf16-scalar"))
        fprintf(stderr, "note: no AVX512-BF16 in use (CPU or SINKLLM_ISA): --bf16 runs the scalar "
                "twin, the same bits far slower than F32\n");
    if (resume) fprintf(stderr, "resumed at step %lld\n", (long long)sk_trainer_steps_done(t));
    if (csv) {
        int append = resume && access(csv, F_OK) == 0;
        cf = fopen(csv, append ? "a" : "w");
        if (!cf) {
            fprintf(stderr, "error: cannot write %s\n", csv);
            goto out;
        }
        if (!append) fprintf(cf, "step,tokens,lr,loss,grad_norm,val_loss,tok_per_s\n");
    }
    batch = malloc(sizeof *batch * (size_t)tp->batch * (tp->n_ctx + 1));
    if (!batch) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    signal(SIGINT, on_sigint);
    int tty = isatty(2) && !quiet;
    int64_t s0 = sk_trainer_steps_done(t), every = tp->steps / 20 > 0 ? tp->steps / 20 : 1;
    double t0 = sk_now_ms(), ema = NAN;
    const double tok_step = (double)tp->batch * tp->n_ctx;
    while (sk_trainer_steps_done(t) < tp->steps && !g_stop) {
        if (stop_at && sk_trainer_steps_done(t) >= stop_at) {
            g_stop = 2;
            break;
        }
        sk_train_stats st;
        if (sk_trainer_sample(t, d, batch, &err) || sk_trainer_step(t, batch, &st, &err)) {
            fprintf(stderr, "%serror: %s\n", tty ? "\n" : "", err.msg);
            goto out;
        }
        int64_t s = sk_trainer_steps_done(t);
        double el = (sk_now_ms() - t0) / 1000.0, tps = (double)(s - s0) * tok_step / el;
        double eta = (double)(tp->steps - s) * el / (double)(s - s0);
        ema = isnan(ema) ? st.loss : 0.9 * ema + 0.1 * st.loss;
        double vl = NAN;
        int last = s == tp->steps;
        if (has_val && ((eval_every > 0 && s % eval_every == 0) || last)) {
            if (sk_trainer_eval(t, d, (int)eval_windows, &vl, &err)) {
                fprintf(stderr, "%serror: %s\n", tty ? "\n" : "", err.msg);
                goto out;
            }
        }
        if (cf) {
            fprintf(cf, "%lld,%lld,%.6g,%.6f,%.6g,", (long long)s, (long long)(s * tok_step), st.lr,
                    st.loss, st.grad_norm);
            if (!isnan(vl)) fprintf(cf, "%.6f", vl);
            fprintf(cf, ",%.1f\n", tps);
            fflush(cf);
        }
        char e[32];
        fmt_eta(eta, e, sizeof e);
        if (tty) {
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f (avg %.4f)  lr %.2e  |g| %.3f  %.0f tok/s  "
                    "ETA %s   ", (long long)s, (long long)tp->steps, st.loss, ema, st.lr,
                    st.grad_norm, tps, e);
            if (!isnan(vl)) fprintf(stderr, "\n  held-out loss %.4f (ppl %.2f)\n", vl, exp(vl));
        } else if (!quiet && (s % every == 0 || last || !isnan(vl))) {
            fprintf(stderr, "step %lld/%lld  loss %.4f (avg %.4f)  lr %.2e  |g| %.3f  %.0f tok/s  "
                    "ETA %s", (long long)s, (long long)tp->steps, st.loss, ema, st.lr, st.grad_norm,
                    tps, e);
            if (!isnan(vl)) fprintf(stderr, "  held-out %.4f", vl);
            fputc('\n', stderr);
        }
        if (save && (s % save_every == 0 || last) && sk_trainer_save(t, save, hash, &err)) {
            fprintf(stderr, "%serror: %s\n", tty ? "\n" : "", err.msg);
            goto out;
        }
    }
    if (tty) fputc('\n', stderr);
    if (g_stop) {
        if (save && sk_trainer_save(t, save, hash, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            goto out;
        }
        fprintf(stderr, "%s at step %lld%s%s\n", g_stop == 2 ? "stopped" : "interrupted",
                (long long)sk_trainer_steps_done(t), save ? ": saved to " : "", save ? save : "");
        rc = g_stop == 2 ? 0 : 130;
        goto out;
    }
    if (export) {
        if (sk_trainer_export(t, vm, export, f16, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            goto out;
        }
        fprintf(stderr, "exported %s (%s)\n", export, f16 ? "F16" : "F32");
    }
    rc = 0;
out:
    if (cf) fclose(cf);
    free(batch);
    free(text);
    sk_trainer_free(t);
    sk_train_data_free(d);
    sk_model_free(vm);
    return rc;
}
