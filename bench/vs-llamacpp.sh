#!/bin/sh
# vs-llamacpp.sh - sinkllm next to llama.cpp on this machine, same model,
# same thread counts, in one run.
#
#   sh bench/vs-llamacpp.sh            (make bench runs it)
#
# llama.cpp runs through llama-cpp-python (bench/llamacpp_bench.py: pp512 =
# 512 prompt tokens in one batch from a fresh context, tg128 = 128 single-token
# decodes; warm-up + 3 runs, median). sinkllm runs `sinkllm bench --csv`.
# Writes bench/out/vs-llamacpp.csv (engine,threads,test,tokens_per_s) and
# prints a markdown table with the ratio sinkllm / llama.cpp.
#
# Environment: PYTHON (default .venv-ref/bin/python), MODEL, SINKLLM (the
# binary), THREADS (default "1 2"), PP (512), TG (128).
set -u
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv-ref/bin/python}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SINKLLM=${SINKLLM:-build/sinkllm}
THREADS=${THREADS:-"1 2"}
PP=${PP:-512}
TG=${TG:-128}
OUT=bench/out
CSV=$OUT/vs-llamacpp.csv

[ -f "$MODEL" ] || { echo "vs-llamacpp: no model at $MODEL (make model)" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "vs-llamacpp: no python at $PYTHON (make refvenv, or set PYTHON)" >&2; exit 1; }
mkdir -p "$OUT"
load0=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)
echo "engine,threads,test,tokens_per_s" > "$CSV"

status=0
for t in $THREADS; do
    if [ -x "$SINKLLM" ]; then
        if ! "$SINKLLM" bench -m "$MODEL" -t "$t" -p "$PP" -n "$TG" --csv > "$OUT/.sinkllm.$t" 2>"$OUT/.sinkllm.$t.err"; then
            echo "vs-llamacpp: sinkllm bench -t $t failed:" >&2
            cat "$OUT/.sinkllm.$t.err" >&2
            status=1
        fi
        grep '^sinkllm,' "$OUT/.sinkllm.$t" >> "$CSV"
        rm -f "$OUT/.sinkllm.$t" "$OUT/.sinkllm.$t.err"
    else
        echo "vs-llamacpp: no $SINKLLM (make all); llama.cpp only" >&2
        status=1
    fi
    if ! "$PYTHON" bench/llamacpp_bench.py -m "$MODEL" -t "$t" -p "$PP" -n "$TG" --reps 3 >> "$CSV"; then
        echo "vs-llamacpp: llama.cpp bench -t $t failed" >&2
        status=1
    fi
done

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
echo "model: $(basename "$MODEL"); cpu: ${cpu:-unknown} ($(nproc) cores); load before: ${load0:-?} (2-thread results suffer badly from other work on the cores); $(date -u +%Y-%m-%d)"
echo
awk -F, 'NR > 1 { key = $2 SUBSEP $3; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
                  v[$1, key] = $4 }
    END {
        print "| threads | test | sinkllm tok/s | llama.cpp tok/s | sinkllm / llama.cpp |"
        print "| ---: | :--- | ---: | ---: | ---: |"
        for (i = 0; i < n; i++) {
            k = order[i]; split(k, p, SUBSEP)
            s = ((("sinkllm", k) in v) ? v["sinkllm", k] : "n/a")
            l = ((("llama.cpp", k) in v) ? v["llama.cpp", k] : "n/a")
            r = (s != "n/a" && l != "n/a" && l + 0 > 0) ? sprintf("%.2f", s / l) : "n/a"
            printf "| %s | %s | %s | %s | %s |\n", p[1], p[2], s, l, r
        }
    }' "$CSV"
echo
echo "csv: $CSV"
exit $status
