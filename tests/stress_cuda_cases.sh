#!/usr/bin/env bash
# Repeat the CUDA-simulator cases (tests/cuda_cases.py) with a cold Numba
# cache each time, on a loaded machine, the way tests/test_cuda.py runs them:
# the float32 and the other cases as two concurrent pytest processes, each
# with its own cache directory. One `yes` process keeps a core busy.
#
#   tests/stress_cuda_cases.sh [RUNS] [K-EXPRESSION]
#   tests/stress_cuda_cases.sh 30                   # all cases, 30 runs (~90 s a run on 2 cores)
#   tests/stress_cuda_cases.sh 10 "clip or checkpoint or user_story or ema_finalize"
#                                                   # only the cases that reduce norms
#
# PYTHON picks the interpreter (default: python). Exits 1 if any run failed;
# the logs of failed runs are kept and their paths printed.
set -u
cd "$(dirname "$0")/.."
runs=${1:-10}
filter=${2:-}
py=${PYTHON:-python}
tmp=$(mktemp -d)
yes > /dev/null &
load=$!
trap 'kill "$load" 2>/dev/null' EXIT
failed=0
for i in $(seq "$runs"); do
    rm -rf "$tmp/cache"
    pids=()
    for half in "float32" "not float32"; do
        k=$half
        [ -n "$filter" ] && k="($filter) and $half"
        NUMBA_ENABLE_CUDASIM=1 NUMBA_CACHE_DIR="$tmp/cache/${half// /_}" \
            "$py" -m pytest -q -p no:cacheprovider -k "$k" tests/cuda_cases.py \
            > "$tmp/run$i-${half// /_}.log" 2>&1 &
        pids+=($!)
    done
    status=ok
    for p in "${pids[@]}"; do wait "$p" || status=FAILED; done
    summary=$(for f in "$tmp"/run"$i"-*.log; do tail -n 1 "$f"; done | tr '\n' ' ')
    echo "run $i/$runs: $status  $summary"
    if [ "$status" = ok ]; then
        rm -f "$tmp"/run"$i"-*.log
    else
        failed=$((failed + 1))
        echo "  logs: $tmp/run$i-*.log"
    fi
done
rm -rf "$tmp/cache"
echo "$failed of $runs runs failed"
[ "$failed" -eq 0 ]
