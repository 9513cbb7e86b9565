"""Import TensorFlow and Keras without the start-up lines TensorFlow's C++ side writes to standard error.

TensorFlow logs "oneDNN custom operations are on", "Could not find cuda drivers", "failed call to cuInit" and
the absl "InitializeLog" notice before its log level applies, straight to file descriptor 2, so neither
``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``sys.stderr`` can hold them back. ``import_tensorflow`` does the first
import and the first device listing (where CUDA is initialised) with descriptor 2 pointed at /dev/null for
that moment only. Past start-up, ``filter_runtime_lines`` drops the few lines TensorFlow's C++ side logs while
it trains that say nothing a user can act on. A user who exports ``TF_CPP_MIN_LOG_LEVEL`` or passes
``verbose=True`` sees everything.
"""
import atexit
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading

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
    if quiet:
        filter_runtime_lines()
    if not verbose:
        drop_retracing_warnings()


# TensorFlow's C++ lines, written while a model trains, that a user can do nothing about. With oneDNN on (as
# kerascnn sets it, for speed on AVX2 CPUs too) TensorFlow reports at ERROR level, once per data type, that an
# op in int64, bool or half precision (the augmentation layers, the faces AlexNet feature cache) runs on its
# Eigen kernel on a CPU without AVX-512: the fallback is the normal path there.
RUNTIME_NOISE = rb"util\.cc:\d+\] oneDNN supports DT_[A-Z0-9_]+ only on platforms with AVX-512"

# The filter runs in its own process, so that a line written just before a crash (a fatal CHECK, an abort)
# still reaches the terminal. It starts with Ctrl-C ignored (an ignored signal stays ignored across exec, and
# Python keeps it so), since the terminal sends Ctrl-C to the whole process group: the command decides how to
# stop, and the filter lives until the last writer closes the pipe. A partial line is held back only while it
# can still become a TensorFlow log line; anything else (a "\r" progress bar) passes at once.
FILTER_PROGRAM = r"""
import os, re, sys
noise, log_start = re.compile(sys.argv[1].encode()), re.compile(rb"[IWEF]\d{0,4}( .*)?", re.S)
held = b""

def write(data):
    try:
        while data:
            data = data[os.write(1, data):]
    except OSError:
        pass

while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    lines = (held + chunk).splitlines(keepends=True)
    held = lines.pop() if not lines[-1].endswith((b"\n", b"\r")) else b""
    if held and not log_start.fullmatch(held):
        lines.append(held)
        held = b""
    write(b"".join(line for line in lines if not noise.search(line)))
if held and not noise.search(held):
    write(held)
"""


def filter_runtime_lines():
    """Send what is written to file descriptor 2 (TensorFlow's C++ log) through a filter process that drops the
    RUNTIME_NOISE lines and passes everything else. Python's own ``sys.stderr`` moves to a copy of the original
    descriptor, so tracebacks, warnings and progress bars reach the terminal directly and still see a terminal.
    At exit descriptor 2 goes back to the original and the filter is given a moment to pass its last lines."""
    if os.name != "posix" or sys.stderr is not sys.__stderr__:  # a harness that captures stderr keeps it
        return
    if threading.current_thread() is not threading.main_thread():  # only the main thread can mask Ctrl-C
        return
    sys.stderr.flush()
    original = os.dup(2)
    ctrl_c = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        filter_process = subprocess.Popen([sys.executable, "-I", "-S", "-c", FILTER_PROGRAM, RUNTIME_NOISE.decode()],
                                          stdin=subprocess.PIPE, stdout=original, stderr=subprocess.DEVNULL)
    except OSError:
        os.close(original)
        return
    finally:
        signal.signal(signal.SIGINT, ctrl_c)
    os.dup2(filter_process.stdin.fileno(), 2)
    filter_process.stdin.close()
    sys.stderr = open(original, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors,
                      closefd=False)

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            filter_process.wait(timeout=2)
        except subprocess.TimeoutExpired:  # a process this one started still holds the pipe; it ends with it
            pass

    atexit.register(restore)


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
