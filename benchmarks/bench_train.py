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

With --backends, the JAX/TensorFlow ratio of run_train.py's own step on this machine:

    python benchmarks/bench_train.py --backends            # the demo preset, float32
    python benchmarks/bench_train.py --backends --preset=full-a4p50-f7s1 --image_size=128 \
        --batch_size=4 --steps=3

the preset's network compiled by chimpact.training.step (as run_train.py compiles it, XLA as
Keras' "auto" chooses: under JAX always, under TensorFlow on a CPU not) under run_train.py's
strategy (training.strategy) of each backend, from the same initial weights, fitting the same
records' batches: TensorFlow in this process, JAX in a worker process (a process runs one Keras
backend), the two alternating. Check: before training both predict the same (within 1e-4 m).

On an accelerator without TensorFlow (JAX and Keras), benchmarks/device_check.sh times each
family against the reference's TPU v3-8.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

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
        tfrec = write_records(folder, examples, args.volume_size, size)

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


def backend_network(settings, records, batch_size, weights_path):
    """run_train.py's compiled network of `settings` under this process's backend and its
    strategy, with the weights at `weights_path` (saved there first when absent), and a
    function of `steps` giving that many of the records' training batches."""
    from chimpact.training import step, strategy

    with strategy.make_strategy("auto").scope():
        network = step.compiled_model(settings, steps_per_epoch=1000, output_bias=5.0)
    if os.path.exists(weights_path):
        network.load_weights(weights_path)
    else:
        network.save_weights(weights_path)

    def dataset(steps):
        return pipeline.make_train_dataset(records, [0, 1], settings["volume_size"],
                                           settings["image_size"], batch_size, epochs=1,
                                           drop_remainder=True).repeat().take(steps)

    return network, dataset


def backend_worker(args):
    """The JAX side: answers each line of stdin (`predict`, or a number of steps to fit) with a
    JSON line on stdout."""
    settings = json.loads(args.settings)
    network, dataset = backend_network(settings, args.records, args.batch_size, args.weights)
    for line in sys.stdin:
        if line.strip() == "predict":
            batch = next(iter(dataset(1)))[0].numpy()
            answer = {"pred": np.asarray(network.predict_on_batch(batch)).ravel().tolist()}
        else:
            cpu = time.process_time()
            history = network.fit(dataset(int(line)), epochs=1, shuffle=False, verbose=0)
            answer = {"cpu": time.process_time() - cpu, "loss": history.history["loss"][-1]}
        print(json.dumps(answer), flush=True)


def compare_backends(args):
    import device_check

    settings = device_check.preset_settings(args.preset, "none")
    if args.image_size:
        settings["image_size"] = [args.image_size] * 2
    volume, size = settings["volume_size"], tuple(settings["image_size"])
    examples = args.steps * args.batch_size
    with tempfile.TemporaryDirectory() as folder:
        records, weights = write_records(folder, examples, volume, size), os.path.join(
            folder, "initial.weights.h5")
        network, dataset = backend_network(settings, records, args.batch_size, weights)
        worker = subprocess.Popen(
            [sys.executable, __file__, "--worker", f"--settings={json.dumps(settings)}",
             f"--records={records}", f"--weights={weights}", f"--batch_size={args.batch_size}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"})

        def ask(line):
            worker.stdin.write(line + "\n")
            worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        try:
            ours = network.predict_on_batch(next(iter(dataset(1)))[0]).ravel()
            np.testing.assert_allclose(ask("predict")["pred"], ours, atol=1e-4, rtol=0)
            cpu = {}

            def tensorflow_run(repeat):
                start = time.process_time()
                network.fit(dataset(args.steps), epochs=1, shuffle=False, verbose=0)
                cpu.setdefault("tensorflow", []).append(time.process_time() - start)

            def jax_run(repeat):
                answer = ask(str(args.steps))
                assert np.isfinite(answer["loss"]), answer
                cpu.setdefault("jax", []).append(answer["cpu"])

            tensorflow_run(0), ask(str(args.steps))  # tracing and compiling, untimed
            cpu.clear()
            runs = timing.compare({"tensorflow": tensorflow_run, "jax": jax_run}, args.repeats,
                                  0 if args.quick else timing.MIN_SECONDS)
        finally:
            worker.stdin.close()
            worker.wait(timeout=60)
    for name, run in runs.items():
        run["cpu"] = cpu[name]  # the JAX side's own, which this process's clock does not see
    print(f"run_train.py's step, preset {args.preset} ({settings['backbone']}, {volume} frames, "
          f"{size[0]}x{size[1]}), float32, batch {args.batch_size}, {args.steps} steps per run, "
          f"on {timing.cores()} CPU cores; XLA: jax on, tensorflow {network.jit_compile}; "
          "same predictions before training (1e-4 m)")
    timing.report(runs, examples, "sequence")
    timing.ratio(runs, "jax", "tensorflow", "ratio jax / tensorflow (training sequences/s, "
                 "medians)")


def write_records(folder, examples, volume_size, size):
    """Records of `examples` random uint8 sequences in 2 folds, made by create_tfrecords' code."""
    rng = np.random.default_rng(0)
    videos = {f"v{i:04d}.mp4": rng.integers(0, 255, (volume_size, *size, 3), dtype=np.uint8)
              for i in range(examples)}
    frames.write_frames(os.path.join(folder, "frames"), videos)
    labels = os.path.join(folder, "labels.csv")
    with open(labels, "w") as f:
        f.write("video_id,time,distance,fold\n" + "".join(
            f"{v},{volume_size // 2},{i % 20},{i % 2}\n" for i, v in enumerate(videos)))
    tfrec = os.path.join(folder, "records")
    packing.create_records(os.path.join(folder, "frames"), labels, tfrec,
                           frames_per_side=volume_size // 2, n_folds=2, progress=False)
    return tfrec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny", choices=sorted(model.BACKBONES))
    parser.add_argument("--image_size", type=int, default=None,
                        help="square frame side (default 64; with --backends the preset's)")
    parser.add_argument("--volume_size", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per run (default 20, 5 with --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (>= 3)")
    parser.add_argument("--lstm_units", type=int, default=1024)
    parser.add_argument("--dense_units", type=int, default=300)
    parser.add_argument("--mixed_precision", default="none", choices=model.PRECISIONS)
    parser.add_argument("--quick", action="store_true", help="5 timed steps per run")
    parser.add_argument("--backends", action="store_true",
                        help="JAX against TensorFlow, run_train.py's step of --preset")
    parser.add_argument("--preset", default="demo", help="the preset of --backends")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("settings", "records", "weights"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or (5 if args.quick else 20)
    if args.worker:
        backend_worker(args)
    elif args.backends:
        compare_backends(args)
    else:
        args.image_size = args.image_size or 64
        compare_training(args)


if __name__ == "__main__":
    main()
