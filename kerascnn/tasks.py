"""Task registry: a task name -> dataset, model and default recipe (a Config).

``resolve_config("artists", ["epochs=10", "model.filters=[16,32]"])`` gives the fully resolved
configuration a run is built from and records in its ``config.json``.
"""
from dataclasses import dataclass

from kerascnn.config import Config, apply_overrides
from kerascnn.models import model_arguments


@dataclass
class Task:
    name: str
    description: str
    config: Config


TASKS = {}


def register_task(name, description, **fields):
    TASKS[name] = Task(name, description, Config(task=name, **fields))


def get_task(name):
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def resolve_config(task, overrides=(), **fields):
    """The task's recipe, then explicit fields (e.g. data_dir from --data-dir), then --set overrides."""
    cfg = get_task(task).config.replace(**{k: v for k, v in fields.items() if v is not None})
    return apply_overrides(cfg, overrides, model_arguments(cfg.model))


register_task(
    "artists",
    "11-artist painting classification at 50x50 with the starter's SimpleCNN (assignment section 1.2)",
    dataset="artists", model="simple_cnn", image_size=50, preprocess="centered",
    val_fraction=0.2, epochs=50, batch_size=128, optimizer="adam", learning_rate=1e-3,
)

# ---- cifar10 tasks (issue: cifar10) ----

# ---- caltech101 tasks (issue: caltech101) ----

# ---- clipart tasks (issue: clipart) ----

# ---- faces tasks (issue: faces) ----
