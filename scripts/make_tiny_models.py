#!/usr/bin/env python3
"""make_tiny_models.py - one tiny GGUF per model family, for tests/test_families.c.

    python scripts/make_tiny_models.py --out DIR [--smollm PATH] [--gemma PATH]

Writes DIR/<family>.gguf for llama2, llama3, qwen2, qwen3, gemma3, phi3 and
phi3long (Phi-3 whose original context is below the tests' n_ctx):
seeded random weights (numpy's default_rng, one fixed seed per family), the
tensors, metadata keys and weight types that real files of that family carry,
and a vocabulary cut from a real one:
  - SentencePiece (llama2, gemma3, phi3): the first N tokens of the Gemma 3
    vocabulary (--gemma, models/gemma-3-270m-Q4_K_M.gguf), which holds the
    control tokens, the user-defined ones (newline and space runs, HTML tags)
    and the 256 <0xXX> byte tokens below id 494, then pieces by falling score;
  - GPT-2 BPE (llama3, qwen2, qwen3): the first N tokens of the SmolLM2
    vocabulary (--smollm, models/SmolLM2-135M-Instruct.Q4_1.gguf), which are
    its control tokens, its byte alphabet and the results of its first
    merges, in rank order; a merge is kept only when both parts and the
    result are in the cut vocabulary.
Some families get a few control tokens of their real vocabulary appended
(llama3's <|begin_of_text|>..., phi3's <|user|>...).

Deterministic: the same inputs and the same gguf package (pinned in
scripts/requirements-test.txt) give the same bytes; tests/golden/tiny/
records the sha256 of each file, so a changed generator is
told apart from an engine bug. K-quants (Q4_K, Q6_K) are quantized here in
numpy (the gguf package only dequantizes them); any valid block encoding
serves, since both engines dequantize the same bytes. The round trip of
every quantized tensor is checked against gguf's dequantizer.

Weights are scaled so that the logits are spread (std ~3-5) and the final
hidden state is dominated by the blocks, not by the input embedding (a tied
random model otherwise repeats its input token). docs/tiny-models.md lists
what each family exercises."""

import argparse
import hashlib
import math
import os
import struct
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import TokenType

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

QK_K = 256

# ---------------------------------------------------------------- K-quants


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def _round(x):
    """Round half away from zero (deterministic, no banker's rounding)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_q4_k(x):
    """x: float32 (n, 256k) -> uint8 rows of block_q4_K (144 bytes / 256).

    Block: d (f16), dmin (f16), scales[12] (8 six-bit scales and mins),
    qs[128]. Sub-block j (32 values): y = d*sc[j]*q - dmin*m[j], q in 0..15.
    qs chunk c (32 bytes) holds sub-block 2c in the low nibbles and 2c+1 in
    the high ones. scales: bytes 0-3 sc[0..3] | sc[4..7]>>4 << 6, bytes 4-7
    m[0..3] | m[4..7]>>4 << 6, bytes 8-11 sc[4..7]&15 | (m[4..7]&15) << 4."""
    rows, cols = x.shape
    nb = rows * cols // QK_K
    xb = x.reshape(nb, 8, 32).astype(np.float32)
    mn = np.minimum(xb.min(-1), 0.0)
    mx = xb.max(-1)
    scale = (mx - mn) / 15.0
    mins = -mn
    d = _f16(scale.max(-1) / 63.0)
    dmin = _f16(mins.max(-1) / 63.0)
    df = d.astype(np.float32)[:, None]
    dmf = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df > 0, _round(scale / df), 0).clip(0, 63).astype(np.uint8)
        m = np.where(dmf > 0, _round(mins / dmf), 0).clip(0, 63).astype(np.uint8)
        es = (df * sc)[:, :, None]
        em = (dmf * m)[:, :, None]
        q = np.where(es > 0, _round((xb + em) / es), 0).clip(0, 15).astype(np.uint8)
    scales = np.zeros((nb, 12), dtype=np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(nb, 128)
    out = np.concatenate([d.view(np.uint8).reshape(nb, 2), dmin.view(np.uint8).reshape(nb, 2),
                          scales, qs], axis=1)
    return out.reshape(rows, cols // QK_K * 144)


def quantize_q6_k(x):
    """x: float32 (n, 256k) -> uint8 rows of block_q6_K (210 bytes / 256).

    Block: ql[128], qh[64], scales[16] (int8), d (f16). Value e = 128h +
    32i + l (h half, i 0..3, l 0..31): q = ql[64h + 32(i&1) + l] >> 4(i>>1)
    & 15 | (qh[32h + l] >> 2i & 3) << 4, y = d * scales[e/16] * (q - 32)."""
    rows, cols = x.shape
    nb = rows * cols // QK_K
    xb = x.reshape(nb, 16, 16).astype(np.float32)
    scale = np.abs(xb).max(-1) / 31.0
    d = _f16(scale.max(-1) / 127.0)
    df = d.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df > 0, _round(scale / df), 0).clip(-128, 127).astype(np.int8)
        es = (df * sc.astype(np.float32))[:, :, None]
        q = np.where(es != 0, _round(xb / es), 0).clip(-32, 31)
    q = (q + 32).astype(np.uint8).reshape(nb, 2, 4, 32)  # (block, h, i, l)
    ql = np.zeros((nb, 2, 2, 32), dtype=np.uint8)  # (block, h, k, l)
    for i in range(4):
        ql[:, :, i & 1, :] |= (q[:, :, i, :] & 15) << (4 * (i >> 1))
    qh = np.zeros((nb, 2, 32), dtype=np.uint8)
    for i in range(4):
        qh |= ((q[:, :, i, :] >> 4) & 3) << (2 * i)
    out = np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8),
                          d.view(np.uint8).reshape(nb, 2)], axis=1)
    return out.reshape(rows, cols // QK_K * 210)


# relative rms error of a correct round trip on Gaussian data (measured:
# Q4_0 0.086, Q4_1 0.078, Q4_K 0.079, Q5_0 0.043, Q6_K 0.019, Q8_0 0.0054);
# a wrong bit layout gives ~1.4
RT_LIMIT = {T.Q4_0: 0.15, T.Q4_1: 0.15, T.Q4_K: 0.15, T.Q5_0: 0.08, T.Q6_K: 0.05,
            T.Q8_0: 0.01}


def quantize(x, qtype):
    """float32 matrix -> the array gguf.GGUFWriter.add_tensor takes."""
    if qtype == T.F32:
        return x.astype(np.float32)
    if qtype == T.F16:
        return x.astype(np.float16)
    if qtype == T.Q4_K:
        q = quantize_q4_k(x)
    elif qtype == T.Q6_K:
        q = quantize_q6_k(x)
    else:
        q = gguf.quants.quantize(x, qtype)
    # round trip: a broken packer would make the file test nothing
    back = gguf.quants.dequantize(q, qtype).reshape(x.shape)
    rel = float(np.sqrt(np.mean((back - x) ** 2) / np.mean(x ** 2)))
    if os.environ.get("TINY_DEBUG"):
        print(f"  {qtype.name} {x.shape}: rel rms {rel:.4f}")
    if not rel <= RT_LIMIT[qtype]:
        sys.exit(f"{qtype.name}: relative rms round-trip error {rel:.4f} > {RT_LIMIT[qtype]}")
    return q


# -------------------------------------------------------------- vocabularies


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


def read_kv(path, keys):
    """The values of some metadata keys of a GGUF file (v2/v3), read with
    struct: gguf.GGUFReader builds every field as numpy views, which takes
    half a minute on a 262,144-token vocabulary. Arrays of strings come back
    as lists of bytes, numeric arrays as numpy arrays."""
    out = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            sys.exit(f"{path}: not a GGUF file")
        version, _n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            sys.exit(f"{path}: GGUF version {version} not supported")

        def rstr():
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n)

        def rval(t):
            if t == 8:
                return rstr()
            if t == 9:
                et, n = struct.unpack("<IQ", f.read(12))
                if et == 8:
                    return [rstr() for _ in range(n)]
                if et == 9:
                    return [rval(9) for _ in range(n)]
                fmt = _SCALAR[et]
                return np.frombuffer(f.read(n * struct.calcsize(fmt)), dtype=fmt)
            fmt = _SCALAR[t]
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        for _ in range(n_kv):
            k = rstr().decode()
            (t,) = struct.unpack("<I", f.read(4))
            v = rval(t)
            if k in keys:
                out[k] = v
    missing = [k for k in keys if k not in out]
    if missing:
        sys.exit(f"{path}: no {', '.join(missing)}")
    return out


def spm_vocab(gemma_path, n):
    """First n tokens of the Gemma 3 vocabulary: (tokens, scores, types)."""
    kv = read_kv(gemma_path, ["tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                              "tokenizer.ggml.token_type"])
    toks = kv["tokenizer.ggml.tokens"][:n]
    scores = [float(x) for x in kv["tokenizer.ggml.scores"][:n]]
    types = [int(x) for x in kv["tokenizer.ggml.token_type"][:n]]
    if sum(t == TokenType.BYTE for t in types) != 256:
        sys.exit(f"{gemma_path}: the first {n} tokens lack some of the 256 byte tokens")
    return toks, scores, types


def bpe_vocab(smollm_path, n):
    """First n tokens of the SmolLM2 vocabulary and the merges among them."""
    kv = read_kv(smollm_path, ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                               "tokenizer.ggml.merges"])
    toks = kv["tokenizer.ggml.tokens"][:n]
    types = [int(x) for x in kv["tokenizer.ggml.token_type"][:n]]
    have = set(toks)
    merges = []
    for m in kv["tokenizer.ggml.merges"]:
        a, b = m.split(b" ", 1)
        if a in have and b in have and a + b in have:
            merges.append(m)
    return toks, types, merges


# ------------------------------------------------------------------ families
#
# types: per tensor kind, the ggml type. Shapes follow llama.cpp's
# src/models/<arch>.cpp. n_embd and n_ff are multiples of 256 (K-quant rows).

FAMILIES = {
    # Llama 2: SPM vocabulary with a space prefix, MHA, untied output,
    # TheBloke-style Q4_0 with a Q6_K output.
    "llama2": dict(
        arch="llama", seed=1002, vocab="spm", n_vocab=8192, add_space_prefix=True,
        add_bos=True, bos="<bos>", eos="<eos>",
        n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=4, head_dim=64,
        rope_base=10000.0, eps=1e-5, ctx=4096, rope_dim=True, tied=False,
        file_type=2,
        types=dict(token_embd=T.Q4_0, output=T.Q6_K, attn_q=T.Q4_0, attn_k=T.Q4_0,
                   attn_v=T.Q4_0, attn_output=T.Q4_0, ffn_gate=T.Q4_0, ffn_up=T.Q4_0,
                   ffn_down=T.Q4_0)),
    # Llama 3.x: GPT-2 BPE with pre "llama-bpe", GQA, rope_freqs.weight
    # (Llama 3.1's frequency factors: factor 8, low 1, high 4, but for an
    # original context of 64 instead of 8192, so that they act at the
    # tests' positions), base 500000, tied embeddings (3.2 1B/3B),
    # Q4_K_M-style types.
    "llama3": dict(
        arch="llama", seed=1003, vocab="bpe", n_vocab=12288, pre="llama-bpe",
        extra=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
               "<|end_header_id|>", "<|eot_id|>"],
        add_bos=True, bos="<|begin_of_text|>", eos="<|eot_id|>",
        n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, head_dim=64,
        rope_base=500000.0, eps=1e-5, ctx=131072, rope_dim=True, tied=True,
        rope_freqs=dict(factor=8.0, low=1.0, high=4.0, orig_ctx=64), file_type=15,
        types=dict(token_embd=T.Q6_K, attn_q=T.Q4_K, attn_k=T.Q4_K, attn_v=T.Q6_K,
                   attn_output=T.Q4_K, ffn_gate=T.Q4_K, ffn_up=T.Q4_K, ffn_down=T.Q6_K)),
    # Qwen2/2.5: BPE with pre "qwen2", Q/K/V biases, GQA, NEOX rope, untied
    # output, the Q5_0/Q8_0 mix of Qwen2.5 Q4_K_M files.
    "qwen2": dict(
        arch="qwen2", seed=1004, vocab="bpe", n_vocab=8192, pre="qwen2",
        add_bos=False, bos="<|endoftext|>", eos="<|im_end|>",
        n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, head_dim=64,
        rope_base=1000000.0, eps=1e-6, ctx=32768, rope_dim=False, tied=False, qkv_bias=True,
        file_type=7,
        types=dict(token_embd=T.Q8_0, output=T.Q8_0, attn_q=T.Q5_0, attn_k=T.Q5_0,
                   attn_v=T.Q8_0, attn_output=T.Q5_0, ffn_gate=T.Q5_0, ffn_up=T.Q5_0,
                   ffn_down=T.Q8_0)),
    # Qwen3: per-head Q/K RMSNorm, key_length 128 != n_embd / n_head (as
    # Qwen3-0.6B: 1024 / 16 heads, head_dim 128), tied F16 embeddings, Q8_0.
    "qwen3": dict(
        arch="qwen3", seed=1005, vocab="bpe", n_vocab=8192, pre="qwen2",
        add_bos=False, bos="<|endoftext|>", eos="<|im_end|>",
        n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, head_dim=128,
        key_length=True, rope_base=1000000.0, eps=1e-6, ctx=40960, rope_dim=False, tied=True,
        qk_norm=True, file_type=7,
        types=dict(token_embd=T.F16, attn_q=T.Q8_0, attn_k=T.Q8_0, attn_v=T.Q8_0,
                   attn_output=T.Q8_0, ffn_gate=T.Q8_0, ffn_up=T.Q8_0, ffn_down=T.Q8_0)),
    # Gemma 3: SPM without space prefix, head_dim 128 != n_embd / n_head,
    # 7 layers with sliding window 8 (layer 5 global, the rest local: the
    # pattern of 6 and its restart; the real 270M: window 512, 18 layers,
    # no rope.freq_base_swa, so 10000 locally), Q/K norms, post-attention and
    # post-FFN norms, GELU, embedding scale, tied embeddings, the types of
    # the real 270M Q4_K_M file.
    "gemma3": dict(
        arch="gemma3", seed=1006, vocab="spm", n_vocab=16384, add_space_prefix=False,
        add_bos=True, bos="<bos>", eos="<eos>",
        n_embd=256, n_ff=512, n_layer=7, n_head=4, n_head_kv=1, head_dim=128,
        key_length=True, rope_base=1000000.0, eps=1e-6, ctx=32768, rope_dim=False, tied=True,
        qk_norm=True, post_norms=True, sliding_window=8, embd_scale=True, file_type=15,
        types=dict(token_embd=T.Q8_0, attn_q=T.Q5_0, attn_k=T.Q5_0, attn_v=T.Q8_0,
                   attn_output=T.Q4_K, ffn_gate=T.Q5_0, ffn_up=T.Q5_0, ffn_down=T.Q6_K)),
    # Phi-3: SPM (add_space_prefix absent: llama.cpp's default, true), fused
    # attn_qkv and gate/up, MHA, NEOX rope with rope_factors_long/short and
    # rope.scaling.attn_factor as Phi-3-128k files carry them (original
    # context 4096, trained 32768 here, 131072 there). llama.cpp uses the
    # long factors only when its context exceeds the original length
    # (n_ctx_seq > original_context_length); at the tests' n_ctx 2048 the
    # short ones. attention.sliding_window 262144 as in Phi-3-128k (llama.cpp
    # disables SWA for phi3).
    "phi3": dict(
        arch="phi3", seed=1007, vocab="spm", n_vocab=8192, add_space_prefix=None,
        extra=["<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"],
        add_bos=False, bos="<bos>", eos="<|end|>",
        n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=4, head_dim=64,
        rope_base=10000.0, eps=1e-5, ctx=32768, rope_dim=True, tied=False, fused=True,
        phi3_rope=dict(orig_ctx=4096), sliding_window_phi3=262144, file_type=15,
        types=dict(token_embd=T.Q4_1, output=T.Q6_K, attn_qkv=T.F16, attn_output=T.Q4_1,
                   ffn_up=T.Q4_1, ffn_down=T.Q4_K)),
}
# Phi-3 with a context beyond the original one: llama.cpp takes the long
# factors (and the tests' n_ctx 2048 > 1024); only the factors differ
FAMILIES["phi3long"] = dict(FAMILIES["phi3"], phi3_rope=dict(orig_ctx=1024))


def llama3_rope_factors(head_dim, base, factor, low, high, orig_ctx):
    """Llama 3.1's frequency factors (rope_freqs.weight), for orig_ctx."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen = orig_ctx / low
    high_wavelen = orig_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (orig_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


class Gen:
    """Seeded weights of a given standard deviation."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def norm(self, n, mean=1.0, std=0.1):
        return (mean + self.rng.standard_normal(n) * std).astype(np.float32)


def build(name, cfg, out_dir, smollm, gemma):
    g = Gen(cfg["seed"])
    ab = cfg.get("ablate", ())  # make_tiny_golden.py --sensitivity: features removed
    path = os.path.join(out_dir, f"{name}.gguf")
    arch = cfg["arch"]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"sinkllm tiny {name}")
    w.add_type("model")

    # ---- vocabulary
    if cfg["vocab"] == "spm":
        toks, scores, types = spm_vocab(gemma, cfg["n_vocab"])
        for t in cfg.get("extra", []):
            toks.append(t.encode())
            scores.append(-1000.0)
            types.append(TokenType.CONTROL)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(toks)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_unk_token_id(toks.index(b"<unk>"))
        w.add_pad_token_id(toks.index(b"<pad>"))
        if cfg["add_space_prefix"] is not None:
            w.add_add_space_prefix(cfg["add_space_prefix"])
    else:
        toks, types, merges = bpe_vocab(smollm, cfg["n_vocab"])
        for t in cfg.get("extra", []):
            toks.append(t.encode())
            types.append(TokenType.CONTROL)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(cfg["pre"])
        w.add_token_list(toks)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_pad_token_id(toks.index(b"<|endoftext|>"))
    w.add_bos_token_id(toks.index(cfg["bos"].encode()))
    w.add_eos_token_id(toks.index(cfg["eos"].encode()))
    w.add_add_bos_token(cfg["add_bos"])
    w.add_add_eos_token(False)
    n_vocab = len(toks)

    # ---- hyper-parameters
    E, F, L = cfg["n_embd"], cfg["n_ff"], cfg["n_layer"]
    H, HK, D = cfg["n_head"], cfg["n_head_kv"], cfg["head_dim"]
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HK)
    w.add_layer_norm_rms_eps(cfg["eps"])
    w.add_rope_freq_base(cfg["rope_base"])
    if cfg.get("key_length"):
        w.add_key_length(D)
        w.add_value_length(D)
    else:
        assert D * H == E
    if cfg.get("rope_dim"):
        w.add_rope_dimension_count(D)
    if cfg.get("sliding_window"):
        w.add_sliding_window(cfg["sliding_window"])
    if cfg.get("rope_base_swa"):  # absent in real Gemma 3 files: 10000
        w.add_rope_freq_base_swa(cfg["rope_base_swa"])
    if cfg.get("sliding_window_phi3"):
        w.add_sliding_window(cfg["sliding_window_phi3"])
    pr = cfg.get("phi3_rope")
    if pr:
        scale = cfg["ctx"] / pr["orig_ctx"]
        w.add_rope_scaling_orig_ctx_len(pr["orig_ctx"])
        if "attn_factor" not in ab:
            w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(pr["orig_ctx"])))
    w.add_file_type(cfg["file_type"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    ty = cfg["types"]

    def put(tname, kind, x):
        qt = ty.get(kind, T.F32)
        q = quantize(x, qt)
        if qt in (T.F32, T.F16):
            w.add_tensor(tname, q)
        else:
            w.add_tensor(tname, q, raw_dtype=qt)

    # ---- scales. Inputs to every matmul are RMS-normalized (unit rms), so
    # a weight of std s/sqrt(n_in) gives outputs of std ~s.
    s_in = 1.0 / math.sqrt(E)
    embd_std = 1.0 / math.sqrt(E) if cfg.get("embd_scale") else 1.0
    # token embeddings; gemma3 multiplies them by sqrt(n_embd)
    put("token_embd.weight", "token_embd", g.normal((n_vocab, E), embd_std))
    # spread of the logits (std ~4): |normed h| = sqrt(E), so output rows
    # of std 4/sqrt(E) give std 4; tied rows have std embd_std instead
    # of std 4/sqrt(E) give std 4; tied rows have std embd_std instead, and
    # a gain of mean 0 (random signs): with a positive gain the input
    # token's own embedding, still in the residual, wins (h . e_t ~ |e_t|^2)
    # and a random tied model echoes its input
    if cfg["tied"]:
        out_gain = 4.0 / (math.sqrt(E) * embd_std)
        put("output_norm.weight", "norm", g.normal(E, out_gain))
    else:
        put("output_norm.weight", "norm", g.norm(E, 1.0, 0.1))
    if not cfg["tied"]:
        put("output.weight", "output", g.normal((n_vocab, E), 4.0 * s_in))
    if cfg.get("rope_freqs"):
        rf = cfg["rope_freqs"]
        put("rope_freqs.weight", "rope", llama3_rope_factors(D, cfg["rope_base"], rf["factor"],
                                                             rf["low"], rf["high"], rf["orig_ctx"]))
    if pr and "rope_factors" not in ab:
        half = D // 2
        # growing from 1 on the fast pairs to 32 (long) and 2.5 (short) on
        # the slow ones (Phi-3-mini-128k: up to ~60 and ~3)
        long_f = np.geomspace(1.0, 32.0, half).astype(np.float32)
        short_f = np.geomspace(1.0, 2.5, half).astype(np.float32)
        put("rope_factors_long.weight", "rope", long_f)
        put("rope_factors_short.weight", "rope", short_f)

    # block outputs: the residual grows to a few units per block, so the
    # last hidden state is mostly block output, not the input embedding
    res_scale = 1.5 if not cfg.get("embd_scale") else 1.0
    for i in range(L):
        p = f"blk.{i}."
        put(p + "attn_norm.weight", "norm", g.norm(E))
        wq = g.normal((H * D, E), 1.2 * s_in)
        wk = g.normal((HK * D, E), 1.2 * s_in)
        wv = g.normal((HK * D, E), 1.0 * s_in)
        if cfg.get("fused"):
            put(p + "attn_qkv.weight", "attn_qkv", np.concatenate([wq, wk, wv], axis=0))
        else:
            put(p + "attn_q.weight", "attn_q", wq)
            put(p + "attn_k.weight", "attn_k", wk)
            put(p + "attn_v.weight", "attn_v", wv)
        if cfg.get("qkv_bias"):
            put(p + "attn_q.bias", "bias", g.normal(H * D, 0.5))
            put(p + "attn_k.bias", "bias", g.normal(HK * D, 0.5))
            put(p + "attn_v.bias", "bias", g.normal(HK * D, 0.3))
        if cfg.get("qk_norm"):
            qn, kn = g.norm(D, 1.0, 0.2), g.norm(D, 1.0, 0.2)
            if "qk_norm_weights" in ab:
                qn, kn = np.ones(D, np.float32), np.ones(D, np.float32)
            put(p + "attn_q_norm.weight", "norm", qn)
            put(p + "attn_k_norm.weight", "norm", kn)
        put(p + "attn_output.weight", "attn_output",
            g.normal((E, H * D), res_scale / math.sqrt(H * D)))
        if cfg.get("post_norms"):
            put(p + "post_attention_norm.weight", "norm", g.norm(E))
        put(p + "ffn_norm.weight", "norm", g.norm(E))
        gate = g.normal((F, E), 1.5 * s_in)
        up = g.normal((F, E), 1.5 * s_in)
        if cfg.get("fused"):
            put(p + "ffn_up.weight", "ffn_up", np.concatenate([gate, up], axis=0))
        else:
            put(p + "ffn_gate.weight", "ffn_gate", gate)
            put(p + "ffn_up.weight", "ffn_up", up)
        put(p + "ffn_down.weight", "ffn_down", g.normal((E, F), 2.0 * res_scale / math.sqrt(F)))
        if cfg.get("post_norms"):
            put(p + "post_ffw_norm.weight", "norm", g.norm(E))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smollm", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--gemma", default=os.path.join(ROOT, "models", "gemma-3-270m-Q4_K_M.gguf"))
    ap.add_argument("--family", action="append", help="only these (default: all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, cfg in FAMILIES.items():
        if a.family and name not in a.family:
            continue
        src = a.gemma if cfg["vocab"] == "spm" else a.smollm
        if not os.path.exists(src):
            sys.exit(f"make_tiny_models.py: {name} needs the vocabulary of {src} (missing)")
        tmp = build(name, cfg, a.out, a.smollm, a.gemma)
        print(f"{tmp}: {os.path.getsize(tmp)} bytes, sha256 {sha256(tmp)}")


if __name__ == "__main__":
    main()
