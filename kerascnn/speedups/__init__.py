"""Everything in kerascnn that reaches into private Keras or TensorFlow internals, each piece behind a guard.

Three speed-ups for the TensorFlow backend, each switched by a recipe field:

- ``graph_loop`` (``train_loop``): many training steps per TensorFlow call from in-memory tensors;
- ``conv_grad`` (``fast_conv_grad``): Conv2D gradients as forward convolutions where those are faster;
- ``fused_adam`` (``fused_adam``): Adam's update as one TensorFlow kernel per variable.

and one correctness hook, ``ema``: where Keras's EMA swap finds the averaged weights on ``--resume``.

Private names change without notice, so each piece states the internals it touches (``INTERNALS``), and
the package states the Keras and TensorFlow releases the suite passed on (``TESTED``). A speed-up runs
only when the versions are tested and every internal is present; otherwise training takes the stock
Keras path (``model.fit``, TensorFlow's own gradients, Keras's Adam) and one ``SpeedupWarning`` says why.
The same warning says so when a recipe switches a speed-up off. ``KERASCNN_UNTESTED_INTERNALS=1`` skips
the version check (the internals are still checked), to try a new release.
"""
import importlib
import os
import warnings

# The (major, minor) releases the test suite passed on, both ends included; pyproject.toml holds the same.
TESTED = {"keras": ((3, 15), (3, 15)), "tensorflow": ((2, 21), (2, 21))}
ALLOW_UNTESTED = "KERASCNN_UNTESTED_INTERNALS"


class SpeedupWarning(UserWarning):
    """A speed-up is off, and training runs on the stock Keras path instead."""


_warned = set()


def release(version):
    """(major, minor) of a version string such as ``"3.15.1"`` or ``"2.21.0rc1"``."""
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def untested_versions():
    """Why the installed Keras or TensorFlow is outside ``TESTED``, or None."""
    if os.environ.get(ALLOW_UNTESTED) == "1":
        return None
    for package, (low, high) in TESTED.items():
        module = importlib.import_module(package)
        if not low <= release(module.__version__) <= high:
            span = ".".join(map(str, low)) + ("" if low == high else "-" + ".".join(map(str, high)))
            return (f"{package} {module.__version__} is not a release these internals were tested on ({span}; "
                    f"{ALLOW_UNTESTED}=1 tries them anyway)")
    return None


def missing_internal(internals):
    """The first of ``internals`` (pairs of a module path and a dotted attribute path) that cannot be
    found, as text, or None."""
    for module_name, attribute in internals:
        try:
            target = importlib.import_module(module_name)
        except ImportError:
            return f"{module_name} cannot be imported"
        for part in attribute.split("."):
            if not hasattr(target, part):
                return f"{module_name}.{attribute} is missing"
            target = getattr(target, part)
    return None


def guard_reason(internals):
    """Why code touching ``internals`` cannot run here, or None: the backend, the versions, the internals."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"it needs the TensorFlow backend (this is {keras.backend.backend()})"
    return untested_versions() or missing_internal(internals)


def warn_stock(speedup, reason, stock):
    """One warning per process and reason: ``speedup`` is off because of ``reason``; ``stock`` runs."""
    key = (speedup, reason)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"{speedup} off: {reason}; training uses {stock}", SpeedupWarning, stacklevel=3)


def use(speedup, *, requested, internals, stock, switch):
    """Whether ``speedup`` runs: the recipe asks for it (``switch`` names the field that turned it off) and
    its guard passes. Otherwise warn once and return False, so the caller takes ``stock``."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False  # the speed-ups are TensorFlow's; other backends always train the stock way
    if not requested:
        warn_stock(speedup, f"the recipe sets {switch}", stock)
        return False
    reason = guard_reason(internals)
    if reason:
        warn_stock(speedup, reason, stock)
        return False
    return True
