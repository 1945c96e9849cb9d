#!/usr/bin/env python3
"""summarize.py - tables for docs/results.md from bench/out/paper/*.csv.

Reads the per-token CSVs of `sinkllm ppl` (pos,token,nll,rss_mb) written by
bench/paper.sh and prints markdown: perplexity per run, per segment of the
stream, on shared positions, and RSS over the stream. Standard library only.

usage: python3 bench/summarize.py [bench/out/paper]
"""
import math
import os
import sys

D = sys.argv[1] if len(sys.argv) > 1 else "bench/out/paper"


def complete(name):
    """A run is complete once its PPL line is written."""
    try:
        return open(os.path.join(D, name + ".ppl")).read().startswith("PPL =")
    except OSError:
        return False


def load(name, partial=False):
    path = os.path.join(D, name + ".csv")
    if not os.path.exists(path) or (not partial and not complete(name)):
        return None
    pos, nll, rss = [], [], []
    with open(path) as f:
        for line in f:
            if line[0] in "#p":
                continue
            f4 = line.strip().split(",")
            if len(f4) != 4:  # a run still being written
                continue
            p, _, v, r = f4
            pos.append(int(p))
            nll.append(float(v))
            rss.append(float(r))
    return pos, nll, rss


def ppl(v):
    return math.exp(sum(v) / len(v)) if v else float("nan")


def speed(name):
    path = os.path.join(D, name + ".ppl")
    try:
        line = open(path).read().strip()
        return line[line.rindex(",") + 1:].strip(" )")
    except (OSError, ValueError):
        return "?"


def fmt(x):
    return "n/a" if x is None or x != x else f"{x:.2f}"


def fig3():
    runs = [("dense", "a_dense"), ("window 0+1024", "a_window"),
            ("recompute 1024", "a_recompute"), ("sink 4+1020", "a_sink")]
    data = {k: load(n) for k, n in runs}
    rec = data.get("recompute 1024")
    shared = set(rec[0]) if rec else None
    segs = [(1, 4096), (4096, 8192), (8192, 12288), (12288, 16384), (16384, 20000)]
    print("| policy | PPL, all tokens | PPL, recompute's positions | " +
          " | ".join(f"{a}-{b}" for a, b in segs) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in segs) + " |")
    for k, _ in runs:
        d = data[k]
        if not d:
            print(f"| {k} | not run |")
            continue
        pos, nll, _ = d
        allp = ppl(nll)
        sh = ppl([v for p, v in zip(pos, nll) if shared and p in shared])
        seg = [ppl([v for p, v in zip(pos, nll) if a <= p < b]) for a, b in segs]
        if k.startswith("recompute"):
            allp = None
        print(f"| {k} | {fmt(allp)} | {fmt(sh)} | " + " | ".join(fmt(x) for x in seg) + " |")


def table2():
    print("| cache (65,536 tokens) | 0 sinks (window) | 1 | 2 | 4 | 8 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in (1024, 2048):
        row = []
        for s in (0, 1, 2, 4, 8):
            d = load(f"b_s{s}_c{c}")
            row.append(fmt(ppl(d[1])) if d else "pending")
        print(f"| {c} | " + " | ".join(row) + " |")


def table6():
    print("| cache (16,384 tokens) | PPL | tokens/s (1 thread) |")
    print("| --- | ---: | ---: |")
    for c in (256, 512, 1024, 2048, 4096):
        n = f"c_4_{c - 4}"
        d = load(n)
        print(f"| 4+{c - 4} | {fmt(ppl(d[1])) if d else 'pending'} | {speed(n) if d else ''} |")


def fig5():
    d = load("d_sink_1M", partial=True)
    if not d:
        print("(not run)")
        return
    if not complete("d_sink_1M"):
        print(f"(run in progress: the first {len(d[0]):,} tokens)\n")
    pos, nll, rss = d
    step = 100000
    print("| tokens | PPL of the segment | RSS at its end (MB) |")
    print("| ---: | ---: | ---: |")
    i = 0
    n = len(pos)
    for a in range(0, pos[-1] + 1, step):
        seg = [v for p, v in zip(pos[i:i + step + 10], nll[i:i + step + 10]) if a <= p < a + step]
        j = min(i + len(seg), n) - 1
        if seg:
            print(f"| {a:,}-{a + step:,} | {ppl(seg):.2f} | {rss[j]:.1f} |")
        i += len(seg)
    print(f"\nall {len(nll):,} tokens: PPL {ppl(nll):.3f}; RSS min {min(rss):.1f} MB, "
          f"after 10K tokens {rss[min(9999, n - 1)]:.1f} MB, at the end {rss[-1]:.1f} MB")


def newline():
    print("| sinks (cache 1024, 65,536 tokens) | PPL |")
    print("| --- | ---: |")
    for label, n in (("0 sinks: window 0+1024", "b_s0_c1024"),
                     ("4 real first tokens: sink 4+1020", "b_s4_c1024"),
                     ('4 "\\n" tokens prepended as sinks', "e_newline_sinks")):
        d = load(n)
        print(f"| {label} | {fmt(ppl(d[1])) if d else 'pending'} |")


def kvtypes():
    print("| KV storage (sinks always >= F16) | PPL, sink 4+1020, 20,000 tokens | tokens/s (1 thread) |")
    print("| --- | ---: | ---: |")
    for k in ("f32", "f16", "q8_0"):
        d = load(f"f_kv_{k}")
        print(f"| {k} | {fmt(ppl(d[1])) if d else 'pending'} | {speed('f_kv_' + k) if d else ''} |")


for title, fn in (("Fig. 3", fig3), ("Table 2", table2), ("Table 6", table6),
                  ("Fig. 5", fig5), ("newline sinks", newline), ("KV precision", kvtypes)):
    print(f"\n### {title}\n")
    fn()
