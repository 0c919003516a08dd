"""Calibration per camera: detections at known distances filmed at each deployment (a person at
marked distances when the camera is set up, or a few detections measured by hand) give a
monotone correction of that deployment's distances, d -> exp(a) * d**b, fitted on logs and
shrunk toward no correction (a = 0, b = 1) when there are few points; the intervals are widened
by the calibration's own residuals. A deployment without points is left as it is.
"""

import json

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import boxes, video
from chimpact.errors import InputError
from chimpact.field import distances, megadetector, videos

COLUMNS = ["deployment_id", "video_id", "time", *boxes.COORDINATES, "distance"]
SHRINK_POINTS = 2  # the points at which the fit has half its own weight
MIN_SLOPE_POINTS = 3  # below this, a scale only (b = 1)
SLOPES = (0.25, 4.0)


def read_calibration(path):
    """The reference detections of `--calibration_csv`, checked: positive distances, boxes in
    0..1 with x1 < x2 and y1 < y2, times not negative."""
    label = f"--calibration_csv={path}"
    table = storage.read_table(path, COLUMNS, label).astype(
        {"deployment_id": str, "video_id": str})
    table["video_id"] = table.video_id.map(megadetector.normalise)
    numbers = table[["time", *boxes.COORDINATES, "distance"]].apply(pd.to_numeric,
                                                                     errors="coerce")
    bad = (numbers.isna().any(axis=1) | (numbers.distance <= 0) | (numbers.time < 0)
           | (numbers[boxes.COORDINATES] < 0).any(axis=1)
           | (numbers[boxes.COORDINATES] > 1).any(axis=1)
           | (numbers.x2 <= numbers.x1) | (numbers.y2 <= numbers.y1))
    if bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        raise InputError(f"{label}: row {row + 2}: needs time >= 0, a box x1 < x2, y1 < y2 in "
                         "0..1 and a distance > 0")
    return table.assign(**numbers)


def fit(predicted, true):
    """{points, intercept a, slope b, mae_before, mae_after, low, high (the 10th and 90th
    percentiles of the corrected residuals)} of one deployment's reference points."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    n = len(true)
    x, y = np.log(np.maximum(predicted, 1e-3)), np.log(true)
    slope = 1.0
    if n >= MIN_SLOPE_POINTS and np.var(x) > 1e-9:
        slope = float(np.clip(np.cov(x, y, bias=True)[0, 1] / np.var(x), *SLOPES))
    intercept = float(np.mean(y) - slope * np.mean(x))
    weight = n / (n + SHRINK_POINTS)
    intercept, slope = weight * intercept, 1.0 + weight * (slope - 1.0)
    residuals = true - correct(predicted, intercept, slope)
    return {"points": n, "intercept": intercept, "slope": slope,
            "mae_before": float(np.abs(true - predicted).mean()),
            "mae_after": float(np.abs(residuals).mean()),
            "low": float(np.quantile(residuals, 0.1)), "high": float(np.quantile(residuals, 0.9))}


def correct(distance, intercept, slope):
    """exp(intercept) * distance**slope (0 for distances at or below 0, NaN where there is
    none): increasing in distance."""
    distance = np.asarray(distance, float)
    corrected = np.exp(intercept) * np.maximum(np.nan_to_num(distance), 1e-9) ** slope
    return np.where(np.isnan(distance), np.nan, np.where(distance > 0, corrected, 0.0))


def apply(rows, fits):
    """The detection rows with each calibrated deployment's distances corrected and intervals
    widened by its residuals (low not below 0); other deployments as they were."""
    rows = rows.copy()
    for deployment_id, found in fits.items():
        mine = rows.deployment_id == deployment_id
        a, b = found["intercept"], found["slope"]
        rows.loc[mine, "distance"] = correct(rows.distance[mine], a, b)
        rows.loc[mine, "distance_low"] = np.maximum(
            correct(rows.distance_low[mine], a, b) + min(found["low"], 0.0), 0.0)
        rows.loc[mine, "distance_high"] = (correct(rows.distance_high[mine], a, b)
                                           + max(found["high"], 0.0))
    return rows


def write_report(path, fits, deployment_ids):
    """calibration.json: per deployment its fit, or that it had no reference points."""
    report = {d: fits.get(d, {"points": 0, "calibrated": False}) for d in deployment_ids}
    storage.atomic_write(path, json.dumps(report, indent=2))


def fit_references(predictor, config, video_dir, references, offsets, fps=None, batch_size=16):
    """{deployment_id: fit} from the reference detections, each predicted as the survey's
    detections are (its box in the sequence of its second); InputError naming a reference video
    that cannot be decoded."""
    predicted = pd.Series(np.nan, index=references.index)
    for video_id, rows in references.groupby("video_id", sort=False):
        path = storage.join(video_dir, video_id)
        try:
            pictures, info = videos.decode_frames(config, path, fps)
        except video.VideoError as e:
            raise InputError(f"--calibration_csv: {video_id}: {e.reason}") from None
        inside = rows[rows.time * info["fps"] < len(pictures)]
        if len(inside) < len(rows):
            raise InputError(f"--calibration_csv: {video_id}: a time past the video's end "
                             f"({len(pictures) / info['fps']:g} s)")
        predicted[rows.index] = distances.predict_boxes(predictor, config, pictures,
                                                        info["fps"], rows, offsets,
                                                        batch_size)[0]
    return {d: fit(predicted[rows.index], rows.distance)
            for d, rows in references.groupby("deployment_id", sort=False)}
