"""Per animal and per camera, end to end: a box model trained on a synthetic world (the demo's,
of another seed) ranks the animals of a frame and, at three cameras whose height, tilt and lens
lie outside the world's (chimpact.demo.survey), five references per camera calibrate it."""

import json

import numpy as np
import pandas as pd
import pytest

from chimpact.data import extract, packing, video
from chimpact.demo import survey, synth
from chimpact.field.jobs import run_field
from model_checks import finish, start_python

# The demo's world (its size, animals and scenes of 2-3) at 4 frames per second for time.
WORLD = dict(n_videos=100, seed=401, width=128, height=96, fps=4, max_animals=3,
             multi_fraction=0.4)
KEYS = ["video_id", "time", "detection"]


def _scored(rows_csv, truth):
    rows = pd.read_csv(rows_csv)
    merged = truth.merge(rows, on=KEYS, suffixes=("", "_pred"), validate="1:1")
    assert len(merged) == len(truth)
    return merged.assign(error=(merged.distance - merged.distance_pred).abs(),
                         inside=(merged.distance >= merged.distance_low)
                         & (merged.distance <= merged.distance_high))


@pytest.mark.slow
def test_box_model_ranks_animals_and_calibration_corrects_new_cameras(tmp_path):
    data = tmp_path / "data"
    synth.write_world(str(data), progress=False, **WORLD)
    extract.extract_frames(str(data / "videos"), str(tmp_path / "frames"),
                           video.DecodeOptions(fps=1.0, size=(64, 48)), workers=1,
                           labels_csv=[str(data / "train_labels.csv")], progress=False)
    packing.create_records(str(tmp_path / "frames"), str(data / "train_labels.csv"),
                           str(tmp_path / "records"), frames_per_side=1, n_folds=3,
                           boxes_csv=str(data / "train_metadata.csv"), progress=False)
    model_dir = tmp_path / "box"
    # Fold 0 of 3 and 20 of the preset's 40 epochs, for time. Measured on the demo's world (seed
    # 0, the one the cameras were chosen on), 3 folds, 40 epochs: survey MAE 3.09 -> 1.10 m
    # (0.36), 80% intervals holding 5% -> 78%; here, 3 folds: 0.41, 6% -> 85%; fold 0 alone:
    # 3.08 -> 1.36 m (0.44), 33% -> 83%, 56 of 56 pairs ranked. The same training compiled
    # with XLA gave 0.43 (22% -> 80%) and, with XLA:CPU's other fusion emitters, 0.51 (24% ->
    # 83%): float order alone moves the gain by 0.08, so its bar is 0.55.
    training = start_python(["run_train.py", "--flagfile=models/demo-box.flags",
                             f"--tfrec_dir={tmp_path / 'records'}", f"--out_dir={model_dir}",
                             "--verbose=0", "--epochs=20", "--folds=0"])
    field = tmp_path / "survey"
    survey.write_survey(str(field), seed=WORLD["seed"], fps=WORLD["fps"], progress=False)
    finish(training, timeout=900)

    # What run_field.py runs (the demo's field stages run the command itself), in this process.
    common = dict(video_dir=str(field / "videos"), videos_csv=str(field / "videos.csv"),
                  deployments_csv=str(field / "deployments.csv"), progress=False)
    assert run_field(str(model_dir), detections_json=str(field / "detections.json"),
                     out_csv=str(tmp_path / "plain" / "animals.csv"), **common) == {}
    assert run_field(str(model_dir), detections_json=str(field / "detections.frames.json"),
                     calibration_csv=str(field / "calibration.csv"),
                     out_csv=str(tmp_path / "calibrated" / "animals.csv"), **common) == {}
    truth = pd.read_csv(field / "animals.csv")
    before = _scored(tmp_path / "plain" / "animals.csv", truth)
    after = _scored(tmp_path / "calibrated" / "animals.csv", truth)
    # the two layouts of one MegaDetector run give the same detections
    np.testing.assert_allclose(before[["x1_pred", "y1_pred", "x2_pred", "y2_pred"]],
                               after[["x1_pred", "y1_pred", "x2_pred", "y2_pred"]], atol=1e-6)

    # Two animals of a frame 2 m or more apart: the nearer gets the smaller distance.
    ranked = []
    for _, frame in before.groupby(["video_id", "time"]):
        if len(frame) == 2:
            near, far = frame.sort_values("distance").itertuples()
            if far.distance - near.distance >= 2:
                ranked.append(near.distance_pred < far.distance_pred)

    report = json.loads((tmp_path / "calibrated" / "calibration.json").read_text())
    gain = after.error.mean() / before.error.mean()
    print(f"pairs ranked right: {sum(ranked)} of {len(ranked)}; survey MAE "
          f"{before.error.mean():.3f} -> {after.error.mean():.3f} m ({gain:.2f}); 80% intervals "
          f"hold {before.inside.mean():.0%} -> {after.inside.mean():.0%}; per camera "
          f"{after.groupby('deployment_id').error.mean().round(2).to_dict()}")
    assert len(ranked) >= 20 and sum(ranked) / len(ranked) >= 0.75, (sum(ranked), len(ranked))
    assert sorted(report) == sorted(truth.video_id.str.split("/").str[0].unique())
    assert all(fit["points"] == survey.N_MARKS for fit in report.values())
    assert gain <= 0.55
    assert before.inside.mean() < 0.4
    assert 0.7 <= after.inside.mean() <= 0.9
