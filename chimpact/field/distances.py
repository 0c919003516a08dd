"""A distance per animal for a folder of field videos and their MegaDetector output: one row per
detection and snapshot moment, with an interval, ready for camera-trap distance sampling.

Each detection used at a snapshot moment t (chimpact.field.detections) gets the sequence of frames
the records would hold for second t (chimpact.data.window) and the detection's box, through every
fold's
network under every test-time view (infer.FoldAverage with per_fold). The distance is their
mean (or median, run_field.py --aggregate); the interval runs from distance + q10 to
distance + q90 of the model folder's out-of-fold errors (an 80% interval measured on held-out
videos), widened where needed to hold every fold and view's own prediction, so it is never
narrower than the models' disagreement.
"""

import collections
import contextlib
import logging
import math

import numpy as np
import pandas as pd
import tensorflow as tf
import tqdm

from chimpact import runner, storage
from chimpact.data import boxes, extract, frames, video
from chimpact.errors import InputError
from chimpact.field import annotate, deployments, detections, megadetector, videos
from chimpact.predict import infer
from chimpact.training import model_folder

log = logging.getLogger(__name__)
COLUMNS = ["video_id", "deployment_id", "time", "detection", "category", *boxes.COORDINATES,
           "conf", "distance",
           "distance_low", "distance_high", "error"]
QUANTILES = (0.1, 0.9)
MIN_LOG_M = 0.1  # distances below this have no meaningful ratio
_TEXT = ("video_id", "deployment_id", "category", "error")
NUMERIC_NA = {name: [""] for name in COLUMNS if name not in _TEXT}
NOT_PROCESSED = "not processed: MegaDetector looked at no frame within half a snapshot"
NOT_LISTED = "not in --detections: MegaDetector did not list this video"


def _out_of_fold(model_dir):
    path = storage.join(model_dir, model_folder.OOF)
    if not storage.exists(path):
        raise InputError(f"{path}: missing: the folder's training did not finish")
    return storage.read_csv(path, dtype={"video_id": str})


def _published_mae(model_dir):
    """The mean validation MAE of an imported folder's folds (from its checkpoints' names)
    when it has no oof.csv, else None."""
    if storage.exists(storage.join(model_dir, model_folder.OOF)):
        return None
    maes = model_folder.read_config(model_dir).get("validation_mae") or {}
    return float(np.mean(list(maes.values()))) if maes else None


def error_offsets(model_dir):
    """(low, high): the QUANTILES of the out-of-fold errors (true - predicted, metres) of a
    trained model folder. An imported reference folder has no out-of-fold rows: its folds'
    published validation MAE m gives +-ln(5) m, the 10% and 90% points of Laplace errors of
    that mean absolute error (an approximation, said in the README)."""
    mae = _published_mae(model_dir)
    if mae is not None:
        return (-math.log(5) * mae, math.log(5) * mae)
    oof = _out_of_fold(model_dir)
    return tuple(float(v) for v in np.quantile(oof.distance - oof.pred, QUANTILES))


def log_error_spread(model_dir):
    """The spread of a trained model folder's out-of-fold errors as ratios: 1.4826 x the median
    absolute deviation of log(true / predicted), over rows where both exceed MIN_LOG_M (a
    standard deviation that a few wild rows do not inflate); None for an imported folder
    without out-of-fold rows (calibration then takes its prior camera spread)."""
    if _published_mae(model_dir) is not None:
        return None
    oof = _out_of_fold(model_dir)
    both = oof[(oof.distance > MIN_LOG_M) & (oof.pred > MIN_LOG_M)]
    ratios = np.log(both.distance / both.pred)
    return float(1.4826 * np.median(np.abs(ratios - np.median(ratios))))


def interval(predictions, offsets, aggregate="mean"):
    """(distance, low, high) from [n, views, folds] predictions and error offsets (low, high):
    the mean (or median) of them all; the offsets around it (low not below 0), widened to hold
    every prediction."""
    flat = predictions.reshape(len(predictions), -1)
    distance = np.median(flat, axis=1) if aggregate == "median" else flat.mean(axis=1)
    low = np.minimum(flat.min(axis=1), np.maximum(distance + offsets[0], 0.0))
    high = np.maximum(flat.max(axis=1), distance + offsets[1])
    return distance, low, high


def snapshot_times(n_frames, fps, snapshot_s):
    """The snapshot moments 0, T, 2T, ... whose frame lies inside a video of `n_frames`."""
    count = int(np.floor((n_frames - 0.5) / fps / snapshot_s)) + 1
    return [round(k * snapshot_s, 6) for k in range(count)
            if frames.frame_index(k * snapshot_s, fps) < n_frames]


def predict_boxes(predictor, config, pictures, fps, boxed, offsets, batch_size=16):
    """(distance, low, high) of the `boxed` rows (time, x1, y1, x2, y2) of one video's decoded
    `pictures`: each box in the sequence the records would hold for its second."""
    parts = []
    for start in range(0, len(boxed), batch_size):
        chunk = boxed.iloc[start:start + batch_size]
        sequences = videos.model_sequences(config, pictures, chunk.time, fps)
        box = np.column_stack([chunk[boxes.COORDINATES].to_numpy(), np.ones(len(chunk))])
        parts.append(infer.predict_arrays(
            predictor, infer.model_inputs(config, sequences, box), batch_size))
    return interval(np.concatenate(parts), offsets, predictor.aggregate)


Decoded = collections.namedtuple("Decoded", "pictures fps frame_rate aspect")


def decode_detected(config, path, detected, fps=None):
    """Decoded: the pictures, the fps decoded at, the frame rate MegaDetector's frame numbers
    count in and the video's width / height (for contact sheets; None where ffmpeg did not say)
    of one video with its VideoDetections; VideoError when it cannot be decoded, or when
    neither the file nor the video gives the frame rate."""
    pictures, info = videos.decode_frames(config, path, fps)
    frame_rate = detected.frame_rate or info.get("source_fps")
    if not frame_rate:
        raise video.VideoError(path, "no frame rate in --detections and none in the video: "
                               "give info.custom_metadata.video_frame_rate")
    size = info.get("source_size")
    return Decoded(pictures, info["fps"], frame_rate, size and size[0] / size[1])


def predict_detected(predictor, config, decoded, detected, offsets, snapshot_s=1.0,
                     keep_empty=False, batch_size=16):
    """(rows (COLUMNS), pictures at the snapshot moments, their times) of one video `decoded`
    by decode_detected, with its VideoDetections; with `keep_empty`, a row for each moment
    without a detection, its error NOT_PROCESSED where MegaDetector looked at no frame near
    it."""
    pictures, fps, frame_rate, _ = decoded
    moments = snapshot_times(len(pictures), fps, snapshot_s)
    used = detections.snapshot_detections(detected.detections, frame_rate, snapshot_s,
                                          detected.frames_processed)
    used = used[used.time.isin(moments)].reset_index(drop=True)
    table = used[["time", "detection", "category", *boxes.COORDINATES, "conf"]].copy()
    table["distance"] = table["distance_low"] = table["distance_high"] = np.nan
    table["error"] = ""
    if len(used):
        table["distance"], table["distance_low"], table["distance_high"] = predict_boxes(
            predictor, config, pictures, fps, used, offsets, batch_size)
    if keep_empty:
        looked = set(detections.processed_moments(moments, detected.frames_processed,
                                                  frame_rate, snapshot_s))
        empty = pd.DataFrame({"time": sorted(set(moments) - set(table.time))})
        empty["error"] = ["" if t in looked else NOT_PROCESSED for t in empty.time]
        table = pd.concat([table, empty], ignore_index=True).sort_values(
            ["time", "detection"], kind="stable", na_position="first")
    picked = [frames.frame_index(t, fps) for t in moments]
    return table.reset_index(drop=True), pictures[picked], moments


def _error_row(video_id, deployment_id, reason):
    return pd.DataFrame([{"video_id": video_id, "deployment_id": deployment_id,
                          "error": reason}], columns=COLUMNS)


def _sheet_path(annotate_dir, video_id):
    return storage.join(annotate_dir, video_id.replace("/", "_") + ".jpg")


class _Detected:
    """How one listed video is predicted into its part (videos.part_path), in this process or
    as an element of a Beam pipeline (chimpact.runner, whose worker loads the predictor once,
    with `predictor` the picklable callable that loads it)."""

    def __init__(self, predictor, config, video_dir, parts, offsets, snapshot_s, keep_empty, fps,
                 annotate_dir, batch_size, adjust=None):
        self.predictor, self.config, self.video_dir, self.parts = (predictor, config, video_dir,
                                                                   parts)
        self.offsets, self.snapshot_s, self.keep_empty, self.fps = (offsets, snapshot_s,
                                                                    keep_empty, fps)
        self.annotate_dir, self.batch_size, self.adjust = annotate_dir, batch_size, adjust

    def setup(self):
        self.predictor = self.predictor()

    def decode(self, element):
        video_id, _, detected = element
        return decode_detected(self.config, storage.join(self.video_dir, video_id), detected,
                               self.fps)

    def predict(self, element, decoded):
        """Predicts `element` (video_id, deployment_id, VideoDetections) from `decoded()` into
        its part, or writes why it could not be."""
        video_id, deployment_id, detected = element
        try:
            found = decoded()
            rows, pictures, moments = predict_detected(
                self.predictor, self.config, found, detected, self.offsets, self.snapshot_s,
                self.keep_empty, self.batch_size)
        except video.VideoError as e:
            storage.atomic_write(videos.failure_path(self.parts, video_id), e.reason)
            return
        rows = rows.assign(video_id=video_id, deployment_id=deployment_id)
        if self.adjust:  # before the sheet, so that it shows the table's distances
            rows = self.adjust(rows)
        if self.annotate_dir:
            annotate.write_sheet(annotate.contact_sheet(pictures, moments, rows, found.aspect),
                                 _sheet_path(self.annotate_dir, video_id))
        storage.write_csv(rows, videos.part_path(self.parts, video_id))

    def __call__(self, element):
        self.predict(element, lambda: self.decode(element))


def predict_detections(predictor, config, video_dir, inputs, out_csv,
                       detected_videos, offsets, snapshot_s=1.0, keep_empty=False, fps=None,
                       annotate_dir=None, batch_size=16, progress=True, deployment_of=None,
                       beam_args=None, adjust=None):
    """Writes `out_csv` (COLUMNS) for the `detected_videos` (VideoDetections) of `video_dir`, in
    file order, then a row for each video of the folder the file does not list (NOT_LISTED,
    not a failure: the file may cover part of a folder); a video missing, failed in
    MegaDetector or undecodable gets one row with the error and the others finish. `inputs`
    (what produced the rows) decides whether an interrupted run's per-video results are
    reused; `deployment_of` ({video_id: deployment_id}, --videos_csv) overrides the videos'
    folders. With `beam_args` (runner.pipeline_args) each video is an element of a Beam
    pipeline and `predictor` a picklable callable that loads the predictor in each worker.
    `adjust` (picklable, e.g. calibration.apply with its fits) corrects each video's rows
    before its part and contact sheet are written. Returns {video_id: error}."""
    if not tf.io.gfile.isdir(video_dir):
        raise InputError(f"--video_dir={video_dir} does not exist or is not a folder")
    listed = {detected.file: megadetector.resolve(detected.file, video_dir)
              for detected in detected_videos}
    deployment_of = deployment_of or {}

    def deployment(video_id):
        return deployment_of.get(video_id) or deployments.folder_deployment(video_id, video_dir)

    unlisted = [v for v in extract.video_ids(video_dir, folders=True) if v not in listed.values()]
    parts = videos.parts_dir(out_csv, inputs)
    if annotate_dir:
        tf.io.gfile.makedirs(annotate_dir)
    log.info("%s -> %s: the detections of %d videos, a snapshot every %g s", video_dir, out_csv,
             len(listed), snapshot_s)

    def problem(detected):
        """Why a listed video gets no prediction without being decoded, if it does not."""
        video_id = listed[detected.file]
        if video_id is None:
            return (f"an absolute path outside --video_dir={video_dir} (written on another "
                    f"machine? map its folder with {megadetector.PREFIX_FLAG}=OLD=NEW)")
        if detected.failure:
            return f"MegaDetector failed on it: {detected.failure}"
        if not tf.io.gfile.exists(storage.join(video_dir, video_id)):
            return f"not found in --video_dir={video_dir}"
        return None

    problems = [problem(d) for d in detected_videos]
    pending = [(listed[d.file], deployment(listed[d.file]), d)
               for i, d in enumerate(detected_videos) if not problems[i]
               and not tf.io.gfile.exists(videos.part_path(parts, listed[d.file]))]
    videos.log_resumed(problems.count(None) - len(pending), len(detected_videos))
    work = _Detected(predictor, config, video_dir, parts, offsets, snapshot_s, keep_empty, fps,
                     annotate_dir, batch_size, adjust)
    if beam_args is not None:
        runner.run(work, pending, beam_args, parts, name="field")
    else:
        with contextlib.closing(videos.ahead(pending, work.decode)) as decoded:
            for element, future in tqdm.tqdm(decoded, total=len(pending), unit="video",
                                              disable=not progress):
                work.predict(element, future.result)
    failures, tables = {}, []
    for i, detected in enumerate(detected_videos):
        video_id = listed[detected.file] or detected.file
        deployment_id = deployment(video_id) if listed[detected.file] else ""
        if problems[i]:
            failures[video_id] = problems[i]
        elif not tf.io.gfile.exists(videos.part_path(parts, video_id)):
            failures[video_id] = videos.read_failure(parts, video_id)
        if video_id in failures:
            tables.append(_error_row(video_id, deployment_id, failures[video_id]))
        else:
            tables.append(storage.read_csv(videos.part_path(parts, video_id),
                                           dtype={name: str for name in _TEXT},
                                           keep_default_na=False, na_values=NUMERIC_NA))
    if unlisted:
        log.warning("%d video(s) of --video_dir=%s are not in --detections (%s%s): a row each "
                    "says so", len(unlisted), video_dir, ", ".join(unlisted[:3]),
                    ", ..." if len(unlisted) > 3 else "")
    for video_id in unlisted:
        tables.append(_error_row(video_id, deployment(video_id), NOT_LISTED))
    table = pd.concat(tables, ignore_index=True)[COLUMNS].astype({"detection": "Int64"})
    storage.write_csv(table, out_csv)
    tf.io.gfile.rmtree(parts)
    return failures
