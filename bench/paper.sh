#!/bin/sh
# paper.sh - reproduce the StreamingLLM paper's perplexity experiments on the
# default model with data/moby-dick.txt (looped past its ~321K
# tokens). Writes one CSV per run (pos,token,nll,rss_mb) and the PPL lines to
# bench/out/paper/; docs/results.md is written from these.
#
#   sh bench/paper.sh [a|b|c|d|e ...]   (default: all; about two hours on 2 cores)
#
#   a  Fig. 3: 20,000 tokens: dense, window 0+1024, recompute 1024, sink 4+1020
#   b  Table 2: sinks 0/1/2/4/8 with caches 1024 and 2048, 65,536 tokens
#   c  Table 6: caches 4+252 ... 4+4092, 16,384 tokens
#   d  Fig. 5: sink 4+252 over 1,000,000 tokens (PPL and RSS)
#   e  Table 1 variant: four "\n" tokens as the sinks, cache 1024, 65,536 tokens
#   f  KV precision: f32 / f16 / q8_0 storage, sink 4+1020, 20,000 tokens
set -eu
cd "$(dirname "$0")/.."
SK=${SINKLLM:-build/sinkllm}
TXT=${TEXT:-data/moby-dick.txt}
OUT=${OUT:-bench/out/paper}
# Another model (e.g. MODEL=models/gemma-3-270m-Q4_K_M.gguf OUT=bench/out/paper-gemma
# A_TOKENS=40000 B_TOKENS=20000 B_CACHES=1024 sh bench/paper.sh a b)
MODEL_ARG=${MODEL:+-m $MODEL}
A_TOKENS=${A_TOKENS:-20000}
B_TOKENS=${B_TOKENS:-65536}
B_CACHES=${B_CACHES:-1024 2048}
# Runs are independent: two queues with THREADS=1 each use both cores well,
# e.g. `THREADS=1 sh bench/paper.sh d &  THREADS=1 sh bench/paper.sh a e f b c`.
T=${THREADS:-2}
mkdir -p "$OUT"
ppl() { # name, args...
    name=$1; shift
    echo "== $name: $SK ppl -f $TXT -t $T $*" | tee -a "$OUT/log.txt"
    # shellcheck disable=SC2086
    "$SK" ppl $MODEL_ARG -f "$TXT" -t "$T" -q --csv "$OUT/$name.csv" "$@" | tee -a "$OUT/log.txt" | tee "$OUT/$name.ppl"
}
run_a() { run_as; run_ad; run_ar; }
run_as() {
    ppl a_sink --tokens "$A_TOKENS" --cache sink --sinks 4 --window 1020
    ppl a_window --tokens "$A_TOKENS" --cache window --window 1024
}
run_ad() { ppl a_dense --tokens "$A_TOKENS" --cache dense; }
run_ar() { ppl a_recompute --tokens "$A_TOKENS" --cache recompute --window 1024 --score-every "${SCORE_EVERY:-100}"; }
run_b() { for c in $B_CACHES; do table2 "$c"; done; }
run_b8only() { ppl b_s8_c1024 --tokens 65536 --cache sink --sinks 8 --window 1016; }
run_b1() { table2 1024; }
run_b2() { table2 2048; }
table2() {
    for s in 0 1 2 4 8; do
        if [ "$s" = 0 ]; then ppl "b_s0_c$1" --tokens "$B_TOKENS" --cache window --window "$1"
        else ppl "b_s${s}_c$1" --tokens "$B_TOKENS" --cache sink --sinks "$s" --window $(($1 - s)); fi
    done
}
run_c() {
    for c in 256 512 1024 2048 4096; do
        ppl "c_4_$((c - 4))" --tokens 16384 --cache sink --sinks 4 --window $((c - 4))
    done
}
run_d() { ppl d_sink_1M --tokens 1000000 --cache sink --sinks 4 --window 252; }
run_e() { ppl e_newline_sinks --tokens 65536 --cache sink --sinks 4 --window 1020 --sink-token "
"; }
run_f() {
    for k in f32 f16 q8_0; do
        ppl "f_kv_$k" --tokens 20000 --cache sink --sinks 4 --window 1020 --kv-type "$k"
    done
}
[ $# -gt 0 ] || set -- a e b c d f
for x in "$@"; do "run_$x"; done
