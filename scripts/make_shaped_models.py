#!/usr/bin/env python3
"""make_shaped_models.py - Llama-3.2-1B- and 3B-shaped GGUFs with seeded
random weights, for speed comparisons on models larger than SmolLM2
(issue 16 point 4: bench/tiers.sh MODEL=...). Not for quality: the weights
are noise, only the shapes and the arithmetic are real.

    .venv/bin/python scripts/make_shaped_models.py --shape 1b --smollm models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out build/shaped

Writes OUT/llama32-SHAPE-F16.gguf: general.architecture llama, the
hyper-parameters of Llama 3.2 1B (2048 wide, 16 layers, 32 heads, 8 KV
heads, feed-forward 8192) or 3B (3072, 28, 24, 8, 8192), tied embeddings,
RoPE base 500,000 with Llama 3's frequency factors (rope_freqs.weight,
factor 32, low 1, high 4, original context 8192), and a vocabulary of
Llama 3's size (128,256): SmolLM2's 49,152 BPE tokens and merges, then
79,104 unused control tokens. Quantize it with llama.cpp's own tool
(`make shaped` does: Q4_1, Q4_0, Q8_0, Q4_K_M). Deterministic: the same
seed writes the same bytes. About 2.5 GB (1B) and 6.4 GB (3B) of F16, and
as much memory while writing."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as T, TokenType  # noqa: E402
from make_tiny_models import Gen, bpe_vocab, llama3_rope_factors  # noqa: E402

SHAPES = {
    "1b": dict(n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192, seed=1001),
    "3b": dict(n_embd=3072, n_layer=28, n_head=24, n_head_kv=8, n_ff=8192, seed=3003),
}
N_VOCAB = 128256
ROPE_BASE = 500000.0


def build(shape, smollm, out_dir):
    cfg = SHAPES[shape]
    g = Gen(cfg["seed"])
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"llama32-{shape}-F16.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"sinkllm llama32-{shape}-shaped (random weights)")
    w.add_type("model")
    toks, types, merges = bpe_vocab(smollm, 49152)
    for k in range(N_VOCAB - len(toks)):
        toks.append(f"<|reserved_special_token_{k}|>".encode())
        types.append(TokenType.CONTROL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(toks.index(b"<|im_start|>"))
    w.add_eos_token_id(toks.index(b"<|im_end|>"))
    w.add_pad_token_id(toks.index(b"<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    E, L, H, HK, F = cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"]
    D = E // H
    w.add_context_length(131072)
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HK)
    w.add_rope_dimension_count(D)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    def f16(x):
        return x.astype(np.float16)

    s_in = 1.0 / np.sqrt(E)
    # tied embeddings: std 1/sqrt(E) rows, an output norm of random sign
    # (see make_tiny_models.py: a positive gain makes a tied model echo)
    w.add_tensor("token_embd.weight", f16(g.normal((N_VOCAB, E), s_in)))
    w.add_tensor("output_norm.weight", g.normal(E, 4.0))
    w.add_tensor("rope_freqs.weight", llama3_rope_factors(D, ROPE_BASE, 32.0, 1.0, 4.0, 8192))
    for i in range(L):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", g.norm(E))
        w.add_tensor(p + "attn_q.weight", f16(g.normal((H * D, E), s_in)))
        w.add_tensor(p + "attn_k.weight", f16(g.normal((HK * D, E), s_in)))
        w.add_tensor(p + "attn_v.weight", f16(g.normal((HK * D, E), s_in)))
        w.add_tensor(p + "attn_output.weight", f16(g.normal((E, H * D), 1.0 / np.sqrt(H * D) / np.sqrt(2 * L))))
        w.add_tensor(p + "ffn_norm.weight", g.norm(E))
        w.add_tensor(p + "ffn_gate.weight", f16(g.normal((F, E), s_in)))
        w.add_tensor(p + "ffn_up.weight", f16(g.normal((F, E), s_in)))
        w.add_tensor(p + "ffn_down.weight", f16(g.normal((E, F), 1.0 / np.sqrt(F) / np.sqrt(2 * L))))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--smollm", required=True, help="SmolLM2 GGUF (its vocabulary)")
    ap.add_argument("--out", default="build/shaped")
    a = ap.parse_args()
    print(build(a.shape, a.smollm, a.out))


if __name__ == "__main__":
    main()
