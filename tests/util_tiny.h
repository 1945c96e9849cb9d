/* util_tiny.h - build small LLaMA GGUF files in memory for tests.
 *
 * The model has random F32 weights (deterministic for a seed) and a
 * byte-level vocabulary of single characters, no merges. Fields of
 * tiny_opts let a test corrupt one thing at a time. */
#ifndef SK_TEST_UTIL_TINY_H
#define SK_TEST_UTIL_TINY_H

#include <stddef.h>
#include <stdint.h>

typedef struct tiny_opts {
    int n_vocab;        /* tokens and embedding rows (default 64) */
    int n_embd;         /* 32 */
    int n_layer;        /* 2 */
    int n_head;         /* 4 */
    int n_head_kv;      /* 2 */
    int n_ff;           /* 48 */
    int64_t ctx_len;    /* 2048 */
    int weight_type;    /* 0 = F32 (default), or an sk_type with a quantizer */
    uint32_t seed;
    /* corruptions */
    int n_tokens_override;   /* >0: tokens array length differs from embedding rows */
    int n_types_override;    /* >0: token_type array length */
    int64_t bos_id;          /* default 1 */
    int64_t eos_id;          /* default 2 */
    int omit_head_count_kv;
    /* crafting (tests of the loader's refusals): all optional */
    const char *arch;        /* general.architecture and the key prefix (default "llama") */
    const char *omit_tensor; /* a tensor name left out */
    const char *extra_tensor;/* an extra F32 tensor of extra_ne0 x extra_ne1 elements */
    int64_t extra_ne0, extra_ne1;
    float extra_value;       /* every element of the extra tensor (0: random) */
    const char *extra_key;   /* an extra metadata key ("%s." is replaced by nothing: give
                                the full key), with a u32, f32 or string value: */
    int extra_type;          /* 4 = u32 (extra_u32), 6 = f32 (extra_f32), 8 = string */
    uint32_t extra_u32;
    float extra_f32;
    const char *extra_str;
    int attn_sinks;          /* 1: a blk.N.attn_sinks.weight per layer, random logits in
                                [-2, 2]; 2: every one -inf. Last in the file: the other
                                weights are those of the model without them */
} tiny_opts;

void tiny_defaults(tiny_opts *o);

/* Serialize a tiny model; *buf is malloc'ed, caller frees. */
void tiny_build(const tiny_opts *o, uint8_t **buf, size_t *size);

#endif
