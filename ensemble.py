r"""Blends trained models with the greedy pairwise search on their out-of-fold predictions.

    python ensemble.py --model_dirs=runs/b0_a,runs/b0_b --out_dir=runs/ensemble [--round_to_labels] \
        [--submission_csv=data/submission_format.csv]
    chimpact ensemble --model_dirs=runs/b0_a,runs/b0_b --out_dir=runs/ensemble   # installed

Each model dir needs oof.csv (run_train.py) and test_preds.csv (run_infer.py). Writes
ensemble.json, submission.csv and ensemble.png into --out_dir and prints the MAE table.
"""

from absl import flags

import chimpact_flags
from chimpact import ensemble, storage
from chimpact.cli import reports_input_errors

flags.DEFINE_list("model_dirs", None, "Comma-separated model directories (local or gs://), each "
                  "holding oof.csv and test_preds.csv.")
flags.DEFINE_string("out_dir", None, "Where ensemble.json, submission.csv and ensemble.png go.")
flags.DEFINE_enum("blend", "search", list(ensemble.BLENDS), "search: the greedy pairwise search "
                  "on the models' out-of-fold predictions; reference: the reference's published "
                  "weights over imported reference models (chimpact import), which have no "
                  "out-of-fold predictions (only test_preds.csv is read; with fewer than its 12 "
                  "configurations their weights are scaled to sum to 1).")
flags.DEFINE_float("coef_min", 0.0, "Smallest blend coefficient c tried for c*current+(1-c)*next.")
flags.DEFINE_float("coef_max", 1.11, "Largest blend coefficient tried (inclusive); the "
                   "reference's grid is 0 to 1.11 by 0.01.")
flags.DEFINE_float("coef_step", 0.01, "Step of the coefficient grid.")
flags.DEFINE_bool("round_to_labels", False, "Snap the submitted distances to the nearest distance "
                  "present in the training labels (the OOF MAE is reported with and without).")
flags.DEFINE_string("submission_csv", None, "Optional submission format table (video_id, time, "
                    "distance): submission.csv then has its rows, order and columns.")
flags.DEFINE_enum("tta", "none", list(ensemble.TTA_MEMBERS), "What each model brings: none, "
                  "its predictions without TTA (oof.csv; the identity view of test_preds.csv); "
                  "mean, the mean of its TTA views on both sides (oof_tta.csv from run_infer.py "
                  "--oof, test_preds.csv, made with the same --tta); views, each TTA view as a "
                  "member of its own, as the reference allowed.")
flags.mark_flags_as_required(["model_dirs", "out_dir"])

FLAGS = flags.FLAGS


@reports_input_errors
def main(argv):
    # Every gs:// path among the flags answers, before work that would retry it for minutes.
    storage.check_reachable(FLAGS.flag_values_dict())
    del argv
    storage.check_writable(FLAGS.out_dir, "out_dir")
    for model_dir in FLAGS.model_dirs:
        storage.check_folder(model_dir, "model_dirs")
    if FLAGS.blend == "reference":
        summary = ensemble.run_reference_blend(FLAGS.model_dirs, FLAGS.out_dir,
                                               FLAGS.round_to_labels, FLAGS.submission_csv)
        for model_dir, weight in zip(summary["models"], summary["weights"]):
            print(f"{model_dir:<48} {weight:>7.3f}")
        return
    summary = ensemble.run_ensemble(
        FLAGS.model_dirs, FLAGS.out_dir, coef_min=FLAGS.coef_min, coef_max=FLAGS.coef_max,
        coef_step=FLAGS.coef_step, round_to_labels=FLAGS.round_to_labels,
        submission_csv=FLAGS.submission_csv, tta=FLAGS.tta)
    print(ensemble.mae_table(summary))


if __name__ == "__main__":
    chimpact_flags.run(main)
