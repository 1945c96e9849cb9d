/* fuzz_session.c - libFuzzer entry point for the session loader
 * (sk_context_load), the way an attacker who can write a session file
 * would attack it.
 *
 * Structure-aware: the initializer saves one real session per cache policy
 * (sinks 4, window 8, ctx 256, batch 8 as tests/test_session.c; 12 tokens
 * decoded, a 4-byte blob). An input is byte 0: which policy's file; the
 * rest: bytes written over the start of that file (the header, the blob,
 * the recompute history, the logits...), so that mutations land on the
 * fields that drive the loader rather than on the KV bytes that make up
 * most of the file. Every input is then given a valid checksum (FNV-1a in
 * src/runtime/session.c is an integrity check, not a signature) and
 * loaded; a file that loads is decoded one token further, so that a state
 * the checks let through is used.
 *
 * Model: $SINKLLM_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf.
 * FUZZ_SESSION_SEEDS=DIR: the initializer writes one seed input per policy
 * (its byte and the first 512 bytes of its file) into DIR.
 * `make fuzz` builds and runs it (see the Makefile); `make test` replays
 * fuzz/corpus/session through it (fuzz/replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinkllm.h"

#define N_POL 5
#define HDR 192          /* sizeof(sess_header) */
#define OFF_CHECKSUM 136 /* uint64 checksum */

static const sk_cache_policy g_pol[N_POL] = {SK_CACHE_DENSE, SK_CACHE_SINK, SK_CACHE_WINDOW, SK_CACHE_SHIFT,
                                             SK_CACHE_RECOMPUTE};
static sk_model *g_m;
static sk_context *g_c[N_POL];
static uint8_t *g_seed[N_POL]; /* the saved file of each policy */
static size_t g_seed_n[N_POL];
static char g_path[64];

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static sk_context *new_ctx(sk_cache_policy pol) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = 8;
    p.cache.policy = pol;
    p.cache.n_sinks = 4;
    p.cache.n_window = 8;
    p.cache.n_ctx = 256;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(g_m, &p, &c, &err)) {
        fprintf(stderr, "fuzz_session: context: %s\n", err.msg);
        exit(1);
    }
    return c;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

/* the scratch session file goes with the process (libFuzzer and
 * fuzz/replay.c both end by exit) */
static void remove_file(void) { remove(g_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *mp = getenv("SINKLLM_MODEL");
    sk_error err = {0};
    if (sk_model_load(mp && *mp ? mp : "models/SmolLM2-135M-Instruct.Q4_1.gguf", &g_m, &err)) {
        fprintf(stderr, "fuzz_session: model: %s\n", err.msg);
        exit(1);
    }
    snprintf(g_path, sizeof g_path, "/tmp/fuzz_session.%d", (int)getpid());
    atexit(remove_file);
    for (int k = 0; k < N_POL; k++) {
        g_c[k] = new_ctx(g_pol[k]);
        for (int i = 0; i < 12; i++) {
            int32_t t = (int32_t)((i * 31 + 7) % 64);
            if (sk_decode(g_c[k], &t, 1, &err)) fprintf(stderr, "fuzz_session: seed: %s\n", err.msg);
        }
        if (sk_context_save(g_c[k], g_path, "blob", 4, &err) || !(g_seed[k] = slurp(g_path, &g_seed_n[k]))) {
            fprintf(stderr, "fuzz_session: seed %s: %s\n", sk_cache_policy_name(g_pol[k]), err.msg);
            exit(1);
        }
        sk_context_reset(g_c[k]);
    }
    /* seed inputs: each policy's byte and its file's first 512 bytes */
    const char *dir = getenv("FUZZ_SESSION_SEEDS");
    for (int k = 0; dir && *dir && k < N_POL; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/seed-%s", dir, sk_cache_policy_name(g_pol[k]));
        FILE *f = fopen(p, "wb");
        if (!f) continue;
        fputc(k, f);
        fwrite(g_seed[k], 1, g_seed_n[k] < 512 ? g_seed_n[k] : 512, f);
        fclose(f);
    }
    return 0;
}

/* One input: the chosen seed with the input's bytes over its start,
 * resealed, loaded; on success one more token decoded. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int k = data[0] % N_POL;
    size_t n = g_seed_n[k];
    uint8_t *b = malloc(n);
    if (!b) return 0;
    memcpy(b, g_seed[k], n);
    memcpy(b, data + 1, size - 1 < n ? size - 1 : n);
    if (n >= HDR) {
        memset(b + OFF_CHECKSUM, 0, 8);
        uint64_t h = fnv(fnv(0xcbf29ce484222325ULL, b + HDR, n - HDR), b, HDR);
        memcpy(b + OFF_CHECKSUM, &h, 8);
    }
    FILE *f = fopen(g_path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
        void *blob = NULL;
        size_t blob_len = 0;
        sk_error err = {0};
        if (sk_context_load(g_c[k], g_path, &blob, &blob_len, &err) == SK_OK) {
            int32_t t = 42;
            sk_decode(g_c[k], &t, 1, &err);
        }
        free(blob);
        sk_context_reset(g_c[k]);
    }
    free(b);
    return 0;
}
