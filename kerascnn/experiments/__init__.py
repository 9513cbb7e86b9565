"""The assignments' studies as data: a study is a base task plus named lists of --set overrides.

Study definitions live in one module per task (``kerascnn.experiments.artists`` ...), imported by
name in ``load_studies``, and register themselves with ``study(...)``; ``run_study`` trains every
variant through the normal training entry and writes the table and figures.
"""
import typing
from dataclasses import dataclass, field

STUDIES = {}


@dataclass
class Study:
    name: str
    task: str
    description: str
    variants: list  # [(variant name, [overrides])]
    base: list = field(default_factory=list)  # overrides shared by every variant
    sweep: str = None  # a numeric key swept across variants: plot accuracy against it
    # Called as post(study, study_dir, results, quiet=...) after training; returns the table's rows and columns.
    post: typing.Callable = None
    repeats: int = 1  # seeds per variant by default: enough that the study's gaps can be told from noise
    pretrained_on: str = None  # the pretraining task whose run `kerascnn reproduce` passes in backbone_setting
    backbone_setting: str = "model.weights"  # feature_weights where the study trains on cached features
    # What `kerascnn reproduce` runs where the whole grid does not fit the overnight budget: the informative
    # variants (empty: all) and --set overrides (e.g. fewer epochs). `kerascnn experiment` runs the whole grid.
    reproduce_only: list = field(default_factory=list)
    reproduce_sets: list = field(default_factory=list)


def study(name, task, description, variants, base=(), sweep=None, post=None, repeats=1, pretrained_on=None,
          backbone_setting="model.weights", reproduce_only=(), reproduce_sets=()):
    names = [n for n, _ in variants]
    unknown = sorted(set(reproduce_only) - set(names))
    if unknown:
        raise ValueError(f"study {name}: reproduce_only names unknown variants {unknown}")
    STUDIES[name] = Study(name, task, description, [(n, list(o)) for n, o in variants], list(base), sweep, post,
                          repeats, pretrained_on, backbone_setting, list(reproduce_only), list(reproduce_sets))


def load_studies():
    """Import the study modules, which register their studies; a new study module is added here."""
    from kerascnn.experiments import artists, caltech101, cifar10, clipart, faces  # noqa: F401


def run_study(*args, **kwargs):
    from kerascnn.experiments.runner import run_study as run

    return run(*args, **kwargs)


load_studies()
