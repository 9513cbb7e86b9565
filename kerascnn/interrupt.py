"""Ctrl-C that stops cleanly: the first SIGINT asks the work to stop at its next safe point (an epoch
boundary, or between trials or study variants), which leaves everything resumable; a second one stops
at once (``KeyboardInterrupt``). Long-running entries (training, studies, searches) run inside
``stop_at_safe_points()`` and ask ``stop_requested()`` at their safe points.
"""
import contextlib
import signal
import sys
import threading


class Interrupted(Exception):
    """The work stopped at a safe point after Ctrl-C; ``run_dir`` is the run it left resumable, if any."""

    def __init__(self, message, run_dir=None):
        super().__init__(message)
        self.run_dir = run_dir


_requested = threading.Event()
_depth = 0  # nested entries (a study's runs) share the outermost entry's handler


def stop_requested():
    return _requested.is_set()


def _on_sigint(signum, frame):
    if _requested.is_set():
        raise KeyboardInterrupt
    _requested.set()
    print("\nCtrl-C: stopping at the next safe point (end of this epoch), leaving the run resumable; "
          "press Ctrl-C again to stop at once", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_at_safe_points():
    """Install the two-step Ctrl-C handler for the duration of the block (in the main thread only: Python
    delivers signals there, so elsewhere the block runs with whatever handler is in place)."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    _requested.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        signal.signal(signal.SIGINT, previous)
