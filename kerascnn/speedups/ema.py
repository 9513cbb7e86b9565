"""Keras's EMA weight swap, told where the averaged weights are when a run resumes.

``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`` validates the averaged weights (``on_test_begin``)
and leaves them in the model from the end of each epoch (test tracking, best and last checkpoints) until
the next one starts, while the training weights wait in the optimizer's average slots. A checkpoint
therefore holds the averaged weights in the model, so a resumed run starts with them swapped in. Keras
keeps that fact in a private flag and has no public way to set it (``INTERNALS``).
"""
import keras

from kerascnn import speedups

INTERNALS = (("keras.callbacks", "SwapEMAWeights"),)
FLAG = "_ema_weights_in_model"


class ResumeError(ValueError):
    """A run cannot be resumed on this Keras."""


def averaged_weights_callback(resumed):
    """The swap callback; ``resumed``: the model was loaded from a checkpoint, averaged weights swapped in."""
    callback = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    if resumed:
        reason = speedups.missing_internal(INTERNALS) or (None if hasattr(callback, FLAG)
                                                          else f"keras.callbacks.SwapEMAWeights has no {FLAG}")
        if reason:
            raise ResumeError(f"cannot resume a run with ema on this Keras ({keras.__version__}): {reason}; "
                              "train it again from the start, or resume it with the Keras it started on")
        setattr(callback, FLAG, True)
    return callback
