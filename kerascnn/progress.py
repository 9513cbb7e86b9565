"""Progress bars on stderr for long preparation (first decodes, downloads), without importing Keras.

Keras's ``Progbar`` writes to stdout and importing it loads TensorFlow, which a download should not need;
this bar writes one rewritten line to stderr, so stdout stays the command's result. ``bar`` is a no-op
unless stderr is a terminal or the caller forces it with ``enabled=True``.
"""
import sys
import time

# Fewer files than this decode in a few seconds: no bar.
MIN_FILES = 500


def stderr_is_tty():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def keras_verbose(quiet):
    """Keras's ``verbose`` for training: off when quiet, a live bar on a terminal, and one line per epoch
    when stdout goes to a file or pipe, where a bar would write every step's redraw into the log."""
    if quiet:
        return 0
    try:
        return 1 if sys.stdout.isatty() else 2
    except (AttributeError, ValueError):  # replaced or closed stdout
        return 2


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class Bar:
    """``label  done/total [=====>    ] pct`` on stderr, redrawn at most ten times a second."""

    width = 30

    def __init__(self, total, label, *, unit="", interval=0.1):
        self.total, self.label, self.unit, self.interval = total, label, unit, interval
        self.done = 0
        self.started = self.last = time.monotonic()
        self.closed = False

    def update(self, n=1):
        self.set(self.done + n)

    def set(self, done):
        self.done = done
        now = time.monotonic()
        if now - self.last >= self.interval or done >= self.total:
            self.last = now
            self._draw()

    def _draw(self, end=""):
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(self.width * fraction)
        arrow = "=" * filled + (">" if filled < self.width else "")
        count = (f"{_bytes(self.done)}/{_bytes(self.total)}" if self.unit == "bytes"
                 else f"{self.done}/{self.total}")
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.label} {count} [{arrow:<{self.width}}] {fraction:4.0%} {elapsed:.0f}s{end}")
        sys.stderr.flush()

    def close(self):
        if not self.closed:
            self.closed = True
            self._draw(end="\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NullBar:
    """The bar of a quiet run: accepts every call, writes nothing."""

    def update(self, n=1):
        pass

    def set(self, done):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def bar(total, label, *, enabled=None, unit=""):
    """A progress bar over ``total`` items (``unit="bytes"``: bytes), or a no-op one.

    ``enabled=None`` shows it only when stderr is a terminal; True forces it, False hides it.
    """
    if enabled is None:
        enabled = stderr_is_tty()
    return Bar(total, label, unit=unit) if enabled and total else NullBar()


def byte_callback(label, *, enabled=None):
    """A ``progress(done, total)`` callback for ``kerascnn.data.download.download`` that draws a byte bar
    once the size is known (nothing when the server does not send it)."""
    state = {}

    def progress(done, total):
        if total is None:
            return
        if state.get("total") != total:
            if "bar" in state:
                state["bar"].close()
            state["total"], state["bar"] = total, bar(total, label, enabled=enabled, unit="bytes")
        state["bar"].set(done)
        if done >= total:
            state["bar"].close()

    return progress
