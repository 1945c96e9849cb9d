#!/bin/sh
# pretrain.sh - the paper's Section 3.3 in miniature (issue 15 point 4):
# four small LLaMA-architecture models pre-trained from scratch with the
# same data, shape, context and token budget, differing only in how
# attention may park its unused share:
#   vanilla     plain softmax
#   softmax1    +1 in every denominator ("zero sink", softmax-off-by-one)
#   sinktoken   a learnable sink token starts every sample (the paper's)
#   sinklogit   one learnable logit per head in every denominator (gpt-oss)
# then streaming perplexity far past the training context with 0, 1, 2, 4
# initial tokens kept plus a window (the paper's Table 3), and the share of
# attention on the first token / the sink logit per layer (its Fig. 7).
#
#   sh bench/pretrain.sh [train] [eval] [report]    (default: all three)
#
# Long: a training run is STEPS x BATCH x CTX tokens (default 550 x 16 x 256
# = 2.25M; about 14 minutes on 2 cores) per variant. BF16=1 trains with
# `--bf16` (mixed precision: about 2x the tokens/s on a CPU with
# AVX512-BF16, docs/training.md), for longer runs in the same time. Runs resume from their checkpoints (kill it and run
# it again), and a finished variant is not trained again. Outputs in
# $OUT (bench/out/pretrain); `report` writes the section of docs/results.md
# between its markers (bench/pretrain_report.py).
set -eu
cd "$(dirname "$0")/.."
SK=${SINKLLM:-build/sinkllm}
OUT=${OUT:-bench/out/pretrain}
VOCAB=${VOCAB:-data/vocab4k.gguf}                # make vocab rebuilds it from the corpus
DATA=${DATA:-build/corpus/train.txt}
HELD=${HELD:-build/corpus/heldout.txt}
MOBY=${MOBY:-data/moby-dick.txt}
LAYERS=${LAYERS:-4} DIM=${DIM:-192} HEADS=${HEADS:-4} KV_HEADS=${KV_HEADS:-4} CTX=${CTX:-256}
BATCH=${BATCH:-16} STEPS=${STEPS:-550} LR=${LR:-2e-3} WARMUP=${WARMUP:-50} SEED=${SEED:-1}
SINK_TEXT=${SINK_TEXT:-<|endoftext|>}
CACHE=${CACHE:-$((CTX / 2))}                  # the eval cache: half the training context, as the paper's 1024 of 2048
EVAL_TOKENS=${EVAL_TOKENS:-16384}             # 64x the training context
VARIANTS=${VARIANTS:-vanilla softmax1 sinktoken sinklogit}
T=${THREADS:-2}
BF16=${BF16:-0}
mkdir -p "$OUT"
[ -f "$VOCAB" ] && [ -f "$DATA" ] && [ -f "$HELD" ] || { echo "pretrain.sh: run 'make corpus' first ($VOCAB, $DATA, $HELD)" >&2; exit 1; }

flags() {
    case $1 in
    vanilla) ;;
    softmax1) echo "--softmax1" ;;
    sinktoken) echo "--sink-token $SINK_TEXT" ;;
    sinklogit) echo "--sink-logit" ;;
    *) echo "pretrain.sh: unknown variant $1" >&2; exit 2 ;;
    esac
}

train() { # variant
    v=$1
    if [ -f "$OUT/$v.gguf" ]; then echo "== $v: trained ($OUT/$v.gguf)"; return; fi
    if [ -f "$OUT/$v.ckpt" ]; then
        echo "== $v: resuming $OUT/$v.ckpt"
        "$SK" train -m "$VOCAB" -f "$DATA" --resume "$OUT/$v.ckpt" --save "$OUT/$v.ckpt" --save-every 50 \
            --csv "$OUT/$v.csv" --export "$OUT/$v.gguf" -t "$T" 2>&1 | tee -a "$OUT/$v.log"
        return
    fi
    echo "== $v: $SK train $(flags "$v")" | tee "$OUT/$v.log"
    # shellcheck disable=SC2046
    "$SK" train -m "$VOCAB" -f "$DATA" --val-frac 0.002 --layers "$LAYERS" --dim "$DIM" --heads "$HEADS" \
        --kv-heads "$KV_HEADS" --ctx "$CTX" --batch "$BATCH" --steps "$STEPS" --lr "$LR" --warmup "$WARMUP" \
        -s "$SEED" --eval-every 100 --eval-windows 32 --save "$OUT/$v.ckpt" --save-every 50 \
        --csv "$OUT/$v.csv" --export "$OUT/$v.gguf" -t "$T" $(flags "$v") $([ "$BF16" = 1 ] && echo --bf16) 2>&1 | tr '\r' '\n' |
        tee -a "$OUT/$v.log"
    [ -f "$OUT/$v.gguf" ]
}

ppl() { # variant text-label text sinks
    v=$1 lab=$2 txt=$3 s=$4
    f="$OUT/ppl_${v}_${lab}_s$s.txt"
    [ -s "$f" ] && return
    if [ "$s" = 0 ]; then set -- --cache window --window "$CACHE"
    else set -- --cache sink --sinks "$s" --window $((CACHE - s)); fi
    "$SK" ppl -m "$OUT/$v.gguf" -f "$txt" --tokens "$EVAL_TOKENS" -t "$T" -q "$@" > "$f.tmp" 2>&1
    mv "$f.tmp" "$f"
    echo "== $v $lab $s+$((CACHE - s)): $(tail -n 1 "$f")"
}

evaluate() {
    for v in $VARIANTS; do
        [ -f "$OUT/$v.gguf" ] || { echo "== $v: not trained" >&2; continue; }
        for s in 0 1 2 4; do
            ppl "$v" heldout "$HELD" "$s"
            ppl "$v" moby "$MOBY" "$s"
        done
        # dense over one training context: the reference the streaming rows approach
        f="$OUT/ppl_${v}_heldout_dense.txt"
        [ -s "$f" ] || "$SK" ppl -m "$OUT/$v.gguf" -f "$HELD" --tokens "$CTX" -t "$T" -q --cache dense > "$f" 2>&1
        layers=$(seq -s, 0 $((LAYERS - 1)))
        "$SK" attn -m "$OUT/$v.gguf" -f "$HELD" --tokens "$CTX" --layers "$layers" --png "$OUT/attn_$v.png" \
            -t "$T" > "$OUT/attn_$v.txt" 2>/dev/null
    done
}

report() {
    PY=python3
    [ -x .venv-ref/bin/python ] && PY=.venv-ref/bin/python
    "$PY" bench/pretrain_report.py "$OUT" docs/results.md
}

# the settings the report prints: written by the steps that use them
# (train, eval), so that a report alone never describes other settings
config() {
    cat > "$OUT/config.txt" <<CFG
layers=$LAYERS dim=$DIM heads=$HEADS kv_heads=$KV_HEADS ctx=$CTX batch=$BATCH steps=$STEPS lr=$LR warmup=$WARMUP seed=$SEED
tokens_per_variant=$((STEPS * BATCH * CTX)) eval_cache=$CACHE eval_tokens=$EVAL_TOKENS threads=$T bf16=$BF16
vocab=$VOCAB data=$DATA heldout=$HELD
machine=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores
CFG
}

[ $# -eq 0 ] && set -- train eval report
for step in "$@"; do
    case $step in
    train) config; for v in $VARIANTS; do train "$v"; done ;;
    eval) config; evaluate ;;
    report) report ;;
    *) echo "usage: sh bench/pretrain.sh [train] [eval] [report]" >&2; exit 2 ;;
    esac
done
