"""Distances for raw field videos, decoded as create_frames.py decodes the training frames: every
second of each video of a folder, or the seconds a times table asks for, with the records' window
(chimpact.data.window) over the decoded pictures and the fold-averaged predictor of
chimpact.predict.infer. The next videos are decoded while the network predicts the current one
(ahead: a bounded queue, so memory does not grow with the survey). Per-video results are kept
beside the output until it is written, so an interrupted run resumes.
"""

import collections
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import logging
import os

import numpy as np
import pandas as pd
import tensorflow as tf
import tqdm

from chimpact import runner, storage
from chimpact.data import extract, frames, resize, video, window
from chimpact.data.labels import KEYS
from chimpact.errors import InputError
from chimpact.predict import infer
from chimpact.training import model_folder

log = logging.getLogger(__name__)

DECODE_AHEAD = 3  # videos decoded ahead of the one being predicted
DECODE_WORKERS = 2  # videos decoded at once (ffmpeg's start and its pipe leave a core half idle)


def video_seconds(n_frames, fps):
    """Every whole second of a video whose frame lies inside it."""
    return [t for t in range(int(np.ceil(n_frames / fps)))
            if frames.frame_index(t, fps) < n_frames]


def sequences(pictures, times, fps, frames_per_side, step, volume_size, fill="clamp"):
    """[len(times), volume_size, H, W, 3]: the frames of decoded `pictures` that the records hold
    for these seconds (chimpact.data.window: the same window, clamped at the ends the same way, or
    black there with fill zero)."""
    picked = [window.volume_window(t, fps, len(pictures), frames_per_side, step, volume_size)
              for t in times]
    shape = (len(picked), volume_size)
    chosen = pictures[np.array([w for w, _ in picked], np.int64).reshape(shape)]
    if fill == "zero":
        chosen[np.array([outside for _, outside in picked], bool).reshape(shape)] = 0
    return chosen


def model_sequences(config, pictures, times, fps):
    """sequences() with a model folder's window and fill."""
    return sequences(pictures, times, fps, config["frames_per_side"], config["step"],
                     config["volume_size"], config["frame_fill"])


def decode_frames(config, path, fps, labelled=None):
    """(pictures uint8 [n, H, W, 3] at the model's size, info: fps decoded at, source_fps...)
    of a video decoded as create_frames.py decodes, with the settings of the model's training
    frames, scaled by ffmpeg or decoded at full size and resized as the reference did (the
    model's frame_resize), ffmpeg on its share of the cores (DECODE_WORKERS videos decode at once, as
    create_frames.py shares them among its workers)."""
    height, width = config["image_size"]
    options = model_folder.decode_options(config, fps)
    full_size = resize.decodes_full_size(config["frame_resize"])
    pictures, info = video.decode_video(
        path, labelled_frames=labelled, size=None if full_size else (width, height),
        threads=max(1, (os.cpu_count() or 1) // DECODE_WORKERS), **options)
    if full_size and len(pictures):
        pictures = resize.resize_frames(pictures, (height, width), "reference").numpy()
    return pictures, info


def decode_times(config, path, times=None, fps=None):
    """(pictures, fps decoded at) of one video for predict_pictures: decoded as create_frames.py
    decodes, with model_folder.decode_options(config, fps), the frames of `times` kept as label
    frames are; VideoError when it cannot be decoded."""
    fps = model_folder.decode_options(config, fps)["fps"]
    labelled = None if times is None else [frames.frame_index(t, fps) for t in times]
    return decode_frames(config, path, fps, labelled)[0], fps


def predict_pictures(predictor, config, pictures, fps, times=None, batch_size=16):
    """(times, distances, errors) of one decoded video at `times` (every second when None); a
    time whose frame lies past the video's end gets no distance (NaN) and the error "past the
    end". A box model sees no box (the whole frame)."""
    times = video_seconds(len(pictures), fps) if times is None else list(times)
    inside = [t for t in times if 0 <= frames.frame_index(t, fps) < len(pictures)]
    distances = [np.zeros(0, np.float32)]
    # One batch of sequences at a time: a long video's sequences need not fit in memory.
    for start in range(0, len(inside), batch_size):
        chunk = model_sequences(config, pictures, inside[start:start + batch_size], fps)
        distances.append(infer.combine_views(infer.predict_arrays(
            predictor, infer.model_inputs(config, chunk), batch_size), predictor.aggregate))
    found = dict(zip(inside, np.concatenate(distances)))
    past = f"past the end: the video has {len(pictures) / fps:g} s"
    return (times, np.array([found.get(t, np.nan) for t in times], np.float32),
            ["" if t in found else past for t in times])


def predict_video(predictor, config, path, times=None, fps=None, batch_size=16):
    """predict_pictures of the video at `path`, decoded by decode_times."""
    pictures, fps = decode_times(config, path, times, fps)
    return predict_pictures(predictor, config, pictures, fps, times, batch_size)


def ahead(items, load, depth=DECODE_AHEAD, workers=DECODE_WORKERS):
    """Yields (item, future of load(item)) in the order of `items`, loading on `workers` threads
    up to `depth` items ahead of the one the caller works on: ffmpeg decodes the next videos
    while the network predicts this one, and memory holds at most depth + 1 decoded videos,
    whatever the survey's size. Stopping early cancels what has not started."""
    items = iter(items)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        queued = collections.deque((item, pool.submit(load, item))
                                   for item in itertools.islice(items, depth))
        try:
            while queued:
                item, future = queued.popleft()
                for following in itertools.islice(items, 1):
                    queued.append((following, pool.submit(load, following)))
                yield item, future
        finally:
            for _, future in queued:
                future.cancel()


def parts_dir(out_csv, inputs):
    """Per-video results of an interrupted run with the same `inputs`, kept beside `out_csv`
    until it is written (emptied when the inputs differ), so that a re-run resumes."""
    parts = str(out_csv) + ".parts"
    stamp = storage.join(parts, "inputs.json")
    if tf.io.gfile.exists(stamp) and json.loads(storage.read_text(stamp)) != inputs:
        tf.io.gfile.rmtree(parts)
    if not tf.io.gfile.exists(stamp):
        tf.io.gfile.makedirs(parts)
        storage.atomic_write(stamp, json.dumps(inputs))
    return parts


def log_resumed(done, total):
    """Says how many of the `total` videos an interrupted run had already done, when any."""
    if done:
        log.info("%d of %d videos already done, resuming", done, total)


def part_path(parts, video_id):
    """Where one video's results wait in `parts` (parts_dir) until the output is written."""
    return storage.join(parts, hashlib.sha1(video_id.encode()).hexdigest()[:16] + ".csv")


def failure_path(parts, video_id):
    """Where the reason a video could not be predicted waits in `parts`, for the driver to read
    (a Beam worker has no other way to tell it)."""
    return part_path(parts, video_id)[:-len(".csv")] + ".error"


def read_failure(parts, video_id):
    """The reason a video of `parts` failed; InputError when it has no part and no reason
    (whoever was to predict it never did)."""
    path = failure_path(parts, video_id)
    if not tf.io.gfile.exists(path):
        raise InputError(f"{video_id}: neither predicted nor failed: run again to resume")
    return storage.read_text(path)


class _Seconds:
    """How one video, (video_id, times), is predicted into its part, in this process or as an
    element of a Beam pipeline (chimpact.runner, whose worker loads the predictor once, with
    `predictor` the picklable callable that loads it)."""

    def __init__(self, predictor, config, video_dir, fps, batch_size, parts):
        self.predictor, self.config, self.video_dir = predictor, config, video_dir
        self.fps, self.batch_size, self.parts = fps, batch_size, parts

    def setup(self):
        self.predictor = self.predictor()

    def decode(self, element):
        video_id, times = element
        return decode_times(self.config, storage.join(self.video_dir, video_id), times, self.fps)

    def predict(self, element, decoded):
        """Predicts `element` from `decoded()` (decode's result) into its part, or writes why it
        could not be decoded."""
        video_id, times = element
        try:
            pictures, decoded_fps = decoded()
        except video.VideoError as e:
            storage.atomic_write(failure_path(self.parts, video_id), e.reason)
            return
        seconds, distances, errors = predict_pictures(self.predictor, self.config, pictures,
                                                      decoded_fps, times, self.batch_size)
        storage.write_csv(pd.DataFrame({"video_id": video_id, "time": seconds,
                                        "distance": distances, "error": errors}),
                          part_path(self.parts, video_id))

    def __call__(self, element):
        self.predict(element, lambda: self.decode(element))


def _read_part(path):
    return storage.read_csv(path, dtype={"video_id": str, "error": str}, keep_default_na=False,
                       na_values={"distance": [""]})


def predict_videos(predictor, config, video_dir, out_csv, times=None, fps=None, batch_size=16,
                   inputs=None, progress=True, beam_args=None):
    """Writes `out_csv` (video_id, time, distance, error): every second of every video in
    `video_dir`, or the (video_id, time) rows of the `times` table, in its order.

    A video that cannot be decoded gets a row per requested time (one row without a time when
    every second was asked for) with an empty distance and the error; the others finish.
    `inputs` (what produced the predictions) decides whether earlier partial results are reused.
    With `beam_args` (runner.pipeline_args) each video is an element of a Beam pipeline and
    `predictor` a picklable callable that loads the predictor in each worker.
    Returns {video_id: error} of the failed videos.
    """
    if times is None:
        wanted = {video_id: None for video_id in extract.list_videos(video_dir, folders=True)}
    else:
        wanted = {v: rows["time"].tolist() for v, rows in times.groupby("video_id", sort=False)}
    times_sha = None if times is None else hashlib.sha256(times.to_csv().encode()).hexdigest()
    parts = parts_dir(out_csv, dict(inputs or {}, video_dir=str(video_dir), times=times_sha,
                                    decode=model_folder.decode_options(config, fps)))
    log.info("%s -> %s: %d videos, %s", video_dir, out_csv, len(wanted),
             "every second" if times is None else f"{len(times)} requested times")
    part_of = {video_id: part_path(parts, video_id) for video_id in wanted}
    pending = [(v, wanted[v]) for v in wanted if not tf.io.gfile.exists(part_of[v])]
    log_resumed(len(wanted) - len(pending), len(wanted))
    work = _Seconds(predictor, config, video_dir, fps, batch_size, parts)
    if beam_args is not None:
        runner.run(work, pending, beam_args, parts, name="field")
    else:
        with contextlib.closing(ahead(pending, work.decode)) as decoded:
            for element, future in tqdm.tqdm(decoded, total=len(pending), unit="video",
                                              disable=not progress):
                work.predict(element, future.result)
    failures, tables = {}, []
    for video_id in wanted:
        if tf.io.gfile.exists(part_of[video_id]):
            tables.append(_read_part(part_of[video_id]))
            continue
        failures[video_id] = read_failure(parts, video_id)
        tables.append(pd.DataFrame({"video_id": video_id, "time": wanted[video_id] or [None],
                                    "distance": np.nan, "error": failures[video_id]}))
    table = pd.concat(tables, ignore_index=True).astype({"time": "Int64"})
    if times is not None:
        table = times.astype({"time": "Int64"}).merge(table, on=KEYS, how="left")
    storage.write_csv(table[KEYS + ["distance", "error"]], out_csv)
    tf.io.gfile.rmtree(parts)
    return failures
