#!/usr/bin/env bash
# The model's training and prediction steps on this machine's accelerator, each family at the
# reference's sizes in bfloat16, against the reference's TPU v3-8 (benchmarks/device_check.py).
# Needs Keras and JAX (pip install keras "jax[cuda12]"), not TensorFlow; about 3 minutes on a GPU.
#   benchmarks/device_check.sh            # KERAS_BACKEND=jax unless set
#   benchmarks/device_check.sh --quick    # tiny backbone, a smoke run (any backend, CPU)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
if [[ -z "${KERAS_BACKEND:-}" ]]; then
  if "$python" -c "import jax" 2>/dev/null; then export KERAS_BACKEND=jax; fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$repo/benchmarks/device_check.py" "$@"
