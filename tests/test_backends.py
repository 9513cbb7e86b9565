"""The same training code on other input paths, backends and device counts.

TensorFlow-free input (keras PyDataset), the JAX backend (also with TensorFlow absent, as on the
lent GPU machine), and data-parallel training over two logical CPU devices (TensorFlow
MirroredStrategy, JAX DataParallel) compared with one device. Backends are chosen per process, so
those checks run in subprocesses.
"""
import importlib.util
import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, write_image_folder
from kerascnn.data.pipeline import ArrayBatches

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

TRAIN_SCRIPT = """
import json, sys
from kerascnn import rundir
from kerascnn.tasks import resolve_config
from kerascnn.train import train
data, run, *overrides = sys.argv[1:]
cfg = resolve_config("artists", ["epochs=2", "batch_size=16", "tensorboard=false", *overrides], data_dir=data)
metrics = train(cfg, run_dir=run, quiet=True)
print(json.dumps({"losses": [r["loss"] for r in rundir.read_history(run)], "files": sorted(p.name for p in
      __import__("pathlib").Path(run).iterdir()), "val": metrics["best_val_accuracy"]}))
"""


def start_python(code, *args, env=None):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


def result(proc):
    """The last line a started process prints, as JSON, once it has ended well."""
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_python(code, *args, env=None):
    return result(start_python(code, *args, env=env))


def run_pythons(*calls):
    """Several (code, *args, env) calls at once: each spends most of its time importing and compiling on one
    core, so two take little longer than one."""
    started = [start_python(code, *args, env=env) for code, *args, env in calls]
    return [result(proc) for proc in started]


@pytest.fixture(scope="module")
def even_data(tmp_path_factory):
    """60 images: 48 train (three full batches of 16), 12 val, so every batch splits evenly."""
    return write_image_folder(tmp_path_factory.mktemp("even") / "data", classes=3, per_class=20, size=50)


def test_array_batches_shuffle_each_epoch_and_one_hot():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, -1)
    y = np.arange(10) % 3
    batches = ArrayBatches(x, y, 3, 4, training=True, seed=0)
    assert len(batches) == 3
    first = np.concatenate([batches[i][0][:, 0, 0, 0] for i in range(len(batches))])
    assert sorted(first.tolist()) == list(range(10))
    images, labels = batches[0]
    assert images.dtype == np.float32 and labels.shape == (4, 3)
    assert (labels.argmax(1) == images[:, 0, 0, 0].astype(int) % 3).all()
    batches.on_epoch_end()
    second = np.concatenate([batches[i][0][:, 0, 0, 0] for i in range(len(batches))])
    assert not np.array_equal(first, second)
    assert len(ArrayBatches(x, y, 3, 4, training=True, drop_remainder=True)) == 2


def test_tensorflow_free_input_path_trains(image_folder, tmp_path):
    from kerascnn.tasks import resolve_config
    from kerascnn.train import train

    cfg = resolve_config("artists", ["epochs=3", "batch_size=8", "tensorboard=false", "input_pipeline=numpy",
                                     "augment=[flip,brightness:0.1]", "learning_rate=3e-3"], data_dir=str(image_folder))
    metrics = train(cfg, run_dir=tmp_path / "run", quiet=True)
    assert metrics["epochs_run"] == 3 and metrics["final"]["loss"] < 1.1


def test_mirrored_strategy_step_equals_single_device_step():
    code = textwrap.dedent("""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from kerascnn.models import create_model
        from kerascnn.tasks import resolve_config
        from kerascnn.train import compile_model
        cfg = resolve_config("artists", ["learning_rate=0.01"])
        x = np.random.default_rng(0).uniform(0, 255, (16, 50, 50, 3)).astype("float32")
        y = np.eye(11, dtype="float32")[np.arange(16) % 11]
        def step(scope):
            keras.utils.set_random_seed(0)
            with scope:
                model = create_model("simple_cnn", (50, 50, 3), 11, preprocess="centered")
                compile_model(model, cfg)
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
            model.fit(ds, epochs=1, verbose=0)
            return model.get_weights()
        strategy = tf.distribute.MirroredStrategy()
        one, two = step(tf.distribute.get_strategy().scope()), step(strategy.scope())
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(one, two))}))
    """)
    out = run_python(code)
    assert out["replicas"] == 2
    assert out["max_diff"] < 1e-5


def test_distributed_training_on_two_cpu_devices_matches_one(even_data, tmp_path):
    # Against model.fit on one device: the data-parallel run is fit's, and the graph loop shuffles differently.
    one, two = run_pythons((TRAIN_SCRIPT, even_data, tmp_path / "one", "train_loop=fit", None),
                           (TRAIN_SCRIPT, even_data, tmp_path / "two", "distribute=true", {"KERASCNN_CPU_DEVICES": "2"}))
    assert {"best.keras", "last.keras", "metrics.json", "history.csv"} <= set(two["files"])
    assert two["losses"] == pytest.approx(one["losses"], rel=0.1)


@needs_jax
def test_jax_backend_trains_without_tf_data(image_folder, tmp_path):
    out = run_python(TRAIN_SCRIPT, image_folder, tmp_path / "run", "input_pipeline=numpy",
                     env={"KERAS_BACKEND": "jax"})
    assert {"best.keras", "last.keras", "metrics.json", "history.csv", "curves.png"} <= set(out["files"])
    assert len(out["losses"]) == 2 and out["losses"][1] < out["losses"][0]


@needs_jax
def test_jax_data_parallel_on_two_host_devices_matches_one(even_data, tmp_path):
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    one, two = run_pythons((TRAIN_SCRIPT, even_data, tmp_path / "one", "input_pipeline=numpy", env),
                           (TRAIN_SCRIPT, even_data, tmp_path / "two", "input_pipeline=numpy", "distribute=true", env))
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)


@needs_jax
def test_cli_on_jax_where_tensorflow_is_absent(image_folder, tmp_path):
    """The GPU machine's environment: JAX and TensorBoard installed, TensorFlow and tf-keras-vis not."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    for folder in map(Path, site.getsitepackages()):
        for entry in folder.iterdir():
            if not entry.name.startswith(("tensorflow", "tf_keras_vis")) and not (site_dir / entry.name).exists():
                (site_dir / entry.name).symlink_to(entry)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{site_dir}{os.pathsep}{ROOT}",
           "PYTHONWARNINGS": "ignore"}

    def start(*args):  # -S: no site-packages but the filtered copy
        return subprocess.Popen([sys.executable, "-S", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def python(*args):
        proc = start(*args)
        proc.stdout, proc.stderr = proc.communicate(timeout=600)
        return proc

    probe = python("-c", "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('jax') is None)")
    assert probe.stdout.split() == ["None", "False"], probe.stderr[-2000:]

    run = tmp_path / "run"
    trained = python("-m", "kerascnn", "train", "--task", "artists", "--data-dir", image_folder, "--run-dir", run,
                     "--set", "epochs=2", "batch_size=8", "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert {"best.keras", "last.keras", "history.csv", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert not (run / "tensorboard").exists()

    # The three run at once: the two that need what is absent stop before they write anything.
    commands = [start("-m", "kerascnn", "export", run, "--verify", "--json"),
                start("-m", "kerascnn", "export", run, "--format", "savedmodel"),
                start("-m", "kerascnn", "visualize", run, "--kind", "gradcam")]
    (exported, exported_err), (_, savedmodel_err), (_, gradcam_err) = [p.communicate(timeout=600) for p in commands]
    exported_code, savedmodel_code, gradcam_code = [p.returncode for p in commands]
    assert exported_code == 0, exported_err[-3000:]
    report = json.loads(exported.strip().splitlines()[-1])
    assert set(report["exported"]) == {"keras"}
    assert report["verify"]["keras"]["same_predictions"] == report["verify"]["keras"]["images"] > 0
    assert savedmodel_code == 2 and "needs TensorFlow" in savedmodel_err
    assert gradcam_code == 2 and "tf-keras-vis" in gradcam_err
