"""Which camera deployment each survey video belongs to, and when each deployment was active.

Without a videos table, a video's deployment is its folder under the video folder (the folder's
own name for videos at its top). `--videos_csv` (video_id, deployment_id, timestamp) names them
instead; `--deployments_csv` holds Camtrap DP 1.0's deployment fields (deploymentID, latitude,
longitude, deploymentStart, deploymentEnd; optionally cameraHeight, cameraTilt, locationName),
whose start and end give each deployment's active time, the effort of distance sampling.
"""

import posixpath

import pandas as pd

from chimpact import storage
from chimpact.errors import InputError
from chimpact.field import megadetector

DEPLOYMENT_COLUMNS = ["deploymentID", "latitude", "longitude", "deploymentStart",
                      "deploymentEnd"]
VIDEO_COLUMNS = ["video_id", "deployment_id", "timestamp"]
# Camtrap DP 1.0's ranges (deployments-table-schema.json) of the numeric fields read here.
RANGES = {"latitude": (-90, 90), "longitude": (-180, 180), "cameraHeight": (0, None),
          "cameraTilt": (-90, 90)}


def folder_deployment(video_id, video_dir):
    """The deployment of `video_id` (a path under `video_dir`): its folder, or the name of
    `video_dir` for a video at the top."""
    folder = posixpath.dirname(video_id)
    return folder or posixpath.basename(str(video_dir).rstrip("/")) or str(video_dir)


def _times(table, column, label):
    """`column` as UTC timestamps; ISO 8601 with a UTC offset, as Camtrap DP requires."""
    parsed = pd.to_datetime(table[column], format="ISO8601", errors="coerce", utc=True)
    text = table[column].astype(str)
    bad = parsed.isna() | ~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        raise InputError(f"{label}: row {row + 2}: {column} {table[column].iloc[row]!r} is not "
                         "an ISO 8601 time with its UTC offset (2021-03-01T08:00:00+01:00)")
    return parsed


def read_deployments(path):
    """The deployments table (Camtrap DP fields), indexed by deploymentID, start and end as UTC
    timestamps and `active_s` their difference; one-line InputError for what breaks the
    standard's rules (required fields, unique ids, ranges, times, end before start)."""
    label = f"--deployments_csv={path}"
    table = storage.read_table(path, DEPLOYMENT_COLUMNS, label)
    table = table.astype({"deploymentID": str})
    twice = table.deploymentID[table.deploymentID.duplicated()]
    if len(twice):
        raise InputError(f"{label}: deploymentID {twice.iloc[0]!r} appears twice")
    for column, (low, high) in RANGES.items():
        if column not in table:
            continue
        raw = table[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = (values.isna() & (raw.notna() | (column in DEPLOYMENT_COLUMNS))) | (values < low)
        if high is not None:
            bad |= values > high
        if bad.any():
            value = raw[bad].iloc[0]
            raise InputError(f"{label}: row {bad.to_numpy().nonzero()[0][0] + 2}: {column} "
                             f"{'empty' if pd.isna(value) else value} is not a number in "
                             f"{low}..{'' if high is None else high}")
    start = _times(table, "deploymentStart", label)
    end = _times(table, "deploymentEnd", label)
    if (end <= start).any():
        raise InputError(f"{label}: deployment {table.deploymentID[end <= start].iloc[0]!r} "
                         "ends before it starts")
    return table.assign(start=start, end=end, active_s=(end - start).dt.total_seconds()
                        ).set_index("deploymentID", drop=False)


def read_videos(path, deployments=None):
    """{video_id: (deployment_id, start timestamp)} of a videos table; with `deployments`,
    every deployment_id must be one of them."""
    label = f"--videos_csv={path}"
    table = storage.read_table(path, VIDEO_COLUMNS, label).astype(
        {"video_id": str, "deployment_id": str})
    table["video_id"] = table.video_id.map(megadetector.normalise)
    twice = table.video_id[table.video_id.duplicated()]
    if len(twice):
        raise InputError(f"{label}: video_id {twice.iloc[0]!r} appears twice")
    starts = _times(table, "timestamp", label)
    if deployments is not None:
        unknown = ~table.deployment_id.isin(deployments.index)
        if unknown.any():
            raise InputError(f"{label}: deployment_id {table.deployment_id[unknown].iloc[0]!r} is "
                             "not in --deployments_csv")
    return dict(zip(table.video_id, zip(table.deployment_id, starts)))
