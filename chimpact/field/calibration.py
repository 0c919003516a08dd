"""Calibration per camera: detections at known distances filmed at each deployment (a person at
marked distances when the camera is set up, or a few detections measured by hand) give a
monotone correction of that deployment's distances, d -> exp(a) * d**b, fitted on logs and
shrunk toward no correction (a = 0, b = 1) as a random effect would be: by n / (n + k), where
k = (the model's own error spread / CAMERA_SPREAD)**2 is how many points one prior camera is
worth, so a few noisy points move a deployment less than many precise ones. The interval ends
are corrected too, then widened by one factor per deployment until they hold its references as
split conformal prediction asks (all five of five for an 80% interval), so that the promise
holds at that camera whatever the correction left. A deployment without points is left as it
is.
"""

import json
import math

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import boxes, video
from chimpact.errors import InputError
from chimpact.field import distances, megadetector, videos

COLUMNS = ["deployment_id", "video_id", "time", *boxes.COORDINATES, "distance"]
# The spread (sd of log predicted/true) of cameras' biases before calibration: a camera off by
# 1.5x is one standard deviation off (the issue measured 1.47, 0.66 and 1.23 at three new ones).
CAMERA_SPREAD = math.log(1.5)
MIN_SLOPE_POINTS = 3  # below this, a scale only (b = 1)
SLOPES = (0.25, 4.0)
COVERAGE = 0.8  # the intervals' promise (distances.QUANTILES)
# A fit that raises intervals' spread (high / low) to a power beyond 1/STRETCH..STRETCH, or
# widens their ends more than STRETCH-fold, says more about its references than about the
# camera: at slope 2 an interval spanning 4.5x (4-18 m) spans 20x; at 3.6, 4-18 m becomes
# 0.96-186 m. Cameras differ by about 1.5x (CAMERA_SPREAD), far from that.
STRETCH = 2.0
# References scattered about their fit (1.4826 x the median absolute log residual) beyond this
# many times the model's own error spread disagree with it more than its errors explain: with
# five consistent points that happens about once in 25 (three of five residuals beyond 1.35
# standard deviations).
SCATTER = 2.0


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


def fit(predicted, true, noise=CAMERA_SPREAD, interval=None):
    """{points, weight, intercept a, slope b, mae_before, mae_after, widen, scatter} of one
    deployment's reference points, whose log errors have the spread `noise` (the model's
    out-of-fold one); `interval` (low, high): their intervals before calibration, which give
    `widen`; `scatter` the spread of the references' log errors after the correction (1.4826 x
    their median absolute value)."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    n = len(true)
    x, y = np.log(np.maximum(predicted, 1e-3)), np.log(true)
    slope = 1.0
    if n >= MIN_SLOPE_POINTS and np.var(x) > 1e-9:
        slope = float(np.clip(np.cov(x, y, bias=True)[0, 1] / np.var(x), *SLOPES))
    intercept = float(np.mean(y) - slope * np.mean(x))
    weight = n / (n + (noise / CAMERA_SPREAD) ** 2)
    intercept, slope = weight * intercept, 1.0 + weight * (slope - 1.0)
    widen = 0.0 if interval is None else widening(
        *(correct(end, intercept, slope) for end in interval), true)
    corrected = correct(predicted, intercept, slope)
    return {"points": n, "weight": weight, "intercept": intercept, "slope": slope,
            "mae_before": float(np.abs(true - predicted).mean()),
            "mae_after": float(np.abs(true - corrected).mean()), "widen": widen,
            "scatter": float(1.4826 * np.median(np.abs(y - np.log(np.maximum(corrected,
                                                                             1e-3)))))}


def doubts(found, noise):
    """Why a deployment's `fit` deserves a look before its distances are used, in one phrase
    ("" when none): a slope outside 1/STRETCH..STRETCH or a widening beyond STRETCH-fold
    (intervals stretched many-fold), references scattered beyond SCATTER x `noise`, the
    model's own error spread."""
    reasons = []
    if not 1 / STRETCH <= found["slope"] <= STRETCH:
        reasons.append(f"slope {found['slope']:.2f} raises each interval's spread (high / "
                            f"low) to that power")
    if found["widen"] > math.log(STRETCH):
        reasons.append(f"its intervals are widened {math.exp(found['widen']):.1f}-fold to "
                            "hold its references")
    if found.get("scatter", 0.0) > SCATTER * noise:
        reasons.append(f"its references scatter {found['scatter']:.2f} (log) about the "
                            f"fit, over {SCATTER:g}x the model's own error spread "
                            f"{noise:.2f}")
    return "; ".join(reasons)


def widening(low, high, true, coverage=COVERAGE):
    """The least w >= 0 such that [low * exp(-w), high * exp(w)] holds k of the n `true`
    distances, k = ceil((n + 1) * coverage) (all of them up to 8 points for 80%): split
    conformal prediction on the camera's own references, scored by the log ratio by which a
    true distance falls outside its corrected interval, so that the interval holds `coverage`
    of that camera's distances whatever the correction left."""
    low, high, true = (np.asarray(v, float) for v in (low, high, true))
    outside = np.maximum(np.log(np.maximum(low, 1e-3) / true),
                         np.log(true / np.maximum(high, 1e-3)))
    k = min(len(true), math.ceil((len(true) + 1) * coverage))
    return max(float(np.sort(outside)[k - 1]), 0.0)


def correct(distance, intercept, slope):
    """exp(intercept) * distance**slope (0 for distances at or below 0, NaN where there is
    none): increasing in distance."""
    distance = np.asarray(distance, float)
    corrected = np.exp(intercept) * np.maximum(np.nan_to_num(distance), 1e-9) ** slope
    return np.where(np.isnan(distance), np.nan, np.where(distance > 0, corrected, 0.0))


def apply(rows, fits):
    """The detection rows with each calibrated deployment's distances and interval ends
    corrected and the interval widened by its factor exp(widen) (low not below 0); other
    deployments as they were."""
    rows = rows.astype({end: float for end in ("distance", "distance_low", "distance_high")})
    for deployment_id, found in fits.items():
        mine = rows.deployment_id == deployment_id
        a, b, widen = found["intercept"], found["slope"], found["widen"]
        rows.loc[mine, "distance"] = correct(rows.distance[mine], a, b)
        rows.loc[mine, "distance_low"] = correct(rows.distance_low[mine], a, b) * np.exp(-widen)
        rows.loc[mine, "distance_high"] = correct(rows.distance_high[mine], a, b) * np.exp(widen)
    return rows


def write_report(path, fits, deployment_ids):
    """calibration.json: per deployment its fit, or that it had no reference points."""
    report = {d: fits.get(d, {"points": 0, "calibrated": False}) for d in deployment_ids}
    storage.atomic_write(path, json.dumps(report, indent=2))


def fit_references(predictor, config, video_dir, references, offsets, noise, fps=None,
                   batch_size=16):
    """{deployment_id: fit} from the reference detections, each predicted as the survey's
    detections are (its box in the sequence of its second), their errors of spread `noise`;
    InputError naming a reference video that cannot be decoded."""
    predicted = pd.DataFrame(np.nan, index=references.index, columns=["distance", "low", "high"])
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
        predicted.loc[rows.index] = np.column_stack(distances.predict_boxes(
            predictor, config, pictures, info["fps"], rows, offsets, batch_size))
    return {d: fit(predicted.distance[rows.index], rows.distance, noise,
                   (predicted.low[rows.index], predicted.high[rows.index]))
            for d, rows in references.groupby("deployment_id", sort=False)}
