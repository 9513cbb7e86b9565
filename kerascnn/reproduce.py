"""``kerascnn reproduce FAMILY... | all``: every task default and every study of the named families at their
documented settings, one job at a time, then each family's report.

The plan is data (``plan_steps``): the Caltech-101 pretraining runs a transfer task or study needs come
first (``Task.pretrained_on`` / ``Study.pretrained_on`` name them, and the transfer step gets the run
directory as its backbone), then each family's tasks, its studies at their own seeds (``Study.repeats``)
and its report. Everything lands under one root:

    ROOT/runs/<task>/              one run directory per task default
    ROOT/studies/<study>/          the studies, as ``kerascnn experiment --out ROOT/studies`` writes them
    ROOT/throughput.json           the step benchmark per model shape that estimates are made from
    ROOT/reports/<family>.md       the reports

Re-running the same command skips finished runs and resumes an interrupted one (the training entry and
the study runner do both), so an overnight reproduction survives Ctrl-C, a reboot or kill -9.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = ("artists", "cifar10", "caltech101", "clipart", "faces")
# A dataset's family; the faces_alexnet features are the faces assignment's part 2.2.
DATASET_FAMILY = {"artists": "artists", "cifar10": "cifar10", "caltech101": "caltech101", "clipart": "clipart",
                  "faces": "faces", "faces_alexnet": "faces"}
# Fixed costs of a run beyond its training steps: building the model, tracing its steps, the final evaluation
# and figures; and per epoch, validation (a forward pass costs about a third of a train step). The artists
# studies, 3 s a run all told, put the fixed cost at 1-3 s; feature extraction and ZCA add a few more.
RUN_OVERHEAD_S = 5.0
VALIDATION_COST = 1 / 3
REPORT_SECONDS = 60.0  # a report evaluates a few checkpoints and draws its figures
# The sizing the defaults are made to: a task default trains in one sitting, the whole course overnight.
TASK_BUDGET_S = 45 * 60
NIGHT_S = 10 * 3600


@dataclass
class Step:
    kind: str  # "train", "experiment" or "report"
    name: str  # a task, a study or a family
    family: str
    sets: list = field(default_factory=list)  # --set overrides: the backbone run, a study's overnight sizing
    backbone: str = None  # the run directory a transfer step starts from
    repeats: int = 1
    only: list = field(default_factory=list)  # a study's variants, where it runs a subset (empty: all)
    # {variant: task}: a study variant whose seed-0 run is a task's default run, made by an earlier step and
    # linked into the study instead of being trained twice.
    reuse: dict = field(default_factory=dict)
    estimate_s: float = None  # the whole step's wall time
    left_s: float = None  # the part of it whose runs are not finished yet
    measured_s: float = 0.0  # training time of its finished runs (metrics.json)
    finished: int = 0  # its finished runs, of ``runs``
    runs: int = 0

    def command(self, root):
        root = Path(root)
        if self.kind == "train":
            parts = ["kerascnn", "train", "--task", self.name, "--run-dir", str(root / "runs" / self.name)]
        elif self.kind == "experiment":
            parts = ["kerascnn", "experiment", self.name, "--out", str(root / "studies")]
            parts += ["--repeats", str(self.repeats)] if self.repeats > 1 else []
            parts += ["--only", *self.only] if self.only else []
        else:
            parts = ["kerascnn", "report", self.name, "--runs", str(root / "runs"), "--studies", str(root / "studies"),
                     "--tuning", str(root / "tuning"), "--out", str(root / "reports" / f"{self.name}.md")]
        return " ".join(parts + (["--set", *self.sets] if self.sets else []))


def family_tasks(family):
    from kerascnn.tasks import TASKS

    return [name for name, task in TASKS.items() if DATASET_FAMILY.get(task.config.dataset) == family]


def family_studies(family):
    from kerascnn.experiments import STUDIES

    return [name for name in STUDIES if name.split(".")[0] == family]


def _backbone_run(pretrained_on, root):
    return str(Path(root) / "runs" / pretrained_on) if pretrained_on else None


def plan_steps(families, root, min_seeds=1):
    """The ordered steps that reproduce ``families`` (names from FAMILIES, or "all") under ``root``, every study
    on its own seeds (``Study.repeats``, sized to fit a night) or on ``min_seeds``, whichever is more."""
    from kerascnn.experiments import STUDIES
    from kerascnn.tasks import TASKS

    if min_seeds < 1:
        raise ValueError(f"--min-seeds must be >= 1, got {min_seeds}")
    families = list(FAMILIES) if "all" in families else list(dict.fromkeys(families))
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown family {', '.join(unknown)}; choose from {', '.join(FAMILIES)} or all")
    wanted_tasks = [t for f in families for t in family_tasks(f)]
    wanted_studies = [s for f in families for s in family_studies(f)]
    pretraining = [TASKS[t].pretrained_on for t in wanted_tasks if TASKS[t].pretrained_on]
    pretraining += [STUDIES[s].pretrained_on for s in wanted_studies if STUDIES[s].pretrained_on]
    steps, trained = [], {}  # trained: a planned task's recipe -> the task

    def train_step(task):
        if task not in trained.values():
            spec = TASKS[task]
            backbone = _backbone_run(spec.pretrained_on, root)
            step = Step("train", task, DATASET_FAMILY[spec.config.dataset],
                        [f"{spec.backbone_setting}={backbone}"] if backbone else [], backbone=backbone)
            trained[_recipe(step_configs(step)[0])] = task
            steps.append(step)

    for task in dict.fromkeys(pretraining):  # backbones first: later steps read their runs
        train_step(task)
    for family in families:
        for task in family_tasks(family):
            train_step(task)
        for name in family_studies(family):
            study = STUDIES[name]
            backbone = _backbone_run(study.pretrained_on, root)
            sets = ([f"{study.backbone_setting}={backbone}"] if backbone else []) + study.reproduce_sets
            step = Step("experiment", name, family, sets, backbone=backbone, repeats=max(study.repeats, min_seeds),
                        only=study.reproduce_only)
            step.reuse = {variant: trained[_recipe(cfg)] for variant, seed, cfg in study_runs(step)
                          if seed == 0 and _recipe(cfg) in trained}
            steps.append(step)
        steps.append(Step("report", family, family))
    return steps


def _recipe(cfg):
    """What makes two runs the same run: the config, whatever task name it was reached through."""
    from kerascnn.experiments.runner import comparable

    return json.dumps({k: v for k, v in comparable(cfg.to_dict()).items() if k != "task"}, sort_keys=True)


# ---------------------------------------------------------------- estimates

def study_runs(step):
    """(variant, seed, config) of every run an experiment step makes, as the study runner resolves them."""
    from kerascnn.experiments import STUDIES
    from kerascnn.tasks import resolve_config

    study = STUDIES[step.name]
    return [(name, seed, resolve_config(study.task, study.base + overrides + step.sets + [f"seed={seed}"]))
            for name, overrides in study.variants if not step.only or name in step.only
            for seed in range(step.repeats)]


def step_runs(step, root, *, reused=True):
    """(run directory, config) of every run a step makes: a task's default run, or each variant times each seed
    of a study (``reused=False`` leaves out the runs an earlier task step makes)."""
    from kerascnn.tasks import resolve_config

    root = Path(root)
    if step.kind == "train":
        return [(root / "runs" / step.name, resolve_config(step.name, step.sets))]
    if step.kind == "experiment":
        return [(root / "studies" / step.name / "runs" / variant / f"seed{seed}", cfg)
                for variant, seed, cfg in study_runs(step) if reused or not (seed == 0 and variant in step.reuse)]
    return []


def step_configs(step, *, reused=True):
    """Every run config a step makes (see ``step_runs``)."""
    return [cfg for _, cfg in step_runs(step, ".", reused=reused)]


def run_phases(cfg):
    """(config, epochs) per training phase. A recipe that trains the head on a frozen backbone and then
    fine-tunes has two, at very different speeds: a frozen ResNet-50 at 96 px trains about 4x faster than a
    whole one."""
    from kerascnn.models import trains_backbone

    if not trains_backbone(cfg.model, cfg.model_args) and cfg.fine_tune_epochs:
        whole = cfg.replace(model_args={**cfg.model_args, "train_backbone": True})
        return [(cfg, cfg.epochs), (whole, cfg.fine_tune_epochs)]
    return [(cfg, cfg.epochs + cfg.fine_tune_epochs)]


# Model arguments that set the weights' values, not the work a step does; and rates whose value costs nothing,
# only whether they are on (a dropout layer exists or not).
VALUE_ONLY_ARGS = ("weights", "pretrained", "l2", "initializer", "bn_momentum", "train_backbone")
RATE_ARGS = ("dropout", "stochastic_depth")


def shape_key(cfg):
    """What a training step's speed depends on: the model, its input and batch, whether the backbone trains, the
    preprocessing, each model argument that changes the work from the builder's default (batch norm, widths,
    strides, pooling, a dropout layer) and the augmentation's transforms. Configs with one key share one step
    benchmark; the batch-norm ConvNet trains about a fifth slower than the plain one, a stride of 1 several
    times slower than 2."""
    from kerascnn.models import model_arguments, trains_backbone

    defaults = model_arguments(cfg.model)

    def work(name, value):
        return ("on" if value else "off") if name in RATE_ARGS else json.dumps(value)

    changed = [f"{name}={work(name, value)}" for name, value in sorted(cfg.model_args.items())
               if name not in VALUE_ONLY_ARGS and work(name, value) != work(name, defaults.get(name))]
    augment = [entry.partition(":")[0] for entry in cfg.augment]
    return "|".join([cfg.model, f"{cfg.image_size}px{' grey' if cfg.grayscale else ''}", f"batch{cfg.batch_size}",
                     "trained" if trains_backbone(cfg.model, cfg.model_args) else "frozen",
                     f"preprocess={cfg.preprocess}", *changed] + ([f"augment={','.join(augment)}"] if augment else []))


def dataset_sizes(cfg, cache):
    """(train, val, test) image counts of ``cfg``'s dataset and split, loaded once and remembered in ``cache``."""
    from kerascnn.data import load_dataset

    key = f"{cfg.dataset}|{cfg.val_fraction}"
    if len(cache.get(key, ())) != 3:
        splits = load_dataset(cfg)
        cache[key] = [len(splits.train.x), len(splits.val.x), len(splits.test.x) if splits.test else 0]
    return cache[key]


def without_weights(cfg):
    """``cfg`` with its model's weights drawn at random: speed does not depend on them, and the backbone run or
    download a step names need not exist when its time is estimated."""
    model_args = {**cfg.model_args, "weights": None} if "weights" in cfg.model_args else cfg.model_args
    return cfg.replace(model_args=model_args, feature_weights=None)


def measure_throughput(cfg, cache, images=None):
    """Training images/s of ``cfg``'s model shape from a short synthetic step benchmark with the recipe's
    augmentation (which runs inside the step), remembered in ``cache``."""
    from kerascnn.benchmark import step_throughput
    from kerascnn.data import dataset_module

    key = shape_key(cfg)
    if key not in cache:
        shape, classes = dataset_module(cfg.dataset).input_spec(cfg)
        result = step_throughput(cfg, shape, classes, images=images or max(4 * cfg.batch_size, 256),
                                 augment=bool(cfg.augment))
        cache[key] = result["step_images_per_s"]
    return cache[key]


def estimate_run_seconds(cfg, images_per_s, sizes):
    """A run's wall time from ``images_per_s(phase_cfg)`` and its (train, val, test) sizes: each epoch trains on
    the training images and evaluates the validation images, and the test images too when the recipe tracks
    test accuracy."""
    train_images, val_images, test_images = sizes
    evaluated = val_images + (test_images if cfg.track_test else 0)
    return RUN_OVERHEAD_S + sum(epochs * (train_images + VALIDATION_COST * evaluated) / images_per_s(phase)
                                for phase, epochs in run_phases(cfg))


# Throughputs kept under another format were keyed and measured differently and are measured again: format 1
# filed a vgg_transfer left at its builder's default (a frozen backbone) under "trained", shared one figure
# between a model's variants, and left the augmentation out.
CACHE_FORMAT = 2


def load_cache(root):
    """ROOT/throughput.json: step throughputs per model shape, the machine they were measured on
    (``runtime_info()``, None where the file does not say), and dataset sizes."""
    path = Path(root) / "throughput.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    throughputs = cache.get("images_per_s", {}) if cache.get("format") == CACHE_FORMAT else {}
    return {"format": CACHE_FORMAT, "machine": cache.get("machine"), "images_per_s": throughputs,
            "sizes": cache.get("sizes", {})}


def estimate(steps, *, root, data_root=None, progress=None, measure=True):
    """Set each step's ``estimate_s`` from the step benchmark of its model shapes (measured once per shape and
    kept in ROOT/throughput.json) and its dataset sizes, its ``left_s`` from the runs not finished under
    ``root``, and ``measured_s`` and ``finished`` from those finished; returns the steps. ``measure=False``
    only reads throughput.json: a step with a shape or dataset it lacks gets no estimate (None)."""
    from kerascnn import rundir
    from kerascnn.io import write_json

    cache = load_cache(root)
    if measure:
        from kerascnn.benchmark import runtime_info

        # Estimates are this machine's: throughputs from another one, or from one the file does not name, are
        # measured again (the root may have moved, or the host changed under it).
        here = runtime_info()
        if cache["machine"] != here:
            if cache["images_per_s"] and progress is not None:
                from kerascnn.machine import machine_line

                where = machine_line(cache["machine"]) if cache["machine"] else "a machine it does not name"
                progress(f"{Path(root) / 'throughput.json'} holds step throughputs measured on {where}: "
                         "measuring them again on this one")
            cache.update(machine=here, images_per_s={})

    def images_per_s(cfg):
        if progress is not None and shape_key(cfg) not in cache["images_per_s"]:
            progress(f"measuring step throughput of {shape_key(cfg)}")
        measured = measure_throughput(cfg, cache["images_per_s"])
        write_json(Path(root) / "throughput.json", cache)
        return measured

    def cached(cfg):
        return shape_key(cfg) in cache["images_per_s"] and f"{cfg.dataset}|{cfg.val_fraction}" in cache["sizes"]

    for step in steps:
        step.estimate_s = step.left_s = REPORT_SECONDS if step.kind == "report" else 0.0
        runs = step_runs(step, root, reused=False)
        step.runs, step.finished, step.measured_s = len(runs), 0, 0.0
        for run_dir, cfg in runs:
            cfg = without_weights(cfg.replace(data_dir=_data_dir(cfg, data_root)))
            done = (run_dir / "metrics.json").exists()
            if done:
                step.finished += 1
                step.measured_s += rundir.read_json(run_dir, "metrics.json")["train_seconds"]
            if step.estimate_s is None or not (measure or all(cached(phase) for phase, _ in run_phases(cfg))):
                step.estimate_s = step.left_s = None
                continue
            seconds = estimate_run_seconds(cfg, images_per_s, dataset_sizes(cfg, cache["sizes"]))
            step.estimate_s += seconds
            step.left_s += 0.0 if done else seconds
    if measure:
        write_json(Path(root) / "throughput.json", cache)
    return steps


def _data_dir(cfg, data_root):
    """The dataset's folder under ``data_root`` in the layout of ../shared/data (None: the data home)."""
    if not data_root:
        return cfg.data_dir
    from kerascnn.data import DATA_SUBDIRS

    return str(Path(data_root) / DATA_SUBDIRS[cfg.dataset])


# ---------------------------------------------------------------- checks and running

def check_inputs(steps, *, root, data_root=None):
    """Problems that would stop the reproduction: a missing dataset, or a backbone run that no earlier step makes
    and that is not there. Returns a list of messages (empty: ready)."""
    from kerascnn.data import DATA_SUBDIRS, data_home

    problems, planned = [], {s.name for s in steps if s.kind == "train"}
    datasets = {cfg.dataset for s in steps for cfg in step_configs(s)}
    for dataset in sorted(datasets):
        folder = Path(data_root) / DATA_SUBDIRS[dataset] if data_root else data_home() / DATA_SUBDIRS[dataset]
        if not folder.exists():
            problems.append(f"dataset {dataset}: nothing at {folder} (see `kerascnn data info` for its layout, or pass "
                            "--data-root)")
    for step in steps:
        run = Path(step.backbone) if step.backbone else None
        if run and run.name not in planned and not (run / "best.keras").exists():
            problems.append(f"{step.name}: backbone run {run} is missing and no step trains it")
    return problems


def run_reproduce(*, families, root="reproduce", data_root=None, min_seeds=1, progress=None):
    """Run every step not yet finished, in order, then return the steps with their wall times; ``min_seeds`` as
    in ``plan_steps``."""
    from kerascnn.experiments import STUDIES
    from kerascnn.experiments.runner import run_study, train_variant
    from kerascnn.interrupt import stop_at_safe_points, stop_if_requested
    from kerascnn.report import build_report
    from kerascnn.tasks import resolve_config

    root = Path(root)
    steps = estimate(plan_steps(families, root, min_seeds), root=root, data_root=data_root, progress=progress)
    problems = check_inputs(steps, root=root, data_root=data_root)
    if problems:
        raise FileNotFoundError("cannot reproduce:\n  " + "\n  ".join(problems))
    left, started = sum(s.left_s for s in steps), time.monotonic()
    results = []
    # One Ctrl-C handler over every step: a stop asked in a step's last epoch, which ends that step normally,
    # still holds, and the next step does not start.
    with stop_at_safe_points():
        for k, step in enumerate(steps, start=1):
            stop_if_requested(f"step {k} of {len(steps)} ({step.kind} {step.name})")
            if progress is not None:
                elapsed = time.monotonic() - started
                progress(f"step {k} of {len(steps)}: {step.command(root)} (elapsed {_hms(elapsed)}, "
                         f"about {_hms(max(0.0, left))} left)")
            t = time.monotonic()
            if step.kind == "train":
                cfg = resolve_config(step.name, step.sets)
                cfg = cfg.replace(data_dir=_data_dir(cfg, data_root))
                train_variant(cfg, root / "runs" / step.name, quiet=True)
            elif step.kind == "experiment":
                study = STUDIES[step.name]
                data_dir = _data_dir(resolve_config(study.task), data_root)
                link_reused_runs(step, root)
                run_study(step.name, overrides=step.sets, repeats=step.repeats, data_dir=data_dir,
                          out_root=root / "studies", quiet=True, only=step.only)
            else:
                build_report(task=step.name, runs=str(root / "runs"), studies=str(root / "studies"),
                             tuning=str(root / "tuning"), out=str(root / "reports" / f"{step.name}.md"))
            left -= step.left_s
            results.append({"step": k, "kind": step.kind, "name": step.name,
                            "seconds": round(time.monotonic() - t, 1), "estimate_s": round(step.estimate_s, 1)})
    return results


def link_reused_runs(step, root):
    """Make each reused variant's seed-0 run directory a link to the task's run, which the study runner then
    finds finished (it checks the recipe) instead of training it again."""
    import os

    for variant, task in step.reuse.items():
        link = Path(root) / "studies" / step.name / "runs" / variant / "seed0"
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(Path(root) / "runs" / task, link.parent), target_is_directory=True)


def _hms(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def measured_label(step):
    """A step's measured training time: all of it, or the finished runs' with how many they are."""
    if not step.finished:
        return ""
    return _hms(step.measured_s) + ("" if step.finished == step.runs else f" ({step.finished} of {step.runs} runs)")


def over_budget(steps):
    """What in an estimated plan overruns the sizing above on this machine, each with what to do about it:
    task defaults over 45 minutes and a total over a night. Empty where the plan fits."""
    notes = [f"{s.name} is estimated at {_hms(s.estimate_s)} here, over the {TASK_BUDGET_S // 60} minutes its "
             f"default is sized to on a 2-core CPU with AVX-512; `kerascnn train --task {s.name} --set epochs=N` "
             "trains a shorter run"
             for s in steps if s.kind == "train" and s.estimate_s > TASK_BUDGET_S]
    total = sum(s.estimate_s for s in steps)
    if total > NIGHT_S:
        notes.append(f"the plan totals {total / 3600:.1f} h here, more than a night ({NIGHT_S // 3600} h): run it a "
                     "family or a few at a time (kerascnn reproduce FAMILY...); each resumes where it stopped")
    return notes


def plan_rows(steps, root):
    return [{"step": k, "family": s.family, "kind": s.kind, "name": s.name,
             "runs": s.runs, "reused": ", ".join(sorted(set(s.reuse.values()))),
             "estimate": _hms(s.estimate_s), "left": _hms(s.left_s), "measured": measured_label(s),
             "estimate_s": round(s.estimate_s, 1), "left_s": round(s.left_s, 1),
             "measured_s": round(s.measured_s, 1), "finished": s.finished, "command": s.command(root)}
            for k, s in enumerate(steps, start=1)]
