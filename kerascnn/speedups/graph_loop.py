"""Many training steps per TensorFlow call: ``train_loop=graph``, the default on TensorFlow.

``model.fit`` calls its compiled step once per batch from Python, pulls each batch from a ``tf.data``
iterator and validates through ``evaluate``, which has its own iterator, callbacks and traced function.
On a small dataset that fixed work per call costs more than the arithmetic (BENCHMARKS.md, artists).
Here the arrays already in memory become tensors once, and one ``tf.function`` runs Keras's own
``train_step`` over a range of batches in a ``tf.while_loop``; a second runs ``test_step`` over a
whole split (traced and optimised on a helper thread while training runs). Losses, metrics, loss
scaling, optimizer updates and EMA are Keras's own, so the logs mean exactly what fit's mean, and
callbacks get fit's hooks (epoch, test, and one batch hook pair per call). A call is sized to take
about ``CALL_SECONDS``, so a slow model still reports progress and answers Ctrl-C between calls, and a
fast one runs a whole epoch per call.

Building the compiled state the way fit does takes Keras's private trainer methods (``INTERNALS``, and
``_compile_loss`` and ``_compile_metrics`` on a compiled model), so ``kerascnn.loops`` runs this loop only
where ``kerascnn.speedups`` finds them.
"""
import time

import numpy as np

from kerascnn import speedups
from kerascnn.loops import validates

CALL_SECONDS = 1.0
INTERNALS = (("keras", "Model._symbolic_build"), ("keras", "Model._post_build"), ("keras", "Model._flatten_layers"),
             ("tensorflow", "random.experimental.stateless_shuffle"))
COMPILED = ("_compile_loss", "_compile_metrics")
STOCK = "model.fit"


def unsupported_reason(cfg):
    """Why this recipe trains through ``model.fit`` whatever ``train_loop`` says, or None."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"it needs the TensorFlow backend (this is {keras.backend.backend()})"
    if cfg.distribute:
        return "distribute=true trains through model.fit's distributed loop"
    if cfg.jit_compile:
        return "jit_compile=true compiles model.fit's step with XLA"
    if cfg.input_pipeline != "auto":
        return f"input_pipeline={cfg.input_pipeline} asks for model.fit over that pipeline"
    return None


def check_train_loop(cfg):
    """``train_loop=graph`` where the graph loop cannot apply is an error, raised before anything is written."""
    reason = unsupported_reason(cfg)
    if reason and cfg.train_loop == "graph":
        raise ValueError(f"train_loop=graph cannot run here: {reason}; use train_loop=auto or fit")


def use_graph_loop(cfg, model=None):
    """Whether this run trains in the graph loop: the recipe allows it (``train_loop``), it applies, and the
    guard passes (for a compiled ``model``, its compiled state too). Otherwise fit, with one warning where
    a guard or the recipe turned the loop off."""
    check_train_loop(cfg)
    if unsupported_reason(cfg):
        return False
    if not speedups.use("graph_loop", requested=cfg.train_loop != "fit", internals=INTERNALS, stock=STOCK,
                        switch="train_loop=fit"):
        return False
    missing = [name for name in COMPILED if model is not None and not hasattr(model, name)]
    if missing:
        speedups.warn_stock("graph_loop", f"a compiled keras.Model has no {', '.join(missing)}", STOCK)
        return False
    return True


def build_compiled_state(model, batch):
    """Create the compiled loss's and metrics' state and the optimizer's slots before tracing, as fit
    does: variables created while tracing make tf.function trace everything twice.

    Keras's ``_symbolic_build`` gets the prediction's shape by running the whole model symbolically,
    which on a small model costs as much as several of its later epochs. A built functional
    model already holds its outputs as symbolic tensors, so those build the same state directly; any
    other model takes Keras's way."""
    import keras

    x, y = batch
    built = isinstance(model, keras.Model) and hasattr(model, "_outputs_struct") \
        and all(layer.built for layer in model._flatten_layers())
    if not built:
        model._symbolic_build(data_batch=batch)
        return
    y_true = keras.KerasTensor(y.shape, keras.backend.standardize_dtype(y.dtype))
    y_pred = model._outputs_struct
    for compiled in (model._compile_loss, model._compile_metrics):
        if compiled is not None and not compiled.built:
            compiled.build(y_true, y_pred)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model._post_build()


class GraphLoop:
    """Trains and evaluates ``model`` (compiled) on in-memory arrays, driving Keras callbacks like fit."""

    def __init__(self, model, train, val, num_classes, batch_size, *, augmentation=None, seed=0, class_weights=None,
                 eval_batch_size=None):
        """``train`` and ``val``: (images, class indices) arrays; ``val`` may be empty. ``class_weights``: one
        training loss weight per class (as ``model.fit``'s ``class_weight``), or None; validation is unweighted.
        ``eval_batch_size``: images per batch when scoring (None: ``batch_size``)."""
        import tensorflow as tf

        from kerascnn.data.pipeline import one_hot_labels

        self.model, self.num_classes, self.batch_size = model, num_classes, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.augmentation, self.seed = augmentation, seed
        self.class_weights = None if class_weights is None else tf.constant(np.asarray(class_weights, np.float32))
        self.train_x, self.train_y = self._tensors(*train)
        self.val = self._tensors(*val) if len(val[0]) else None
        # Arrays already held as tensors, found by identity: evaluate() converts each split only once.
        self._held = [(*train, (self.train_x, self.train_y))] + ([(*val, self.val)] if self.val is not None else [])
        self._splits_held = len(self._held)
        build_compiled_state(model, (np.asarray(train[0][:1]), one_hot_labels(train[1][:1], num_classes)))
        images = tf.TensorSpec([None, *self.train_x.shape[1:]], self.train_x.dtype)
        labels = tf.TensorSpec([None, num_classes], tf.float32)
        scalar = tf.TensorSpec([], tf.int32)
        self._train_function = tf.function(self._train_range, autograph=False,
                                           input_signature=[images, labels, scalar, scalar, scalar])
        self._test_function = tf.function(self._test_all, autograph=False, input_signature=[images, labels])
        self._reset_function = tf.function(model.reset_metrics, autograph=False)
        # Concrete functions, called directly: a tf.function call first matches its arguments to the
        # signature in Python, a visible share of a small epoch.
        self._train = self._test = self._reset = None
        self._preparing = None  # the helper thread's future while it prepares validation
        self.steps_per_call = 1  # the first call also traces; later calls are sized from measured speed
        self._timed = False

    def _tensors(self, x, y):
        import tensorflow as tf

        from kerascnn.data.pipeline import one_hot_labels

        return tf.convert_to_tensor(np.asarray(x)), tf.convert_to_tensor(one_hot_labels(y, self.num_classes))

    def _train_range(self, x, y, epoch, start, stop):
        """Keras's train_step on batches ``start`` to ``stop - 1`` of epoch ``epoch``'s shuffle of (x, y);
        returns the training logs accumulated since the last metrics reset."""
        import tensorflow as tf

        model, size = self.model, self.batch_size

        def body(step):
            idx = order[step * size:(step + 1) * size]
            images = tf.gather(x, idx)
            if self.augmentation is not None:
                images = self.augmentation(tf.cast(images, tf.float32), training=True)
            labels = tf.gather(y, idx)
            if self.class_weights is None:
                model.train_step((images, labels))
            else:  # as fit turns class_weight into sample weights: the weight of each image's class
                model.train_step((images, labels, tf.gather(self.class_weights, tf.argmax(labels, axis=-1))))
            return (step + 1,)

        order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(x)[0]), seed=tf.stack([self.seed, epoch]))
        # One step at a time: each step reads the weights the previous one wrote.
        tf.while_loop(lambda step: step < stop, body, (start,), parallel_iterations=1)
        return {k: tf.identity(v) for k, v in model.get_metrics_result().items()}

    def _test_all(self, x, y):
        """Keras's test_step over all of (x, y); returns the logs accumulated since the last metrics reset."""
        import tensorflow as tf

        model, size = self.model, self.eval_batch_size

        def body(step):
            model.test_step((x[step * size:(step + 1) * size], y[step * size:(step + 1) * size]))
            return (step + 1,)

        steps = (tf.shape(x)[0] + size - 1) // size
        tf.while_loop(lambda step: step < steps, body, (tf.constant(0),), parallel_iterations=1)
        return model.get_metrics_result()

    def reset_metrics(self):
        """``model.reset_metrics()``, through a traced function once one is ready: one call instead of
        Keras's eager assignment per metric variable, twice an epoch."""
        if self._reset is not None:
            self._reset()
        else:
            self.model.reset_metrics()

    def train_batches(self, epoch, start, stop):
        """Train on batches ``start`` to ``stop - 1`` of epoch ``epoch`` in one call: the training logs as
        tensors, accumulated since the epoch's first batch.

        The first call traces the training function, then runs it (TensorFlow optimises the graph in C++)
        while a helper thread traces the validation function (Python) and has it optimised too.
        Validation waits for the helper; training does not, so a run that validates late does not wait
        at all."""
        import tensorflow as tf

        args = (self.train_x, self.train_y, tf.constant(epoch), tf.constant(start), tf.constant(stop))
        if self._train is None:
            self._train = self._train_function.get_concrete_function(*args)
            if self.val is not None:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(1, thread_name_prefix="kerascnn-prepare-validation")
                self._preparing = pool.submit(self._prepare_evaluation)
                pool.shutdown(wait=False)
        return self._train(*args)

    def _prepare_evaluation(self):
        """Trace the validation and metrics-reset functions and run the former on an empty split, which
        runs no step and touches no variable: it only makes TensorFlow optimise the graph now."""
        import tensorflow as tf

        test = self._test_function.get_concrete_function(*self.val)
        # Made on the host: slicing the tensors would run (and first create) kernels.
        test(*[tf.constant(np.zeros((0, *t.shape[1:]), t.dtype.as_numpy_dtype)) for t in self.val])
        self._test = test
        self._reset = self._reset_function.get_concrete_function()  # traced only: running it would reset training's metrics

    def _ready_to_evaluate(self):
        """Wait for the helper thread (raising what it raised), or prepare here if it never started."""
        if self._preparing is not None:
            preparing, self._preparing = self._preparing, None
            preparing.result()
        if self._test is None:
            self._test = self._test_function.get_concrete_function(*(self.val or (self.train_x, self.train_y)))
            self._reset = self._reset_function.get_concrete_function()

    def validate(self):
        """Loss and metrics on the validation split, as tensors."""
        return self._test_from_zero(*self.val)

    def _test_from_zero(self, x, y):
        self._ready_to_evaluate()
        self.reset_metrics()
        return self._test(x, y)

    def steps_per_epoch(self):
        return -(-int(self.train_x.shape[0]) // self.batch_size)

    def evaluate(self, x, y):
        """Loss and metrics of the model on arrays (labels as class indices), as ``model.evaluate`` gives.

        The training and validation arrays are the loop's own tensors, and the latest other split
        is kept, so evaluating the test split every epoch converts it once."""
        tensors = next((held for hx, hy, held in self._held if hx is x and hy is y), None)
        if tensors is None:
            tensors = self._tensors(x, y)
            self._held = self._held[:self._splits_held] + [(x, y, tensors)]  # the latest other split only
        return {k: float(v) for k, v in self._test_from_zero(*tensors).items()}

    def fit(self, callbacks, *, epochs, initial_epoch=0, verbose=1, validation_freq=1):
        """Epochs ``initial_epoch`` to ``epochs - 1``, validating after those ``validates`` picks, as
        ``model.fit`` runs them.

        Each epoch runs in calls of ``steps_per_call`` batches, sized to take about ``CALL_SECONDS``,
        then validates in a call of its own, after ``on_test_begin`` (where Keras's EMA swap acts).
        """
        import keras

        model, steps = self.model, self.steps_per_epoch()
        callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                                 verbose=verbose, epochs=epochs, steps=steps, model=model)
        model.stop_training = False
        callbacks.on_train_begin()
        epoch_logs = None
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                callbacks.on_epoch_begin(epoch)
                start, logs = 0, {}
                while start < steps:
                    stop = min(steps, start + self.steps_per_call)
                    callbacks.on_train_batch_begin(start)
                    t = time.perf_counter()
                    logs = self.train_batches(epoch, start, stop)
                    seconds = time.perf_counter() - t
                    callbacks.on_train_batch_end(stop - 1, logs)
                    if self._timed:
                        self.steps_per_call = max(1, int(CALL_SECONDS * (stop - start) / max(seconds, 1e-6)))
                    self._timed, start = True, stop
                    if model.stop_training:
                        break
                epoch_logs = {k: float(v) for k, v in logs.items()}
                if self.val is not None and validates(validation_freq, epoch, epochs):
                    callbacks.on_test_begin()
                    val_logs = {k: float(v) for k, v in self.validate().items()}
                    callbacks.on_test_end(val_logs)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                callbacks.on_epoch_end(epoch, epoch_logs)
                if model.stop_training:
                    break
        finally:
            if self._preparing is not None:  # no helper thread outlives the phase
                self._preparing.exception()
        if epochs > 0:  # as fit: with EMA this leaves the averaged weights in the model
            model.optimizer.finalize_variable_values(model.trainable_weights)
        callbacks.on_train_end(logs=epoch_logs)
