"""Time kerascnn against the PyTorch starter re-creations in ../shared/bench/torch_ref.py, alternating sides.

The reference is run as an external program (it is a yardstick, never imported). Each round runs
PyTorch, then kerascnn, so both see the same machine state; run it on a quiet machine.

    python scripts/compare_torch.py --workload artists --data-dir ../shared/data/artists --rounds 3
    python scripts/compare_torch.py --workload cifar-convnet --rounds 3

artists: PyTorch's training-loop seconds for 50 epochs against kerascnn's training seconds of a full
``train`` run: the wall time of its training phase, from before the loop is built to the last
checkpoint, so tracing, history and checkpoint writes are all counted. torch_ref's SimpleCNN max-pools after
each conv (12,507 parameters), so the kerascnn side trains the same network (``model.pooling=true``); the
assignment's starter, kerascnn's ``artists`` default, has no pooling. torch_ref's loop measures validation
accuracy once, after training and outside its timer; the same work on the kerascnn side is
``validation_freq=50`` (one validation, after the last epoch, inside the timer). The default run, which
validates after every epoch, is timed too, in the same rounds (``validating_every_epoch``).
cifar-convnet: training images/s on 1536 synthetic 32x32 images, batch 128, float32, both sides.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def last_json(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_side(args):
    cmd = [args.torch_python, args.torch_ref]
    if args.workload == "artists":
        out = last_json(cmd + ["artists", args.data_dir, "--epochs", "50"])
        return {"seconds": out["seconds"], "images_per_s": out["images_per_s"], "val_acc": out["val_acc"]}
    out = last_json(cmd + ["cifar-convnet", "--n", str(args.images), "--epochs", "1", "--batch", "128"]
                    + (["--bn"] if args.workload == "cifar-convnet-bn" else []))
    return {"seconds": out["seconds"], "images_per_s": out["images_per_s"]}


SAME_AS_TORCH_REF = {"artists": ["model.pooling=true", "model.pool_size=2", "model.pool_strides=2",
                                  "validation_freq=50"]}
# Further kerascnn settings timed in the same rounds: name -> overrides on top of SAME_AS_TORCH_REF.
ALSO_TIMED = {"artists": {"validating_every_epoch": ["validation_freq=1"]}}


def keras_side(args, extra=()):
    sets = SAME_AS_TORCH_REF.get(args.workload, []) + list(extra) + (args.set or [])
    cmd = [sys.executable, "-m", "kerascnn", "benchmark", "--json"] + (["--set", *sets] if sets else [])
    if args.workload == "artists":
        out = last_json(cmd + ["--task", "artists", "--parts", "run", "--data-dir", args.data_dir])["results"][0]
        return {"seconds": out["train_s"], "images_per_s": out["train_images_per_s"],
                "val_acc": out["best_val_accuracy"], "run_wall_s": out["run_wall_s"],
                "first_epoch_s": out["first_epoch_s"], "later_epoch_ms": out["later_epoch_ms"]}
    task = "cifar10_bn" if args.workload == "cifar-convnet-bn" else "cifar10"
    out = last_json(cmd + ["--task", task, "--parts", "step", "--synthetic-images", str(args.images)])["results"][0]
    return {"seconds": out["step_seconds"], "images_per_s": out["step_images_per_s"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=["artists", "cifar-convnet", "cifar-convnet-bn"], default="artists")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "artists"))
    ap.add_argument("--torch-python", default=str(Path.home() / "torchref" / "bin" / "python"))
    ap.add_argument("--torch-ref", default=str(ROOT.parent / "shared" / "bench" / "torch_ref.py"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=1536)
    ap.add_argument("--set", nargs="+", help="recipe overrides for the kerascnn side")
    args = ap.parse_args()
    also = ALSO_TIMED.get(args.workload, {})
    rounds = []
    for i in range(args.rounds):
        row = {"round": i, "torch": torch_side(args), "kerascnn": keras_side(args)}
        row.update({name: keras_side(args, extra) for name, extra in also.items()})
        rounds.append(row)
        print(json.dumps(row), flush=True)
    key = "seconds" if args.workload == "artists" else "images_per_s"

    def speed(torch_value, keras_value):
        return torch_value / keras_value if key == "seconds" else keras_value / torch_value

    t = statistics.median(r["torch"][key] for r in rounds)
    summary = {"workload": args.workload, "metric": key, "torch_median": t, "rounds": len(rounds)}
    for side, label in [("kerascnn", "kerascnn"), *((name, f"kerascnn_{name}") for name in also)]:
        k = statistics.median(r[side][key] for r in rounds)
        # The ratio of the medians, and the median of each round's ratio (both sides saw the same machine).
        summary.update({f"{label}_median": k, f"{label}_speed_ratio": round(speed(t, k), 3),
                        f"{label}_round_ratio_median": round(statistics.median(
                            speed(r["torch"][key], r[side][key]) for r in rounds), 3)})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
