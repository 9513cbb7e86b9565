"""The per-run bookkeeping of ``kerascnn.train``, as Keras callbacks with one job each.

Every training loop drives them through Keras's own hooks, so ``train`` does not know which loop runs.
Their order in the callback list matters, and ``run_callbacks`` gives it: the test split is scored
before the history records the epoch, the best epoch is tracked before the checkpoint is written.
All state a resumed run needs lives in one dict (``fresh_state``), written to ``state.json`` with each
checkpoint, so ``--resume`` continues exactly where the last checkpoint left off.
"""
import contextlib
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from kerascnn import rundir
from kerascnn.interrupt import stop_requested
from kerascnn.io import link_or_copy, write_json

# history.csv is rewritten at most this often (and at every checkpoint): rewriting it after every
# epoch is a visible share of a small model's epoch. Rows after the last checkpoint are redone on
# resume anyway, so a killed run loses nothing by it.
HISTORY_EVERY = 1.0


def fresh_state():
    return {"epoch": 0, "phase": "train", "best_val_accuracy": -1.0, "best_epoch": 0, "wait": 0, "stopped_early": False,
            "plateau_best": float("inf"), "plateau_wait": 0, "train_seconds": 0.0, "checkpoint_seconds": 0.0,
            "pending": {}, "machines": []}


@contextlib.contextmanager
def checkpoint_time(state):
    """Adds the block's seconds to ``state["checkpoint_seconds"]``: the part of ``train_seconds`` spent keeping
    the best weights and writing checkpoints, which a large model's run pays after every improving epoch."""
    t = time.perf_counter()
    try:
        yield
    finally:
        state["checkpoint_seconds"] = state.get("checkpoint_seconds", 0.0) + time.perf_counter() - t


def total_epochs(cfg):
    return cfg.epochs + cfg.fine_tune_epochs


def current_lr(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


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


class ScheduleLearningRate(keras.callbacks.Callback):
    """Sets each epoch's learning rate from the recipe's epoch-wise schedule (plateau: ``TrackBest``)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.assigned = None  # (optimizer, rate): an eager assign per epoch is a visible cost on tiny epochs

    def on_epoch_begin(self, epoch, logs=None):
        if self.cfg.lr_schedule == "plateau":
            return
        rate = learning_rate_at(self.cfg, epoch)
        if self.assigned != (self.model.optimizer, rate):  # fine-tuning brings a new optimizer
            self.model.optimizer.learning_rate.assign(rate)
            self.assigned = (self.model.optimizer, rate)


class TrackTest(keras.callbacks.Callback):
    """Scores the test split after each validated epoch, so learning curves can show it beside val."""

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


class RecordHistory(keras.callbacks.Callback):
    """One history row per epoch, written to history.csv, and the run's wall-clock seconds.

    A row's ``seconds`` run from the end of the previous epoch's bookkeeping, or from the start of its
    phase (``with history.phase():``, entered before the loop is built), so the rows add up to the phase's
    wall time, set-up, tracing and checkpoints included. Its ``eval_seconds`` are the part of them spent
    evaluating: validation (between ``on_test_begin`` and ``on_test_end``) and any evaluation another
    callback runs ``with history.evaluating():`` (the test split's), so training's own speed can be told
    from what scoring costs."""

    def __init__(self, run_dir, cfg, state, rows):
        super().__init__()
        self.run_dir, self.cfg, self.state, self.rows = Path(run_dir), cfg, state, rows
        self.mark = None  # when the time not yet counted in train_seconds began
        self.eval_seconds, self.eval_mark = 0.0, None  # this epoch's evaluation so far; when validation began
        self.dirty, self.last_write = False, time.monotonic()

    @contextlib.contextmanager
    def phase(self):
        self.mark = time.perf_counter()
        try:
            yield
        finally:
            self.state["train_seconds"] += time.perf_counter() - self.mark  # after the last epoch's checkpoint
            self.mark = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.mark is None:
            self.mark = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.eval_mark = time.perf_counter()

    def on_test_end(self, logs=None):
        if self.eval_mark is not None:
            self.eval_seconds += time.perf_counter() - self.eval_mark
            self.eval_mark = None

    @contextlib.contextmanager
    def evaluating(self):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.eval_seconds += time.perf_counter() - t

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        seconds, self.mark = now - self.mark, now
        self.state["train_seconds"] += seconds
        self.state["epoch"] = epoch + 1
        keys = ("loss", "accuracy", "val_loss", "val_accuracy") + (
            ("test_loss", "test_accuracy") if self.cfg.track_test else ())
        self.rows.append({"epoch": epoch + 1, **{k: float(logs.get(k, float("nan"))) for k in keys},
                          "lr": current_lr(self.model), "seconds": round(seconds, 4),
                          "eval_seconds": round(self.eval_seconds, 4)})
        self.eval_seconds = 0.0
        self.dirty = True
        if time.monotonic() - self.last_write >= HISTORY_EVERY:
            self.write()

    def write(self):
        rundir.write_history(self.run_dir, self.rows)
        self.dirty, self.last_write = False, time.monotonic()

    def flush(self):
        """Write history.csv if it lacks rows (a checkpoint must never name epochs the history lacks)."""
        if self.dirty or not (self.run_dir / "history.csv").exists():
            self.write()


class TrackBest(keras.callbacks.Callback):
    """After each validated epoch: the best val accuracy and its weights, early stopping, and the
    plateau schedule's learning-rate cuts."""

    def __init__(self, cfg, state):
        super().__init__()
        self.cfg, self.state = cfg, state
        self.weights = None  # the best weights not yet written to best.keras
        self.changed = False

    def on_epoch_end(self, epoch, logs=None):
        if "val_accuracy" not in (logs or {}):  # an epoch that did not validate (validation_freq)
            return
        st, cfg = self.state, self.cfg
        if logs["val_accuracy"] > st["best_val_accuracy"]:
            st.update(best_val_accuracy=float(logs["val_accuracy"]), best_epoch=epoch + 1, wait=0)
            with checkpoint_time(st):
                self.weights, self.changed = self.model.get_weights(), True
        else:
            st["wait"] += 1
        if cfg.lr_schedule == "plateau":
            self._plateau_step(float(logs["val_loss"]))
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
            self.model.optimizer.learning_rate.assign(max(current_lr(self.model) * self.cfg.lr_gamma, self.cfg.lr_min))
            st["plateau_wait"] = 0


class StopOnInterrupt(keras.callbacks.Callback):
    """Ends training at the end of the epoch in which Ctrl-C came (``kerascnn.interrupt``): an epoch
    boundary is where a checkpoint leaves the run exactly resumable."""

    def on_epoch_end(self, epoch, logs=None):
        if stop_requested():
            self.model.stop_training = True


class JournaledCheckpoints(keras.callbacks.Callback):
    """best.keras, last.keras and state.json, written so that a run killed at any moment resumes exactly.

    A checkpoint writes the history, the best model (if it changed) and the last under new names, records
    them in state.json, then renames them into place (``finish_pending``, which ``--resume`` repeats), so
    state.json and the files it names always agree. Checkpoints come every ``checkpoint_every`` seconds, at
    the end of each phase and when training stops early (early stopping or Ctrl-C)."""

    def __init__(self, run_dir, cfg, state, history, best):
        super().__init__()
        self.run_dir, self.cfg, self.state, self.history, self.best = Path(run_dir), cfg, state, history, best
        self.last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        due = time.monotonic() - self.last >= self.cfg.checkpoint_every
        if due or self.model.stop_training or epoch + 1 in (self.cfg.epochs, total_epochs(self.cfg)):
            self.checkpoint()

    def checkpoint(self):
        """When the best weights are the current ones, best is last's file (a link), not a second save."""
        epoch, model = self.state["epoch"], self.model
        self.history.flush()
        pending = {}
        last = self.run_dir / f"last-e{epoch}.keras"
        best_is_last = False
        with checkpoint_time(self.state):
            if self.best.changed:
                current = model.get_weights()
                best_is_last = all(np.array_equal(a, b) for a, b in zip(current, self.best.weights))
                if not best_is_last:
                    model.set_weights(self.best.weights)
                    model.save(self.run_dir / f"best-e{epoch}.keras")
                    model.set_weights(current)
                pending[f"best-e{epoch}.keras"] = "best.keras"
            model.save(last)
            if best_is_last:
                link_or_copy(last, self.run_dir / f"best-e{epoch}.keras")
            pending[f"last-e{epoch}.keras"] = "last.keras"
        write_json(self.run_dir / "state.json", {**self.state, "pending": pending})
        finish_pending(self.run_dir, pending)
        self.best.changed = False
        self.last = time.monotonic()


def finish_pending(run_dir, pending):
    """Rename the checkpoints a state.json names into place, and drop any a killed run left unrecorded."""
    for src, dst in pending.items():
        if (Path(run_dir) / src).exists():
            os.replace(Path(run_dir) / src, Path(run_dir) / dst)
    for stray in list(Path(run_dir).glob("best-e*.keras")) + list(Path(run_dir).glob("last-e*.keras")):
        stray.unlink()
