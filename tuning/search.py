"""``kerascnn tune``: a KerasTuner search over the SimpleCNN family, then the best retrained as ordinary runs.

Layout of ``<out>/<name>/`` (``name`` defaults to ``<task>_<tuner>``): KerasTuner's own project
files (oracle.json, trial_*/), which make an interrupted search resume where it stopped;
``top_trials.csv`` / ``top_trials.md``; ``retrain/seed<k>/`` run directories of the best
configuration trained through ``kerascnn.train`` (metrics, checkpoints, export like any run); and
``summary.json`` with the best overrides, the command that reproduces them and the retrain scores.

Budgets: ``--max-epochs`` bounds every trial (Hyperband's brackets are derived from it, with
factor 3); ``--max-trials`` caps random and Bayesian searches; ``--time-budget`` minutes stops
starting new trials in this invocation (a running trial finishes). Distributed chief/worker mode is
KerasTuner's: set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT.
"""
import os
import shlex
import time
from pathlib import Path

from kerascnn.interrupt import Interrupted, stop_at_safe_points, stop_requested

TOP_TRIALS = 10


class BudgetSpent(Exception):
    """Raised between trials when the time budget is used up; the search state is already saved."""


def _budgeted(tuner_class):
    """A subclass of a KerasTuner tuner that stops starting trials once ``deadline`` has passed."""

    class Budgeted(tuner_class):
        deadline = None

        def pre_create_trial(self):
            if stop_requested():  # Ctrl-C: between trials, where the search state is saved
                raise Interrupted("stopped between trials")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise BudgetSpent()
            super().pre_create_trial()

    Budgeted.__name__ = f"Budgeted{tuner_class.__name__}"
    return Budgeted


def make_tuner(kind, hypermodel, *, max_epochs, max_trials, seed, directory, project_name, overwrite):
    import keras_tuner

    objective = keras_tuner.Objective("val_accuracy", direction="max")
    common = dict(objective=objective, seed=seed, directory=str(directory), project_name=project_name,
                  overwrite=overwrite)
    if kind == "hyperband":
        return _budgeted(keras_tuner.Hyperband)(hypermodel, max_epochs=max_epochs, factor=3, **common)
    if kind == "random":
        return _budgeted(keras_tuner.RandomSearch)(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return _budgeted(keras_tuner.BayesianOptimization)(hypermodel, max_trials=max_trials, **common)
    raise ValueError(f"unknown tuner {kind!r}; choose hyperband, random or bayesian")


def _is_worker():
    """True on a distributed-mode worker (it runs trials; the chief reports and retrains)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and "chief" not in tuner_id


def trial_row(rank, trial, hypermodel, max_epochs):
    from tuning.hypermodels import overrides_for, sample_space

    values = sample_space(trial.hyperparameters.copy())
    _, plan = overrides_for(values, hypermodel.input_shape[0])
    depth = len(plan.kernels)
    return {
        "rank": rank, "trial": trial.trial_id, "val_accuracy": trial.score,
        "epochs": trial.hyperparameters.values.get("tuner/epochs", max_epochs),
        "filters": "-".join(str(f) for f, _, _ in values["layers"][:depth]),
        "kernels": "-".join(map(str, plan.kernels)), "strides": "-".join(map(str, plan.strides)),
        "padding": plan.padding,
        "pooling": f"{values['pooling']}{plan.pool_size}" if values["pooling"] != "none" else "none",
        "dense": values["dense"], "dropout": round(values["dropout"], 2),
        "bn": values["batch_norm"], "optimizer": values["optimizer"],
        "lr": float(f"{values['learning_rate']:.3g}"), "wd": values["weight_decay"],
    }


def _trial_cell(row, column):
    return f"{row[column]:.4f}" if column == "val_accuracy" else str(row[column])


def write_trial_tables(project_dir, rows):
    from kerascnn.io import atomic_write
    from kerascnn.tables import csv_text, markdown_table

    atomic_write(project_dir / "top_trials.csv", csv_text(rows))
    atomic_write(project_dir / "top_trials.md", markdown_table(rows, cell=_trial_cell))


def reproduce_command(task, data_dir, overrides):
    parts = ["kerascnn", "train", "--task", task] + (["--data-dir", data_dir] if data_dir else [])
    return shlex.join(parts + ["--set", *overrides])


def run_search(*, task, tuner="hyperband", max_epochs=30, max_trials=30, time_budget=None, out="tuning_runs",
               name=None, retrain_seeds=1, overwrite=False, overrides=(), data_dir=None, verbose=1, progress=None):
    """Search, tabulate the top trials, retrain the best; returns the summary (also written to summary.json).

    ``overrides`` are ``--set``-style changes to the task's recipe that every trial shares;
    ``time_budget`` is in minutes; ``verbose`` is KerasTuner's search verbosity, and ``progress``,
    when given, is called with a line of text as each retraining starts. On a distributed-mode
    worker the result is only ``{"worker": True, "tuner_id": ...}``: the chief reports.
    """
    import keras

    from kerascnn.config import apply_overrides
    from kerascnn.data import load_dataset
    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset
    from kerascnn.experiments.runner import train_variant
    from kerascnn.io import write_json
    from kerascnn.models import model_arguments
    from kerascnn.tables import mean_sd
    from kerascnn.tasks import resolve_config
    from tuning.hypermodels import SimpleCNNHyperModel, overrides_for, sample_space

    overrides = list(overrides)
    base = resolve_config(task, overrides, data_dir=data_dir)
    if max_epochs < 1 or max_trials < 1 or retrain_seeds < 0:
        raise ValueError("--max-epochs and --max-trials must be >= 1 and --retrain-seeds >= 0")
    name = name or f"{task}_{tuner}"
    project_dir = Path(out) / name

    keras.utils.set_random_seed(base.seed)
    splits = load_dataset(base)
    hypermodel = SimpleCNNHyperModel(base, splits.input_shape, splits.num_classes)
    train_ds = make_dataset(splits.train.x, splits.train.y, splits.num_classes, base.batch_size, training=True,
                            augmentation=build_augmentation(base.augment, seed=base.seed), seed=base.seed)
    val_ds = make_dataset(splits.val.x, splits.val.y, splits.num_classes, base.batch_size)

    search = make_tuner(tuner, hypermodel, max_epochs=max_epochs, max_trials=max_trials,
                        seed=base.seed, directory=out, project_name=name, overwrite=overwrite)
    if time_budget:
        search.deadline = time.monotonic() + 60 * time_budget
    started = time.monotonic()
    stopped_by_budget = False
    try:
        with stop_at_safe_points():
            search.search(train_ds, validation_data=val_ds, epochs=max_epochs, verbose=verbose)
    except BudgetSpent:
        stopped_by_budget = True
    search_minutes = (time.monotonic() - started) / 60
    if _is_worker():
        return {"worker": True, "tuner_id": os.environ["KERASTUNER_TUNER_ID"]}

    trials = search.oracle.get_best_trials(num_trials=TOP_TRIALS)
    if not trials:
        raise ValueError(f"no finished trials in {project_dir}; give the search more --time-budget")
    rows = [trial_row(i + 1, t, hypermodel, max_epochs) for i, t in enumerate(trials)]
    write_trial_tables(project_dir, rows)
    finished = sum(1 for t in search.oracle.trials.values() if t.score is not None)

    best = trials[0]
    best_overrides, plan = overrides_for(sample_space(best.hyperparameters.copy()), splits.input_shape[0])
    cfg = apply_overrides(base, best_overrides, model_arguments(base.model))
    retrained = []
    for seed in range(retrain_seeds):
        run_dir = project_dir / "retrain" / f"seed{seed}"
        if progress is not None:
            progress(f"retraining the best configuration, seed {seed}: {run_dir}")
        metrics = train_variant(cfg.replace(seed=seed), run_dir, quiet=True)
        retrained.append({"seed": seed, "run_dir": str(run_dir), "val_accuracy": metrics["best"]["val_accuracy"],
                          "train_accuracy": metrics["best"]["train_accuracy"], "best_epoch": metrics["best_epoch"],
                          "epochs_run": metrics["epochs_run"]})
    mean, sd = mean_sd([r["val_accuracy"] for r in retrained])
    summary = {
        "task": task, "tuner": tuner, "tuning_dir": str(project_dir), "max_epochs": max_epochs,
        "trials_finished": finished, "search_minutes": round(search_minutes, 2),
        "stopped_by_budget": stopped_by_budget, "best_trial": best.trial_id, "best_search_score": best.score,
        "best_overrides": overrides + best_overrides, "fit_adjustments": plan.adjustments,
        "command": reproduce_command(task, data_dir, overrides + best_overrides),
        "top_trials": rows, "retrain": retrained, "val_accuracy_mean": mean, "val_accuracy_std": sd,
    }
    write_json(project_dir / "summary.json", summary)
    return summary
