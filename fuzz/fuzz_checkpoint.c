/* fuzz_checkpoint.c - libFuzzer entry point for the training checkpoint
 * loader (sk_trainer_load), the way a corrupt or crafted `--resume` file
 * would reach it.
 *
 * Structure-aware, as fuzz_session.c: the initializer saves one real
 * checkpoint per variant of a tiny model (1 layer, width 8, 2 heads, 1 KV
 * head, vocabulary 16, context 8, batch 2): plain, --softmax1,
 * --sink-logit, --sink-token with untied output. An input is byte 0: which
 * file (% 4), bit 4: truncate the file to the input's length instead of
 * keeping the seed's, bit 5: keep the checksum as written (else resealed, so
 * that mutations reach the checks after it); the rest: bytes written over
 * the start of that file (the header: magic, version, the shape and
 * schedule fields, steps done, the generator, the corpus hash, the
 * parameter count; then the first weights).
 *
 * Asserted besides no crash and no sanitizer report: a file that loads
 * saves back to the same bytes (the format has one spelling of a state),
 * and one training step on it returns OK or a clear error ("diverged" for
 * weights a mutation made non-finite). A header whose batch or context is
 * above 64 is not loaded: its activations are what a user asked for with
 * --batch/--ctx, and only their size would be tested.
 * FUZZ_CHECKPOINT_SEEDS=DIR: the initializer writes one seed input per
 * file (its byte and the header) into DIR.
 * `make fuzz` builds and runs it; `make test` replays fuzz/corpus/checkpoint
 * through it (fuzz/replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "sinkllm_train.h"

#define N_SEED 4
#define OFF_INT 16  /* the 14 int64 fields */
#define HEADER (16 + 8 * 14 + 8 * 9 + 8 * 4)

static uint8_t *g_seed[N_SEED];
static size_t g_seed_n[N_SEED];
static uint8_t *g_buf;
static size_t g_cap;
static char g_path[64], g_path2[64];

static void die(const char *what, const sk_error *e) {
    fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, e ? e->msg : "");
    abort();
}

static void init(void) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_path, sizeof g_path, "%s/fuzz_ckpt_%d", dir, (int)getpid());
    snprintf(g_path2, sizeof g_path2, "%s/fuzz_ckpt_%d_b", dir, (int)getpid());
    int32_t tok[2 * 9];
    for (int i = 0; i < 18; i++) tok[i] = (i * 7 + 3) % 16;
    for (int k = 0; k < N_SEED; k++) {
        sk_train_params p;
        sk_train_params_default(&p);
        p.n_layer = 1, p.n_embd = 8, p.n_head = 2, p.n_head_kv = 1, p.n_ff = 16, p.n_vocab = 16;
        p.n_ctx = 8, p.batch = 2, p.steps = 10, p.warmup = 2, p.seed = 7 + k;
        p.softmax1 = k == 1, p.sink_logit = k == 2;
        if (k == 3) p.sink_token = 15, p.tied = 0;
        sk_trainer *t;
        sk_error e = {0};
        if (sk_trainer_new(&p, 1, &t, &e)) die("trainer", &e);
        if (sk_trainer_step(t, tok, NULL, &e)) die("step", &e); /* non-zero AdamW moments */
        if (sk_trainer_save(t, g_path, 0x1234, &e)) die("save", &e);
        sk_trainer_free(t);
        if (!(g_seed[k] = fuzz_slurp(g_path, &g_seed_n[k]))) die("seed checkpoint unreadable", NULL);
        if (g_seed_n[k] < HEADER + 8) die("seed checkpoint too short", NULL);
        if (g_seed_n[k] > g_cap) g_cap = g_seed_n[k];
        const char *sd = getenv("FUZZ_CHECKPOINT_SEEDS");
        if (sd) {
            char sp[4096];
            snprintf(sp, sizeof sp, "%s/seed-%d.bin", sd, k);
            FILE *f = fopen(sp, "wb");
            uint8_t b = (uint8_t)k;
            if (!f || fwrite(&b, 1, 1, f) != 1 || fwrite(g_seed[k], 1, HEADER, f) != HEADER) die("seed", NULL);
            fclose(f);
        }
    }
    g_cap += 4096;
    if (!(g_buf = malloc(g_cap))) die("out of memory", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_buf) init();
    if (size < 1) return 0;
    int k = data[0] % N_SEED, trunc = data[0] >> 4 & 1, keep_sum = data[0] >> 5 & 1;
    size_t body = size - 1, n = g_seed_n[k];
    if (trunc) n = body;
    if (n > g_cap) n = g_cap;
    memcpy(g_buf, g_seed[k], n < g_seed_n[k] ? n : g_seed_n[k]);
    if (n > g_seed_n[k]) memset(g_buf + g_seed_n[k], 0, n - g_seed_n[k]);
    memcpy(g_buf, data + 1, body < n ? body : n);
    if (!keep_sum && n >= HEADER + 8) { /* reseal: FNV-1a of everything before the last 8 bytes */
        uint64_t h = fuzz_fnv(0xcbf29ce484222325ULL, g_buf, n - 8);
        memcpy(g_buf + n - 8, &h, 8);
    }
    if (n >= OFF_INT + 8 * 10) { /* batch (field 9) and context (field 6): see the contract above */
        int64_t ctx, batch;
        memcpy(&ctx, g_buf + OFF_INT + 8 * 6, 8);
        memcpy(&batch, g_buf + OFF_INT + 8 * 9, 8);
        if (ctx > 64 || batch > 64) return 0;
    }
    FILE *f = fopen(g_path, "wb");
    if (!f || fwrite(g_buf, 1, n, f) != n) die("write", NULL);
    fclose(f);
    sk_trainer *t = NULL;
    uint64_t dh = 0;
    sk_error e = {0};
    if (sk_trainer_load(g_path, 1, &t, &dh, &e) != SK_OK) {
        if (!e.msg[0]) die("a refusal without a message", NULL);
        return 0;
    }
    if (sk_trainer_save(t, g_path2, dh, &e)) die("save", &e);
    size_t m;
    uint8_t *back = fuzz_slurp(g_path2, &m);
    if (!back) die("read back", NULL);
    if (m != n || memcmp(back, g_buf, n) != 0) die("a loaded checkpoint saves to other bytes", NULL);
    free(back);
    const sk_train_params *p = sk_trainer_params(t);
    size_t nt = (size_t)p->batch * (size_t)(p->n_ctx + 1);
    int32_t *tok = malloc(sizeof(int32_t) * nt);
    if (!tok) die("out of memory", NULL);
    for (size_t i = 0; i < nt; i++) tok[i] = (int32_t)((i * 5 + 1) % (size_t)p->n_vocab);
    sk_status st = sk_trainer_step(t, tok, NULL, &e);
    if (st != SK_OK && (st != SK_ERR_INVALID || !e.msg[0])) die("step: not OK nor a clear error", &e);
    free(tok);
    sk_trainer_free(t);
    return 0;
}
