"""Time the graph loop against stock Keras ``model.fit`` with ``steps_per_execution=N``, alternating the sides.

Each round trains the task once per variant, in a fresh process each, in a fixed order: ``graph``
(``train_loop=graph``) then ``fit_N`` (``train_loop=fit steps_per_execution=N``) for every N. Every other
setting is the task's, TensorBoard off. A run's figure is its ``train_seconds`` (the training phase's wall
time: loop set-up, tracing, history and checkpoints included) and its median later epoch (the steady state).
Run it on a quiet machine:

    python scripts/compare_loops.py --task artists --rounds 3
    python scripts/compare_loops.py --task caltech101_improved --epochs 3 --rounds 2 --steps 1 8
"""
import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = {"artists": "artists", "faces": "faces/crops", "caltech101": "caltech101", "clipart": "clipart",
        "cifar10": "cifar10/cifar10_subset.npz"}


def timed_run(task, data_dir, sets):
    """(train_seconds, median later-epoch seconds, best val accuracy) of one ``kerascnn train`` process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kerascnn", "train", "--task", task, "--quiet", "--json", "--run-dir",
               f"{tmp}/run", "--set", "tensorboard=false", *sets] + (["--data-dir", data_dir] if data_dir else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        metrics = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(f"{tmp}/run/history.csv") as f:
            later = [float(row["seconds"]) for row in csv.DictReader(f)][1:]
    return metrics["train_seconds"], statistics.median(later) if later else float("nan"), metrics["best_val_accuracy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="artists")
    ap.add_argument("--data-dir", help="default: the task's dataset under ../shared/data")
    ap.add_argument("--epochs", type=int, help="default: the task's")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 4, 16], help="steps_per_execution values of fit")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    family = args.task.split("_")[0]
    data_dir = args.data_dir or (str(ROOT.parent / "shared" / "data" / DATA[family]) if family in DATA else None)
    epochs = [f"epochs={args.epochs}"] if args.epochs else []
    variants = {"graph": ["train_loop=graph"], **{f"fit_{n}": ["train_loop=fit", f"steps_per_execution={n}"]
                                                  for n in args.steps}}
    rounds = []
    for i in range(args.rounds):
        row = {"round": i}
        for name, sets in variants.items():
            seconds, epoch_s, accuracy = timed_run(args.task, data_dir, sets + epochs)
            row[name] = {"train_s": seconds, "later_epoch_s": epoch_s, "best_val_accuracy": accuracy}
        rounds.append(row)
        print(json.dumps(row), flush=True)
    summary = {"task": args.task, "epochs": args.epochs, "rounds": args.rounds}
    graph = [r["graph"]["train_s"] for r in rounds]
    for name in variants:
        seconds = [r[name]["train_s"] for r in rounds]
        summary[name] = {
            "train_s_median": round(statistics.median(seconds), 3),
            "later_epoch_ms_median": round(1000 * statistics.median(r[name]["later_epoch_s"] for r in rounds), 1),
            # Above 1: the graph loop is faster; each round's ratio compares runs that saw the same machine.
            "vs_graph_round_ratio_median": round(statistics.median(s / g for s, g in zip(seconds, graph)), 3),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
