"""Training killed at any moment (a preemptible TPU VM) resumes with the same command, and ends
as an uninterrupted run does."""

import os
import signal
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from chimpact.errors import InputError
from chimpact.training import model, model_folder, train
from model_checks import JAX, TINY, finish, start_python
from preempted_training import EPOCHS
from sequence_records import write_records


def kill_when(process, marker, occurrence=1, then_fraction=0.0):
    """SIGKILLs `process` once its output shows `marker` for the `occurrence`-th time, or, with
    `then_fraction`, that fraction of the time between the marker's last two showings later (so
    inside the next epoch when the marker starts each epoch); returns the output read until
    then, or None when it finished first. Kills follow the run's own progress, not the clock."""
    seen, lines = [], []
    os.set_blocking(process.stdout.fileno(), False)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and len(seen) < occurrence:
        line = process.stdout.readline()
        lines.append(line)
        if line and marker in line:
            seen.append(time.monotonic())
        if not line:
            time.sleep(0.01)
    if process.poll() is not None or len(seen) < occurrence:
        return None
    if then_fraction:
        time.sleep(then_fraction * (seen[-1] - seen[-2]))
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return "".join(lines)


def fold_files(out_dir):
    return sorted(os.listdir(out_dir / "fold0"))


# Keras' backend of each run: TensorFlow, or JAX data-parallel over two CPU devices.
BACKENDS = {"tensorflow": {}, "jax": JAX}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_kill_in_a_checkpoint_write_or_an_epoch_ends_like_an_uninterrupted_run(tmp_path,
                                                                                 backend):
    write_records(tmp_path / "rec", (24, 24))
    script = "tests/preempted_training.py"
    env = BACKENDS[backend]
    calm = start_python([script, str(tmp_path / "rec"), str(tmp_path / "calm")], env)

    killed = tmp_path / "killed"
    run = [script, str(tmp_path / "rec"), str(killed)]
    if backend == "tensorflow":
        # In the middle of the second checkpoint write (the first one is then the whole state).
        # A kill after the last epoch, before the out-of-fold predictions, is
        # test_a_run_killed_after_its_last_epoch_predicts_without_training_again's.
        output = kill_when(start_python([*run, "crawl"], env), "CHECKPOINT WRITE", occurrence=2)
        assert output is not None, "the run finished before the kill"
        assert any(".tmp-" in name for name in fold_files(killed))  # a half-written checkpoint
        resumed_at = 2
    else:
        # The kill in a checkpoint write meets the storage and checkpoint code, the same under
        # either backend. Every resume restores the training state (weights, Adam's moments,
        # the seed's stream): TensorFlow's after the kill above, JAX's after a kill inside
        # epoch 3, a third of the way through as long as epoch 2 took.
        output = kill_when(start_python(run, env), "Epoch ", occurrence=3, then_fraction=0.3)
        assert output is not None, "the run finished before the kill"
        resumed_at = 3
    output = finish(start_python(run, env))
    assert f"fold 0: resuming at epoch {resumed_at}" in output, output
    finish(calm)

    assert fold_files(killed) == ["best.weights.h5", "history.csv", "oof.csv"]
    history = pd.read_csv(killed / "fold0" / "history.csv")
    calm_history = pd.read_csv(tmp_path / "calm" / "fold0" / "history.csv")
    assert list(history.epoch) == list(range(EPOCHS))
    pd.testing.assert_frame_equal(history, calm_history, rtol=1e-4)
    oof = pd.read_csv(killed / "oof.csv")
    # best.weights.h5 holds the best epoch of history.csv: its predictions score min(val_loss).
    assert np.abs(oof.pred - oof.distance).mean() == pytest.approx(history.val_loss.min(),
                                                                   rel=1e-4)
    np.testing.assert_allclose(oof.pred, pd.read_csv(tmp_path / "calm" / "oof.csv").pred,
                               rtol=1e-4, atol=1e-4)
    assert "out-of-fold MAE" in output
    assert model_folder.read_config(str(killed))["backend"] == backend


class Killed(Exception):
    """The job dying."""


@pytest.mark.slow
def test_a_run_killed_after_its_last_epoch_predicts_without_training_again(tmp_path, caplog,
                                                                           monkeypatch):
    write_records(tmp_path / "rec", (6, 6))
    fold0 = tmp_path / "model" / "fold0"
    run = dict(tfrec_dir=tmp_path / "rec", out_dir=tmp_path / "model", folds=[0], epochs=2,
               batch_size=4, verbose=0, **TINY)

    def dies(*args):
        raise Killed

    monkeypatch.setattr(train, "_predict_fold", dies)
    with pytest.raises(Killed):
        train.train(**run)
    monkeypatch.undo()
    assert not (fold0 / "oof.csv").exists()
    history, weights = pd.read_csv(fold0 / "history.csv"), (fold0 / "best.weights.h5").read_bytes()

    caplog.set_level("INFO")
    train.train(**run)
    assert "fold 0: all 2 epochs already trained" in caplog.messages
    pd.testing.assert_frame_equal(pd.read_csv(fold0 / "history.csv"), history)
    assert (fold0 / "best.weights.h5").read_bytes() == weights
    assert len(pd.read_csv(fold0 / "oof.csv")) == 6
    assert fold_files(tmp_path / "model") == ["best.weights.h5", "history.csv", "oof.csv"]
    # Fold weights hold the model alone (no Adam moments), and load into an uncompiled network.
    with h5py.File(fold0 / "best.weights.h5") as weights_file:
        assert "optimizer" not in weights_file and "layers" in weights_file
    network = model.build_from_config(model_folder.read_config(str(tmp_path / "model")))
    network.load_weights(str(fold0 / "best.weights.h5"))
    with pytest.raises(InputError, match="trained with aug=none, not a1: use another"):
        train.train(**{**run, "aug": "a1"})


@pytest.mark.slow
def test_a_cosine_schedule_resumes_where_it_stopped(tmp_path, monkeypatch):
    write_records(tmp_path / "rec", (6, 6))
    run = dict(tfrec_dir=tmp_path / "rec", folds=[0], epochs=3, batch_size=4, lr=1e-2,
               schedule="cosine", verbose=0, **TINY)
    train.train(out_dir=tmp_path / "calm", **run)
    save = train.FoldCheckpoint.on_epoch_end

    def dies_after_the_first(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 0:
            raise Killed

    monkeypatch.setattr(train.FoldCheckpoint, "on_epoch_end", dies_after_the_first)
    with pytest.raises(Killed):
        train.train(out_dir=tmp_path / "killed", **run)
    monkeypatch.undo()
    train.train(out_dir=tmp_path / "killed", **run)
    calm = pd.read_csv(tmp_path / "calm" / "fold0" / "history.csv")
    resumed = pd.read_csv(tmp_path / "killed" / "fold0" / "history.csv")
    # the rate each epoch starts at follows the cosine over all 3 epochs' steps, resumed at its step
    assert calm.learning_rate.iloc[0] == pytest.approx(1e-2)
    assert calm.learning_rate.is_monotonic_decreasing and calm.learning_rate.iloc[-1] > 0
    np.testing.assert_allclose(resumed.learning_rate, calm.learning_rate, rtol=1e-6)
