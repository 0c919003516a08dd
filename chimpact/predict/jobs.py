"""run_infer.py's job in one call: test records, the submission, the out-of-fold views and the
export, in that order."""

import logging

from chimpact import storage
from chimpact.data import labels
from chimpact.errors import UsageError
from chimpact.predict import infer
from chimpact.training import model_folder
from chimpact.training import strategy as strategies

log = logging.getLogger(__name__)


def run_infer(model_dir, tfrec_dir=None, submission_csv=None, out_csv=None, export_dir=None,
              oof=False, tta=1, batch_size=16, strategy="auto", tpu=None, jit_compile="auto",
              aggregate="mean"):
    """Everything run_infer.py does, in order: with `oof`, the training records' folds ->
    oof_tta.csv; test records -> test_preds.csv; the submission; the export. `aggregate`
    combines the folds and views (AGGREGATES)."""
    infer.check_aggregate(aggregate)
    if not (oof or tfrec_dir or submission_csv or export_dir):
        raise UsageError("nothing to do: give --tfrec_dir, --submission_csv, --oof or --export")
    if batch_size < 1:
        raise UsageError(f"--batch_size={batch_size}: must be positive")
    if export_dir:
        infer.check_export_dir(export_dir)
    if oof:
        # --oof reads the training records (--tfrec_dir names them, else config.json does).
        table = infer.predict_oof(model_dir, tfrec_dir, tta,
                                  strategies.make_strategy(strategy, tpu), jit_compile,
                                  batch_size, aggregate)
        storage.write_csv(table, storage.join(model_dir, model_folder.OOF_TTA))
        log.info("out-of-fold MAE of each view and of their mean (pred), %s: %s",
                 model_folder.OOF_TTA,
                 " ".join(f"{name} {mae:.4f}" for name, mae in infer.view_scores(table).items()))
    elif tfrec_dir:
        predictor, config = infer.load_predictor(
            model_dir, strategies.make_strategy(strategy, tpu), tta, jit_compile,
            aggregate=aggregate)
        storage.write_csv(infer.predict_records(predictor, config, tfrec_dir, batch_size),
                          storage.join(model_dir, model_folder.TEST_PREDS))
        log.info("%s -> %s", tfrec_dir, storage.join(model_dir, model_folder.TEST_PREDS))
    if submission_csv:
        predictions = infer.read_predictions(model_dir)
        out_csv = out_csv or storage.join(model_dir, "submission.csv")
        storage.write_csv(labels.fill_submission(submission_csv, predictions), out_csv)
        log.info("%s filled -> %s", submission_csv, out_csv)
    if export_dir:
        # Exported from a single-device copy: a SavedModel must not hold distributed variables.
        infer.export(*infer.load_predictor(model_dir, None, tta, aggregate=aggregate),
                     export_dir, jit_compile)
        log.info("exported %s -> %s", model_dir, export_dir)
