"""create_frames.py's batch job: every video of a folder to JPEG frames, in parallel, resumable.

Each worker thread drives one ffmpeg process at a time (the decoding runs there, in parallel),
encodes the frames it receives as JPEG with the GIL released, and writes them through
tf.io.gfile, so `out_dir` may be local, gs:// or ram:// (which only exists in this process).
A video's frames go to a temporary folder renamed when complete; object stores have no folder
rename, so there they are written in place, after the video's row is dropped from the manifest:
only a complete folder has an `ok` row. The manifest is rewritten atomically every few seconds
and at the end; a re-run redoes exactly the videos without a folder and an `ok` row whose
`settings` (everything that decides the pixels) are those asked.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import time

import pandas as pd
import tensorflow as tf
import tqdm

from chimpact import cli, runner, storage
from chimpact.data import frames, labels, video
from chimpact.errors import InputError, UsageError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (
    ".mp4", ".avi", ".asf", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg", ".mts", ".m2ts",
    ".ts", ".3gp", ".webm", ".flv",
)
MANIFEST_EVERY_S = 10.0
# Where a Beam run's elements leave their manifest rows until the driver writes the manifest.
ELEMENT_ROWS = ".element-rows"


@dataclasses.dataclass
class Summary:
    """What a run did: `ok` counts videos whose frames are complete, including `already_done`;
    `failures` holds {video_id: the one-line reason} of those that failed."""

    ok: int = 0
    already_done: int = 0
    frames: int = 0
    failures: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self):
        return len(self.failures)

    @property
    def line(self):
        done = f" ({self.already_done} already done)" if self.already_done else ""
        return f"{self.ok} ok, {self.failed} failed{done}"


def video_ids(video_dir, folders=False):
    """The ids (forward-slash paths, sorted) of the video files (by extension) in `video_dir`,
    with `folders` in its subfolders too (a survey's folder per camera); hidden files and
    folders are left out."""
    found = []
    for folder, subfolders, names in tf.io.gfile.walk(video_dir):
        subfolders[:] = [name for name in subfolders if folders and not name.startswith(".")]
        relative = posixpath.relpath(str(folder).replace("\\", "/"),
                                     str(video_dir).replace("\\", "/"))
        found += [name if relative == "." else f"{relative}/{name}" for name in names
                  if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")]
    return sorted(found)


def list_videos(video_dir, folders=False):
    """{video_id: path} of video_ids(video_dir, folders); InputError when the folder is missing
    or holds none."""
    if not tf.io.gfile.isdir(video_dir):
        raise InputError(f"--video_dir={video_dir} does not exist or is not a folder")
    videos = {video_id: storage.join(video_dir, video_id)
              for video_id in video_ids(video_dir, folders)}
    if not videos:
        raise InputError(f"--video_dir={video_dir} holds no video files "
                         f"({', '.join(VIDEO_EXTENSIONS)}){' in its folders either' * folders}")
    return videos


def read_table(path, columns, flag):
    """A CSV given by `--flag` with at least `columns`; one-line InputError otherwise."""
    return storage.read_table(path, columns, f"--{flag}={path}", "does not exist")


def labelled_frames(labels_csv, fps):
    """{video_id: [frame indices at `fps`]} of the labelled times in the label table
    `labels_csv` (read by chimpact.data.labels)."""
    table = labels.read_labels(labels_csv, "test")[0]
    return {video_id: sorted({frames.frame_index(t, fps) for t in group.time})
            for video_id, group in table.groupby("video_id")}


def labelled_tables(labels_csvs, fps):
    """({video_id: [frame indices]}, {video_id: table file name}) of the labelled times in the
    tables `labels_csvs` (e.g. train_labels.csv for the training videos and
    submission_format.csv for the test videos, as the reference decided each)."""
    labelled, table_of = {}, {}
    for path in labels_csvs:
        name = os.path.basename(str(path))
        for video_id, indices in labelled_frames(path, fps).items():
            labelled[video_id] = sorted(set(labelled.get(video_id, [])) | set(indices))
            table_of[video_id] = "+".join(filter(None, [table_of.get(video_id), name]))
    return labelled, table_of

def extract_frames(video_dir, out_dir, options, quality=95, workers=0, videos_csv=None,
                   labels_csv=None, overwrite=False, progress=True, beam_args=None):
    """Writes the frames of every video in `video_dir` to `out_dir` (see chimpact.data.frames).

    `options` is a video.DecodeOptions; `labels_csv` one label table or several, whose times
    decide each listed video's gamma; `workers` videos are decoded at a time (0: one per core),
    or, with `beam_args` (runner.pipeline_args), one video per element of a Beam pipeline.
    Returns a Summary; failed videos have manifest rows with status "error".
    """
    videos = list_videos(video_dir)
    missing = []
    if videos_csv:
        wanted = set(read_table(videos_csv, ["video_id"], "videos_csv")["video_id"])
        missing = sorted(wanted - set(videos))
        videos = {v: p for v, p in videos.items() if v in wanted}
    if isinstance(labels_csv, str):
        labels_csv = [labels_csv]
    labelled, table_of = labelled_tables(labels_csv or [], options.fps)
    workers = workers or os.cpu_count()
    if not options.threads:
        options = dataclasses.replace(options, threads=max(1, os.cpu_count() // workers))

    manifest = {row["video_id"]: row for row in frames.read_manifest(out_dir).to_dict("records")}
    storage.check_own_folder(out_dir, "out_dir", lambda name: _is_frames_entry(
        out_dir, name, {*manifest, *videos}), "create_frames.py")
    if not overwrite:
        _check_same_settings(out_dir, manifest.values(), options, quality)
    tf.io.gfile.makedirs(out_dir)
    _remove_temporaries(out_dir)
    _gather_element_rows(out_dir, manifest)  # those a killed Beam run left
    present = {name.rstrip("/") for name in tf.io.gfile.listdir(out_dir)}
    settings = {v: frames.settings_text(frames.settings_dict(options, quality, labelled.get(v)))
                for v in [*videos, *missing]}
    summary = Summary()
    todo = []
    for video_id in videos:
        done = _is_done(manifest.get(video_id), settings[video_id]) and video_id in present
        if done and not overwrite:
            summary.ok += 1
            summary.already_done += 1
        else:
            todo.append(video_id)
    for video_id in missing:
        manifest[video_id] = _error_row(video_id, options, settings[video_id],
                                        f"not in --video_dir={video_dir}",
                                        table_of.get(video_id, ""))
        _count(summary, manifest[video_id])
    if storage.is_remote(out_dir):
        # Frames are overwritten in place there: no `ok` row may outlive a half-written folder.
        dropped = [v for v in todo if manifest.pop(v, None)]
        if dropped:
            _write_manifest(out_dir, manifest)

    if options.size and todo:
        _warn_if_flipped(options.size[::-1], videos[todo[0]])
    log.info("%s -> %s: %d videos to decode at %g fps, %d already done, %d missing", video_dir,
             out_dir, len(todo), options.fps, summary.already_done, len(missing))
    if beam_args is not None:
        return _extract_on_beam(out_dir, options, quality, beam_args, manifest, summary, [
            (videos[v], v, labelled.get(v), v in present, settings[v], table_of.get(v, ""))
            for v in todo])
    started = last_write = time.monotonic()
    bar = tqdm.tqdm(total=len(todo), unit="video", disable=not progress, dynamic_ncols=True)
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        jobs = [pool.submit(_extract_video, videos[v], v, out_dir, options, quality,
                            labelled.get(v), v in present, settings[v], table_of.get(v, ""))
                for v in todo]
        for job in concurrent.futures.as_completed(jobs):
            row = job.result()
            manifest[row["video_id"]] = row
            _count(summary, row)
            bar.update()
            bar.set_postfix_str(f"{summary.frames / (time.monotonic() - started):.0f} "
                                f"frames/s, {summary.failed} failed")
            if time.monotonic() - last_write > MANIFEST_EVERY_S:
                _write_manifest(out_dir, manifest)
                last_write = time.monotonic()
    finally:
        # On an interrupt, videos not started are dropped; those running finish first.
        pool.shutdown(cancel_futures=True)
        bar.close()
        _write_manifest(out_dir, manifest)
    return summary


def _warn_if_flipped(size, path):
    """Warns when --size (height, width) turns the orientation of the video at `path`."""
    source = video.source_size(path)
    warning = source and cli.flipped_size("size", size, source)
    if warning:
        log.warning(warning)


def _is_frames_entry(out_dir, name, video_ids):
    """True for what create_frames.py writes in `out_dir`: its manifest, a Beam run's rows, and
    a folder (not a file: --out_dir is not the videos' folder) per video of `video_ids`."""
    if name in (frames.MANIFEST, ELEMENT_ROWS):
        return True
    return name in video_ids and (storage.is_remote(out_dir)
                                  or os.path.isdir(storage.join(out_dir, name)))


def _check_same_settings(out_dir, rows, options, quality):
    """UsageError when a video's frames in `out_dir` (manifest `rows`) were made with other
    settings (fps, size, gamma, quality) than `options` and `quality`: redone without a word,
    they would leave a folder whose videos differ in what they were made with. Whether labels
    decided a video's gamma is the video's own and is redone as before."""
    wanted = frames.settings_dict(options, quality, False)
    del wanted[frames.GAMMA_RULE]
    for row in rows:
        if row["status"] != "ok" or not row.get("settings"):
            continue
        made = frames.parse_settings(row["settings"])
        differ = [name for name, value in wanted.items() if made.get(name) != value]
        if differ:
            raise UsageError(
                f"--out_dir={out_dir}: holds frames made with "
                f"{' '.join(f'{name}={made.get(name)}' for name in differ)}, not "
                f"{' '.join(f'{name}={wanted[name]}' for name in differ)}: use another "
                "--out_dir, or --overwrite to redo them")


def _extract_on_beam(out_dir, options, quality, beam_args, manifest, summary, elements):
    """The videos of `elements` (_extract_video's arguments) decoded on a Beam pipeline, then
    their rows gathered into the manifest, even after an interrupt."""
    try:
        runner.run(_ElementWork(out_dir, options, quality), elements, beam_args,
                   storage.join(out_dir, ELEMENT_ROWS), name="frames")
    finally:
        for row in _gather_element_rows(out_dir, manifest):
            _count(summary, row)
        _write_manifest(out_dir, manifest)
    return summary


def _count(summary, row):
    """Adds one decoded video's manifest row to `summary`."""
    if row["status"] == "ok":
        summary.ok += 1
        summary.frames += row["n_frames"]
    else:
        summary.failures[row["video_id"]] = row["error"]


class _ElementWork:
    """One video of a Beam pipeline (runner.run): its frames published as the local path
    publishes them, then its manifest row in OUT_DIR/ELEMENT_ROWS, which the driver gathers."""

    def __init__(self, out_dir, options, quality):
        self.out_dir, self.options, self.quality = out_dir, options, quality

    def __call__(self, element):
        path, video_id, labelled, stale, settings, labels_table = element
        row = _extract_video(path, video_id, self.out_dir, self.options, self.quality,
                             labelled, stale, settings, labels_table)
        storage.atomic_write(_row_path(self.out_dir, video_id), json.dumps(row))


def _row_path(out_dir, video_id):
    return storage.join(out_dir, ELEMENT_ROWS,
                        hashlib.sha1(video_id.encode()).hexdigest()[:16] + ".json")


def _gather_element_rows(out_dir, manifest):
    """Moves the rows Beam's elements wrote into OUT_DIR/ELEMENT_ROWS (their frames complete)
    into `manifest` and the manifest file; returns them."""
    folder = storage.join(out_dir, ELEMENT_ROWS)
    if not tf.io.gfile.isdir(folder):
        return []
    rows = [json.loads(storage.read_text(storage.join(folder, name)))
            for name in tf.io.gfile.listdir(folder) if name.endswith(".json")]
    manifest.update((row["video_id"], row) for row in rows)
    _write_manifest(out_dir, manifest)
    storage.remove_tree(folder)
    return rows


def _is_done(row, settings):
    """Whether a manifest row says the video is complete with the settings asked."""
    return bool(row) and row["status"] == "ok" and row.get("settings") == settings


def _extract_video(path, video_id, out_dir, options, quality, labelled, stale, settings,
                   labels_table):
    """Decodes one video and publishes its frames; returns its manifest row."""
    try:
        jpegs, info = video.decode(path, options, labelled,
                                   convert=lambda frame: frames.encode_jpeg(frame, quality))
        _publish(out_dir, video_id, jpegs, stale)
    except video.VideoError as e:
        return _error_row(video_id, options, settings, e.reason, labels_table)
    except (OSError, tf.errors.OpError) as e:  # Pillow's encoder errors are OSErrors too
        reason = f"cannot encode or write frames: {type(e).__name__}: {video.one_line(e)}"
        return _error_row(video_id, options, settings, reason, labels_table)
    return dict(
        video_id=video_id, n_frames=info["n_frames"], width=info["width"],
        height=info["height"], fps=info["fps"], duration_s=info["duration_s"],
        gamma_corrected=info["gamma_corrected"], status="ok", error="", settings=settings,
        labels_csv=labels_table,
    )


def _publish(out_dir, video_id, jpegs, stale):
    """Writes the frames of `video_id`, replacing a stale folder from an earlier run."""
    final = frames.video_dir(out_dir, video_id)
    in_place = storage.is_remote(out_dir)
    if stale and in_place:
        tf.io.gfile.rmtree(final)
    folder = final if in_place else storage.temp_name(final)
    tf.io.gfile.makedirs(folder)
    for index, data in enumerate(jpegs):
        with tf.io.gfile.GFile(storage.join(folder, frames.frame_name(index)), "wb") as f:
            f.write(data)
    if not in_place:
        if stale:
            tf.io.gfile.rmtree(final)
        os.rename(folder, final)


def _error_row(video_id, options, settings, reason, labels_table):
    return dict(video_id=video_id, n_frames=0, width=0, height=0, fps=float(options.fps),
                duration_s=0.0, gamma_corrected=False, status="error", error=reason,
                settings=settings, labels_csv=labels_table)


def _remove_temporaries(out_dir):
    """Removes half-written folders and files left by a killed run."""
    for name in tf.io.gfile.listdir(out_dir):
        if storage.is_temporary(name):
            path = storage.join(out_dir, name.rstrip("/"))
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)


def _write_manifest(out_dir, manifest):
    table = pd.DataFrame(sorted(manifest.values(), key=lambda row: row["video_id"]),
                         columns=frames.MANIFEST_COLUMNS)
    storage.write_csv(table, frames.manifest_path(out_dir))
