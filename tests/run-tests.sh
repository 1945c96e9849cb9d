#!/bin/sh
# run-tests.sh BUILD - run every test binary, the fuzz corpus replays
# (BUILD/fuzz/replay_*) and tests/test_cli.sh; print
# one summary line, "N passed, N failed" (+ ", N skipped" when nonzero),
# which CI parses. A binary passes when every test in it passed or was
# skipped; each skipped test (cmocka's "[  SKIPPED ] N test(s)", the CLI's
# "N skipped") is counted in "skipped", with its reason printed above it by
# the test ("skipped: ..."). Under make test a missing model or data file
# is a failure, not a skip (tests/util_model.c, tests/test_cli.sh).
build=${1:-build}
pass=0 fail=0 skipped=0 failed="" skipnames=""
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
run() { # name command...
    name=$1
    shift
    echo "== $name"
    "$@" >"$LOG" 2>&1
    rc=$?
    cat "$LOG"
    if [ "$rc" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
    n=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s), listed below:.*/\1/p; s/^cli: .* \([0-9][0-9]*\) skipped.*/\1/p' "$LOG" | tail -n 1)
    if [ -n "$n" ] && [ "$n" -gt 0 ]; then skipped=$((skipped + n)); skipnames="$skipnames $name($n)"; fi
}
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done
# the original (unpacked) weight layout (SINKLLM_NOPACK=1; test_golden above
# ran the packed one, which the avx2 tier and up use), and the golden tests
# on each SIMD tier below the best (SINKLLM_ISA; the kernel tests run every
# tier themselves, util_tiers.h). A tier the CPU lacks is reported skipped.
# Not the scalar tier: its reference kernels round activations as the
# reference does, not as llama.cpp does, and are tested against the SIMD
# tiers kernel by kernel instead.
tier_has() { # tier: 0 if the CPU has it (test_cpu --print under SINKLLM_ISA)
    out=$(env -u SINKLLM_SCALAR SINKLLM_ISA="$1" "$build/tests/test_cpu" --print 2>/dev/null) &&
        [ "${out%% *}" = "$1" ] && [ "${out##* }" = "-" ]
}
if [ -x "$build/tests/test_golden" ]; then
    if tier_has avx2; then
        run "test_golden-nopack" env SINKLLM_NOPACK=1 "$build/tests/test_golden"
    else
        echo "== test_golden-nopack"
        echo "skipped: test_golden-nopack: no AVX2, so test_golden ran the unpacked layout"
        skipped=$((skipped + 1))
        skipnames="$skipnames test_golden-nopack(1)"
    fi
    best=$(env -u SINKLLM_SCALAR -u SINKLLM_ISA "$build/tests/test_cpu" --print 2>/dev/null | cut -d' ' -f1)
    for tier in avx2 avx512 amx; do
        [ "$tier" = "$best" ] && continue # test_golden above
        if tier_has "$tier"; then
            run "test_golden[$tier]" env -u SINKLLM_SCALAR SINKLLM_ISA="$tier" "$build/tests/test_golden"
        else
            echo "== test_golden[$tier]"
            echo "skipped: test_golden[$tier]: this CPU lacks the $tier tier"
            skipped=$((skipped + 1))
            skipnames="$skipnames test_golden[$tier](1)"
        fi
    done
fi
# the fuzz corpora replayed through each harness without libFuzzer
# (fuzz/replay.c; a finding aborts, which fails the replay)
for t in "$build"/fuzz/replay_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t" "$(dirname "$0")/../fuzz/corpus/${t##*/replay_}"
done
# the library's layering: no include or call circles, tools/ on include/ only
run check-layers.sh sh "$(dirname "$0")/../scripts/check-layers.sh" "$build"
run test_cli.sh sh "$(dirname "$0")/test_cli.sh" "$build"
echo
[ -n "$failed" ] && echo "failed:$failed"
[ -n "$skipnames" ] && echo "skipped tests in:$skipnames"
if [ "$skipped" -gt 0 ]; then echo "$pass passed, $fail failed, $skipped skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
