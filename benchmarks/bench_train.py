r"""Training throughput (sequences/s): our model against the reference's per-frame TimeDistributed.

    python benchmarks/bench_train.py --quick                       # CPU: tiny backbone, 64x64
    python benchmarks/bench_train.py --backbone=efficientnet_b0 --image_size=512 --volume_size=7 \
        --batch_size=32 --mixed_precision=mixed_float16           # on a GPU

Both models train with model.fit on the same generated records through chimpact.pipeline, under
the default strategy (all GPUs: --strategy=mirrored). Ours folds time into the batch with a
reshape; the baseline wraps the same backbone in TimeDistributed, as the reference did (Keras 3
then calls it once per frame). The reference trained EfficientNet-B0 at 512x512, 7 frames, at
about 68 sequences/s on a TPU v3-8. The ratio is on the last line.
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from chimpact import model, pipeline, records
from chimpact import strategy as strategies


def write_records(folder, examples, stored, size):
    rng = np.random.default_rng(0)
    pictures = [tf.io.encode_jpeg(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).numpy()
                for _ in range(stored)]
    name = records.shard_name("train", 0, 0, 1)
    with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
        for i in range(examples):
            writer.write(records.serialize_example(pictures, float(i % 20), f"v{i}", 0, 0))
    records.write_manifest(folder, {
        "schema_version": records.SCHEMA_VERSION, "subset": "train",
        "frames_per_side": stored // 2, "step": 1, "stored_frames": stored,
        "image_size": list(size), "n_folds": 1, "examples": examples,
        "examples_per_fold": {"0": examples},
        "shards": [{"file": name, "fold": 0, "examples": examples}]})


def time_distributed_model(backbone, volume_size, size, lstm_units, dense_units):
    """The reference's layout: TimeDistributed(backbone) over the frames."""
    frames = keras.Input((volume_size, *size, 3))
    x = keras.layers.TimeDistributed(model.make_backbone(backbone, size))(frames)
    x = keras.layers.LSTM(lstm_units)(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return keras.Model(frames, keras.layers.Dense(1, dtype="float32")(x))


def sequences_per_second(network, dataset, steps, batch_size):
    """Sequences/s of the second epoch (the first compiles)."""
    network.compile(keras.optimizers.Adam(1e-3), loss="mae")
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times[-1] = time.perf_counter() - times[-1]

    network.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[Clock()], shuffle=False,
                verbose=0)
    return steps * batch_size / times[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny", choices=sorted(model.BACKBONES))
    parser.add_argument("--image_size", type=int, default=64, help="square frame side")
    parser.add_argument("--volume_size", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--lstm_units", type=int, default=1024)
    parser.add_argument("--dense_units", type=int, default=300)
    parser.add_argument("--mixed_precision", default="float32")
    parser.add_argument("--strategy", default="default", choices=strategies.STRATEGIES)
    parser.add_argument("--quick", action="store_true", help="5 timed steps")
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps
    size = (args.image_size, args.image_size)
    strategy = strategies.make_strategy(args.strategy)
    keras.mixed_precision.set_global_policy(args.mixed_precision)

    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        write_records(folder, steps * args.batch_size, args.volume_size, size)
        for name in ("ours", "timedistributed"):
            dataset = strategy.distribute_datasets_from_function(
                lambda context: pipeline.make_train_dataset(
                    folder, [0], args.volume_size, size, args.batch_size, aug="a4",
                    aug_prob=0.5, epochs=2, drop_remainder=True, input_context=context))
            with strategy.scope():
                if name == "ours":
                    network = model.build_model(args.backbone, args.volume_size, size, "none",
                                                args.lstm_units, args.dense_units)
                else:
                    network = time_distributed_model(args.backbone, args.volume_size, size,
                                                     args.lstm_units, args.dense_units)
            rates[name] = sequences_per_second(network, dataset, steps, args.batch_size)
    device = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    print(f"{args.backbone} {args.image_size}x{args.image_size}, {args.volume_size} frames, "
          f"batch {args.batch_size}, {args.mixed_precision}, {strategy.num_replicas_in_sync} "
          f"replica(s) on {device[0].device_type} (reference: ~68 sequences/s on a TPU v3-8)")
    print(f"ours (reshape):             {rates['ours']:8.2f} training sequences/s")
    print(f"TimeDistributed (baseline): {rates['timedistributed']:8.2f} training sequences/s")
    print(f"ratio (ours / TimeDistributed): {rates['ours'] / rates['timedistributed']:.2f}")


if __name__ == "__main__":
    main()
