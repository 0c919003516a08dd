"""The two prediction jobs, each in one call: run_infer.py's (test records, the submission, the
out-of-fold views, the export) and run_field.py's (raw videos: every second, a times table, or
each MegaDetector detection). The stage after chimpact.infer and chimpact.field, so that the
field job can use inference and not the reverse.
"""

import hashlib
import logging

from chimpact import detections, field, infer, labels, model_folder, storage
from chimpact import strategy as strategies
from chimpact.errors import UsageError

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
    if submission_csv:
        predictions = infer.read_predictions(model_dir)
        storage.write_csv(labels.fill_submission(submission_csv, predictions),
                          out_csv or storage.join(model_dir, "submission.csv"))
    if export_dir:
        # Exported from a single-device copy: a SavedModel must not hold distributed variables.
        infer.export(*infer.load_predictor(model_dir, None, tta, aggregate=aggregate),
                     export_dir, jit_compile)


def run_field(model_dir, video_dir, times_csv=None, detections_json=None, out_csv=None,
              min_conf=detections.MIN_CONF, categories=detections.CATEGORIES, snapshot_s=1.0,
              keep_empty=False, annotate_dir=None, tta=1, batch_size=16, strategy="auto",
              tpu=None, fps=None, jit_compile="auto", aggregate="mean", progress=True):
    """Everything run_field.py does: every second of every video in `video_dir`, or the
    `times_csv` rows, or each detection of `detections_json` at each snapshot moment (with an
    interval). Returns {video_id: error} of the videos that failed."""
    infer.check_aggregate(aggregate)
    if not video_dir:
        raise UsageError("--video_dir is required: the folder of videos to predict")
    if times_csv and detections_json:
        raise UsageError("--times_csv and --detections both pick what to predict: give one")
    if (keep_empty or annotate_dir) and not detections_json:
        raise UsageError("--keep_empty and --annotate go with --detections")
    if snapshot_s <= 0:
        raise UsageError(f"--snapshot_s={snapshot_s}: must be positive")
    if batch_size < 1:
        raise UsageError(f"--batch_size={batch_size}: must be positive")
    times = labels.read_times(times_csv) if times_csv else None
    if detections_json:
        detected, skipped = detections.read_detections(detections_json, min_conf, categories)
        offsets = field.error_offsets(model_dir)
        for reason, count in skipped.items():
            log.info("%s: %d detections skipped (%s)", detections_json, count, reason)
    predictor, config = infer.load_predictor(
        model_dir, strategies.make_strategy(strategy, tpu), tta, jit_compile,
        per_fold=bool(detections_json), aggregate=aggregate)
    inputs = {"model_dir": str(model_dir), "folds": config["folds"], "tta": tta,
              "aggregate": aggregate}
    if detections_json:
        return field.predict_detections(
            predictor, config, video_dir,
            dict(inputs, detections=hashlib.sha256(storage.read_bytes(
                detections_json)).hexdigest(), min_conf=min_conf, categories=list(categories),
                 snapshot_s=snapshot_s, keep_empty=keep_empty, fps=fps,
                 decode=infer.decode_options(config, fps), annotate=str(annotate_dir or "")),
            out_csv or storage.join(model_dir, "detection_distances.csv"), detected, offsets,
            snapshot_s, keep_empty, fps, annotate_dir, batch_size, progress)
    return infer.predict_videos(
        predictor, config, video_dir, out_csv or storage.join(model_dir, "video_preds.csv"),
        times=times, fps=fps, batch_size=batch_size, progress=progress, inputs=inputs)
