#!/usr/bin/env python3
"""cluster-load.py - many streaming clients through HAProxy against the
replicas of deploy/cluster.sh (issue 11 point 7). Loopback only, bounded
in clients and time.

Starts the cluster (deploy/cluster.sh: Redis, REPLICAS replicas, HAProxy),
then CLIENTS threads each hold conversations of up to TURNS streaming
turns (a new X-Session-Id per conversation, MAX_TOKENS per reply) until
DURATION seconds have passed; a 503 is honoured with its Retry-After.
Every 5 s the replicas' RSS is sampled. Prints and writes OUT/cluster-load.md:
requests by status (503 with and without Retry-After, other 5xx =
unplanned), time to first token and whole-request latency p50/p99,
aggregate tokens/s, each replica's RSS first/max/last.

    .venv/bin/python bench/cluster-load.py            (64 clients, 600 s)
    CLIENTS=8 DURATION=60 .venv/bin/python bench/cluster-load.py
Environment: CLIENTS (64), DURATION (600), TURNS (4), MAX_TOKENS (48),
REPLICAS (3), SLOTS (2), ARGS (more serve flags), PORT (8480), OUT (bench/out).
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import requests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CLIENTS = int(os.environ.get("CLIENTS", 64))
DURATION = float(os.environ.get("DURATION", 600))
TURNS = int(os.environ.get("TURNS", 4))
MAX_TOKENS = int(os.environ.get("MAX_TOKENS", 48))
REPLICAS = int(os.environ.get("REPLICAS", 3))
PORT = int(os.environ.get("PORT", 8480))
BASE_PORT = PORT + 10
OUT = os.environ.get("OUT", os.path.join(ROOT, "bench", "out"))
URL = f"http://127.0.0.1:{PORT}"
QUESTIONS = ["Tell me about the sea.", "What is a whale?", "Name a famous ship.", "Why do sailors sing?",
             "Describe a storm.", "What is a harpoon?"]


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def replica_pids():
    pids = {}
    for i in range(REPLICAS):
        r = subprocess.run(["pgrep", "-f", f"serve .*--port {BASE_PORT + i} "], capture_output=True, text=True)
        if r.stdout.split():
            pids[f"r{i}"] = int(r.stdout.split()[0])
    return pids


def main():
    env = dict(os.environ, PORT=str(PORT), BASE_PORT=str(BASE_PORT), REDIS_PORT=str(PORT + 1),
               REPLICAS=str(REPLICAS), OUT=os.path.join(ROOT, "build", "cluster-load"))
    cl = subprocess.Popen(["sh", os.path.join(ROOT, "deploy", "cluster.sh")], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    for line in cl.stdout:
        sys.stdout.write(line)
        if line.startswith("URL:"):
            break
    else:
        raise SystemExit("cluster.sh failed")
    pids = replica_pids()
    rss = {k: [] for k in pids}
    lock = threading.Lock()
    status, ttft, latency, tokens = {}, [], [], [0]
    stop_at = time.time() + DURATION
    t_start = time.time()

    def count(k):
        with lock:
            status[k] = status.get(k, 0) + 1

    def client(c):
        n_conv = 0
        while time.time() < stop_at:
            sid, msgs, n_conv = f"load-{c}-{n_conv}", [], n_conv + 1
            for t in range(TURNS):
                if time.time() >= stop_at:
                    return
                msgs.append({"role": "user", "content": QUESTIONS[(c + t) % len(QUESTIONS)]})
                body = {"model": "m", "messages": msgs, "max_tokens": MAX_TOKENS, "stream": True}
                t0 = time.time()
                try:
                    r = requests.post(URL + "/v1/chat/completions", json=body, headers={"X-Session-Id": sid},
                                      stream=True, timeout=300)
                except requests.RequestException as e:
                    count("connection error: " + type(e).__name__)
                    time.sleep(1)
                    break
                if r.status_code == 503:
                    ra = r.headers.get("Retry-After")
                    count("503 with Retry-After" if ra else "503 without Retry-After (unplanned)")
                    r.close()
                    time.sleep(float(ra) if ra else 1.0)
                    msgs.pop()
                    continue
                if r.status_code != 200:
                    count(f"{r.status_code} (unplanned)" if r.status_code >= 500 else str(r.status_code))
                    r.close()
                    break
                text, first, n, done = "", None, 0, False
                try:
                    for line in r.iter_lines():
                        if not line.startswith(b"data: "):
                            continue
                        if line == b"data: [DONE]":
                            done = True
                            break
                        d = json.loads(line[6:])["choices"][0]["delta"].get("content")
                        if d:
                            if first is None:
                                first = time.time() - t0
                            text += d
                            n += 1
                except requests.RequestException as e:
                    count("stream broken: " + type(e).__name__)
                    break
                count("200" if done else "200 without [DONE] (unplanned)")
                with lock:
                    latency.append(time.time() - t0)
                    if first is not None:
                        ttft.append(first)
                    tokens[0] += n
                msgs.append({"role": "assistant", "content": text})

    def sampler():
        while time.time() < stop_at + 5:
            for k, pid in pids.items():
                v = rss_kib(pid)
                if v:
                    rss[k].append(v)
            time.sleep(5)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.time() - t_start
    cl.terminate()
    cl.wait(timeout=30)
    n_req = sum(status.values())
    unplanned = sum(v for k, v in status.items() if "unplanned" in k or "error" in k or "broken" in k)
    lines = [f"# cluster load: {CLIENTS} streaming clients, {REPLICAS} replicas behind HAProxy, {wall:.0f} s", "",
             f"machine: {os.uname().nodename}, {os.cpu_count()} CPUs; {TURNS} turns per conversation, "
             f"max_tokens {MAX_TOKENS}", "", "| status | requests |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(status.items())]
    lines += ["", f"requests {n_req}, unplanned failures {unplanned}",
              f"time to first token p50 {pct(ttft, 50):.2f} s, p99 {pct(ttft, 99):.2f} s",
              f"request latency p50 {pct(latency, 50):.2f} s, p99 {pct(latency, 99):.2f} s",
              f"aggregate {tokens[0] / wall:.1f} tokens/s ({tokens[0]} streamed content chunks)", "",
              "| replica | RSS first MiB | max MiB | last MiB |", "|---|---:|---:|---:|"]
    for k, v in rss.items():
        if v:
            lines.append(f"| {k} | {v[0] / 1024:.0f} | {max(v) / 1024:.0f} | {v[-1] / 1024:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cluster-load.md"), "w") as f:
        f.write(report)
    return 1 if unplanned else 0


if __name__ == "__main__":
    sys.exit(main())
