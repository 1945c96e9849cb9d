#!/bin/sh
# bench/grammar.sh - the per-token cost of constrained output (issue 14
# point 2): `sinkllm run` on the same prompt, greedy, the same number of
# tokens, without a constraint and with each JSON schema below; prints the
# decode speed and the time spent on token masks (the rest of the
# difference is the sampler's -inf pass and the matcher's advance).
#   SINKLLM=build/sinkllm MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf THREADS=1 REPS=3 sh bench/grammar.sh
set -eu
SINKLLM=${SINKLLM:-build/sinkllm}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-1}
REPS=${REPS:-3}
N=${N:-64}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# each schema's output is longer than N tokens, so every run decodes N
echo '{"type":"array","items":{"type":"string"},"minItems":40,"maxItems":40}' > "$dir/strings.json"
echo '{"type":"array","items":{"type":"string","maxLength":40},"minItems":40,"maxItems":40}' > "$dir/bounded.json"
echo '{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"ok":{"type":"boolean"}},"required":["name","age","ok"],"additionalProperties":false},"minItems":20,"maxItems":20}' > "$dir/objects.json"
run() { # label, extra args...
    label=$1
    shift
    for r in $(seq "$REPS"); do
        "$SINKLLM" run -m "$MODEL" -p "Once upon a time" -n "$N" --temp 0 -t "$THREADS" "$@" 2>&1 >/dev/null |
            awk -v l="$label" '/decode:/ { for (i = 1; i <= NF; i++) if ($i == "decode:") printf "%-28s decode %s tokens %s tok/s", l, $(i+1), $(i+3) }
                              /grammar:/ { printf "  masks %s ms/token", $2 } END { print "" }'
    done
}
run "unconstrained"
run "strings (unbounded)" --json-schema "$dir/strings.json"
run "strings (maxLength 40)" --json-schema "$dir/bounded.json"
run "objects" --json-schema "$dir/objects.json"
