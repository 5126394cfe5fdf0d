#!/usr/bin/env bash
# Peak memory of `vigil serve` under an ingest flood: CONNECTIONS senders (default 64), each
# sending 10,000-event batches of raw log lines until EVENTS (default 1,280,000) are all
# acknowledged (503s are retried). The server runs in its own process on a fresh SQLite
# data directory, rate limits off; its peak RSS (VmHWM) is read from /proc before it is
# stopped with SIGTERM.
#
# Usage: scripts/bench_ingest_memory.sh [SERVER_BIN] [CLIENT_BIN]
#   SERVER_BIN  the `vigil` whose `serve` is measured (default target/release/vigil)
#   CLIENT_BIN  the `vigil` that sends (`bench ingest --url`; default SERVER_BIN)
# Environment: CONNECTIONS, EVENTS, BATCH, PORT, and any VIGIL_* setting for the server
# (e.g. VIGIL_INGEST__MEMORY_BUDGET_BYTES=268435456).
set -euo pipefail
server=${1:-target/release/vigil}
client=${2:-$server}
connections=${CONNECTIONS:-64}
events=${EVENTS:-1280000}
batch=${BATCH:-10000}
port=${PORT:-18471}
dir=$(mktemp -d /tmp/vigil-membench.XXXXXX)
export VIGIL_DATA_DIR="$dir" VIGIL_SERVER__PORT="$port" VIGIL_INGEST__LOCAL_AGENT=false \
  VIGIL_RATE_LIMIT__ENABLED=false VIGIL_LOG__LEVEL=warn VIGIL_SERVER__REQUEST_TIMEOUT_SECS=120
"$server" serve >"$dir/serve.log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null
key=$("$client" api-key create membench | tail -n 1)
start_rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
status=0
"$client" bench ingest --url "http://127.0.0.1:$port" --api-key "$key" \
  --connections "$connections" --batch "$batch" --events "$events" || status=$?
[ "$status" = 0 ] || { echo "the flood failed ($status); server log:"; tail -n 5 "$dir/serve.log"; }
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "vigil serve: RSS after start $((start_rss / 1024)) MiB, peak RSS (VmHWM) $((peak / 1024)) MiB" \
  "under $connections connections x $batch-event batches ($events events)"
