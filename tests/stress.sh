#!/usr/bin/env bash
# Repeat the test suite with a cold Numba cache each time, a few runs at once (a loaded
# machine), to find tests that fail only sometimes. A flaky test is a bug: find its cause.
#
#   tests/stress.sh [RUNS] [AT_ONCE] [PYTEST ARGS...]
#   tests/stress.sh 20 2                          # the whole suite, 20 runs, 2 at a time
#   tests/stress.sh 30 2 tests/test_cuda_cases.py -k "clip or checkpoint"
#
# Each run gets its own empty NUMBA_CACHE_DIR, shared by its two xdist workers.
# PYTHON picks the interpreter (default: python). Prints one line per run (its duration
# and pytest's summary); keeps the logs of failed runs and prints their paths. Exits 1
# if any run failed.
set -u
cd "$(dirname "$0")/.."
runs=${1:-20}
at_once=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
py=${PYTHON:-python}
tmp=$(mktemp -d)
echo "logs in $tmp"

one_run() {
    local i=$1 start status
    shift
    start=$(date +%s)
    if NUMBA_CACHE_DIR="$tmp/cache-$i" "$py" -m pytest -q \
        -p no:cacheprovider "$@" > "$tmp/run$i.log" 2>&1; then
        status=ok
    else
        status=FAILED
    fi
    echo "run $i/$runs: $status in $(( $(date +%s) - start )) s: $(tail -n 1 "$tmp/run$i.log")"
    rm -rf "$tmp/cache-$i"
    if [ "$status" = ok ]; then
        rm -f "$tmp/run$i.log"
    else
        echo "  log: $tmp/run$i.log"
        return 1
    fi
}

failed=0
pids=()
for i in $(seq "$runs"); do
    one_run "$i" "$@" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$at_once" ]; then
        wait "${pids[0]}" || failed=$((failed + 1))
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
echo "$failed of $runs runs failed"
[ "$failed" -eq 0 ]
