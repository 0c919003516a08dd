r"""Predicts with a trained model folder on the challenge's side: test records, the submission,
the out-of-fold views, the export (raw videos and detections: run_field.py).

    python run_infer.py --model_dir=runs/b0 --tfrec_dir=records/test --tta=4 \
        --submission_csv=data/submission_format.csv --out_csv=runs/b0/submission.csv
    python run_infer.py --model_dir=runs/b0 --oof --tta=4     # each view's out-of-fold MAE
    python run_infer.py --model_dir=runs/b0 --export=runs/b0/export
    chimpact infer --model_dir=runs/b0 --export=runs/b0/export     # the installed command

Every fold's best weights are averaged (and --tta views). --tfrec_dir writes test_preds.csv into
the model folder (what ensemble.py reads); --submission_csv fills the format table from it.
"""

from absl import flags

import chimpact_flags
from chimpact import cli, storage
from chimpact.cli import reports_input_errors

chimpact_flags.define_prediction_flags()
flags.adopt_module_key_flags(chimpact_flags)
flags.DEFINE_string("tfrec_dir", None, "Test records (create_tfrecords.py --subset=test): "
                    "predicts each example once and writes MODEL_DIR/test_preds.csv (with --oof: "
                    "the training records to read instead of config.json's).")
flags.DEFINE_bool("oof", False, "Predict each trained fold's own validation rows of the "
                  "training records (--tfrec_dir, default the ones in config.json) under the "
                  "--tta views into MODEL_DIR/oof_tta.csv, and print each view's out-of-fold "
                  "MAE: whether TTA helps, and what ensemble.py --tta fits on.")
flags.DEFINE_string("submission_csv", None, "Submission format table (video_id, time, distance): "
                    "written to --out_csv with the distances of MODEL_DIR/test_preds.csv.")
flags.DEFINE_string("out_csv", None, "Where --submission_csv's filled table goes. Default: "
                    "MODEL_DIR/submission.csv.")
flags.DEFINE_string("export", None, "Folder for a SavedModel of the fold average (endpoint "
                    "`serve`: uint8 [batch, volume_size, H, W, 3] -> metres), loadable without "
                    "chimpact.")

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    storage.check_writable(FLAGS.out_csv, "out_csv", "file")
    storage.check_writable(FLAGS.export, "export")
    cli.select_backend(FLAGS.backend)
    cli.require_tensorflow()
    storage.check_folder(FLAGS.model_dir, "model_dir")
    storage.check_folder(FLAGS.tfrec_dir, "tfrec_dir")
    from chimpact.predict import jobs  # TensorFlow loads here, once the flags are read
    jobs.run_infer(
        FLAGS.model_dir, tfrec_dir=FLAGS.tfrec_dir, submission_csv=FLAGS.submission_csv,
        out_csv=FLAGS.out_csv, export_dir=FLAGS.export, oof=FLAGS.oof, tta=FLAGS.tta,
        batch_size=FLAGS.batch_size, strategy=FLAGS.strategy, tpu=FLAGS.tpu,
        jit_compile=cli.jit_compile(FLAGS.jit_compile), aggregate=FLAGS.aggregate)


if __name__ == "__main__":
    chimpact_flags.run(main)
