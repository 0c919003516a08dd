"""Training throughput (sequences/s): our model as users run it against the reference's as it ran.

    python benchmarks/bench_train.py --quick        # CPU: tiny backbone, 64x64, XLA in float32
    python benchmarks/bench_train.py --backbone=efficientnet_b0 --image_size=512 \
        --volume_size=7 --batch_size=32 --mixed_precision=mixed_bfloat16   # a GPU or TPU

The same architecture, weights and records (made by create_tfrecords' own
code, read by chimpact.training.pipeline) on both sides, alternating, 3 timed runs of --steps steps after
one untimed run each (tracing, compiling):
- reference: the model as tf.keras 2 ran it for the 3rd place, time reshaped into the batch
  (which tf.keras 2's TimeDistributed did), float32, no XLA;
- ours: the same model compiled with XLA (--jit_compile=true) under --mixed_precision, as the
  README tells TPU and GPU users to run it (on a CPU, float32: bfloat16 has no CPU speed-up).
Check: before training, both give the same predictions (within the precision's tolerance).

On an accelerator without TensorFlow (JAX and Keras), benchmarks/device_check.sh times each
family against the reference's TPU v3-8.
"""

import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import timing
from chimpact.data import frames, packing
from chimpact.training import model, pipeline


def build(backbone, volume_size, size, lstm_units, dense_units, precision, jit_compile):
    with model.precision(precision):
        network = model.build_model(backbone, volume_size, size, "none", lstm_units,
                                    dense_units, output_bias=5.0)
    network.compile(keras.optimizers.Adam(1e-3), loss="mae", jit_compile=jit_compile)
    return network


def compare_training(args):
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
                               for name, network in zip(names, networks)}, args.repeats,
                              0 if args.quick else timing.MIN_SECONDS)
    device = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    print(f"{args.backbone} {args.image_size}x{args.image_size}, {args.volume_size} frames, "
          f"batch {args.batch_size}, {args.steps} steps per run, on {device[0].device_type}; "
          f"same predictions before training (tolerance {tolerance:g})")
    timing.report(runs, examples, "sequence")
    timing.ratio(runs, names[1], names[0], "ratio ours / reference (training sequences/s, medians)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny", choices=sorted(model.BACKBONES))
    parser.add_argument("--image_size", type=int, default=None,
                        help="square frame side (default 64)")
    parser.add_argument("--volume_size", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per run (default 20, 5 with --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (>= 3)")
    parser.add_argument("--lstm_units", type=int, default=1024)
    parser.add_argument("--dense_units", type=int, default=300)
    parser.add_argument("--mixed_precision", default="none", choices=model.PRECISIONS)
    parser.add_argument("--quick", action="store_true", help="5 timed steps per run")
    args = parser.parse_args()
    args.image_size = args.image_size or 64
    args.steps = args.steps or (5 if args.quick else 20)
    compare_training(args)


if __name__ == "__main__":
    main()
