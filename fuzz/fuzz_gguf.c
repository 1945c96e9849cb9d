/* fuzz_gguf.c - libFuzzer entry point for the GGUF reader.
 *
 * Not part of the main build: `make fuzz` builds the library with clang
 * and the sanitizers into build-fuzz/ (each SIMD file with its own ISA
 * flags, as the main build) and runs this harness on fuzz/corpus/gguf for
 * FUZZ_SECONDS (30); by hand:
 *   make CC=clang BUILD=build-fuzz SANITIZER=fuzzer-no-link,address,undefined build-fuzz/libsinkllm.a
 *   make build-fuzz/fuzz_gguf
 *   ./build-fuzz/fuzz_gguf build-fuzz/corpus/gguf fuzz/corpus/gguf
 * `make test` replays fuzz/corpus/gguf through it (fuzz/replay.c).
 * The seeds are the valid files of tests/test_gguf.c
 * (GGUF_WRITE_CORPUS=fuzz/corpus/gguf ./build/tests/test_gguf). On success it also
 * walks every kv, array and tensor so that the sanitizers see each pointer
 * the parser hands out. */
#include <stddef.h>
#include <stdint.h>

#include "runtime/gguf.h"

static unsigned touch_arr(const gguf_arr *a) {
    unsigned acc = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == GGUF_TYPE_STRING) {
            if (a->strs[i].len) acc += (unsigned char)a->strs[i].ptr[a->strs[i].len - 1];
        } else if (a->type == GGUF_TYPE_ARRAY) {
            acc += touch_arr(&a->arrs[i]);
        } else {
            acc += (unsigned)gguf_arr_i64(a, i);
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: parse; on success read back everything; always free. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *ctx = NULL;
    sk_error err;
    volatile unsigned acc = 0;
    if (gguf_parse(data, size, &ctx, &err) != SK_OK) return 0;
    for (uint64_t i = 0; i < ctx->n_kv; i++) {
        const gguf_kv *kv = &ctx->kv[i];
        if (kv->key.len) acc += (unsigned char)kv->key.ptr[kv->key.len - 1];
        if (kv->type == GGUF_TYPE_ARRAY) acc += touch_arr(&kv->v.a);
    }
    for (uint64_t i = 0; i < ctx->n_tensors; i++) {
        const gguf_tensor *t = &ctx->tensors[i];
        acc += ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    (void)acc;
    gguf_free(ctx);
    return 0;
}
