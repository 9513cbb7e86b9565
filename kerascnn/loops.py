"""The training loops behind ``kerascnn.train``: one interface, whichever runs.

A loop trains a compiled model on a dataset's in-memory splits and scores it on any split:

    loop.fit(callbacks, epochs=..., initial_epoch=..., verbose=..., validation_freq=...)
    loop.evaluate(x, y) -> {"loss": ..., "accuracy": ...}

``FitLoop`` is stock Keras: ``model.fit`` over the input pipeline, ``steps_per_execution`` steps per call.
``kerascnn.speedups.graph_loop.GraphLoop`` runs Keras's own train and test steps many batches per
TensorFlow call from in-memory tensors; ``make_loop`` picks it wherever its guard passes.
"""
import numpy as np

from kerascnn.data.pipeline import make_dataset


def validates(validation_freq, epoch, end_epoch):
    """Whether 0-based ``epoch`` of a phase ending before ``end_epoch`` validates: every ``validation_freq``
    epochs, as ``model.fit``, and also the phase's last epoch, which the run's summary and checkpoints need."""
    return (epoch + 1) % validation_freq == 0 or epoch + 1 == end_epoch


def balanced_class_weights(labels, num_classes):
    """Per-class loss weights ``n_samples / (n_classes * count)``, as scikit-learn's
    ``compute_class_weight("balanced")``: every class then carries the same total weight. A class
    absent from ``labels`` gets 1.0, which no sample uses."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.ones(num_classes)
    present = counts > 0
    weights[present] = len(labels) / (num_classes * counts[present])
    return weights


def class_weights(cfg, splits):
    """The recipe's per-class training loss weights as a float array, or None (``class_weight=none``)."""
    if cfg.class_weight == "balanced":
        return balanced_class_weights(splits.train.y, splits.num_classes)
    return None


EVAL_BATCH_CAP = 256


def evaluation_batch_size(cfg):
    """Images per batch when scoring: ``eval_batch_size``, or four training batches up to 256 images (never
    fewer than one training batch). Scoring keeps no activations for a backward pass, so a batch several
    times training's fits wherever training's did, and fewer batches cut the per-batch cost that weighs on
    small models (a fifth to a third off the faces tasks' evaluation; BENCHMARKS.md, "The scoring batch")."""
    return cfg.eval_batch_size or max(cfg.batch_size, min(4 * cfg.batch_size, EVAL_BATCH_CAP))


def first_batch_divisible(cfg, scope, n, batch_size):
    """Of ``batch_size``, the batch size whose first batch of ``n`` images splits evenly over the replicas.

    Keras's TF trainer traces a distributed model by MEAN-reducing the first batch across replicas, which
    fails when that batch splits unevenly; that happens only when the split is smaller than one batch, so
    only then is the batch trimmed.
    """
    if not cfg.distribute or n >= batch_size:
        return batch_size
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with scope():
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
    else:
        replicas = len(keras.distribution.list_devices())
    return max(replicas, n - n % replicas)


class FitLoop:
    """``model.fit`` and ``model.evaluate`` over the recipe's input pipeline (tf.data or a PyDataset)."""

    def __init__(self, model, cfg, splits, augmentation, scope):
        self.model, self.cfg, self.num_classes = model, cfg, splits.num_classes
        self.batches = dict(num_classes=splits.num_classes, batch_size=cfg.batch_size, pipeline=cfg.input_pipeline)
        self.train_ds = make_dataset(splits.train.x, splits.train.y, training=True, augmentation=augmentation,
                                     seed=cfg.seed, drop_remainder=cfg.distribute, **self.batches)
        self.eval_batches = {**self.batches, "batch_size": evaluation_batch_size(cfg)}
        self.val_ds = make_dataset(splits.val.x, splits.val.y, **{
            **self.eval_batches,
            "batch_size": first_batch_divisible(cfg, scope, len(splits.val.x), self.eval_batches["batch_size"])})
        self._held = (splits.val.x, splits.val.y, self.val_ds)  # the latest split evaluated, kept as a dataset
        weights = class_weights(cfg, splits)
        self.class_weight = None if weights is None else {k: float(w) for k, w in enumerate(weights)}

    def fit(self, callbacks, *, epochs, initial_epoch=0, verbose=1, validation_freq=1):
        validated = [e + 1 for e in range(initial_epoch, epochs) if validates(validation_freq, e, epochs)]
        self.model.fit(self.train_ds, validation_data=self.val_ds, callbacks=callbacks, epochs=epochs,
                       initial_epoch=initial_epoch, verbose=verbose, validation_freq=validated,
                       class_weight=self.class_weight)

    def evaluate(self, x, y):
        """Loss and accuracy on arrays (labels as class indices); the latest split's dataset is kept, so
        evaluating the test split every epoch builds it once."""
        held_x, held_y, dataset = self._held
        if held_x is not x or held_y is not y:
            dataset = make_dataset(x, y, **self.eval_batches)
            self._held = (x, y, dataset)
        loss, accuracy = self.model.evaluate(dataset, verbose=0)
        return {"loss": float(loss), "accuracy": float(accuracy)}


def make_loop(model, cfg, splits, *, augmentation=None, scope=None):
    """The loop this run trains in: the graph loop wherever ``use_graph_loop`` allows, else ``FitLoop``.
    A loop serves one compiled state: after a recompile (fine-tuning), make a new one."""
    from kerascnn.speedups.graph_loop import GraphLoop, use_graph_loop

    if use_graph_loop(cfg, model):
        return GraphLoop(model, (splits.train.x, splits.train.y), (splits.val.x, splits.val.y), splits.num_classes,
                         cfg.batch_size, augmentation=augmentation, seed=cfg.seed,
                         class_weights=class_weights(cfg, splits), eval_batch_size=evaluation_batch_size(cfg))
    return FitLoop(model, cfg, splits, augmentation, scope)
