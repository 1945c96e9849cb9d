#!/bin/sh
# run-tests.sh BUILD - run every test binary; print a summary line.
build=${1:-build}
pass=0 fail=0 failed=""
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
# the original (unpacked) weight layout, which CPUs without AVX-512 VNNI use
if [ -x "$build/tests/test_golden" ]; then
    echo "== test_golden (SINKLLM_NOPACK=1)"
    if SINKLLM_NOPACK=1 "$build/tests/test_golden"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed test_golden-nopack"; fi
fi
echo "== test_cli.sh"
if sh "$(dirname "$0")/test_cli.sh" "$build"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed test_cli.sh"; fi
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
