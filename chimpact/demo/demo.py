"""The whole pipeline on a synthetic world, with the README's commands: what `make demo` runs.

    python -m chimpact.demo --run_dir=runs/demo

Generates the world (chimpact.demo.synth), then runs create_frames.py, create_tfrecords.py (train and
test), run_train.py and run_infer.py for each preset, and ensemble.py, each as a subprocess
exactly as a user types it (the scripts found as the `chimpact` command finds them, in a checkout
or installed), and prints each model's out-of-fold MAE beside the ensemble's and the
constant-median baseline's. With the box preset, the field workflow follows on a survey at three
cameras unlike the world's (chimpact.demo.survey): run_field.py on its MegaDetector file alone,
then on the file's frame-level layout with the deployments, the setup clips' references
(calibration), R Distance's flat file and a Camtrap DP package; it prints per deployment the MAE
and the interval's coverage before and after calibration. A stage whose command already
succeeded (RUN_DIR/done/<stage> holds the command) is skipped, so a re-run reuses what is done;
the tools also resume themselves.
"""

import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import time

import pandas as pd

from chimpact import cli

# Packaged presets by name (found wherever chimpact is installed), or paths of flagfiles.
PRESETS = ("demo", "demo-f1", "demo-box")
FIELD_PRESET = "demo-box"  # the field stages run when the presets include it
# A share of the demo's videos shows two or three animals; each label names one by its box.
WORLD_FLAGS = ("--max_animals=3", "--multi_fraction=0.4")


def commands(run_dir, n_videos=100, seed=0, fps=1, size="64x48", n_folds=3, presets=PRESETS,
             train_overrides=(), python=sys.executable):
    """The demo's commands, in order: a list of (stage name, argv); each preset a packaged
    preset's name or a flagfile's path (relative to the working folder)."""
    data, frames, records, models = (f"{run_dir}/{d}" for d in ("data", "frames", "records", "models"))
    model_dirs = [f"{models}/{pathlib.Path(p).stem}" for p in presets]
    script = {name: str(cli.entry_script(name)) for name in (
        "create_frames.py", "create_tfrecords.py", "run_train.py", "run_infer.py", "ensemble.py")}
    stages = [
        ("synth", [python, "-m", "chimpact.demo.synth", f"--out_dir={data}", f"--n_videos={n_videos}",
                   f"--seed={seed}", *WORLD_FLAGS]),
        ("frames", [python, script["create_frames.py"], f"--video_dir={data}/videos", f"--out_dir={frames}",
                    f"--fps={fps}", f"--size={size}",
                    f"--labels_csv={data}/train_labels.csv,{data}/submission_format.csv"]),
        ("records-train", [python, script["create_tfrecords.py"], f"--frames_dir={frames}",
                           f"--labels_csv={data}/train_labels.csv",
                           f"--boxes_csv={data}/train_metadata.csv", f"--out_dir={records}/train",
                           "--frames_per_side=1", "--step=1", f"--n_folds={n_folds}"]),
        ("records-test", [python, script["create_tfrecords.py"], f"--frames_dir={frames}", "--subset=test",
                          f"--labels_csv={data}/submission_format.csv",
                          f"--boxes_csv={data}/test_metadata.csv", f"--out_dir={records}/test",
                          "--frames_per_side=1", "--step=1"]),
    ]
    for preset, model_dir in zip(presets, model_dirs):
        name = pathlib.Path(model_dir).name
        stages.append((f"train-{name}", [python, script["run_train.py"], _preset_flag(preset),
                                         f"--tfrec_dir={records}/train", f"--out_dir={model_dir}",
                                         *train_overrides]))
        stages.append((f"infer-{name}", [python, script["run_infer.py"], f"--model_dir={model_dir}",
                                         f"--tfrec_dir={records}/test",
                                         f"--submission_csv={data}/submission_format.csv"]))
    stages.append(("ensemble", [python, script["ensemble.py"], f"--model_dirs={','.join(model_dirs)}",
                                f"--out_dir={run_dir}", f"--submission_csv={data}/submission_format.csv"]))
    if FIELD_PRESET in presets:
        stages += field_commands(run_dir, model_dirs[presets.index(FIELD_PRESET)], seed, python)
    return stages, model_dirs


def field_commands(run_dir, model_dir, seed=0, python=sys.executable):
    """The field stages: the survey, run_field.py uncalibrated on the video-level MegaDetector
    file, and calibrated on its frame-level layout with both exports."""
    survey, field = f"{run_dir}/survey", f"{run_dir}/field"
    common = [python, str(cli.entry_script("run_field.py")), f"--model_dir={model_dir}", f"--video_dir={survey}/videos",
              f"--videos_csv={survey}/videos.csv", f"--deployments_csv={survey}/deployments.csv"]
    return [
        ("survey", [python, "-m", "chimpact.demo.survey", f"--out_dir={survey}", f"--seed={seed}"]),
        ("field", [*common, f"--detections={survey}/detections.json",
                   f"--out_csv={field}/uncalibrated/animals.csv"]),
        ("field-calibrated", [*common, f"--detections={survey}/detections.frames.json",
                              f"--calibration_csv={survey}/calibration.csv",
                              f"--out_csv={field}/animals.csv",
                              f"--distance_csv={field}/distance.csv",
                              f"--camtrap_dp={field}/camtrap-dp"]),
    ]


def _preset_flag(preset):
    """run_train.py's flag for a preset: --flagfile for a file, --preset for a packaged name."""
    if os.path.isfile(preset):
        return f"--flagfile={os.path.abspath(preset)}"
    return f"--preset={preset}"


def run_stage(name, argv, run_dir, log=print):
    """Runs one command unless RUN_DIR/done/<name> records it already ran."""
    stamp = pathlib.Path(run_dir) / "done" / name
    line = shlex.join(argv[1:] if argv[0] == sys.executable else argv)
    if stamp.exists() and stamp.read_text() == line:
        log(f"[{name}] done before, skipped: python {line}")
        return
    log(f"[{name}] python {line}")
    start = time.time()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    result = subprocess.run(argv, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: stage {name} failed (exit {result.returncode}): python {line}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(line)
    log(f"[{name}] {time.time() - start:.0f} s")


def median_baseline_errors(oof):
    """`oof` with the error of predicting, in each fold, the median distance of the other folds
    (the challenge's baseline)."""
    median = {fold: oof.loc[oof.fold != fold, "distance"].median() for fold in oof.fold.unique()}
    return oof.assign(error=(oof.distance - oof.fold.map(median)).abs())


def median_baseline(oof):
    """MAE of predicting, in each fold, the median distance of the other folds."""
    return float(median_baseline_errors(oof).error.mean())


def _test_errors(table, truth):
    merged = truth.merge(table, on=["video_id", "time"], suffixes=("", "_pred"))
    return merged.assign(error=(merged.distance - merged.distance_pred).abs())


def _mae(errors, crowded):
    """(MAE over all rows, MAE over the rows of videos with several animals)."""
    return float(errors.error.mean()), float(errors.error[errors.video_id.isin(crowded)].mean())


def score_table(run_dir, model_dirs):
    """Rows (name, OOF MAE, test MAE, OOF MAE in scenes of several animals, test MAE there) for
    each model, the ensemble and the median baseline; the labels name one animal each."""
    run_dir = pathlib.Path(run_dir)
    truth = pd.read_csv(run_dir / "data" / "test_labels.csv")
    train = pd.read_csv(run_dir / "data" / "train_labels.csv")
    scenes = pd.read_csv(run_dir / "data" / "scenes.csv")
    crowded = set(scenes.video_id[scenes.animals > 1])
    rows = []

    def add(name, oof, test):
        rows.append((name, *_mae(oof, crowded), *_mae(test, crowded)))

    for model_dir in model_dirs:
        oof = pd.read_csv(pathlib.Path(model_dir) / "oof.csv")
        test = pd.read_csv(pathlib.Path(model_dir) / "test_preds.csv").rename(columns={"pred": "distance"})
        add(pathlib.Path(model_dir).name, oof.assign(error=(oof.pred - oof.distance).abs()),
            _test_errors(test, truth))
    ensemble_oof = pd.read_csv(run_dir / "oof_ensemble.csv")
    add("ensemble", ensemble_oof.assign(error=(ensemble_oof.pred - ensemble_oof.distance).abs()),
        _test_errors(pd.read_csv(run_dir / "submission.csv"), truth))
    oof = pd.read_csv(pathlib.Path(model_dirs[0]) / "oof.csv")
    baseline = median_baseline_errors(oof)
    test_median = truth.assign(error=(truth.distance - train.distance.median()).abs())
    add("median baseline", baseline, test_median)
    return [(name, oof, test, oof_crowded, test_crowded)
            for name, oof, oof_crowded, test, test_crowded in rows]


def field_scores(run_dir):
    """Per deployment and over all: (deployment, animals, MAE uncalibrated, MAE calibrated, share
    of true distances inside the 80% interval before, after), from the survey's truth."""
    run_dir = pathlib.Path(run_dir)
    truth = pd.read_csv(run_dir / "survey" / "animals.csv")
    keys = ["video_id", "time", "detection"]
    scored = []
    for path in ("uncalibrated/animals.csv", "animals.csv"):
        rows = pd.read_csv(run_dir / "field" / path)
        merged = truth.merge(rows, on=keys, suffixes=("", "_pred"), validate="1:1")
        scored.append(merged.assign(
            error=(merged.distance - merged.distance_pred).abs(),
            inside=merged.distance.between(merged.distance_low, merged.distance_high)))
    before, after = scored
    table = []
    for name, mine in [*before.groupby("deployment_id").groups.items(), ("all", before.index)]:
        table.append((name, len(mine), before.error[mine].mean(), after.error[mine].mean(),
                      before.inside[mine].mean(), after.inside[mine].mean()))
    return table


def format_field(table):
    """The field scores' text; its last line the calibration's gain over all deployments."""
    lines = [f"{'deployment':<12} {'animals':>7} {'MAE before':>11} {'after':>6}  "
             f"{'80% interval holds before':>26} {'after':>6}"]
    lines += [f"{name:<12} {n:>7} {mae:>11.3f} {mae_after:>6.3f}  {inside:>26.0%} {inside_after:>6.0%}"
              for name, n, mae, mae_after, inside, inside_after in table]
    _, _, mae, mae_after, inside, inside_after = table[-1]
    lines.append(f"calibration: MAE {mae:.2f} -> {mae_after:.2f} m ({mae_after / mae:.2f} of "
                 f"uncalibrated); 80% intervals hold {inside:.0%} -> {inside_after:.0%} of the "
                 "true distances")
    return "\n".join(lines)


def format_table(rows):
    """The score table's text, and the ensemble's OOF MAE over the median baseline's."""
    lines = [f"{'':<18} {'all scenes':^19} {'scenes of 2-3 animals':^23}",
             f"{'model':<18} {'OOF MAE':>8} {'test MAE':>9}  {'OOF MAE':>10} {'test MAE':>10}"]
    lines += [f"{name:<18} {oof:>8.3f} {test:>9.3f}  {oof_c:>10.3f} {test_c:>10.3f}"
              for name, oof, test, oof_c, test_c in rows]
    ratio = rows[-2][1] / rows[-1][1]
    lines.append(f"ensemble / median baseline (OOF): {ratio:.2f}")
    return "\n".join(lines), ratio


def run_demo(run_dir="runs/demo", n_videos=100, seed=0, n_folds=3, presets=PRESETS, train_overrides=(),
             log=print):
    """Runs every stage (skipping those done) and returns the score rows, the ensemble/baseline
    ratio and the field scores (field_scores; None without the box preset)."""
    run_dir = os.path.abspath(run_dir)
    stages, model_dirs = commands(run_dir, n_videos=n_videos, seed=seed, n_folds=n_folds, presets=presets,
                                  train_overrides=train_overrides)
    start = time.time()
    for name, argv in stages:
        run_stage(name, argv, run_dir, log)
    rows = score_table(run_dir, model_dirs)
    table, ratio = format_table(rows)
    (pathlib.Path(run_dir) / "scores.txt").write_text(table + "\n")
    log(f"\n{table}")
    field = None
    if FIELD_PRESET in presets:
        field = field_scores(run_dir)
        text = format_field(field)
        (pathlib.Path(run_dir) / "field_scores.txt").write_text(text + "\n")
        log(f"\nfield survey at 3 new cameras (calibrated by 5 references each):\n{text}\n"
            f"outputs: {run_dir}/field/animals.csv, distance.csv, camtrap-dp/, calibration.json")
    log(f"\ndemo finished in {time.time() - start:.0f} s; outputs: {run_dir}/submission.csv, "
        f"{run_dir}/ensemble.png, {run_dir}/ensemble.json, models in {run_dir}/models")
    return rows, ratio, field


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m chimpact.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", default="runs/demo", help="Folder for everything the demo writes.")
    parser.add_argument("--n_videos", type=int, default=100, help="Synthetic videos (train and test).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic world.")
    parser.add_argument("--n_folds", type=int, default=3, help="Cross-validation folds.")
    parser.add_argument("--presets", default=",".join(PRESETS), help="Comma-separated training presets: "
                        "packaged names (run_train.py --preset=list) or flagfile paths.")
    parser.add_argument("--train_flags", default="",
                        help="Extra run_train.py flags after each preset, e.g. '--epochs=3' for a quick run.")
    args = parser.parse_args(argv)
    run_demo(args.run_dir, n_videos=args.n_videos, seed=args.seed, n_folds=args.n_folds,
             presets=tuple(args.presets.split(",")), train_overrides=tuple(shlex.split(args.train_flags)))
    return 0

