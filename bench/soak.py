#!/usr/bin/env python3
"""soak.py - one session streaming a million tokens through `sinkllm serve`.

Starts the server (or uses --url with --pid), then keeps one chat session
going: each request sends the whole conversation (the server pre-fills only
the new suffix) and asks for --chunk tokens. Prints and writes CSV rows
(request, tokens so far, tokens/s of the request, server RSS MiB, cache
fill, evicted) and a summary: RSS and tokens/s at the start and at the end.
Standard library only. Not part of make test: a million tokens take over an
hour on 2 cores.

usage: python3 bench/soak.py [--tokens 1000000] [--chunk 2048] [--window 2044]
                             [--csv bench/out/soak.csv] [--bin build/sinkllm]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def post(url, body, session):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "X-Session-Id": session})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--window", type=int, default=2044)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default="build/sinkllm")
    ap.add_argument("--csv", default="bench/out/soak.csv")
    a = ap.parse_args()
    port = free_port()
    srv = subprocess.Popen([a.bin, "serve", "--port", str(port), "--slots", "1",
                            "-t", str(a.threads), "--window", str(a.window),
                            "--max-body", "256MiB", "--timeout", "3600"],
                           stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    os.makedirs(os.path.dirname(a.csv) or ".", exist_ok=True)
    out = open(a.csv, "w")
    out.write("request,tokens,tokens_per_s,rss_mib,n_cached,evicted\n")
    msgs = [{"role": "user", "content": "Tell me a very long story about the sea. Never stop."}]
    total, i, rows = 0, 0, []
    try:
        while total < a.tokens:
            t0 = time.time()
            r = post(base + "/v1/chat/completions",
                     {"messages": msgs, "max_tokens": a.chunk, "temperature": 0.8, "ignore_eos": True,
                      "seed": i}, "soak")
            dt = time.time() - t0
            n = r["usage"]["completion_tokens"]
            total += n
            info = r.get("sinkllm", {})
            row = (i, total, n / dt if dt > 0 else 0, rss_mib(srv.pid),
                   info.get("n_cached", -1), info.get("evicted_total", -1))
            rows.append(row)
            out.write("%d,%d,%.2f,%.1f,%s,%s\n" % row)
            out.flush()
            print("request %d: %d tokens so far, %.1f tok/s, RSS %.1f MiB, cache %s, evicted %s"
                  % row, flush=True)
            msgs.append({"role": "assistant", "content": r["choices"][0]["message"]["content"]})
            msgs.append({"role": "user", "content": "Go on."})
            i += 1
    finally:
        srv.terminate()
        srv.wait()
    if len(rows) >= 4:
        head, tail = rows[1:4], rows[-3:]
        mean = lambda xs: sum(xs) / len(xs)
        print("start: %.1f tok/s, RSS %.1f MiB | end: %.1f tok/s, RSS %.1f MiB | %d tokens"
              % (mean([r[2] for r in head]), mean([r[3] for r in head]),
                 mean([r[2] for r in tail]), mean([r[3] for r in tail]), total))


if __name__ == "__main__":
    sys.exit(main())
