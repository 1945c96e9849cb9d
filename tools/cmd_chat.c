/* cmd_chat.c - `sinkllm chat`: an endless conversation on one persistent,
 * StreamingLLM KV cache.
 *
 * The system turn is rendered once and pinned in the cache's prefix area
 * (--keep system: all of its tokens act as the sinks), every user turn
 * pre-fills only its own new tokens, and the window evicts one token at a
 * time, so the chat never fails with "context full" and runs at constant
 * memory and speed. On a terminal the input line is edited with libedit; a
 * piped stdin is read one line per turn with no prompt or decoration (how
 * tests drive it). Ctrl-C stops a reply, Ctrl-D (or /bye) exits. */
#include <editline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *CHAT_USAGE =
    "usage: sinkllm chat [options]\n"
    "\n"
    "Talk to the model; the conversation never runs out of context: attention sinks\n"
    "(by default the whole system prompt) stay in the cache, the rest is a rolling\n"
    "window. Piped stdin: one line per turn, replies only.\n"
    "\n"
    "  -m, --model PATH          GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "      --system TEXT         system prompt (default: the template's own, if any)\n"
    "      --keep WHAT           pinned prefix: system (default), none (4 sinks), or N tokens\n"
    "      --chat-template NAME  chatml, smollm2, llama2, llama3, mistral, gemma, zephyr, phi3\n"
    "                            (default: recognised from the model's metadata)\n"
    "  -n, --n-predict N         longest reply in tokens (default 512)\n"
    "      --window N            rolling window in tokens (2044)\n"
    "      --kv-type T           f16 (default), f32, q8_0\n"
    "  -t, --threads N           threads      -s, --seed N   sampling seed\n"
    "      --temp --top-k --top-p --min-p --repeat-penalty ...  as for 'sinkllm run'\n"
    "\n"
    "      --session-dir DIR     where /save and /load keep sessions (default: sessions)\n"
    "\n"
    "commands: /help /reset /system TEXT /save NAME /load NAME /sessions /delete NAME\n"
    "          /stats /bye\n";

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct chat {
    sk_model *m;
    const sk_tokenizer *tok;
    sk_context *ctx;
    sk_sampler *smp;
    sk_chat_kind kind;
    int default_system;     /* the template brings its own system prompt */
    char *system;           /* current system prompt, NULL = template default/none */
    const char *keep;       /* "system", "none" or a number */
    sk_context_params cp;
    int64_t n_predict;
    int tty;
    int32_t *buf;           /* token scratch */
    int64_t buf_cap;
    double last_tps;
    int64_t n_turns, n_reply_tokens;
    sk_store *store;     /* /save, /load: the --session-dir */
    int fed;             /* something is in the cache since the last start */
    int pending_system;  /* the template merges the system prompt into the first user turn */
} chat;

/* Templates that have no system turn of their own: the system prompt is
 * rendered together with the first user message. */
static int merges_system(sk_chat_kind k) {
    return k == SK_CHAT_LLAMA2 || k == SK_CHAT_MISTRAL || k == SK_CHAT_GEMMA;
}

/* /save NAME: the cache with the template kind, the system prompt and the
 * turn count (the session store's record; the chat keeps no transcript: it
 * continues from the cache alone). */
static int save_session(chat *ch, const char *name) {
    sk_error err = {0};
    char path[4096];
    if (sk_store_path(ch->store, name, path, sizeof path, &err) ||
        sk_store_save_turns(ch->store, name, ch->ctx, ch->kind, ch->system, NULL, 0, ch->n_turns, &err))
        printf("error: %s\n", err.msg);
    else
        printf("saved %s\n", path);
    return 0;
}

/* /load NAME: a context with the saved cache configuration, restored. */
static int load_session(chat *ch, const char *name) {
    sk_error err = {0};
    char path[4096];
    sk_session_info info;
    if (sk_store_path(ch->store, name, path, sizeof path, &err) ||
        sk_store_peek(ch->store, name, &info, &err)) {
        printf("error: %s\n", err.msg);
        return 0;
    }
    sk_context_params cp = ch->cp;
    cp.cache = info.cache;
    cp.n_batch = info.n_batch;
    sk_session_info_free(&info);
    sk_context *c = NULL;
    if (sk_context_new(ch->m, &cp, &c, &err) || sk_store_load(ch->store, name, c, &info, &err)) {
        printf("error: %s\n", err.msg);
        sk_context_free(c);
        return 0;
    }
    sk_context_free(ch->ctx);
    ch->ctx = c;
    ch->cp = cp;
    ch->kind = info.chat_kind;
    /* a session saved before turns were recorded: its count is not known */
    char turns[32] = "turns not recorded";
    if (info.n_turns >= 0) snprintf(turns, sizeof turns, "%lld turn%s", (long long)info.n_turns,
                                    info.n_turns == 1 ? "" : "s");
    ch->n_turns = info.n_turns > 0 ? info.n_turns : 0;
    free(ch->system);
    ch->system = info.system[0] ? strdup(info.system) : NULL;
    sk_session_info_free(&info);
    ch->fed = 1;
    ch->pending_system = 0;
    /* the session's own settings, which now replace the command line's */
    sk_context_stats st;
    sk_context_get_stats(c, &st);
    const sk_cache_params *cc = &cp.cache;
    printf("loaded %s: %s, template %s, cache %s (%d sinks, window %d, kv %s), %lld tokens streamed, "
           "%lld in the cache, %lld evicted%s\n", path, turns, sk_chat_kind_name(ch->kind),
           sk_cache_policy_name(cc->policy), cc->policy == SK_CACHE_SINK ? cc->n_sinks : 0, cc->n_window,
           cc->kv_type == SK_KV_F32 ? "f32" : cc->kv_type == SK_KV_Q8_0 ? "q8_0" : "f16", (long long)st.n_past,
           (long long)st.n_cached, (long long)st.n_evicted, ch->system ? ", with its system prompt" : "");
    return 0;
}

/* /sessions: the saved sessions, one per line. */
static int list_sessions(chat *ch) {
    sk_error err = {0};
    char **names = NULL;
    int64_t n = 0;
    if (sk_store_list(ch->store, &names, &n, &err)) printf("error: %s\n", err.msg);
    for (int64_t i = 0; i < n; i++) printf("%s\n", names[i]);
    if (!err.code && n == 0) printf("no saved sessions\n");
    sk_store_list_free(names, n);
    return 0;
}

/* /delete NAME */
static int delete_session(chat *ch, const char *name) {
    sk_error err = {0};
    if (sk_store_delete(ch->store, name, &err)) printf("error: %s\n", err.msg);
    else printf("deleted %s\n", name);
    return 0;
}

/* Render msgs with the template into ch->buf, growing it; returns count or -1. */
static int64_t render(chat *ch, const sk_chat_msg *msgs, int n, int add_gen, int continuation) {
    sk_error err = {0};
    int64_t need = 0;
    for (int pass = 0; pass < 2; pass++) {
        int flags = (add_gen ? SK_CHAT_ADD_GEN : 0) | (continuation ? SK_CHAT_CONTINUE : 0);
        if (sk_chat_render(ch->tok, ch->kind, msgs, n, flags, ch->buf, ch->buf_cap, &need, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return -1;
        }
        if (need <= ch->buf_cap) return need;
        int32_t *nb = realloc(ch->buf, sizeof(int32_t) * (size_t)need);
        if (!nb) return -1;
        ch->buf = nb;
        ch->buf_cap = need;
    }
    return -1;
}

/* (Re)create the context with n_pin tokens pinned (--keep decides). */
static int new_context(chat *ch, int64_t n_pin) {
    sk_context_free(ch->ctx);
    ch->ctx = NULL;
    sk_context_params cp = ch->cp;
    cp.cache.policy = SK_CACHE_SINK;
    if (!strcmp(ch->keep, "system")) cp.cache.n_sinks = n_pin > 4 ? (int)n_pin : 4;
    else if (!strcmp(ch->keep, "none")) cp.cache.n_sinks = 4;
    else cp.cache.n_sinks = atoi(ch->keep);
    sk_error err = {0};
    if (sk_context_new(ch->m, &cp, &ch->ctx, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Start the conversation over: feed the system turn and pin it (--keep
 * system). Templates without a system turn pin the first exchange's
 * prompt instead, when it comes (turn()). */
static int start(chat *ch) {
    ch->fed = 0;
    ch->pending_system = 0;
    const char *sys = ch->system ? ch->system
                      /* SmolLM2's template supplies this system message when none is given */
                      : ch->default_system ? "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
                                           : NULL;
    if (sys && merges_system(ch->kind)) {
        ch->pending_system = 1;
        return new_context(ch, 0);
    }
    int64_t n_sys = 0;
    if (sys) {
        sk_chat_msg m = {"system", sys};
        n_sys = render(ch, &m, 1, 0, 0);
        if (n_sys < 0) return -1;
    }
    if (new_context(ch, n_sys)) return -1;
    sk_error err = {0};
    if (n_sys > 0) {
        if (sk_decode(ch->ctx, ch->buf, n_sys, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return -1;
        }
        ch->fed = 1;
    }
    return 0;
}

static void show_stats(chat *ch) {
    sk_context_stats st;
    sk_context_get_stats(ch->ctx, &st);
    printf("cache: %lld / %lld tokens (%.0f%%), %lld evicted, %lld streamed | kv %.1f MiB | "
           "last reply %.1f tokens/s | %lld turns\n",
           (long long)st.n_cached, (long long)st.cache_capacity,
           100.0 * st.n_cached / (st.cache_capacity ? st.cache_capacity : 1),
           (long long)st.n_evicted, (long long)st.n_past, st.kv_bytes / 1048576.0, ch->last_tps,
           (long long)ch->n_turns);
}

/* One user turn: pre-fill its tokens, stream the reply, close the turn. */
static int turn(chat *ch, const char *text) {
    sk_chat_msg msgs[2] = {{"system", ch->system}, {"user", text}};
    int64_t n;
    if (ch->pending_system) { /* system prompt and first message, pinned together */
        n = render(ch, msgs, 2, 1, 0);
        if (n < 0 || new_context(ch, n)) return -1;
        ch->pending_system = 0;
    } else {
        n = render(ch, &msgs[1], 1, 1, ch->fed); /* the first turn brings BOS */
        if (n < 0) return -1;
    }
    ch->fed = 1;
    sk_error err = {0};
    if (sk_decode(ch->ctx, ch->buf, n, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return -1;
    }
    int64_t nv = sk_model_hparams(ch->m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)nv);
    if (!logits) return -1;
    sk_detok dt;
    sk_detok_init(&dt);
    char piece[512];
    g_stop = 0;
    double t0 = sk_now_ms();
    int64_t k = 0;
    int rc = 0, eog = 0;
    sk_context_stats st0;
    sk_context_get_stats(ch->ctx, &st0);
    for (; k < ch->n_predict && !g_stop; k++) {
        memcpy(logits, sk_logits(ch->ctx), sizeof(float) * (size_t)nv);
        int32_t t = sk_sampler_sample(ch->smp, logits);
        if (sk_token_is_eog(ch->tok, t)) {
            eog = 1;
            break;
        }
        sk_sampler_accept(ch->smp, t);
        size_t w = sk_detok_push(&dt, ch->tok, t, 0, piece, sizeof piece);
        fwrite(piece, 1, w, stdout);
        fflush(stdout);
        if (sk_decode(ch->ctx, &t, 1, &err)) {
            fprintf(stderr, "\nerror: %s\n", err.msg);
            rc = -1;
            break;
        }
    }
    size_t w = sk_detok_flush(&dt, piece, sizeof piece);
    fwrite(piece, 1, w, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double dt_s = (sk_now_ms() - t0) / 1e3;
    ch->last_tps = k > 0 && dt_s > 0 ? k / dt_s : 0;
    ch->n_turns++;
    ch->n_reply_tokens += k;
    free(logits);
    /* close the assistant turn in the cache, as the template would */
    int64_t ne = 0;
    int32_t end[16];
    if (!rc && !sk_chat_render_turn_end(ch->tok, ch->kind, end, 16, &ne, &err) && ne > 0 && ne <= 16)
        if (sk_decode(ch->ctx, end, ne, &err)) rc = -1;
    if (g_stop && ch->tty) fprintf(stderr, "[stopped]\n");
    /* status lines on stderr (the reply itself stays plain on stdout) */
    if (!rc && !eog && !g_stop && k >= ch->n_predict)
        fprintf(stderr, "[reply cut at %lld tokens: -n/--n-predict]\n", (long long)ch->n_predict);
    sk_context_stats st1;
    sk_context_get_stats(ch->ctx, &st1);
    if (st1.n_evicted > st0.n_evicted)
        fprintf(stderr, "[%lld tokens left the window (%lld in all); %lld stay in the cache, the pinned start included]\n",
                (long long)(st1.n_evicted - st0.n_evicted), (long long)st1.n_evicted, (long long)st1.n_cached);
    return rc;
}

static int command(chat *ch, const char *line) {
    if (!strcmp(line, "/bye") || !strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/help")) {
        printf("/help            this list\n/reset           forget the conversation (keeps the "
               "system prompt)\n/system TEXT     set the system prompt and start over\n/save NAME       save the conversation (KV cache and all)\n/load NAME       "
               "continue a saved conversation\n/sessions        the saved conversations\n"
               "/delete NAME     delete a saved conversation\n/stats      "
               "      cache fill, evictions, speed\n/bye             leave (or Ctrl-D)\n");
    } else if (!strcmp(line, "/reset")) {
        if (start(ch)) return -1;
        printf("conversation reset\n");
    } else if (!strncmp(line, "/system", 7) && (line[7] == ' ' || line[7] == 0)) {
        const char *t = line[7] ? line + 8 : "";
        free(ch->system);
        ch->system = strdup(t);
        if (!ch->system || start(ch)) return -1;
        printf("system prompt set; conversation reset\n");
    } else if (!strncmp(line, "/save ", 6)) {
        return save_session(ch, line + 6);
    } else if (!strncmp(line, "/load ", 6)) {
        return load_session(ch, line + 6);
    } else if (!strcmp(line, "/sessions")) {
        return list_sessions(ch);
    } else if (!strncmp(line, "/delete ", 8)) {
        return delete_session(ch, line + 8);
    } else if (!strcmp(line, "/stats")) {
        show_stats(ch);
    } else {
        printf("unknown command %s (try /help)\n", line);
    }
    fflush(stdout);
    return 0;
}

int cmd_chat(int argc, char **argv) {
    /* chat-only flags are taken out before the shared parser sees the rest */
    const char *system = NULL, *keep = "system", *tmpl = NULL, *session_dir = "sessions";
    int64_t n_predict = 512;
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    int nrest = 0;
    if (!rest) return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--system") && has) system = argv[++i];
        else if (!strcmp(a, "--keep") && has) keep = argv[++i];
        else if (!strcmp(a, "--chat-template") && has) tmpl = argv[++i];
        else if (!strcmp(a, "--session-dir") && has) session_dir = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && has) {
            char *end;
            n_predict = strtoll(argv[++i], &end, 10);
            if (*end || n_predict < 1 || n_predict > (1 << 24)) {
                fprintf(stderr, "error: %s expects 1..16777216, got '%s'\n", a, argv[i]);
                free(rest);
                return 2;
            }
        } else rest[nrest++] = argv[i];
    }
    if (strcmp(keep, "system") && strcmp(keep, "none")) {
        char *end;
        long k = strtol(keep, &end, 10);
        if (*end || k < 0 || k > SK_MAX_SINKS) {
            fprintf(stderr, "error: --keep expects system, none or 0..%d, got '%s'\n", SK_MAX_SINKS, keep);
            free(rest);
            return 2;
        }
    }
    sk_cli o;
    int rc = sk_cli_parse(&o, "chat", OPT_MODEL | OPT_THREADS | OPT_SAMPLE | OPT_CACHE, nrest, rest,
                          CHAT_USAGE);
    free(rest);
    if (rc) return rc == 1 ? 0 : rc;
    chat ch;
    memset(&ch, 0, sizeof ch);
    ch.keep = keep;
    ch.n_predict = n_predict;
    ch.tty = isatty(0) && isatty(1);
    sk_error err = {0};
    if (tmpl && sk_chat_kind_parse(tmpl, &ch.kind, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }
    ch.m = sk_cli_load_model(&o, NULL);
    if (!ch.m) return 1;
    ch.tok = sk_model_tokenizer(ch.m);
    if (sk_store_open(session_dir, ch.m, &ch.store, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        sk_model_free(ch.m);
        return 2;
    }
    int recognised = 0;
    sk_chat_kind detected = sk_chat_detect_model(sk_model_chat_template(ch.m), sk_model_hparams(ch.m)->arch, ch.tok,
                                                 &recognised);
    if (!tmpl) ch.kind = detected;
    ch.default_system = ch.kind == SK_CHAT_SMOLLM2;
    if (system) ch.system = strdup(system);
    sk_context_params_default(&ch.cp);
    ch.cp.n_threads = o.n_threads;
    ch.cp.n_batch = o.n_batch;
    ch.cp.cache = o.cache;
    if (sk_sampler_new(&o.sp, sk_model_hparams(ch.m)->n_vocab, &ch.smp, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        sk_store_free(ch.store);
        sk_model_free(ch.m);
        return 1;
    }
    ch.buf_cap = 4096;
    ch.buf = malloc(sizeof(int32_t) * (size_t)ch.buf_cap);
    if (!ch.buf || start(&ch)) {
        rc = 1;
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (ch.tty) {
        sk_context_stats st;
        sk_context_get_stats(ch.ctx, &st);
        printf("sinkllm chat - %s, template %s, cache: %lld pinned + %d window. /help for "
               "commands, Ctrl-C stops a reply, Ctrl-D leaves.\n", sk_model_desc(ch.m),
               sk_chat_kind_name(ch.kind), (long long)(st.cache_capacity - ch.cp.cache.n_window),
               ch.cp.cache.n_window);
        using_history();
    }
    for (;;) {
        char *line = NULL;
        size_t cap = 0;
        if (ch.tty) {
            g_stop = 0;
            line = readline("> ");
            if (!line && g_stop) { /* Ctrl-C at the prompt: not a way out that loses the chat */
                printf("\n(Ctrl-D or /bye leaves; the conversation is saved as 'last' then)\n");
                continue;
            }
            if (!line) break;
        } else {
            ssize_t r = getline(&line, &cap, stdin);
            if (r < 0) {
                free(line);
                break;
            }
            line[strcspn(line, "\r\n")] = 0;
        }
        if (!line[0]) {
            free(line);
            continue;
        }
        if (ch.tty) add_history(line);
        int r = line[0] == '/' ? command(&ch, line) : turn(&ch, line);
        free(line);
        if (r) {
            rc = r < 0 ? 1 : 0;
            break;
        }
    }
    /* leaving a terminal chat keeps the conversation: /load last continues it */
    if (ch.tty && ch.n_turns > 0 && ch.store) {
        printf("\n");
        save_session(&ch, "last");
        printf("(sinkllm chat, then /load last, continues it)\n");
    }
done:
    free(ch.buf);
    free(ch.system);
    sk_sampler_free(ch.smp);
    sk_context_free(ch.ctx);
    sk_store_free(ch.store);
    sk_model_free(ch.m);
    return rc;
}
