"""Deployments (Camtrap DP 1.0's deployment fields, checked by the standard's rules), the videos
table, and R Distance's flat file for camera-trap point transects built from them."""

import numpy as np
import pandas as pd
import pytest

from chimpact.errors import InputError
from chimpact.field import deployments, distance_file

DEPLOYMENTS = pd.DataFrame({
    "deploymentID": ["north", "south", "east"],
    "latitude": [-5.1, -5.2, -5.3], "longitude": [29.1, 29.2, 29.3],
    "deploymentStart": ["2021-03-01T08:00:00+01:00", "2021-03-01T09:00:00Z",
                        "2021-03-02T00:00:00+0000"],
    "deploymentEnd": ["2021-03-01T09:00:00+01:00", "2021-03-02T09:00:00Z",
                      "2021-03-02T00:10:00+00:00"],
    "cameraHeight": [0.7, None, 1.2], "cameraTilt": [-10, None, 0], "locationName": "x"})


def _write(tmp_path, table, name="deployments.csv"):
    table.to_csv(tmp_path / name, index=False)
    return str(tmp_path / name)


def test_deployments_read_with_their_active_time(tmp_path):
    table = deployments.read_deployments(_write(tmp_path, DEPLOYMENTS))
    assert list(table.index) == ["north", "south", "east"]
    assert table.active_s.tolist() == [3600.0, 86400.0, 600.0]
    assert str(table.start["north"]) == "2021-03-01 07:00:00+00:00"


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="deploymentEnd"), "lacks column\\(s\\) deploymentEnd"),
    (lambda t: t.assign(deploymentID=["a", "a", "b"]), "deploymentID 'a' appears twice"),
    (lambda t: t.assign(latitude=[95, 0, 0]), "row 2: latitude 95 is not a number in -90..90"),
    (lambda t: t.assign(longitude=[0, None, 0]), "row 3: longitude empty is not a number"),
    (lambda t: t.assign(cameraTilt=[0, 100, 0]),
     "row 3: cameraTilt 100 is not a number in -90..90"),
    (lambda t: t.assign(cameraHeight=["high", 1, 1]),
     "row 2: cameraHeight high is not a number in 0.."),
    (lambda t: t.assign(deploymentStart=["2021-03-01T08:00:00", *t.deploymentStart[1:]]),
     "row 2: deploymentStart '2021-03-01T08:00:00' is not an ISO 8601 time with its UTC offset"),
    (lambda t: t.assign(deploymentEnd=["yesterday", *t.deploymentEnd[1:]]),
     "row 2: deploymentEnd 'yesterday' is not an ISO 8601"),
    (lambda t: t.assign(deploymentEnd=t.deploymentStart), "deployment 'north' ends before it "),
])
def test_deployments_breaking_the_standards_rules_are_refused(tmp_path, change, message):
    with pytest.raises(InputError, match=f"--deployments_csv=.*deployments.csv: {message}"):
        deployments.read_deployments(_write(tmp_path, change(DEPLOYMENTS.copy())))


def test_the_videos_table_names_deployments_and_starts(tmp_path):
    table = deployments.read_deployments(_write(tmp_path, DEPLOYMENTS))
    videos = pd.DataFrame({"video_id": ["a\\x.mp4", "b.avi"], "deployment_id": ["north", "east"],
                           "timestamp": ["2021-03-01T08:30:00+01:00", "2021-03-02T00:01:00Z"]})
    found = deployments.read_videos(_write(tmp_path, videos, "videos.csv"), table)
    assert {v: (d, str(t)) for v, (d, t) in found.items()} == {
        "a/x.mp4": ("north", "2021-03-01 07:30:00+00:00"),
        "b.avi": ("east", "2021-03-02 00:01:00+00:00")}
    with pytest.raises(InputError, match="videos.csv: deployment_id 'west' is not in "
                                         "--deployments_csv"):
        deployments.read_videos(_write(tmp_path, videos.assign(deployment_id=["north", "west"]),
                                       "videos.csv"), table)
    with pytest.raises(InputError, match="video_id 'b.avi' appears twice"):
        deployments.read_videos(_write(tmp_path, videos.assign(video_id="b.avi"), "videos.csv"))


def test_the_flat_file_has_every_deployments_effort_and_truncates(tmp_path):
    table = deployments.read_deployments(_write(tmp_path, DEPLOYMENTS))
    rows = pd.DataFrame({
        "video_id": ["n1.mp4", "n1.mp4", "n2.mp4", "n2.mp4", "s1.mp4", "s1.mp4"],
        "deployment_id": ["north", "north", "north", "north", "south", "south"],
        "time": [0, 2, 2, 4, 0, 2], "detection": [0, 0, 0, pd.NA, 0, 1],
        "distance": [3.0, 16.5, 7.25, np.nan, 1.5, 12.0]}).astype({"detection": "Int64"})
    flat = distance_file.distance_table(rows, table, snapshot_s=2.0, truncate=(2.0, 15.0),
                                        area_km2=12.5)
    assert list(flat.columns) == distance_file.COLUMNS
    # north keeps 3.0 and 7.25 (16.5 past 15 m); south's only kept 12.0; east has none
    assert flat["Sample.Label"].tolist() == ["north", "north", "south", "east"]
    np.testing.assert_array_equal(flat.distance, [3.0, 7.25, 12.0, np.nan])
    assert flat.Effort.tolist() == [1800.0, 1800.0, 43200.0, 300.0]
    assert flat.object.tolist() == [1, 2, 3, pd.NA] and flat["size"].tolist() == [1, 1, 1, pd.NA]
    assert set(flat["Region.Label"]) == {"survey"} and set(flat.Area) == {12.5}
    assert flat.video_id.tolist()[:3] == ["n1.mp4", "n2.mp4", "s1.mp4"]
    whole = distance_file.distance_table(rows, table, snapshot_s=1.0)
    assert whole.distance.notna().sum() == 5 and set(whole.Area) == {0.0}
    assert whole.Effort.iloc[0] == 3600.0
    with pytest.raises(InputError, match="deployment\\(s\\) west of the detections"):
        distance_file.distance_table(rows.assign(deployment_id="west"), table, 1.0)
