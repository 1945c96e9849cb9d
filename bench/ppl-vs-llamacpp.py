#!/usr/bin/env python3
"""ppl-vs-llamacpp.py - streaming perplexity of sinkllm next to llama.cpp
driven the StreamingLLM way: one token per step, the oldest non-sink token
evicted and the rest shifted down once the cache is full.

    python bench/ppl-vs-llamacpp.py --model models/gemma-3-270m-Q4_K_M.gguf \\
        --text data/moby-dick.txt --tokens 2048 \\
        --config dense --config window:1024 --config sink:4+1020 \\
        [--sinkllm build/sinkllm] [-t 2] [--llama-threads 1] [--llama-kv f16|f32]
        [--json OUT] [--dump PREFIX]

Both engines score the same stream: BOS then the text's tokens (the first N
of them, N = --tokens), token p predicted after tokens 0..p-1, p = 1..N-1,
exactly as `sinkllm ppl` does (its per-token CSV gives the ids, checked
against llama.cpp's tokenization, and the NLLs).

sinkllm: `sinkllm ppl -f TEXT --tokens N --cache POLICY ... --csv`.

llama.cpp (llama-cpp-python, low-level API, one sequence): while the stream
fits in the cache (dense: always; window W: the first W tokens; sink S+W:
the first S+W) tokens are decoded in batches of 512 with every logit kept;
from then on one token per llama_decode, and before each the cache is
brought back to S+W-1 tokens: llama_memory_seq_rm drops position S (the
oldest non-sink token), llama_memory_seq_add shifts positions S+1.. down by
one (llama.cpp re-rotates the cached keys by the delta at the next decode,
with each layer's own RoPE base), and the new token goes in at position
S+W-1. Positions are thus positions within the cache, as in StreamingLLM's
reference implementation and in sinkllm.

Gemma 3's local (sliding-window) layers: sinkllm gives them their own ring
of the last n_swa = 512 tokens (no sinks); llama.cpp masks them by position
distance (p_query - p_key < 512). The two agree whenever the global cache
holds at least 512 tokens, hence windows >= 512 here.

Settings for llama.cpp: n_ctx = the cache size rounded up to 256, n_batch =
n_ubatch = 512, n_threads = --llama-threads (1), KV F16 (--llama-kv f32 to see how much of a
difference comes from re-rotating F16 keys once per step), flash attention
off, full-size SWA cache. NLL = -log softmax in float64 over the raw logits.

Prints one line per engine and configuration and a Markdown table (PPL per
engine, relative difference, mean and max per-token |NLL difference|);
--json writes every figure."""

import argparse
import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_config(s):
    """'dense' | 'window:W' | 'sink:S+W' -> (label, policy, sinks, window)"""
    if s == "dense":
        return ("dense", "dense", 0, 0)
    m = re.fullmatch(r"window:(\d+)", s)
    if m:
        return (f"window {m.group(1)}", "window", 0, int(m.group(1)))
    m = re.fullmatch(r"sink:(\d+)\+(\d+)", s)
    if m:
        return (f"sink {m.group(1)}+{m.group(2)}", "sink", int(m.group(1)), int(m.group(2)))
    raise argparse.ArgumentTypeError(f"config {s!r}: dense, window:W or sink:S+W")


def run_sinkllm(exe, model, text, n_tokens, cfg, threads):
    """(ppl, tokens[1..N-1], nll[1..N-1], seconds) from `sinkllm ppl --csv`"""
    _, policy, sinks, window = cfg
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ppl.csv")
        cmd = [exe, "ppl", "-m", model, "-f", text, "--tokens", str(n_tokens), "--cache", policy,
               "-t", str(threads), "-q", "--csv", out]
        if policy == "sink":
            cmd += ["--sinks", str(sinks), "--window", str(window)]
        elif policy == "window":
            cmd += ["--window", str(window)]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.time() - t0
        if r.returncode:
            sys.exit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}")
        m = re.search(r"PPL = ([0-9.]+)", r.stdout)
        if not m:
            sys.exit(f"no PPL line in sinkllm's output:\n{r.stdout}")
        toks, nll = [], []
        with open(out) as f:
            rows = csv.reader(line for line in f if not line.startswith("#"))
            next(rows)  # header
            for pos, tok, v, _ in rows:
                assert int(pos) == len(toks) + 1
                toks.append(int(tok))
                nll.append(float(v))
    return float(m.group(1)), toks, np.array(nll), secs, " ".join(cmd)


class LlamaStream:
    """llama.cpp with one sequence and per-token StreamingLLM eviction."""

    def __init__(self, model, n_ctx, threads, kv):
        t = llama_cpp.GGML_TYPE_F32 if kv == "f32" else llama_cpp.GGML_TYPE_F16
        self.m = llama_cpp.Llama(
            model_path=model, n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, seed=0, logits_all=False, flash_attn=False, swa_full=True,
            type_k=t, type_v=t, verbose=False)
        self.ctx = self.m.ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.nv = self.m.n_vocab()
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)

    def close(self):
        llama_cpp.llama_batch_free(self.batch)
        self.m.close()

    def decode(self, toks, pos0):
        """decode toks at positions pos0.. with every logit kept; returns
        float64 logits (len(toks), n_vocab)"""
        b = self.batch
        b.n_tokens = len(toks)
        for j, t in enumerate(toks):
            b.token[j] = t
            b.pos[j] = pos0 + j
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = 0
            b.logits[j] = 1
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            sys.exit(f"llama_decode: {rc}")
        ptr = llama_cpp.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(len(toks), self.nv)).astype(np.float64)


def nll_rows(lg, targets):
    """-log softmax(lg[i])[targets[i]] in float64"""
    mx = lg.max(axis=1)
    lse = np.log(np.exp(lg - mx[:, None]).sum(axis=1)) + mx
    return lse - lg[np.arange(len(targets)), targets]


def run_llama(model, toks, cfg, threads, kv, progress):
    """per-token NLL of toks[1..] streamed through llama.cpp"""
    label, policy, sinks, window = cfg
    N = len(toks)
    cap = N if policy == "dense" else sinks + window
    n_ctx = ((cap + 255) // 256) * 256
    ls = LlamaStream(model, n_ctx, threads, kv)
    nll = np.zeros(N - 1)
    t0 = time.time()
    # fill: no eviction while the stream fits
    fill = min(cap, N - 1)
    for i in range(0, fill, 512):
        k = min(512, fill - i)
        lg = ls.decode(toks[i:i + k], i)
        nll[i:i + k] = nll_rows(lg, np.array(toks[i + 1:i + k + 1]))
    # per token: evict position `sinks`, shift the rest down, append
    for i in range(fill, N - 1):
        if not llama_cpp.llama_memory_seq_rm(ls.mem, 0, sinks, sinks + 1):
            sys.exit("llama_memory_seq_rm refused")
        llama_cpp.llama_memory_seq_add(ls.mem, 0, sinks + 1, -1, -1)
        assert llama_cpp.llama_memory_seq_pos_max(ls.mem, 0) == cap - 2
        lg = ls.decode([toks[i]], cap - 1)
        nll[i] = nll_rows(lg, np.array([toks[i + 1]]))[0]
        if progress and (i - fill) % 256 == 0:
            el = time.time() - t0
            print(f"\r  llama.cpp {label}: {i + 1}/{N - 1} ({(i + 1) / el:.1f} tok/s) ",
                  end="", file=sys.stderr, flush=True)
    secs = time.time() - t0
    if progress:
        print(file=sys.stderr)
    ls.close()
    return nll, secs


def tokenize(model, text_path, n_tokens):
    """BOS + the text's tokens (llama.cpp's tokenizer), the first n_tokens"""
    m = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    with open(text_path, "rb") as f:
        data = f.read()
    toks = [int(t) for t in m.tokenize(data, add_bos=True, special=False)]
    m.close()
    if len(toks) < n_tokens:
        sys.exit(f"{text_path}: {len(toks)} tokens < --tokens {n_tokens}")
    return toks[:n_tokens]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                   "moby-dick.txt"))
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--config", action="append", type=parse_config,
                    help="dense, window:W or sink:S+W (repeatable; default: dense, "
                         "window:1024, sink:4+1020)")
    ap.add_argument("--sinkllm", default=os.path.join(HERE, "..", "build", "sinkllm"))
    ap.add_argument("-t", "--threads", type=int, default=2, help="sinkllm's threads (2)")
    ap.add_argument("--llama-threads", type=int, default=1,
                    help="llama.cpp's threads (1: its threads spin while waiting, and on a "
                         "busy 2-core machine 2 threads decoded at 2.5 s/token against "
                         "0.05 s/token with 1; the figures do not depend on it)")
    ap.add_argument("--llama-kv", choices=("f16", "f32"), default="f16")
    ap.add_argument("--skip-llama", action="store_true", help="sinkllm only")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--dump", help="write per-token ids and NLLs of both engines to "
                                   "DUMP-<config>.npz")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    cfgs = a.config or [parse_config(s) for s in ("dense", "window:1024", "sink:4+1020")]

    toks = tokenize(a.model, a.text, a.tokens)
    results = []
    for cfg in cfgs:
        label = cfg[0]
        s_ppl, s_toks, s_nll, s_secs, s_cmd = run_sinkllm(a.sinkllm, a.model, a.text, a.tokens,
                                                          cfg, a.threads)
        print(f"sinkllm   {label:14s} PPL {s_ppl:.4f}  ({len(s_nll)} scored, {s_secs:.0f} s)",
              flush=True)
        same = s_toks == toks[1:]
        if not same:
            bad = sum(x != y for x, y in zip(s_toks, toks[1:]))
            print(f"  WARNING: token ids differ from llama.cpp's at {bad} positions",
                  flush=True)
        rec = {"config": label, "tokens": a.tokens, "scored": len(s_nll),
               "sinkllm_ppl": s_ppl, "sinkllm_ppl_from_csv": math.exp(float(s_nll.mean())),
               "sinkllm_seconds": round(s_secs, 1), "sinkllm_cmd": s_cmd,
               "same_tokens": same}
        if not a.skip_llama:
            l_nll, l_secs = run_llama(a.model, toks, cfg, a.llama_threads, a.llama_kv,
                                      not a.quiet)
            l_ppl = math.exp(float(l_nll.mean()))
            d = np.abs(s_nll - l_nll)
            rel = s_ppl / l_ppl - 1
            print(f"llama.cpp {label:14s} PPL {l_ppl:.4f}  ({len(l_nll)} scored, {l_secs:.0f} s)"
                  f"  sinkllm {rel:+.3%}; per-token |NLL diff| mean {d.mean():.4f} max "
                  f"{d.max():.4f}", flush=True)
            if a.dump:
                np.savez(f"{a.dump}-{label.replace(' ', '_').replace('+', '_')}.npz",
                         tokens=np.array(toks), sinkllm=s_nll, llama=l_nll)
            half = len(d) // 2
            rec.update({"llama_ppl": l_ppl, "llama_kv": a.llama_kv,
                        "llama_seconds": round(l_secs, 1), "rel_diff": rel,
                        "nll_absdiff_mean": float(d.mean()), "nll_absdiff_max": float(d.max()),
                        "nll_absdiff_mean_2nd_half": float(d[half:].mean()),
                        "mean_nll_diff": float((s_nll - l_nll).mean())})
        results.append(rec)

    print()
    if a.skip_llama:
        print("| config | tokens | sinkllm PPL |\n| --- | ---: | ---: |")
        for r in results:
            print(f"| {r['config']} | {r['tokens']} | {r['sinkllm_ppl']:.4f} |")
    else:
        print(f"| config | tokens | sinkllm PPL | llama.cpp PPL (KV {a.llama_kv}) | sinkllm vs "
              "llama.cpp | mean per-token \\|NLL diff\\| | max |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in results:
            print(f"| {r['config']} | {r['tokens']} | {r['sinkllm_ppl']:.4f} | "
                  f"{r['llama_ppl']:.4f} | {r['rel_diff']:+.2%} | {r['nll_absdiff_mean']:.4f} | "
                  f"{r['nll_absdiff_max']:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": os.path.basename(a.model), "text": os.path.basename(a.text),
                       "threads": a.threads, "llama_threads": a.llama_threads, "llama_cpp_python": llama_cpp.__version__,
                       "system_info": llama_cpp.llama_print_system_info().decode().strip(),
                       "python": platform.python_version(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
