"""Trains one epoch with jit_compile=True for each (backbone, precision, tta) given, then predicts
generated sequences through FoldAverage with and without XLA and through an export marked for
XLA; prints one JSON line of results. Run by tests/test_accelerator.py in a process of its own.

    python tests/xla_training.py RECORDS OUT_DIR tiny:none:10 efficientnet_b0:none:2 ...
"""

import json
import sys
import time

import numpy as np
import tensorflow as tf

from chimpact import infer, model_folder, pipeline, storage, train


def check(records, out_dir, backbone, precision, tta):
    started = time.perf_counter()
    scores = train.train(records, out_dir, backbone=backbone, weights="none", volume_size=3,
                         lstm_units=16, dense_units=8, folds=[0], epochs=1, batch_size=4,
                         mixed_precision=precision, jit_compile=True, verbose=0)
    trained_s = time.perf_counter() - started
    config = model_folder.read_config(out_dir)
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        records, [1], 3, batch_size=4).as_numpy_iterator()])
    with_xla, _ = infer.load_predictor(out_dir, tta=tta, jit_compile=True)
    without, _ = infer.load_predictor(out_dir, tta=tta, jit_compile=False)
    served = None
    if backbone == "tiny":
        infer.export(with_xla, config, f"{out_dir}/export", jit_compile=True)
        exported = tf.saved_model.load(f"{out_dir}/export")
        served = exported.serve(sequences).numpy()[:, 0].tolist()
    history = storage.read_csv(f"{out_dir}/fold0/history.csv")
    return {
        "xla": config["xla"], "trained_s": trained_s, "mae": scores["overall"]["mae"],
        "losses": history["loss"].tolist(), "val_losses": history["val_loss"].tolist(),
        "with_xla": with_xla.predict(sequences, verbose=0).tolist(),
        "without": without.predict(sequences, verbose=0).tolist(), "served": served,
        "xla_predictor": bool(with_xla.jit_compile),
    }


def main(records, out_dir, *cases):
    results = {}
    for case in cases:
        backbone, precision, tta = case.split(":")
        results[case] = check(records, f"{out_dir}/{backbone}-{precision}", backbone, precision,
                              int(tta))
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
