#!/usr/bin/env bash
# Training steps/s (float32, mixed precision), data wait with pickles and the packed store, and
# inference utterances/s on one device, on synthetic data it makes itself; no network needed.
#   bash benchmarks/gpu_check.sh                      # CUDA, 64 x 15 batches (a few minutes)
#   bash benchmarks/gpu_check.sh --device cpu --quick # the CPU path, tiny sizes
# The table goes to stdout and, when OUT is set, to $OUT/gpu_check.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c 'import torch, numpy, soundfile, yaml, tqdm, tensorboardX' 2>/dev/null; then
    echo "gpu_check.sh: $PYTHON lacks this project's requirements (torch, numpy, soundfile, PyYAML, tqdm, tensorboardX);" \
         "install them with: bash setup.sh (or pip install -r requirements.txt)" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec "$PYTHON" benchmarks/gpu_check.py "$@"
