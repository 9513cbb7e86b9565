"""Shared fixtures: tiny synthetic image folders and the location of the real datasets."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

import kerascnn  # noqa: E402,F401  (before any test imports TensorFlow: the CPU kernels users get)


def shared_data(name):
    """Path of a real dataset in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real dataset not available at {path}")
    return path


def write_image_folder(root, classes=3, per_class=12, size=32, seed=0):
    """Class folders of PNGs whose classes differ in colour, so a small CNN can learn them fast."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[..., k % 3] += 150
            Image.fromarray(img).save(folder / f"img_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def ctrl_c_in_each_runs_last_epoch(monkeypatch):
    """Every run trains to its end, then Ctrl-C comes, as in a run's last epoch: too late to cut that run short.
    Returns the run directories trained, in order; the stop request ends with the test."""
    import threading

    import kerascnn.train
    from kerascnn import interrupt

    monkeypatch.setattr(interrupt, "_requested", threading.Event())
    real_train, trained = kerascnn.train.train, []

    def train(*args, **kwargs):
        metrics = real_train(*args, **kwargs)
        trained.append(Path(kwargs["run_dir"]))
        interrupt._requested.set()
        return metrics

    monkeypatch.setattr(kerascnn.train, "train", train)
    return trained


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Keep array caches out of the project's data/ folder."""
    monkeypatch.setenv("KERASCNN_DATA", str(tmp_path / "data_home"))


def hparams_of(logdir):
    """The hyperparameters of the HParams record in ``logdir``."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    for event_file in logdir.iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        return {k: (v.string_value or v.number_value or v.bool_value)
                                for k, v in data.session_start_info.hparams.items()}
    return None
