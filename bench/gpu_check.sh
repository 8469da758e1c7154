#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU but no TensorRT; run from the repo root. Under 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not available"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec timeout 290 "$PY" bench/gpu_check.py "$@"
