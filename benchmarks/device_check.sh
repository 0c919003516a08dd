#!/usr/bin/env bash
# run_train.py's training step and the prediction step on this machine's accelerator, each
# family's preset at its own sizes in bfloat16, against the reference's TPU v3-8
# (benchmarks/device_check.py).
# Needs Keras and JAX, not TensorFlow (the lent GPU machines have JAX and no Keras: carry the
# wheels of keras, namex and optree, as the device README says); minutes on a GPU.
#   benchmarks/device_check.sh            # KERAS_BACKEND=jax unless set
#   benchmarks/device_check.sh --quick    # the demo presets, a smoke run (any backend, CPU)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
if [[ -z "${KERAS_BACKEND:-}" ]]; then
  if "$python" -c "import jax" 2>/dev/null; then export KERAS_BACKEND=jax; fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$repo/benchmarks/device_check.py" "$@"
