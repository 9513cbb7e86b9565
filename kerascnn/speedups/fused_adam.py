"""Adam's TensorFlow update as one fused kernel per variable.

Keras's Adam (and AdamW) writes its update as some twenty small ``keras.ops`` calls per variable. On
TensorFlow each call is a graph op that the first training step traces and optimises and every later step
launches. On a small model that tracing is a large share of the run's fixed cost. On a model with many
variables it grows with them: ResNet-50 has 161 trainable variables. TensorFlow has the same update as one kernel,
``ResourceApplyAdam``, and it computes the same formula:
``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``, ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``.

``fuse(optimizer)`` swaps the update of that one optimizer instance for the fused kernel. It does not
subclass, so saved models still name Keras's own ``Adam`` and load anywhere. It leaves everything else to
Keras: other backends, AMSGrad, sparse gradients, and distribution strategies, where variables are
mirrored. Weight decay, gradient clipping and EMA are applied outside ``update_step`` and are unaffected.
``tests/test_fused_adam.py`` checks that the fused update gives the same weights as Keras's.

The fused update reads Adam's slot variables through private names (``INTERNALS``, and ``_momentums`` and
``_velocities``, which exist only on a built optimizer), so ``maybe_fuse`` fuses only where
``kerascnn.speedups`` finds them.
"""
import functools
import types

import keras

from kerascnn import speedups

INTERNALS = (("keras.optimizers", "Adam._get_variable_index"), ("keras.optimizers", "Adam.update_step"),
             ("tensorflow", "raw_ops.ResourceApplyAdam"))
SLOTS = ("_momentums", "_velocities")
STOCK = "Keras's own Adam update"


@functools.cache
def missing_slots():
    """Whether a built Keras Adam lacks the slot lists the fused update reads (text), or None."""
    import numpy as np

    optimizer = keras.optimizers.Adam()
    optimizer.build([keras.Variable(np.zeros(1, "float32"))])
    missing = [name for name in SLOTS if not hasattr(optimizer, name)]
    return f"keras.optimizers.Adam has no {', '.join(missing)}" if missing else None


def maybe_fuse(optimizer, requested):
    """``fuse(optimizer)`` if the recipe asks for it (``fused_adam``) and the guard passes; Keras's own
    update otherwise (with one warning that says why). Optimizers other than Adam pass through unchanged."""
    if not isinstance(optimizer, keras.optimizers.Adam) or optimizer.amsgrad:
        return optimizer
    if speedups.use("fused_adam", requested=requested, internals=INTERNALS, stock=STOCK, switch="fused_adam=false"):
        reason = missing_slots()
        if reason is None:
            return fuse(optimizer)
        speedups.warn_stock("fused_adam", reason, STOCK)
    return optimizer


def fuse(optimizer):
    """Make ``optimizer`` (a Keras Adam or AdamW) update through ``ResourceApplyAdam`` on TensorFlow;
    returns it. Anything else is returned unchanged."""
    if keras.backend.backend() == "tensorflow" and isinstance(optimizer, keras.optimizers.Adam) \
            and not optimizer.amsgrad:
        optimizer.update_step = types.MethodType(_fused_update_step, optimizer)
    return optimizer


def is_fused(optimizer):
    return getattr(optimizer.update_step, "__func__", None) is _fused_update_step


def _shared_scalars(self, learning_rate, dtype):
    """(beta1^t, beta2^t, lr, beta1, beta2, epsilon) as ``dtype``: the same for every variable of one
    ``apply``, so a traced step builds them once per dtype, not once per variable. Eagerly they are
    computed each time (the step count changes between calls)."""
    import tensorflow as tf

    key = (learning_rate, dtype, tf.compat.v1.get_default_graph())
    cached = getattr(self, "_fused_scalars", None)
    if not tf.executing_eagerly() and cached is not None and all(a is b for a, b in zip(cached[0], key)):
        return cached[1]
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    scalars = (tf.pow(beta_1, step), tf.pow(beta_2, step), tf.cast(learning_rate, dtype), beta_1, beta_2,
               tf.cast(self.epsilon, dtype))
    self._fused_scalars = (key, scalars)  # holding the graph keeps its identity from being reused
    return scalars


def _fused_update_step(self, gradient, variable, learning_rate):
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices) or tf.distribute.has_strategy():
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)
    dtype = variable.dtype
    beta1_power, beta2_power, lr, beta_1, beta_2, epsilon = _shared_scalars(self, learning_rate, dtype)
    index = self._get_variable_index(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
        beta1_power=beta1_power, beta2_power=beta2_power, lr=lr, beta1=beta_1, beta2=beta_2, epsilon=epsilon,
        grad=tf.cast(gradient, dtype))
