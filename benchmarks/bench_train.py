"""Training throughput (sequences/s): our model as users run it against the reference's as it ran.

    python benchmarks/bench_train.py --quick        # CPU: tiny backbone, 64x64, XLA in float32
    python benchmarks/bench_train.py --backbone=efficientnet_b0 --image_size=512 \
        --volume_size=7 --batch_size=32 --mixed_precision=mixed_bfloat16   # a GPU or TPU
    KERAS_BACKEND=jax python benchmarks/bench_train.py --jax   # a GPU with JAX, no TensorFlow

TensorFlow mode: the same architecture, weights and records (made by create_tfrecords' own
code, read by chimpact.training.pipeline) on both sides, alternating, 3 timed runs of --steps steps after
one untimed run each (tracing, compiling):
- reference: the model as tf.keras 2 ran it for the 3rd place, time reshaped into the batch
  (which tf.keras 2's TimeDistributed did), float32, no XLA;
- ours: the same model compiled with XLA (--jit_compile=true) under --mixed_precision, as the
  README tells TPU and GPU users to run it (on a CPU, float32: bfloat16 has no CPU speed-up).
Check: before training, both give the same predictions (within the precision's tolerance).

JAX mode (--jax, KERAS_BACKEND=jax): chimpact.training.model is Keras alone, so it trains under JAX with
no TensorFlow installed: EfficientNet-B0 at 512x512x7 in bfloat16, XLA, on synthetic uint8
sequences at each --batch_sizes, against the reference's TPU v3-8 rate of about 68
sequences/s (12 models x 5 folds x 40 epochs x 12,183 training sequences in 120 hours).
"""

import argparse
import os
import statistics
import tempfile
import time

import keras
import numpy as np

import timing
from chimpact.training import model

REFERENCE_TPU_RATE = 12 * 5 * 40 * 12183 / (120 * 3600)  # sequences/s, about 68


def build(backbone, volume_size, size, lstm_units, dense_units, precision, jit_compile):
    with model.precision(precision):
        network = model.build_model(backbone, volume_size, size, "none", lstm_units,
                                    dense_units, output_bias=5.0)
    network.compile(keras.optimizers.Adam(1e-3), loss="mae", jit_compile=jit_compile)
    return network


def tensorflow_mode(args):
    # TensorFlow is imported here, not at the top: the JAX mode runs where there is none.
    import tensorflow as tf

    from chimpact.data import frames, packing
    from chimpact.training import pipeline

    size = (args.image_size, args.image_size)
    examples = args.steps * args.batch_size
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        videos = {f"v{i:04d}.mp4": rng.integers(0, 255, (args.volume_size, *size, 3),
                                                dtype=np.uint8) for i in range(examples)}
        frames.write_frames(os.path.join(folder, "frames"), videos)
        labels = os.path.join(folder, "labels.csv")
        with open(labels, "w") as f:
            f.write("video_id,time,distance,fold\n" + "".join(
                f"{v},{args.volume_size // 2},{i % 20},{i % 2}\n" for i, v in enumerate(videos)))
        tfrec = os.path.join(folder, "records")
        packing.create_records(os.path.join(folder, "frames"), labels, tfrec,
                               frames_per_side=args.volume_size // 2, n_folds=2, progress=False)

        def dataset():
            return pipeline.make_train_dataset(tfrec, [0, 1], args.volume_size, size,
                                               args.batch_size, aug="none", epochs=1,
                                               drop_remainder=True)

        common = (args.backbone, args.volume_size, size, args.lstm_units, args.dense_units)
        names = ("reference (float32, no XLA)", f"ours (XLA, {args.mixed_precision})")
        reference, ours = networks = (build(*common, "none", False),
                                      build(*common, args.mixed_precision, True))
        ours.set_weights(reference.get_weights())
        batch = next(iter(dataset()))[0]
        tolerance = 1e-3 if args.mixed_precision == "none" else 5e-2
        np.testing.assert_allclose(ours.predict(batch, verbose=0),
                                   reference.predict(batch, verbose=0), rtol=tolerance,
                                   atol=tolerance)

        def train(network):
            network.fit(dataset(), epochs=1, steps_per_epoch=args.steps, shuffle=False,
                        verbose=0)

        for network in networks:
            train(network)  # tracing and compiling, untimed
        runs = timing.compare({name: lambda r, n=network: train(n)
                               for name, network in zip(names, networks)}, args.repeats)
    device = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    print(f"{args.backbone} {args.image_size}x{args.image_size}, {args.volume_size} frames, "
          f"batch {args.batch_size}, {args.steps} steps per run, on {device[0].device_type}; "
          f"same predictions before training (tolerance {tolerance:g})")
    timing.report(runs, examples, "sequence")
    timing.ratio(runs, names[1], names[0], "ratio ours / reference (training sequences/s, medians)")


def jax_mode(args):
    """EfficientNet-B0 at --image_size, bfloat16, XLA, synthetic sequences, each batch size."""
    size = (args.image_size, args.image_size)
    rng = np.random.default_rng(0)
    rates = {}
    for batch_size in args.batch_sizes:
        network = build("efficientnet_b0", args.volume_size, size, 1024, 300, "mixed_bfloat16",
                        True)
        x = rng.integers(0, 255, (batch_size, args.volume_size, *size, 3), dtype=np.uint8)
        y = rng.uniform(0, 25, batch_size).astype(np.float32)
        for _ in range(2):
            network.train_on_batch(x, y)  # compiling, untimed
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = network.train_on_batch(x, y)  # returns a number: the step has finished
            seconds.append(time.perf_counter() - start)
        assert np.isfinite(loss), loss
        rates[batch_size] = args.steps * batch_size / statistics.median(seconds)
        print(f"EfficientNet-B0 {size[0]}x{size[1]}x{args.volume_size}, bfloat16, batch "
              f"{batch_size}: median {rates[batch_size]:.1f} sequences/s, best "
              f"{args.steps * batch_size / min(seconds):.1f} ({args.repeats} runs of "
              f"{args.steps} steps, {keras.backend.backend()} on {_jax_device()})")
    best = max(rates, key=rates.get)
    print(f"ratio to the reference's TPU v3-8 ({REFERENCE_TPU_RATE:.0f} sequences/s), batch "
          f"{best}: {rates[best] / REFERENCE_TPU_RATE:.2f}x")


def _jax_device():
    import jax

    return jax.devices()[0].device_kind


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny", choices=sorted(model.BACKBONES))
    parser.add_argument("--image_size", type=int, default=None,
                        help="square frame side (default 64, 512 with --jax)")
    parser.add_argument("--volume_size", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per run (default 20, 10 with --jax, 5 with --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (>= 3)")
    parser.add_argument("--lstm_units", type=int, default=1024)
    parser.add_argument("--dense_units", type=int, default=300)
    parser.add_argument("--mixed_precision", default="none", choices=model.PRECISIONS)
    parser.add_argument("--quick", action="store_true", help="5 timed steps per run")
    parser.add_argument("--jax", action="store_true", help="the JAX mode (KERAS_BACKEND=jax)")
    parser.add_argument("--batch_sizes", type=lambda text: [int(v) for v in text.split(",")],
                        default=[32, 96], help="with --jax: batch sizes to time")
    args = parser.parse_args()
    args.image_size = args.image_size or (512 if args.jax else 64)
    args.steps = args.steps or (5 if args.quick else 10 if args.jax else 20)
    if args.jax:
        if keras.backend.backend() != "jax":
            parser.error("--jax needs KERAS_BACKEND=jax")
        jax_mode(args)
    else:
        tensorflow_mode(args)


if __name__ == "__main__":
    main()
