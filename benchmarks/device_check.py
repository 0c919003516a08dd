"""The model on an accelerator: the training step and the prediction step of each family at the
reference's sizes in bfloat16, in sequences/s, against the reference's TPU v3-8 rate of about
68 training sequences/s (12 models x 5 folds x 40 epochs x 12,183 sequences in 120 hours).

    benchmarks/device_check.sh             # EfficientNet-B0 at 512x512, batch 32, KERAS_BACKEND=jax
    benchmarks/device_check.sh --quick     # tiny backbone at 64x64, batch 4: a smoke run on CPU

chimpact/training/model.py is Keras alone, so this runs on a machine with Keras and JAX and no
TensorFlow (the lent GPU machines have none). Each family reads its preset's frames (cnn_lstm 7,
stacked 5, single 1) of the same synthetic uint8 sequences; each step is compiled (XLA) and run
twice untimed, then timed over --steps steps, --repeats times (the median is printed). Check:
losses and predictions are finite.
"""

import argparse
import statistics
import time

import keras
import numpy as np

from chimpact.settings import FAMILIES
from chimpact.training import model

REFERENCE_TPU_RATE = 12 * 5 * 40 * 12183 / (120 * 3600)  # training sequences/s, about 68


def build(family, backbone, volume_size, size, precision):
    """A family's network at the reference's head sizes, compiled with XLA."""
    keras.utils.set_random_seed(0)
    with model.precision(precision):
        network = model.build_model(backbone, volume_size, size, "none", 1024, 300,
                                    output_bias=5.0, family=family)
    network.compile(keras.optimizers.Adam(1e-4), loss="mae", jit_compile=True)
    return network


def median_rate(step, batch_size, steps, repeats):
    """Sequences/s of `step` (a call that returns once its batch is done), median of repeats."""
    for _ in range(2):
        step()  # compiling, untimed
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            result = step()
        seconds.append(time.perf_counter() - start)
    assert np.all(np.isfinite(result)), result
    return steps * batch_size / statistics.median(seconds)


def device():
    """What the backend runs on, in words."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].device_kind
    return "the backend's default device"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny backbone at 64x64, batch 4, 2 steps: a smoke run")
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--image_size", type=int, default=512, help="square frame side")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="mixed_bfloat16", choices=model.PRECISIONS)
    args = parser.parse_args()
    if args.quick:
        args.backbone, args.image_size, args.batch_size, args.steps = "tiny", 64, 4, 2
    size = (args.image_size, args.image_size)
    rng = np.random.default_rng(0)
    longest = max(FAMILIES.values())
    sequences = rng.integers(0, 256, (args.batch_size, longest, *size, 3), dtype=np.uint8)
    distances = rng.uniform(1, 25, (args.batch_size, 1)).astype(np.float32)
    print(f"{args.backbone} at {size[0]}x{size[1]}, {args.precision}, batch {args.batch_size}, "
          f"{keras.backend.backend()} on {device()}")
    rates = {}
    for family, volume in FAMILIES.items():
        network = build(family, args.backbone, volume, size, args.precision)
        first = (longest - volume) // 2
        batch = sequences[:, first:first + volume]
        train = median_rate(lambda: network.train_on_batch(batch, distances), args.batch_size,
                            args.steps, args.repeats)
        predict = median_rate(lambda: np.asarray(network.predict_on_batch(batch)),
                              args.batch_size, args.steps, args.repeats)
        rates[family] = train
        print(f"{family:9} ({volume} frames): train {train:8.1f} sequences/s "
              f"({train / REFERENCE_TPU_RATE:.2f}x the TPU v3-8's), predict {predict:8.1f}")
    print(f"ratio to the reference's TPU v3-8 ({REFERENCE_TPU_RATE:.0f} training sequences/s): "
          + ", ".join(f"{family} {rate / REFERENCE_TPU_RATE:.2f}x"
                      for family, rate in rates.items()))


if __name__ == "__main__":
    main()
