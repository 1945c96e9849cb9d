#!/bin/sh
# gemma-vs-llamacpp.sh - `sinkllm bench` next to llama.cpp's own llama-bench
# on the same GGUF (default Gemma 3 270M Q4_K_M), same thread count, in one
# run: issue 9 point 7's pp512 and tg128.
#
#   sh bench/gemma-vs-llamacpp.sh
#
# REPS rounds; each round runs, for ppPP (-p PP -n 0) and tgTG (-p 0 -n TG):
#   sinkllm bench -r 1 --csv                      (its own warm-up run first)
#   llama-bench -r 1 -fa 0,1 -o csv               (warm-up first; flash
#                                                  attention off and on)
# alternating which engine goes first from round to round, so that a slow
# phase of a shared machine does not fall on one engine only. Per test the
# table gives sinkllm's median over the rounds, llama.cpp's median over the
# rounds of its better setting (max of -fa 0 and -fa 1 in that round), and
# their ratio; `uptime` is recorded before and after (the load average says
# how quiet the machine was: both engines run THREADS threads, and other
# work on the cores slows both).
#
# llama-bench: LLAMA_BENCH, or DIR/bin/llama-bench with DIR printed by
# scripts/build-peer.sh, or the binary in the peer's CMake build directory
# next to it (where a newer llama.cpp puts its binaries).
#
# Writes OUT (bench/out)/gemma-vs-llamacpp.csv (engine,round,test,setting,
# tokens_per_s: every measurement) and gemma-vs-llamacpp.md (the table, also
# printed). Environment: MODEL, SINKLLM (build/sinkllm), THREADS (2), PP
# (512), TG (128), REPS (3), LLAMA_BENCH, OUT.
set -u
cd "$(dirname "$0")/.." || exit 1

MODEL=${MODEL:-models/gemma-3-270m-Q4_K_M.gguf}
SINKLLM=${SINKLLM:-build/sinkllm}
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
OUT=${OUT:-bench/out}
LLAMA_BENCH=${LLAMA_BENCH:-}

die() { echo "gemma-vs-llamacpp.sh: $*" >&2; exit 1; }
[ -f "$MODEL" ] || die "no model $MODEL (make model MODEL=gemma3-270m)"
[ -x "$SINKLLM" ] || die "no $SINKLLM (make)"
if [ -z "$LLAMA_BENCH" ]; then
    DIR=$(sh scripts/build-peer.sh 2>/dev/null | tail -n 1) || die "scripts/build-peer.sh failed"
    LLAMA_BENCH=$DIR/bin/llama-bench
    if [ ! -x "$LLAMA_BENCH" ]; then # the CMake build directory beside DIR
        B=$(dirname "$DIR")/build-$(basename "$DIR" | sed 's/^llama\.cpp-//')/bin/llama-bench
        [ -x "$B" ] && LLAMA_BENCH=$B
    fi
fi
[ -x "$LLAMA_BENCH" ] || die "no llama-bench ($LLAMA_BENCH); set LLAMA_BENCH"
mkdir -p "$OUT"
RAW=$OUT/gemma-vs-llamacpp.csv
MD=$OUT/gemma-vs-llamacpp.md
echo "engine,round,test,setting,tokens_per_s" > "$RAW"

UP0=$(uptime)
run_sinkllm() { # round test-name args...
    r=$1 name=$2
    shift 2
    v=$("$SINKLLM" bench -m "$MODEL" -t "$THREADS" -r 1 --csv "$@" 2>/dev/null | awk -F, -v t="$name" '$3 == t {print $4}')
    [ -n "$v" ] || die "sinkllm bench $* gave no $name row"
    echo "sinkllm,$r,$name,dense,$v" >> "$RAW"
    echo "  round $r sinkllm   $name: $v tok/s" >&2
}
run_llama() { # round test-name args...
    r=$1 name=$2
    shift 2
    rows=$("$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -r 1 -fa 0,1 -o csv "$@" 2>/dev/null |
        python3 -c 'import csv, sys
for row in csv.DictReader(sys.stdin):
    print("fa%s,%s" % (row["flash_attn"], row["avg_ts"]))')
    [ -n "$rows" ] || die "llama-bench $* gave no rows"
    for row in $rows; do
        echo "llama.cpp,$r,$name,$row" >> "$RAW"
        echo "  round $r llama.cpp $name: ${row#*,} tok/s (${row%%,*})" >&2
    done
}
r=1
while [ "$r" -le "$REPS" ]; do
    if [ $((r % 2)) -eq 1 ]; then
        run_sinkllm "$r" "pp$PP" -p "$PP" -n 0
        run_llama "$r" "pp$PP" -p "$PP" -n 0
        run_sinkllm "$r" "tg$TG" -p 0 -n "$TG"
        run_llama "$r" "tg$TG" -p 0 -n "$TG"
    else
        run_llama "$r" "pp$PP" -p "$PP" -n 0
        run_sinkllm "$r" "pp$PP" -p "$PP" -n 0
        run_llama "$r" "tg$TG" -p 0 -n "$TG"
        run_sinkllm "$r" "tg$TG" -p 0 -n "$TG"
    fi
    r=$((r + 1))
done
UP1=$(uptime)

python3 - "$RAW" "$MODEL" "$THREADS" "$UP0" "$UP1" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" <<'EOF' | tee "$MD"
import csv, statistics, sys
raw, model, threads, up0, up1, cpu = sys.argv[1:7]
rows = list(csv.DictReader(open(raw)))
tests = list(dict.fromkeys(r["test"] for r in rows))
print(f"Model {model}, {threads} threads, CPU {cpu}")
print(f"uptime before: {up0.strip()}")
print(f"uptime after:  {up1.strip()}")
print()
print("| test | sinkllm (median) | llama.cpp best of fa 0/1 (median) | ratio | sinkllm rounds | llama.cpp rounds (fa0/fa1) |")
print("| --- | ---: | ---: | ---: | --- | --- |")
for t in tests:
    sk = [float(r["tokens_per_s"]) for r in rows if r["engine"] == "sinkllm" and r["test"] == t]
    rounds = sorted({r["round"] for r in rows if r["test"] == t}, key=int)
    per = {rd: {r["setting"]: float(r["tokens_per_s"]) for r in rows
                if r["engine"] == "llama.cpp" and r["test"] == t and r["round"] == rd} for rd in rounds}
    best = [max(per[rd].values()) for rd in rounds if per[rd]]
    ms, ml = statistics.median(sk), statistics.median(best)
    lr = " ".join("%.1f/%.1f" % (per[rd].get("fa0", float("nan")), per[rd].get("fa1", float("nan"))) for rd in rounds)
    print(f"| {t} | {ms:.1f} | {ml:.1f} | {ms / ml:.2f}x | {' '.join('%.1f' % v for v in sk)} | {lr} |")
EOF
