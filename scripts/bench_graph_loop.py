"""Where the first epoch of a small graph-loop run goes: tracing, first execution, then steady calls.

On artists (361 training and 90 validation images, batch 128) the first epoch costs many later
ones. This separates the parts on synthetic data of the task's shape: building the loop; tracing the
training and the validation functions (``get_concrete_function``, in a second process so the
first-call figure is not helped by it); the first call (tracing the training function, then its
graph optimisation, kernel creation and one step, while a helper thread traces and optimises the
validation function); when validation is ready, counted from the first call's start (after the first
call: here the loop waits for the helper); the rest of epoch 0 with the first validation; and later
whole epochs with validation. Run it on a quiet machine:

    python scripts/bench_graph_loop.py --task artists --set model.pooling=true model.pool_size=2 model.pool_strides=2
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seconds(fn):
    start = time.perf_counter()
    out = fn()
    for logs in out if isinstance(out, tuple) else (out,):
        if isinstance(logs, dict):
            [float(v) for v in logs.values()]  # wait for the call to finish
    return round(time.perf_counter() - start, 3)


def measure(args, trace_first):
    import numpy as np

    from kerascnn.speedups.graph_loop import GraphLoop
    from kerascnn.tasks import resolve_config
    from kerascnn.train import build_model, compile_model, configure_runtime

    cfg = resolve_config(args.task, args.set or [])
    configure_runtime(cfg)
    rng = np.random.default_rng(0)
    shape = (cfg.image_size, cfg.image_size, 3)
    train_x = rng.integers(0, 256, (args.train, *shape), dtype=np.uint8)
    val_x = rng.integers(0, 256, (args.val, *shape), dtype=np.uint8)
    classes = args.classes
    model = build_model(cfg, shape, classes)
    compile_model(model, cfg)
    row = {}
    loop = None

    def build():
        nonlocal loop
        loop = GraphLoop(model, (train_x, rng.integers(0, classes, args.train)),
                         (val_x, rng.integers(0, classes, args.val)), classes, cfg.batch_size)

    row["build_s"] = seconds(build)
    if trace_first:
        import tensorflow as tf

        zero = tf.constant(0)
        row["trace_train_s"] = seconds(lambda: loop._train_function.get_concrete_function(
            loop.train_x, loop.train_y, zero, zero, zero))
        row["trace_validation_s"] = seconds(lambda: loop._test_function.get_concrete_function(*loop.val))
    steps = loop.steps_per_epoch()
    start = time.perf_counter()
    row["first_call_s"] = seconds(lambda: loop.train_batches(0, 0, 1))
    loop._ready_to_evaluate()
    row["validation_ready_after_s"] = round(time.perf_counter() - start, 3)
    row["rest_of_epoch_0_s"] = seconds(lambda: (loop.train_batches(0, 1, steps), loop.validate()))
    later = [seconds(lambda e=e: (loop.train_batches(e, 0, steps), loop.validate())) for e in range(1, 1 + args.epochs)]
    row["later_epoch_ms"] = round(1000 * sorted(later)[len(later) // 2], 1)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="artists")
    ap.add_argument("--set", nargs="+", help="recipe overrides, as for train")
    ap.add_argument("--train", type=int, default=361, help="training images (artists: 361)")
    ap.add_argument("--val", type=int, default=90, help="validation images (artists: 90)")
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--epochs", type=int, default=10, help="later epochs timed (median reported)")
    ap.add_argument("--trace-first", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.trace_first:
        print(json.dumps(measure(args, True)))
        return
    traced = json.loads(subprocess.run([sys.executable, *sys.argv, "--trace-first"], capture_output=True,
                                       text=True, check=True).stdout.strip().splitlines()[-1])
    row = measure(args, False)
    row["trace_train_s"], row["trace_validation_s"] = traced["trace_train_s"], traced["trace_validation_s"]
    row["first_call_without_trace_s"] = traced["first_call_s"]
    for key, value in row.items():
        print(f"{key:28s} {value}")
    if args.json:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
