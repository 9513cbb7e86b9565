"""Import TensorFlow and Keras without the start-up lines TensorFlow's C++ side writes to standard error.

TensorFlow logs "oneDNN custom operations are on", "Could not find cuda drivers", "failed call to cuInit" and
the absl "InitializeLog" notice before its log level applies, straight to file descriptor 2, so neither
``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``sys.stderr`` can hold them back. ``import_tensorflow`` does the first
import and the first device listing (where CUDA is initialised) with descriptor 2 pointed at /dev/null for
that moment only. A user who exports ``TF_CPP_MIN_LOG_LEVEL`` or passes ``verbose=True`` sees everything.
"""
import contextlib
import importlib.util
import os
import sys

import kerascnn


@contextlib.contextmanager
def stderr_fd_silenced():
    """Point file descriptor 2 at /dev/null for the block, then restore it; Python's own buffer is flushed
    on both sides so nothing written before or after the block is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def user_log_level():
    """TF_CPP_MIN_LOG_LEVEL as the user exported it, or None when kerascnn set the default."""
    return kerascnn.USER_TF_CPP_MIN_LOG_LEVEL


def import_tensorflow(verbose=False):
    """Import TensorFlow (when installed) and Keras, quietly unless ``verbose`` or the user set the log level.

    A no-op past the first call; with TensorFlow already imported only the import of Keras remains.
    """
    if verbose and user_log_level() is None:
        # TensorFlow reads the level at import; verbose means every line it has.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    quiet = not verbose and user_log_level() is None and "tensorflow" not in sys.modules
    with stderr_fd_silenced() if quiet else contextlib.nullcontext():
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow as tf

            # The first device listing initialises CUDA, which logs cuInit's failure on machines without GPUs.
            tf.config.list_physical_devices()
        import keras  # noqa: F401
    if not verbose:
        drop_retracing_warnings()


class _NotRetracing:
    """A logging filter that drops TensorFlow's "triggered tf.function retracing" warning."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def drop_retracing_warnings():
    """A study, search or reproduce trains many models in one process, and each model's predict function is
    traced once for its own shapes. TensorFlow counts traces by the function's code, not the model, so from
    the third run on it warns (several lines each time) that a function is "retraced in a loop", which here
    is by design. Other TensorFlow warnings still show; ``--verbose`` shows this one too."""
    import logging

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NotRetracing) for f in logger.filters):
        logger.addFilter(_NotRetracing())


def warn_once():
    """Show each warning text once per process. A search or a study loads its data for every trial, and
    libraries that change the warning filters (KerasTuner, Keras) reset Python's memory of what was shown, for
    "default" and "once" alike, so the same data warning would otherwise repeat for every trial. Python
    documents ``warnings.showwarning`` as replaceable; the filters keep deciding what is shown at all."""
    import warnings

    show, shown = warnings.showwarning, set()

    def show_new(message, category, filename, lineno, file=None, line=None):
        if (category, str(message)) not in shown:
            shown.add((category, str(message)))
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_new


def plain_own_warnings():
    """Print kerascnn's own warnings (about the user's data and settings) as ``warning: TEXT``, without the
    source file and line Python adds, which point into kerascnn rather than at anything the user can change.
    Other libraries' warnings keep Python's format."""
    import warnings

    python_format = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None):
        if category.__module__.split(".")[0] == "kerascnn":
            return f"warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning
