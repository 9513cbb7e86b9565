"""Time kerascnn against the PyTorch starter re-creations in ../shared/bench/torch_ref.py, alternating sides.

The reference is run as an external program (it is a yardstick, never imported). Each round runs
PyTorch, then kerascnn, so both see the same machine state; run it on a quiet machine.

    python scripts/compare_torch.py --workload artists --data-dir ../shared/data/artists --rounds 3
    python scripts/compare_torch.py --workload cifar-convnet --rounds 3

artists: PyTorch's training-loop seconds for 50 epochs against kerascnn's training seconds of a full
``train`` run (which also validates every epoch, records history and writes checkpoints). torch_ref's
SimpleCNN max-pools after each conv (12,507 parameters), so the kerascnn side trains the same network
(``model.pooling=true``); the assignment's starter, kerascnn's ``artists`` default, has no pooling.
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


SAME_AS_TORCH_REF = {"artists": ["model.pooling=true", "model.pool_size=2", "model.pool_strides=2"]}


def keras_side(args):
    sets = SAME_AS_TORCH_REF.get(args.workload, []) + (args.set or [])
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
    rounds = []
    for i in range(args.rounds):
        torch_result, keras_result = torch_side(args), keras_side(args)
        rounds.append({"round": i, "torch": torch_result, "kerascnn": keras_result})
        print(json.dumps(rounds[-1]), flush=True)
    key = "seconds" if args.workload == "artists" else "images_per_s"
    t = statistics.median(r["torch"][key] for r in rounds)
    k = statistics.median(r["kerascnn"][key] for r in rounds)
    ratio = t / k if key == "seconds" else k / t
    print(json.dumps({"workload": args.workload, "metric": key, "torch_median": t, "kerascnn_median": k,
                      "kerascnn_speed_ratio": round(ratio, 3), "rounds": len(rounds)}))


if __name__ == "__main__":
    main()
