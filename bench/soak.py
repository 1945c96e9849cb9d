#!/usr/bin/env python3
"""soak.py - one session streaming a million tokens through `sinkllm serve`.

Starts the server, then keeps one chat session going: each request sends
the whole conversation (the server pre-fills only the new suffix) and asks
for --chunk tokens (ignore_eos, so every reply runs its full length).

  --mode gen     the user says "Go on." every turn: the tokens are generated
  --mode mixed   the user pastes the next --user-chars characters of a book
                 (--text, looped) each turn, then the model answers: the
                 tokens are pre-filled user text and generated replies

Tokens through the session = pre-filled + generated, counted from the
server's own numbers (sinkllm.prefill_tokens, usage.completion_tokens).
Prints and writes CSV rows (request, tokens so far, generated so far,
pre-filled this request, decode tokens/s as the server measured it,
wall-clock tokens/s of the request, server RSS MiB, cache fill, evicted
total) and a summary: RSS and speeds at the start and at the end.
Standard library only. Not part of make test: a million tokens take about
an hour.

usage: python3 bench/soak.py [--mode gen|mixed] [--tokens 1000000] [--chunk N]
                             [--window 2044] [--threads 2] [--csv bench/out/soak.csv]
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
    ap.add_argument("--mode", choices=["gen", "mixed"], default="gen")
    ap.add_argument("--text", default="data/moby-dick.txt")
    ap.add_argument("--user-chars", type=int, default=6000)
    a = ap.parse_args()
    book = open(a.text, encoding="utf-8").read() if a.mode == "mixed" else ""
    book_pos = 0

    def next_user():
        nonlocal book_pos
        if a.mode == "gen":
            return "Go on."
        if book_pos + a.user_chars > len(book):
            book_pos = 0
        t = book[book_pos:book_pos + a.user_chars]
        book_pos += a.user_chars
        return "Here is the next part of the book:\n\n" + t + "\n\nWhat happens in it?"
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
    out.write("request,tokens,generated,prefilled,decode_tok_s,wall_tok_s,rss_mib,n_cached,evicted\n")
    first = "Tell me a very long story about the sea. Never stop." if a.mode == "gen" else next_user()
    msgs = [{"role": "user", "content": first}]
    total, gen, i, rows = 0, 0, 0, []
    try:
        while total < a.tokens:
            t0 = time.time()
            r = post(base + "/v1/chat/completions",
                     {"messages": msgs, "max_tokens": a.chunk, "temperature": 0.8, "ignore_eos": True,
                      "seed": i}, "soak")
            dt = time.time() - t0
            n = r["usage"]["completion_tokens"]
            info = r.get("sinkllm", {})
            pre = info.get("prefill_tokens", 0)
            total += n + pre
            gen += n
            row = (i, total, gen, pre, info.get("tokens_per_second", 0),
                   (n + pre) / dt if dt > 0 else 0, rss_mib(srv.pid),
                   info.get("n_cached", -1), info.get("evicted_total", -1))
            rows.append(row)
            out.write("%d,%d,%d,%d,%.2f,%.2f,%.1f,%s,%s\n" % row)
            out.flush()
            print("request %d: %d tokens so far (%d generated), %d pre-filled, decode %.1f tok/s, "
                  "wall %.1f tok/s, RSS %.1f MiB, cache %s, evicted %s" % row, flush=True)
            msgs.append({"role": "assistant", "content": r["choices"][0]["message"]["content"]})
            msgs.append({"role": "user", "content": next_user()})
            i += 1
    finally:
        srv.terminate()
        srv.wait()
    if len(rows) >= 4:
        head, tail = rows[1:4], rows[-3:]
        mean = lambda xs: sum(xs) / len(xs)
        print("start: decode %.1f tok/s, wall %.1f tok/s, RSS %.1f MiB | end: decode %.1f tok/s, "
              "wall %.1f tok/s, RSS %.1f MiB | %d tokens through the session, %d generated, "
              "%d requests"
              % (mean([r[4] for r in head]), mean([r[5] for r in head]), mean([r[6] for r in head]),
                 mean([r[4] for r in tail]), mean([r[5] for r in tail]), mean([r[6] for r in tail]),
                 total, gen, len(rows)))


if __name__ == "__main__":
    sys.exit(main())
