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
# the original (unpacked) weight layout, which CPUs without AVX-512 VNNI use
# (where the CPU has no VNNI, test_golden above already ran that layout)
if [ -x "$build/tests/test_golden" ]; then
    if grep -q avx512_vnni /proc/cpuinfo 2>/dev/null; then
        run "test_golden-nopack" env SINKLLM_NOPACK=1 "$build/tests/test_golden"
    else
        echo "== test_golden-nopack"
        echo "skipped: test_golden-nopack: no AVX-512 VNNI, so test_golden ran the unpacked layout"
        skipped=$((skipped + 1))
        skipnames="$skipnames test_golden-nopack(1)"
    fi
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
