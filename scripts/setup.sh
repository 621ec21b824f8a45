#!/usr/bin/env bash
# Install seq2seq with its development tools into the current Python environment.
# torch is installed first, and only when missing (the CPU build 2.13.0), so that an existing
# torch (a CUDA build, say) is kept: the package accepts any torch >= 2.6.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch" 2>/dev/null; then
    python -m pip install torch==2.13.0
fi
python -m pip install -e ".[dev]"
