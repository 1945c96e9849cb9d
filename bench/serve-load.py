#!/usr/bin/env python3
"""serve-load.py - many concurrent streaming chat sessions against
`sinkllm serve` and llama-server, side by side (issue 10 point 4).

For each level N of concurrent clients, both servers are started with N
slots (`--slots N` / `-np N`) and the same threads; N clients each send R
streaming chat requests one after another (a short prompt, max_tokens
replies with ignore_eos so every reply has the same length). Measured per
level: aggregate tokens/s (all content chunks / wall time), TTFT and
inter-token latency p50/p99 (client side, per chunk), and the server's RSS
at the end. Loopback only; bounded in requests (N x R) and in time (each
request times out). Writes a CSV (and a PNG when matplotlib is there) and
prints a table with the sinkllm/llama-server ratios.

usage: bench/serve-load.py [--clients 1,2,4,8,16] [--tokens 256] [--requests 1]
                           [--threads 2] [--model M] [--sinkllm BIN] [--peer BIN]
                           [--out bench/out/serve-load]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = "/root/.cache/sinkllm/llama.cpp-0.3.36-native/bin/llama-server"
PROMPT = "Tell me a long story about a lighthouse keeper and the sea."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(engine, args, n, port, log):
    if engine == "sinkllm":
        cmd = [args.sinkllm, "serve", "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
               "--slots", str(n), "-t", str(args.threads), "--queue", str(4 * n)]
    else:
        cmd = [args.peer, "-m", args.model, "--host", "127.0.0.1", "--port", str(port), "-np", str(n),
               "-t", str(args.threads), "-c", str(n * (args.tokens + 256)), "--log-disable"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{engine} exited: see {log.name}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return p
        except requests.RequestException:
            pass
        time.sleep(0.2)
    p.kill()
    raise RuntimeError(f"{engine} did not become healthy")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one_request(port, tokens, ttft, itl, counts, lock):
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "stream": True,
            "temperature": 0, "ignore_eos": True}
    t0 = time.time()
    last = None
    n = 0
    with requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, stream=True,
                       timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            ch = json.loads(line[6:])
            if not ch.get("choices") or not ch["choices"][0].get("delta", {}).get("content"):
                continue
            now = time.time()
            with lock:
                if last is None:
                    ttft.append(now - t0)
                else:
                    itl.append(now - last)
            last = now
            n += 1
    with lock:
        counts.append(n)


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def level(engine, args, n, logdir):
    port = free_port()
    log = open(os.path.join(logdir, f"{engine}-{n}.log"), "wb")
    p = start(engine, args, n, port, log)
    try:
        one_request(port, 8, [], [], [], threading.Lock())  # warm-up
        ttft, itl, counts, lock = [], [], [], threading.Lock()

        def client():
            for _ in range(args.requests):
                one_request(port, args.tokens, ttft, itl, counts, lock)
        th = [threading.Thread(target=client) for _ in range(n)]
        t0 = time.time()
        for t in th:
            t.start()
        for t in th:
            t.join()
        wall = time.time() - t0
        rss = rss_mib(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
    return {"engine": engine, "clients": n, "tokens": sum(counts), "wall_s": wall,
            "agg_tps": sum(counts) / wall, "ttft_p50_ms": pct(ttft, 0.5) * 1e3,
            "ttft_p99_ms": pct(ttft, 0.99) * 1e3, "itl_p50_ms": pct(itl, 0.5) * 1e3,
            "itl_p99_ms": pct(itl, 0.99) * 1e3, "rss_mib": rss}


def fairness(args, logdir):
    """Inter-token latency of one generating stream alone, then while
    another client pre-fills a long pasted prompt (issue 10 point 2)."""
    port = free_port()
    log = open(os.path.join(logdir, "fairness.log"), "wb")
    p = start("sinkllm", args, 2, port, log)
    try:
        one_request(port, 8, [], [], [], threading.Lock())
        lock = threading.Lock()
        alone_itl = []
        one_request(port, args.tokens, [], alone_itl, [], lock)
        words = open(os.path.join(ROOT, "data", "moby-dick.txt"), encoding="utf-8").read().split()
        paste = " ".join(words[:6000])  # about 8,000 tokens
        busy_itl = []
        th = threading.Thread(target=one_request, args=(port, args.tokens, [], busy_itl, [], lock))
        th.start()
        time.sleep(0.5)  # the stream is generating; now the paste arrives
        t0 = time.time()
        r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=600,
                          json={"messages": [{"role": "user", "content": paste}], "max_tokens": 1})
        paste_s = time.time() - t0
        th.join()
        pre = r.json()["usage"]["prompt_tokens"] if r.status_code == 200 else -1
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
    a99, b99 = pct(alone_itl, 0.99) * 1e3, pct(busy_itl, 0.99) * 1e3
    print(f"fairness: ITL p99 alone {a99:.1f} ms, while a {pre}-token prompt pre-fills {b99:.1f} ms "
          f"({b99 / a99:.2f}x); the paste took {paste_s:.1f} s")


def plot(rows, png):
    """Aggregate tokens/s against concurrent streams, one line per engine
    (matplotlib: .venv-ref has it; without it, the CSV alone)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib: CSV only (.venv-ref/bin/python bench/serve-load.py --plot CSV draws it)",
              file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in dict.fromkeys(r["engine"] for r in rows):
        xs = [r["clients"] for r in rows if r["engine"] == e]
        ax.plot(xs, [r["agg_tps"] for r in rows if r["engine"] == e], marker="o", label=e)
    ax.set_xlabel("concurrent streams (256-token replies)")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["clients"] for r in rows}), [str(n) for n in sorted({r["clients"] for r in rows})])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(png, dpi=100, bbox_inches="tight")
    print(f"wrote {png}")


def read_csv(path):
    with open(path) as f:
        keys = f.readline().strip().split(",")
        rows = []
        for line in f:
            v = line.strip().split(",")
            r = dict(zip(keys, v))
            for k in keys[1:]:
                r[k] = float(r[k]) if "." in r[k] else int(r[k])
            rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", metavar="CSV", help="only draw CSV's PNG (next to it)")
    ap.add_argument("--fairness", action="store_true", help="only the pre-fill fairness check")
    ap.add_argument("--clients", default="1,2,4,8,16")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--requests", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--sinkllm", default=os.path.join(ROOT, "build", "sinkllm"))
    ap.add_argument("--peer", default=PEER)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "serve-load"))
    args = ap.parse_args()
    if args.plot:
        plot(read_csv(args.plot), os.path.splitext(args.plot)[0] + ".png")
        return
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    logdir = args.out + "-logs"
    os.makedirs(logdir, exist_ok=True)
    if args.fairness:
        fairness(args, logdir)
        return
    engines = ["sinkllm"] + (["llama-server"] if os.path.exists(args.peer) else [])
    if len(engines) == 1:
        print(f"note: no llama-server at {args.peer}: sinkllm alone", file=sys.stderr)
    rows = []
    for n in [int(x) for x in args.clients.split(",")]:
        for e in engines:  # the same level back to back: the same machine state
            r = level(e, args, n, logdir)
            rows.append(r)
            print(f"{e:13s} {n:3d} clients: {r['agg_tps']:7.1f} tok/s, TTFT p50 {r['ttft_p50_ms']:7.1f} "
                  f"p99 {r['ttft_p99_ms']:7.1f} ms, ITL p50 {r['itl_p50_ms']:6.1f} p99 {r['itl_p99_ms']:6.1f} ms, "
                  f"RSS {r['rss_mib']:.0f} MiB", flush=True)
    keys = list(rows[0].keys())
    with open(args.out + ".csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + "\n")
    print(f"\n| clients | sinkllm tok/s | llama-server tok/s | ratio | sinkllm ITL p99 ms | peer ITL p99 ms |")
    print("|---|---|---|---|---|---|")
    by = {(r["engine"], r["clients"]): r for r in rows}
    one = by.get(("sinkllm", 1))
    for n in sorted({r["clients"] for r in rows}):
        s, q = by.get(("sinkllm", n)), by.get(("llama-server", n))
        ratio = f"{s['agg_tps'] / q['agg_tps']:.2f}x" if q else "-"
        print(f"| {n} | {s['agg_tps']:.1f} | {q['agg_tps']:.1f} | {ratio} | {s['itl_p99_ms']:.1f} | "
              f"{q['itl_p99_ms']:.1f} |" if q else f"| {n} | {s['agg_tps']:.1f} | - | - | {s['itl_p99_ms']:.1f} | - |")
    if one:
        for n in sorted({r["clients"] for r in rows if r["engine"] == "sinkllm"}):
            print(f"sinkllm aggregate at {n} streams / one stream: {by[('sinkllm', n)]['agg_tps'] / one['agg_tps']:.2f}x")
    plot(rows, args.out + ".png")
    print(f"wrote {args.out}.csv")


if __name__ == "__main__":
    main()
