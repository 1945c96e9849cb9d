#!/bin/sh
# tiers.sh - sinkllm forced to each kernel tier this CPU has (SINKLLM_ISA),
# next to llama.cpp built for the same tier: same GGUF, same threads, one
# run, the engines alternating (ours, theirs, ours, theirs).
#
#   sh bench/tiers.sh
#
# Tests (TESTS, default "pp512 tg128 pp2048 tg128@d2048"):
#   ppN       pre-fill of N tokens into an empty cache
#   tgN       decode of N tokens from an empty cache
#   tgN@dD    decode of N tokens after D tokens were fed, untimed (dense
#             cache; llama-bench -d D)
#   tgN@sinkD decode of N tokens after D tokens went through a sink cache
#             of SINKS + SINK_WINDOW (4 + 2044) with eviction (issue 16's
#             "100K-token sink row": tg128@sink100000); llama.cpp, which
#             has no such cache, at depth SINKS + SINK_WINDOW (2,048), as
#             many tokens as that cache holds (its dense cache)
# sinkllm: `sinkllm bench --csv -r 1` under SINKLLM_ISA=T (its own warm-up
# run first); llama.cpp: `llama-bench -r 1 -o csv` with -fa off and -fa on,
# the faster kept (docs: ../shared/docs/peers.md), its CPU repacking left
# on. ROUNDS rounds; the table gives per engine, tier and test the median
# and the range (min-max) of the rounds.
#
# llama.cpp per tier, from scripts/build-peer.sh's cache
# (~/.cache/sinkllm/llama.cpp-VER-TIER):
#   avx2    the TIER=avx2 build (GGML_NATIVE=OFF, AVX2+FMA+F16C; AVX-512
#           and AMX off); on a CPU whose best tier is avx2 the native build
#           is that build and is used when the avx2 one is missing
#   avx512  the TIER=avx512 build (AVX-512 + VNNI, AMX off); the native
#           build where avx512 is the CPU's best
#   amx     the native build (AMX and its repacking on, as users get it)
#   scalar  no peer: sinkllm alone
# A missing build is made only with PEER_BUILD=1 (about 10 minutes per tier
# on 2 cores); otherwise that tier runs sinkllm alone and its llama.cpp
# figures are "-". Nothing is estimated or carried over from other runs.
#
# Environment: MODEL (SmolLM2-135M Q4_1), SINKLLM (build/sinkllm), THREADS
# (2), ROUNDS (3), TIERS (default: every tier the CPU has, best first),
# TESTS, PEER_BUILD (0), LLAMA_CPP_PYTHON_VERSION (0.3.36), SINKS (4),
# SINK_WINDOW (2044).
# Writes bench/out/tiers.csv (engine,tier,test,round,tokens_per_s,note) and
# bench/out/tiers.md (the table, the machine, the load before and after).
set -u
cd "$(dirname "$0")/.." || exit 1

MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SINKLLM=${SINKLLM:-build/sinkllm}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
TESTS=${TESTS:-"pp512 tg128 pp2048 tg128@d2048"}
PEER_BUILD=${PEER_BUILD:-0}
SINKS=${SINKS:-4}
SINK_WINDOW=${SINK_WINDOW:-2044}
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${SINKLLM_CACHE:-$HOME/.cache/sinkllm}
OUT=bench/out
mkdir -p "$OUT"
CSV=$OUT/tiers.csv
MD=$OUT/tiers.md
[ -x "$SINKLLM" ] || { echo "tiers.sh: $SINKLLM not built (make)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "tiers.sh: $MODEL missing (make model)" >&2; exit 1; }

# the tiers this CPU has: those sinkllm accepts in SINKLLM_ISA
has_tier() { env -u SINKLLM_SCALAR SINKLLM_ISA="$1" "$SINKLLM" --version >/dev/null 2>&1; }
best=$(env -u SINKLLM_SCALAR -u SINKLLM_ISA "$SINKLLM" --version | sed -n 's/.*best on this CPU: \([a-z0-9]*\)).*/\1/p')
if [ -z "${TIERS:-}" ]; then
    TIERS=""
    for t in amx avx512 avx2 scalar; do has_tier "$t" && TIERS="$TIERS $t"; done
fi

# llama.cpp's bin/ for a tier, or "" (and why, in peer_note)
peer_dir() { # tier
    d=$CACHE/llama.cpp-$VER-$1
    case $1 in
    scalar) peer_note="no llama.cpp peer for the scalar tier"; echo ""; return ;;
    amx) d=$CACHE/llama.cpp-$VER-native ;;
    esac
    if [ ! -x "$d/bin/llama-bench" ] && [ "$1" = "$best" ] && [ -x "$CACHE/llama.cpp-$VER-native/bin/llama-bench" ]; then
        d=$CACHE/llama.cpp-$VER-native # the native build of a CPU whose best tier this is
    fi
    if [ ! -x "$d/bin/llama-bench" ] && [ "$PEER_BUILD" = 1 ]; then
        case $1 in amx) bt=native ;; *) bt=$1 ;; esac
        d=$(TIER=$bt sh scripts/build-peer.sh) || d=""
    fi
    if [ -n "$d" ] && [ -x "$d/bin/llama-bench" ]; then
        peer_note="$d"
        echo "$d/bin"
    else
        peer_note="no llama.cpp build for tier $1 under $CACHE (PEER_BUILD=1 builds it)"
        echo ""
    fi
}

# the -p/-n/-d options of a test, the same for both engines' bench tools
# but for the sink row (llama.cpp: its dense cache of as many tokens)
test_args() { # test [llama]
    case $1 in
    pp*) echo "-p ${1#pp} -n 0" ;;
    tg*@sink*)
        n=${1%@sink*}
        if [ "${2:-}" = llama ]; then echo "-p 0 -n ${n#tg} -d $((SINKS + SINK_WINDOW))"
        else echo "-p 0 -n ${n#tg} -d ${1#*@sink} --cache sink --sinks $SINKS --window $SINK_WINDOW"; fi ;;
    tg*@d*) n=${1%@d*}; echo "-p 0 -n ${n#tg} -d ${1#*@d}" ;;
    tg*) echo "-p 0 -n ${1#tg}" ;;
    esac
}

# sinkllm's tokens/s for one test under tier t, or nothing on failure
sk_run() { # tier test
    a=$(test_args "$2")
    # shellcheck disable=SC2086
    env -u SINKLLM_SCALAR SINKLLM_ISA="$1" "$SINKLLM" bench -m "$MODEL" -t "$THREADS" -r 1 --csv $a 2>/dev/null |
        awk -F, '$1 == "sinkllm" { print $4 }' | tail -n 1
}

# llama.cpp's tokens/s for one test with bin/ b, best of -fa off/on
lc_run() { # bin test
    a=$(test_args "$2" llama)
    bestv=""
    for fa in off on; do
        # shellcheck disable=SC2086
        v=$("$1/llama-bench" -m "$MODEL" -t "$THREADS" -r 1 -fa $fa -o csv $a 2>>"$OUT/tiers-llama.log" |
            awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "avg_ts") c = i; next }
                     c { gsub(/"/, "", $c); print $c }' | tail -n 1)
        [ -n "$v" ] && { [ -z "$bestv" ] || awk "BEGIN { exit !($v > $bestv) }"; } && bestv=$v
    done
    echo "$bestv"
}

echo "engine,tier,test,round,tokens_per_s,note" >"$CSV"
: >"$OUT/tiers-llama.log"
load_before=$(uptime)
for t in $TIERS; do
    if ! has_tier "$t"; then
        echo "tiers.sh: skipped tier $t: this CPU lacks it" | tee -a "$OUT/tiers-skipped.txt" >&2
        continue
    fi
    bin=$(peer_dir "$t")
    pd=$(peer_dir "$t" >/dev/null; echo "$peer_note")
    echo "tier $t: llama.cpp: $pd" >&2
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        for test in $TESTS; do
            v=$(sk_run "$t" "$test")
            echo "sinkllm,$t,$test,$r,${v:--}," >>"$CSV"
            echo "  round $r $test sinkllm[$t] ${v:--}" >&2
            if [ -n "$bin" ]; then
                v=$(lc_run "$bin" "$test")
                echo "llama.cpp,$t,$test,$r,${v:--},$pd" >>"$CSV"
                echo "  round $r $test llama.cpp[$t] ${v:--}" >&2
            fi
        done
        r=$((r + 1))
    done
done
load_after=$(uptime)

# the table: median and range per engine/tier/test, and the ratio of medians
python3 - "$CSV" "$TESTS" "$SINKS" "$SINK_WINDOW" >"$MD" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
tests = sys.argv[2].split()
sinks, window = sys.argv[3], sys.argv[4]
vals = {}
for r in rows:
    if r["tokens_per_s"] not in ("", "-"):
        vals.setdefault((r["engine"], r["tier"], r["test"]), []).append(float(r["tokens_per_s"]))
tiers = []
for r in rows:
    if r["tier"] not in tiers:
        tiers.append(r["tier"])
def cell(k):
    v = vals.get(k)
    if not v:
        return "-", None
    return "%.1f (%.1f-%.1f)" % (statistics.median(v), min(v), max(v)), statistics.median(v)
print("| tier | test | sinkllm t/s, median (range) | llama.cpp t/s, median (range) | ratio |")
print("| --- | --- | ---: | ---: | ---: |")
for t in tiers:
    for test in tests:
        s, sm = cell(("sinkllm", t, test))
        l, lm = cell(("llama.cpp", t, test))
        ratio = "%.2fx" % (sm / lm) if sm and lm else "-"
        label = test.replace("@", " @ ")
        if "@sink" in test:
            label = "%s @ sink %s+%s after %s tokens (llama.cpp: d%d)" % (
                test.split("@")[0], sinks, window, test.split("@sink")[1], int(sinks) + int(window))
        print("| %s | %s | %s | %s | %s |" % (t, label, s, l, ratio))
PY
{
    echo
    echo "model $MODEL, $THREADS threads, $ROUNDS rounds, engines alternating"
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs;" \
        "flags: $(for f in avx2 fma f16c avx_vnni avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8; do
            grep -qw "$f" /proc/cpuinfo && printf '%s ' "$f"; done)"
    echo "load before: $load_before"
    echo "load after:  $load_after"
    for t in $TIERS; do has_tier "$t" && echo "llama.cpp for $t: $(peer_dir "$t" >/dev/null; echo "$peer_note")"; done
} >>"$MD"
cat "$MD"
