"""The flags both prediction programs take (chimpact infer and chimpact field): the model
folder, its test-time views and how they combine, batches and devices."""

from absl import flags

from chimpact import cli, settings

flags.DEFINE_string("model_dir", None, "Trained model folder (run_train.py --out_dir), local or "
                    "gs://: config.json and fold*/best.weights.h5.")
flags.DEFINE_integer("tta", 1, "Test-time views averaged: 1 = none, then flips and rotations "
                     "(identity, flip lr, flip ud, rot90, rot180, rot270, ...).", lower_bound=1)
flags.DEFINE_enum("aggregate", "mean", list(settings.AGGREGATES), "How the folds' and the "
                  "test-time views' predictions combine: mean, or median (over the folds, then "
                  "over the views, as the 1st place did).")
flags.DEFINE_integer("batch_size", 16, "Global batch size (rounded up to a multiple of the "
                     "replicas).", lower_bound=1)
flags.DEFINE_enum("strategy", "auto", settings.STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU name, grpc://HOST:PORT or `local` (TPU VM).")
flags.DEFINE_enum("jit_compile", "auto", list(cli.JIT_COMPILE_FLAG), cli.JIT_COMPILE_HELP)
flags.mark_flag_as_required("model_dir")
