"""Run a study: every variant (times every seed) through ``kerascnn.train``, then one table and plots.

Layout: ``<out>/<study>/runs/<variant>/seed<k>/`` (ordinary run directories), ``table.csv``,
``table.md``, ``curves.png`` and, for numeric sweeps, ``sweep.png``. A finished run (metrics.json
present) is skipped on a re-run, an interrupted one resumes; a run finished under a different
configuration is an error rather than silently mixed into the table.
"""
import dataclasses
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.experiments import STUDIES
from kerascnn.io import atomic_write, write_json
from kerascnn.tables import csv_text, format_mean_sd, markdown_lines, put_mean_sd
from kerascnn.vis.curves import plot_overlaid
from kerascnn.vis.figure import pyplot, save_figure

COLUMNS = ["variant", "train_accuracy", "val_accuracy", "best_epoch", "epochs_run", "seconds"]


def get_study(name):
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; available: {', '.join(sorted(STUDIES))}")
    return STUDIES[name]


def comparable(cfg_dict):
    """A config without the settings that say where things are, not what is trained."""
    return {k: v for k, v in cfg_dict.items() if k not in ("data_dir", "cache_dir")}


def train_variant(cfg, run_dir, quiet):
    from kerascnn.train import train

    if (run_dir / "metrics.json").exists():
        saved = rundir.load_config(run_dir).to_dict()
        # The task name only labels a recipe: a task's default run is also a study variant with the same recipe.
        if {**comparable(saved), "task": None} != {**comparable(cfg.to_dict()), "task": None}:
            raise ValueError(f"{run_dir} finished with a different configuration; delete it or choose another --out")
        return rundir.read_json(run_dir, "metrics.json")
    if (run_dir / "config.json").exists():
        return train(resume=run_dir, quiet=quiet)
    return train(cfg, run_dir=run_dir, quiet=quiet)


def select_variants(study, only):
    """The study restricted to the variants named in ``only`` (all when empty), in the study's order."""
    if not only:
        return study
    names = [v for v, _ in study.variants]
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise ValueError(f"study {study.name} has no variant {', '.join(unknown)}; its variants: {', '.join(names)}")
    return dataclasses.replace(study, variants=[(v, o) for v, o in study.variants if v in only])


def run_study(name, *, epochs=None, overrides=(), repeats=None, data_dir=None, out_root="studies", quiet=False,
              only=()):
    """Train every variant and seed, then write the table and figures. Ctrl-C stops at the end of the
    current epoch (``kerascnn.interrupt.Interrupted``); the same call again skips the finished runs and
    resumes the interrupted one."""
    from kerascnn.interrupt import stop_at_safe_points

    with stop_at_safe_points():
        return _run_study(name, epochs=epochs, overrides=overrides, repeats=repeats, data_dir=data_dir,
                          out_root=out_root, quiet=quiet, only=only)


def _run_study(name, *, epochs, overrides, repeats, data_dir, out_root, quiet, only):
    from kerascnn.interrupt import stop_if_requested
    from kerascnn.tasks import resolve_config

    study = select_variants(get_study(name), only)
    repeats = repeats or study.repeats
    study_dir = Path(out_root) / name
    results = []
    for variant, variant_overrides in study.variants:
        for seed in range(repeats):
            sets = study.base + variant_overrides + list(overrides) + ([f"epochs={epochs}"] if epochs else [])
            cfg = resolve_config(study.task, sets + [f"seed={seed}"], data_dir=data_dir)
            run_dir = study_dir / "runs" / variant / f"seed{seed}"
            if not (run_dir / "metrics.json").exists():
                stop_if_requested(f"{variant} seed {seed}, with {len(results)} of {len(study.variants) * repeats} "
                                  "runs finished")
            if not quiet:
                print(f"[{name}] {variant} seed {seed}: {' '.join(variant_overrides) or '(base)'}", flush=True)
            metrics = train_variant(cfg, run_dir, quiet)
            log_hparams(study_dir, variant, seed, sets, metrics)
            results.append({"variant": variant, "seed": seed, "overrides": variant_overrides, "cfg": cfg,
                            "run_dir": run_dir, "metrics": metrics})
    rows = summarise(results, study)
    extra = {}
    if study.post:
        extra = study.post(study, study_dir, results, quiet=quiet) or {}
        rows = extra.get("rows", rows)
    markdown = write_tables(study_dir, study, rows, extra.get("columns"))
    plot_curves(study_dir / "curves.png", results, study)
    if study.sweep:
        plot_sweep(study_dir / "sweep.png", rows, study)
    write_json(study_dir / "study.json", {"study": name, "task": study.task, "description": study.description,
                                          "repeats": repeats, "epochs": epochs, "overrides": list(overrides),
                                          "variants": [v for v, _ in study.variants],
                                          "rows": rows})
    return {"study": name, "study_dir": str(study_dir), "rows": rows, "markdown": markdown}


def log_hparams(study_dir, variant, seed, overrides, metrics):
    """The variant's HParams record (its overrides, variant name and seed; best and last accuracies), once, so
    ``tensorboard --logdir STUDY_DIR/tensorboard`` compares the variants in the HParams views."""
    from kerascnn.vis.tensorboard import write_hparams

    logdir = Path(study_dir) / "tensorboard" / f"{variant}_seed{seed}"
    if logdir.exists():
        return
    hparams = {"variant": variant, "seed": seed}
    hparams.update(o.split("=", 1) for o in overrides if "=" in o and not o.startswith("seed="))
    write_hparams(logdir, name=f"{variant}_seed{seed}", hparams=hparams,
                  metrics={**_metric_row(metrics), "epochs_run": metrics["epochs_run"]})


def _metric_row(m):
    return {"train_accuracy": m["best"]["train_accuracy"], "val_accuracy": m["best"]["val_accuracy"],
            "last_val_accuracy": m["last"]["val_accuracy"], "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"], "seconds": m["train_seconds"]}


def summarise(results, study):
    """One row per variant: means over seeds, with standard deviations when there are several."""
    rows = []
    for variant, overrides in study.variants:
        runs = [_metric_row(r["metrics"]) for r in results if r["variant"] == variant]
        row = {"variant": variant, "overrides": " ".join(overrides), "seeds": len(runs)}
        for key in runs[0]:
            put_mean_sd(row, key, [r[key] for r in runs])
        if study.sweep:
            row[study.sweep] = sweep_value(overrides, study.sweep)
        rows.append(row)
    return rows


def sweep_value(overrides, key):
    for item in overrides:
        k, _, v = item.partition("=")
        if k == key:
            try:
                return float(v)
            except ValueError:
                return v
    return None


def _cell(row, key):
    """A Markdown cell: accuracies to 4 decimals, epochs and seconds to 1, each with its ± sd over seeds."""
    v = row.get(key)
    if isinstance(v, float):
        if "accuracy" in key:
            return format_mean_sd(v, row.get(f"{key}_std"))
        if key in ("best_epoch", "epochs_run", "seconds"):
            return format_mean_sd(v, row.get(f"{key}_std"), ".1f")
        return f"{v:g}"
    return "" if v is None else str(v)


# A one-seed gap under this many accuracy points could be a few images' luck (one artists image is 1.1 points),
# so the verdict asks for a second seed; a larger one-seed gap still has no spread to call it a finding by.
ONE_SEED_GAP = 0.03


def add_verdicts(rows, key="val_accuracy"):
    """Each row's difference from the first (the reference) in ``key``, called a finding only when it exceeds the
    seeds' spread (the sum of the two standard deviations), "within noise" otherwise, and left without a verdict
    when either side has a single seed, saying so where the gap is under ``ONE_SEED_GAP``."""
    if len(rows) < 2 or not all(isinstance(r.get(key), float) for r in rows):
        return False
    first = rows[0]
    first["verdict"] = "reference"
    for row in rows[1:]:
        delta = row[key] - first[key]
        spreads = (row.get(f"{key}_std"), first.get(f"{key}_std"))
        if None in spreads:
            judgement = "one seed, no verdict" + (", needs 2 seeds" if abs(delta) < ONE_SEED_GAP else "")
        else:
            judgement = "finding" if abs(delta) > sum(spreads) else "within noise"
        row["verdict"] = f"{delta:+.4f}, {judgement}"
    return True


def write_tables(study_dir, study, rows, columns=None):
    columns = list(columns or COLUMNS + ["last_val_accuracy", "overrides"])
    if add_verdicts(rows):
        columns.insert(columns.index("val_accuracy") + 1 if "val_accuracy" in columns else len(columns), "verdict")
    csv_columns = [c for c in rows[0] if c != "cfg"] if rows else columns
    atomic_write(Path(study_dir) / "table.csv", csv_text(rows, csv_columns))
    lines = [f"### {study.name}: {study.description}", ""] + markdown_lines(rows, columns, _cell)
    markdown = "\n".join(lines) + "\n"
    atomic_write(Path(study_dir) / "table.md", markdown)
    return markdown


def plot_curves(path, results, study):
    """Validation accuracy per epoch, one line per variant (mean over seeds), train dotted."""
    curves = {}
    for variant, _ in study.variants:
        histories = [rundir.read_history(r["run_dir"]) for r in results if r["variant"] == variant]
        n = min(len(h) for h in histories)
        keys = ("accuracy", "val_accuracy", "loss", "val_loss")
        curves[variant] = [{"epoch": e + 1, **{k: float(np.mean([h[e][k] for h in histories])) for k in keys}}
                           for e in range(n)]
    plot_overlaid(path, curves, f"{study.name}: {study.description}")


def plot_sweep(path, rows, study):
    plt = pyplot()
    points = [r for r in rows if isinstance(r.get(study.sweep), float)]
    xs = [r[study.sweep] for r in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation")):
        ax.errorbar(xs, [r[key] for r in points], yerr=[r.get(f"{key}_std", 0) for r in points],
                    marker="o", capsize=3, label=label)
    ax.set_xlabel(study.sweep)
    ax.set_ylabel("accuracy (best checkpoint)")
    ax.set_title(study.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
