"""Greedy pairwise ensemble of trained models, fitted on their out-of-fold predictions.

Tables only: it imports neither TensorFlow nor Keras (remote paths go through chimpact.storage),
so ensemble.py starts in about a second.

The reference method: sort the members by OOF MAE, start from the best, and blend in each next
one as `c * current + (1 - c) * next` with the c on a grid that minimises the OOF MAE, keeping
c = 1 when no c beats the best score so far by more than rounding noise. The same coefficients
then combine the test predictions. Rows are matched by (video_id, time), never by position.
A member is a model (its predictions without TTA, or the mean of its TTA views), or one TTA
view of a model, as the reference allowed: always the same thing on the OOF and the test rows.
"""

import io
import json

import numpy as np
import pandas as pd

from chimpact import storage
from chimpact.data import labels
from chimpact.data.labels import KEYS
from chimpact.errors import InputError
from chimpact.training import model_folder
from chimpact.training.model_folder import OOF, OOF_TTA, TEST_PREDS

OOF_COLUMNS = KEYS + ["distance", "pred"]
TEST_COLUMNS = KEYS + ["pred"]
# What a member of a model is: its plain predictions, the mean of its TTA views, or each view.
TTA_MEMBERS = ("none", "mean", "views")
IDENTITY = "identity"
# A coefficient is kept only for an OOF MAE this much (relative) below the best so far: blending
# a model with a copy of itself "improves" the MAE by float rounding alone (about 1e-16).
NOISE = 1e-9
# Edges (metres) of the true-distance bands in the figure; the last band is open-ended.
BAND_EDGES = (0, 2, 4, 6, 8, 10, 15, 20, np.inf)


OOF_ENSEMBLE = "oof_ensemble.csv"  # video_id, time, distance, pred: the blend out of fold
BLENDS = ("search", "reference")
# The reference's published blend (its ensemble.py with --compute_weights=False): its 12 run
# folders sorted by name (their presets, in that order), the order of the greedy search over
# them, its coefficients and the label values its submission snapped to.
REFERENCE_PRESETS = ("down-a1p50-f7s1", "down-a1p50-f9s1", "down-a2p50-f7s1", "down-a2p80-f7s1",
                     "down-a1p80-f7s1", "down-a4p50-f7s1", "down-a4p50-f7s2", "full-a1p50-f7s1",
                     "full-a1p50-f9s1", "full-a2p50-f7s1", "full-a4p50-f7s1", "full-a4p50-f7s2")
REFERENCE_ORDER = (10, 9, 11, 5, 8, 7, 2, 0, 6, 1, 3, 4)
REFERENCE_COEFFICIENTS = (0.58, 0.72, 0.83, 0.81, 0.89, 0.87, 0.98, 0.88, 1.03, 1.07, 1.1)
REFERENCE_LABELS = (*np.arange(0.0, 8.5, 0.5), 9, 10, 11, 12, 13, 13.5, *range(14, 26))


def coef_grid(coef_min=0.0, coef_max=1.11, coef_step=0.01):
    """The coefficients coef_min, coef_min + step, ... up to coef_max inclusive.

    Counted in whole steps and rounded, so the reference's 0..1.11 by 0.01 (its
    np.arange(0, 1.11, 0.01)) is exactly 112 values ending at 1.11 (np.arange would drop or
    overshoot the end point by float error).
    """
    if coef_step <= 0 or coef_max < coef_min:
        raise InputError(
            f"--coef_min/--coef_max/--coef_step: need step > 0 and max >= min, "
            f"got {coef_min}:{coef_max}:{coef_step}")
    n = int(np.floor((coef_max - coef_min) / coef_step + 1e-9)) + 1
    return np.round(coef_min + coef_step * np.arange(n), 12)


def mae(pred, true):
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(true))))


def greedy_search(preds, true, grid):
    """Fits the greedy pairwise blend.

    preds: [rows, models] OOF predictions; true: [rows] distances; grid: candidate coefficients.
    Returns (order, coefficients): the model columns sorted by OOF MAE (stable for ties) and one
    coefficient per model after the first.
    """
    preds = np.asarray(preds, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)[:, None]
    scores = np.mean(np.abs(preds - true[:, None]), axis=0)
    order = [int(i) for i in np.argsort(scores, kind="stable")]
    current = preds[:, order[0]]
    best = mae(current, true)
    coefficients = []
    for column in order[1:]:
        blends = grid * current[None, :] + (1 - grid) * preds[None, :, column]
        maes = np.mean(np.abs(blends - true[None, :]), axis=1)
        i = int(np.argmin(maes))
        if maes[i] < best * (1 - NOISE):
            c, best = float(grid[i, 0]), float(maes[i])
            current = blends[i]
        else:
            c = 1.0
        coefficients.append(c)
    return order, coefficients


def combine(preds, order, coefficients):
    """Applies a fitted blend to [rows, models] predictions."""
    preds = np.asarray(preds, dtype=np.float64)
    current = preds[:, order[0]]
    for column, c in zip(order[1:], coefficients):
        current = c * current + (1 - c) * preds[:, column]
    return current


def model_weights(order, coefficients):
    """The weight of each model (in `order`) in the final blend: a product of the coefficients."""
    weights = [1.0]
    for c in coefficients:
        weights = [w * c for w in weights] + [1 - c]
    return weights


def snap_to_labels(pred, values):
    """Moves each prediction to the nearest of the label `values` (the lower one on a tie)."""
    values = np.unique(np.asarray(values, dtype=np.float64))
    pred = np.asarray(pred, dtype=np.float64)
    if len(values) == 1:
        return np.full_like(pred, values[0])
    upper = np.clip(np.searchsorted(values, pred), 1, len(values) - 1)
    lower = upper - 1
    take_upper = np.abs(values[upper] - pred) < np.abs(pred - values[lower])
    return np.where(take_upper, values[upper], values[lower])


def mae_by_band(pred, true, edges=BAND_EDGES):
    """MAE and row count per true-distance band [edges[i], edges[i+1])."""
    pred, true = np.asarray(pred), np.asarray(true)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (true >= lo) & (true < hi)
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"{lo:g}+"
        rows.append({"band": label, "rows": int(inside.sum()),
                     "mae": mae(pred[inside], true[inside]) if inside.any() else float("nan")})
    return pd.DataFrame(rows)


def _read_table(model_dir, name, columns):
    """A model's prediction table (all its columns) indexed by KEYS; InputError when it lacks
    `columns` or repeats a row."""
    path = storage.join(model_dir, name)
    table = storage.read_table(path, columns, absent=f"missing (run run_train.py / run_infer.py "
                                                      f"for {model_dir})")
    duplicated = table.duplicated(KEYS)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise InputError(f"{path}: duplicate row video_id={row.video_id} time={row.time}")
    return table.set_index(KEYS)


def _align(tables, model_dirs, name):
    """Checks that every table has the first one's keys; returns them reindexed to that order."""
    reference = tables[0].index
    aligned = [tables[0]]
    for table, model_dir in zip(tables[1:], model_dirs[1:]):
        missing = reference.difference(table.index, sort=False)
        extra = table.index.difference(reference, sort=False)
        if len(missing):
            video_id, time = missing[0]
            raise InputError(
                f"{storage.join(model_dir, name)}: lacks row video_id={video_id} time={time} "
                f"({len(missing)} missing) that {model_dirs[0]} has")
        if len(extra):
            video_id, time = extra[0]
            raise InputError(
                f"{storage.join(model_dir, name)}: has row video_id={video_id} time={time} "
                f"({len(extra)} extra) missing from {model_dirs[0]}")
        aligned.append(table.loc[reference])
    return reference, aligned


def _views(table, fixed):
    """The TTA view columns of a prediction table ([identity] when it was made without TTA)."""
    return [c for c in table.columns if c not in fixed] or [IDENTITY]


def _members(model_dir, oof, test, tta):
    """[(member name, OOF column, test column)] of one model under `tta` (TTA_MEMBERS)."""
    test_views = _views(test, ["pred"])
    if tta == "none":
        return [(model_dir, "pred", IDENTITY if IDENTITY in test.columns else "pred")]
    oof_views = _views(oof, ["distance", "fold", "pred"])
    if oof_views != test_views:
        raise InputError(f"{storage.join(model_dir, OOF_TTA)}: views {', '.join(oof_views)} but "
                         f"{TEST_PREDS} has {', '.join(test_views)}: run run_infer.py --oof and "
                         "--tfrec_dir with the same --tta")
    if tta == "mean":
        return [(model_dir, "pred", "pred")]
    column = {view: view if view in test.columns else "pred" for view in test_views}
    return [(f"{model_dir}[{view}]", column[view], column[view]) for view in test_views]


def read_predictions(model_dirs, tta="none"):
    """Reads and aligns every model's out-of-fold and test predictions.

    tta: none (oof.csv and the test predictions without TTA), mean (oof_tta.csv and
    test_preds.csv, both the mean of the same views) or views (each view a member).
    Returns (members, oof, oof_preds, test, test_preds): member names, key/distance frames in
    the first model's row order and [rows, members] prediction matrices.
    """
    if tta not in TTA_MEMBERS:
        raise InputError(f"--tta={tta}: expected one of {', '.join(TTA_MEMBERS)}")
    oof_name = OOF if tta == "none" else OOF_TTA
    oofs = [_read_table(d, oof_name, OOF_COLUMNS) for d in model_dirs]
    tests = [_read_table(d, TEST_PREDS, TEST_COLUMNS) for d in model_dirs]
    oof_keys, oofs = _align(oofs, model_dirs, oof_name)
    test_keys, tests = _align(tests, model_dirs, TEST_PREDS)
    distance = oofs[0]["distance"].to_numpy(dtype=np.float64)
    for table, model_dir in zip(oofs[1:], model_dirs[1:]):
        differs = np.flatnonzero(table["distance"].to_numpy(dtype=np.float64) != distance)
        if len(differs):
            video_id, time = oof_keys[differs[0]]
            raise InputError(
                f"{storage.join(model_dir, oof_name)}: distance at video_id={video_id} time={time} "
                f"differs from {model_dirs[0]} (models trained on different labels)")
    if np.isnan(distance).any():
        raise InputError(f"{storage.join(model_dirs[0], oof_name)}: has rows without a distance")
    members, oof_columns, test_columns = [], [], []
    for model_dir, oof_table, test_table in zip(model_dirs, oofs, tests):
        for name, oof_column, test_column in _members(model_dir, oof_table, test_table, tta):
            members.append(name)
            oof_columns.append(oof_table[oof_column].to_numpy(dtype=np.float64))
            test_columns.append(test_table[test_column].to_numpy(dtype=np.float64))
    oof = oof_keys.to_frame(index=False).assign(distance=distance)
    test = test_keys.to_frame(index=False)
    return members, oof, np.stack(oof_columns, axis=1), test, np.stack(test_columns, axis=1)


def plot(pred, true, path, title="ensemble OOF"):
    """Writes a PNG: predicted against true distance, and the MAE by true-distance band."""
    bands = mae_by_band(pred, true)
    # A bare Figure renders with Agg without touching pyplot's global backend; matplotlib loads
    # here, not with the module, so that ensemble.py --help answers at once.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    left, right = fig.subplots(1, 2)
    left.scatter(true, pred, s=6, alpha=0.4)
    top = float(max(np.max(true), np.max(pred), 1.0))
    left.plot([0, top], [0, top], color="black", linewidth=1)
    left.set(xlabel="true distance (m)", ylabel="predicted distance (m)",
             title=f"{title}, MAE {mae(pred, true):.3f} m")
    right.bar(bands["band"], bands["mae"])
    for x, (m, n) in enumerate(zip(bands["mae"], bands["rows"])):
        if n:
            right.annotate(f"n={n}", (x, m), ha="center", va="bottom", fontsize=8)
    right.set(xlabel="true distance band (m)", ylabel="MAE (m)", title="MAE by true distance")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    storage.atomic_write(path, buf.getvalue())


def mae_table(summary):
    """The printable table of MAEs from an ensemble summary."""
    lines = [f"{'member':<48} {'coef':>6} {'weight':>7} {'OOF MAE':>8}"]
    for i, model in enumerate(summary["models"]):
        coef = "" if i == 0 else f"{summary['coefficients'][i - 1]:.2f}"
        lines.append(f"{model:<48} {coef:>6} {summary['weights'][i]:>7.3f} "
                     f"{summary['model_oof_mae'][model]:>8.4f}")
    lines.append(f"{'ensemble':<48} {'':>6} {'':>7} {summary['oof_mae']:>8.4f}")
    lines.append(f"{'ensemble snapped to labels':<48} {'':>6} {'':>7} "
                 f"{summary['oof_mae_rounded']:>8.4f}")
    return "\n".join(lines)


def run_ensemble(model_dirs, out_dir, coef_min=0.0, coef_max=1.11, coef_step=0.01,
                 round_to_labels=False, submission_csv=None, tta="none"):
    """Fits the blend on the members' OOF rows and writes ensemble.json, submission.csv,
    oof_ensemble.csv and a figure.

    `tta` says what the members are (see read_predictions). submission.csv has the rows of
    test_preds.csv, or those of the `submission_csv` format table in its order when given.
    Returns the summary written to ensemble.json.
    """
    model_dirs = [str(d).rstrip("/") for d in model_dirs]
    if not model_dirs:
        raise InputError("--model_dirs: give at least one model directory")
    if len(set(model_dirs)) != len(model_dirs):
        raise InputError(f"--model_dirs: a directory is listed twice: {','.join(model_dirs)}")
    grid = coef_grid(coef_min, coef_max, coef_step)
    members, oof, oof_preds, test, test_preds = read_predictions(model_dirs, tta)
    true = oof["distance"].to_numpy()
    label_values = np.unique(true)
    order, coefficients = greedy_search(oof_preds, true, grid)
    blended = combine(oof_preds, order, coefficients)
    snapped = snap_to_labels(blended, label_values)
    submission = combine(test_preds, order, coefficients)
    if round_to_labels:
        submission = snap_to_labels(submission, label_values)
    summary = {
        "models": [members[i] for i in order],
        "tta": tta,
        "coefficients": coefficients,
        "weights": model_weights(order, coefficients),
        "model_oof_mae": {m: mae(oof_preds[:, i], true) for i, m in enumerate(members)},
        "oof_mae": mae(blended, true),
        "oof_mae_rounded": mae(snapped, true),
        "round_to_labels": bool(round_to_labels),
        "grid": {"coef_min": coef_min, "coef_max": coef_max, "coef_step": coef_step},
        "oof_rows": len(oof),
        "test_rows": len(test),
    }
    table = test.assign(distance=submission)
    if submission_csv:
        table = labels.fill_submission(submission_csv, table.rename(columns={"distance": "pred"}))
    storage.makedirs(out_dir)
    storage.write_csv(table, storage.join(out_dir, "submission.csv"))
    storage.write_csv(oof[["video_id", "time", "distance"]].assign(pred=blended),
                      storage.join(out_dir, OOF_ENSEMBLE))
    if round_to_labels:
        plot(snapped, true, storage.join(out_dir, "ensemble.png"), "ensemble OOF snapped to labels")
    else:
        plot(blended, true, storage.join(out_dir, "ensemble.png"))
    storage.atomic_write(storage.join(out_dir, "ensemble.json"),
                         json.dumps(summary, indent=2) + "\n")
    return summary


def reference_weights(presets):
    """{preset: weight} of the reference's published blend over the configurations `presets`
    (model_weights of its order and coefficients; those absent dropped and the rest scaled to
    sum to 1, so that all 12 give exactly its blend)."""
    unknown = sorted(set(presets) - set(REFERENCE_PRESETS))
    if unknown:
        raise InputError(f"--blend=reference: {unknown[0]} is not one of the reference's 12 "
                         "configurations (import them with chimpact import)")
    order = [REFERENCE_PRESETS[i] for i in REFERENCE_ORDER]
    weights = dict(zip(order, model_weights(REFERENCE_ORDER, REFERENCE_COEFFICIENTS)))
    total = sum(weights[p] for p in presets)
    return {p: weights[p] / total for p in presets}


def run_reference_blend(model_dirs, out_dir, round_to_labels=False, submission_csv=None):
    """Blends imported reference models' test predictions with the reference's published
    weights (reference_weights), where no out-of-fold predictions exist to fit a blend on;
    writes ensemble.json and submission.csv. Returns the summary."""
    model_dirs = [str(d).rstrip("/") for d in model_dirs]
    presets = [model_folder.read_config(d).get("preset") for d in model_dirs]
    for model_dir, preset in zip(model_dirs, presets):
        if preset is None:
            raise InputError(f"--model_dirs={model_dir}: not an imported reference model "
                             "(config.json names no preset): --blend=reference blends those")
    if len(set(presets)) != len(presets):
        raise InputError(f"--model_dirs: {next(p for p in presets if presets.count(p) > 1)} "
                         "is given twice")
    weights = reference_weights(presets)
    tests = [_read_table(d, TEST_PREDS, TEST_COLUMNS) for d in model_dirs]
    keys, tests = _align(tests, model_dirs, TEST_PREDS)
    blend = sum(weights[p] * t["pred"].to_numpy(dtype=np.float64)
                for p, t in zip(presets, tests))
    if round_to_labels:
        blend = snap_to_labels(blend, REFERENCE_LABELS)
    table = keys.to_frame(index=False).assign(distance=blend)
    if submission_csv:
        table = labels.fill_submission(submission_csv, table.rename(columns={"distance": "pred"}))
    summary = {"blend": "reference", "models": model_dirs, "presets": presets,
               "weights": [weights[p] for p in presets], "round_to_labels": bool(round_to_labels),
               "test_rows": len(table)}
    storage.makedirs(out_dir)
    storage.write_csv(table, storage.join(out_dir, "submission.csv"))
    storage.atomic_write(storage.join(out_dir, "ensemble.json"),
                         json.dumps(summary, indent=2) + "\n")
    return summary
