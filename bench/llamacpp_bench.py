#!/usr/bin/env python3
"""llamacpp_bench.py - llama.cpp's speed on this machine, through
llama-cpp-python, measured the way llama-bench does:

  ppN  evaluate N prompt tokens in one batch from a fresh (empty) context
  tgM  M single-token decode steps from a fresh context

With --depth D each repetition first evaluates D prompt tokens (untimed, in
batches of 512) into the fresh context, so the test runs with D tokens in
llama.cpp's dense KV cache: "tgM @ dD" in llama-bench's words. n_ctx is
D + N + M rounded up to 256.

Each test runs once to warm up, then --reps times; the median time gives
tokens/s. With --depth there is no warm-up run: each run's untimed depth
pre-fill warms up (as in sinkllm bench --depth), and a pre-fill of 8,000
tokens costs minutes on one core. Prompt tokens are fixed
pseudo-random ids (as in llama-bench), so the result does not depend on any
text. Settings: n_batch = n_ubatch = 512, n_threads = n_threads_batch = T,
F16 KV cache, flash attention off (as for the golden files).

    python bench/llamacpp_bench.py --model M.gguf -t 1 -t 2 [-p 512] [-n 128]
                                   [--depth D] [--reps 3] [--header]

Prints CSV rows `llama.cpp,T,ppN,tokens_per_s,D,dense` and
`llama.cpp,T,tgM,tokens_per_s,D,dense` (the columns of `sinkllm bench
--csv`; no header unless --header) on stdout; llama.cpp's own log is
silenced."""

import argparse
import statistics
import sys
import time

import llama_cpp


def fake_tokens(n, n_vocab, seed=1):
    """Deterministic ids in [0, n_vocab) from a 64-bit LCG."""
    x, out = seed, []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out.append((x >> 33) % n_vocab)
    return out


def bench_threads(model, t, n_prompt, n_gen, depth, reps):
    n_ctx = ((depth + n_prompt + n_gen + 255) // 256) * 256
    m = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                        n_threads=t, n_threads_batch=t, seed=0, logits_all=False,
                        flash_attn=False, type_k=llama_cpp.GGML_TYPE_F16,
                        type_v=llama_cpp.GGML_TYPE_F16, verbose=False)
    prompt = fake_tokens(n_prompt, m.n_vocab())
    gen = fake_tokens(n_gen, m.n_vocab(), seed=2)
    fill = fake_tokens(depth, m.n_vocab(), seed=3)

    def fresh():
        """An empty cache holding `depth` tokens, like a fresh context."""
        m.reset()  # n_tokens = 0: the next eval clears the KV cache
        if depth > 0:
            m.eval(fill)
        else:
            m.eval([gen[0]])  # clears the cache outside the timing
            m.reset()

    def pp():
        fresh()
        t0 = time.perf_counter()
        m.eval(prompt)
        return time.perf_counter() - t0

    def tg():
        fresh()
        t0 = time.perf_counter()
        for tok in gen:
            m.eval([tok])
        return time.perf_counter() - t0

    rows = []
    at = f" @ d{depth}" if depth else ""
    for name, fn, n in ((f"pp{n_prompt}", pp, n_prompt), (f"tg{n_gen}", tg, n_gen)):
        if n <= 0:
            continue
        if depth == 0:
            fn()  # warm-up; with a depth, each run's pre-fill warms up
        times = [fn() for _ in range(reps)]
        tps = n / statistics.median(times)
        print(f"llama.cpp -t {t} {name}{at}: {tps:.1f} tokens/s", file=sys.stderr)
        rows.append((name, tps))
    m.close() if hasattr(m, "close") else None
    return rows


def main():
    ap = argparse.ArgumentParser(description="llama.cpp pp/tg speed via llama-cpp-python")
    ap.add_argument("--model", "-m", required=True)
    ap.add_argument("--threads", "-t", type=int, action="append", required=True)
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (ppN)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (tgM)")
    ap.add_argument("--depth", "-d", type=int, default=0,
                    help="tokens already in the (dense) cache before each test (0)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--header", action="store_true")
    a = ap.parse_args()
    if a.p > 512:
        sys.exit("-p must be <= 512 (one batch)")
    if a.p < 0 or a.n < 0 or a.depth < 0:
        sys.exit("-p, -n and --depth must be >= 0")
    if a.reps < 1 or any(t < 1 for t in a.threads):
        sys.exit("--reps and --threads must be >= 1")
    if a.header:
        print("engine,threads,test,tokens_per_s,depth,cache")
    for t in a.threads:
        for name, tps in bench_threads(a.model, t, a.p, a.n, a.depth, a.reps):
            print(f"llama.cpp,{t},{name},{tps:.1f},{a.depth},dense", flush=True)


if __name__ == "__main__":
    main()
