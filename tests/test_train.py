"""Training on generated records: learning, outputs, resume, and the distribution strategies."""

import dataclasses
import json
import socket
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from absl import flags

from chimpact import storage
from chimpact.data import records
from chimpact.errors import InputError
from chimpact.training import checkpoint, model, model_folder, pipeline, step, train
from model_checks import ROOT, TINY, TINY_FLAGS, finish, start_python
from script_flags import define_flags
from sequence_records import write_records


def read_csv(path):
    with tf.io.gfile.GFile(path) as f:
        return pd.read_csv(f)


@pytest.mark.slow
def test_tiny_backbone_learns_and_writes_the_model_folder(tmp_path, caplog):
    manifest = dataclasses.replace(
        write_records(tmp_path / "rec", (60, 60), shards_per_fold=2),
        frames={"fps": 1.0, "gamma": "off", "gamma_value": 0.1, "white_threshold": 250,
                "white_ratio": 0.2, "labelled": True, "labels_csv": "labels.csv", "videos": 120,
                "other_videos": 0})
    records.write_manifest(str(tmp_path / "rec"), manifest)
    out_dir = "ram://learn/model"
    scores = train.train(tmp_path / "rec", out_dir, folds=[0], epochs=8, batch_size=8, lr=1e-2,
                         aug="a1", aug_prob=0.3, verbose=0, **TINY)

    oof = read_csv(storage.join(out_dir, "oof.csv"))
    assert list(oof.columns) == ["video_id", "time", "distance", "pred", "fold"]
    assert sorted(oof.video_id) == [f"f0v{i:03d}.mp4" for i in range(60)]
    train_keys = pipeline.read_keys(tmp_path / "rec", [1])
    baseline = np.abs(oof.distance - train_keys.distance.median()).mean()
    mae = np.abs(oof.pred - oof.distance).mean()
    assert mae < 0.75 * baseline, (mae, baseline)
    assert scores["folds"]["0"]["mae"] == pytest.approx(mae)
    assert json.loads(storage.read_text(storage.join(out_dir, "scores.json"))) == scores

    config = model_folder.read_config(out_dir)
    assert config["folds"] == [0] and config["image_size"] == list(manifest.image_size)
    assert (config["frames_per_side"], config["step"]) == (2, 1)
    assert config["frames"] == manifest.frames
    history = read_csv(storage.join(out_dir, "fold0", "history.csv"))
    assert list(history.epoch) == list(range(8))
    assert history.val_loss.min() == pytest.approx(mae, rel=1e-4)

    fold_model = model.load_fold_models(out_dir)[0]
    again = pipeline.predict(fold_model, tmp_path / "rec", [0], 3, batch_size=7)
    np.testing.assert_allclose(again.pred, oof.pred, rtol=1e-4, atol=1e-4)

    caplog.set_level("INFO")
    train.train(tmp_path / "rec", out_dir, folds=[0], epochs=8, batch_size=8, lr=1e-2,
                aug="a1", aug_prob=0.3, verbose=0, **TINY)
    assert "fold 0: already trained, skipped" in caplog.messages


def test_each_fold_trains_on_the_other_folds_alone(tmp_path, monkeypatch):
    write_records(tmp_path / "rec", (4, 5, 6))
    read = {}
    make_train_dataset = pipeline.make_train_dataset

    def recorded(tfrec_dir, folds, *args, **kwargs):
        dataset = make_train_dataset(tfrec_dir, folds, *args, **kwargs)
        read[tuple(folds)] = np.sort(np.concatenate([d for _, d in dataset.as_numpy_iterator()]))
        return dataset

    monkeypatch.setattr(pipeline, "make_train_dataset", recorded)
    # lr 0: every fold keeps the output bias it starts from, its training folds' median distance
    train.train(tmp_path / "rec", tmp_path / "model", epochs=1, batch_size=4, lr=0.0,
                output_bias="median", verbose=0, **TINY)
    assert sorted(read) == [(0, 1), (0, 2), (1, 2)]
    for folds, distances in read.items():
        np.testing.assert_array_equal(
            distances, np.sort(pipeline.read_keys(tmp_path / "rec", list(folds)).distance))
    for fold, network in model.load_fold_models(str(tmp_path / "model")).items():
        others = [f for f in range(3) if f != fold]
        assert float(network.get_layer("distance").bias[0]) == pytest.approx(
            np.median(pipeline.read_keys(tmp_path / "rec", others).distance))
    oof = read_csv(tmp_path / "model" / "oof.csv")
    assert oof.groupby("fold").size().to_dict() == {0: 4, 1: 5, 2: 6}


@pytest.mark.parametrize("precision", ["none", "mixed_float16"])
def test_the_optimizer_is_built_before_the_first_step_and_a_restore_adds_nothing(precision):
    """Adam's moments exist when the model is compiled (created inside the first traced step,
    they cost B0 20 s); restoring a checkpoint into it adds no second loss scale."""
    settings = dict(TINY, image_size=[32, 32], crop_bottom=0.0, use_boxes=False,
                    family="cnn_lstm", lr=1e-3, schedule="plateau", optimizer="adam",
                    weight_decay=0.0, epochs=1, loss="mae", mixed_precision=precision,
                    jit_compile=False, input_scaling="imagenet")
    network = step.compiled_model(settings, steps_per_epoch=1)
    names = [v.path.rsplit("/", 1)[-1] for v in network.optimizer.variables]
    trainable = len(network.trainable_variables)
    assert sum(name.endswith("_momentum") for name in names) == trainable
    assert sum(name.endswith("_velocity") for name in names) == trainable
    saved = {f"{prefix}/{i:05d}": keras.ops.convert_to_numpy(v) for prefix, variables in
             (("model", network.variables), ("optimizer", network.optimizer.variables))
             for i, v in enumerate(variables)}
    checkpoint.restore(network, saved, "checkpoint.npz")
    assert [v.path.rsplit("/", 1)[-1] for v in network.optimizer.variables] == names
    assert names.count("dynamic_scale") == (precision == "mixed_float16")


def test_learning_rate_halves_after_three_epochs_without_improvement():
    network = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    network.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae")

    def rates(halving, losses):
        halving.set_model(network)
        network.optimizer.learning_rate = 1e-2
        out = []
        for loss in losses:
            halving.on_epoch_end(0, {"val_loss": loss})
            out.append(float(keras.ops.convert_to_numpy(network.optimizer.learning_rate)))
        return out

    # 5, 4 improve; three epochs at 4: halved; 3 improves; 3.00005 is no improvement (1e-4)
    assert rates(train.PlateauHalving([]), [5, 4, 4, 4, 4, 3, 3.00005, 3, 3]) == pytest.approx(
        [1e-2] * 4 + [5e-3] * 4 + [2.5e-3])
    # resumed with its past losses, it halves when an uninterrupted run would
    assert rates(train.PlateauHalving([5, 4, 4, 4]), [4, 3]) == pytest.approx([5e-3, 5e-3])


def test_records_that_cannot_serve_the_preset_give_a_one_line_error(tmp_path, capsys,
                                                                   monkeypatch):
    write_records(tmp_path / "rec", (4, 4))
    with pytest.raises(InputError, match="--step=2: .* 1 s apart"):
        train.train(tmp_path / "rec", tmp_path / "out", step=2, **TINY)
    with pytest.raises(InputError, match="--volume_size=7: .* the 5 frames stored"):
        train.train(tmp_path / "rec", tmp_path / "out", **{**TINY, "volume_size": 7})
    with pytest.raises(InputError, match="--aug=a9"):
        train.train(tmp_path / "rec", tmp_path / "out", aug="a9", **TINY)

    run_train = define_flags(ROOT / "run_train.py")

    monkeypatch.chdir(ROOT)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run_train.py", "--flagfile=models/full-a4p50-f7s2.flags",
                 f"--tfrec_dir={tmp_path / 'rec'}", f"--out_dir={tmp_path / 'out'}"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_train["main"](["run_train.py"])
    finally:
        flags.FLAGS.unparse_flags()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --step=2: ") and "\n" not in error


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_predicts_every_example_once(tmp_path):
    write_records(tmp_path / "rec", (13, 10))
    script = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from chimpact.training import model, pipeline, train
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        train.train("{tmp_path}/rec", "{tmp_path}/model", folds=[0], epochs=2, batch_size=4,
                    verbose=0, strategy=strategy, **{TINY!r})
        mirrored = model.load_fold_models("{tmp_path}/model", strategy=strategy)[0]
        single = model.load_fold_models("{tmp_path}/model")[0]
        both = pipeline.predict(mirrored, "{tmp_path}/rec", None, 3, batch_size=5)
        alone = pipeline.predict(single, "{tmp_path}/rec", None, 3, batch_size=5)
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                          "ids": list(both.video_id), "pred": list(both.pred),
                          "single": list(alone.pred)}}))
        """)
    output = finish(start_python(["-c", script]))
    result = json.loads(output.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert sorted(result["ids"]) == sorted(
        [f"f0v{i:03d}.mp4" for i in range(13)] + [f"f1v{i:03d}.mp4" for i in range(10)])
    np.testing.assert_allclose(result["pred"], result["single"], rtol=1e-4, atol=1e-4)
    oof = read_csv(tmp_path / "model" / "oof.csv")
    assert sorted(oof.video_id) == [f"f0v{i:03d}.mp4" for i in range(13)]
    history = read_csv(tmp_path / "model" / "fold0" / "history.csv")
    # The padded validation batches are weighted: val_loss is the MAE of the 13 examples.
    assert history.val_loss.min() == pytest.approx(np.abs(oof.pred - oof.distance).mean(),
                                                   rel=1e-4)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster(backend, workers, index):
    """The environment of process `index` of a cluster of `workers` under `backend`."""
    if backend == "jax":
        # keras.distribution.initialize(): the coordinator's address, process 0's.
        return {"KERAS_BACKEND": "jax", "KERAS_DISTRIBUTION_JOB_ADDRESSES": workers[0],
                "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(workers)),
                "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                     "task": {"type": "worker", "index": index}})}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_multiworker_strategy_with_two_processes(tmp_path, backend):
    write_records(tmp_path / "rec", (13, 10))
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = [start_python(
        ["run_train.py", *TINY_FLAGS, f"--tfrec_dir={tmp_path / 'rec'}",
         f"--out_dir={tmp_path / 'model'}", "--strategy=multiworker", "--folds=0",
         "--epochs=2", "--batch_size=4"], _cluster(backend, workers, index))
        for index in range(2)]
    outputs = [finish(p) for p in processes]
    assert "out-of-fold MAE" in outputs[0] and "out-of-fold MAE" not in outputs[1]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (config["backend"], config["replicas"]) == (backend, 2)
    oof = read_csv(tmp_path / "model" / "oof.csv")
    assert sorted(oof.video_id) == [f"f0v{i:03d}.mp4" for i in range(13)]
    history = read_csv(tmp_path / "model" / "fold0" / "history.csv")
    assert list(history.epoch) == [0, 1]
    # Validation metrics are aggregated over both workers: val_loss is the MAE of the fold.
    assert history.val_loss.min() == pytest.approx(np.abs(oof.pred - oof.distance).mean(),
                                                   rel=1e-4)


def test_strategy_requests_that_cannot_be_met_are_errors_not_fallbacks(monkeypatch):
    from chimpact.training import strategy as strategies

    port = _free_ports(1)[0]
    with pytest.raises(InputError, match=f"--tpu=grpc://localhost:{port}: cannot reach"):
        strategies.make_strategy("auto", f"grpc://localhost:{port}")
    with pytest.raises(InputError, match="conflicts with --strategy=mirrored"):
        strategies.make_strategy("mirrored", "my-tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(InputError, match="TF_CONFIG"):
        strategies.make_strategy("multiworker")
    with pytest.raises(InputError, match="--strategy=horovod"):
        strategies.make_strategy("horovod")
    default = strategies.make_strategy("default")
    assert strategies.is_chief(default) and not strategies.is_multi_worker(default)
