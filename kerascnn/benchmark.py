"""``kerascnn benchmark``: training throughput through the real training entry, and input-pipeline speed.

Training is timed as users run it (``kerascnn.train.train`` into a temporary run directory, with
history, checkpoints and metrics), so the figure includes every fixed cost a real run pays.
"""
import resource
import tempfile
import time

from kerascnn.tasks import resolve_config


def pipeline_throughput(cfg, splits, augment, epochs=3):
    """Images/s the tf.data pipeline delivers with no model attached (first and later epochs)."""
    from kerascnn.data.augment import build_augmentation
    from kerascnn.data.pipeline import make_dataset

    aug = build_augmentation(augment or ["flip", "rotate:15"], seed=0) if augment is not False else None
    ds = make_dataset(splits.train.x, splits.train.y, splits.num_classes, cfg.batch_size, training=True,
                      augmentation=aug, seed=0)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        for _batch in ds:
            pass
        times.append(time.perf_counter() - t)
    n = len(splits.train.x)
    return round(n / times[0], 1), round(n * (epochs - 1) / sum(times[1:]), 1)


def peak_memory_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_benchmark(args):
    from kerascnn.data import load_dataset
    from kerascnn.train import train

    rows = []
    for task in args.task:
        overrides = list(args.set or []) + (["epochs=%d" % args.epochs] if args.epochs else [])
        cfg = resolve_config(task, overrides + ["tensorboard=false"], data_dir=args.data_dir)
        t = time.perf_counter()
        splits = load_dataset(cfg)
        load_seconds = time.perf_counter() - t
        first, later = pipeline_throughput(cfg, splits, augment=False)
        first_aug, later_aug = pipeline_throughput(cfg, splits, augment=cfg.augment or None)
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                metrics = train(cfg, run_dir=f"{tmp}/run", quiet=True)
                wall = time.perf_counter() - t
            steps = -(-len(splits.train.x) // cfg.batch_size) * metrics["epochs_run"]
            rows.append({
                "task": task, "model": cfg.model, "repeat": repeat, "batch": cfg.batch_size,
                "epochs": metrics["epochs_run"], "train_images_per_s": metrics["images_per_s"],
                "ms_per_step": round(1000 * metrics["train_seconds"] / steps, 2),
                "train_s": metrics["train_seconds"], "wall_s": round(wall, 2),
                "dataset_load_s": round(load_seconds, 2),
                "pipeline_images_per_s": later, "pipeline_first_epoch": first,
                "pipeline_aug_images_per_s": later_aug, "pipeline_aug_first_epoch": first_aug,
                "peak_mem_mb": peak_memory_mb(), "best_val_accuracy": round(metrics["best_val_accuracy"], 4),
            })
    return rows
