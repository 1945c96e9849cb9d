#!/usr/bin/env python3
"""make_f64_golden.py - reference logits and streaming perplexity from a
float64 forward pass.

An independent oracle for the arithmetic of the forward pass: the GGUF's
weights are dequantized by the `gguf` package (not by sinkllm), and a plain
numpy LLaMA forward pass in float64 (dense causal attention, RoPE in the
interleaved "normal" layout) computes the logits after each short prompt of
tests/golden/logits.json. sinkllm's precise mode (F32 weights, no activation
quantization, F32 KV cache) must match these within 2e-4 (tests/test_precise.c).

It also writes golden/ppl_sink.json: the per-token NLL of 300 tokens of
Moby-Dick streamed under the StreamingLLM rule (4 sinks + a window of 60,
positions assigned within the cache, keys re-rotated from pre-RoPE values
at every step: the definition, not our ring-buffer shortcut).

With --long-csv it writes golden/f64_long.json instead: a dense prompt of
2,200 tokens (see long_golden; make golden runs the three steps):
    make_f64_golden.py --model M --golden G --long-text moby12k.txt
    sinkllm ppl -m M -f moby12k.txt --tokens 2200 --cache dense -q --csv long.csv
    make_f64_golden.py --model M --golden G --long-csv long.csv

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


def hparams(kv):
    """(layers, width, heads, kv heads, rms eps, rope base, head dim, rope dims)"""
    arch = kv["general.architecture"]
    d = kv[f"{arch}.embedding_length"]
    nh = kv[f"{arch}.attention.head_count"]
    hd = d // nh
    return (kv[f"{arch}.block_count"], d, nh, kv.get(f"{arch}.attention.head_count_kv", nh),
            kv[f"{arch}.attention.layer_norm_rms_epsilon"],
            kv.get(f"{arch}.rope.freq_base", 10000.0), hd,
            kv.get(f"{arch}.rope.dimension_count", hd))


def forward(kv, W, ids):
    """logits after the last token of ids"""
    x = hidden(kv, W, ids)
    out_w = W.get("output.weight", W["token_embd.weight"])
    eps = hparams(kv)[4]
    return (x[-1] / np.sqrt(np.mean(x[-1] ** 2) + eps) * W["output_norm.weight"]) @ out_w.T


def hidden(kv, W, ids):
    """dense causal forward pass: the residual stream (T, d) after the last layer"""
    L, d, nh, nkv, eps, base, hd, nrot = hparams(kv)
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
    return x


def dense_long(kv, W, ids, chunk=256):
    """Per-token NLL of a long prompt under dense causal attention (position
    p predicts ids[p + 1]) and the logits after its last token."""
    eps = hparams(kv)[4]
    x = hidden(kv, W, np.array(ids))
    out_w = W.get("output.weight", W["token_embd.weight"])
    h = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * W["output_norm.weight"]
    nll = []
    for a in range(0, len(ids) - 1, chunk):
        lg = h[a:min(a + chunk, len(ids) - 1)] @ out_w.T
        m = lg.max(1)
        tgt = np.array(ids[a + 1:a + 1 + len(lg)])
        nll += list(np.log(np.exp(lg - m[:, None]).sum(1)) + m - lg[np.arange(len(lg)), tgt])
    return nll, h[-1] @ out_w.T


def stream_nll(kv, W, ids, S, Wn):
    """Token-by-token streaming with sinks S and window Wn (current token
    included), in float64, from pre-RoPE keys at cache positions."""
    L, d, nh, nkv, eps, base, hd, nrot = hparams(kv)
    inv = base ** (-2.0 * np.arange(nrot // 2) / nrot)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x) + eps) * w

    def rope(x, pos):  # x (..., hd) at positions pos (broadcast on leading axis)
        a = np.asarray(pos, dtype=np.float64)[..., None] * inv
        c, s_ = np.cos(a), np.sin(a)
        y = x.copy()
        x0, x1 = x[..., 0:nrot:2], x[..., 1:nrot:2]
        y[..., 0:nrot:2] = x0 * c - x1 * s_
        y[..., 1:nrot:2] = x0 * s_ + x1 * c
        return y

    K = [[] for _ in range(L)]
    V = [[] for _ in range(L)]
    out_w = W.get("output.weight", W["token_embd.weight"])
    nll = []
    for t, tok in enumerate(ids[:-1]):
        vis = list(range(min(S, t + 1))) + list(range(max(S, t - Wn + 1), t + 1)) if t >= S else list(range(t + 1))
        cpos = np.arange(len(vis))
        x = W["token_embd.weight"][tok].copy()
        for l in range(L):
            p = f"blk.{l}."
            h = rms(x, W[p + "attn_norm.weight"])
            q = (W[p + "attn_q.weight"] @ h).reshape(nh, hd)
            K[l].append((W[p + "attn_k.weight"] @ h).reshape(nkv, hd))
            V[l].append((W[p + "attn_v.weight"] @ h).reshape(nkv, hd))
            kk = np.stack([K[l][j] for j in vis])          # (n, nkv, hd) pre-RoPE
            vv = np.stack([V[l][j] for j in vis])
            kr = rope(kk, cpos[:, None])                   # rotated at cache positions
            qr = rope(q, np.full(nh, cpos[-1]))
            o = np.zeros((nh, hd))
            for hh in range(nh):
                g = hh // (nh // nkv)
                sc = kr[:, g, :] @ qr[hh] / np.sqrt(hd)
                sc = np.exp(sc - sc.max())
                o[hh] = (sc / sc.sum()) @ vv[:, g, :]
            x = x + W[p + "attn_output.weight"] @ o.reshape(-1)
            h = rms(x, W[p + "ffn_norm.weight"])
            g_ = W[p + "ffn_gate.weight"] @ h
            u = W[p + "ffn_up.weight"] @ h
            x = x + W[p + "ffn_down.weight"] @ (g_ / (1 + np.exp(-g_)) * u)
        lg = out_w @ rms(x, W["output_norm.weight"])
        m = lg.max()
        nll.append(float(np.log(np.exp(lg - m).sum()) + m - lg[ids[t + 1]]))
    return nll


def long_golden(kv, W, csv_path, golden):
    """golden/f64_long.json: a dense prompt of > 2,000 tokens of Moby-Dick,
    where an error in the low RoPE frequencies or in far-away attention
    shows. The ids are sinkllm's tokenization (the CSV of `sinkllm ppl`;
    its first token is not scored, so it is taken from ppl_sink.json, whose
    ids llama.cpp tokenized from the same text, and the first 300 ids must
    agree with those): the tokenizer has its own test against llama.cpp,
    here the ids are only the input of the forward pass."""
    rows = [l.split(",") for l in open(csv_path) if l[:1].isdigit()]
    short = json.load(open(f"{golden}/ppl_sink.json"))["ids"]
    ids = [short[0]] + [int(r[1]) for r in rows]
    assert ids[:len(short)] == short, "tokenization differs from ppl_sink.json"
    nll, lg = dense_long(kv, W, ids)
    top = np.argsort(-lg)[:50]
    spread = np.linspace(0, len(lg) - 1, 50).astype(int)
    lids = sorted(set(int(i) for i in top) | set(int(i) for i in spread))
    ppl = float(np.exp(np.mean(nll)))
    print(f"dense, {len(ids)} tokens: PPL {ppl:.6f}, top-1 {int(top[0])}")
    with open(f"{golden}/f64_long.json", "w") as f:
        json.dump({"generator": "scripts/make_f64_golden.py --long-csv", "ids": ids,
                   "nll": [round(float(v), 7) for v in nll], "ppl": ppl,
                   "logits": [[i, round(float(lg[i]), 6)] for i in lids]}, f)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--moby", default="data/moby-dick.txt")
    ap.add_argument("--long-csv", help="only write golden/f64_long.json, from the ids of this "
                    "`sinkllm ppl --cache dense --csv` run over Moby-Dick (see long_golden)")
    ap.add_argument("--long-text", help="only write the 12,000 characters of Moby-Dick from "
                    "'Call me Ishmael.' to this file (the text of the --long-csv run)")
    a = ap.parse_args()
    if a.long_text:
        text = open(a.moby, encoding="utf-8").read()
        start = text.index("Call me Ishmael.")
        open(a.long_text, "w", encoding="utf-8").write(text[start:start + 12000])
        return
    kv, W = load(a.model)
    if a.long_csv:
        long_golden(kv, W, a.long_csv, a.golden)
        return
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

    import llama_cpp
    text = open(a.moby, encoding="utf-8").read()
    start = text.index("Call me Ishmael.")
    voc = llama_cpp.Llama(model_path=a.model, vocab_only=True, verbose=False)
    ids = voc.tokenize(text[start:start + 4000].encode(), add_bos=False, special=False)[:300]
    S, Wn = 4, 60
    nll = stream_nll(kv, W, ids, S, Wn)
    ppl = float(np.exp(np.mean(nll)))
    print(f"streaming sink {S}+{Wn}, {len(ids)} tokens: PPL {ppl:.6f}")
    with open(f"{a.golden}/ppl_sink.json", "w") as f:
        json.dump({"generator": "scripts/make_f64_golden.py", "sinks": S, "window": Wn,
                   "ids": ids, "nll": [round(v, 7) for v in nll], "ppl": ppl}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
