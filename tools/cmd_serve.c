/* cmd_serve.c - `sinkllm serve`: command line and life cycle of the
 * OpenAI-compatible HTTP server (the routes are in server_http.c).
 *
 * Start-up order: bind the port (so /health can answer 503 "loading"), load
 * the model, create the slots, print the address to stderr. SIGINT and
 * SIGTERM are blocked in every thread and taken by sigwait() in the main
 * thread: stop accepting, end in-flight generations, save the sessions,
 * exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "server.h"

static const char *SERVE_USAGE =
    "usage: sinkllm serve [options]\n"
    "\n"
    "OpenAI-compatible HTTP server (chat/completions, completions, models, streaming)\n"
    "over StreamingLLM caches: conversations never run out of context.\n"
    "\n"
    "  -m, --model PATH          GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
    "      --host ADDR           address to bind (default 127.0.0.1)\n"
    "      --port N              TCP port (default 8080; 0: any free port, printed)\n"
    "      --slots N             concurrent generations, one KV cache each (default 4)\n"
    "      --queue N             requests that may wait for a slot (default 16; beyond: 503)\n"
    "  -t, --threads N           threads of the forward passes (default all cores); the\n"
    "                            slots share them: every pass runs a token of each\n"
    "                            generating slot and pre-fill chunks together\n"
    "                            (continuous batching)\n"
    "  -b, --batch-size N        pre-fill chunk of one slot in one pass (default 256)\n"
    "      --batch-tokens N      rows of one pass over all slots (default 512); while\n"
    "                            slots generate, a pre-fill gets 1/32 of it per pass\n"
    "      --cache POLICY        sink (default), window, dense, recompute, shift\n"
    "      --sinks N --window N -c N --kv-type T   cache sizes, as for 'sinkllm run'\n"
    "  -n, --max-tokens N        default max_tokens of a request (default 512)\n"
    "      --temp --top-k --top-p --min-p --repeat-penalty ... --seed\n"
    "                            defaults for fields a request leaves out\n"
    "      --chat-template NAME  chatml, smollm2, llama2, llama3, mistral, gemma, zephyr, phi3\n"
    "      --api-key KEY         require 'Authorization: Bearer KEY' (not on /health)\n"
    "      --api-key-file PATH   the same, key read from a file (or $SINKLLM_API_KEY)\n"
    "      --session-dir DIR     persist named sessions there (on eviction, shutdown and\n"
    "                            POST /v1/sessions/ID/save); they resume after a restart\n"
    "      --session-store URL   keep them in Redis instead (redis://HOST:PORT[/DB]), shared\n"
    "                            by replicas: implies --session-sync; Redis down: saves fail\n"
    "                            with a log line and a metric, serving goes on from memory\n"
    "      --session-sync        save a named session after every request, so it survives\n"
    "                            a crash of this process\n"
    "      --session-max N       keep at most N stored sessions (least recently used go)\n"
    "      --session-ttl S       delete a stored session unused for S seconds\n"
    "      --cors ORIGIN         let pages from ORIGIN (or * for any) call the API from a\n"
    "                            browser: CORS headers and OPTIONS preflight\n"
    "      --max-body SIZE       largest request body (default 8MiB; K, KiB, M, MiB)\n"
    "      --timeout SECONDS     wall-clock limit of one request (default 600)\n"
    "      --header-timeout S    a connection must send its request line and headers within\n"
    "                            S seconds (default 10), then its body within S more plus\n"
    "                            1 s per 16 KiB; slower ones are closed\n"
    "      --idle-timeout S      close a connection silent for S seconds while it waits for\n"
    "                            a request (keep-alive) or takes a finished reply (default\n"
    "                            30; a generation is bounded by --timeout, not by this)\n"
    "      --max-conn-per-ip N   connections from one address (default slots + queue + 8,\n"
    "                            so one address can fill every slot and the queue but not\n"
    "                            the spare connections; 0 = no limit). Past it, or near the\n"
    "                            server's limit (slots + queue + 64), the oldest connection\n"
    "                            still without a request is closed to make room\n"
    "      --rollback N          tokens a session can take back when a client re-sends its\n"
    "                            last reply tokenized differently (default 256; 0 = off)\n";

/* "8MiB", "512K", "1048576" -> bytes; 0 on error. */
static size_t parse_size(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    unsigned long long mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "B")) mul = 1;
    else if (!strcmp(end, "K") || !strcmp(end, "KiB") || !strcmp(end, "k")) mul = 1024;
    else if (!strcmp(end, "M") || !strcmp(end, "MiB")) mul = 1024 * 1024;
    else if (!strcmp(end, "G") || !strcmp(end, "GiB")) mul = 1024ull * 1024 * 1024;
    else return 0;
    if (v == 0 || v > (1ull << 34) / mul) return 0;
    return (size_t)(v * mul);
}

static int parse_int_arg(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "error: %s expects an integer in %ld..%ld, got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    sk_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 8080;
    cfg.n_slots = 4;
    cfg.queue_max = 16;
    cfg.max_body = 8u << 20;
    cfg.timeout_s = 600;
    cfg.header_timeout_s = 10;
    cfg.idle_timeout_s = 30;
    cfg.max_conn_per_ip = -1; /* slots + queue + 8, once both are known */
    cfg.chat_kind = -1;
    cfg.max_tokens = 512;
    cfg.batch_tokens = 512;
    const char *key = NULL, *key_file = NULL, *tmpl = NULL;
    char *key_buf = NULL;
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    int nrest = 0, rc = 2, n_rollback = 256;
    if (!rest) return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        int takes = !strcmp(a, "--host") || !strcmp(a, "--port") || !strcmp(a, "--slots") ||
                    !strcmp(a, "--queue") || !strcmp(a, "--api-key") ||
                    !strcmp(a, "--api-key-file") || !strcmp(a, "--session-dir") ||
                    !strcmp(a, "--max-body") || !strcmp(a, "--timeout") ||
                    !strcmp(a, "--chat-template") || !strcmp(a, "-n") || !strcmp(a, "--max-tokens") ||
                    !strcmp(a, "--rollback") || !strcmp(a, "--header-timeout") ||
                    !strcmp(a, "--idle-timeout") || !strcmp(a, "--max-conn-per-ip") ||
                    !strcmp(a, "--session-store") || !strcmp(a, "--session-max") ||
                    !strcmp(a, "--session-ttl") || !strcmp(a, "--cors") || !strcmp(a, "--batch-tokens");
        if (!strcmp(a, "--session-sync")) {
            cfg.session_sync = 1;
            continue;
        }
        if (!takes) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (!v) {
            fprintf(stderr, "error: %s needs a value\n", a);
            goto out;
        }
        i++;
        if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--batch-tokens")) {
            if (parse_int_arg(a, v, 1, SK_MAX_BATCH, &x)) goto out;
            cfg.batch_tokens = (int)x;
        }
        else if (!strcmp(a, "--port")) {
            if (parse_int_arg(a, v, 0, 65535, &x)) goto out;
            cfg.port = (int)x;
        } else if (!strcmp(a, "--slots")) {
            if (parse_int_arg(a, v, 1, 256, &x)) goto out;
            cfg.n_slots = (int)x;
        } else if (!strcmp(a, "--queue")) {
            if (parse_int_arg(a, v, 0, 65536, &x)) goto out;
            cfg.queue_max = (int)x;
        } else if (!strcmp(a, "--rollback")) {
            if (parse_int_arg(a, v, 0, SK_MAX_ROLLBACK, &x)) goto out;
            n_rollback = (int)x;
        } else if (!strcmp(a, "--timeout")) {
            if (parse_int_arg(a, v, 1, 86400, &x)) goto out;
            cfg.timeout_s = (double)x;
        } else if (!strcmp(a, "--header-timeout")) {
            if (parse_int_arg(a, v, 1, 3600, &x)) goto out;
            cfg.header_timeout_s = (double)x;
        } else if (!strcmp(a, "--idle-timeout")) {
            if (parse_int_arg(a, v, 1, 86400, &x)) goto out;
            cfg.idle_timeout_s = (double)x;
        } else if (!strcmp(a, "--max-conn-per-ip")) {
            if (parse_int_arg(a, v, 0, 1 << 20, &x)) goto out;
            cfg.max_conn_per_ip = (int)x;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            if (parse_int_arg(a, v, 1, 1 << 20, &x)) goto out;
            cfg.max_tokens = x;
        } else if (!strcmp(a, "--max-body")) {
            cfg.max_body = parse_size(v);
            if (!cfg.max_body) {
                fprintf(stderr, "error: --max-body expects a size like 8MiB, got '%s'\n", v);
                goto out;
            }
        } else if (!strcmp(a, "--api-key")) key = v;
        else if (!strcmp(a, "--api-key-file")) key_file = v;
        else if (!strcmp(a, "--session-dir")) cfg.session_dir = v;
        else if (!strcmp(a, "--session-store")) cfg.session_store = v;
        else if (!strcmp(a, "--cors")) cfg.cors_origin = v;
        else if (!strcmp(a, "--session-max")) {
            if (parse_int_arg(a, v, 1, 1L << 30, &x)) goto out;
            cfg.session_max = x;
        } else if (!strcmp(a, "--session-ttl")) {
            if (parse_int_arg(a, v, 1, 100L * 365 * 86400, &x)) goto out;
            cfg.session_ttl_s = (double)x;
        }
        else if (!strcmp(a, "--chat-template")) tmpl = v;
    }
    sk_cli o;
    int prc = sk_cli_parse(&o, "serve", OPT_MODEL | OPT_THREADS | OPT_SAMPLE | OPT_CACHE, nrest,
                           rest, SERVE_USAGE);
    if (prc) {
        rc = prc == 1 ? 0 : prc;
        goto out;
    }
    sk_error err = {0};
    if (tmpl) {
        sk_chat_kind k;
        if (sk_chat_kind_parse(tmpl, &k, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            goto out;
        }
        cfg.chat_kind = (int)k;
    }
    if (key && key_file) {
        fprintf(stderr, "error: give --api-key or --api-key-file, not both\n");
        goto out;
    }
    if (key && !*key) { /* an empty key would silently turn authentication off */
        fprintf(stderr, "error: --api-key is empty (leave the flag out to serve without a key)\n");
        goto out;
    }
    if (key_file) {
        size_t len = 0;
        key_buf = sk_cli_read_file(key_file, 4096, &len);
        if (!key_buf) {
            fprintf(stderr, "error: cannot read --api-key-file %s\n", key_file);
            goto out;
        }
        while (len && (key_buf[len - 1] == '\n' || key_buf[len - 1] == '\r' ||
                       key_buf[len - 1] == ' ' || key_buf[len - 1] == '\t'))
            key_buf[--len] = 0;
        if (!len) {
            fprintf(stderr, "error: --api-key-file %s is empty\n", key_file);
            goto out;
        }
        key = key_buf;
    }
    if (!key && (key = getenv("SINKLLM_API_KEY")) && !*key) {
        fprintf(stderr, "error: SINKLLM_API_KEY is set but empty (unset it to serve without a key)\n");
        goto out;
    }
    cfg.api_key = key;
    if (cfg.session_dir) {
        struct stat st;
        if (lstat(cfg.session_dir, &st) != 0 && mkdir(cfg.session_dir, 0700) != 0) {
            fprintf(stderr, "error: cannot create --session-dir %s: %s\n", cfg.session_dir,
                    strerror(errno));
            rc = 1;
            goto out;
        }
        if (stat(cfg.session_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "error: --session-dir %s is not a directory\n", cfg.session_dir);
            rc = 1;
            goto out;
        }
    }
    if (cfg.session_store) {
        if (cfg.session_dir) {
            fprintf(stderr, "error: give --session-dir or --session-store, not both\n");
            goto out;
        }
        if (strncmp(cfg.session_store, "redis://", 8) != 0) {
            fprintf(stderr, "error: --session-store expects redis://HOST:PORT[/DB], got '%s'\n", cfg.session_store);
            goto out;
        }
        cfg.session_sync = 1; /* replicas share it: every turn must be in it */
    }
    if ((cfg.session_sync || cfg.session_max || cfg.session_ttl_s > 0) && !cfg.session_dir && !cfg.session_store) {
        fprintf(stderr, "error: --session-sync, --session-max and --session-ttl need --session-dir or --session-store\n");
        goto out;
    }
    if (cfg.max_conn_per_ip < 0) cfg.max_conn_per_ip = cfg.n_slots + cfg.queue_max + 8;
    cfg.n_threads = o.n_threads;
    cfg.n_batch = o.n_batch;
    cfg.cache = o.cache;
    cfg.sinks_set = o.sinks_set;
    if (cfg.cache.policy == SK_CACHE_SINK || cfg.cache.policy == SK_CACHE_WINDOW)
        cfg.cache.n_rollback = n_rollback;
    cfg.sp = o.sp;
    const char *path = o.model ? o.model : sk_cli_default_model();
    const char *slash = strrchr(path, '/');
    cfg.model_id = slash ? slash + 1 : path;

    /* every thread started from here on inherits the blocked signals */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    sk_server *srv = NULL;
    if (sk_server_start(&cfg, &srv, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    sk_model *m = sk_cli_load_model(&o, NULL);
    if (!m) {
        sk_server_free(srv);
        rc = 1;
        goto out;
    }
    if (sk_server_set_model(srv, m, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        sk_server_free(srv);
        sk_model_free(m);
        rc = 1;
        goto out;
    }
    fprintf(stderr,
            "serve: %s, %d slot%s, cache %s (sinks %d, window %d)%s%s\n"
            "serve: listening on http://%s:%d\n",
            sk_model_desc(m), cfg.n_slots, cfg.n_slots > 1 ? "s" : "",
            sk_cache_policy_name(cfg.cache.policy), cfg.cache.n_sinks, cfg.cache.n_window,
            cfg.api_key ? ", API key required" : "", cfg.session_store ? ", sessions in Redis" : cfg.session_dir ? ", sessions persisted" : "",
            cfg.host, sk_server_port(srv));
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sk_server_shutdown(srv);
    sk_server_free(srv);
    sk_model_free(m);
    rc = 0;
out:
    free(rest);
    free(key_buf);
    return rc;
}
