#!/usr/bin/env python3
"""plot_depth.py - decode speed against depth, sinkllm next to llama.cpp,
from the CSV that bench/vs-llamacpp.sh writes (columns engine, threads,
test, tokens_per_s, depth, cache; the tgN rows are used).

x is the number of tokens in the KV cache when decoding starts: the depth
for a dense cache, and for an evicting cache (sink4+2044: 4 sinks + a window
of 2044) at most its capacity. So sinkllm's `sink` 4+2044 run after 100,000
tokens stands at x = 2,048 beside llama.cpp at depth 2,048, drawn as a star
with its stream length written next to it. One colour per engine and cache,
solid lines for 1 thread, dashed for 2, and so on.

    python bench/plot_depth.py bench/out/vs-llamacpp.csv -o bench/out/vs-llamacpp-depth.png
"""

import argparse
import csv
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def capacity(cache):
    """Tokens the cache holds at most: 4 + 2044 for sink4+2044, None when
    dense (it holds the whole depth). A ':q8_0'-style suffix is ignored."""
    kind = cache.split(":")[0]
    if kind.startswith("dense"):
        return None
    nums = [int(x) for x in re.findall(r"\d+", kind)]
    return sum(nums) if nums else None


def series_name(engine, cache):
    kind = re.match(r"[a-z]+", cache.split(":")[0])
    kind = kind.group(0) if kind else cache
    if engine == "llama.cpp":
        return "llama.cpp (dense)"
    if kind == "dense":
        return f"{engine} dense"
    return f"{engine} {kind} 4+(depth-4)" if kind == "sink" else f"{engine} {kind}"


COLOURS = {"llama.cpp (dense)": "tab:red", "sinkllm dense": "tab:blue",
           "sinkllm sink 4+(depth-4)": "tab:green"}
STYLES = ["-", "--", ":", "-."]


def main():
    ap = argparse.ArgumentParser(description="decode tokens/s against depth")
    ap.add_argument("csv")
    ap.add_argument("-o", "--out", required=True, help="PNG path")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    curves = {}   # (series, threads) -> [(x, tok/s)]
    streams = []  # (series, threads, x, tok/s, depth, cache): depth beyond the cache
    gen = set()
    with open(a.csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("test", "").startswith("tg") or "depth" not in row:
                continue
            try:
                t, tps, depth = int(row["threads"]), float(row["tokens_per_s"]), int(row["depth"])
            except ValueError:
                continue
            gen.add(row["test"])
            cache = row.get("cache") or "dense"
            cap = capacity(cache)
            name = series_name(row["engine"], cache)
            if cap is not None and depth > cap:
                streams.append((name, t, cap, tps, depth, cache))
            else:
                curves.setdefault((name, t), []).append((depth, tps))
    if not curves and not streams:
        sys.exit(f"plot_depth: no tgN rows with a depth in {a.csv}")
    threads = sorted({t for _, t in curves} | {s[1] for s in streams})
    extra = iter(["tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan"])
    for name in sorted({n for n, _ in curves} | {s[0] for s in streams}):
        COLOURS.setdefault(name, next(extra, "tab:gray"))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for (name, t), pts in sorted(curves.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], STYLES[threads.index(t) % 4],
                marker="o", color=COLOURS[name], label=f"{name}, {t} thread{'s' if t > 1 else ''}")
    for name, t, x, tps, depth, cache in streams:
        ax.plot([x], [tps], marker="*", markersize=15, linestyle="none", color=COLOURS[name],
                markeredgecolor="black",
                label=f"sinkllm {cache} after {depth:,} tokens, {t} thread{'s' if t > 1 else ''}")
        ax.annotate(f"{depth:,} tokens fed", (x, tps), textcoords="offset points",
                    xytext=(8, 6), fontsize=8)
    ax.set_xlabel("depth: tokens in the KV cache when decoding starts")
    ax.set_ylabel(f"decode tokens/s ({', '.join(sorted(gen))})")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(a.title or "decode speed against depth: sinkllm and llama.cpp, same GGUF")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot: {a.out}")


if __name__ == "__main__":
    main()
