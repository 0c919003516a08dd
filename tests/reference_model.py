"""The 3rd place's model, built by its own code's path: efficientnet 1.1.1 (`efficientnet.tfkeras`)
on tf.keras 2 (tf-keras, through TF_USE_LEGACY_KERAS=1, as tf.keras was when the reference ran),
TimeDistributed(EfficientNet-B0), TimeDistributed(GlobalAveragePooling2D), LSTM(1024),
Dense(300, relu), Dense(1), as its run.py's init_model() builds it.

Run as a script (a process of its own, since tf.keras 2 and Keras 3 cannot both be tf.keras):

    python tests/reference_model.py --h5=F,G --dim=64 --volume=3 --save --seed=1   # make F, G
    python tests/reference_model.py --h5=F --dim=64 --volume=3 --inputs=X.npy --outputs=Y.npy
    python tests/reference_model.py --h5=F --dim=64 --volume=3 --jpegs=J.json --outputs=Y.npy

--save builds each model, perturbs its weights (outputs far from zero and different between
inputs) and saves them with save_weights to .h5, as its ModelCheckpoint(save_weights_only=True)
did; otherwise each model loads its file as its run.py did. Each model predicts the inputs at
each of --batch_sizes (several: how float32's order of operations alone moves them). --inputs are sequences already scaled to
0..1; --jpegs is a list of sequences of JPEG files parsed as the reference parsed them (decode,
tf.image.resize to dim x dim, uint8, / 255). The tests call it through `run` and skip, with the
reason, where efficientnet or tf-keras is not installed (never in CI).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.abspath(__file__)


def missing():
    """None when the reference's packages (efficientnet, tf-keras) are installed, else the
    reason (one line). Looked up, not imported: an import costs a TensorFlow start (5 CPU s) in
    a process of its own, and `run` fails loudly where an installed package does not import."""
    absent = [name for name in ("efficientnet", "tf_keras")
              if importlib.util.find_spec(name) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


def run(*arguments):
    """Runs this script with `arguments` (in a process of its own); raises on failure."""
    subprocess.run([sys.executable, HERE, *map(str, arguments)], check=True)


def init_model(dim, volume, model_func):
    """The reference's init_model(): its layers, in its order, with its names."""
    import tensorflow as tf

    inp = tf.keras.layers.Input(shape=(volume, dim, dim, 3), dtype=tf.float32)
    effnet = model_func(input_shape=(dim, dim, 3), weights=None, include_top=False)
    x = tf.keras.layers.TimeDistributed(effnet)(inp)
    x = tf.keras.layers.TimeDistributed(tf.keras.layers.GlobalAveragePooling2D())(x)
    x = tf.keras.layers.LSTM(1024, return_sequences=False)(x)
    x = tf.keras.layers.Dense(300, activation="relu")(x)
    out = tf.keras.layers.Dense(1, activation="linear")(x)
    return tf.keras.models.Model(inp, out, name="model")


def perturb(model, seed, calibration=None):
    """Weights far from their initial values, as training leaves them: every array moved at
    random, the batch-norm statistics those of `calibration` sequences (0..1; default noise of
    different brightness), as a trained model's are of its data (at their initial values every
    normalised activation is far off, and the network's output hardly depends on its input),
    and the output layer pointed along the direction in which Dense(300)'s features vary most
    over those sequences, scaled to a 2 m spread around 6 m."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights[:-2]:
        value = weight.numpy()
        scale = 0.2 if "gamma" in weight.name or "beta" in weight.name else 0.02
        weight.assign((value + rng.normal(0.0, scale, value.shape)).astype(np.float32))
    if calibration is None:
        brightness = np.linspace(0.1, 1.0, 8)[:, None, None, None, None]
        calibration = rng.uniform(0.0, 1.0, (8, *model.input_shape[1:])) * brightness
    calibration = calibration.astype(np.float32)
    normalizations = [layer for layer in model.layers[1].layer.layers
                      if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in normalizations:
        layer.momentum = 0.0  # one training pass sets the moving statistics to the batch's
    model(calibration, training=True)
    features = tf.keras.Model(model.input, model.layers[-2].output).predict(calibration, verbose=0)
    centred = features - features.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    kernel = direction / (centred @ direction).std() * 2.0
    model.layers[-1].set_weights([kernel[:, None].astype(np.float32),
                                  np.array([6.0 - features.mean(axis=0) @ kernel], np.float32)])


def parse_sequence(paths, dim):
    """The reference's parse_example() and norm() on one sequence of JPEG files: decoded
    (INTEGER_ACCURATE), resized to dim x dim (bilinear), cast to uint8, then / 255."""
    import tensorflow as tf

    def fn(path):
        image = tf.image.decode_jpeg(tf.io.read_file(path), channels=3,
                                     dct_method="INTEGER_ACCURATE")
        image = tf.image.resize(image, [dim, dim])
        return tf.cast(image, dtype=tf.uint8)

    image = tf.stack([fn(path) for path in paths])
    image = tf.image.resize(image, [dim, dim])
    return (tf.cast(image, tf.float32) / 255.0).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h5", required=True, help="comma-separated: one model each")
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--volume", type=int, required=True)
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="with --save: the first file's "
                        "seed, the next ones' counting up")
    parser.add_argument("--calibration", help="with --save: .npy sequences (0..1) that set the "
                        "batch-norm statistics and the output direction")
    parser.add_argument("--backbones", default="EfficientNetB0", help="comma-separated, one "
                        "per --h5 file (one: every file's)")
    parser.add_argument("--layout_only", type=int, default=0, help="with --save: the last N "
                        "files saved as built, neither perturbed nor predicting: a file of "
                        "another architecture, whose layout alone is checked")
    parser.add_argument("--inputs")
    parser.add_argument("--jpegs")
    parser.add_argument("--outputs", help=".npy of [models, batch sizes, sequences] distances")
    parser.add_argument("--batch_sizes", default="2", help="comma-separated: one prediction "
                        "of the inputs at each")
    args = parser.parse_args()

    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf-keras (Keras 2), as in 2021
    import efficientnet.tfkeras as efn
    import tensorflow as tf

    if args.jpegs:
        with open(args.jpegs) as f:
            inputs = np.stack([parse_sequence(paths, args.dim) for paths in json.load(f)])
    else:
        inputs = np.load(args.inputs) if args.inputs else None
    outputs = []
    files = args.h5.split(",")
    backbones = args.backbones.split(",") * (len(files) if "," not in args.backbones else 1)
    for i, (h5, backbone) in enumerate(zip(files, backbones)):
        tf.keras.utils.set_random_seed(args.seed + i)
        model = init_model(args.dim, args.volume, getattr(efn, backbone))
        if args.save and i >= len(files) - args.layout_only:
            model.save_weights(h5)
            continue
        if args.save:
            perturb(model, args.seed + i,
                    np.load(args.calibration) if args.calibration else None)
            model.save_weights(h5)
        else:
            model.load_weights(h5)
        if inputs is not None:
            outputs.append([model.predict(inputs, batch_size=int(size), verbose=0)[:, 0]
                            for size in args.batch_sizes.split(",")])
        tf.keras.backend.clear_session()
    if inputs is not None:
        np.save(args.outputs, np.array(outputs))


if __name__ == "__main__":
    main()
