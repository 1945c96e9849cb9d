/* arch.c - the family table (arch.h). */
#include "arch.h"

#include <stddef.h>

static const sk_arch g_arch[] = {
    /* name      neox qkn post escl act               swa ign fgu rope factors */
    {"llama",    0,   0,  0,   0,   SK_ACT_SILU,      0,  0,  0,  SK_ROPE_FACTORS_FREQS},
    {"qwen2",    1,   0,  0,   0,   SK_ACT_SILU,      0,  0,  0,  SK_ROPE_FACTORS_NONE},
    {"qwen3",    1,   1,  0,   0,   SK_ACT_SILU,      0,  0,  0,  SK_ROPE_FACTORS_NONE},
    {"gemma3",   1,   1,  1,   1,   SK_ACT_GELU_TANH, 6,  0,  0,  SK_ROPE_FACTORS_NONE},
    {"phi3",     1,   0,  0,   0,   SK_ACT_SILU,      0,  1,  1,  SK_ROPE_FACTORS_PHI3},
};

const sk_arch *sk_arch_find(gguf_str name) {
    for (size_t i = 0; i < sizeof g_arch / sizeof *g_arch; i++)
        if (gguf_str_eq(name, g_arch[i].name)) return &g_arch[i];
    return NULL;
}

const char *sk_arch_names(void) { return "llama, qwen2, qwen3, gemma3, phi3"; }
