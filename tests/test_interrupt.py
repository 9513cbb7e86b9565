"""Ctrl-C, as a real SIGINT to a `kerascnn` process: the first stops at an epoch boundary with the run
resumable and exit 130, a second stops at once."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, write_image_folder
from kerascnn import rundir


def start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERASCNN_DATA": str(tmp_path / "data_home")}
    return subprocess.Popen([sys.executable, "-m", "kerascnn", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_epochs(run_dir, epochs, proc, limit=120):
    """Until history.csv holds ``epochs`` rows (it is rewritten at least once a second)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if len(rundir.read_history(run_dir)) >= epochs:
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {epochs} epochs in {limit} s")


def long_run(tmp_path, *extra):
    data = write_image_folder(tmp_path / "images")
    return ["train", "--task", "artists", "--data-dir", str(data), "--quiet", "--set", "epochs=100000",
            "batch_size=16", "tensorboard=false", *extra]


def test_first_ctrl_c_stops_at_an_epoch_boundary_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(long_run(tmp_path) + ["--run-dir", str(run_dir)], tmp_path)
    wait_for_epochs(run_dir, 3, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"run directory: {run_dir}" in out  # shown from the start, not only at the end
    assert f"continue with: kerascnn train --resume {run_dir}" in err
    assert "Traceback" not in err
    state = json.loads((run_dir / "state.json").read_text())
    stopped_at = state["epoch"]
    assert stopped_at >= 3 and len(rundir.read_history(run_dir)) == stopped_at
    assert (run_dir / "last.keras").exists() and not list(run_dir.glob("*-e*.keras"))

    resumed = start(["train", "--resume", str(run_dir), "--quiet"], tmp_path)
    wait_for_epochs(run_dir, stopped_at + 2, resumed)
    resumed.send_signal(signal.SIGINT)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 130, err
    history = rundir.read_history(run_dir)
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == len(history) > stopped_at + 1


def test_second_ctrl_c_stops_at_once(tmp_path):
    # Slow epochs (one large image per step, many images) leave time for the second signal before the
    # epoch ends. The second is sent only once the first has been handled: signals that arrive while
    # TensorFlow holds the main thread are delivered to Python once, as a person's two presses are not.
    data = write_image_folder(tmp_path / "images", per_class=150)
    run_dir = tmp_path / "run"
    proc = start(["train", "--task", "artists", "--data-dir", str(data), "--quiet", "--run-dir", str(run_dir),
                  "--set", "epochs=100000", "batch_size=1", "image_size=160", "tensorboard=false"], tmp_path)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    wait_for_epochs(run_dir, 1, proc)
    proc.send_signal(signal.SIGINT)
    err = ""
    while "Ctrl-C: stopping at the next safe point" not in err:
        err += lines.get(timeout=60)
    proc.send_signal(signal.SIGINT)
    start_wait = time.monotonic()
    proc.wait(timeout=60)
    time.sleep(0.5)  # the reader thread drains the pipe
    while not lines.empty():
        err += lines.get()
    assert proc.returncode == 130, err
    assert time.monotonic() - start_wait < 20
    assert "interrupted at once" in err and f"kerascnn train --resume {run_dir}" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_a_study_which_the_same_command_continues(tmp_path):
    data = write_image_folder(tmp_path / "images")
    args = ["experiment", "artists.pooling", "--only", "no_pooling", "--data-dir", str(data), "--epochs", "100000",
            "--quiet", "--out", str(tmp_path / "studies"), "--set", "batch_size=16", "tensorboard=false"]
    proc = start(args, tmp_path)
    run_dir = tmp_path / "studies" / "artists.pooling" / "runs" / "no_pooling" / "seed0"
    wait_for_epochs(run_dir, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with: kerascnn experiment artists.pooling --only no_pooling" in err
    assert "Traceback" not in err
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epoch"] == len(rundir.read_history(run_dir)) >= 2
