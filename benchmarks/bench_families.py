"""Cost per sequence of the three model families on this machine: the same backbone, frames and
batch; train steps and predictions.

    python benchmarks/bench_families.py               # EfficientNet-B0, 144x256, batch 8
    python benchmarks/bench_families.py --quick       # tiny backbone, 48x64

Each family reads as many frames as its preset: cnn_lstm 7 (the backbone on each, then the
LSTM), stacked 5 (one backbone pass over 15 channels), single 1. The three run on the same
uint8 sequences (the centred frames of one batch), alternating, 3 timed runs of --steps train
steps and --steps predictions each after an untimed one (tracing). Check: each family's
predictions are finite and repeat exactly from run to run. The last line is the cost of a
cnn_lstm training sequence over a stacked one's.
"""

import argparse

import keras
import numpy as np

import timing
from chimpact.settings import FAMILIES
from chimpact.training import model



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--image_size", default="144,256", help="HEIGHT,WIDTH")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny backbone at 48x64, 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.backbone, args.image_size, args.steps = "tiny", "48,64", 2
    size = tuple(int(v) for v in args.image_size.split(","))
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, (args.batch_size, 7, *size, 3), dtype=np.uint8)
    distances = rng.uniform(1, 20, (args.batch_size, 1)).astype(np.float32)
    networks, inputs = {}, {}
    for family, volume in FAMILIES.items():
        keras.utils.set_random_seed(0)
        network = model.build_model(args.backbone, volume, size, "none", 256, 64, 5.0,
                                    family=family)
        network.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae", jit_compile=False)
        first = (7 - volume) // 2
        inputs[family] = sequences[:, first:first + volume]
        network.train_on_batch(inputs[family], distances)  # tracing, untimed
        network.predict_on_batch(inputs[family])
        networks[family] = network

    def trainer(family):
        def run(_):
            return [float(networks[family].train_on_batch(inputs[family], distances))
                    for _ in range(args.steps)]
        return run

    def predictor(family):
        def run(_):
            return np.concatenate([networks[family].predict_on_batch(inputs[family])
                                   for _ in range(args.steps)])
        return run

    work = args.steps * args.batch_size
    print(f"{args.backbone} at {size[0]}x{size[1]}, batch {args.batch_size}, {args.steps} steps, "
          f"{timing.cores()} cores")
    predicted = timing.compare({family: predictor(family) for family in FAMILIES},
                               min_seconds=0 if args.quick else timing.MIN_SECONDS)
    for family, run in predicted.items():
        outputs = run["outputs"]
        assert all(np.isfinite(o).all() for o in outputs), family
        assert all(np.array_equal(o, outputs[0]) for o in outputs), f"{family}: not repeatable"
    print("predict:")
    timing.report(predicted, work, "seq")
    trained = timing.compare({family: trainer(family) for family in FAMILIES},
                             min_seconds=0 if args.quick else timing.MIN_SECONDS)
    for family, run in trained.items():
        assert all(np.isfinite(loss).all() for loss in run["outputs"]), family
    print("train:")
    timing.report(trained, work, "seq")
    timing.ratio(predicted, "stacked", "cnn_lstm",
                 "predict cost per sequence, cnn_lstm / stacked")
    timing.ratio(trained, "single", "cnn_lstm", "train cost per sequence, cnn_lstm / single")
    timing.ratio(trained, "stacked", "cnn_lstm", "train cost per sequence, cnn_lstm / stacked")


if __name__ == "__main__":
    main()
