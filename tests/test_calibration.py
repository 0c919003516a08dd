"""Calibration per camera: the monotone correction fitted on reference detections, its
shrinkage with few points, and what it does to the rows and intervals."""

import logging

import numpy as np
import pandas as pd
import pytest

from chimpact.errors import InputError
from chimpact.field import calibration, distances, jobs


def test_a_biased_camera_is_corrected_and_few_points_shrink_the_fit():
    rng = np.random.default_rng(0)
    true = np.array([3.0, 5.0, 8.0, 12.0, 18.0])
    predicted = true / 1.8 * np.exp(rng.normal(0, 0.03, 5))  # this camera reads 1.8x too near
    # points as noisy as cameras differ (noise = CAMERA_SPREAD): each is worth one prior camera,
    # so five keep 5/6 of the fit, a scale of about 1.8 ** (5/6)
    found = calibration.fit(predicted, true, noise=calibration.CAMERA_SPREAD)
    assert found["points"] == 5 and found["mae_after"] < 0.4 * found["mae_before"]
    assert found["weight"] == pytest.approx(5 / 6)
    assert np.exp(found["intercept"]) * 10 ** found["slope"] / 10 == pytest.approx(
        1.8 ** (5 / 6), rel=0.05)
    # precise points (half the spread) are worth four times more: 5 / (5 + 1/4)
    precise = calibration.fit(predicted, true, noise=calibration.CAMERA_SPREAD / 2)
    assert precise["weight"] == pytest.approx(5 / 5.25)
    one = calibration.fit([5.0], [10.0], noise=calibration.CAMERA_SPREAD)
    assert one["slope"] == 1.0 and one["intercept"] == pytest.approx(np.log(2) / 2)
    # the correction is increasing whatever the points say
    wild = calibration.fit([1, 2, 3, 4], [9, 1, 8, 2])
    assert wild["slope"] > 0
    assert np.all(np.diff(calibration.correct([1, 2, 5, 10], wild["intercept"],
                                              wild["slope"])) > 0)


def test_apply_corrects_only_calibrated_deployments_and_widens_their_intervals():
    rows = pd.DataFrame({"deployment_id": ["a", "a", "b", "a"],
                         "distance": [4.0, 6.0, 5.0, np.nan],
                         "distance_low": [3.0, 5.0, 4.0, np.nan],
                         "distance_high": [6.0, 8.0, 7.0, np.nan]})
    fits = {"a": {"intercept": np.log(1.5), "slope": 1.0, "widen": np.log(1.2)}}
    out = calibration.apply(rows, fits)
    np.testing.assert_allclose(out.distance, [6.0, 9.0, 5.0, np.nan])
    np.testing.assert_allclose(out.distance_low, [4.5 / 1.2, 7.5 / 1.2, 4.0, np.nan])
    np.testing.assert_allclose(out.distance_high, [9 * 1.2, 12 * 1.2, 7.0, np.nan])


def test_intervals_widen_until_they_hold_the_references_as_split_conformal_asks():
    true = np.full(5, 10.0)
    low, high = [9.0, 8.0, 10.5, 9.0, 5.0], [11.0, 12.0, 12.0, 10.0, 15.0]
    # one reference lies 5% below its interval: five of five (ceil(6 * 0.8)) must be held
    assert calibration.widening(low, high, true) == pytest.approx(np.log(1.05))
    # ten references: nine held (ceil(11 * 0.8)), so the worst one is left out
    low10, high10 = [*low, 9, 9, 9, 9, 12.0], [*high, 11, 11, 11, 11, 13.0]
    assert calibration.widening(low10, high10, np.full(10, 10.0)) == pytest.approx(np.log(1.05))
    # intervals already holding every reference are never narrowed
    assert calibration.widening([9.0] * 5, [11.0] * 5, true) == 0.0
    # through fit: the references predicted at half their distance, intervals and all; the
    # correction (2x, weight ~1 for precise points) doubles them back to the intervals above
    found = calibration.fit([5.0] * 5, true, noise=1e-9,
                            interval=(np.divide(low, 2), np.divide(high, 2)))
    assert found["intercept"] == pytest.approx(np.log(2))
    assert found["widen"] == pytest.approx(np.log(1.05))


@pytest.mark.parametrize("change", [
    {"distance": 0.0}, {"x2": 0.05}, {"y1": 1.5}, {"time": -1}, {"distance": "far"}])
def test_bad_reference_rows_are_refused(tmp_path, change):
    row = {"deployment_id": "a", "video_id": "v.mp4", "time": 1, "x1": 0.1, "y1": 0.2,
           "x2": 0.4, "y2": 0.6, "distance": 5.0}
    pd.DataFrame([row, {**row, **change}]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match="c.csv: row 3: needs time >= 0, a box x1 < x2"):
        calibration.read_calibration(str(tmp_path / "c.csv"))


def test_the_models_error_spread_is_robust_and_leaves_out_near_zero_distances(tmp_path):
    errors = np.array([-0.2, -0.1, 0.0, 0.1, 0.2, 3.0])  # log(true / predicted); one wild row
    pd.DataFrame({"video_id": "v.mp4", "time": range(8), "pred": 5.0,
                  "distance": [*(5.0 * np.exp(errors)), 0.0, 0.05], "fold": 0}).to_csv(
        tmp_path / "oof.csv", index=False)
    # median 0.05; absolute deviations 0.25, 0.15, 0.05, 0.05, 0.15, 2.95: their median 0.15
    assert distances.log_error_spread(str(tmp_path)) == pytest.approx(1.4826 * 0.15)


def test_fits_that_stretch_intervals_or_disagree_with_the_model_are_named_in_a_warning(caplog):
    true = np.array([4.0, 6.0, 9.0, 13.0, 18.0])
    # predictions squeezed into 6-8 m: slope 3.6, which turns a 4-18 m interval into 0.96-186 m
    squeezed = calibration.fit(np.exp(np.log(true) / 3.6) * 3.3, true, noise=1e-9)
    assert squeezed["slope"] == pytest.approx(3.6, rel=1e-3)
    low, high = calibration.correct([4.0, 18.0], squeezed["intercept"], squeezed["slope"])
    assert high / low == pytest.approx(4.5 ** 3.6, rel=0.01)  # a 4.5x interval spans 225x
    biased = calibration.fit(true / 1.8, true, noise=0.2)  # a camera 1.8x off: what it is for
    scattered = calibration.fit(true * np.exp([0.8, -0.8, 0.7, -0.7, 0.0]), true, noise=0.2)
    widened = {**biased, "widen": np.log(2.5)}
    assert calibration.doubts(biased, 0.2) == ""
    assert calibration.doubts(squeezed, 0.2) == (
        "slope 3.60 raises each interval's spread (high / low) to that power")
    assert calibration.doubts({**biased, "slope": 0.4}, 0.2).startswith("slope 0.40 raises")
    assert calibration.doubts(widened, 0.2) == (
        "its intervals are widened 2.5-fold to hold its references")
    assert scattered["scatter"] > 2 * 0.2 and biased["scatter"] < 0.1
    assert calibration.doubts(scattered, 0.2).endswith(
        f"; its references scatter {scattered['scatter']:.2f} (log) about the fit, over 2x the "
        "model's own error spread 0.20")
    caplog.set_level(logging.INFO, logger="chimpact")
    jobs._log_fits({"cam1": biased, "cam9": squeezed}, 0.2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "calibration of cam9: slope 3.60 raises each interval's spread (high / low) to that "
        "power: check its references (boxes on the right animal, times, distances in metres, "
        "near and far ones) before using its distances"]
