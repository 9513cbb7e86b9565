"""A run directory: everything one training run leaves behind, and the input of every other command.

    config.json        the fully resolved Config
    history.csv        one row per epoch (loss, accuracy, val_loss, val_accuracy, lr, seconds of wall time and
                       eval_seconds of them spent evaluating)
    metrics.json       final and best metrics, timing, parameter count, the machines that trained it
    initial.weights.h5 weights before training
    best.keras         the model at its best validation accuracy
    last.keras         the model after the last epoch (with optimizer state, for --resume)
    class_names.json   label index -> class name
    state.json         resume state; curves.png; tensorboard/; eval/, export/, vis/ from later commands
"""
import csv
import json
import secrets
import time
from pathlib import Path

from kerascnn.config import Config
from kerascnn.io import atomic_write
from kerascnn.tables import csv_text

CHECKPOINTS = ("best", "last", "initial")


class RunDirError(FileNotFoundError):
    """Not a run directory, or a file the command needs is missing from it."""


def new_run_dir(task, root="runs"):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / task / f"{stamp}-{secrets.token_hex(3)}"


def require(run_dir, name):
    path = Path(run_dir) / name
    if not path.exists():
        hint = "" if (Path(run_dir) / "config.json").exists() else " (is it a run directory made by `kerascnn train`?)"
        raise RunDirError(f"{path} does not exist{hint}")
    return path


def load_config(run_dir):
    return Config.from_dict(json.loads(require(run_dir, "config.json").read_text()))


def register_custom_layers():
    """Import every module that defines serialisable layers (augmentation and all model families),
    so a saved model loads in a fresh process whichever family built it."""
    import kerascnn.data.augment  # noqa: F401
    from kerascnn.models import available_models

    available_models()


def load_model(run_dir, checkpoint="best"):
    """The model of a run at ``checkpoint`` (best, last or initial)."""
    import keras

    register_custom_layers()
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, not {checkpoint!r}")
    if checkpoint == "initial":
        model = keras.models.load_model(require(run_dir, "best.keras"), compile=False)
        model.load_weights(require(run_dir, "initial.weights.h5"))
        return model
    return keras.models.load_model(require(run_dir, f"{checkpoint}.keras"), compile=False)


MODEL_FILES = ("best.keras", "last.keras", "initial.weights.h5")


def drop_models(run_dir):
    """Delete a finished run's model files and keep its records (config, history, metrics, curves,
    TensorBoard logs); returns the bytes freed. Search trials use it: a Hyperband search trains
    hundreds of runs, and their models would fill gigabytes that nothing reads again."""
    freed = 0
    for name in MODEL_FILES:
        path = Path(run_dir) / name
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
    return freed


def read_history(run_dir):
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: (float(v) if k != "epoch" else int(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def write_history(run_dir, rows):
    if not rows:
        return
    atomic_write(Path(run_dir) / "history.csv", csv_text(rows))


def read_json(run_dir, name):
    return json.loads(require(run_dir, name).read_text())


def class_names(run_dir):
    return read_json(run_dir, "class_names.json")
