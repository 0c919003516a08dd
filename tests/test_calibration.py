"""Calibration per camera: the monotone correction fitted on reference detections, its
shrinkage with few points, and what it does to the rows and intervals."""

import numpy as np
import pandas as pd
import pytest

from chimpact.errors import InputError
from chimpact.field import calibration


def test_a_biased_camera_is_corrected_and_few_points_shrink_the_fit():
    rng = np.random.default_rng(0)
    true = np.array([3.0, 5.0, 8.0, 12.0, 18.0])
    predicted = true / 1.8 * np.exp(rng.normal(0, 0.03, 5))  # this camera reads 1.8x too near
    found = calibration.fit(predicted, true)
    assert found["points"] == 5 and found["mae_after"] < 0.4 * found["mae_before"]
    # five points keep 5/7 of the fit: a scale of about 1.8 ** (5/7)
    assert np.exp(found["intercept"]) * 10 ** found["slope"] / 10 == pytest.approx(
        1.8 ** (5 / 7), rel=0.05)
    one = calibration.fit([5.0], [10.0])
    assert one["slope"] == 1.0 and one["intercept"] == pytest.approx(np.log(2) / 3)
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
    fits = {"a": {"intercept": np.log(1.5), "slope": 1.0, "low": -0.5, "high": 0.25}}
    out = calibration.apply(rows, fits)
    np.testing.assert_allclose(out.distance, [6.0, 9.0, 5.0, np.nan])
    np.testing.assert_allclose(out.distance_low, [4.0, 7.0, 4.0, np.nan])
    np.testing.assert_allclose(out.distance_high, [9.25, 12.25, 7.0, np.nan])


@pytest.mark.parametrize("change", [
    {"distance": 0.0}, {"x2": 0.05}, {"y1": 1.5}, {"time": -1}, {"distance": "far"}])
def test_bad_reference_rows_are_refused(tmp_path, change):
    row = {"deployment_id": "a", "video_id": "v.mp4", "time": 1, "x1": 0.1, "y1": 0.2,
           "x2": 0.4, "y2": 0.6, "distance": 5.0}
    pd.DataFrame([row, {**row, **change}]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match="c.csv: row 3: needs time >= 0, a box x1 < x2"):
        calibration.read_calibration(str(tmp_path / "c.csv"))
