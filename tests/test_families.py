"""The three model families (cnn_lstm, stacked, single) through training, records inference, raw
frames and the export; the stem adaptation; the info-bar crop; pseudo-labels; site folds; the
fold/view median; the three-family ensemble."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from chimpact import ensemble, storage
from chimpact.data import frames, packing, records
from chimpact.errors import InputError
from chimpact.predict import infer
from chimpact.predict.jobs import run_infer
from chimpact.training import crop, model, model_folder, pipeline, pseudo, step, train
from model_checks import built_once, finish, start_python, untrained_model_folder
from sequence_records import write_records

IMAGE_SIZE = (32, 48)  # non-square, as the 16:9 presets; EfficientNets need 32 rows
CROP = 0.25  # 8 of the 32 rows
FAMILY_SETTINGS = {  # what each family's preset changes besides the family
    "cnn_lstm": dict(volume_size=3),  # the default 7 is more than the 5 frames stored
    "stacked": dict(frame_fill="zero", optimizer="adamw", weight_decay=0.01, schedule="cosine"),
    "single": dict(loss="huber", crop_bottom=CROP),
}


def _build_world(base):
    write_records(base / "train", examples_per_fold=(8, 8), image_size=IMAGE_SIZE, seed=3)
    write_records(base / "test", examples_per_fold=(6,), image_size=IMAGE_SIZE, seed=4,
                  subset="test")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """(train records with 2 folds, test records): IMAGE_SIZE frames, 5 per example."""
    base = built_once(tmp_path_factory, "families-world", _build_world)
    return str(base / "train"), str(base / "test")


@pytest.fixture(scope="session")
def trained(world, tmp_path_factory):
    """{family: model folder}: each family trained one epoch under XLA, the tiny backbone,
    its test records predicted and exported; once per test run, whichever worker asks first."""
    train_dir, test_dir = world

    def build(base):
        for family, settings in FAMILY_SETTINGS.items():
            out = str(base / family)
            train.train(train_dir, out, family=family, backbone="tiny", weights="none",
                        lstm_units=16, dense_units=16, epochs=1, batch_size=4, lr=3e-3,
                        jit_compile=True, verbose=0, **settings)
            run_infer(out, tfrec_dir=test_dir, export_dir=f"{out}/export",
                           jit_compile=True)

    base = built_once(tmp_path_factory, "family-models", build)
    return {family: str(base / family) for family in FAMILY_SETTINGS}


# The first family is marked slow, so that it builds `trained` early in the run and the tests
# that share it find it built instead of waiting.
@pytest.mark.parametrize("family", [pytest.param(family, marks=pytest.mark.slow) if i == 0
                                    else family for i, family in enumerate(FAMILY_SETTINGS)])
def test_each_family_trains_predicts_every_example_once_and_exports(family, world, trained):
    train_dir, test_dir = world
    out = trained[family]
    config = model_folder.read_config(out)
    assert config["family"] == family and config["xla"] is True
    assert config["volume_size"] == FAMILY_SETTINGS[family].get("volume_size",
                                                                model.FAMILIES[family])
    oof = storage.read_csv(f"{out}/oof.csv", dtype={"video_id": str})
    assert sorted(oof.video_id) == sorted(pipeline.read_keys(train_dir).video_id)
    assert np.isfinite(oof.pred).all()
    preds = storage.read_csv(f"{out}/test_preds.csv", dtype={"video_id": str})
    keys = pipeline.read_keys(test_dir)
    assert list(preds.video_id) == list(keys.video_id)
    # The export takes the frames at image_size, clamped or black past the ends as the family
    # was trained, and cuts the crop itself: it repeats test_preds.
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        test_dir, None, config["volume_size"], batch_size=6,
        fill=config["frame_fill"]).as_numpy_iterator()])
    assert sequences.shape[1:] == (config["volume_size"], *IMAGE_SIZE, 3)
    exported = tf.saved_model.load(f"{out}/export")
    served = exported.serve(sequences).numpy()[:, 0]
    np.testing.assert_allclose(served, preds.pred, atol=1e-4)
    info = json.loads(storage.read_text(f"{out}/export/{infer.EXPORT_INFO}"))
    assert info["family"] == family and info["crop_bottom"] == config["crop_bottom"]
    # Reloaded folds predict what training's out-of-fold pass did.
    fold_models = model.load_fold_models(out)
    first = oof[oof.fold == 0]
    again = pipeline.predict(fold_models[0], train_dir, [0], config["volume_size"],
                             config["image_size"], 4, crop_bottom=config["crop_bottom"],
                             fill=config["frame_fill"])
    np.testing.assert_allclose(again.set_index("video_id").loc[first.video_id].pred,
                               first.pred, atol=1e-4)


def test_info_bar_crop_removes_the_same_rows_on_every_path(world, trained):
    train_dir, _ = world
    out = trained["single"]
    config = model_folder.read_config(out)
    kept = crop.kept_rows(IMAGE_SIZE[0], CROP)
    assert kept == 24 and model.input_size(config) == (24, IMAGE_SIZE[1])
    manifest = records.read_manifest(train_dir)
    serialized = next(iter(tf.data.TFRecordDataset(manifest.shard_paths(train_dir))))
    full = pipeline.make_loader(manifest, 1)(serialized)["frames"].numpy()
    # records (training, validation, test records): the loader
    cut = pipeline.make_loader(manifest, 1, crop_bottom=CROP)(serialized)["frames"].numpy()
    np.testing.assert_array_equal(cut, full[:, :kept])
    batches = pipeline.make_train_dataset(train_dir, [0], 1, batch_size=4, crop_bottom=CROP)
    assert next(iter(batches))[0].shape == (4, 1, kept, IMAGE_SIZE[1], 3)
    # raw videos and detections: infer.model_inputs
    np.testing.assert_array_equal(infer.model_inputs(config, full[None]), full[None, :, :kept])
    # the export: the bar's pixels do not matter, the rest does
    exported = tf.saved_model.load(f"{out}/export")
    barred = full[None].copy()
    barred[:, :, kept:] = 255 - barred[:, :, kept:]
    np.testing.assert_allclose(exported.serve(barred).numpy(), exported.serve(full[None]).numpy(),
                               atol=1e-6)
    predictor, _ = infer.load_predictor(out)
    np.testing.assert_allclose(exported.serve(full[None]).numpy(),
                               predictor.predict(full[None, :, :kept], verbose=0), atol=1e-5)
    # boxes follow: y in 0..1 of the kept rows
    box = np.array([[0.1, 0.3, 0.5, 0.9, 1.0]], np.float32)
    np.testing.assert_allclose(crop.crop_box(box, 32, CROP), [[0.1, 0.4, 0.5, 1.0, 1.0]],
                               atol=1e-6)


def test_stem_adaptation_keeps_what_the_pretrained_stem_computes(tmp_path):
    """The 15-channel stem on five copies of a frame equals the 3-channel stem on the frame."""
    keras.utils.set_random_seed(0)
    source = model.make_backbone("efficientnet_b0", (32, 32), "none", pooling=None)
    # a pretrained-like network: weights and normalisation statistics that are not the defaults
    source.set_weights([np.random.default_rng(i).normal(0.5, 0.3, w.shape).astype(np.float32)
                        if "normalization" in w.path else w.numpy()
                        for i, w in enumerate(source.weights)])
    path = str(tmp_path / "b0.weights.h5")
    source.save_weights(path)
    three = model.make_backbone("efficientnet_b0", (32, 32), path, pooling=None)
    fifteen = model.make_backbone("efficientnet_b0", (32, 32), path, pooling=None, channels=15)
    assert fifteen.get_layer("stem_conv").kernel.shape == (3, 3, 15, 32)
    frame = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    stem = lambda network: keras.Model(network.input,  # noqa: E731
                                       network.get_layer("stem_activation").output)
    expected = np.asarray(stem(three)(frame))
    adapted = np.asarray(stem(fifteen)(np.concatenate([frame] * 5, axis=-1)))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(adapted, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(fifteen(np.concatenate([frame] * 5, axis=-1))),
                               np.asarray(three(frame)), rtol=1e-3, atol=1e-4)
    # the tiny backbone's first convolution too, from its weights file
    tiny = model.make_backbone("tiny", (16, 16), "none")
    tiny.save_weights(str(tmp_path / "tiny.weights.h5"))
    stacked = model.make_backbone("tiny", (16, 16), str(tmp_path / "tiny.weights.h5"),
                                  channels=9)
    small = frame[:, :16, :16]
    np.testing.assert_allclose(np.asarray(stacked(np.concatenate([small] * 3, axis=-1))),
                               np.asarray(tiny(small)), rtol=1e-4, atol=1e-5)


# With EfficientNet-B0, the stacked family alone: its 15-channel stem is what a real backbone
# changes (test_stem_adaptation_keeps_what_the_pretrained_stem_computes); the single family
# puts B0 on one frame as cnn_lstm does on each (B0 + LSTM is test_reference_import's), and its
# own layers (crop, huber) train, predict and export with the tiny backbone above.
@pytest.mark.slow
@pytest.mark.parametrize("family", ["stacked"])
def test_efficientnet_families_train_predict_and_export(family, world, tmp_path):
    train_dir, test_dir = world
    out = str(tmp_path / family)
    scores = train.train(train_dir, out, family=family, backbone="efficientnet_b0",
                         weights="none", dense_units=8, folds=[0], epochs=1, batch_size=8,
                         verbose=0)
    assert np.isfinite(scores["overall"]["mae"])
    run_infer(out, tfrec_dir=test_dir, export_dir=f"{out}/export")
    config = model_folder.read_config(out)
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        test_dir, None, config["volume_size"], batch_size=6).as_numpy_iterator()])
    exported = tf.saved_model.load(f"{out}/export")
    served = exported.serve(sequences).numpy()[:, 0]
    preds = storage.read_csv(f"{out}/test_preds.csv")
    np.testing.assert_allclose(served, preds.pred, atol=1e-4)


def test_three_families_blend_is_their_weighted_sum_on_both_sides(trained, tmp_path):
    """The ensemble's OOF rows and submission are the members' predictions, matched by video and
    second, times the weights ensemble.json reports (computed here apart)."""
    summary = ensemble.run_ensemble(list(trained.values()), str(tmp_path / "blend"))
    assert sorted(summary["model_oof_mae"]) == sorted(trained.values())
    keys = ["video_id", "time"]
    oof = storage.read_csv(str(tmp_path / "blend" / ensemble.OOF_ENSEMBLE), dtype={"video_id": str})
    submission = storage.read_csv(str(tmp_path / "blend" / "submission.csv"),
                                  dtype={"video_id": str})
    for table, name in ((oof, model_folder.OOF), (submission, model_folder.TEST_PREDS)):
        blend = sum(weight * table[keys].merge(storage.read_csv(
            f"{folder}/{name}", dtype={"video_id": str}), on=keys).pred.to_numpy()
                    for folder, weight in zip(summary["models"], summary["weights"]))
        column = "pred" if name == model_folder.OOF else "distance"
        np.testing.assert_allclose(table[column], blend, atol=1e-6)
    assert summary["oof_mae"] == pytest.approx((oof.pred - oof.distance).abs().mean())
    for folder, mae in summary["model_oof_mae"].items():
        member = storage.read_csv(f"{folder}/{model_folder.OOF}")
        assert mae == pytest.approx((member.pred - member.distance).abs().mean())


def test_median_over_folds_and_views(trained, world):
    _, test_dir = world
    out = trained["cnn_lstm"]
    each, _ = infer.load_predictor(out, tta=3, per_fold=True)
    median, _ = infer.load_predictor(out, tta=3, aggregate="median")
    sequences = np.concatenate([frames for frames, _, _ in pipeline.make_eval_dataset(
        test_dir, None, 3, batch_size=6).as_numpy_iterator()])
    per_fold = each.predict(sequences, verbose=0)  # [n, views, folds]
    np.testing.assert_allclose(median.predict(sequences, verbose=0),
                               np.median(per_fold, axis=2), atol=1e-5)
    # as a TPU compiles it
    compiled, _ = infer.load_predictor(out, tta=3, aggregate="median", jit_compile=True)
    np.testing.assert_allclose(compiled.predict(sequences, verbose=0),
                               np.median(per_fold, axis=2), atol=1e-5)
    assert compiled.jit_compile is True
    config = model_folder.read_config(out)
    table = infer.predict_records(median, config, test_dir, batch_size=6)
    np.testing.assert_allclose(table.pred, np.median(np.median(per_fold, axis=2), axis=1),
                               atol=1e-5)
    with pytest.raises(InputError, match="--aggregate=max"):
        infer.load_predictor(out, aggregate="max")


def test_pseudo_labels_join_every_fold_s_training(world, tmp_path):
    train_dir, test_dir = world
    keys = pipeline.read_keys(test_dir)
    table = keys.iloc[:4][["video_id", "time"]].assign(distance=77.0)
    table.to_csv(tmp_path / "pseudo.csv", index=False)
    labels = pseudo.read_pseudo_labels(str(tmp_path / "pseudo.csv"), test_dir, train_dir)
    dataset = pipeline.make_train_dataset(train_dir, [1], 3, batch_size=4, pseudo=labels)
    distances = np.concatenate([d for _, d in dataset.as_numpy_iterator()])
    train_distances = pipeline.read_keys(train_dir, [1]).distance
    assert len(distances) == len(train_distances) + 4
    assert (distances == 77.0).sum() == 4
    np.testing.assert_array_equal(np.sort(distances[distances != 77.0]), np.sort(train_distances))
    # through training: the folder records them, every fold's OOF rows are its own
    out = str(tmp_path / "model")
    train.train(train_dir, out, backbone="tiny", weights="none", volume_size=3, lstm_units=8,
                dense_units=8, epochs=1, batch_size=4, verbose=0,
                pseudo_labels_csv=str(tmp_path / "pseudo.csv"), pseudo_tfrec_dir=test_dir)
    config = model_folder.read_config(out)
    assert config["pseudo_examples"] == 4 and config["pseudo_labels_sha256"]
    oof = storage.read_csv(f"{out}/oof.csv")
    assert len(oof) == 16 and 77.0 not in set(oof.distance)


def test_pseudo_labels_on_training_examples_are_refused(world, tmp_path):
    """A fold validates on its own rows of the training records, read without pseudo-labels
    (make_eval_dataset takes none): a pseudo-label reaches a validation second only as a test
    example with the key of a training one, the same video and second in both records. Such a
    table is refused before any training."""
    train_dir, _ = world
    same = str(tmp_path / "same")
    packing.create_records(f"{train_dir}-frames", f"{train_dir}-labels.csv", same,
                           subset="test", frames_per_side=2, progress=False)
    rows = pd.concat([pipeline.read_keys(same).query("video_id.str.startswith('f1')").iloc[:1],
                      pipeline.read_keys(train_dir, [0]).iloc[:2]])[["video_id", "time"]]
    rows.assign(distance=77.0).to_csv(tmp_path / "pseudo.csv", index=False)
    with pytest.raises(InputError, match=rf"line 2: video_id={rows.iloc[0].video_id} time=2 is "
                                         rf"also a training example of {train_dir}.*3 such rows"):
        pseudo.read_pseudo_labels(str(tmp_path / "pseudo.csv"), same, train_dir)
    with pytest.raises(InputError, match="also a training example"):
        train.train(train_dir, str(tmp_path / "model"), backbone="tiny", weights="none",
                    volume_size=3, pseudo_labels_csv=str(tmp_path / "pseudo.csv"),
                    pseudo_tfrec_dir=same)
    assert not (tmp_path / "model").exists()


def test_pseudo_label_rows_must_be_test_records_rows(world, tmp_path):
    train_dir, test_dir = world
    rows = pd.DataFrame({"video_id": ["t000.mp4", "nowhere.mp4"], "time": [2, 2],
                         "distance": [3.0, 4.0]})
    rows.to_csv(tmp_path / "pseudo.csv", index=False)
    with pytest.raises(InputError, match=r"line 3: video_id=nowhere.mp4 time=2 is not in the "
                                         r"test records"):
        pseudo.read_pseudo_labels(str(tmp_path / "pseudo.csv"), test_dir, train_dir)
    with pytest.raises(InputError, match="holds train records"):
        pseudo.read_pseudo_labels(str(tmp_path / "pseudo.csv"), train_dir, train_dir)
    with pytest.raises(InputError, match="needs --pseudo_tfrec_dir"):
        pseudo.read_pseudo_labels(str(tmp_path / "pseudo.csv"), None, train_dir)


def _fold_likeness(folds, bins):
    """The largest total variation distance between a fold's distance-bin shares and the whole's."""
    whole = np.bincount(bins) / len(bins)
    return max(0.5 * np.abs(np.bincount(bins[folds == f], minlength=len(whole))
                            / np.sum(folds == f) - whole).sum() for f in np.unique(folds))


def test_site_folds_stratified_by_distance():
    # 60 sites whose cameras see animals at their own typical distances, as real sites do
    rng = np.random.default_rng(0)
    site_of_row = rng.integers(0, 60, 6000)
    typical = rng.uniform(2, 20, 60)
    distances = np.round(np.clip(rng.normal(typical[site_of_row], 2.0), 0, 25) * 2) / 2
    sites = np.array([f"site{s}" for s in site_of_row])
    bins = packing.distance_bins(distances)
    plain = packing.assign_folds(sites, 5)
    stratified = packing.assign_folds(sites, 5, distances)
    for folds in (plain, stratified):
        assert pd.Series(folds).groupby(sites).nunique().max() == 1  # no site in two folds
    assert _fold_likeness(stratified, bins) < 0.1
    assert _fold_likeness(stratified, bins) < 0.6 * _fold_likeness(plain, bins)


def test_real_site_folds_stratified(shared_dir):
    data = shared_dir / "data" / "deep-chimpact"
    labels = pd.read_csv(data / "train_labels.csv")
    sites = labels.video_id.map(packing.read_sites(str(data / "train_metadata.csv"),
                                                   labels.video_id))
    folds = packing.assign_folds(sites, 5, labels.distance)
    assert pd.Series(folds).groupby(sites.to_numpy()).nunique().max() == 1
    # measured: at most 0.027 of the rows' distance bins differ from the whole's per fold
    # (0.147 without --stratify)
    assert _fold_likeness(folds, packing.distance_bins(labels.distance)) < 0.05


@pytest.mark.slow
def test_create_tfrecords_stratified_site_folds_on_the_real_tables(shared_dir, tmp_path):
    """create_tfrecords.py --group_by=site --stratify on the challenge's train_labels.csv and
    train_metadata.csv: a frames folder holding each labelled second's frame (8x8, one picture),
    packed by the script with one frame per example."""
    data = shared_dir / "data" / "deep-chimpact"
    labels = pd.read_csv(data / "train_labels.csv")
    frames_dir = tmp_path / "frames"
    jpeg = frames.encode_jpeg(np.full((8, 8, 3), 128, np.uint8), 95)
    rows = []
    for video_id, times in labels.groupby("video_id").time:
        (frames_dir / video_id).mkdir(parents=True)
        for t in times:
            (frames_dir / video_id / frames.frame_name(int(t))).write_bytes(jpeg)
        rows.append({"video_id": video_id, "n_frames": int(times.max()) + 1, "width": 8,
                     "height": 8, "fps": 1.0, "duration_s": times.max() + 1.0,
                     "gamma_corrected": False, "status": "ok", "error": "", "settings": "",
                     "labels_csv": ""})
    pd.DataFrame(rows, columns=frames.MANIFEST_COLUMNS).to_csv(frames_dir / frames.MANIFEST,
                                                               index=False)
    out = tmp_path / "records"
    finish(start_python(["create_tfrecords.py", f"--frames_dir={frames_dir}",
                         f"--labels_csv={data / 'train_labels.csv'}", f"--out_dir={out}",
                         "--frames_per_side=0", "--n_folds=5", "--group_by=site", "--stratify",
                         f"--metadata_csv={data / 'train_metadata.csv'}", "--shards=1"]))
    manifest = records.read_manifest(str(out))
    keys = pipeline.read_keys(str(out))
    assert manifest.examples == len(keys) == len(labels)
    sites = keys.video_id.map(packing.read_sites(str(data / "train_metadata.csv"), keys.video_id))
    assert keys.groupby(sites.to_numpy()).fold.nunique().max() == 1  # no site in two folds
    # each fold's distance histogram (the manifest's) is the whole's, as assign_folds measured
    # (at most 0.027 of a fold's rows in other distance bins; 0.147 without --stratify)
    counted = [(fold, float(d), n) for fold, counts in manifest.distance_counts.items()
               for d, n in counts.items()]
    folds = np.repeat([f for f, _, _ in counted], [n for _, _, n in counted])
    distances = np.repeat([d for _, d, _ in counted], [n for _, _, n in counted])
    assert sorted(distances) == sorted(labels.distance)
    assert _fold_likeness(folds, packing.distance_bins(distances)) < 0.05
    assert _fold_likeness(keys.fold.to_numpy(), packing.distance_bins(keys.distance)) < 0.05


def test_optimizer_schedule_and_loss_settings():
    settings = {"lr": 1e-3, "schedule": "cosine", "epochs": 4, "optimizer": "adamw",
                "weight_decay": 5e-6}
    optimizer = step.make_optimizer(settings, steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == 5e-6
    schedule = optimizer._learning_rate
    assert [round(float(schedule(step)), 7) for step in (0, 20, 40)] == [1e-3, 5e-4, 0.0]
    plain = step.make_optimizer({**settings, "schedule": "plateau", "optimizer": "adam"}, 10)
    assert type(plain) is keras.optimizers.Adam
    assert float(plain.learning_rate) == pytest.approx(1e-3)
    huber = step.make_loss("huber")
    errors = huber(np.array([[0.0], [0.0]]), np.array([[0.5], [3.0]]))
    assert float(errors) == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


def test_stacked_box_model_with_crop_compiles_with_xla_and_exports(tmp_path):
    """A box model of the stacked family with an info-bar crop: the fold average and the export
    under jit_compile=True give what the uncompiled fold average gives on the cut frames and
    rescaled boxes."""
    config = dict(family="stacked", backbone="tiny", weights="none", volume_size=3,
                  image_size=list(IMAGE_SIZE), crop_bottom=CROP, frame_fill="zero",
                  use_boxes=True, lstm_units=4, dense_units=4, frames_per_side=1, step=1,
                  n_folds=2, folds=[0, 1])
    (tmp_path / "model").mkdir()
    out = untrained_model_folder(tmp_path / "model", config)
    rng = np.random.default_rng(5)
    sequences = rng.integers(0, 256, (4, 3, *IMAGE_SIZE, 3), dtype=np.uint8)
    box = np.array([[0.1, 0.2, 0.5, 0.9, 1.0]] * 3 + [[0.0, 0.0, 1.0, 1.0, 0.0]], np.float32)
    # by hand: the bottom 8 of 32 rows cut, the boxes' y in 0..1 of the 24 rows left (clipped),
    # each fold's network on the frames and on the frames flipped left-right with the boxes
    cut = sequences[:, :, :24]
    scaled = np.minimum(box * np.array([1, 32 / 24, 1, 32 / 24, 1], np.float32), 1.0)
    flipped = np.stack([1 - scaled[:, 2], scaled[:, 1], 1 - scaled[:, 0], scaled[:, 3],
                        scaled[:, 4]], 1)
    views = ((cut, scaled), (np.ascontiguousarray(cut[:, :, :, ::-1]), flipped))
    expected = np.mean([network.predict({"frames": frames, "box": moved}, verbose=0)[:, 0]
                        for network in model.load_fold_models(out).values()
                        for frames, moved in views], axis=0)
    plain, folder = infer.load_predictor(out, tta=2, jit_compile=False)
    np.testing.assert_allclose(
        plain.predict(infer.model_inputs(folder, sequences, box), verbose=0).mean(axis=1),
        expected, atol=1e-5)
    compiled, _ = infer.load_predictor(out, tta=2, jit_compile=True)
    np.testing.assert_allclose(
        compiled.predict(infer.model_inputs(folder, sequences, box), verbose=0).mean(axis=1),
        expected, atol=1e-5)
    infer.export(compiled, folder, str(tmp_path / "export"), jit_compile=True)
    exported = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(exported.serve(sequences, box).numpy()[:, 0], expected, atol=1e-5)
