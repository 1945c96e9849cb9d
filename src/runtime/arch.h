/* arch.h - the model families sinkllm computes, as one table of switches.
 *
 * Every family runs the same forward pass (context.c); a row of this table
 * says which of its optional steps apply. Per layer l, with x the residual
 * stream (n_embd) and rms(v, w) = v / sqrt(mean(v^2) + eps) * w:
 *
 *   h  = rms(x, attn_norm)
 *   q, k, v = Wq h (+ bq), Wk h (+ bk), Wv h (+ bv)   (or one attn_qkv matrix)
 *   q, k  = rms per head (q_norm, k_norm)             [qk_norm]
 *   q, k  = RoPE (pairs (2i, 2i+1), or (i, i + n/2)   [rope_neox]),
 *           frequencies base^(-2i/n) / factor_i        [rope_factors]
 *   a  = Wo attention(q, k, v) (+ bo)          (biases: optional, any family)
 *   a  = rms(a, post_attention_norm)                   [post_norms]
 *   x += a
 *   h  = rms(x, ffn_norm)
 *   f  = Wdown (act(Wgate h) * Wup h)                  [act: SiLU or GELU-tanh;
 *                                                       fused_gate_up: one matrix]
 *   f  = rms(f, post_ffw_norm)                         [post_norms]
 *   x += f
 * then logits = Wout rms(x, output_norm) (cap * tanh(logits / cap) with
 * final_logit_softcapping), embeddings scaled by sqrt(n_embd) [embd_scale].
 * With sliding-window layers [swa] every swa_pattern-th layer is global and
 * the others attend to the last sliding_window tokens only, with their own
 * RoPE base (rope.freq_base_swa, 10000 by default).
 *
 * The table follows what llama.cpp computes for each general.architecture
 * (its src/models/<arch>.cpp); tests/test_families.c checks each row
 * against llama.cpp on a generated model. */
#ifndef SK_ARCH_H
#define SK_ARCH_H

#include "gguf.h"

typedef enum sk_act { SK_ACT_SILU = 0, SK_ACT_GELU_TANH = 1 } sk_act;

enum sk_rope_factors {
    SK_ROPE_FACTORS_NONE = 0,
    SK_ROPE_FACTORS_FREQS = 1,  /* rope_freqs.weight (Llama 3.1+), optional */
    SK_ROPE_FACTORS_PHI3 = 2,   /* rope_factors_short/long.weight, optional */
};

typedef struct sk_arch {
    const char *name;      /* general.architecture */
    int rope_neox;         /* 1: rotate (i, i + n_rot/2); 0: (2i, 2i+1) */
    int qk_norm;           /* per-head RMSNorm of Q and K (required tensors) */
    int post_norms;        /* post_attention_norm and post_ffw_norm (required) */
    int embd_scale;        /* embeddings times sqrt(n_embd) */
    sk_act act;            /* activation of the gated FFN */
    int swa_pattern;       /* > 0: sliding-window layers when sliding_window is set;
                              every swa_pattern-th layer is global */
    int swa_ignored;       /* sliding_window is read and not applied (as llama.cpp) */
    int fused_gate_up;     /* ffn_up.weight holds gate then up (2 n_ff rows) */
    int rope_factors;      /* enum sk_rope_factors */
} sk_arch;

/* The row for an architecture name, NULL when we do not compute it. */
const sk_arch *sk_arch_find(gguf_str name);

/* The names of every row, comma-separated (for error messages). */
const char *sk_arch_names(void);

#endif
