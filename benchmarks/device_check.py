"""The training step that run_train.py runs, on an accelerator: each family's preset at its own
sizes in bfloat16, in sequences/s, against the reference's TPU v3-8 rate of about 68 training
sequences/s (12 models x 5 folds x 40 epochs x 12,183 sequences in 120 hours).

    benchmarks/device_check.sh             # the three families' presets, KERAS_BACKEND=jax
    benchmarks/device_check.sh --quick     # the demo presets (tiny backbone): a smoke run on CPU

Each preset is parsed by run_train.py's own flags and its network compiled by
chimpact.training.step, the function run_train.py trains with, under run_train.py's JAX
distribution (keras.distribution.DataParallel over every local device); only the weights are
`none` (no download) and the precision mixed_bfloat16. None of it imports TensorFlow, so this
runs on a machine with Keras and JAX alone (the lent GPU machines). The input is synthetic uint8
sequences; each step is compiled (XLA) and run twice untimed, then timed over --steps steps,
--repeats times (the median is printed); a batch that does not fit is halved. Check: losses and
predictions are finite.
"""

import argparse
import contextlib
import gc
import runpy
import statistics
import time

import keras
import numpy as np
from absl import flags

from chimpact import cli, presets
from chimpact.settings import FAMILIES
from chimpact.training import distribution, step

REFERENCE_TPU_RATE = 12 * 5 * 40 * 12183 / (120 * 3600)  # training sequences/s, about 68
PRESETS = {"cnn_lstm": "full-a4p50-f7s1", "stacked": "stacked-v2l-270x480",
           "single": "single-b7-360x640"}
QUICK_PRESETS = {"cnn_lstm": "demo", "stacked": "demo-stacked", "single": "demo-single"}
# What a training step reads of run_train.py's flags as they are (step.compiled_model's keys).
_STEP_FLAGS = ("family", "backbone", "weights", "mixed_precision", "crop_bottom", "lstm_units", "dense_units", "use_boxes",
               "input_scaling", "lr", "loss", "schedule", "optimizer", "weight_decay", "epochs")


def preset_settings(name, precision):
    """The settings run_train.py compiles its network with under preset `name`, its flags read
    by run_train.py's definitions, with no initial weights and `precision`."""
    values = flags.FLAGS
    if "preset" not in values:
        # run_train.py's flag definitions, from the script that the chimpact command runs.
        runpy.run_path(str(cli.entry_script("run_train.py")), run_name="run_train")
    values.unparse_flags()
    values(["run_train.py", *presets.flags_of(name), "--weights=none",
            f"--mixed_precision={precision}"])
    settings = {key: values[key].value for key in _STEP_FLAGS}
    return {**settings, "volume_size": values.volume_size or FAMILIES[values.family],
            "image_size": list(cli.image_size(values.image_size)),
            "jit_compile": cli.jit_compile(values.jit_compile)}


def median_rate(step_fn, batch_size, steps, repeats):
    """Sequences/s of `step_fn` (a call that returns once its batch is done), median of
    repeats."""
    for _ in range(2):
        step_fn()  # compiling, untimed
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            result = step_fn()
        seconds.append(time.perf_counter() - start)
    assert np.all(np.isfinite(result)), result
    return steps * batch_size / statistics.median(seconds)


def out_of_memory(error):
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower() or "OOM" in text


def rates(settings, batch_size, steps, repeats, scope):
    """(train, predict) sequences/s of the preset's step at global batch `batch_size`."""
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, (batch_size, settings["volume_size"],
                                      *settings["image_size"], 3), dtype=np.uint8)
    distances = rng.uniform(1, 25, (batch_size, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    with scope():
        network = step.compiled_model(settings, steps_per_epoch=1000, output_bias=5.0)
    train = median_rate(lambda: network.train_on_batch(sequences, distances), batch_size,
                        steps, repeats)
    predict = median_rate(lambda: np.asarray(network.predict_on_batch(sequences)), batch_size,
                          steps, repeats)
    return train, predict


def device():
    """What the backend runs on, in words."""
    if keras.backend.backend() == "jax":
        import jax

        return f"{len(jax.devices())} x {jax.devices()[0].device_kind}"
    return "the backend's default device"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the demo presets (tiny backbone), batch 4, 2 steps: a smoke run")
    parser.add_argument("--batch_size", type=int, default=16,
                        help="sequences per device (halved while a batch does not fit)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=("none", "mixed_float16", "mixed_bfloat16"))
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.steps = 4, 2
    replicas, scope = 1, contextlib.nullcontext
    if keras.backend.backend() == "jax":
        parallel = distribution.data_parallel("auto")
        replicas, scope = parallel.num_replicas_in_sync, parallel.scope
    print(f"run_train.py's step, {args.precision}, {keras.backend.backend()} on {device()}")
    ratios = {}
    for family, name in (QUICK_PRESETS if args.quick else PRESETS).items():
        settings = preset_settings(name, args.precision)
        per_device = args.batch_size
        while True:
            try:
                train, predict = rates(settings, per_device * replicas, args.steps,
                                       args.repeats, scope)
                break
            except Exception as error:  # noqa: BLE001 (XLA's and TensorFlow's OOM errors)
                if not out_of_memory(error) or per_device == 1:
                    raise
                print(f"{family}: batch {per_device} per device does not fit; halved")
                per_device //= 2
                keras.backend.clear_session()
                gc.collect()
        ratios[family] = train / REFERENCE_TPU_RATE
        height, width = settings["image_size"]
        print(f"{family:9} {name} ({settings['backbone']}, {settings['volume_size']} frames, "
              f"{height}x{width}, batch {per_device * replicas}): train {train:8.1f} "
              f"sequences/s ({ratios[family]:.2f}x the TPU v3-8's), predict {predict:8.1f}")
    print(f"ratio to the reference's TPU v3-8 ({REFERENCE_TPU_RATE:.0f} training sequences/s): "
          + ", ".join(f"{family} {ratio:.2f}x" for family, ratio in ratios.items()))


if __name__ == "__main__":
    main()
