"""The 3rd place's published weights in chimpact: checkpoints written by the reference's own code
(tests/reference_model.py: efficientnet 1.1.1 on tf-keras, as its run.py built and saved them)
imported by `chimpact import`, then checked against that code's predictions."""

import fcntl
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

import reference_model
import sequence_records
from model_checks import JAX, last_json_line, python_output
from chimpact.data import frames
from chimpact.field.jobs import run_field
from chimpact.predict.jobs import run_infer
from chimpact.errors import InputError
from chimpact.training import model, pipeline, reference_import

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = "full-a4p50-f7s1"  # 7 frames 1 s apart
VOLUME, DIM = 7, 64


def require_reference():
    """Skips (fails under CI=true) when the reference's packages are not installed."""
    reason = reference_model.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the reference's packages must be installed in CI: {reason}")
        pytest.skip(f"the reference's packages: {reason}")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, worker_id):
    """(paths, distances): two folds of the reference's model at 64x64, saved as its
    checkpoints were named, each one's distances for sequences(6, DIM), and a third file of
    another architecture (EfficientNet-B1, saved as built: its layout alone is checked), all
    made in one process of the reference's code, once for every pytest-xdist worker of the run
    (under a lock, in the run's shared folder)."""
    require_reference()
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if worker_id != "master" else root) / "reference"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"model-best-f{fold}-e02{fold}-1.3{fold}-2.36.h5" for fold in (0, 1)]
    other = folder / "model-best-f0-b1.h5"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "y.npy").exists():
            np.save(folder / "inputs.npy", sequences(6, DIM) / np.float32(255))
            reference_model.run(f"--h5={','.join(map(str, [*paths, other]))}", f"--dim={DIM}",
                                f"--volume={VOLUME}", "--save", "--seed=1",
                                "--backbones=EfficientNetB0,EfficientNetB0,EfficientNetB1",
                                "--layout_only=1",
                                f"--inputs={folder / 'inputs.npy'}",
                                f"--outputs={folder / 'y.npy'}")
    return paths, np.load(folder / "y.npy")[:2, 0], other


def sequences(n, size, seed=0, volume=VOLUME):
    """uint8 [n, volume, size, size, 3]: noise of a different brightness per sequence."""
    rng = np.random.default_rng(seed)
    brightness = np.linspace(0.2, 1.0, n)[:, None, None, None, None]
    return np.round(rng.uniform(0, 255, (n, volume, size, size, 3)) * brightness).astype(np.uint8)


def script(name, *flags):
    """An entry script run with `flags` from the repository root (its output kept)."""
    return subprocess.run([sys.executable, name, *map(str, flags)], cwd=REPO,
                          capture_output=True, text=True)


def imported_network(path, size=DIM, volume=VOLUME):
    """The preset's network at `size` over `volume` frames, set to the reference file `path`."""
    config = dict(reference_import.preset_config(PRESET, (size, size)), volume_size=volume)
    return reference_import.load_reference(model.build_from_config(config), str(path))


def test_imported_network_predicts_as_the_reference(reference):
    (_, path), (_, expected), _ = reference
    pixels = sequences(6, DIM)
    assert np.ptp(expected) > 1.0 and expected.min() > 1.0  # far from zero, metres apart
    mine = imported_network(path).predict(pixels, verbose=0)[:, 0]
    print(f"64x64: chimpact - reference {np.abs(mine - expected).max():.2e} m")
    assert np.abs(mine - expected).max() <= 1e-4


@pytest.mark.slow
def test_imported_network_at_512_within_the_references_own_reordering(tmp_path):
    """At the reference's 512x512: chimpact against the reference no further than the
    reference moves itself when only float32's order of operations changes (batch of 1
    against 2). Three frames a sequence: the LSTM's arrays do not depend on their number, and
    seven cost a minute more."""
    require_reference()
    h5 = tmp_path / "model-best-f0-e026-1.3361-2.3612.h5"
    pixels = sequences(2, 512, seed=1, volume=3)
    inputs = pixels / np.float32(255)
    # The batch-norm statistics of two other sequences alone: 8 at 512x512 cost minutes.
    np.save(tmp_path / "calibration.npy", sequences(2, 512, seed=7, volume=3) / np.float32(255))
    np.save(tmp_path / "inputs.npy", inputs)
    reference_model.run(f"--h5={h5}", "--dim=512", "--volume=3", "--save", "--seed=3",
                        f"--calibration={tmp_path / 'calibration.npy'}",
                        f"--inputs={tmp_path / 'inputs.npy'}", "--batch_sizes=1,2",
                        f"--outputs={tmp_path / 'y.npy'}")
    one, two = np.load(tmp_path / "y.npy")[0]
    mine = imported_network(h5, 512, volume=3).predict(pixels, batch_size=2, verbose=0)[:, 0]
    reordering = np.abs(one - two).max()
    print(f"512x512: chimpact - reference {np.abs(mine - two).max():.2e} m, the reference's "
          f"own reordering {reordering:.2e} m")
    # Four times the reordering, and never below four float32 steps at these distances.
    bound = max(4 * reordering, 4 * np.spacing(np.abs(two).max()))
    assert np.ptp(two) > 0.1 and np.abs(mine - two).max() <= bound


def test_records_chain_predicts_as_the_references_parse(reference, tmp_path):
    """From the same JPEG frames (128x96, resized to 64x64 on both sides): the reference's parse
    (decode, tf.image.resize, uint8, / 255) into its model, against chimpact's test records (at
    the frames' size) through the pipeline into the imported model. Both resize bilinearly
    without antialiasing and truncate; what remains is JPEG decoding and float order."""
    manifest = sequence_records.write_records(tmp_path / "records", examples_per_fold=(4,),
                                              image_size=(96, 128), frames_per_side=5,
                                              subset="test", seed=2)
    config = reference_import.preset_config(PRESET, (DIM, DIM))
    network = imported_network(reference[0][0])
    table = pipeline.predict(network, str(tmp_path / "records"), None, VOLUME, (DIM, DIM),
                             batch_size=2, frame_resize=config["frame_resize"])
    jpegs = [[frames.frame_path(f"{tmp_path / 'records'}-frames", video_id, index)
              for index in range(2, 9)] for video_id in table.video_id]
    with open(tmp_path / "jpegs.json", "w") as f:
        json.dump(jpegs, f)
    reference_model.run(f"--h5={reference[0][0]}", f"--dim={DIM}", f"--volume={VOLUME}",
                        f"--jpegs={tmp_path / 'jpegs.json'}", f"--outputs={tmp_path / 'y.npy'}")
    expected = np.load(tmp_path / "y.npy")[0, 0]
    assert manifest.image_size == (96, 128) and np.ptp(expected) > 0.1
    print(f"records chain: chimpact - reference {np.abs(table.pred - expected).max():.2e} m")
    assert np.abs(table.pred.to_numpy() - expected).max() <= 1e-4


def test_command_writes_a_model_folder_that_predicts(reference, tmp_path):
    out_dir = tmp_path / "imported"
    result = script("import_weights.py", f"--preset={PRESET}", f"--image_size={DIM}",
                    f"--weights={reference[0][0]},{reference[0][1]}", f"--out_dir={out_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((out_dir / "config.json").read_text())
    assert (config["folds"], config["volume_size"], config["step"], config["image_size"],
            config["input_scaling"], config["frame_resize"], config["frames_per_side"],
            config["frames"]["gamma"]) == ([0, 1], 7, 1, [DIM, DIM], "unit", "reference", 5,
                                           "auto")
    pixels = sequences(3, DIM, seed=4)
    np.save(tmp_path / "pixels.npy", pixels)
    folds = model.load_fold_models(str(out_dir))
    expected = {}
    for fold, path in enumerate(reference[0]):
        expected[fold] = imported_network(path).predict(pixels, verbose=0)[:, 0]
        assert np.array_equal(folds[fold].predict(pixels, verbose=0)[:, 0], expected[fold])
    # Fold 0 (the folds differ in their weights alone) compiled with XLA, as a TPU compiles it,
    # and under Keras' JAX backend (jitted) on two CPU devices.
    compiled = model.set_jit_compile(folds[0], True).predict(pixels, verbose=0)[:, 0]
    np.testing.assert_allclose(compiled, expected[0], atol=1e-4, rtol=0)
    under_jax = last_json_line(python_output(f"""
        import json, numpy as np
        from chimpact.training import model
        pixels = np.load({str(tmp_path / "pixels.npy")!r})
        fold = model.load_fold_models({str(out_dir)!r})[0]
        print(json.dumps(fold.predict(pixels, verbose=0)[:, 0].tolist()))
        """, **JAX))
    np.testing.assert_allclose(under_jax, expected[0], atol=1e-4, rtol=0)


def test_import_refuses_a_file_it_cannot_match(reference, tmp_path):
    broken = tmp_path / "model-best-f0-broken.h5"
    shutil.copy(reference[0][0], broken)
    with h5py.File(broken, "r+") as f:
        del f["lstm"]["lstm"]["lstm_cell"]["bias:0"]
        f["lstm"]["lstm"]["lstm_cell"].create_dataset("bias:0", data=np.zeros(8, np.float32))
    # What import_weights.py runs (the command's one-line error: the test of a folder of other
    # files below).
    with pytest.raises(InputError) as refused:
        reference_import.import_weights([str(reference[0][1]), str(broken)], PRESET,
                                        str(tmp_path / "out"), image_size=(DIM, DIM))
    assert str(refused.value) == (
        f"--weights={broken}: array lstm/lstm_cell/bias has shape (8,), the reference's "
        "efficientnet_b0_lstm (4096,) at lstm/lstm_cell/bias")
    assert not (tmp_path / "out").exists()  # the good file first: still nothing written


def test_refuses_another_architecture_and_a_file_that_is_not_hdf5(reference, tmp_path):
    other = reference[2]
    with pytest.raises(InputError, match=r"array .* has (no place|shape)"):
        imported_network(other)
    text = tmp_path / "model-best-f0-notes.h5"
    text.write_text("not weights")
    with pytest.raises(InputError, match=r"notes\.h5: not an HDF5 file$"):
        imported_network(text)


def test_archive_of_two_configurations_blends_as_the_reference(reference, tmp_path):
    """A folder laid out as the winner's archive, 2 configurations of a fold each (fold 0 and
    fold 1: the fold averages are run_infer's tests'): each imported, predicted on test records,
    and blended with the reference's published weights."""
    runs = {"full-a4p50-f7s1": "run-20211113-1648-full-a4p50-f7s1",
            "down-a1p50-f9s1": "run-20211101-2141-down-a1p50-f9s1"}
    for run, path in zip(runs.values(), reference[0]):
        (tmp_path / "archive" / "models" / run).mkdir(parents=True)
        shutil.copy(path, tmp_path / "archive" / "models" / run / path.name)
    # A 9-frame configuration's LSTM reads 9 frames with the same arrays.
    folders = reference_import.import_archive(str(tmp_path / "archive"), str(tmp_path / "m"),
                                              (DIM, DIM))
    assert sorted(folders) == sorted(runs)
    sequence_records.write_records(tmp_path / "test", examples_per_fold=(3,),
                                   image_size=(DIM, DIM), frames_per_side=5, subset="test")
    # What run_infer.py runs, in this process; ensemble.py's own command.
    predictions = {}
    for preset, folder in folders.items():
        run_infer(folder, tfrec_dir=str(tmp_path / "test"))
        predictions[preset] = pd.read_csv(os.path.join(folder, "test_preds.csv"))
    result = script("ensemble.py", "--blend=reference", f"--out_dir={tmp_path / 'blend'}",
                    f"--model_dirs={folders['full-a4p50-f7s1']},{folders['down-a1p50-f9s1']}")
    assert result.returncode == 0, result.stderr[-2000:]
    # The published chain: full-a4p50-f7s1 first, every coefficient after it; down-a1p50-f9s1
    # is blended in 9th, with 1 - 1.03, then kept at 1.07 and 1.1.
    full = np.prod([0.58, 0.72, 0.83, 0.81, 0.89, 0.87, 0.98, 0.88, 1.03, 1.07, 1.1])
    down = (1 - 1.03) * 1.07 * 1.1
    expected = (full * predictions["full-a4p50-f7s1"].pred
                + down * predictions["down-a1p50-f9s1"].pred) / (full + down)
    submission = pd.read_csv(tmp_path / "blend" / "submission.csv")
    assert np.allclose(submission.distance, expected, atol=1e-9)
    assert not np.allclose(predictions["full-a4p50-f7s1"].pred,
                           predictions["down-a1p50-f9s1"].pred)


def test_field_decodes_imported_models_at_full_size_then_resizes_as_the_reference(tmp_path):
    """An imported model's raw videos: decoded at their own size, then tf.image.resize
    (bilinear, no antialiasing) truncated to uint8, not scaled by ffmpeg."""
    import tensorflow as tf
    import videogen
    from chimpact.field import videos

    path = videogen.make_video(tmp_path / "clip.mp4", seconds=3, fps=10, size=(128, 96))
    config = reference_import.preset_config(PRESET, (DIM, DIM))
    native, _ = videos.decode_frames(dict(config, image_size=[96, 128], frame_resize="ffmpeg"),
                                     str(path), 1.0)
    scaled, _ = videos.decode_frames(dict(config, frame_resize="ffmpeg"), str(path), 1.0)
    pictures, _ = videos.decode_frames(config, str(path), 1.0)
    expected = tf.cast(tf.image.resize(native, (DIM, DIM)), tf.uint8).numpy()
    assert pictures.shape == (3, DIM, DIM, 3) and np.array_equal(pictures, expected)
    assert not np.array_equal(scaled, expected)


def test_imported_folder_gives_each_animal_a_distance_with_the_published_mae_interval(
        reference, tmp_path):
    """Day one for a field team: no oof.csv, so each detection's 80% interval is the
    distance +- ln(5) x the fold's validation MAE, read from its checkpoint's name (1.30 m)."""
    import videogen

    model_dir = tmp_path / "reference-f0"
    reference_import.import_weights([str(reference[0][0])], PRESET, str(model_dir),
                                    image_size=(DIM, DIM))
    videos = tmp_path / "survey"
    videos.mkdir()
    videogen.make_video(videos / "clip.mp4", seconds=4, fps=5, size=(128, 96))
    md = {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
          "images": [{"file": "clip.mp4", "frame_rate": 5.0, "frames_processed": [0, 5, 10],
                      "detections": [
                          {"category": "1", "conf": 0.9, "frame_number": 5,
                           "bbox": [0.1, 0.2, 0.3, 0.5]},
                          {"category": "1", "conf": 0.8, "frame_number": 10,
                           "bbox": [0.5, 0.1, 0.4, 0.8]}]}]}
    (tmp_path / "md.json").write_text(json.dumps(md))
    assert run_field(str(model_dir), str(videos), detections_json=str(tmp_path / "md.json"),
                     out_csv=str(tmp_path / "animals.csv"), progress=False) == {}
    rows = pd.read_csv(tmp_path / "animals.csv")
    assert list(rows.time) == [1, 2] and rows.distance.notna().all()
    half_width = np.log(5) * 1.30
    np.testing.assert_allclose(rows.distance_high - rows.distance, half_width, atol=1e-3)
    np.testing.assert_allclose(rows.distance_low,
                               np.maximum(rows.distance - half_width, 0), atol=1e-3)


def test_import_refuses_a_folder_of_other_files(reference, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.pdf").write_text("chapter 1")
    result = script("import_weights.py", f"--preset={PRESET}",
                    f"--weights={reference[0][0]}", f"--out_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --out_dir={tmp_path / 'out'}: holds thesis.pdf, which import_weights.py did "
        "not write: give an empty or new folder"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["thesis.pdf"]
