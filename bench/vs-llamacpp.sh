#!/bin/sh
# vs-llamacpp.sh - sinkllm next to llama.cpp on this machine, same model,
# same thread counts, in one run.
#
#   sh bench/vs-llamacpp.sh            (make bench runs it)
#
# For each thread count (THREADS, default "1 2"):
#   ppPP, tgTG     from a fresh cache (sinkllm: dense cache; llama.cpp: its own)
#   tgTG @ dD      decode after D tokens (DEPTHS, default 1024 2048 4096 8000)
#                  were fed in, untimed: llama.cpp with its dense cache of that
#                  depth; sinkllm once with --cache dense and once with
#                  --cache sink, SINKS sinks + a window of D - SINKS (a cache
#                  that holds at most D tokens)
#   tgTG @ dLONG   sinkllm sink SINKS+LONG_WINDOW (4 + 2044) after LONG
#                  (100,000) tokens went through the cache in chunks, with
#                  eviction; compared with llama.cpp at depth SINKS+LONG_WINDOW
#                  (2,048), as many tokens as that cache holds
# and build/membw, the machine's memory read bandwidth at the same thread
# counts. Decode reads every weight once per token (bench/weight_bytes.py:
# all tensors, the tied output matrix token_embd included), so bytes/token x
# tokens/s is the weight bandwidth decode achieves; the table gives it with
# its fraction of the measured read bandwidth.
#
# llama.cpp runs through llama-cpp-python (bench/llamacpp_bench.py: warm-up +
# REPS runs, median); sinkllm runs `sinkllm bench --csv` (REPS runs, mean;
# with a depth the pre-fill is the warm-up). Without llama.cpp's Python the
# script measures sinkllm alone, with a warning.
#
# Writes bench/out/:
#   vs-llamacpp.csv        engine,threads,test,tokens_per_s,depth,cache
#                          (depth: tokens fed before the test; cache: dense,
#                          sink4+2044 = 4 sinks + a 2,044-token window)
#   membw.csv              threads,best_gb_s,median_gb_s
#   vs-llamacpp.md         the table printed on stdout
#   vs-llamacpp-depth.png  decode tokens/s against depth (bench/plot_depth.py)
#
# Environment: PYTHON (default .venv-ref/bin/python: llama-cpp-python, gguf,
# matplotlib), MODEL, SINKLLM (the binary), MEMBW (build/membw), THREADS
# ("1 2"), PP (512), TG (128), REPS (3), DEPTHS ("1024 2048 4096 8000"),
# DEPTH_REPS (REPS: repetitions of the tests at a depth), SINKS (4), LONG
# (100000; 0 = skip), LONG_WINDOW (2044), LONG_REPS (1), MEMBW_MIB (1024).
#
# Each repetition at a depth feeds the depth again (untimed), and that is
# most of the time: at depth 8,000 one pre-fill takes about 2 minutes on one
# core for either engine, the 100,000-token sink stream about 10. The full
# run takes about an hour on 2 cores; DEPTH_REPS=1 makes it about half. A
# quick check that everything runs end to end:
#   THREADS=1 PP=64 TG=16 REPS=1 DEPTHS="256 512" LONG=2000 LONG_WINDOW=252 \
#   MEMBW_MIB=256 sh bench/vs-llamacpp.sh
set -u
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-.venv-ref/bin/python}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SINKLLM=${SINKLLM:-build/sinkllm}
MEMBW=${MEMBW:-build/membw}
THREADS=${THREADS:-"1 2"}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
DEPTH_REPS=${DEPTH_REPS:-$REPS}
DEPTHS=${DEPTHS:-"1024 2048 4096 8000"}
SINKS=${SINKS:-4}
LONG=${LONG:-100000}
LONG_WINDOW=${LONG_WINDOW:-2044}
LONG_REPS=${LONG_REPS:-1}
MEMBW_MIB=${MEMBW_MIB:-1024}
OUT=bench/out
CSV=$OUT/vs-llamacpp.csv
MD=$OUT/vs-llamacpp.md
PNG=$OUT/vs-llamacpp-depth.png
TMP=$OUT/.vs-llamacpp.$$

say() { echo "vs-llamacpp: $*" >&2; }

for v in PP TG REPS DEPTH_REPS SINKS LONG LONG_WINDOW LONG_REPS MEMBW_MIB; do
    eval "x=\$$v"
    case $x in '' | *[!0-9]*) say "$v must be a non-negative integer, got '$x'"; exit 2 ;; esac
done
for x in $THREADS $DEPTHS; do
    case $x in '' | *[!0-9]*) say "THREADS and DEPTHS must list integers, got '$x'"; exit 2 ;; esac
done

[ -f "$MODEL" ] || { say "no model at $MODEL (make model)"; exit 1; }
mkdir -p "$OUT"
trap 'rm -f "$TMP" "$TMP".*' EXIT
load0=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)

# the first of PYTHON, python3 that imports module $1 (empty: none)
py_with() {
    for p in "$PYTHON" python3; do
        if { [ -x "$p" ] || command -v "$p" >/dev/null 2>&1; } && "$p" -c "import $1" 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

have_sk=1
if [ ! -x "$SINKLLM" ]; then
    say "no $SINKLLM (make all); llama.cpp only"
    have_sk=0
fi
have_ll=1
if ! { [ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1; } || ! "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
    say "warning: no llama.cpp (llama-cpp-python) in PYTHON=$PYTHON (make refvenv); sinkllm only"
    have_ll=0
fi
[ $have_sk = 1 ] || [ $have_ll = 1 ] || { say "neither engine can run"; exit 1; }
status=0

# ---- the machine: read bandwidth, and the bytes that decode reads per token
[ -x "$MEMBW" ] || make -s "$MEMBW" >/dev/null 2>&1 || true
echo "threads,best_gb_s,median_gb_s" > "$OUT/membw.csv"
if [ -x "$MEMBW" ]; then
    say "memory read bandwidth ($MEMBW, $MEMBW_MIB MiB)"
    # shellcheck disable=SC2086 # split THREADS into its words: "1 2" -> 1,2
    if "$MEMBW" --csv --size "$MEMBW_MIB" --threads "$(echo $THREADS | tr ' ' ',')" > "$TMP.bw"; then
        cp "$TMP.bw" "$OUT/membw.csv"
    else
        say "warning: $MEMBW failed; no bandwidth fractions"
    fi
else
    say "warning: no $MEMBW (make $MEMBW); no bandwidth fractions"
fi
wbytes=""
gpy=$(py_with gguf)
if [ -n "$gpy" ]; then
    wbytes=$("$gpy" bench/weight_bytes.py "$MODEL" 2>/dev/null) || wbytes=""
fi
[ -n "$wbytes" ] || say "warning: no python with the gguf package; no weight bandwidth"

# ---- the runs ---------------------------------------------------------
echo "engine,threads,test,tokens_per_s,depth,cache" > "$CSV"

# sk THREADS ARGS...: sinkllm bench rows into the CSV, a progress line each
sk() {
    [ $have_sk = 1 ] || return 0
    t=$1
    shift
    if ! "$SINKLLM" bench -m "$MODEL" -t "$t" --csv "$@" > "$TMP.sk" 2> "$TMP.err"; then
        say "sinkllm bench -t $t $* failed:"
        cat "$TMP.err" >&2
        status=1
    fi
    grep '^sinkllm,' "$TMP.sk" >> "$CSV"
    awk -F, '/^sinkllm,/ { d = $5 > 0 ? " @ d" $5 : ""
        printf "sinkllm -t %s %s%s (%s): %.1f tokens/s\n", $2, $3, d, $6, $4 }' "$TMP.sk" >&2
}

# ll THREADS PP TG DEPTH REPS: llama.cpp rows into the CSV
ll() {
    [ $have_ll = 1 ] || return 0
    if ! "$PYTHON" bench/llamacpp_bench.py -m "$MODEL" -t "$1" -p "$2" -n "$3" --depth "$4" \
        --reps "$5" >> "$CSV"; then
        say "llama.cpp bench -t $1 -p $2 -n $3 --depth $4 failed"
        status=1
    fi
}

long_ref=$((SINKS + LONG_WINDOW))
for t in $THREADS; do
    sk "$t" -p "$PP" -n "$TG" -r "$REPS"
    ll "$t" "$PP" "$TG" 0 "$REPS"
    [ "$TG" -gt 0 ] || continue
    for d in $DEPTHS; do
        [ "$d" -gt 0 ] || continue
        sk "$t" -p 0 -n "$TG" -r "$DEPTH_REPS" --depth "$d" --cache dense
        if [ "$d" -gt "$SINKS" ]; then
            sk "$t" -p 0 -n "$TG" -r "$DEPTH_REPS" --depth "$d" --cache sink --sinks "$SINKS" --window $((d - SINKS))
        fi
        ll "$t" 0 "$TG" "$d" "$DEPTH_REPS"
    done
    if [ "$LONG" -gt 0 ] && [ "$LONG_WINDOW" -gt 0 ]; then
        sk "$t" -p 0 -n "$TG" -r "$LONG_REPS" --depth "$LONG" --cache sink --sinks "$SINKS" \
            --window "$LONG_WINDOW"
        case " $DEPTHS " in
        *" $long_ref "*) ;;
        *) ll "$t" 0 "$TG" "$long_ref" "$DEPTH_REPS" ;;
        esac
    fi
done

# ---- the table --------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
load1=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)
{
    echo "model: $(basename "$MODEL"); cpu: ${cpu:-unknown} ($(nproc) cores); load before: ${load0:-?}, after: ${load1:-?} (2-thread results suffer badly from other work on the cores); $(date -u +%Y-%m-%d)"
    awk -F, -v bytes="$wbytes" -v mib="$MEMBW_MIB" 'NR > 1 { bw = bw sprintf("%s%s thread%s %.1f GB/s", n++ ? ", " : "", $1, $1 > 1 ? "s" : "", $2) }
        END {
            w = bytes > 0 ? sprintf("weights read per decoded token: %.1f MB (all tensors; the tied output matrix token_embd included)", bytes / 1e6) : "weights read per decoded token: n/a (no gguf package)"
            m = n ? "memory read bandwidth (membw, " mib " MiB, best): " bw : "memory read bandwidth: n/a"
            print w "; " m
        }' "$OUT/membw.csv"
    echo
    awk -F, -v bytes="$wbytes" -v mbfile="$OUT/membw.csv" '
    # tokens an evicting cache holds at most (sink4+2044 -> 2048); -1: dense
    function cap(c,   k, n, i, p, s) {
        k = c; sub(/:.*/, "", k)
        if (k ~ /^dense/) return -1
        n = split(k, p, /[^0-9]+/); s = 0
        for (i = 1; i <= n; i++) if (p[i] != "") s += p[i]
        return s
    }
    # weight bandwidth of a decode at tps tokens/s with t threads
    function bw(tps, t, test,   g) {
        if (test !~ /^tg/ || tps == "" || bytes + 0 <= 0) return "n/a"
        g = bytes * tps / 1e9
        return (t in mb) && mb[t] > 0 ? sprintf("%.1f (%.0f%%)", g, 100 * g / mb[t]) : sprintf("%.1f", g)
    }
    FILENAME == mbfile { if (FNR > 1) mb[$1] = $2; next }
    FNR == 1 { pass++; next }
    pass == 1 {
        if ($1 == "llama.cpp") ll[$2, $3, $5] = $4
        else if ($1 == "sinkllm") { c = cap($6); used[$2, $3, (c >= 0 && c < $5) ? c : $5] = 1 }
        next
    }
    pass == 2 && !hdr++ {
        print "| threads | test | sinkllm cache | sinkllm tok/s | llama.cpp tok/s | sinkllm / llama.cpp | sinkllm weights GB/s (of membw) | llama.cpp weights GB/s (of membw) |"
        print "| ---: | :--- | :--- | ---: | ---: | ---: | ---: | ---: |"
    }
    pass == 2 && $1 == "sinkllm" {
        c = cap($6); ref = (c >= 0 && c < $5) ? c : $5
        name = $3 ($5 > 0 ? " @ d" $5 : "")
        l = ($2 SUBSEP $3 SUBSEP ref) in ll ? ll[$2, $3, ref] : ""
        lcell = l == "" ? "n/a" : sprintf("%.1f", l) (ref != $5 ? " (d" ref ")" : "")
        r = l != "" && l + 0 > 0 ? sprintf("%.2f", $4 / l) : "n/a"
        printf "| %s | %s | %s | %.1f | %s | %s | %s | %s |\n", $2, name, $6, $4, lcell, r,
               bw($4, $2, $3), l == "" ? "n/a" : bw(l, $2, $3)
    }
    pass == 2 && $1 == "llama.cpp" && !(($2 SUBSEP $3 SUBSEP $5) in used) {
        printf "| %s | %s | n/a | n/a | %.1f | n/a | n/a | %s |\n", $2, $3 ($5 > 0 ? " @ d" $5 : ""),
               $4, bw($4, $2, $3)
    }' "$OUT/membw.csv" "$CSV" "$CSV"
    echo
    echo "sinkllm cache: dense = keeps every token; sinkS+W = S attention sinks + a rolling window of W tokens."
    echo "llama.cpp: dense F16 KV cache, flash attention off. A sinkllm row whose depth exceeds its cache is compared with llama.cpp at the depth that cache holds (dN in the llama.cpp column)."
    echo "weights GB/s = weight bytes per token x tokens/s (decode rows); the percentage is of membw's best read bandwidth at that thread count."
} > "$TMP.md"
cp "$TMP.md" "$MD"
cat "$MD"
echo
echo "csv: $CSV, $OUT/membw.csv; table: $MD"

ppy=$(py_with matplotlib)
if [ -z "$ppy" ]; then
    say "warning: no python with matplotlib (make refvenv); no $PNG"
elif "$ppy" bench/plot_depth.py "$CSV" -o "$PNG" \
    --title "decode speed against depth: $(basename "$MODEL"), ${cpu:-cpu} ($(nproc) cores)" >/dev/null; then
    echo "plot: $PNG"
else
    say "plotting failed"
    status=1
fi
exit $status
