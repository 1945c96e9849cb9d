#!/usr/bin/env python3
"""make_f64_golden.py - reference logits from a float64 forward pass.

An independent oracle for the arithmetic of the forward pass: the GGUF's
weights are dequantized by the `gguf` package (not by sinkllm), and a plain
numpy LLaMA forward pass in float64 (dense causal attention, RoPE in the
interleaved "normal" layout) computes the logits after each short prompt of
tests/golden/logits.json. sinkllm's precise mode (F32 weights, no activation
quantization, F32 KV cache) must match these within 2e-4 (tests/test_precise.c).

usage: make_f64_golden.py --model MODEL.gguf --golden tests/golden
"""
import argparse
import json

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def load(path):
    r = GGUFReader(path)
    kv = {}
    for k, f in r.fields.items():
        try:
            kv[k] = f.contents()
        except Exception:
            pass
    W = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = [int(x) for x in reversed(t.shape)]
        W[t.name] = a.reshape(shape) if len(shape) > 1 else a.reshape(-1)
    return kv, W


def forward(kv, W, ids):
    arch = kv["general.architecture"]
    L = kv[f"{arch}.block_count"]
    d = kv[f"{arch}.embedding_length"]
    nh = kv[f"{arch}.attention.head_count"]
    nkv = kv.get(f"{arch}.attention.head_count_kv", nh)
    eps = kv[f"{arch}.attention.layer_norm_rms_epsilon"]
    base = kv.get(f"{arch}.rope.freq_base", 10000.0)
    hd = d // nh
    nrot = kv.get(f"{arch}.rope.dimension_count", hd)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x):
        i = np.arange(nrot // 2)
        a = pos[:, None] * base ** (-2.0 * i / nrot)[None, :]
        c, s = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
        y = x.copy()
        x0, x1 = x[..., 0:nrot:2], x[..., 1:nrot:2]
        y[..., 0:nrot:2] = x0 * c - x1 * s
        y[..., 1:nrot:2] = x0 * s + x1 * c
        return y

    x = W["token_embd.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(T, nh, hd))
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(T, nkv, hd))
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, nkv, hd)
        out = np.zeros((T, nh, hd))
        for hh in range(nh):
            g = hh // (nh // nkv)
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(1, keepdims=True))
            s /= s.sum(1, keepdims=True)
            out[:, hh, :] = s @ v[:, g, :]
        x = x + out.reshape(T, d) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        g_ = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (g_ / (1 + np.exp(-g_)) * u) @ W[p + "ffn_down.weight"].T
    out_w = W.get("output.weight", W["token_embd.weight"])
    return rms(x[-1], W["output_norm.weight"]) @ out_w.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--golden", required=True)
    a = ap.parse_args()
    kv, W = load(a.model)
    src = json.load(open(f"{a.golden}/logits.json"))
    recs = []
    for p in src["prompts"]:
        if len(p["ids"]) > 40:
            continue
        lg = forward(kv, W, np.array(p["ids"]))
        top = np.argsort(-lg)[:50]
        spread = np.linspace(0, len(lg) - 1, 50).astype(int)
        ids = sorted(set(int(i) for i in top) | set(int(i) for i in spread))
        recs.append({"name": p["name"], "ids": p["ids"],
                     "logits": [[i, round(float(lg[i]), 6)] for i in ids]})
        print(p["name"], "top-1", int(top[0]), float(lg[top[0]]))
    with open(f"{a.golden}/f64.json", "w") as f:
        json.dump({"generator": "scripts/make_f64_golden.py", "prompts": recs}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
