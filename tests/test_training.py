"""The training entry: learning, the run directory, resume after SIGKILL, schedules, phases."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, write_image_folder
from kerascnn import rundir
from kerascnn.tasks import resolve_config
from kerascnn.callbacks import learning_rate_at
from kerascnn.machine import describe_machine
from kerascnn.train import train

RUN_FILES = {"config.json", "history.csv", "metrics.json", "initial.weights.h5", "best.keras", "last.keras",
             "class_names.json", "curves.png", "state.json"}


def tiny_config(data_dir, *overrides):
    return resolve_config("artists", ["epochs=12", "batch_size=16", "learning_rate=3e-3", "tensorboard=false",
                                      *overrides], data_dir=str(data_dir))


def test_learns_a_small_synthetic_problem_and_writes_the_run_directory(image_folder, tmp_path):
    metrics = train(tiny_config(image_folder), run_dir=tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    history = rundir.read_history(run)
    assert len(history) == 12 == metrics["epochs_run"]
    assert history[-1]["loss"] < history[0]["loss"] / 2
    assert metrics["best_val_accuracy"] >= 0.85
    assert metrics["best"]["val_accuracy"] == max(r["val_accuracy"] for r in history)
    assert rundir.load_config(run).epochs == 12
    assert rundir.class_names(run) == ["class_0", "class_1", "class_2"]
    assert not list(run.glob("*-e*.keras")) and not list(run.glob(".*tmp*"))
    assert metrics["machines"] == [describe_machine()]  # what its wall time was measured on


def test_run_seconds_are_the_epochs_wall_time(image_folder, tmp_path):
    # Each row's seconds run from the previous row's bookkeeping to its own, so they add up to the
    # phase's wall time (set-up, history and checkpoints included), which train_seconds reports.
    start = time.perf_counter()
    metrics = train(tiny_config(image_folder, "epochs=4"), run_dir=tmp_path / "run", quiet=True)
    wall = time.perf_counter() - start
    seconds = [r["seconds"] for r in rundir.read_history(tmp_path / "run")]
    assert len(seconds) == 4 and min(seconds) > 0
    assert sum(seconds) - 1e-3 <= metrics["train_seconds"] < wall


@pytest.mark.parametrize("loop", ["graph", "fit"])
def test_history_times_the_evaluation_within_each_epoch(image_folder, tmp_path, loop):
    # Validation after epochs 2 and 4 only: the other rows spent nothing evaluating.
    metrics = train(tiny_config(image_folder, "epochs=4", "validation_freq=2", f"train_loop={loop}"),
                    run_dir=tmp_path / "run", quiet=True)
    rows = rundir.read_history(tmp_path / "run")
    assert [r["eval_seconds"] > 0 for r in rows] == [False, True, False, True]
    assert all(r["eval_seconds"] < r["seconds"] for r in rows)
    assert metrics["eval_seconds"] == pytest.approx(sum(r["eval_seconds"] for r in rows), abs=2e-3)
    images = metrics["train_images"] * 4
    assert metrics["fit_images_per_s"] == pytest.approx(images / (metrics["train_seconds"] - metrics["eval_seconds"]),
                                                        rel=5e-3)  # both seconds rounded to 1 ms


def test_a_run_times_its_checkpoints_within_training_and_keeps_them_for_resume(image_folder, tmp_path):
    # checkpoint_every=0: a checkpoint after every epoch, each one timed.
    metrics = train(tiny_config(image_folder, "epochs=3", "checkpoint_every=0"), run_dir=tmp_path / "run", quiet=True)
    assert 0 < metrics["checkpoint_seconds"] < metrics["train_seconds"] - metrics["eval_seconds"]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["checkpoint_seconds"] == pytest.approx(metrics["checkpoint_seconds"], abs=1e-3)


def test_best_checkpoint_of_the_last_epoch_is_the_last_checkpoint(image_folder, tmp_path):
    # One validation, after the last epoch: the best weights are the final ones, written once.
    train(tiny_config(image_folder, "epochs=3", "validation_freq=3"), run_dir=tmp_path / "run", quiet=True)
    best, last = tmp_path / "run" / "best.keras", tmp_path / "run" / "last.keras"
    assert best.read_bytes() == last.read_bytes()
    assert not list((tmp_path / "run").glob("*-e*.keras"))


def test_a_run_that_cannot_start_leaves_no_run_directory(image_folder, tmp_path):
    with pytest.raises(FileNotFoundError):
        train(tiny_config(tmp_path / "no-such-data"), run_dir=tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="track_test needs a labelled test split"):
        train(tiny_config(image_folder, "track_test=true"), run_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
    train(tiny_config(image_folder, "epochs=1"), run_dir=tmp_path / "run", quiet=True)  # the same --run-dir now works


def test_same_seed_repeats_the_run(image_folder, tmp_path):
    a = train(tiny_config(image_folder, "epochs=3"), run_dir=tmp_path / "a", quiet=True)
    b = train(tiny_config(image_folder, "epochs=3"), run_dir=tmp_path / "b", quiet=True)
    ha, hb = rundir.read_history(tmp_path / "a"), rundir.read_history(tmp_path / "b")
    assert [r["loss"] for r in ha] == pytest.approx([r["loss"] for r in hb], rel=1e-4)
    assert a["best_val_accuracy"] == b["best_val_accuracy"]


def test_existing_run_directory_is_not_overwritten(image_folder, tmp_path):
    train(tiny_config(image_folder, "epochs=1"), run_dir=tmp_path / "run", quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(image_folder, "epochs=1"), run_dir=tmp_path / "run", quiet=True)


def test_sigkill_then_resume_ends_with_every_epoch(tmp_path, monkeypatch):
    data = write_image_folder(tmp_path / "data", classes=3, per_class=60, size=50)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "kerascnn", "train", "--task", "artists", "--data-dir", str(data),
           "--run-dir", str(run), "--quiet", "--set", "epochs=40", "batch_size=8", "checkpoint_every=0",
           "tensorboard=false"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = json.loads(state.read_text())
    assert 3 <= killed["epoch"] < 40 and not (run / "metrics.json").exists()
    assert killed["machines"] == [describe_machine()]
    # Resumed elsewhere, from a state.json that does not name its machine: its epochs' machine is unknown.
    del killed["machines"]
    state.write_text(json.dumps(killed))
    elsewhere = {**describe_machine(), "cpu": "another CPU", "cores": 64}
    monkeypatch.setattr("kerascnn.train.describe_machine", lambda: elsewhere)
    metrics = train(resume=run, quiet=True)
    history = rundir.read_history(run)
    assert [r["epoch"] for r in history] == list(range(1, 41))
    assert metrics["epochs_run"] == 40 and metrics["machines"] == [None, elsewhere]
    assert RUN_FILES <= {p.name for p in run.iterdir()}


def test_early_stopping_stops_and_keeps_the_best(image_folder, tmp_path):
    metrics = train(tiny_config(image_folder, "epochs=60", "early_stopping=2", "learning_rate=1e-2"),
                    run_dir=tmp_path / "run", quiet=True)
    assert metrics["stopped_early"] and metrics["epochs_run"] < 60
    assert metrics["epochs_run"] == metrics["best_epoch"] + 2
    import keras

    best, last = (keras.models.load_model(tmp_path / "run" / f"{name}.keras") for name in ("best", "last"))
    assert not all(np.array_equal(a, b) for a, b in zip(best.get_weights(), last.get_weights()))


@pytest.mark.parametrize("loop", ["graph", "fit"])
def test_validation_freq_validates_every_nth_and_the_last_epoch(image_folder, tmp_path, loop):
    metrics = train(tiny_config(image_folder, "epochs=7", "validation_freq=3", f"train_loop={loop}"),
                    run_dir=tmp_path / "run", quiet=True)
    history = rundir.read_history(tmp_path / "run")
    validated = [r["epoch"] for r in history if not np.isnan(r["val_accuracy"])]
    assert validated == [3, 6, 7] and len(history) == 7
    assert metrics["best_epoch"] in validated
    assert metrics["final"]["val_accuracy"] == history[-1]["val_accuracy"]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_early_stopping_patience_counts_validations(image_folder, tmp_path):
    metrics = train(tiny_config(image_folder, "epochs=60", "early_stopping=2", "validation_freq=2",
                                "learning_rate=1e-2"), run_dir=tmp_path / "run", quiet=True)
    assert metrics["stopped_early"] and metrics["epochs_run"] < 60
    assert metrics["epochs_run"] == metrics["best_epoch"] + 2 * 2


def test_validation_freq_below_one_is_a_config_error(image_folder):
    from kerascnn.config import ConfigError

    with pytest.raises(ConfigError, match="validation_freq"):
        tiny_config(image_folder, "validation_freq=0")


def test_learning_rate_schedules():
    cfg = resolve_config("artists", ["learning_rate=1.0", "epochs=10", "lr_schedule=step", "lr_step_size=3",
                                     "lr_gamma=0.5"])
    assert [learning_rate_at(cfg, e) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
    cos = cfg.replace(lr_schedule="cosine", lr_min=0.0)
    assert learning_rate_at(cos, 0) == 1.0 and learning_rate_at(cos, 5) == pytest.approx(0.5)
    restarts = cfg.replace(lr_schedule="cosine_restarts", lr_restart_period=4)
    assert learning_rate_at(restarts, 4) == 1.0 and learning_rate_at(restarts, 2) == pytest.approx(0.5)
    warm = cfg.replace(lr_schedule="constant", warmup_epochs=4)
    assert learning_rate_at(warm, 0) == 0.25 and learning_rate_at(warm, 4) == 1.0
    tune = cfg.replace(lr_schedule="constant", fine_tune_epochs=3, fine_tune_learning_rate=0.01)
    assert learning_rate_at(tune, 10) == 0.01


def test_plateau_schedule_and_fine_tuning_phase(image_folder, tmp_path):
    cfg = tiny_config(image_folder, "epochs=2", "fine_tune_epochs=2", "fine_tune_learning_rate=1e-4",
                      "model.batch_norm=true", "lr_schedule=plateau", "plateau_patience=1")
    metrics = train(cfg, run_dir=tmp_path / "run", quiet=True)
    history = rundir.read_history(tmp_path / "run")
    assert metrics["epochs_run"] == 4
    assert history[2]["lr"] == pytest.approx(1e-4, rel=1e-3) and history[3]["lr"] <= 1e-4 * 1.001
    last = rundir.load_model(tmp_path / "run", "last")
    assert not last.get_layer("bn1").trainable and last.get_layer("conv1").trainable


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fine_tuning_trains_batch_norm_only_when_asked(batch_norm):
    import keras

    from kerascnn.train import unfreeze_for_fine_tuning

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(4, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    model = keras.Model(inputs, x)
    for layer in model.layers:
        layer.trainable = False
    unfreeze_for_fine_tuning(model, "conv2", batch_norm=batch_norm)
    assert not model.get_layer("conv1").trainable and not model.get_layer("bn1").trainable
    assert model.get_layer("conv2").trainable and model.get_layer("bn2").trainable == batch_norm
    x = np.random.default_rng(0).normal(3.0, 1.0, (16, 8, 8, 3)).astype("float32")
    before = np.asarray(model.get_layer("bn2").moving_mean).copy()
    model(x, training=True)
    moved = not np.allclose(before, np.asarray(model.get_layer("bn2").moving_mean))
    assert moved == batch_norm


def test_pixelwise_preprocessing_is_fitted_to_the_training_images_and_saved(image_folder, tmp_path):
    from kerascnn.data import load_dataset

    cfg = tiny_config(image_folder, "epochs=1", "preprocess=pixelwise")
    train(cfg, run_dir=tmp_path / "run", quiet=True)
    train_images = load_dataset(cfg).train.x.astype("float64")
    layer = rundir.load_model(tmp_path / "run", "best").get_layer("preprocess")
    mean, variance = (np.asarray(v).reshape(train_images.shape[1:]) for v in (layer.mean, layer.variance))
    assert mean == pytest.approx(train_images.mean(axis=0), abs=1e-2)
    assert variance == pytest.approx(train_images.var(axis=0), rel=1e-3, abs=1e-2)


def test_weight_averaging_validates_and_saves_the_averaged_weights(image_folder, tmp_path):
    plain = train(tiny_config(image_folder, "epochs=3"), run_dir=tmp_path / "plain", quiet=True)
    averaged = train(tiny_config(image_folder, "epochs=3", "ema=0.9"), run_dir=tmp_path / "ema", quiet=True)
    history = rundir.read_history(tmp_path / "ema")
    # The saved best checkpoint is exactly what was validated at its epoch: the averaged weights.
    assert averaged["best"]["val_accuracy"] == pytest.approx(max(r["val_accuracy"] for r in history), abs=1e-6)
    last_plain = rundir.load_model(tmp_path / "plain", "last").get_layer("conv1").get_weights()[0]
    last_ema = rundir.load_model(tmp_path / "ema", "last").get_layer("conv1").get_weights()[0]
    assert not np.allclose(last_plain, last_ema)
    assert plain["epochs_run"] == averaged["epochs_run"] == 3


def test_ema_momentum_outside_unit_interval_is_a_config_error(image_folder):
    from kerascnn.config import ConfigError

    with pytest.raises(ConfigError, match="ema"):
        tiny_config(image_folder, "ema=1.5")


def test_zca_whitening_is_fitted_to_the_training_images_saved_and_drawn_on_raw_pixels(image_folder, tmp_path):
    from kerascnn.data import load_dataset
    from kerascnn.vis.weights import pixel_dense_layer, unit_templates

    cfg = tiny_config(image_folder, "epochs=1", "model=mlp", "image_size=12", "preprocess=zca", "zca_epsilon=0.5")
    train(cfg, run_dir=tmp_path / "run", quiet=True)
    train_images = load_dataset(cfg).train.x.reshape(-1, 12 * 12 * 3) / 255.0
    model = rundir.load_model(tmp_path / "run", "best")
    layer = model.get_layer("preprocess")
    assert layer.epsilon == 0.5
    assert np.asarray(layer.mean) == pytest.approx(train_images.mean(axis=0), abs=1e-5)
    matrix = np.asarray(layer.matrix)
    assert matrix == pytest.approx(matrix.T, abs=1e-5) and not np.allclose(matrix, np.eye(len(matrix)), atol=1e-3)
    dense = pixel_dense_layer(model)
    expected = (matrix @ dense.get_weights()[0])[:, [0, 3]].T.reshape(2, 12, 12, 3)
    assert unit_templates(model, dense, [0, 3]) == pytest.approx(expected, abs=1e-5)
