#!/bin/sh
# batched.sh - many streams decoded together (issue 10), without HTTP:
# `sinkllm bench -P` (sk_decode_batch, one token of every stream per pass)
# next to llama.cpp's own `llama-batched-bench` (column S_TG), same GGUF,
# same threads, one run, the engines alternating round by round.
#
#   sh bench/batched.sh
#
# Each stream first reads DEPTH tokens (untimed: sinkllm feeds them through
# a sink cache of 4 + 2044 that holds them all; llama-batched-bench -npp
# DEPTH, one prompt per stream), then NGEN tokens of each stream are
# decoded and timed: aggregate tokens/s = streams x NGEN / time. llama.cpp
# runs with -fa off and -fa on and keeps the faster (peers.md), its KV cache
# unified as users get it (-c = streams x (DEPTH + NGEN) rounded up).
#
# Environment: MODEL (SmolLM2-135M Q4_1), SINKLLM (build/sinkllm), THREADS
# (2), ROUNDS (2), NPL (1,2,4,8,16), DEPTH (300), NGEN (128),
# LLAMA_CPP_PYTHON_VERSION (0.3.36; the native build of scripts/build-peer.sh,
# made there if missing).
# Writes bench/out/batched.csv (engine,streams,round,tokens_per_s) and
# bench/out/batched.md (medians, ranges, ratios, scaling against one stream,
# the machine and the load before and after).
set -u
cd "$(dirname "$0")/.." || exit 1

MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SINKLLM=${SINKLLM:-build/sinkllm}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
NPL=${NPL:-1,2,4,8,16}
DEPTH=${DEPTH:-300}
NGEN=${NGEN:-128}
OUT=bench/out
mkdir -p "$OUT"
CSV=$OUT/batched.csv
MD=$OUT/batched.md
[ -x "$SINKLLM" ] || { echo "batched.sh: $SINKLLM not built (make)" >&2; exit 1; }
PEER=$(sh scripts/build-peer.sh | tail -1)/bin
[ -x "$PEER/llama-batched-bench" ] || { echo "batched.sh: no llama-batched-bench in $PEER" >&2; exit 1; }
maxn=$(echo "$NPL" | tr , '\n' | sort -n | tail -1)
CTX=$(( (maxn * (DEPTH + NGEN) + 255) / 256 * 256 ))
load0=$(uptime)

echo "engine,streams,round,tokens_per_s" > "$CSV"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    echo "round $r: sinkllm" >&2
    "$SINKLLM" bench -m "$MODEL" -t "$THREADS" -p 0 -n "$NGEN" -d "$DEPTH" -P "$NPL" -r 1 \
        --cache sink --sinks 4 --window 2044 --csv |
        awk -F, -v r="$r" '$1 == "sinkllm" { n = $3; sub(/^tg[0-9]+x/, "", n); print "sinkllm," n "," r "," $4 }' >> "$CSV"
    for fa in off on; do
        echo "round $r: llama.cpp -fa $fa" >&2
        LD_LIBRARY_PATH=$PEER "$PEER/llama-batched-bench" -m "$MODEL" -t "$THREADS" -c "$CTX" -b 2048 \
            -ub 512 -npp "$DEPTH" -ntg "$NGEN" -npl "$NPL" -fa "$fa" 2>"$OUT/batched-llama.log" |
            awk -F'|' -v r="$r" -v fa="$fa" '$2 ~ /^ *[0-9]+ *$/ { gsub(/ /, ""); print "llama.cpp-fa" fa "," $4 "," r "," $9 }' >> "$CSV"
    done
    r=$((r + 1))
done
load1=$(uptime)

# the table: per engine and stream count the median and range of the rounds
# (llama.cpp: per round the faster of -fa off/on)
{
    echo "# Streams decoded together: sinkllm bench -P vs llama-batched-bench"
    echo
    echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $THREADS threads; $(basename "$MODEL");"
    echo "each stream after $DEPTH tokens, $NGEN tokens of each timed; $ROUNDS rounds, alternating."
    echo "Load before: $load0"
    echo "Load after: $load1"
    echo
    echo "| streams | sinkllm tok/s | llama.cpp tok/s | ratio | sinkllm vs 1 stream | llama.cpp vs 1 stream |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
    awk -F, 'NR > 1 {
        e = $1 ~ /^llama/ ? "llama" : "sinkllm"; k = e SUBSEP $2 SUBSEP $3
        if (!(k in v) || $4 > v[k]) v[k] = $4
        seen[$2] = 1
    }
    function med(e, n,   i, m, a, x, j, t) {
        m = 0
        for (x in v) { split(x, p, SUBSEP); if (p[1] == e && p[2] == n) a[++m] = v[x] }
        for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        lo[e] = a[1]; hi[e] = a[m]
        return m == 0 ? 0 : (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2)
    }
    END {
        n = 0; for (s in seen) ns[++n] = s + 0
        for (i = 2; i <= n; i++) { t = ns[i]; for (j = i - 1; j >= 1 && ns[j] > t; j--) ns[j + 1] = ns[j]; ns[j + 1] = t }
        for (i = 1; i <= n; i++) {
            s = ns[i]; a = med("sinkllm", s); al = lo["sinkllm"]; ah = hi["sinkllm"]
            b = med("llama", s); bl = lo["llama"]; bh = hi["llama"]
            if (i == 1) { a1 = a; b1 = b }
            printf "| %d | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.2fx | %.2fx | %.2fx |\n", s, a, al, ah, b, bl, bh,
                b ? a / b : 0, a1 ? a / a1 : 0, b1 ? b / b1 : 0
        }
    }' "$CSV"
} > "$MD"
cat "$MD"
