"""One training entry for every task: resolved Config in, complete run directory out.

``train(cfg)`` builds the dataset, model, optimizer and schedule from the config, trains with
the graph loop (``kerascnn.graph_loop``) or ``model.fit`` and writes the run directory described in
``kerascnn.rundir``. A run killed at any point resumes with ``train(resume=RUN_DIR)`` and ends with
the same epochs and files as an uninterrupted one: checkpoints are journaled (written under a new
name, recorded in state.json, then renamed into place), so state.json and the checkpoints it names
always agree.
"""
import contextlib
import importlib.util
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.config import Config
from kerascnn.graph_loop import GraphLoop, use_graph_loop, validates
from kerascnn.io import atomic_path, link_or_copy, write_json

# history.csv is rewritten at most this often (and at every checkpoint): rewriting it after every
# epoch is a visible share of a small model's epoch. Rows after the last checkpoint are redone on
# resume anyway, so a killed run loses nothing by it.
HISTORY_EVERY = 1.0


def configure_runtime(cfg):
    """Process-wide settings a run depends on: the dtype policy and, on TensorFlow, the conv gradient."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from kerascnn import fast_conv_grad

        fast_conv_grad.install(cfg.fast_conv_grad)
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


def first_batch_divisible(cfg, scope, n):
    """Batch size whose first batch splits evenly over the replicas.

    Keras's TF trainer traces a distributed model by MEAN-reducing the first batch across replicas
    (``_maybe_symbolic_build``), which fails when that batch splits unevenly; that happens only
    when the split is smaller than one batch, so only then is the batch trimmed.
    """
    if not cfg.distribute or n >= cfg.batch_size:
        return cfg.batch_size
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with scope():
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
    else:
        replicas = len(keras.distribution.list_devices())
    return max(replicas, n - n % replicas)


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
    from kerascnn.fused_adam import fuse

    return fuse(optimizer) if cfg.fused_adam else optimizer


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
    )
    # Create the optimizer's slots now: left to the first train step, they are created inside its trace
    # and tf.function traces the whole step a second time, doubling the largest fixed cost of a small run.
    model.optimizer.build(model.trainable_variables)


def total_epochs(cfg):
    return cfg.epochs + cfg.fine_tune_epochs


def learning_rate_at(cfg, epoch):
    """Learning rate for a 0-based epoch under the epoch-wise schedules (plateau is adaptive).

    Fine-tuning epochs (after ``cfg.epochs``) start from ``fine_tune_learning_rate`` and follow a
    cosine decay to ``lr_min`` when the schedule is cosine, else stay constant.
    """
    if epoch >= cfg.epochs:
        base, e = cfg.fine_tune_learning_rate, epoch - cfg.epochs
        if cfg.lr_schedule in ("cosine", "cosine_restarts"):
            span = max(1, cfg.fine_tune_epochs)
            return cfg.lr_min + (base - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * min(e, span) / span))
        return base
    base = cfg.learning_rate
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return base * (epoch + 1) / cfg.warmup_epochs
    e = epoch - cfg.warmup_epochs
    if cfg.lr_schedule in ("constant", "plateau"):
        return base
    if cfg.lr_schedule == "step":
        return base * cfg.lr_gamma ** (e // max(1, cfg.lr_step_size))
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        return cfg.lr_min + (base - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * min(e, span) / span))
    if cfg.lr_schedule == "cosine_restarts":
        period = max(1, cfg.lr_restart_period)
        return cfg.lr_min + (base - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * (e % period) / period))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}")


def _recorder_class():
    import keras

    class RunRecorder(keras.callbacks.Callback):
        """Schedules the LR, records history, tracks the best epoch, stops early and checkpoints.

        All of its state lives in ``state`` so a resumed run continues exactly where it left off.
        """

        def __init__(self, run_dir, cfg, state, rows, quiet):
            super().__init__()
            self.run_dir, self.cfg, self.state, self.rows, self.quiet = Path(run_dir), cfg, state, rows, quiet
            self.best_weights = None
            self.best_dirty = False
            self.last_checkpoint = self.last_history = time.monotonic()
            self.history_dirty = False
            self.mark = None  # when the time not yet counted in train_seconds began
            self.assigned_lr = None

        def start_phase(self):
            """Start the clock of a training phase, before anything of it is built: a run's seconds
            are wall time, the graph loop's set-up, history and checkpoints included."""
            self.mark = time.perf_counter()
            self.assigned_lr = None  # a phase may bring a new optimizer (fine-tuning recompiles)

        def end_phase(self):
            """Count the phase's time after its last epoch's row (that epoch's checkpoint)."""
            if self.mark is not None:
                self.state["train_seconds"] += time.perf_counter() - self.mark
                self.mark = None

        def on_epoch_begin(self, epoch, logs=None):
            if self.mark is None:
                self.mark = time.perf_counter()
            if self.cfg.lr_schedule != "plateau":
                lr = learning_rate_at(self.cfg, epoch)
                if lr != self.assigned_lr:  # an eager assign per epoch is a visible cost on tiny epochs
                    self.model.optimizer.learning_rate.assign(lr)
                    self.assigned_lr = lr

        def on_epoch_end(self, epoch, logs=None):
            """Record the epoch. Its ``seconds`` run from the end of the previous epoch's bookkeeping
            (or the phase's start) to now, so the rows add up to the phase's wall time."""
            logs = logs or {}
            now = time.perf_counter()
            seconds, self.mark = now - self.mark, now
            st, cfg = self.state, self.cfg
            st["train_seconds"] += seconds
            keys = ("loss", "accuracy", "val_loss", "val_accuracy") + (
                ("test_loss", "test_accuracy") if cfg.track_test else ())
            row = {"epoch": epoch + 1, **{k: float(logs.get(k, float("nan"))) for k in keys},
                   "lr": current_lr(self.model), "seconds": round(seconds, 4)}
            self.rows.append(row)
            self.history_dirty = True
            st["epoch"] = epoch + 1
            if "val_accuracy" in logs:  # a validated epoch (validation_freq)
                self._after_validation(row)
            due = time.monotonic() - self.last_checkpoint >= cfg.checkpoint_every
            if due or self.model.stop_training or epoch + 1 in (cfg.epochs, total_epochs(cfg)):
                self.checkpoint()
            elif time.monotonic() - self.last_history >= HISTORY_EVERY:
                self.write_history()

        def write_history(self):
            rundir.write_history(self.run_dir, self.rows)
            self.history_dirty, self.last_history = False, time.monotonic()

        def _after_validation(self, row):
            st, cfg = self.state, self.cfg
            if row["val_accuracy"] > st["best_val_accuracy"]:
                st.update(best_val_accuracy=row["val_accuracy"], best_epoch=row["epoch"], wait=0)
                self.best_weights = self.model.get_weights()
                self.best_dirty = True
            else:
                st["wait"] += 1
            if cfg.lr_schedule == "plateau":
                self._plateau_step(row["val_loss"])
            if cfg.early_stopping and st["wait"] >= cfg.early_stopping:
                st["stopped_early"] = True
                self.model.stop_training = True

        def _plateau_step(self, val_loss):
            st = self.state
            if val_loss < st["plateau_best"] - 1e-4:
                st.update(plateau_best=val_loss, plateau_wait=0)
                return
            st["plateau_wait"] += 1
            if st["plateau_wait"] >= self.cfg.plateau_patience:
                lr = max(current_lr(self.model) * self.cfg.lr_gamma, self.cfg.lr_min)
                self.model.optimizer.learning_rate.assign(lr)
                st["plateau_wait"] = 0

        def checkpoint(self):
            """Write the history, best (if changed) and last under new names, record them, then
            rename into place. When the best weights are the current ones, best is last's file."""
            epoch = self.state["epoch"]
            if self.history_dirty or not (self.run_dir / "history.csv").exists():
                self.write_history()
            pending = {}
            last = self.run_dir / f"last-e{epoch}.keras"
            best_is_last = False
            if self.best_dirty:
                current = self.model.get_weights()
                best_is_last = all(np.array_equal(a, b) for a, b in zip(current, self.best_weights))
                if not best_is_last:
                    self.model.set_weights(self.best_weights)
                    self.model.save(self.run_dir / f"best-e{epoch}.keras")
                    self.model.set_weights(current)
                pending[f"best-e{epoch}.keras"] = "best.keras"
            self.model.save(last)
            if best_is_last:
                link_or_copy(last, self.run_dir / f"best-e{epoch}.keras")
            pending[f"last-e{epoch}.keras"] = "last.keras"
            write_json(self.run_dir / "state.json", {**self.state, "pending": pending})
            finish_pending(self.run_dir, pending)
            self.best_dirty = False
            self.last_checkpoint = time.monotonic()

    class TestTracker(keras.callbacks.Callback):
        """Evaluates the test split after each validated epoch so learning curves can show it beside val."""

        def __init__(self, evaluate, follow_validation):
            """``evaluate()`` returns the model's (loss, accuracy) on the test split; ``follow_validation``:
            evaluate only after epochs that validated (validation_freq), else after every epoch."""
            super().__init__()
            self.evaluate, self.follow_validation = evaluate, follow_validation

        def on_epoch_end(self, epoch, logs=None):
            if self.follow_validation and "val_loss" not in logs:
                return
            loss, acc = self.evaluate()
            logs.update(test_loss=loss, test_accuracy=acc)

    return RunRecorder, TestTracker


def averaged_weights_callback(resumed):
    """Keras's EMA swap: the averaged weights are validated (``on_test_begin``) and sit in the model from
    the end of each epoch (test tracking, best and last checkpoints) until the next one starts, while the
    training weights wait in the optimizer's average slots. A checkpoint therefore holds the averaged
    weights in the model, so a resumed run starts with them swapped in."""
    import keras

    callback = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    callback._ema_weights_in_model = resumed  # Keras's own flag; no public way to say where they are
    return callback


def current_lr(model):
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def unfreeze_for_fine_tuning(model, first_layer=""):
    """Make layers from ``first_layer`` on trainable; batch norm stays frozen (inference mode),
    as Keras recommends when fine-tuning, so small batches do not wreck its statistics."""
    import keras

    names = [layer.name for layer in model.layers]
    if first_layer and first_layer not in names:
        raise ValueError(f"fine_tune_from={first_layer!r} is not a layer of {model.name}")
    start = names.index(first_layer) if first_layer else 0
    for layer in model.layers[start:]:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


def finish_pending(run_dir, pending):
    for src, dst in pending.items():
        if (Path(run_dir) / src).exists():
            os.replace(Path(run_dir) / src, Path(run_dir) / dst)
    for stray in list(Path(run_dir).glob("best-e*.keras")) + list(Path(run_dir).glob("last-e*.keras")):
        stray.unlink()


def fresh_state():
    return {"epoch": 0, "phase": "train", "best_val_accuracy": -1.0, "best_epoch": 0, "wait": 0, "stopped_early": False,
            "plateau_best": float("inf"), "plateau_wait": 0, "train_seconds": 0.0, "pending": {}}


def train(cfg=None, *, run_dir=None, resume=None, quiet=False, runs_root="runs"):
    """Train ``cfg`` into a new run directory, or continue ``resume``; returns the metrics dict."""
    import keras

    from kerascnn.data import load_dataset
    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset

    if resume:
        run_dir = Path(resume)
        cfg = rundir.load_config(run_dir)
        state_path = run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else None
        if state is not None:
            finish_pending(run_dir, state.pop("pending", {}))
    else:
        run_dir = Path(run_dir) if run_dir else rundir.new_run_dir(cfg.task, runs_root)
        if (run_dir / "config.json").exists():
            raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        state = None
    graph = use_graph_loop(cfg)  # before anything is written: a train_loop this run cannot use is an error

    configure_runtime(cfg)
    scope = distribution_scope(cfg)
    keras.utils.set_random_seed(cfg.seed)
    t_data = time.perf_counter()
    splits = load_dataset(cfg)
    data_seconds = time.perf_counter() - t_data
    augmentation = build_augmentation(cfg.augment, seed=cfg.seed)
    batches = dict(num_classes=splits.num_classes, batch_size=cfg.batch_size, pipeline=cfg.input_pipeline)
    if not graph:
        train_ds = make_dataset(splits.train.x, splits.train.y, training=True, augmentation=augmentation,
                                seed=cfg.seed, drop_remainder=cfg.distribute, **batches)
        val_ds = make_dataset(splits.val.x, splits.val.y,
                              **{**batches, "batch_size": first_batch_divisible(cfg, scope, len(splits.val.x))})
    if cfg.track_test and (splits.test is None or (splits.test.y < 0).all()):
        raise ValueError(f"track_test needs a labelled test split; dataset {cfg.dataset!r} has none")
    # Only now, with the data loaded and the recipe checked: a run that cannot start leaves no directory
    # behind to block the same --run-dir next time.
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "class_names.json", list(splits.class_names))

    with scope():
        if state is not None and (run_dir / "last.keras").exists():
            rundir.register_custom_layers()
            model = keras.models.load_model(run_dir / "last.keras")
            maybe_fuse(cfg, model.optimizer)
            rows = rundir.read_history(run_dir)[: state["epoch"]]
        else:
            state, rows = fresh_state(), []
            model = build_model(cfg, splits.input_shape, splits.num_classes)
            adapt_preprocessing(model, cfg, splits.train.x)
            compile_model(model, cfg)
            with atomic_path(run_dir / "initial.weights.h5") as tmp:
                model.save_weights(tmp)
    rundir.write_history(run_dir, rows)

    recorder_class, tracker_class = _recorder_class()
    recorder = recorder_class(run_dir, cfg, state, rows, quiet)
    callbacks = [recorder]
    loop = None
    if cfg.track_test:
        test_ds = None if graph else make_dataset(splits.test.x, splits.test.y, **batches)

        def evaluate_test():
            if loop is not None:  # the loop's own traced test step, not a second one from evaluate()
                logs = loop.evaluate(splits.test.x, splits.test.y)
                return logs["loss"], logs["accuracy"]
            return model.evaluate(test_ds, verbose=0)

        callbacks.insert(0, tracker_class(evaluate_test, follow_validation=len(splits.val.x) > 0))
    if cfg.ema:
        callbacks.insert(0, averaged_weights_callback(resumed=bool(rows)))
    # Keras's TensorBoard callback writes through tf.summary on every backend, so it needs both packages.
    missing = [name for name in ("tensorboard", "tensorflow") if importlib.util.find_spec(name) is None]
    if cfg.tensorboard and missing:
        verb = "is" if len(missing) == 1 else "are"
        warnings.warn(f"{' and '.join(missing)} {verb} not installed: no TensorBoard logs for this run")
    elif cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(run_dir / "tensorboard", write_graph=False))

    def run_epochs(epochs):
        recorder.start_phase()
        try:
            fit_epochs(epochs)
        finally:
            recorder.end_phase()

    def fit_epochs(epochs):
        nonlocal loop
        if graph:
            # A new loop per phase: fine-tuning recompiles, so the traced steps must be traced again.
            loop = GraphLoop(model, (splits.train.x, splits.train.y), (splits.val.x, splits.val.y),
                             splits.num_classes, cfg.batch_size, augmentation=augmentation, seed=cfg.seed)
            loop.fit(callbacks, epochs=epochs, initial_epoch=state["epoch"], verbose=0 if quiet else 1,
                     validation_freq=cfg.validation_freq)
        else:
            validated = [e + 1 for e in range(state["epoch"], epochs) if validates(cfg.validation_freq, e, epochs)]
            model.fit(train_ds, validation_data=val_ds, callbacks=callbacks, verbose=0 if quiet else "auto",
                      epochs=epochs, initial_epoch=state["epoch"], validation_freq=validated)

    if state["phase"] == "train" and state["epoch"] < cfg.epochs and not state["stopped_early"]:
        run_epochs(cfg.epochs)
    if cfg.fine_tune_epochs and state["epoch"] < total_epochs(cfg):
        if state["phase"] == "train":
            # Second phase: unfreeze, recompile with the fine-tuning LR, give early stopping a fresh start.
            with scope():
                unfreeze_for_fine_tuning(model, cfg.fine_tune_from)
                compile_model(model, cfg.replace(learning_rate=cfg.fine_tune_learning_rate))
            state.update(phase="fine_tune", wait=0, stopped_early=False)
        if not state["stopped_early"]:
            run_epochs(total_epochs(cfg))
    if recorder.best_dirty or not (run_dir / "last.keras").exists():
        recorder.checkpoint()

    metrics = summarise(run_dir, cfg, state, splits, model, data_seconds, loop)
    write_json(run_dir / "metrics.json", metrics)
    from kerascnn.vis.curves import plot_history

    plot_history(rundir.read_history(run_dir), run_dir / "curves.png", title=f"{cfg.task} ({run_dir.name})")
    return metrics


def summarise(run_dir, cfg, state, splits, model, data_seconds, loop=None):
    """Best and last checkpoints evaluated on train (no augmentation) and val, plus timing.

    The checkpoints' weights are copied into the trained model, whose evaluation step is already
    compiled (the graph loop's, when it trained), rather than compiling an evaluation step for each
    of two loaded models.
    """
    from kerascnn.data.pipeline import make_dataset

    def evaluate(part):
        if loop is not None:
            logs = loop.evaluate(part.x, part.y)
            return logs["loss"], logs["accuracy"]
        ds = make_dataset(part.x, part.y, splits.num_classes, cfg.batch_size, pipeline=cfg.input_pipeline)
        loss, acc = model.evaluate(ds, verbose=0)
        return float(loss), float(acc)

    import keras

    rundir.register_custom_layers()
    result = {}
    for which in ("best", "last"):
        saved = keras.models.load_model(run_dir / f"{which}.keras", compile=False)
        model.set_weights(saved.get_weights())
        train_loss, train_acc = evaluate(splits.train)
        val_loss, val_acc = evaluate(splits.val)
        result[which] = {"train_loss": train_loss, "train_accuracy": train_acc,
                         "val_loss": val_loss, "val_accuracy": val_acc}
    rows = rundir.read_history(run_dir)
    images = len(splits.train.x) * state["epoch"]
    return {
        "task": cfg.task, "run_dir": str(run_dir), "model": cfg.model,
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "stopped_early": state["stopped_early"],
        "best_val_accuracy": result["best"]["val_accuracy"],
        "final": {k: rows[-1][k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")} if rows else {},
        "best": result["best"], "last": result["last"],
        "train_seconds": round(state["train_seconds"], 3), "data_seconds": round(data_seconds, 3),
        "images_per_s": round(images / state["train_seconds"], 1) if state["train_seconds"] else None,
        "parameters": int(model.count_params()),
        "train_images": len(splits.train.x), "val_images": len(splits.val.x),
        "class_names": list(splits.class_names),
    }
