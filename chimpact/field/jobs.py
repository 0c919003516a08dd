"""run_field.py's job in one call: raw videos every second, a times table, or each MegaDetector
detection at each snapshot moment, through the fold-averaged predictor of chimpact.predict.
"""

import functools
import hashlib
import json
import logging
import posixpath

import pandas as pd

from chimpact import storage
from chimpact.data import labels, video
from chimpact.errors import UsageError
from chimpact.field import calibration, camtrap_dp, deployments, distance_file, distances, megadetector, videos
from chimpact.predict import infer
from chimpact.training import model_folder
from chimpact.training import strategy as strategies

log = logging.getLogger(__name__)


def _listed(videos, most=5):
    """Up to `most` of `videos`, comma separated, `...` after them when there are more."""
    return ", ".join(videos[:most]) + (", ..." if len(videos) > most else "")


def _read_detections(detections_json, min_conf, categories, prefix):
    """The MegaDetector file, its skipped detections, summary videos and videos without
    frames_processed logged."""
    found = megadetector.read_detections(detections_json, min_conf, categories, prefix)
    log.info("%s: %d videos, detections from conf %g%s", detections_json, len(found.videos),
             found.min_conf, "" if min_conf is None else " (--min_conf)")
    for reason, count in found.skipped.items():
        log.info("%s: %d detections skipped (%s)", detections_json, count, reason)
    if found.summaries:
        log.warning(
            "%s: %d video(s) keep at most one detection per category and no frames_processed "
            "(%s): a video summary of MegaDetector's, which drops every other frame's "
            "animals; for a distance per animal, write the video results with every processed "
            "frame (process_video.py, or frame_results_to_video_results with "
            "include_all_processed_frames)", detections_json, len(found.summaries),
            _listed(found.summaries))
    if found.unsaid:
        log.warning(
            "%s: %d video(s) have no frames_processed, which their format requires (%s): as "
            "MegaDetector's frame_results_to_video_results writes them; every detection gets "
            "its distance, but a moment without one is `not processed` (--keep_empty), never "
            "empty, since nothing says MegaDetector looked there", detections_json,
            len(found.unsaid), _listed(found.unsaid))
    return found


def _check_paths(detected_videos, video_dir, detections_json):
    """UsageError, before any work, when no listed video lies under `video_dir`: the file was
    written elsewhere (another machine, a frames folder)."""
    if detected_videos and all(megadetector.resolve(v.file, video_dir) is None
                               for v in detected_videos):
        raise UsageError(
            f"--detections={detections_json}: none of its {len(detected_videos)} videos' paths "
            f"lies under --video_dir={video_dir} (first: {detected_videos[0].file}): map the "
            f"folder MegaDetector saw onto it with {megadetector.PREFIX_FLAG}=OLD=NEW")


def _check_deployments(detected_videos, video_dir, deployment_of, deployment_table):
    """Every listed video's deployment is in --deployments_csv, before any work."""
    videos_of = {}
    for video_id in (megadetector.resolve(v.file, video_dir) for v in detected_videos):
        if video_id:
            deployment_id = (deployment_of or {}).get(video_id) or deployments.folder_deployment(
                video_id, video_dir)
            videos_of.setdefault(deployment_id, []).append(video_id)
    missing = sorted(set(videos_of) - set(deployment_table.index))
    if missing:
        raise UsageError(
            f"--deployments_csv: no row for deployment(s) {', '.join(missing[:5])} of the "
            f"video(s) {_listed([v for d in missing for v in videos_of[d]], 3)} (their folders, "
            "or --videos_csv's deployment_id)")


def _video_starts(detected_videos, video_dir, video_table):
    """{video_id: start} of the listed videos in the folder: --videos_csv's timestamp, else the
    container's creation time; UsageError naming those with neither, before any work."""
    starts, lacking = {}, []
    for detected in detected_videos:
        video_id = megadetector.resolve(detected.file, video_dir)
        path = video_id and storage.join(video_dir, video_id)
        if not video_id or detected.failure or not storage.exists(path):
            continue
        if video_id in video_table:
            starts[video_id] = video_table[video_id][1]
            continue
        created = video.creation_time(path)
        if created is None:
            lacking.append(video_id)
            continue
        try:
            starts[video_id] = pd.Timestamp(created).tz_convert("UTC")
        except (TypeError, ValueError, AttributeError):  # none, unreadable, or no time zone
            lacking.append(video_id)
    if lacking:
        raise UsageError(f"--camtrap_dp: no start time for {len(lacking)} video(s) "
                         f"({', '.join(lacking[:3])}): give their timestamp in --videos_csv "
                         "(their files hold no creation_time)")
    return starts


def _write_exports(out_csv, deployment_table, snapshot_s, distance_csv, truncate, area_km2,
                   camtrap_dp_dir, starts, hfov, model_dir, video_dir):
    """R Distance's flat file and the Camtrap DP package of the detection rows in `out_csv`,
    where asked for."""
    if not (distance_csv or camtrap_dp_dir):
        return
    rows = storage.read_csv(out_csv, dtype={"video_id": str, "deployment_id": str})
    if distance_csv:
        storage.write_csv(distance_file.distance_table(
            rows, deployment_table, snapshot_s, truncate, area_km2), distance_csv)
        log.info("%s: R Distance's flat file (Distance::ds(table, transect = \"point\"))",
                 distance_csv)
    if camtrap_dp_dir:
        camtrap_dp.write_package(camtrap_dp_dir, rows, deployment_table, starts, hfov,
                                 str(model_dir),
                                 posixpath.basename(str(video_dir).rstrip("/")) or "survey")
        log.info("%s: a Camtrap DP %s package", camtrap_dp_dir, camtrap_dp.VERSION)


def _check_flags(video_dir, times_csv, detections_json, keep_empty, annotate_dir, snapshot_s,
                 batch_size, videos_csv, deployments_csv, distance_csv, camtrap_dp_dir, hfov,
                 truncate):
    """UsageError for a flag value or combination that cannot work, before any work."""
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
    if (videos_csv or deployments_csv or distance_csv or camtrap_dp_dir) and not detections_json:
        raise UsageError("--videos_csv, --deployments_csv, --distance_csv and --camtrap_dp go "
                         "with --detections")
    if distance_csv and not deployments_csv:
        raise UsageError("--distance_csv needs --deployments_csv: each deployment's active time "
                         "is its effort")
    if camtrap_dp_dir and not deployments_csv:
        raise UsageError("--camtrap_dp needs --deployments_csv: Camtrap DP requires each "
                         "deployment's place and times")
    if hfov is not None and not 0 < hfov < 180:
        raise UsageError(f"--hfov={hfov:g}: degrees, between 0 and 180")
    if truncate is not None and not (len(truncate) == 2 and 0 <= truncate[0] < truncate[1]):
        raise UsageError(f"--truncate={','.join(map(str, truncate))}: give LEFT,RIGHT metres, "
                         "0 <= LEFT < RIGHT")


def _log_fits(fits, noise):
    """Logs each deployment's fit; a warning naming it where calibration.doubts finds any."""
    for deployment_id, found in fits.items():
        log.info("calibration of %s: %d points, reference MAE %.2f -> %.2f m", deployment_id,
                 found["points"], found["mae_before"], found["mae_after"])
        reasons = calibration.doubts(found, noise)
        if reasons:
            log.warning("calibration of %s: %s: check its references (boxes on the right animal, "
                        "times, distances in metres, near and far ones) before using its "
                        "distances", deployment_id, reasons)


def _report_calibration(out_csv, fits):
    """Writes calibration.json beside `out_csv`, warning of its deployments without references."""
    rows = storage.read_csv(out_csv, dtype={"deployment_id": str}, keep_default_na=False)
    deployment_ids = sorted(set(rows.deployment_id[rows.deployment_id != ""]) | set(fits))
    for deployment_id in sorted(set(deployment_ids) - set(fits)):
        log.warning("calibration: %s has no reference detections: left as it is",
                    deployment_id)
    calibration.write_report(storage.join(posixpath.dirname(str(out_csv)) or ".",
                                          "calibration.json"), fits, deployment_ids)


def run_field(model_dir, video_dir, times_csv=None, detections_json=None, out_csv=None,
              min_conf=None, categories=megadetector.CATEGORIES, snapshot_s=1.0,
              keep_empty=False, annotate_dir=None, tta=1, batch_size=16, strategy="auto",
              tpu=None, fps=None, jit_compile="auto", aggregate="mean", progress=True,
              videos_csv=None, deployments_csv=None, distance_csv=None, truncate=None,
              area_km2=None, camtrap_dp_dir=None, hfov=None, calibration_csv=None,
              beam_args=None, path_prefix=None):
    """Everything run_field.py does: every second of every video in `video_dir`, or the
    `times_csv` rows, or each detection of `detections_json` at each snapshot moment (with an
    interval; `min_conf` None: the file's typical_detection_threshold), with the deployments of
    `videos_csv` and `deployments_csv`, R Distance's flat file `distance_csv` and a Camtrap DP
    package in `camtrap_dp_dir`, each deployment's distances corrected by the reference
    detections of `calibration_csv`, the MegaDetector file's folder `path_prefix` ("OLD=NEW")
    replaced. With `beam_args` (runner.pipeline_args) the videos are the
    elements of a Beam pipeline whose workers load the model once each. Returns {video_id:
    error} of the videos that failed."""
    infer.check_aggregate(aggregate)
    infer.view_names(tta)
    _check_flags(video_dir, times_csv, detections_json, keep_empty, annotate_dir, snapshot_s,
                 batch_size, videos_csv, deployments_csv, distance_csv, camtrap_dp_dir, hfov,
                 truncate)
    if (calibration_csv or path_prefix) and not detections_json:
        raise UsageError(f"--calibration_csv and {megadetector.PREFIX_FLAG} go with --detections")
    references = calibration.read_calibration(calibration_csv) if calibration_csv else None
    if references is not None:
        absent = [v for v in references.video_id.unique()
                  if not storage.exists(storage.join(video_dir, v))]
        if absent:
            raise UsageError(f"--calibration_csv: video(s) {', '.join(absent[:3])} not in "
                             f"--video_dir={video_dir}")
    deployment_table = deployments.read_deployments(deployments_csv) if deployments_csv else None
    video_table = deployments.read_videos(videos_csv, deployment_table) if videos_csv else {}
    deployment_of = {video_id: deployment_id for video_id, (deployment_id, _) in
                     video_table.items()}
    times = labels.read_times(times_csv) if times_csv else None
    if detections_json:
        prefix = megadetector.parse_prefix(path_prefix)
        found = _read_detections(detections_json, min_conf, categories, prefix)
        _check_paths(found.videos, video_dir, detections_json)
        offsets = distances.error_offsets(model_dir)
        if deployment_table is not None:
            _check_deployments(found.videos, video_dir, deployment_of, deployment_table)
        starts = _video_starts(found.videos, video_dir, video_table) if camtrap_dp_dir else {}
    load = functools.partial(_load_predictor, model_dir, strategy, tpu, tta, jit_compile,
                             bool(detections_json), aggregate)
    # With Beam, the workers load the model: here only its config is read (and checked).
    config = infer.trained_config(model_dir)
    _warn_boxes(config, model_dir, bool(detections_json))
    predictor = load if beam_args else load()
    inputs = {"model_dir": str(model_dir), "folds": config["folds"], "tta": tta,
              "aggregate": aggregate}
    if detections_json:
        out_csv = out_csv or storage.join(model_dir, "detection_distances.csv")
        fits = None
        if references is not None:  # first, so that the rows and sheets are calibrated
            # An imported reference folder has no out-of-fold errors: the prior camera spread.
            noise = distances.log_error_spread(model_dir) or calibration.CAMERA_SPREAD
            fits = calibration.fit_references(
                load() if beam_args else predictor, config, video_dir, references, offsets,
                noise, fps, batch_size)
            _log_fits(fits, noise)
        failures = distances.predict_detections(
            predictor, config, video_dir,
            dict(inputs, detections=hashlib.sha256(storage.read_bytes(
                detections_json)).hexdigest(), min_conf=found.min_conf, categories=list(categories),
                 snapshot_s=snapshot_s, keep_empty=keep_empty, fps=fps,
                 decode=model_folder.decode_options(config, fps), annotate=str(annotate_dir or ""),
                 deployments=hashlib.sha256(json.dumps(sorted(deployment_of.items())).encode()
                                            ).hexdigest(), path_prefix=path_prefix,
                 calibration=fits),
            out_csv, found.videos, offsets, snapshot_s, keep_empty, fps, annotate_dir, batch_size,
            progress, deployment_of, beam_args,
            fits and functools.partial(calibration.apply, fits=fits))
        if fits is not None:
            _report_calibration(out_csv, fits)
        _write_exports(out_csv, deployment_table, snapshot_s, distance_csv, truncate, area_km2,
                       camtrap_dp_dir, starts, hfov, model_dir, video_dir)
        return failures
    return videos.predict_videos(
        predictor, config, video_dir, out_csv or storage.join(model_dir, "video_preds.csv"),
        times=times, fps=fps, batch_size=batch_size, progress=progress, inputs=inputs,
        beam_args=beam_args)


def _warn_boxes(config, model_dir, detections):
    """Warns, naming the model folder, when boxes and model do not go together: a model trained
    without boxes gives every animal of a frame the same distance; a box model on plain seconds
    sees no box, unlike anything it was trained on."""
    if detections and not config.get("use_boxes", False):
        log.warning("%s was trained without boxes (run_train.py --use_boxes): every detection "
                    "of a frame gets the same distance", model_dir)
    if not detections and config.get("use_boxes", False):
        log.warning("%s is a box model (--use_boxes) run on whole seconds without --detections: "
                    "it sees no box, so its distances are not the animals'; give MegaDetector's "
                    "file as --detections", model_dir)


def _load_predictor(model_dir, strategy, tpu, tta, jit_compile, per_fold, aggregate):
    """infer.load_predictor's predictor, the strategy named (picklable: a Beam worker calls
    it)."""
    return infer.load_predictor(model_dir, strategies.make_strategy(strategy, tpu), tta,
                                jit_compile, per_fold=per_fold, aggregate=aggregate)[0]
