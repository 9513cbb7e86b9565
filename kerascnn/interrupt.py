"""Ctrl-C that stops cleanly: the first SIGINT asks the work to stop at its next safe point (an epoch
boundary, or between trials or study variants), which leaves everything resumable; a second one ends the
process at once with status 130, as a SIGKILL would, which the journaled checkpoints are built to survive.
Long-running entries (training, studies, searches) run inside ``stop_at_safe_points()`` and ask
``stop_requested()`` at their safe points.

The second stop is ``os._exit`` rather than ``KeyboardInterrupt``: Python runs a signal handler wherever
the main thread happens to be, and an exception raised inside a finaliser (TensorFlow has many) is
printed and dropped, so a ``KeyboardInterrupt`` would sometimes be lost.
"""
import contextlib
import os
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
_resume_hint = None


def stop_requested():
    return _requested.is_set()


def stop_if_requested(before):
    """A safe point before the next piece of work (a run, a study step): raise ``Interrupted`` if Ctrl-C asked
    to stop. A request that comes in a run's last epoch lets that run finish normally, so it is honoured here."""
    if _requested.is_set():
        raise Interrupted(f"stopped before {before}")


def set_resume_hint(command):
    """The command a second Ctrl-C prints as the way to continue (the CLI knows it; the library does not)."""
    global _resume_hint
    _resume_hint = command


def _on_sigint(signum, frame):
    if _requested.is_set():
        hint = f"; from the last checkpoint, continue with: {_resume_hint}" if _resume_hint else ""
        print(f"\ninterrupted at once{hint}", file=sys.stderr, flush=True)
        os._exit(130)
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
