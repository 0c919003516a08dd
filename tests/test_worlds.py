"""The demo preset learns on a synthetic world it was not tuned on: another frame size and aspect
ratio, frame rate, number of videos, animal size (duikers) and seed."""

import pandas as pd
import pytest

from chimpact.data import extract, packing, video
from chimpact.demo import demo, synth
from model_checks import finish, start_python

# name -> synth.write_world arguments, plus the frames' size (create_frames.py --size): the
# smallest animals, at another frame rate, aspect and seed than the demo's. The other worlds the
# preset learns in make test: the demo's own at another seed (test_demo), one of 40 videos at 6
# fps and 4:3 under JAX (test_jax), the box preset's of 100 videos at 4 fps (test_survey). More
# worlds, measured once, are in the issue notes: the largest animals in square frames at 4 fps
# ("elephants-square": 48 videos, seed 103, 96x96 framed 64x64, 2.5-3.2 m tall) reached 0.672
# (0.585 at 40 epochs), and left make test for its 12 minutes.
WORLDS = {
    "duikers-12fps": dict(n_videos=48, seed=102, width=128, height=72, fps=12, size=(64, 36),
                          animal_height_m=(0.3, 0.5)),
}


def make_records(folder, size, **world):
    """A world, its frames (labelled gamma rule, both tables) and 3-fold training records."""
    data = folder / "data"
    synth.write_world(str(data), max_duration_s=40, progress=False, **world)
    extract.extract_frames(str(data / "videos"), str(folder / "frames"),
                           video.DecodeOptions(fps=1.0, size=size), workers=1,
                           labels_csv=[str(data / "train_labels.csv"),
                                       str(data / "submission_format.csv")], progress=False)
    packing.create_records(str(folder / "frames"), str(data / "train_labels.csv"),
                           str(folder / "records"), frames_per_side=1, n_folds=3,
                           progress=False)
    return folder / "records"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORLDS))
def test_demo_preset_beats_the_median_on_a_world_it_was_not_tuned_on(name, tmp_path):
    world = dict(WORLDS[name])
    records = make_records(tmp_path, world.pop("size"), **world)
    # 20 of the preset's 40 epochs, for time: measured, OOF MAE / median baseline's 0.758 on
    # duikers (0.758 at 40 epochs too).
    finish(start_python(["run_train.py", "--flagfile=models/demo.flags",
                         f"--tfrec_dir={records}", f"--out_dir={tmp_path / 'model'}",
                         "--verbose=0", "--epochs=20"]), timeout=600)
    oof = pd.read_csv(tmp_path / "model" / "oof.csv")
    ratio = (oof.pred - oof.distance).abs().mean() / demo.median_baseline(oof)
    assert len(oof) >= 100 and ratio < 0.8, (name, len(oof), ratio)
