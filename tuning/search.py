"""``kerascnn tune``: a KerasTuner search whose trials are ordinary ``kerascnn train`` runs, then an
honest winner.

Layout of ``<out>/<name>/`` (``name`` defaults to ``<task>_<tuner>``):

- ``search.json``: what the search is (task, space, tuner, epochs, shared overrides), checked on every
  start so a directory is never resumed by another task or space;
- KerasTuner's own project files (oracle.json, trial_*/), which make an interrupted search resume;
- ``trials/trial_<id>/``: each trial's run directory, trained by ``kerascnn.train`` from the task's
  recipe plus the trial's ``--set`` overrides, with ``epochs`` set to the trial's Hyperband budget;
  once the trial finishes its model files are deleted (``keep_trial_models`` keeps them), since the
  retrains below are the models to evaluate and export;
- ``retrain/trial_<id>/seed<k>/``: the top-k configurations retrained at the full budget on fresh seeds,
  ``select/split<k>/trial_<id>/``: each of them on the selection splits (``select_splits``), when asked,
  ``baseline/<task>/seed<k>/``: the family's best hand recipe on the same seeds,
  ``splits/split<k>/{winner,baseline}/``: the winner and the hand recipe on check splits the choice never saw;
- ``candidates.csv`` / ``candidates.md`` and ``summary.json``: search score, retrain mean ± sd and
  their difference (the search's optimism) for each candidate, the winner and its command;
- ``tensorboard/``: one HParams record per trial (``tensorboard --logdir <out>/<name>/tensorboard``).

Budgets: ``max_epochs`` (default: the recipe's epochs) bounds every trial, and Hyperband's brackets
are derived from it (factor 3); ``max_trials`` caps random and Bayesian searches; ``time_budget``
minutes stops starting new trials in this invocation. Distributed mode is KerasTuner's: set
KERASTUNER_TUNER_ID (``chief`` on the chief), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT; every
process runs the same command, workers train trials and the chief reports and retrains.
"""
import contextlib
import io
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import keras_tuner

from kerascnn.interrupt import Interrupted, stop_at_safe_points, stop_if_requested, stop_requested
from tuning.candidates import verdict, write_candidate_tables

TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVE = "val_accuracy"


BUDGET_FILE = "budget.json"


def spent_minutes(project_dir):
    """Minutes of search already spent in ``project_dir``: its budget file, else a finished search's summary
    (a search written before budget files existed), else none."""
    for name in (BUDGET_FILE, "summary.json"):
        path = Path(project_dir) / name
        if path.exists():
            return json.loads(path.read_text())["search_minutes"]
    return 0.0


class BudgetSpent(Exception):
    """Raised between trials when the time budget is used up; the search state is already saved."""


class TrialInterrupted(keras_tuner.errors.FatalError):
    """Ctrl-C inside a trial: a FatalError, so KerasTuner stops instead of marking the trial invalid."""


def is_worker():
    """True on a distributed-mode worker (it runs trials; the chief reports and retrains)."""
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def make_oracle(kind, *, max_epochs, max_trials, seed):
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    if kind == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(objective, max_epochs=max_epochs, factor=3, seed=seed)
    if kind == "random":
        return keras_tuner.oracles.RandomSearchOracle(objective, max_trials=max_trials, seed=seed)
    if kind == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(objective, max_trials=max_trials, seed=seed)
    raise ValueError(f"unknown tuner {kind!r}; choose one of {', '.join(TUNERS)}")


def trial_overrides(base, searched, epochs):
    """The ``--set`` list of a trial: the search's choices, then its epoch budget, with the warm-up scaled to it
    (cosine and step schedules already span ``epochs``)."""
    budget = [f"epochs={epochs}"]
    if base.warmup_epochs and epochs != base.epochs:
        budget.append(f"warmup_epochs={min(epochs - 1, round(base.warmup_epochs * epochs / base.epochs))}")
    return list(searched) + budget


class TrainEntryTuner(keras_tuner.Tuner):
    """Runs each trial through ``kerascnn.train`` (``run_trial`` below) and reports one line per trial."""

    def __init__(self, *, search, **kwargs):
        super().__init__(**kwargs)
        self.spec = search  # task, shared overrides, data_dir, max_epochs, trials_dir, progress, ...
        self.deadline = None
        self.started = time.monotonic()
        self.spent_before = 0.0  # minutes of search in earlier runs of the same command (budget.json)
        self.best = None
        self.scores = {}  # trial id -> score, for the trial's report (a worker's trial object never gets one)

    def searched(self, hp):
        return self.hypermodel.overrides(hp.copy())

    def run_trial(self, trial, *args, **kwargs):
        from kerascnn.experiments.runner import train_variant
        from kerascnn.io import write_json
        from kerascnn.rundir import drop_models
        from kerascnn.tasks import resolve_config

        spec = self.spec
        epochs = trial.hyperparameters.values.get("tuner/epochs", spec["max_epochs"])
        sets = spec["overrides"] + trial_overrides(self.hypermodel.base_cfg, self.searched(trial.hyperparameters),
                                                   epochs)
        cfg = resolve_config(spec["task"], sets, data_dir=spec["data_dir"])
        run_dir = Path(spec["trials_dir"]) / f"trial_{trial.trial_id}"
        try:
            metrics = train_variant(cfg, run_dir, quiet=True)
        except Interrupted as exc:
            raise TrialInterrupted(f"trial {trial.trial_id} stopped at an epoch boundary") from exc
        score = metrics["best"][OBJECTIVE]
        if not spec["keep_trial_models"]:
            drop_models(run_dir)
        write_json(Path(spec["trials_dir"]) / f"trial_{trial.trial_id}.json",
                   {"trial": trial.trial_id, "tuner_id": self.tuner_id, "epochs": epochs, OBJECTIVE: score,
                    "overrides": sets, "run_dir": str(run_dir)})
        self.scores[trial.trial_id] = score
        return {OBJECTIVE: score}

    def pre_create_trial(self):
        if stop_requested():  # Ctrl-C between trials, where the search state is saved
            raise Interrupted("stopped between trials")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetSpent()
        super().pre_create_trial()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.save_spent()
        self._log_hparams(trial)
        self._report(trial)

    def minutes(self):
        """Minutes of search so far, earlier runs of the same command included."""
        return self.spent_before + (time.monotonic() - self.started) / 60

    def save_spent(self):
        """Record the search time, so the same command after Ctrl-C or kill -9 gets only what is left of
        ``--time-budget``, not a fresh one. Workers leave it to the chief."""
        from kerascnn.io import write_json

        if not is_worker():
            write_json(Path(self.spec["project_dir"]) / BUDGET_FILE, {"search_minutes": round(self.minutes(), 4)})

    def _log_hparams(self, trial):
        from kerascnn.vis.tensorboard import write_hparams

        score = self.scores.get(trial.trial_id)
        if score is None:
            return
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        values["epochs"] = trial.hyperparameters.values.get("tuner/epochs", self.spec["max_epochs"])
        write_hparams(Path(self.spec["project_dir"]) / "tensorboard" / f"trial_{trial.trial_id}",
                      name=f"trial_{trial.trial_id}", hparams=values, metrics={OBJECTIVE: score})

    def _report(self, trial):
        progress = self.spec["progress"]
        if progress is None:
            return
        minutes = self.minutes()
        budget = f" of {self.spec['time_budget']:g}" if self.spec["time_budget"] else ""
        epochs = trial.hyperparameters.values.get("tuner/epochs", self.spec["max_epochs"])
        score = self.scores.get(trial.trial_id)
        if score is None:
            reason = (trial.message or "no score").strip().splitlines()[-1]
            progress(f"trial {trial.trial_id} ({epochs} epochs) failed after {minutes:.1f}{budget} min: {reason}")
            return
        self.best = score if self.best is None else max(self.best, score)
        progress(f"trial {trial.trial_id} ({epochs} epochs): {OBJECTIVE} {score:.4f}, best {self.best:.4f}, "
                 f"{minutes:.1f}{budget} min")


# ---------------------------------------------------------------- the search directory

def check_search_dir(project_dir, identity, overwrite):
    """Refuse a directory written by another task, space or tuner; clear it on ``overwrite``."""
    marker = project_dir / "search.json"
    if overwrite and project_dir.exists():
        if not marker.exists() and any(project_dir.iterdir()) and not (project_dir / "oracle.json").exists():
            raise ValueError(f"{project_dir} is not a search directory; refusing to overwrite it")
        shutil.rmtree(project_dir)
    if marker.exists():
        saved = json.loads(marker.read_text())
        different = {k: (saved.get(k), v) for k, v in identity.items() if saved.get(k) != v}
        if different:
            lines = ", ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in different.items())
            raise ValueError(f"{project_dir} holds another search ({lines}); choose another --name or --out, "
                             "or pass --overwrite to start afresh")
    elif project_dir.exists() and any(project_dir.iterdir()):
        raise ValueError(f"{project_dir} exists and is not a search of this tool (no search.json); choose another "
                         "--name or --out")


def reproduce_command(task, data_dir, overrides):
    parts = ["kerascnn", "train", "--task", task] + (["--data-dir", data_dir] if data_dir else [])
    return shlex.join(parts + (["--set", *overrides] if overrides else []))


def _train_seeds(task, sets, seeds, data_dir, folder, progress, label):
    from kerascnn.experiments.runner import train_variant
    from kerascnn.tasks import resolve_config

    scores = []
    for seed in seeds:
        run_dir = folder / f"seed{seed}"
        if not (run_dir / "metrics.json").exists():
            stop_if_requested(f"{label}, seed {seed}")
            if progress is not None:
                progress(f"{label}, seed {seed}: {run_dir}")
        cfg = resolve_config(task, list(sets) + [f"seed={seed}"], data_dir=data_dir)
        scores.append(train_variant(cfg, run_dir, quiet=True)["best"][OBJECTIVE])
    return scores


def _test_scores(folder, seeds):
    """Test accuracy of each seed's best-validation checkpoint under ``folder``, scored after the choice is
    made and never used for it; None when the task's data has no labelled test split."""
    from kerascnn.evaluate import evaluate_run

    try:
        return [evaluate_run(folder / f"seed{seed}", split="test", checkpoint="best")["accuracy"] for seed in seeds]
    except ValueError:  # no test split (artists, caltech101) or one without labels (clipart)
        return None


def finished_configurations(tuner):
    """One entry per distinct configuration, best first: its trial with the best score."""
    best = {}
    for trial in tuner.oracle.trials.values():
        if trial.score is None:
            continue
        searched = tuple(tuner.searched(trial.hyperparameters))
        epochs = trial.hyperparameters.values.get("tuner/epochs", tuner.spec["max_epochs"])
        if searched not in best or trial.score > best[searched]["search_score"]:
            best[searched] = {"trial": trial.trial_id, "epochs": epochs, "search_score": trial.score,
                              "overrides": list(searched)}
    # Ties broken by trial id: a reloaded oracle lists its trials in another order than the live one.
    return sorted(best.values(), key=lambda c: (-c["search_score"], c["trial"]))


# ---------------------------------------------------------------- the search

def run_search(*, task, tuner="hyperband", max_epochs=None, max_trials=30, time_budget=None, out="tuning_runs",
               name=None, top_k=3, retrain_seeds=3, split_seeds=(), select_splits=(), baseline=None, overwrite=False,
               overrides=(), data_dir=None, keep_trial_models=False, verbose=False, progress=None):
    """Search, retrain the top ``top_k`` configurations on ``retrain_seeds`` fresh seeds, pick the best mean, and
    compare it with the family's hand recipe (``baseline``, default the space's) on the same seeds and on
    ``split_seeds``; returns the summary (also written to summary.json).

    ``select_splits`` are further validation splits for the choice: each candidate also trains once on each,
    and the winner is the best mean over splits (its retrain mean on the search's own split counting as one),
    so that on a small validation set the choice follows the configuration rather than one split's images.
    They must differ from the search's own split and from ``split_seeds``, which stay unseen by the choice.

    ``overrides`` are ``--set`` changes to the task's recipe that every trial, retrain and baseline shares;
    ``time_budget`` is in minutes; ``keep_trial_models`` keeps every trial's model files; ``verbose`` shows KerasTuner's own tables; ``progress``, when given, is
    called with one line of text per trial and per retraining. On a distributed-mode worker the result is
    only ``{"worker": True, "tuner_id": ...}``: the chief reports.
    """
    from kerascnn.io import write_json
    from kerascnn.tables import mean_sd
    from kerascnn.tasks import resolve_config
    from tuning.hypermodels import TaskHyperModel, space_for

    if tuner not in TUNERS:
        raise ValueError(f"unknown tuner {tuner!r}; choose one of {', '.join(TUNERS)}")
    if max_epochs is not None and max_epochs < 1:
        raise ValueError(f"--max-epochs must be >= 1, got {max_epochs}")
    if max_trials < 1 or top_k < 1 or retrain_seeds < 1:
        raise ValueError("--max-trials, --top-k and --retrain-seeds must be >= 1")
    if time_budget is not None and time_budget <= 0:
        raise ValueError(f"--time-budget must be a positive number of minutes, got {time_budget:g}")
    overrides = list(overrides)
    base = resolve_config(task, overrides, data_dir=data_dir)
    select_splits = list(select_splits)
    seen = {base.split_seed: "the search's own split", **{k: "a --split-seeds check split" for k in split_seeds}}
    clashes = [f"{k} ({seen[k]})" for k in select_splits if k in seen]
    if clashes or len(set(select_splits)) != len(select_splits):
        raise ValueError(f"--select-splits {' '.join(map(str, select_splits))} must be distinct and differ from the "
                         f"search's own split ({base.split_seed}) and from --split-seeds "
                         f"({' '.join(map(str, split_seeds)) or 'none'}); clashing: {', '.join(clashes) or 'repeats'}")
    space = space_for(base)
    baseline = baseline or (space.hand_recipe if resolve_config(space.hand_recipe).dataset == base.dataset else task)
    max_epochs = max_epochs or base.epochs
    name = name or f"{task}_{tuner}"
    project_dir = Path(out) / name
    identity = {"task": task, "space": space.name, "tuner": tuner, "max_epochs": max_epochs, "overrides": overrides}
    if not is_worker():
        check_search_dir(project_dir, identity, overwrite)
        project_dir.mkdir(parents=True, exist_ok=True)
        write_json(project_dir / "search.json", identity)

    spec = {"task": task, "overrides": overrides, "data_dir": data_dir, "max_epochs": max_epochs,
            "trials_dir": str(project_dir / "trials"), "project_dir": str(project_dir), "progress": progress,
            "time_budget": time_budget, "keep_trial_models": keep_trial_models}
    with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):  # KerasTuner prints "Reloading Tuner"
        search = TrainEntryTuner(search=spec, oracle=make_oracle(tuner, max_epochs=max_epochs, max_trials=max_trials,
                                                                 seed=base.seed),
                                 hypermodel=TaskHyperModel(space, base), directory=str(out), project_name=name)
    if progress is not None and not is_worker():
        finished = sum(1 for t in search.oracle.trials.values() if t.score is not None)
        if finished:
            progress(f"resuming the search in {project_dir}: {finished} trials finished")
    search.spent_before = spent_minutes(project_dir)
    if time_budget:
        search.deadline = time.monotonic() + 60 * (time_budget - search.spent_before)
    stopped_by_budget = False
    try:
        with stop_at_safe_points():
            search.search(verbose=1 if verbose else 0)
    except BudgetSpent:
        stopped_by_budget = True
    except TrialInterrupted as exc:
        raise Interrupted(f"{exc}; the same command resumes the search") from exc
    finally:
        search.save_spent()
    search_minutes = search.minutes()
    if is_worker():
        return {"worker": True, "tuner_id": os.environ["KERASTUNER_TUNER_ID"]}

    configurations = finished_configurations(search)
    if not configurations:
        raise ValueError(f"no finished trials in {project_dir}; give the search more --time-budget")
    seeds = [base.seed + k for k in range(1, retrain_seeds + 1)]  # the search trained on base.seed
    full_budget = trial_overrides(base, [], max_epochs)
    candidates = []
    with stop_at_safe_points():
        for rank, config in enumerate(configurations[:top_k], start=1):
            scores = _train_seeds(task, overrides + config["overrides"] + full_budget, seeds, data_dir,
                                  project_dir / "retrain" / f"trial_{config['trial']}", progress,
                                  f"retraining candidate {rank} (trial {config['trial']})")
            mean, sd = mean_sd(scores)
            candidate = {"rank": rank, **config, "retrain_scores": scores, "retrain_mean": mean,
                         "retrain_sd": sd, "optimism": config["search_score"] - mean}
            if select_splits:
                split_scores = [_train_seeds(task, overrides + config["overrides"] + full_budget + [f"split_seed={k}"],
                                             seeds[:1], data_dir, project_dir / "select" / f"split{k}" /
                                             f"trial_{config['trial']}", progress,
                                             f"candidate {rank} (trial {config['trial']}) on selection split {k}")[0]
                                for k in select_splits]
                candidate["select_scores"] = split_scores
                candidate["select_mean"], candidate["select_sd"] = mean_sd([mean] + split_scores)
            candidates.append(candidate)
        hand = _train_seeds(baseline, overrides, seeds, data_dir, project_dir / "baseline" / baseline, progress,
                            f"training the hand recipe {baseline}")
        winner = max(candidates, key=lambda c: c["select_mean"] if select_splits else c["retrain_mean"])
        winner_sets = overrides + winner["overrides"] + full_budget
        splits = []
        for split in split_seeds:
            folder = project_dir / "splits" / f"split{split}"
            won = _train_seeds(task, winner_sets + [f"split_seed={split}"], seeds[:1], data_dir, folder / "winner",
                               progress, f"the winner on validation split {split}")
            held = _train_seeds(baseline, overrides + [f"split_seed={split}"], seeds[:1], data_dir,
                                folder / "baseline", progress, f"the hand recipe on validation split {split}")
            splits.append({"split_seed": split, "winner": won[0], "baseline": held[0]})

    hand_mean, hand_sd = mean_sd(hand)
    # Test accuracy of the winner and the hand recipe, scored once the winner is chosen on validation.
    winner_test = _test_scores(project_dir / "retrain" / f"trial_{winner['trial']}", seeds)
    hand_test = _test_scores(project_dir / "baseline" / baseline, seeds)
    summary = {
        "task": task, "tuner": tuner, "space": space.name, "tuning_dir": str(project_dir), "max_epochs": max_epochs,
        "trials_finished": sum(1 for t in search.oracle.trials.values() if t.score is not None),
        "search_minutes": round(search_minutes, 2), "stopped_by_budget": stopped_by_budget,
        "seeds": seeds, "candidates": candidates, "winner": winner,
        "winner_overrides": overrides + winner["overrides"],
        "command": reproduce_command(task, data_dir, winner_sets),
        "baseline": {"task": baseline, "scores": hand, "mean": hand_mean, "sd": hand_sd,
                     "command": reproduce_command(baseline, data_dir, overrides)},
        "verdict": verdict(winner["retrain_mean"], winner["retrain_sd"], hand_mean, hand_sd),
        "split_seeds": splits, "select_splits": select_splits,
    }
    summary["beats_baseline"] = summary["verdict"] == "beats"
    if winner_test is not None and hand_test is not None:
        (test_mean, test_sd), (hand_test_mean, hand_test_sd) = mean_sd(winner_test), mean_sd(hand_test)
        summary["test"] = {"winner_scores": winner_test, "winner_mean": test_mean, "winner_sd": test_sd,
                           "baseline_scores": hand_test, "baseline_mean": hand_test_mean, "baseline_sd": hand_test_sd,
                           "verdict": verdict(test_mean, test_sd, hand_test_mean, hand_test_sd)}
    if splits:
        summary["split_winner_mean"], summary["split_winner_sd"] = mean_sd([s["winner"] for s in splits])
        summary["split_baseline_mean"], summary["split_baseline_sd"] = mean_sd([s["baseline"] for s in splits])
    write_candidate_tables(project_dir, candidates)
    write_json(project_dir / "summary.json", summary)
    return summary
