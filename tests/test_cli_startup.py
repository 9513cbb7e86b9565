"""The command's start-up and edges: quiet TensorFlow import, help on every option, --version, handled errors,
and the progress bars of long preparation."""
import argparse
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, write_image_folder

TF_LOG = re.compile(r"^[IWEF]\d{4} |oneDNN custom operations|cuda drivers|cuInit|absl::InitializeLog|"
                    r"This TensorFlow binary", re.MULTILINE)


def kerascnn(*args, env=None):
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASCNN_DEFAULT_TF_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-m", "kerascnn", *map(str, args)], capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT)


def test_train_prints_no_tensorflow_start_up_lines(tmp_path):
    data = write_image_folder(tmp_path / "data", classes=2, per_class=6, size=32)
    proc = kerascnn("train", "--task", "folder", "--data-dir", data, "--run-dir", tmp_path / "run", "--quiet",
                    "--set", "epochs=1", "image_size=32", "tensorboard=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not TF_LOG.search(proc.stderr), proc.stderr
    assert "best val accuracy" in proc.stdout


# What TensorFlow's C++ side writes to descriptor 2 while a model trains, as the child writes it below: the
# oneDNN fallback notice a CPU without AVX-512 gets once per data type, and a line that matters.
FALLBACK = b"E0000 00:00:1796544402.159916 4208 util.cc:131] oneDNN supports DT_INT64 only on platforms with " \
           b"AVX-512. Falling back to the default Eigen-based implementation if present."
REAL_ERROR = b"E0000 00:00:1796544402.2 4208 op_kernel.cc:1857] OP_REQUIRES failed: out of memory"
CHILD = f"""
import os, signal, sys, time
from kerascnn.quiet import import_tensorflow
import_tensorflow(verbose=False)
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.killpg(0, signal.SIGINT)  # Ctrl-C reaches the whole process group, the filter too
time.sleep(0.2)
os.write(2, {FALLBACK!r} + b"\\n")
os.write(2, {REAL_ERROR!r} + b"\\n")
print("python stderr", file=sys.stderr, flush=True)
os.write(2, b"loading 50%\\r")
os.write(2, b"F0000 check_op.cc:1] Check failed: last words\\n")
os.abort()
"""


def start_child(env=None):
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASCNN_DEFAULT_TF_LOG_LEVEL")}
    return subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            start_new_session=True, env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def test_runtime_onednn_fallback_lines_are_dropped_and_every_other_line_kept_through_ctrl_c_and_a_crash():
    # Both children at once: each spends its time importing TensorFlow on one core.
    default, user_level = start_child(), start_child(env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    _, err = default.communicate(timeout=120)
    _, user_err = user_level.communicate(timeout=120)
    assert default.returncode < 0  # the abort
    assert b"oneDNN supports" not in err, err
    for kept in (REAL_ERROR, b"python stderr", b"loading 50%\r", b"Check failed: last words"):
        assert kept in err, (kept, err)
    assert FALLBACK in user_err and REAL_ERROR in user_err, user_err  # a user who sets the level sees it all


def test_verbose_is_accepted_before_and_after_the_command():
    from kerascnn.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--verbose", "tasks"]).verbose
    assert parser.parse_args(["tasks", "--verbose"]).verbose
    assert parser.parse_args(["data", "info", "artists", "--verbose"]).verbose
    assert not parser.parse_args(["tasks"]).verbose


def walk_options(parser, path=("kerascnn",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk_options(child, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), action


def test_every_option_has_help():
    from kerascnn.cli import build_parser

    options = list(walk_options(build_parser()))
    assert len(options) > 50
    missing = [f"{path} {action.option_strings or action.dest}" for path, action in options
               if not (action.help or "").strip()]
    assert not missing, missing


def test_version_names_the_packages_without_importing_tensorflow():
    code = ("import sys\nfrom kerascnn.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    import kerascnn

    first, imported = proc.stdout.strip().splitlines()
    assert first.startswith(f"kerascnn {kerascnn.__version__}") and "keras " in first
    assert imported == "False"


def failing(exc):
    def fn(args):
        raise exc

    return fn


@pytest.mark.parametrize("make", [
    lambda: __import__("kerascnn.data.download", fromlist=["x"]).DownloadError("https://x/a.zip: Not Found"),
    lambda: __import__("kerascnn.data.download", fromlist=["x"]).ChecksumError("a.zip", "00", "ff"),
    lambda: PermissionError(13, "Permission denied", "/root/runs/x"),
])
def test_download_checksum_and_os_errors_exit_2_with_one_line(make, monkeypatch, capsys):
    from kerascnn import cli

    monkeypatch.delenv("KERASCNN_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_tasks", failing(make()))
    assert cli.main(["tasks"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_os_error_names_reason_and_path(monkeypatch, capsys):
    from kerascnn import cli

    monkeypatch.delenv("KERASCNN_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_tasks", failing(PermissionError(13, "Permission denied", "/root/runs/x")))
    cli.main(["tasks"])
    assert capsys.readouterr().err == "error: Permission denied: /root/runs/x\n"


def test_debug_reraises(monkeypatch):
    from kerascnn import cli
    from kerascnn.data.download import DownloadError

    monkeypatch.setenv("KERASCNN_DEBUG", "1")
    monkeypatch.setattr(cli, "cmd_tasks", failing(DownloadError("boom")))
    with pytest.raises(DownloadError):
        cli.main(["tasks"])


def test_decode_with_a_forced_bar_writes_it_to_stderr(tmp_path, capsys):
    from kerascnn.data.images import load_image_folder

    root = write_image_folder(tmp_path / "images", classes=2, per_class=5, size=16)
    images = load_image_folder(root, (16, 16), cache_dir=tmp_path / "cache", name="t", layout_help="",
                               progress=True)
    assert images.x.shape == (10, 16, 16, 3) and sorted(set(images.y.tolist())) == [0, 1]
    captured = capsys.readouterr()
    assert "decoding t 10/10" in captured.err and captured.out == ""
    again = load_image_folder(root, (16, 16), cache_dir=tmp_path / "cache", name="t", layout_help="")
    assert (again.x == images.x).all() and capsys.readouterr().err == ""


def test_bars_are_silent_off_a_terminal(capsys):
    from kerascnn.progress import bar, byte_callback

    with bar(10, "x") as shown:  # pytest's captured stderr is not a terminal
        shown.update(10)
    callback = byte_callback("y")
    callback(5, 10)
    callback(10, 10)
    assert capsys.readouterr().err == ""
    callback = byte_callback("download a.zip", enabled=True)
    callback(512, None)
    callback(1024, 2048)
    callback(2048, 2048)
    assert "download a.zip 2.0 KB/2.0 KB" in capsys.readouterr().err


def test_tensorflow_retracing_warnings_are_dropped_and_other_warnings_kept():
    import logging

    from kerascnn.quiet import import_tensorflow

    import_tensorflow(verbose=False)
    logger = logging.getLogger("tensorflow")

    def shown(message):
        return logger.filter(logger.makeRecord("tensorflow", logging.WARNING, __file__, 1, message, (), None))

    assert not shown("5 out of the last 11 calls to <function f> triggered tf.function retracing. Tracing is ...")
    assert shown("Your input ran out of data; interrupting training.")
