#!/usr/bin/env python3
"""pretrain_report.py - the section of docs/results.md on the pre-training
experiment (bench/pretrain.sh), written from its outputs.

usage: python3 bench/pretrain_report.py OUT_DIR docs/results.md

Replaces the text between the markers <!-- pretrain:begin --> and
<!-- pretrain:end --> (appended when absent). Draws OUT_DIR/pretrain.png
(loss curves and the first-token share per layer) when matplotlib is
importable, and copies it to docs/img/pretrain.png.
"""
import csv
import os
import re
import shutil
import sys

OUT, DOC = sys.argv[1], sys.argv[2]
VARIANTS = ["vanilla", "softmax1", "sinktoken", "sinklogit"]
NAMES = {"vanilla": "vanilla", "softmax1": "zero sink (`--softmax1`)",
         "sinktoken": "learnable sink token (`--sink-token`)", "sinklogit": "sink logit (`--sink-logit`)"}
# The paper's Table 3: 160M-parameter models, cache 0+1024 .. 4+1020
PAPER = {"vanilla": ["27.87", "18.49", "18.05", "18.05"], "softmax1": ["29214", "19.90", "18.27", "18.01"],
         "sinktoken": ["1235", "18.01", "18.01", "18.02"], "sinklogit": ["-"] * 4}
BEGIN, END = "<!-- pretrain:begin -->", "<!-- pretrain:end -->"


def read(path):
    return open(path, encoding="utf-8").read() if os.path.exists(path) else None


def ppl_of(path):
    t = read(path)
    m = re.search(r"PPL = ([0-9.]+|inf|nan)", t or "")
    return float(m.group(1)) if m else None


def fmt(x):
    if x is None:
        return "pending"
    return f"{x:.2f}" if x < 1000 else f"{x:,.0f}"


def curve(v):
    rows = []
    p = os.path.join(OUT, f"{v}.csv")
    if os.path.exists(p):
        with open(p) as f:
            for r in csv.DictReader(f):
                rows.append(r)
    return rows


def attn(v):
    """{layer: (token0 share, sink-logit share)} from `sinkllm attn`'s table."""
    out = {}
    for line in (read(os.path.join(OUT, f"attn_{v}.txt")) or "").splitlines():
        c = [x.strip() for x in line.split("|")]
        if len(c) >= 6 and c[1].isdigit():
            out[int(c[1])] = (float(c[2]), float(c[5]))
    return out


cfg = (read(os.path.join(OUT, "config.txt")) or "").strip()
cache = int(re.search(r"eval_cache=(\d+)", cfg).group(1)) if "eval_cache=" in cfg else 128
ntok = re.search(r"eval_tokens=(\d+)", cfg).group(1) if "eval_tokens=" in cfg else "?"
ctx = re.search(r"ctx=(\d+)", cfg).group(1) if "ctx=" in cfg else "?"
L = []
L.append("## Pre-training with a sink token (the paper's Section 3.3, Table 3 and Fig. 7)\n")
L.append("Four small LLaMA-architecture models trained from scratch by `sinkllm train` with the same data,"
         " shape, context, seed and token budget, differing only in where attention may park its unused share"
         " (docs/training.md). Rerun: `make corpus && sh bench/pretrain.sh` (resumable). Configuration:\n")
L.append("```\n" + cfg + "\n```\n")
L.append("What the figures show at this scale, and what they do not: docs/training.md, \"The experiment\".\n")
L.append("### Training\n")
L.append("| variant | steps | tokens | final train loss (mean of the last 10 steps) | held-out loss | tokens/s |")
L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
for v in VARIANTS:
    rows = curve(v)
    if not rows:
        L.append(f"| {NAMES[v]} | pending | | | | |")
        continue
    last = rows[-10:]
    tl = sum(float(r["loss"]) for r in last) / len(last)
    vl = [r["val_loss"] for r in rows if r.get("val_loss")]
    tps = [float(r["tok_per_s"]) for r in rows if r.get("tok_per_s")]
    L.append(f"| {NAMES[v]} | {rows[-1]['step']} | {int(rows[-1]['tokens']):,} | {tl:.3f} | "
             f"{float(vl[-1]):.3f} | {sum(tps) / len(tps):,.0f} |" if vl and tps else
             f"| {NAMES[v]} | {rows[-1]['step']} | {int(rows[-1]['tokens']):,} | {tl:.3f} | | |")
for lab, what in (("heldout", "the held-out text (never trained on)"), ("moby", "Moby-Dick (never trained on)")):
    L.append(f"\n### Streaming perplexity on {what}: {ntok} tokens, cache {cache}"
             f" ({int(ctx) // cache if ctx.isdigit() else '?'}x smaller than the training context {ctx})\n")
    hdr = " | ".join(f"{s}+{cache - s}" for s in (0, 1, 2, 4))
    L.append(f"| variant | {hdr} | paper (160M, 0/1/2/4 + rest of 1024) |")
    L.append("| --- | ---: | ---: | ---: | ---: | --- |")
    for v in VARIANTS:
        vals = [fmt(ppl_of(os.path.join(OUT, f"ppl_{v}_{lab}_s{s}.txt"))) for s in (0, 1, 2, 4)]
        L.append(f"| {NAMES[v]} | " + " | ".join(vals) + " | " + " / ".join(PAPER[v]) + " |")
dense = {v: ppl_of(os.path.join(OUT, f"ppl_{v}_heldout_dense.txt")) for v in VARIANTS}
L.append("\nDense attention over the first training context of the held-out text (no eviction), for scale: " +
         ", ".join(f"{NAMES[v]} {fmt(dense[v])}" for v in VARIANTS) + ".\n")
L.append("### Where attention goes (the paper's Fig. 7)\n")
L.append("`sinkllm attn` over the first training context of the held-out text: the share of attention on"
         " token 0 (the sink token for the sink-token model, a text token otherwise) and, for the models with"
         " a denominator term, the share the sink logit takes (`--softmax1` is exported as sink logits of 0),"
         " mean over heads and queries 16 onward. A uniform spread would give token 0 about"
         f" {sum(1 / (u + 1) for u in range(16, int(ctx) if ctx.isdigit() else 256)) / ((int(ctx) if ctx.isdigit() else 256) - 16):.3f}.\n")
layers = sorted(set().union(*[attn(v).keys() for v in VARIANTS])) or [0]
L.append("| variant | " + " | ".join(f"layer {l}" for l in layers) + " |")
L.append("| --- | " + " | ".join("---:" for _ in layers) + " |")
for v in VARIANTS:
    a = attn(v)
    cell = []
    for l in layers:
        if l not in a:
            cell.append("pending")
        elif v in ("softmax1", "sinklogit"):
            cell.append(f"{a[l][0]:.3f} + sink {a[l][1]:.3f}")
        else:
            cell.append(f"{a[l][0]:.3f}")
    L.append(f"| {NAMES[v]} | " + " | ".join(cell) + " |")

png = None
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for v in VARIANTS:
        rows = curve(v)
        if rows:
            ax[0].plot([int(r["tokens"]) / 1e6 for r in rows], [float(r["loss"]) for r in rows], label=v, lw=0.8)
        a = attn(v)
        if a:
            ls = sorted(a)
            share = [a[l][1] if v in ("softmax1", "sinklogit") else a[l][0] for l in ls]
            ax[1].plot(ls, share, marker="o", label=v + (" (sink logit)" if v in ("softmax1", "sinklogit") else " (token 0)"))
    ax[0].set_xlabel("training tokens (M)")
    ax[0].set_ylabel("train loss")
    ax[0].legend()
    ax[1].set_xlabel("layer")
    ax[1].set_ylabel("attention share")
    ax[1].legend()
    fig.tight_layout()
    png = os.path.join(OUT, "pretrain.png")
    fig.savefig(png, dpi=110)
    os.makedirs(os.path.join(os.path.dirname(DOC), "img"), exist_ok=True)
    shutil.copy(png, os.path.join(os.path.dirname(DOC), "img", "pretrain.png"))
    L.append("\n![loss curves and attention share per layer](img/pretrain.png)\n")
except ImportError:
    L.append("\n(no plot: matplotlib is not installed)\n")

section = BEGIN + "\n" + "\n".join(L) + "\n" + END
doc = read(DOC) or ""
if BEGIN in doc and END in doc:
    doc = doc[:doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):]
else:
    doc = doc.rstrip("\n") + "\n\n" + section + "\n"
open(DOC, "w", encoding="utf-8").write(doc)
print(f"wrote the pre-training section of {DOC}" + (f" and {png}" if png else ""))
