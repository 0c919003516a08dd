"""The greedy pairwise ensemble against a brute-force reference, and its files and errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from chimpact import ensemble
from chimpact.errors import InputError
from model_checks import python_output

REPO = pathlib.Path(__file__).resolve().parents[1]
LABELS = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 13.5, 20.0, 25.0])


def reference_search(preds, true, grid):
    """The reference algorithm written with plain loops: one MAE per (model, coefficient)."""
    def score(p):
        return float(np.mean(np.abs(p - true)))

    order = sorted(range(preds.shape[1]), key=lambda j: score(preds[:, j]))
    current = preds[:, order[0]]
    best = score(current)
    coefficients = []
    for j in order[1:]:
        chosen = 1.0
        for c in grid:
            s = score(c * current + (1 - c) * preds[:, j])
            if s < best:
                best, chosen = s, c
        current = chosen * current + (1 - chosen) * preds[:, j]
        coefficients.append(chosen)
    return order, coefficients, best


def random_models(seed, n_rows=300, n_models=4):
    """Distances on the label grid and noisy, biased predictions of them."""
    rng = np.random.default_rng(seed)
    true = rng.choice(LABELS, n_rows)
    noise = rng.uniform(0.5, 3.0, n_models)
    bias = rng.uniform(-1.0, 1.0, n_models)
    preds = true[:, None] + bias + noise * rng.standard_normal((n_rows, n_models))
    return preds, true


def write_model(model_dir, oof, test, pred_oof, pred_test):
    tf.io.gfile.makedirs(str(model_dir))
    with tf.io.gfile.GFile(f"{model_dir}/oof.csv", "w") as f:
        oof.assign(pred=pred_oof, fold=np.arange(len(oof)) % 5).to_csv(f, index=False)
    with tf.io.gfile.GFile(f"{model_dir}/test_preds.csv", "w") as f:
        test.assign(pred=pred_test).to_csv(f, index=False)


def make_model_dirs(root, seed=0, n_models=3, n_rows=200, n_test=50):
    """Model dirs with aligned oof.csv / test_preds.csv; returns (dirs, oof preds, true)."""
    preds, true = random_models(seed, n_rows, n_models)
    rng = np.random.default_rng(seed + 100)
    oof = pd.DataFrame({"video_id": [f"v{i // 4:03d}.mp4" for i in range(n_rows)],
                        "time": [10 * (i % 4) for i in range(n_rows)], "distance": true})
    test = pd.DataFrame({"video_id": [f"t{i // 2:03d}.avi" for i in range(n_test)],
                         "time": [i % 2 for i in range(n_test)]})
    test_preds = rng.uniform(0, 25, (n_test, n_models))
    dirs = [f"{root}/model{j}" for j in range(n_models)]
    for j, d in enumerate(dirs):
        write_model(d, oof, test, preds[:, j], test_preds[:, j])
    return dirs, preds, true, test_preds


def test_coef_grid_is_the_references_and_ends_exactly_on_max():
    grid = ensemble.coef_grid()
    reference = np.arange(0, 1.11, 0.01)  # the 3rd-place ensemble.py's grid
    assert len(grid) == len(reference) == 112 and grid[0] == 0.0 and grid[-1] == 1.11
    np.testing.assert_allclose(grid, reference, atol=1e-12)
    assert list(grid) == [k / 100 for k in range(112)]
    assert list(ensemble.coef_grid(0.0, 1.1, 0.01)) == [k / 100 for k in range(111)]
    assert list(ensemble.coef_grid(0.0, 0.3, 0.1)) == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(InputError, match="coef_step"):
        ensemble.coef_grid(0.0, 1.0, 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_search_equals_brute_force_reference(seed):
    preds, true = random_models(seed)
    grid = ensemble.coef_grid()
    order, coefficients = ensemble.greedy_search(preds, true, grid)
    ref_order, ref_coefficients, ref_mae = reference_search(preds, true, [k / 100 for k in range(111)])
    assert order == ref_order
    assert coefficients == ref_coefficients
    blended = ensemble.combine(preds, order, coefficients)
    assert ensemble.mae(blended, true) == pytest.approx(ref_mae, rel=1e-12)
    assert ensemble.mae(blended, true) <= np.abs(preds - true[:, None]).mean(axis=0).min()
    weights = ensemble.model_weights(order, coefficients)
    assert np.allclose(preds[:, order] @ np.array(weights), blended)


def test_an_optimum_at_the_end_of_the_grid_is_found():
    rng = np.random.default_rng(0)
    true = rng.choice(LABELS, 400)
    error = rng.normal(0, 1, 400)
    # c * (true + e) + (1 - c) * (true + 10 e) = true + (10 - 9 c) e: best at c = 10 / 9.
    preds = np.stack([true + error, true + 10 * error], axis=1)
    _, coefficients = ensemble.greedy_search(preds, true, ensemble.coef_grid())
    assert coefficients == [1.11]


@pytest.mark.parametrize("seed", [0, 3])
def test_a_copy_of_a_model_gets_no_coefficient_from_rounding_noise(seed):
    """With these seeds the copy of the best model "improves" the MAE by about 1e-16 at some
    c, which the reference's strict comparison would keep."""
    preds, true = random_models(seed, n_models=2)
    with_copy = np.concatenate([preds, preds[:, [0]]], axis=1)
    order, coefficients = ensemble.greedy_search(with_copy, true, ensemble.coef_grid())
    assert order[:2] == [0, 2] and coefficients[0] == 1.0
    blended = ensemble.combine(with_copy, order, coefficients)
    alone = ensemble.combine(preds, *ensemble.greedy_search(preds, true, ensemble.coef_grid()))
    np.testing.assert_allclose(blended, alone, rtol=0, atol=1e-12)


def test_model_that_adds_nothing_keeps_coefficient_one():
    preds, true = random_models(1, n_models=2)
    preds = np.concatenate([preds, preds[:, [0, 1]]], axis=1)  # exact copies help nothing
    order, coefficients = ensemble.greedy_search(preds, true, ensemble.coef_grid())
    coefficient = dict(zip(order[1:], coefficients))
    assert coefficient[2] == coefficient[3] == 1.0
    assert coefficient[order[0] ^ 1] != 1.0  # the other original model


def test_snap_to_labels_takes_nearest_and_lower_on_tie():
    snapped = ensemble.snap_to_labels([0.2, 0.25, 0.26, 7.9, 30.0, -1.0], [0.0, 0.5, 8.0, 25.0])
    assert list(snapped) == [0.0, 0.0, 0.5, 8.0, 25.0, 0.0]
    assert list(ensemble.snap_to_labels([3.3], [2.0])) == [2.0]


def test_run_ensemble_writes_files_and_shuffled_order_changes_nothing(tmp_path):
    dirs, preds, true, test_preds = make_model_dirs(tmp_path / "a", seed=3)
    summary = ensemble.run_ensemble(dirs, str(tmp_path / "out_a"), round_to_labels=True)
    order, coefficients = ensemble.greedy_search(preds, true, ensemble.coef_grid())
    assert summary["models"] == [dirs[i] for i in order]
    assert summary["coefficients"] == coefficients
    assert summary["oof_mae"] <= min(summary["model_oof_mae"].values())
    assert summary["oof_mae_rounded"] == pytest.approx(
        ensemble.mae(ensemble.snap_to_labels(ensemble.combine(preds, order, coefficients),
                                             np.unique(true)), true))
    assert json.loads((tmp_path / "out_a" / "ensemble.json").read_text()) == summary
    assert (tmp_path / "out_a" / "ensemble.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    submission = pd.read_csv(tmp_path / "out_a" / "submission.csv")
    assert list(submission.columns) == ["video_id", "time", "distance"]
    expected = ensemble.snap_to_labels(ensemble.combine(test_preds, order, coefficients),
                                       np.unique(true))
    assert np.allclose(submission["distance"], expected)

    form = submission.sample(frac=1.0, random_state=5).assign(distance=0.0)
    form.to_csv(tmp_path / "format.csv", index=False)
    ensemble.run_ensemble(dirs, str(tmp_path / "out_c"), round_to_labels=True,
                          submission_csv=str(tmp_path / "format.csv"))
    in_format_order = pd.read_csv(tmp_path / "out_c" / "submission.csv")
    pd.testing.assert_frame_equal(in_format_order, submission.loc[form.index].reset_index(drop=True))

    shuffled = []
    for j, d in enumerate(dirs):
        new = tmp_path / "b" / f"model{j}"
        new.mkdir(parents=True)
        for name in ("oof.csv", "test_preds.csv"):
            table = pd.read_csv(f"{d}/{name}").sample(frac=1.0, random_state=j)
            table.to_csv(new / name, index=False)
        shuffled.append(str(new))
    summary_b = ensemble.run_ensemble(shuffled, str(tmp_path / "out_b"), round_to_labels=True)
    assert summary_b["coefficients"] == summary["coefficients"]
    assert [pathlib.Path(m).name for m in summary_b["models"]] == \
        [pathlib.Path(m).name for m in summary["models"]]
    assert summary_b["oof_mae"] == pytest.approx(summary["oof_mae"], rel=1e-12)
    by_key = ["video_id", "time"]
    submission_b = pd.read_csv(tmp_path / "out_b" / "submission.csv")
    pd.testing.assert_frame_equal(submission.sort_values(by_key).reset_index(drop=True),
                                  submission_b.sort_values(by_key).reset_index(drop=True))


VIEWS = ["identity", "flip_lr", "flip_ud"]


def write_views(model_dir, oof, test, oof_views, test_views):
    """oof_tta.csv and test_preds.csv with one column per TTA view and their mean, `pred`."""
    oof = oof.assign(fold=np.arange(len(oof)) % 5, pred=oof_views.mean(axis=1))
    test = test.assign(pred=test_views.mean(axis=1))
    for j, view in enumerate(VIEWS):
        oof[view], test[view] = oof_views[:, j], test_views[:, j]
    oof.to_csv(f"{model_dir}/oof_tta.csv", index=False)
    test.to_csv(f"{model_dir}/test_preds.csv", index=False)


def test_tta_views_are_members_and_each_side_uses_the_same_thing(tmp_path):
    dirs, preds, true, test_preds = make_model_dirs(tmp_path, n_models=2)
    rng = np.random.default_rng(7)
    oof = pd.read_csv(f"{dirs[0]}/oof.csv")[["video_id", "time", "distance"]]
    test = pd.read_csv(f"{dirs[0]}/test_preds.csv")[["video_id", "time"]]
    views = {}
    for j, d in enumerate(dirs):
        # The identity view is the model's own prediction; the others are worse.
        oof_views = preds[:, [j]] + rng.normal(0, [0.0, 2.0, 3.0], (len(oof), 3))
        test_views = test_preds[:, [j]] + rng.normal(0, [0.0, 2.0, 3.0], (len(test), 3))
        write_views(d, oof, test, oof_views, test_views)
        views[d] = (oof_views, test_views)

    plain = ensemble.run_ensemble(dirs, str(tmp_path / "none"))
    assert plain["tta"] == "none" and set(plain["models"]) == set(dirs)
    # Without TTA, the test side takes the identity view, as the OOF side (oof.csv) has it.
    submission = pd.read_csv(tmp_path / "none" / "submission.csv")
    order = [dirs.index(m) for m in plain["models"]]
    stacked = np.stack([views[d][1][:, 0] for d in dirs], axis=1)
    np.testing.assert_allclose(submission.distance,
                               ensemble.combine(stacked, order, plain["coefficients"]))

    each = ensemble.run_ensemble(dirs, str(tmp_path / "views"), tta="views")
    assert sorted(each["models"]) == sorted(f"{d}[{v}]" for d in dirs for v in VIEWS)
    for d in dirs:
        for j, view in enumerate(VIEWS):
            assert each["model_oof_mae"][f"{d}[{view}]"] == pytest.approx(
                ensemble.mae(views[d][0][:, j], true))
    assert each["oof_mae"] <= min(each["model_oof_mae"].values())

    mean = ensemble.run_ensemble(dirs, str(tmp_path / "mean"), tta="mean")
    assert mean["model_oof_mae"][dirs[0]] == pytest.approx(
        ensemble.mae(views[dirs[0]][0].mean(axis=1), true))

    pd.read_csv(f"{dirs[1]}/test_preds.csv").drop(columns="flip_ud").to_csv(
        f"{dirs[1]}/test_preds.csv", index=False)
    with pytest.raises(InputError, match=r"model1/oof_tta\.csv: views identity, flip_lr, flip_ud "
                                         r"but test_preds\.csv has identity, flip_lr"):
        ensemble.run_ensemble(dirs, str(tmp_path / "bad"), tta="views")


def test_one_model_is_its_own_ensemble_on_ram_filesystem():
    dirs, preds, true, test_preds = make_model_dirs("ram://ensemble_one", seed=4, n_models=1)
    summary = ensemble.run_ensemble(dirs, "ram://ensemble_one/out")
    assert summary["coefficients"] == [] and summary["weights"] == [1.0]
    assert summary["oof_mae"] == pytest.approx(ensemble.mae(preds[:, 0], true))
    with tf.io.gfile.GFile("ram://ensemble_one/out/submission.csv") as f:
        submission = pd.read_csv(f)
    assert np.allclose(submission["distance"], test_preds[:, 0])


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(index=7), r"model1/oof\.csv: lacks row video_id=v001\.mp4 time=30"),
    (lambda t: pd.concat([t, t.iloc[[0]].assign(video_id="zz.mp4")]),
     r"model1/oof\.csv: has row video_id=zz\.mp4 time=0"),
    (lambda t: t.assign(time=t["time"] + (t.index == 7)),
     r"model1/oof\.csv: lacks row video_id=v001\.mp4 time=30"),
    (lambda t: t.assign(distance=t["distance"] + (t.index == 5)),
     r"model1/oof\.csv: distance at video_id=v001\.mp4 time=10 differs"),
    (lambda t: pd.concat([t, t.iloc[[3]]]), r"model1/oof\.csv: duplicate row video_id=v000\.mp4"),
    (lambda t: t.drop(columns="pred"), r"model1/oof\.csv: lacks column\(s\) pred"),
])
def test_misaligned_oof_rows_are_one_line_errors(tmp_path, change, message):
    dirs, *_ = make_model_dirs(tmp_path, n_models=2)
    path = pathlib.Path(dirs[1]) / "oof.csv"
    change(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(InputError, match=message) as error:
        ensemble.run_ensemble(dirs, str(tmp_path / "out"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_the_ensemble_imports_neither_tensorflow_nor_keras():
    out = python_output("""
        import sys
        import chimpact.ensemble
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
        """)
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_cli_prints_table_and_reports_missing_file(tmp_path):
    dirs, *_ = make_model_dirs(tmp_path, n_models=2)
    (pathlib.Path(dirs[1]) / "test_preds.csv").unlink()
    script = [sys.executable, str(REPO / "ensemble.py"), f"--model_dirs={','.join(dirs)}",
              f"--out_dir={tmp_path / 'out'}", "--round_to_labels"]
    failed = subprocess.run(script, capture_output=True, text=True, cwd=REPO)
    assert failed.returncode == 1
    assert f"error: {dirs[1]}/test_preds.csv: missing" in failed.stderr

    dirs, *_ = make_model_dirs(tmp_path, n_models=2)
    done = subprocess.run(script, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "ensemble snapped to labels" in done.stdout and dirs[0] in done.stdout
    assert (tmp_path / "out" / "ensemble.json").exists()
