"""The assignments' studies as data: a study is a base task plus named lists of --set overrides.

Study definitions live in one module per task (``kerascnn.experiments.artists`` ...) and register
themselves with ``study(...)``; ``run_study`` trains every variant through the normal training
entry and writes the table and figures.
"""
import importlib
import pkgutil
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
    post: str = None  # "module:function" run after training, given the study result


def study(name, task, description, variants, base=(), sweep=None, post=None):
    STUDIES[name] = Study(name, task, description, [(n, list(o)) for n, o in variants], list(base), sweep, post)


def load_studies():
    """Import every study module of this package (all but the runner)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "runner":
            importlib.import_module(f"kerascnn.experiments.{info.name}")


def run_study(*args, **kwargs):
    from kerascnn.experiments.runner import run_study as run

    return run(*args, **kwargs)


load_studies()
