"""XLA checks run by tests/test_accelerator.py in a process of its own; prints one JSON line.

    python tests/xla_training.py RECORDS OUT_DIR tiny:none:10 efficientnet_b0:none:step ...

A `backbone:precision:tta` case trains one epoch with jit_compile=True (training, validation and
out-of-fold graphs), then predicts generated sequences through FoldAverage with and without XLA
and through an export marked for XLA. A `backbone:precision:step` case compiles one training step
with XLA and runs it beside the same step run eagerly (no XLA), from the same weights on the same
batch, then predicts that batch eagerly with the weights of each: the one XLA compile per
precision of a backbone whose every graph would take minutes to compile on a CPU (the other
graphs are the tiny cases').
"""

import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from chimpact import storage
from chimpact.predict import infer
from chimpact.training import model_folder, pipeline, step, train

MODEL = dict(volume_size=3, lstm_units=16, dense_units=8)


def check_epoch(records, out_dir, backbone, precision, tta):
    started = time.perf_counter()
    scores = train.train(records, out_dir, backbone=backbone, weights="none", folds=[0],
                         epochs=1, batch_size=4, mixed_precision=precision, jit_compile=True,
                         verbose=0, **MODEL)
    trained_s = time.perf_counter() - started
    config = model_folder.read_config(out_dir)
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        records, [1], 3, batch_size=4).as_numpy_iterator()])
    with_xla, _ = infer.load_predictor(out_dir, tta=tta, jit_compile=True)
    without, _ = infer.load_predictor(out_dir, tta=tta, jit_compile=False)
    infer.export(with_xla, config, f"{out_dir}/export", jit_compile=True)
    exported = tf.saved_model.load(f"{out_dir}/export")
    history = storage.read_csv(f"{out_dir}/fold0/history.csv")
    return {
        "xla": config["xla"], "trained_s": trained_s, "mae": scores["overall"]["mae"],
        "losses": history["loss"].tolist(), "val_losses": history["val_loss"].tolist(),
        "with_xla": with_xla.predict(sequences, verbose=0).tolist(),
        "without": without.predict(sequences, verbose=0).tolist(),
        "served": exported.serve(sequences).numpy()[:, 0].tolist(),
        "xla_predictor": bool(with_xla.jit_compile),
    }


def check_step(records, backbone, precision):
    started = time.perf_counter()
    settings = dict(MODEL, backbone=backbone, weights="none", image_size=[32, 32],
                    crop_bottom=0.0, use_boxes=False, family="cnn_lstm", lr=1e-3,
                    schedule="plateau", optimizer="adam", weight_decay=0.0, epochs=1,
                    loss="mae", mixed_precision=precision, input_scaling="imagenet")
    frames, distance = next(iter(pipeline.make_train_dataset(records, [0], 3, batch_size=4)))
    keras.utils.set_random_seed(0)
    compiled = step.compiled_model({**settings, "jit_compile": True}, steps_per_epoch=1)
    # The step without XLA runs eagerly: the same kernels as a traced graph, without the half
    # minute that tracing B0's training graph takes on a CPU.
    plain = step.compiled_model({**settings, "jit_compile": False}, steps_per_epoch=1)
    plain.run_eagerly = True
    plain.set_weights(compiled.get_weights())
    losses = [float(network.train_on_batch(frames, distance)[0])
              for network in (compiled, plain)]
    # Both updated networks predict eagerly (the XLA step's weights in the eager network): the
    # step is what is compared, and XLA's prediction graph is the tiny cases' to check.
    without = plain.predict_on_batch(frames)[:, 0].tolist()
    plain.set_weights(compiled.get_weights())
    with_xla = plain.predict_on_batch(frames)[:, 0].tolist()
    return {"xla": bool(compiled.jit_compile), "losses": losses, "with_xla": with_xla,
            "without": without, "seconds": time.perf_counter() - started}


def main(records, out_dir, *cases):
    results = {}
    for case in cases:
        backbone, precision, tta = case.split(":")
        results[case] = (check_step(records, backbone, precision) if tta == "step" else
                         check_epoch(records, f"{out_dir}/{backbone}-{precision}", backbone,
                                     precision, int(tta)))
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
