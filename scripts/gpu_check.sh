#!/usr/bin/env bash
# The CUDA path in one command: the tests marked `cuda`, then a two-minute benchmark table
# (scripts/bench_gpu.py: training tokens/s per precision, SDPA backends, peak GPU memory,
# greedy and beam decoding speed).
#
#   bash scripts/gpu_check.sh                 # everything
#   bash scripts/gpu_check.sh --steps 400     # extra arguments go to scripts/bench_gpu.py
#
# Exit status: 0 when the tests pass and the benchmark ran. Without a CUDA device it prints
# "gpu_check: no CUDA device: nothing checked" and exits 0 (nothing failed, nothing was
# checked). Otherwise non-zero when a test failed (the benchmark still runs) or the benchmark
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device: nothing checked"
    exit 0
fi

echo "== 1/2 tests marked cuda"
python -m pytest -m cuda tests -rs
tests=$?

echo "== 2/2 benchmark (scripts/bench_gpu.py)"
python scripts/bench_gpu.py "$@"
bench=$?

if [ "$tests" -ne 0 ] || [ "$bench" -ne 0 ]; then
    echo "gpu_check: FAILED (tests: exit $tests, benchmark: exit $bench)"
    exit 1
fi
echo "gpu_check: passed"
