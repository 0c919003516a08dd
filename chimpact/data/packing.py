"""Packs extracted frames and a label table into sharded sequence TFRecords (create_tfrecords.py).

Everything is validated and planned before a byte is written: labels, frames, folds, the frame
window of every example and the shards. Each fold's examples are dealt into its shards in a
seeded random order, so that consecutive records mix videos like a shuffled table (neighbouring
seconds of a video share most of their frames); the test subset keeps (video, time) order.
Shards are written through a temporary name, the manifest last, so an interrupted run is
completed by running it again with the same inputs.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import threading

import numpy as np
import pandas as pd
import tensorflow as tf
import tqdm
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from chimpact import cli, runner, storage
from chimpact.data import boxes, frames, labels, records, tfrecord, window
from chimpact.errors import InputError, UsageError
from chimpact.settings import SHUFFLE_SEED

log = logging.getLogger(__name__)

PLAN = "plan.json"
GROUP_BY = ("video", "site")
_SIZE_SAMPLE = 64
_JPEG_QUALITY = 95
# Quantile bins of the distance that --stratify keeps in proportion in every fold.
DISTANCE_BINS = 10
_LISTED = 10


def read_videos(frames_dir):
    """{video_id: (n_frames, fps)} of the videos whose frames are complete in `frames_dir`."""
    path = frames.manifest_path(frames_dir)
    if not storage.exists(path):
        raise InputError(f"--frames_dir={frames_dir}: no {frames.MANIFEST}: run create_frames.py "
                         "first")
    manifest = frames.read_manifest(frames_dir)
    storage.check_columns(manifest, ("video_id", "n_frames", "fps", "status"), path)
    folders = {name.rstrip("/") for name in tf.io.gfile.listdir(frames_dir)}
    ok = manifest[(manifest.status == "ok") & manifest.video_id.isin(folders)]
    ok = ok[pd.to_numeric(ok.n_frames, errors="coerce") > 0]
    return {
        row.video_id: (int(row.n_frames), float(row.fps))
        for row in ok.drop_duplicates("video_id", keep="last").itertuples()
    }


def read_sites(metadata_csv, video_ids):
    """{video_id: site_id} from the challenge metadata table, for every video in `video_ids`."""
    if not storage.exists(metadata_csv):
        raise InputError(f"--metadata_csv={metadata_csv}: file not found")
    table = storage.read_csv(metadata_csv, dtype=str, keep_default_na=False)
    storage.check_columns(table, ("video_id", "site_id"), f"--metadata_csv={metadata_csv}")
    sites = table.drop_duplicates(["video_id", "site_id"])
    twice = sites.video_id.duplicated()
    if twice.any():
        raise InputError(
            f"{metadata_csv}: video {sites.video_id[twice].iloc[0]} has more than one site_id"
        )
    site_of = dict(zip(sites.video_id, sites.site_id))
    unknown = sorted(set(video_ids) - set(site_of))
    if unknown:
        raise InputError(f"{metadata_csv}: no site_id for videos {_listing(unknown)}")
    return site_of


def _listing(names):
    more = f" (+{len(names) - _LISTED} more)" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def given_folds(table, n_folds, labels_csv):
    """The folds of a label table's own `fold` column, checked: each of 0..n_folds-1 used, none
    other, and no video in two folds."""
    unknown = table[~table.fold.between(0, n_folds - 1)]
    if len(unknown):
        row = unknown.iloc[0]
        raise InputError(f"{labels_csv} line {row.line}: fold {row.fold} is not one of the "
                         f"--n_folds={n_folds} folds 0..{n_folds - 1}")
    folds_of = table.groupby("video_id").fold.nunique()
    if (folds_of > 1).any():
        raise InputError(f"{labels_csv}: video {folds_of[folds_of > 1].index[0]} is in more "
                         "than one fold")
    if table.fold.nunique() < n_folds:
        raise InputError(f"{labels_csv}: folds {sorted(set(range(n_folds)) - set(table.fold))} "
                         f"have no row (--n_folds={n_folds})")
    return table.fold.to_numpy()


def distance_bins(distances, bins=DISTANCE_BINS):
    """Each distance's quantile bin (at most `bins`, fewer when values repeat): the classes that
    stratified folds keep in proportion."""
    return pd.qcut(np.asarray(distances, dtype=float), bins, labels=False, duplicates="drop")


def assign_folds(groups, n_folds, distances=None, seed=SHUFFLE_SEED):
    """The fold of each row given its group, no group in two folds: GroupKFold (deterministic),
    or with `distances` StratifiedGroupKFold over their quantile bins (shuffled by `seed`), so
    that each fold's distances look like the whole's (the 1st place's site folds)."""
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_folds > n_groups:
        raise InputError(f"--n_folds={n_folds}: must be between 2 and the {n_groups} groups")
    if distances is None:
        splits = GroupKFold(n_splits=n_folds).split(groups, groups=groups)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(groups, distance_bins(distances), groups=groups)
    folds = np.empty(len(groups), dtype=np.int64)
    for fold, (_, rows) in enumerate(splits):
        folds[rows] = fold
    return folds


def plan_examples(table, videos, frames_per_side, step):
    """Adds to each label row its frame window (chimpact.data.window), clamped-frame count and
    whether its own second lies outside the video."""
    windows, clamped, bits, outside = [], [], [], []
    for row in table.itertuples():
        n_frames, fps = videos[row.video_id]
        indices, past_ends = window.frame_window(row.time, fps, n_frames, frames_per_side, step)
        windows.append(indices)
        clamped.append(sum(past_ends))
        bits.append(window.outside_bits(past_ends))
        outside.append(not 0 <= frames.frame_index(row.time, fps) < n_frames)
    return table.assign(window=windows, clamped=clamped, outside_bits=bits,
                        target_clamped=outside)


def read_frame(frames_dir, video_id, index):
    """The JPEG bytes of a frame; InputError naming it when it is missing."""
    path = frames.frame_path(frames_dir, video_id, index)
    try:
        return storage.read_bytes(path)
    except (FileNotFoundError, tf.errors.NotFoundError):
        raise InputError(f"{path}: frame missing though the frames manifest lists it") from None


def sample_frame_size(frames_dir, examples):
    """Most common (height, width) and mean size in bytes, from a spread sample of frames."""
    picks = examples.iloc[np.linspace(0, len(examples) - 1, min(_SIZE_SAMPLE, len(examples)),
                                      dtype=int)]
    shapes, sizes = [], []
    for row in picks.itertuples():
        data = read_frame(frames_dir, row.video_id, row.window[len(row.window) // 2])
        shapes.append(frames.jpeg_shape(data))
        sizes.append(len(data))
    return collections.Counter(shapes).most_common(1)[0][0], float(np.mean(sizes)), shapes


def shard_counts(examples, stored_frames, frame_bytes, shard_mb, shards):
    """Number of shards for a fold (or the test subset) of `examples` rows."""
    if shards:
        wanted = shards
    else:
        wanted = math.ceil(examples * stored_frames * frame_bytes / (shard_mb * 2**20))
    return max(1, min(wanted, examples))


def plan_shards(examples, subset, count_for, seed=SHUFFLE_SEED):
    """[(file name, fold or None, rows)]: each training fold's rows in a random order drawn from
    (`seed`, fold), whatever the table's order, split evenly into its shards; the test rows
    sorted by video and time."""
    examples = examples.sort_values(["video_id", "time"], kind="stable")
    parts = [(None, examples)] if subset == "test" else [
        (int(f), rows.iloc[np.random.default_rng([seed, int(f)]).permutation(len(rows))])
        for f, rows in examples.groupby("fold", sort=True)]
    plan = []
    for fold, rows in parts:
        count = count_for(len(rows))
        for i, chunk in enumerate(np.array_split(np.arange(len(rows)), count)):
            plan.append((records.shard_name(subset, fold, i, count), fold, rows.iloc[chunk]))
    return plan


class _NeedsResize(Exception):
    """A frame of another size than the records', in a worker process (where TensorFlow, which
    resizes, must not run)."""


class _FrameReader:
    """Reads a video's frames as JPEG bytes at `image_size`, re-encoding only frames of another
    size (with TensorFlow; `resize` False: _NeedsResize instead); caches the frames of the
    current video because neighbouring examples share them."""

    def __init__(self, frames_dir, image_size, resize=True):
        self.frames_dir = frames_dir
        self.image_size = tuple(image_size)
        self.may_resize = resize
        self.video_id = None

    def read(self, video_id, index):
        if video_id != self.video_id:
            self.video_id, self.cache, self.resize = video_id, {}, None
        if index not in self.cache:
            data = read_frame(self.frames_dir, video_id, index)
            if self.resize is None:
                self.resize = frames.jpeg_shape(data) != self.image_size
                if self.resize and not self.may_resize:
                    raise _NeedsResize(video_id)
            self.cache[index] = self._resized(data) if self.resize else data
        return self.cache[index]

    def _resized(self, data):
        image = tf.image.resize(records.decode_frame(data), self.image_size,
                                antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.io.encode_jpeg(image, quality=_JPEG_QUALITY).numpy()


def serialize_rows(rows, reader, on_example=lambda: None):
    """The serialized examples of `rows`, in their order, their frames read by `reader` (a
    _FrameReader) video by video: neighbouring seconds share frames, which it caches."""
    with_box = "present" in rows
    # Plain values, not pandas rows: a row's Series costs more than its frames' bytes.
    examples = list(zip(*(rows[name].tolist() for name in (
        "video_id", "time", "distance", "fold", "window",
        *((*boxes.VECTOR, "probability") if with_box else ())))))
    serialized = [None] * len(examples)
    for i in sorted(range(len(examples)), key=lambda i: examples[i][:2]):
        video_id, time, distance, fold, indices, *box = examples[i]
        jpegs = [reader.read(video_id, index) for index in indices]
        serialized[i] = records.serialize_example(
            jpegs, distance, video_id, time, fold, box[:-1] if with_box else None,
            box[-1] if with_box else 0.0)
        on_example()
    return serialized


def write_shard(path, rows, frames_dir, image_size, on_example=lambda: None, resize=True):
    """Writes the examples of `rows`, in their order, to `path` through a temporary name; a
    shard is held in memory until written: about --shard_mb. The records are framed without
    TensorFlow (chimpact.data.tfrecord); with `resize` False, and local paths, nothing runs
    TensorFlow: a frame of another size raises _NeedsResize."""
    serialized = serialize_rows(rows, _FrameReader(frames_dir, image_size, resize), on_example)
    tmp = storage.temp_name(path)
    with storage.open_file(tmp, "wb") as f:
        for example in serialized:
            for piece in tfrecord.pieces(example):
                f.write(piece)
    storage.rename(tmp, path)


def _is_records_file(name):
    """True for a name that create_tfrecords.py writes in its --out_dir."""
    return records.is_shard_name(name) or name in (records.MANIFEST, PLAN)


def _check_same_records(out_dir, fingerprint):
    """UsageError when `out_dir` holds records, finished (manifest) or not (plan), of other
    inputs or settings than the run of `fingerprint`: they would be replaced without a word."""
    for name in (records.MANIFEST, PLAN):
        path = storage.join(out_dir, name)
        if not storage.exists(path):
            continue
        found = json.loads(storage.read_text(path))
        if found.get("fingerprint") != fingerprint:
            made = f" (from {found['labels_csv']})" if found.get("labels_csv") else ""
            raise UsageError(f"--out_dir={out_dir}: holds {'' if name == PLAN else 'finished '}"
                             f"records of other inputs or settings{made}: use another "
                             "--out_dir, or delete this one to rebuild it")


def _prepare_out_dir(out_dir, fingerprint):
    """Keeps the shards of an interrupted run with the same plan; removes any other shards."""
    tf.io.gfile.makedirs(out_dir)
    plan_path = storage.join(out_dir, PLAN)
    same = (tf.io.gfile.exists(plan_path)
            and json.loads(storage.read_text(plan_path)).get("fingerprint") == fingerprint)
    for name in tf.io.gfile.listdir(out_dir):
        stale = not same and (records.is_shard_name(name) or name == records.MANIFEST)
        if stale or (storage.is_temporary(name) and records.is_shard_name(name.split(".tmp-")[0])):
            tf.io.gfile.remove(storage.join(out_dir, name))
    if not same:
        storage.atomic_write(plan_path, json.dumps({"fingerprint": fingerprint}) + "\n")


def create_records(frames_dir, labels_csv, out_dir, subset="train", frames_per_side=5, step=1,
                   n_folds=5, group_by="video", metadata_csv=None, image_size=None, shard_mb=150,
                   shards=None, workers=1, allow_missing=False, seed=SHUFFLE_SEED, boxes_csv=None,
                   stratify=False, progress=True, beam_args=None):
    """Writes the records of `labels_csv` to `out_dir` and returns their records.Manifest;
    `workers` shards at a time, or with `beam_args` (runner.pipeline_args) one shard per element
    of a Beam pipeline: the same shards, bytes and manifest.

    With `boxes_csv` (the challenge's train/test_metadata.csv layout) every example also holds
    its animal's box, or is marked as having none.

    Training rows get GroupKFold folds by video or site (StratifiedGroupKFold on distance bins
    with `stratify`), or those of the table's own `fold` column when it has one. A finished output with the same inputs is left as is; an
    interrupted one is completed.
    """
    _check_settings(subset, group_by, metadata_csv, frames_per_side, step, image_size, shard_mb,
                    shards, workers)
    storage.check_own_folder(out_dir, "out_dir", _is_records_file, "create_tfrecords.py")
    if not tf.io.gfile.isdir(frames_dir):
        raise InputError(f"--frames_dir={frames_dir}: folder not found")
    table, labels_sha256 = labels.read_labels(labels_csv, subset)
    boxes_sha256 = ""
    if boxes_csv:
        box_table, boxes_sha256 = boxes.read_boxes(boxes_csv, table, labels_csv)
        table = pd.concat([table, box_table[boxes.VECTOR + ["probability"]]], axis=1)
    videos = read_videos(frames_dir)
    missing = sorted(set(table.video_id) - set(videos))
    if missing and not allow_missing:
        raise InputError(
            f"{frames_dir}: no frames for {len(missing)} video(s) of {labels_csv}: "
            f"{_listing(missing)}; --allow_missing skips their rows"
        )
    skipped = int(table.video_id.isin(missing).sum())
    table = table[~table.video_id.isin(missing)]
    if table.empty:
        raise InputError(f"{labels_csv}: no row has frames in {frames_dir}")

    train = subset == "train"
    if train and "fold" in table.columns:
        table = table.assign(fold=given_folds(table, n_folds, labels_csv))
    elif train:
        groups = table.video_id
        if group_by == "site":
            groups = table.video_id.map(read_sites(metadata_csv, table.video_id))
        table = table.assign(fold=assign_folds(
            groups, n_folds, table.distance if stratify else None, seed))
    else:
        table = table.assign(fold=-1)
    examples = plan_examples(table, videos, frames_per_side, step)
    stored_frames = window.stored_frames(frames_per_side)
    common_size, frame_bytes, shapes = sample_frame_size(frames_dir, examples)
    warning = image_size and cli.flipped_size("image_size", image_size, common_size)
    if warning:
        log.warning(warning)
    image_size = tuple(image_size or common_size)
    scale = np.mean([image_size[0] * image_size[1] / (h * w) for h, w in shapes])
    plan = plan_shards(examples, subset, lambda n: shard_counts(
        n, stored_frames, frame_bytes * scale, shard_mb, shards), seed)

    manifest = records.Manifest(
        subset=subset, frames_per_side=frames_per_side, step=step,
        image_size=tuple(int(v) for v in image_size),
        shards=tuple(records.Shard(name, fold, len(rows)) for name, fold, rows in plan),
        n_folds=n_folds if train else None, group_by=group_by if train else None,
        stratified=bool(stratify and train and "fold" not in table.columns),
        shuffle_seed=seed if train else None,
        distance_counts=_distance_counts(examples) if train else {},
        labels_csv=str(labels_csv), labels_sha256=labels_sha256,
        boxes_csv=str(boxes_csv or ""), boxes_sha256=boxes_sha256, frames_dir=str(frames_dir),
        frames=frames.decode_settings(frames_dir, table.video_id),
        clamped_frames=int(examples.clamped.sum()),
        clamped_examples=int((examples.clamped > 0).sum()),
        clamped_targets=int(examples.target_clamped.sum()),
        outside_frames=tuple((row.video_id, int(row.time), int(row.outside_bits))
                             for row in examples[examples.clamped > 0].itertuples()),
        missing_videos=tuple(missing), skipped_rows=skipped)
    frames_sha256 = hashlib.sha256(storage.read_bytes(frames.manifest_path(frames_dir))).hexdigest()
    fingerprint = hashlib.sha256((manifest.to_json() + frames_sha256).encode()).hexdigest()
    return _write(out_dir, plan, dataclasses.replace(manifest, fingerprint=fingerprint),
                  frames_dir, workers, progress, beam_args)


def _distance_counts(examples):
    """{fold: {distance: examples}}: the label histogram of each fold (what the training folds'
    median, and a fold's likeness to the whole, are computed from)."""
    return {int(fold): {f"{d:g}": int(n)
                        for d, n in rows.distance.value_counts().sort_index().items()}
            for fold, rows in examples.groupby("fold", sort=True)}


def _check_settings(subset, group_by, metadata_csv, frames_per_side, step, image_size, shard_mb,
                    shards, workers):
    if subset not in records.SUBSETS:
        raise InputError(f"--subset={subset}: must be one of {', '.join(records.SUBSETS)}")
    if group_by not in GROUP_BY:
        raise InputError(f"--group_by={group_by}: must be one of {', '.join(GROUP_BY)}")
    if subset == "train" and group_by == "site" and not metadata_csv:
        raise InputError("--group_by=site needs --metadata_csv (the challenge's "
                         "train_metadata.csv)")
    if frames_per_side < 0 or step < 1:
        raise InputError(f"--frames_per_side={frames_per_side} --step={step}: need >= 0 and >= 1")
    if shard_mb <= 0 or (shards is not None and shards < 1) or workers < 1:
        raise InputError(f"--shard_mb={shard_mb} --shards={shards} --workers={workers}: "
                         "must be positive")
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise InputError(f"--image_size={image_size}: must be HEIGHT,WIDTH")


def _write(out_dir, plan, manifest, frames_dir, workers, progress, beam_args):
    """Writes the shards of `plan` not yet written, then the manifest."""
    if storage.exists(records.manifest_path(out_dir)):
        done = json.loads(storage.read_text(records.manifest_path(out_dir)))
        if done.get("fingerprint") == manifest.fingerprint:
            log.info("%s is already complete", out_dir)
            return records.read_manifest(out_dir)
    _check_same_records(out_dir, manifest.fingerprint)
    _prepare_out_dir(out_dir, manifest.fingerprint)
    pending = [(storage.join(out_dir, name), rows) for name, _, rows in plan
               if not tf.io.gfile.exists(storage.join(out_dir, name))]
    log.info("%s -> %s: %d %s examples in %d shards, %d to write", frames_dir, out_dir,
             manifest.examples, manifest.subset, len(plan), len(pending))
    if beam_args is None:
        _write_shards(pending, frames_dir, manifest.image_size, workers, progress)
    else:
        runner.run(functools.partial(_write_element, frames_dir, manifest.image_size), pending,
                   beam_args, out_dir, name="records")
    records.write_manifest(out_dir, manifest)
    tf.io.gfile.remove(storage.join(out_dir, PLAN))
    return manifest


def _write_element(frames_dir, image_size, element):
    """One shard of a Beam pipeline (runner.run): (its path, its rows)."""
    write_shard(*element, frames_dir, image_size)


def _take_shards(shards, taken, done, frames_dir, image_size, resize, on_shard=lambda: None):
    """Writes the next shard of `shards` that no process has taken (`taken`, a shared counter)
    until none is left, adding each one's examples to `done`; returns the indices of the shards
    it left (resize False: their frames are of another size)."""
    left = []
    while True:
        with taken.get_lock():
            index = taken.value
            taken.value += 1
        if index >= len(shards):
            return left
        path, rows = shards[index]
        try:
            write_shard(path, rows, frames_dir, image_size, resize=resize)
        except _NeedsResize:
            left.append(index)
            continue
        with done.get_lock():
            done.value += len(rows)
        on_shard()


def _take_shards_in_worker(job, results):
    """A forked worker's work: _take_shards without TensorFlow (it leaves resizing), the shards
    it left, or the error that stopped it (an InputError naming a missing frame, say), sent
    back on `results`."""
    try:
        outcome = _take_shards(*job, resize=False)
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group: the parent says it
        return
    except Exception as e:
        outcome = e
    results.send(outcome)


def _write_shards_in_processes(pending, frames_dir, image_size, workers, progress):
    """Writes local shards on this process and `workers - 1` forked ones, each taking the
    largest shard left until none is: one fork fewer than a pool of `workers` (a fork of a
    process holding TensorFlow costs about 12 ms), and this process does not wait idle. Only
    this process runs TensorFlow (the others read frames with open() and frame the records with
    chimpact.data.tfrecord): it also writes the shards they leave for resizing. A worker that
    dies (killed, out of memory) is an InputError, not a wait without end; the shards written
    stay for the re-run."""
    shards = sorted(pending, key=lambda shard: -len(shard[1]))
    context = multiprocessing.get_context("fork")
    taken, done = context.Value("q", 0), context.Value("q", 0)
    job = (shards, taken, done, frames_dir, image_size)
    children, readers = [], []
    with tqdm.tqdm(total=sum(len(rows) for _, rows in shards), unit="example",
                   disable=not progress) as bar:
        def advance():
            bar.update(done.value - bar.n)

        try:
            for _ in range(workers - 1):
                reader, writer = context.Pipe(duplex=False)
                children.append(context.Process(target=_take_shards_in_worker,
                                                args=(job, writer), daemon=True))
                children[-1].start()
                writer.close()  # the worker's end: its death then reads as EOFError here
                readers.append(reader)
            left = _take_shards(*job, resize=True, on_shard=advance)
            for child, reader in zip(children, readers):
                while not reader.poll(0.2):
                    advance()
                try:
                    outcome = reader.recv()
                except EOFError:
                    child.join()
                    how = (f"killed by signal {-child.exitcode}" if child.exitcode < 0 else
                           f"exit code {child.exitcode}")
                    raise InputError(
                        f"{os.path.dirname(shards[0][0])}: a worker process writing shards ended "
                        f"({how}) before it was done: run again to resume") from None
                if isinstance(outcome, Exception):
                    raise outcome
                left += outcome
        finally:
            for child in children:
                child.kill()
                child.join()
        for index in left:
            write_shard(*shards[index], frames_dir, image_size)
            done.value += len(shards[index][1])
        advance()


def _write_shards(pending, frames_dir, image_size, workers, progress):
    """Writes shards: on `workers` processes when frames and shards are local files, else on
    `workers` threads (TF file and image ops release the GIL, but reading many small files in
    Python holds it: two threads gained 13% on 2 cores, two processes nearly 2x)."""
    if workers > 1 and not any(storage.is_remote(path) for path in
                               (frames_dir, *(shard for shard, _ in pending))):
        _write_shards_in_processes(pending, frames_dir, image_size, workers, progress)
        return
    total = sum(len(rows) for _, rows in pending)
    lock = threading.Lock()
    with tqdm.tqdm(total=total, unit="example", disable=not progress) as bar:
        def advance():
            with lock:
                bar.update()

        def write(item):
            path, rows = item
            write_shard(path, rows, frames_dir, image_size, on_example=advance)

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(write, pending):
                pass
