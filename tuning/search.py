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
import csv
import io
import os
import shlex
import time
from pathlib import Path

import numpy as np

TOP_TRIALS = 10


class BudgetSpent(Exception):
    """Raised between trials when the time budget is used up; the search state is already saved."""


def _budgeted(tuner_class):
    """A subclass of a KerasTuner tuner that stops starting trials once ``deadline`` has passed."""

    class Budgeted(tuner_class):
        deadline = None

        def pre_create_trial(self):
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


def write_trial_tables(project_dir, rows):
    from kerascnn.io import atomic_write

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(project_dir / "top_trials.csv", buf.getvalue())
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(f"{v:.4f}" if k == "val_accuracy" else str(v) for k, v in r.items()) + " |"
              for r in rows]
    atomic_write(project_dir / "top_trials.md", "\n".join(lines) + "\n")


def reproduce_command(task, data_dir, overrides):
    parts = ["kerascnn", "train", "--task", task] + (["--data-dir", data_dir] if data_dir else [])
    return shlex.join(parts + ["--set", *overrides])


def run_search(args):
    """Search, tabulate the top trials, retrain the best; returns a dict with "text" for display."""
    import keras

    from kerascnn.cli import format_table
    from kerascnn.config import apply_overrides
    from kerascnn.data import load_dataset
    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset
    from kerascnn.experiments.runner import train_variant
    from kerascnn.io import write_json
    from kerascnn.models import model_arguments
    from kerascnn.tasks import resolve_config
    from tuning.hypermodels import SimpleCNNHyperModel, overrides_for, sample_space

    base = resolve_config(args.task, args.set or (), data_dir=args.data_dir)
    if args.max_epochs < 1 or args.max_trials < 1 or args.retrain_seeds < 0:
        raise ValueError("--max-epochs and --max-trials must be >= 1 and --retrain-seeds >= 0")
    name = args.name or f"{args.task}_{args.tuner}"
    project_dir = Path(args.out) / name

    keras.utils.set_random_seed(base.seed)
    splits = load_dataset(base)
    hypermodel = SimpleCNNHyperModel(base, splits.input_shape, splits.num_classes)
    train_ds = make_dataset(splits.train.x, splits.train.y, splits.num_classes, base.batch_size, training=True,
                            augmentation=build_augmentation(base.augment, seed=base.seed), seed=base.seed)
    val_ds = make_dataset(splits.val.x, splits.val.y, splits.num_classes, base.batch_size)

    tuner = make_tuner(args.tuner, hypermodel, max_epochs=args.max_epochs, max_trials=args.max_trials,
                       seed=base.seed, directory=args.out, project_name=name, overwrite=args.overwrite)
    if args.time_budget:
        tuner.deadline = time.monotonic() + 60 * args.time_budget
    started = time.monotonic()
    stopped_by_budget = False
    try:
        tuner.search(train_ds, validation_data=val_ds, epochs=args.max_epochs,
                     verbose=0 if args.json else 1)
    except BudgetSpent:
        stopped_by_budget = True
    search_minutes = (time.monotonic() - started) / 60
    if _is_worker():
        return {"text": f"worker {os.environ['KERASTUNER_TUNER_ID']} finished its trials", "worker": True}

    trials = tuner.oracle.get_best_trials(num_trials=TOP_TRIALS)
    if not trials:
        raise ValueError(f"no finished trials in {project_dir}; give the search more --time-budget")
    rows = [trial_row(i + 1, t, hypermodel, args.max_epochs) for i, t in enumerate(trials)]
    write_trial_tables(project_dir, rows)
    finished = sum(1 for t in tuner.oracle.trials.values() if t.score is not None)

    best = trials[0]
    overrides, plan = overrides_for(sample_space(best.hyperparameters.copy()), splits.input_shape[0])
    cfg = apply_overrides(base, overrides, model_arguments(base.model))
    retrained = []
    for seed in range(args.retrain_seeds):
        run_dir = project_dir / "retrain" / f"seed{seed}"
        if not args.json:
            print(f"retraining the best configuration, seed {seed}: {run_dir}", flush=True)
        metrics = train_variant(cfg.replace(seed=seed), run_dir, quiet=True)
        retrained.append({"seed": seed, "run_dir": str(run_dir), "val_accuracy": metrics["best"]["val_accuracy"],
                          "train_accuracy": metrics["best"]["train_accuracy"], "best_epoch": metrics["best_epoch"],
                          "epochs_run": metrics["epochs_run"]})
    scores = np.array([r["val_accuracy"] for r in retrained], dtype=float)
    summary = {
        "task": args.task, "tuner": args.tuner, "tuning_dir": str(project_dir), "max_epochs": args.max_epochs,
        "trials_finished": finished, "search_minutes": round(search_minutes, 2),
        "stopped_by_budget": stopped_by_budget, "best_trial": best.trial_id, "best_search_score": best.score,
        "best_overrides": list(args.set or []) + overrides, "fit_adjustments": plan.adjustments,
        "command": reproduce_command(args.task, args.data_dir, list(args.set or []) + overrides),
        "top_trials": rows, "retrain": retrained,
        "val_accuracy_mean": float(scores.mean()) if len(scores) else None,
        "val_accuracy_std": float(scores.std(ddof=1)) if len(scores) > 1 else None,
    }
    write_json(project_dir / "summary.json", summary)

    text = [f"{finished} trials finished ({args.tuner}, {search_minutes:.1f} min this run"
            f"{', stopped by the time budget' if stopped_by_budget else ''}); top {len(rows)}:",
            format_table(rows), "", "best configuration: " + " ".join(overrides)]
    if retrained:
        spread = f" ± {summary['val_accuracy_std']:.4f}" if summary["val_accuracy_std"] is not None else ""
        text.append(f"retrained {len(retrained)} seed(s) for {cfg.epochs} epochs: val accuracy "
                    f"{summary['val_accuracy_mean']:.4f}{spread} "
                    f"({', '.join(f'{r:.4f}' for r in scores)}); runs in {project_dir / 'retrain'}")
    text.append(f"reproduce: {summary['command']}")
    return {**summary, "text": "\n".join(text)}
