#!/bin/sh
# cluster.sh - Redis, N sinkllm replicas and HAProxy on this machine
# (`make cluster`; docs/deploy.md). Prints the URL, runs until Ctrl-C, then
# stops everything it started.
#
# Environment: SINKLLM (build/sinkllm), MODEL (the default model),
# REPLICAS (3), PORT (8080: HAProxy), REDIS_PORT (6390), BASE_PORT (8090:
# replica i listens on BASE_PORT + i), SLOTS (2 per replica), ARGS (more
# `sinkllm serve` flags, e.g. "--window 1024"), OUT (build/cluster: logs
# and the generated haproxy.cfg).
set -u
cd "$(dirname "$0")/.." || exit 1
SINKLLM=${SINKLLM:-build/sinkllm}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
REPLICAS=${REPLICAS:-3}
PORT=${PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6390}
BASE_PORT=${BASE_PORT:-8090}
SLOTS=${SLOTS:-2}
ARGS=${ARGS:-}
OUT=${OUT:-build/cluster}
die() { echo "cluster.sh: $*" >&2; exit 1; }
[ -x "$SINKLLM" ] || die "no $SINKLLM (make)"
[ -f "$MODEL" ] || die "no model $MODEL (make model)"
command -v redis-server >/dev/null || die "no redis-server (make deps)"
command -v haproxy >/dev/null || die "no haproxy (make deps)"
mkdir -p "$OUT"
PIDS=""
stop() { [ -n "$PIDS" ] && kill $PIDS 2>/dev/null; wait 2>/dev/null; }
trap 'stop; exit 0' INT TERM
trap stop EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$OUT/redis.log" &
PIDS="$PIDS $!"
SERVERS=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
    p=$((BASE_PORT + i))
    # shellcheck disable=SC2086 # ARGS is a list of flags
    "$SINKLLM" serve -m "$MODEL" --host 127.0.0.1 --port "$p" --slots "$SLOTS" -t 1 \
        --session-store "redis://127.0.0.1:$REDIS_PORT" $ARGS 2> "$OUT/replica$i.log" &
    PIDS="$PIDS $!"
    SERVERS="$SERVERS    server r$i 127.0.0.1:$p check
"
    i=$((i + 1))
done
awk -v bind="127.0.0.1:$PORT" -v servers="$SERVERS" \
    '{ gsub("@BIND@", bind); if ($0 == "@SERVERS@") printf "%s", servers; else print }' \
    deploy/haproxy.cfg.in > "$OUT/haproxy.cfg"
haproxy -f "$OUT/haproxy.cfg" -db > "$OUT/haproxy.log" 2>&1 &
PIDS="$PIDS $!"
i=0
while ! curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -gt 120 ] && die "the cluster did not become healthy (logs in $OUT)"
    sleep 0.5
done
echo "sinkllm cluster: $REPLICAS replicas, Redis on $REDIS_PORT, logs in $OUT"
echo "URL: http://127.0.0.1:$PORT/v1  (send X-Session-Id to keep a conversation)"
wait
