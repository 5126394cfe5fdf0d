#!/usr/bin/env bash
# Builds every cargo-fuzz target once, then runs each one in turn for N seconds
# (default 60), niced and one at a time so it can share a machine.
#
#   scripts/fuzz-all.sh [SECONDS] [TARGET...]
#
# Needs `cargo install cargo-fuzz --locked` and the nightly toolchain. Each target's corpus
# is fuzz/corpus/TARGET (ignored by git) unless FUZZ_CORPUS_ROOT is set, in which case
# $FUZZ_CORPUS_ROOT/TARGET is used (seed it with real inputs: see fuzz/README.md).
# Crashes land in fuzz/artifacts/TARGET/; the script goes on with the next target and
# exits non-zero at the end if any target failed. Logs go to $FUZZ_LOG_DIR (default a
# fresh temporary directory). A summary of every run is printed last.
set -euo pipefail

secs="${1:-60}"
shift || true

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
nice -n 19 cargo +nightly fuzz build

logs="${FUZZ_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$logs"
failed=()
for t in "${targets[@]}"; do
    corpus=()
    if [[ -n "${FUZZ_CORPUS_ROOT:-}" ]]; then
        mkdir -p "$FUZZ_CORPUS_ROOT/$t"
        corpus=("$FUZZ_CORPUS_ROOT/$t")
    fi
    # An .evtx file is a 4 KiB header then 64 KiB chunks: a smaller max_len never holds a
    # whole chunk.
    max_len=65536
    [[ "$t" == hunt_evtx ]] && max_len=139264
    echo "=== $t (${secs}s, log $logs/$t.log)"
    if ! nice -n 19 cargo +nightly fuzz run "$t" "${corpus[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$max_len" -timeout=10 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "$logs/$t.log"
    fi
done

echo "=== summary"
for t in "${targets[@]}"; do
    execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$t.log" | awk '{print $2}' | tail -n 1 || true)"
    status=clean
    [[ " ${failed[*]} " == *" $t "* ]] && status=FAILED
    printf '%-14s %-7s %s executions\n' "$t" "$status" "${execs:-?}"
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
