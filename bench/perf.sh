#!/bin/sh
# perf.sh - everything docs/performance.md reports, in one run on a quiet
# machine (about 40 minutes on 2 cores):
#   1. bench/vs-llamacpp.sh: sinkllm and llama.cpp side by side (pp512,
#      tg128, decode at depths 1024-8000, sink 4+2044 after 100,000 tokens,
#      memory bandwidth), 1 and 2 threads;
#   2. where decode time goes: `perf record` of sinkllm decoding (one
#      thread; at depth 0, and at depth 2,048 with sink 4+2044), top symbols;
#   3. warm model load time and the RSS breakdown (sinkllm bench prints them);
#   4. the packed layout against the file layout (SINKLLM_NOPACK=1).
# Output: bench/out/ (vs-llamacpp.*, membw.csv, profile-*.txt, perf-extra.txt).
#
# Environment: PYTHON (llama-cpp-python, gguf, matplotlib; default
# .venv-ref/bin/python), DEPTH_REPS (1), anything vs-llamacpp.sh reads.
set -u
cd "$(dirname "$0")/.." || exit 1
SK=${SINKLLM:-build/sinkllm}
OUT=bench/out
mkdir -p "$OUT"

DEPTH_REPS=${DEPTH_REPS:-1} sh bench/vs-llamacpp.sh

if command -v perf >/dev/null 2>&1; then
    perf record -q -o "$OUT/perf-tg.data" "$SK" bench -t 1 -p 0 -n 1024 -r 1 >/dev/null 2>&1
    perf report -i "$OUT/perf-tg.data" --no-children --percent-limit 0.5 --stdio 2>/dev/null |
        grep -E '^ +[0-9]' > "$OUT/profile-tg.txt"
    perf record -q -o "$OUT/perf-d2048.data" "$SK" bench -t 1 -p 0 -n 2048 -r 1 -d 2048 \
        --cache sink --sinks 4 --window 2044 >/dev/null 2>&1
    perf report -i "$OUT/perf-d2048.data" --no-children --percent-limit 0.5 --stdio 2>/dev/null |
        grep -E '^ +[0-9]' > "$OUT/profile-d2048.txt"
    rm -f "$OUT"/perf-*.data
else
    echo "perf.sh: no perf; profiles skipped" >&2
fi

{
    echo "## load time and memory (sinkllm bench, 5 runs)"
    for i in 1 2 3 4 5; do "$SK" bench -t 2 -p 0 -n 16 -r 1 | grep 'model load'; done
    echo "## after 2,200 tokens, sink 4+2044"
    "$SK" bench -t 2 -p 0 -n 16 -r 1 -d 2200 --cache sink --sinks 4 --window 2044 | grep 'model load'
    echo "## packed (default) vs file layout (SINKLLM_NOPACK=1), 2 threads"
    "$SK" bench -t 2 -p 512 -n 128 | grep -E 'pp512|tg128'
    SINKLLM_NOPACK=1 "$SK" bench -t 2 -p 512 -n 128 | grep -E 'pp512|tg128'
} > "$OUT/perf-extra.txt" 2>&1
cat "$OUT/perf-extra.txt"
