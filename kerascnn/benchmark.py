"""``kerascnn benchmark``: where the time goes, per task and model.

Four figures, each measured separately so a slow part is visible:
- decode: images/s of the first load (cold cache: decode, resize, validate, write the array file);
- pipeline: images/s the input pipeline delivers with no model attached, first and later epochs,
  augmentation off and on;
- step: steady-state training images/s and ms per step of the compiled train step, on synthetic
  data of the task's shape (what ``../shared/bench/torch_ref.py`` times), after two warm-up steps
  (``warmup_s``: those two steps, with the tracing and graph optimisation of the first), through
  the training loop a run would use (``train_loop``: the graph loop, or ``model.fit``); for a recipe
  that augments, also the same step with its augmentation (``step_aug_images_per_s``);
- run: a complete ``kerascnn train`` run (history, checkpoints, metrics) on the real data, whose
  wall time includes every fixed cost a user pays, and the part of it spent evaluating (``eval_s``:
  validation and test tracking after each epoch), so ``fit_images_per_s`` is training's own speed, and
  the part spent keeping the best weights and writing checkpoints (``checkpoint_s``, within it).
With step and run both measured, ``step_ratios`` sets the run against the step.
With ``against`` (a runs root such as ``reproduce/runs``), step is measured on the exact config of each
task's finished run there and set against that run's own training throughput (``run_over_step``), so
long runs need not be repeated to see what their loop, validation and input pipeline cost.
Peak resident memory of the process is reported with each row.
"""
import math
import resource
import tempfile
import time

import numpy as np

from kerascnn.tasks import resolve_config


def peak_memory_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def accelerator_peak_mb():
    """Peak memory of JAX's first accelerator so far, or None on a CPU (where the process's RSS says it)."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return round(stats["peak_bytes_in_use"] / 2**20, 1) if stats and "peak_bytes_in_use" in stats else None


def decode_throughput(cfg):
    """Load the dataset into a fresh cache directory: images/s of decoding, then of the cached reload."""
    from kerascnn.data import load_dataset

    with tempfile.TemporaryDirectory() as cache:
        cold = cfg.replace(cache_dir=cache)
        t = time.perf_counter()
        splits = load_dataset(cold)
        first = time.perf_counter() - t
        t = time.perf_counter()
        load_dataset(cold)
        cached = time.perf_counter() - t
    n = sum(len(p.x) for p in (splits.train, splits.val, splits.test) if p is not None)
    return splits, round(n / first, 1), round(n / cached, 1)


def pipeline_throughput(cfg, splits, augment, epochs=3):
    """Images/s the input pipeline delivers with no model attached: (first epoch, later epochs)."""
    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset

    aug = build_augmentation(augment, seed=0) if augment else None
    ds = make_dataset(splits.train.x, splits.train.y, splits.num_classes, cfg.batch_size, training=True,
                      augmentation=aug, seed=0, pipeline=cfg.input_pipeline)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        for _batch in ds:
            pass
        times.append(time.perf_counter() - t)
    n = len(splits.train.x)
    return round(n / times[0], 1), round(n * (epochs - 1) / sum(times[1:]), 1)


def step_throughput(cfg, input_shape, num_classes, images=1536, epochs=1, augment=False):
    """Steady-state training images/s on synthetic data of the task's shape (float32 unless the recipe says),
    through the loop ``kerascnn train`` would use (``train_loop``). ``augment``: with the recipe's
    augmentation on every batch, where the run puts it (inside the graph loop's step, or in the pipeline)."""
    import keras

    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset
    from kerascnn.speedups.graph_loop import GraphLoop, use_graph_loop
    from kerascnn.train import build_model, compile_model, configure_runtime

    configure_runtime(cfg)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, *input_shape), dtype=np.uint8)
    y = rng.integers(0, num_classes, images)
    model = build_model(cfg, input_shape, num_classes)
    compile_model(model, cfg)
    augmentation = build_augmentation(cfg.augment, seed=0) if augment else None
    if use_graph_loop(cfg, model):
        loop = GraphLoop(model, (x, y), (x[:0], y[:0]), num_classes, cfg.batch_size, augmentation=augmentation)
        t = time.perf_counter()
        logs = loop.train_batches(0, 0, 2)
        float(logs["loss"])
        warmup = time.perf_counter() - t
        t = time.perf_counter()
        loop.fit([], epochs=epochs, verbose=0)
        seconds = time.perf_counter() - t
    else:
        ds = make_dataset(x, y, num_classes, cfg.batch_size, training=True, augmentation=augmentation,
                          pipeline=cfg.input_pipeline)
        warm = make_dataset(x[: 2 * cfg.batch_size], y[: 2 * cfg.batch_size], num_classes, cfg.batch_size,
                            training=True, augmentation=augmentation, pipeline=cfg.input_pipeline)
        t = time.perf_counter()
        model.fit(warm, epochs=1, verbose=0)
        warmup = time.perf_counter() - t
        t = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0)
        seconds = time.perf_counter() - t
    steps = math.ceil(images / cfg.batch_size) * epochs
    return {"step_images_per_s": round(images * epochs / seconds, 1), "ms_per_step": round(1000 * seconds / steps, 1),
            "step_seconds": round(seconds, 2), "warmup_s": round(warmup, 2), "parameters": model.count_params()}


def full_run(cfg):
    from kerascnn.train import train

    from kerascnn import rundir

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        metrics = train(cfg, run_dir=f"{tmp}/run", quiet=True)
        wall = time.perf_counter() - t
        rows = rundir.read_history(f"{tmp}/run")
    # The first epoch carries the one-off cost of tracing and optimising the train and eval graphs.
    later = sorted(row["seconds"] for row in rows[1:]) or [float("nan")]
    later_fit = sorted(row["seconds"] - row["eval_seconds"] for row in rows[1:]) or [float("nan")]
    return {"epochs": metrics["epochs_run"], "train_s": metrics["train_seconds"], "eval_s": metrics.get("eval_seconds"),
            "checkpoint_s": metrics.get("checkpoint_seconds"),
            "run_wall_s": round(wall, 2), "first_epoch_s": round(rows[0]["seconds"], 3),
            "later_epoch_ms": round(1000 * later[len(later) // 2], 1),
            "train_images_per_s": metrics["images_per_s"], "fit_images_per_s": metrics.get("fit_images_per_s"),
            # a later epoch's training alone: no tracing, no evaluation
            "later_fit_images_per_s": round(metrics["train_images"] / later_fit[len(later_fit) // 2], 1),
            "best_val_accuracy": round(metrics["best_val_accuracy"], 4)}


def step_ratios(row):
    """What a run's throughput is as a share of the step's, from a row holding both: ``run_over_step`` for the
    whole run against the model's step, ``fit_over_recipe_step`` for its training alone (evaluation left out)
    against the step with the recipe's augmentation, the speed the run's training could reach, and
    ``later_fit_over_recipe_step`` for a later epoch's training (no tracing)."""
    ratios = {"run_over_step": round(row["train_images_per_s"] / row["step_images_per_s"], 3)}
    if row.get("fit_images_per_s"):
        recipe_step = row.get("step_aug_images_per_s") or row["step_images_per_s"]
        ratios["fit_over_recipe_step"] = round(row["fit_images_per_s"] / recipe_step, 3)
        ratios["later_fit_over_recipe_step"] = round(row["later_fit_images_per_s"] / recipe_step, 3)
    return ratios


def run_against_step(run_dir, *, synthetic_images=1536, step_epochs=1):
    """A finished run's training throughput against the synthetic step of its own config, measured now. A
    recipe that trains a frozen backbone before fine-tuning is measured per phase, and the step figure is
    what its epochs would take at step speed. ``later_over_step`` leaves out the first epoch (tracing);
    ``fit_over_recipe_step`` sets training alone (evaluation left out) against the step with the recipe's
    augmentation, for runs that timed their evaluation."""
    from kerascnn import rundir
    from kerascnn.data import dataset_module
    from kerascnn.reproduce import run_phases, without_weights

    metrics = rundir.read_json(run_dir, "metrics.json")
    cfg = without_weights(rundir.load_config(run_dir)).replace(tensorboard=False)
    shape, classes = dataset_module(cfg.dataset).input_spec(cfg)
    epochs_left, step_seconds, recipe_step_seconds, phase_rows = metrics["epochs_run"], 0.0, 0.0, []
    for phase, epochs in run_phases(cfg):
        epochs = min(epochs, epochs_left)
        epochs_left -= epochs
        if epochs:
            step = step_throughput(phase, shape, classes, images=synthetic_images, epochs=step_epochs)
            step_seconds += epochs * metrics["train_images"] / step["step_images_per_s"]
            if phase.augment:
                step = {**step, "step_aug_images_per_s": step_throughput(
                    phase, shape, classes, images=synthetic_images, epochs=step_epochs, augment=True)["step_images_per_s"]}
            recipe_step_seconds += epochs * metrics["train_images"] / step.get("step_aug_images_per_s",
                                                                              step["step_images_per_s"])
            phase_rows.append(step)
    images = metrics["epochs_run"] * metrics["train_images"]
    later = sorted(row["seconds"] for row in rundir.read_history(run_dir)[1:])
    row = {"model": cfg.model, "batch": cfg.batch_size, "image_size": cfg.image_size,
           "step_images_per_s": round(images / step_seconds, 1),
           "ms_per_step": phase_rows[-1]["ms_per_step"], "warmup_s": phase_rows[0]["warmup_s"],
           "epochs": metrics["epochs_run"], "train_s": metrics["train_seconds"],
           "run_images_per_s": metrics["images_per_s"],
           "run_over_step": round(step_seconds / metrics["train_seconds"], 3)}
    if any("step_aug_images_per_s" in step for step in phase_rows):
        row["step_aug_images_per_s"] = round(images / recipe_step_seconds, 1)
    if "eval_seconds" in metrics:  # training alone against the step with the recipe's augmentation
        row["fit_over_recipe_step"] = round(recipe_step_seconds / (metrics["train_seconds"] - metrics["eval_seconds"]), 3)
    if later and len(phase_rows) == 1:  # per-epoch speed is only comparable within one phase
        later_images_per_s = metrics["train_images"] / later[len(later) // 2]
        row["later_epoch_images_per_s"] = round(later_images_per_s, 1)
        row["later_over_step"] = round(later_images_per_s / row["step_images_per_s"], 3)
    return row


def runtime_info():
    """What the figures depend on: the machine (``kerascnn.machine``), and TensorFlow's CPU kernels."""
    from kerascnn.machine import describe_machine

    info = describe_machine()
    if info["backend"] == "tensorflow":
        from kerascnn.speedups.conv_grad import onednn_enabled

        info["cpu_kernels"] = "onednn" if onednn_enabled() else "eigen"
    return info


PARTS = ("decode", "pipeline", "step", "run")


def run_benchmark(*, tasks=("artists",), parts=PARTS, epochs=None, synthetic_images=1536, step_epochs=1, repeats=1,
                  overrides=(), data_dir=None, against=None):
    """One row of figures per task and repeat: the ``parts`` measured (see the module docstring), the
    full run over ``epochs`` (default: the task's), and peak memory. With ``against`` (a runs root), one row
    per task with a finished run there: that run against the step of its config (``run_against_step``)."""
    from kerascnn.reproduce import DATASET_FAMILY

    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown benchmark part {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if against is not None:
        return against_runs(tasks=tasks, runs=against, synthetic_images=synthetic_images, step_epochs=step_epochs,
                            repeats=repeats)
    sets = list(overrides) + ([f"epochs={epochs}"] if epochs else []) + ["tensorboard=false"]
    configs = [resolve_config(task, sets, data_dir=data_dir) for task in tasks]
    families = sorted({DATASET_FAMILY[cfg.dataset] for cfg in configs})
    if data_dir is not None and len(families) > 1:
        raise ValueError(f"--data-dir names one dataset's directory, but these tasks read the {', '.join(families)} "
                         "data: benchmark each family's tasks in a call of their own")
    rows = []
    for task, cfg in zip(tasks, configs):
        for repeat in range(repeats):
            row = {"task": task, "model": cfg.model, "batch": cfg.batch_size, "repeat": repeat}
            splits = None
            if {"decode", "pipeline", "run"} & set(parts):
                splits, row["decode_images_per_s"], row["cached_load_images_per_s"] = decode_throughput(cfg)
            if "pipeline" in parts:
                row["pipeline_first_epoch"], row["pipeline_images_per_s"] = pipeline_throughput(cfg, splits, None)
                augment = cfg.augment or ["flip", "rotate:15"]
                row["pipeline_aug_first_epoch"], row["pipeline_aug_images_per_s"] = pipeline_throughput(
                    cfg, splits, augment)
            if "step" in parts:
                if splits is not None:
                    shape, classes = splits.input_shape, splits.num_classes
                else:
                    from kerascnn.data import dataset_module

                    shape, classes = dataset_module(cfg.dataset).input_spec(cfg)
                row.update(step_throughput(cfg, shape, classes, images=synthetic_images, epochs=step_epochs))
                if cfg.augment:
                    row["step_aug_images_per_s"] = step_throughput(
                        cfg, shape, classes, images=synthetic_images, epochs=step_epochs, augment=True)["step_images_per_s"]
            if "run" in parts:
                row.update(full_run(cfg))
            if {"step", "run"} <= set(parts):
                row.update(step_ratios(row))
            row["peak_mem_mb"] = peak_memory_mb()
            device_peak = accelerator_peak_mb()
            if device_peak is not None:
                row["device_peak_mem_mb"] = device_peak
            rows.append(row)
    return rows


def against_runs(*, tasks, runs, synthetic_images=1536, step_epochs=1, repeats=1):
    """``run_against_step`` for each task's run under ``runs`` (``runs/<task>``, as ``kerascnn reproduce``
    lays them out); ``tasks`` may be ``["all"]``: every task with a finished run there."""
    from pathlib import Path

    from kerascnn.tasks import TASKS

    runs = Path(runs)
    names = list(TASKS) if list(tasks) == ["all"] else list(tasks)
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {', '.join(unknown)}; choose from all, {', '.join(TASKS)}")
    finished = [name for name in names if (runs / name / "metrics.json").exists()]
    missing = sorted(set(names) - set(finished)) if list(tasks) != ["all"] else []
    if missing or not finished:
        raise FileNotFoundError(f"no finished run under {runs} for {', '.join(missing) or 'any task'}; "
                                f"`kerascnn reproduce FAMILY --root {runs.parent}` makes them")
    rows = []
    for name in finished:
        for repeat in range(repeats):
            rows.append({"task": name, "repeat": repeat,
                         **run_against_step(runs / name, synthetic_images=synthetic_images, step_epochs=step_epochs),
                         "peak_mem_mb": peak_memory_mb()})
    return rows
