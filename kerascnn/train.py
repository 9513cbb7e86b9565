"""One training entry for every task: resolved Config in, complete run directory out.

``train(cfg)`` builds the dataset, model, optimizer and schedule from the config, trains in the loop
``kerascnn.loops.make_loop`` picks, with the bookkeeping of ``kerascnn.callbacks``, and writes the run
directory described in ``kerascnn.rundir``. A run killed at any point resumes with
``train(resume=RUN_DIR)`` and ends with the same epochs and files as an uninterrupted one.
"""
import contextlib
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.io import atomic_path, write_json
from kerascnn.machine import describe_machine
from kerascnn.models.backbone import backbone_source, check_weights_sources
from kerascnn.progress import keras_verbose


def configure_runtime(cfg):
    """Process-wide settings a run depends on: the dtype policy and, on TensorFlow, the conv gradient."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from kerascnn.speedups import conv_grad

        conv_grad.configure(cfg.fast_conv_grad)
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[cfg.mixed_precision]
    keras.config.set_dtype_policy(policy)


def distribution_scope(cfg):
    """A factory of contexts for model creation: data parallelism over every visible device
    with Keras's own engines, or a no-op.

    TensorFlow: ``tf.distribute.MirroredStrategy`` (its scope must cover model creation and
    compilation); JAX: ``keras.distribution.DataParallel``. On a CPU, ``KERASCNN_CPU_DEVICES=N``
    (TensorFlow) or ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (JAX) splits the
    processor into N logical devices, which is how the data-parallel path is tested without GPUs.
    """
    import keras

    if not cfg.distribute:
        return contextlib.nullcontext
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext
    if backend == "tensorflow":
        import tensorflow as tf

        logical = int(os.environ.get("KERASCNN_CPU_DEVICES", "0"))
        if logical > 1 and not tf.config.list_physical_devices("GPU"):
            try:
                cpu = tf.config.list_physical_devices("CPU")[0]
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical)
            except RuntimeError:
                warnings.warn("KERASCNN_CPU_DEVICES ignored: TensorFlow's devices were already initialised")
        return tf.distribute.MirroredStrategy().scope
    raise ValueError(f"distribute=true needs the tensorflow or jax backend, not {backend!r}")


def build_model(cfg, input_shape, num_classes):
    from kerascnn.models import create_model

    return create_model(cfg.model, input_shape, num_classes, preprocess=cfg.preprocess, **cfg.model_args)


def adapt_preprocessing(model, cfg, images):
    """``preprocess=pixelwise|zca``: fit the input layer to the training images (before any
    augmentation), so the statistics are part of the model and its checkpoints."""
    if cfg.preprocess == "pixelwise":
        model.get_layer("preprocess").adapt(np.asarray(images, dtype=np.float32))
    elif cfg.preprocess == "zca":
        model.get_layer("preprocess").adapt(images, epsilon=cfg.zca_epsilon)


def maybe_fuse(cfg, optimizer):
    from kerascnn.speedups.fused_adam import maybe_fuse as fuse

    return fuse(optimizer, cfg.fused_adam)


def make_optimizer(cfg):
    import keras

    kwargs = {"learning_rate": cfg.learning_rate}
    if cfg.weight_decay:
        kwargs["weight_decay"] = cfg.weight_decay
    if cfg.ema:
        kwargs.update(use_ema=True, ema_momentum=cfg.ema)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=cfg.momentum, **kwargs)
    if cfg.optimizer == "adam":
        return maybe_fuse(cfg, keras.optimizers.Adam(**kwargs))
    if cfg.optimizer == "adamw":
        return maybe_fuse(cfg, keras.optimizers.AdamW(**{"weight_decay": 0.004, **kwargs}))
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(momentum=cfg.momentum if cfg.momentum else 0.0, **kwargs)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def compile_model(model, cfg):
    import keras

    model.compile(
        optimizer=make_optimizer(cfg),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=cfg.jit_compile,
        steps_per_execution=cfg.steps_per_execution,
    )
    # Create the optimizer's slots now: left to the first train step, they are created inside its trace
    # and tf.function traces the whole step a second time, doubling the largest fixed cost of a small run.
    model.optimizer.build(model.trainable_variables)


def unfreeze_for_fine_tuning(model, first_layer="", batch_norm=False):
    """Make layers from ``first_layer`` on trainable. Batch norm stays frozen (inference mode) unless
    ``batch_norm``: Keras recommends frozen so small batches do not wreck its statistics, but statistics
    learnt on another domain or resolution can be the thing that needs to move."""
    import keras

    names = [layer.name for layer in model.layers]
    if first_layer and first_layer not in names:
        raise ValueError(f"fine_tune_from={first_layer!r} is not a layer of {model.name}")
    start = names.index(first_layer) if first_layer else 0
    for layer in model.layers[start:]:
        layer.trainable = batch_norm or not isinstance(layer, keras.layers.BatchNormalization)


def train(cfg=None, *, run_dir=None, resume=None, quiet=False, runs_root="runs", on_start=None):
    """Train ``cfg`` into a new run directory, or continue ``resume``; returns the metrics dict.

    ``on_start(run_dir, cfg)`` is called once the run directory is written, before training starts.
    Ctrl-C stops at the end of the current epoch, after its checkpoint, and raises
    ``kerascnn.interrupt.Interrupted`` naming the run directory to resume."""
    from kerascnn.interrupt import stop_at_safe_points

    with stop_at_safe_points():
        return _train(cfg, run_dir=run_dir, resume=resume, quiet=quiet, runs_root=runs_root, on_start=on_start)


def _train(cfg, *, run_dir, resume, quiet, runs_root, on_start):
    import keras

    from kerascnn import callbacks as cb
    from kerascnn.data import load_dataset
    from kerascnn.data.augment import build_augmentation
    from kerascnn.interrupt import Interrupted, stop_requested
    from kerascnn.loops import make_loop
    from kerascnn.speedups.ema import averaged_weights_callback
    from kerascnn.speedups.graph_loop import check_train_loop

    if resume:
        run_dir = Path(resume)
        cfg = rundir.load_config(run_dir)
        state_path = run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else None
        if state is not None:
            cb.finish_pending(run_dir, state.pop("pending", {}))
    else:
        run_dir = Path(run_dir) if run_dir else rundir.new_run_dir(cfg.task, runs_root)
        if (run_dir / "config.json").exists():
            raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        state = None
    check_train_loop(cfg)  # before anything is written: a train_loop this run cannot use is an error
    if not resume:
        check_weights_sources(cfg)  # a missing or malformed weights source fails before the data is loaded

    configure_runtime(cfg)
    scope = distribution_scope(cfg)
    keras.utils.set_random_seed(cfg.seed)
    t_data = time.perf_counter()
    splits = load_dataset(cfg)
    data_seconds = time.perf_counter() - t_data
    augmentation = build_augmentation(cfg.augment, seed=cfg.seed)
    if cfg.track_test and (splits.test is None or (splits.test.y < 0).all()):
        raise ValueError(f"track_test needs a labelled test split; dataset {cfg.dataset!r} has none")

    def fresh_model():
        model = build_model(cfg, splits.input_shape, splits.num_classes)
        adapt_preprocessing(model, cfg, splits.train.x)
        compile_model(model, cfg)
        return model

    model = None
    if state is None:
        # Built before the run directory exists: a model that cannot be built (e.g. model.weights naming a
        # run without this backbone) is a run that cannot start.
        with scope():
            model = fresh_model()
    # Only now, with the data loaded, the recipe checked and the model built: a run that cannot start leaves
    # no directory behind to block the same --run-dir next time.
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "class_names.json", list(splits.class_names))
    if on_start is not None:
        on_start(run_dir, cfg)

    with scope():
        if model is None and (run_dir / "last.keras").exists():
            rundir.register_custom_layers()
            model = keras.models.load_model(run_dir / "last.keras")
            maybe_fuse(cfg, model.optimizer)
            rows = rundir.read_history(run_dir)[: state["epoch"]]
        else:
            state, rows = cb.fresh_state(), []
            if model is None:  # resumed before the first checkpoint: start over
                model = fresh_model()
            with atomic_path(run_dir / "initial.weights.h5") as tmp:
                model.save_weights(tmp)
    rundir.write_history(run_dir, rows)
    # Each machine that trains the run, in order, since a resumed run may go on elsewhere; None stands for the
    # epochs of a state.json that does not name its machine.
    machines = state.setdefault("machines", [None] if state["epoch"] else [])
    if (machine := describe_machine()) not in machines:
        machines.append(machine)

    history = cb.RecordHistory(run_dir, cfg, state, rows)
    best = cb.TrackBest(cfg, state)
    checkpoints = cb.JournaledCheckpoints(run_dir, cfg, state, history, best)
    checkpoints.set_model(model)
    callbacks = [cb.ScheduleLearningRate(cfg), history, best, cb.StopOnInterrupt(), checkpoints]
    loop = None
    if cfg.track_test:
        def evaluate_test():
            with history.evaluating():
                logs = loop.evaluate(splits.test.x, splits.test.y)
            return logs["loss"], logs["accuracy"]

        callbacks.insert(0, cb.TrackTest(evaluate_test, follow_validation=len(splits.val.x) > 0))
    if cfg.ema:
        callbacks.insert(0, averaged_weights_callback(resumed=bool(rows)))
    # Keras's TensorBoard callback writes through tf.summary on every backend, so it needs both packages.
    missing = [name for name in ("tensorboard", "tensorflow") if importlib.util.find_spec(name) is None]
    if cfg.tensorboard and missing:
        verb = "is" if len(missing) == 1 else "are"
        warnings.warn(f"{' and '.join(missing)} {verb} not installed: no TensorBoard logs for this run")
    elif cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(run_dir / "tensorboard", write_graph=False))

    def run_phase(end_epoch):
        nonlocal loop
        with history.phase():
            loop = make_loop(model, cfg, splits, augmentation=augmentation, scope=scope)
            loop.fit(callbacks, epochs=end_epoch, initial_epoch=state["epoch"], verbose=keras_verbose(quiet),
                     validation_freq=cfg.validation_freq)

    if state["phase"] == "train" and state["epoch"] < cfg.epochs and not state["stopped_early"]:
        run_phase(cfg.epochs)
    if cfg.fine_tune_epochs and state["epoch"] < cb.total_epochs(cfg) and not stop_requested():
        if state["phase"] == "train":
            # Second phase: unfreeze, recompile with the fine-tuning LR, give early stopping a fresh start.
            with scope():
                unfreeze_for_fine_tuning(model, cfg.fine_tune_from, cfg.fine_tune_batch_norm)
                compile_model(model, cfg.replace(learning_rate=cfg.fine_tune_learning_rate))
            state.update(phase="fine_tune", wait=0, stopped_early=False)
        if not state["stopped_early"]:
            run_phase(cb.total_epochs(cfg))
    if best.changed or not (run_dir / "last.keras").exists():
        checkpoints.checkpoint()
    if stop_requested() and state["epoch"] < cb.total_epochs(cfg) and not state["stopped_early"]:
        raise Interrupted(f"stopped after epoch {state['epoch']} of {cb.total_epochs(cfg)}", run_dir=run_dir)
    if loop is None:  # a resumed run that had nothing left to train still scores its checkpoints
        loop = make_loop(model, cfg, splits, scope=scope)

    metrics = summarise(run_dir, cfg, state, splits, model, data_seconds, loop)
    write_json(run_dir / "metrics.json", metrics)
    if cfg.tensorboard and not missing:  # once, after training: the confusion matrix image and the model graph
        from kerascnn.vis.tensorboard import write_run_summaries

        write_run_summaries(run_dir, splits, state["epoch"])
    from kerascnn.vis.curves import plot_history

    plot_history(rundir.read_history(run_dir), run_dir / "curves.png", title=f"{cfg.task} ({run_dir.name})")
    return metrics


def summarise(run_dir, cfg, state, splits, model, data_seconds, loop):
    """Best and last checkpoints evaluated on train (no augmentation) and val, plus timing.

    The checkpoints' weights are copied into the trained model, whose evaluation step the loop has
    already compiled, rather than compiling an evaluation step for each of two loaded models.
    """
    import keras

    rundir.register_custom_layers()
    result = {}
    for which in ("best", "last"):
        saved = keras.models.load_model(run_dir / f"{which}.keras", compile=False)
        model.set_weights(saved.get_weights())
        train_logs, val_logs = loop.evaluate(splits.train.x, splits.train.y), loop.evaluate(splits.val.x, splits.val.y)
        result[which] = {"train_loss": train_logs["loss"], "train_accuracy": train_logs["accuracy"],
                         "val_loss": val_logs["loss"], "val_accuracy": val_logs["accuracy"]}
    rows = rundir.read_history(run_dir)
    images = len(splits.train.x) * state["epoch"]
    # A run resumed from a version that did not time evaluation keeps that version's columns (rows[0]'s).
    eval_seconds = sum(row["eval_seconds"] for row in rows) if rows and "eval_seconds" in rows[0] else None
    return {
        "task": cfg.task, "run_dir": str(run_dir), "model": cfg.model,
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "stopped_early": state["stopped_early"],
        "best_val_accuracy": result["best"]["val_accuracy"],
        "final": {k: rows[-1][k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")} if rows else {},
        "best": result["best"], "last": result["last"],
        "train_seconds": round(state["train_seconds"], 3), "data_seconds": round(data_seconds, 3),
        "images_per_s": round(images / state["train_seconds"], 1) if state["train_seconds"] else None,
        # Seconds of the above spent on per-epoch validation (and test tracking); absent from runs of
        # versions that did not time it.
        **({"eval_seconds": round(eval_seconds, 3),
            "fit_images_per_s": round(images / (state["train_seconds"] - eval_seconds), 1)}
           if eval_seconds is not None and state["train_seconds"] > eval_seconds else {}),
        # Seconds of train_seconds spent keeping the best weights and writing checkpoints.
        **({"checkpoint_seconds": round(state["checkpoint_seconds"], 3)} if "checkpoint_seconds" in state else {}),
        "parameters": int(model.count_params()),
        "train_images": len(splits.train.x), "val_images": len(splits.val.x),
        "class_names": list(splits.class_names),
        "backbone_source": backbone_source(cfg),
        "machines": state["machines"],
    }
