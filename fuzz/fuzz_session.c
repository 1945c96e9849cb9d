/* fuzz_session.c - libFuzzer entry point for the session loader
 * (sk_context_load), the way an attacker who can write a session file
 * would attack it.
 *
 * Structure-aware: the initializer saves one real session per model and
 * cache policy (sinks 4, window 8, ctx 32, batch 8; 12 tokens decoded, a
 * 4-byte blob), and per model one sink file with n_rollback 4 after 20
 * tokens (its header's back[] > 0: rows kept below the window). An input
 * is byte 0: which file (250..255: a rollback file, model byte % 2, else
 * policy byte % 5, model byte / 5 % 2); the rest: bytes written over the start of that file (the
 * header, the blob, the recompute history, the logits...), so that
 * mutations land on the fields that drive the loader rather than on the KV
 * bytes that make up most of the file. Every input is then given a valid
 * checksum (FNV-1a in src/runtime/session.c is an integrity check, not a
 * signature) and loaded; a file that loads is decoded one token further,
 * so that a state the checks let through is used (a rollback file first
 * takes back the input's last byte % 8 tokens, which the loader's rows
 * must allow or the rollback refuse).
 *
 * Models: the tiny family files of `make tiny` ($SINKLLM_TINY_DIR, else
 * build/tiny; docs/tiny-models.md): llama2.gguf (one cache, MHA) and
 * gemma3.gguf (a global and a sliding-window cache, so a file carries two
 * sets of rows; 1 KV head). The loader's code is the same for any model;
 * the tiny ones make an input cost a 2-7 layer decode of 256 wide instead
 * of SmolLM2's 30 layers, and a file of 40-80 KB instead of 250 KB.
 * FUZZ_SESSION_SEEDS=DIR: the initializer writes one seed input per file
 * (its byte and the first 512 bytes of the file) into DIR.
 * `make fuzz` builds and runs it (see the Makefile); `make test` replays
 * fuzz/corpus/session through it (fuzz/replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "sinkllm.h"

#define N_POL 5
#define N_MOD 2
#define N_SEED (N_POL * N_MOD + N_MOD) /* the last N_MOD: sink with rollback */
#define HDR 192          /* sizeof(sess_header) */
#define OFF_CHECKSUM 136 /* uint64 checksum */

static const sk_cache_policy g_pol[N_POL] = {SK_CACHE_DENSE, SK_CACHE_SINK, SK_CACHE_WINDOW, SK_CACHE_SHIFT,
                                             SK_CACHE_RECOMPUTE};
static const char *const g_mod_name[N_MOD] = {"llama2", "gemma3"};
static sk_model *g_m[N_MOD];
static sk_context *g_c[N_SEED];   /* [model * N_POL + policy], then [N_POL * N_MOD + model] */
static uint8_t *g_seed[N_SEED];   /* the saved file of each context */
static size_t g_seed_n[N_SEED];
static uint8_t *g_buf;            /* (max g_seed_n) the file of one input */
static char g_path[64];

static sk_context *new_ctx(sk_model *m, sk_cache_policy pol, int rollback) {
    sk_context_params p;
    sk_context_params_default(&p);
    p.n_threads = 1;
    p.n_batch = 8;
    p.cache.policy = pol;
    p.cache.n_sinks = 4;
    p.cache.n_window = 8;
    p.cache.n_ctx = 32;
    p.cache.n_rollback = rollback;
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) {
        fprintf(stderr, "fuzz_session: context: %s\n", err.msg);
        exit(1);
    }
    return c;
}

/* the scratch session file goes with the process (libFuzzer and
 * fuzz/replay.c both end by exit) */
static void remove_file(void) { remove(g_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("SINKLLM_TINY_DIR");
    if (!dir || !*dir) dir = "build/tiny";
    for (int j = 0; j < N_MOD; j++) {
        char mp[512];
        snprintf(mp, sizeof mp, "%s/%s.gguf", dir, g_mod_name[j]);
        sk_error err = {0};
        if (sk_model_load(mp, &g_m[j], &err)) {
            fprintf(stderr, "fuzz_session: model %s: %s (make tiny writes it)\n", mp, err.msg);
            exit(1);
        }
    }
    /* tmpfs when there is one: an input is a file written and read back */
    snprintf(g_path, sizeof g_path, "%s/fuzz_session.%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (int)getpid());
    atexit(remove_file);
    size_t max_n = 0;
    for (int k = 0; k < N_SEED; k++) {
        const int roll = k >= N_POL * N_MOD, mod = roll ? k - N_POL * N_MOD : k / N_POL;
        const sk_cache_policy pol = roll ? SK_CACHE_SINK : g_pol[k % N_POL];
        sk_error err = {0};
        g_c[k] = new_ctx(g_m[mod], pol, roll ? 4 : 0);
        for (int i = 0; i < (roll ? 20 : 12); i++) {
            int32_t t = (int32_t)((i * 31 + 7) % 64);
            if (sk_decode(g_c[k], &t, 1, &err)) fprintf(stderr, "fuzz_session: seed: %s\n", err.msg);
        }
        if (sk_context_save(g_c[k], g_path, "blob", 4, &err) || !(g_seed[k] = fuzz_slurp(g_path, &g_seed_n[k]))) {
            fprintf(stderr, "fuzz_session: seed %s %s: %s\n", g_mod_name[mod], sk_cache_policy_name(pol), err.msg);
            exit(1);
        }
        if (g_seed_n[k] > max_n) max_n = g_seed_n[k];
        sk_context_reset(g_c[k]);
    }
    if (!(g_buf = malloc(max_n))) exit(1);
    /* seed inputs: each file's byte and its first 512 bytes */
    const char *sd = getenv("FUZZ_SESSION_SEEDS");
    for (int k = 0; sd && *sd && k < N_SEED; k++) {
        char p[512];
        const int roll = k >= N_POL * N_MOD, mod = roll ? k - N_POL * N_MOD : k / N_POL;
        snprintf(p, sizeof p, "%s/seed-%s-%s", sd, g_mod_name[mod],
                 roll ? "sink-rollback" : sk_cache_policy_name(g_pol[k % N_POL]));
        FILE *f = fopen(p, "wb");
        if (!f) continue;
        fputc(roll ? 250 + mod : k, f);
        fwrite(g_seed[k], 1, g_seed_n[k] < 512 ? g_seed_n[k] : 512, f);
        fclose(f);
    }
    return 0;
}

/* One input: the chosen seed with the input's bytes over its start,
 * resealed, loaded; on success one more token decoded. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int roll = data[0] >= 250;
    const int k = roll ? N_POL * N_MOD + data[0] % N_MOD : (data[0] / N_POL % N_MOD) * N_POL + data[0] % N_POL;
    size_t n = g_seed_n[k];
    uint8_t *b = g_buf;
    memcpy(b, g_seed[k], n);
    memcpy(b, data + 1, size - 1 < n ? size - 1 : n);
    if (n >= HDR) {
        memset(b + OFF_CHECKSUM, 0, 8);
        uint64_t h = fuzz_fnv(fuzz_fnv(0xcbf29ce484222325ULL, b + HDR, n - HDR), b, HDR);
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
            if (roll) sk_context_rollback(g_c[k], data[size - 1] % 8, &err);
            sk_decode(g_c[k], &t, 1, &err);
        }
        free(blob);
        sk_context_reset(g_c[k]);
    }
    return 0;
}
