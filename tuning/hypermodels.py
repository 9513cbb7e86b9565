"""The search space of every task family, and the KerasTuner HyperModel that declares it.

A trial's hyperparameters become a list of ordinary ``--set`` overrides (``model.widths=[64,128,256]``,
``learning_rate=0.0012`` ...) on the task's recipe, so a trial trains, and its best configuration is
retrained or reproduced by hand, through the same ``kerascnn train`` entry: the same loop, schedule,
augmentation, label smoothing, EMA and early stopping. Spaces are picked by the task's dataset
family (``SPACES``); ``hand_recipe`` is the family's best hand-written task, the bar a search's
winner must clear.
"""
import typing
from dataclasses import dataclass

import keras_tuner

from tuning import simple_cnn, spaces


@dataclass(frozen=True)
class SearchSpace:
    name: str
    datasets: tuple  # the dataset families whose tasks it searches
    hand_recipe: str  # the family's best hand-written task
    # (hp, cfg) -> the --set overrides the hyperparameters stand for, declaring them on hp on first use
    overrides: typing.Callable


def _simple_cnn_overrides(hp, cfg):
    if cfg.model != "simple_cnn":
        return []
    overrides, _ = simple_cnn.overrides_for(simple_cnn.sample_space(hp), cfg.image_size)
    return overrides + spaces.artists_augmentation(hp, cfg)


SPACES = {
    space.name: space for space in (
        SearchSpace("artists_simple_cnn", ("artists",), "artists_tuned", _simple_cnn_overrides),
        SearchSpace("cifar10_convnet", ("cifar10",), "cifar10_bn", spaces.cifar10_space),
        SearchSpace("caltech101_net", ("caltech101",), "caltech101_improved", spaces.caltech101_space),
        SearchSpace("clipart_clipnet", ("clipart",), "clipart_own", spaces.clipart_space),
        SearchSpace("faces_mlp", ("faces", "faces_alexnet"), "faces_mlp", spaces.faces_space),
    )
}


def tunable_tasks():
    from kerascnn.tasks import TASKS

    return [name for name, task in TASKS.items() if _space_of(task.config.dataset, task.config.model)]


def _space_of(dataset, model):
    for space in SPACES.values():
        if dataset in space.datasets and (space.name != "artists_simple_cnn" or model == "simple_cnn"):
            return space
    return None


def space_for(cfg):
    """The search space for ``cfg``'s task; a clear error, listing the tasks that have one, otherwise."""
    space = _space_of(cfg.dataset, cfg.model)
    if space is None:
        raise ValueError(f"task {cfg.task!r} (dataset {cfg.dataset}, model {cfg.model}) has no search space; "
                         f"tasks that have one: {', '.join(tunable_tasks())}")
    return space


class TaskHyperModel(keras_tuner.HyperModel):
    """Declares a space's hyperparameters and turns a trial's values into ``--set`` overrides.

    It builds no model: trials train through ``kerascnn.train`` (``tuning.search``), which builds and
    compiles the model from the overrides exactly as ``kerascnn train`` does.
    """

    def __init__(self, space, base_cfg, **kwargs):
        super().__init__(name=space.name, **kwargs)
        self.space, self.base_cfg = space, base_cfg

    def overrides(self, hp):
        return self.space.overrides(hp, self.base_cfg)

    def build(self, hp):
        # KerasTuner calls build to discover the space (conditional scopes included); declaring is enough.
        self.overrides(hp)
