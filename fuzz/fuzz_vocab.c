/* fuzz_vocab.c - see fuzz_vocab.h. */
#include "fuzz_vocab.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/gguf.h"
#include "text/unicode.h"
#include "runtime/vocab.h"

static sk_tokenizer *g_tok[FUZZ_N_VOCABS];

static const struct {
    const char *name, *env, *fallback;
} g_src[FUZZ_N_VOCABS] = {
    {"smollm2", "SINKLLM_MODEL", "models/SmolLM2-135M-Instruct.Q4_1.gguf"},
    {"gemma3", "SINKLLM_GEMMA_MODEL", "models/gemma-3-270m-Q4_K_M.gguf"},
};

const char *fuzz_vocab_name(int v) { return v >= 0 && v < FUZZ_N_VOCABS ? g_src[v].name : "?"; }

static void die(const char *path, const char *why) {
    fprintf(stderr, "fuzz: tokenizer %s: %s\n", path, why);
    exit(1);
}

const sk_tokenizer *fuzz_vocab(int v) {
    if (v < 0 || v >= FUZZ_N_VOCABS) abort();
    if (g_tok[v]) return g_tok[v];
    const char *path = getenv(g_src[v].env);
    if (!path || !*path) path = g_src[v].fallback;
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path, "cannot open (make models fetches it)");
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) die(path, "cannot stat or empty");
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) die(path, "cannot map");
    gguf_ctx *g = NULL;
    sk_error err = {0};
    if (gguf_parse(map, (uint64_t)sb.st_size, &g, &err) != SK_OK ||
        sk_tokenizer_from_gguf(g, &g_tok[v], &err) != SK_OK)
        die(path, err.msg);
    gguf_free(g);
    munmap(map, (size_t)sb.st_size);
    return g_tok[v];
}

int fuzz_utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int r = sk_utf8_check(s + i, n - i);
        if (r <= 0) return 0;
        i += (size_t)r;
    }
    return 1;
}
