"""``kerascnn report NAME``: one Markdown report assembled from whatever studies and tuning runs exist.

``NAME`` is a task (``faces_mlp``) or a family of tasks (``caltech101``: the tasks named
``caltech101`` or ``caltech101_*``); the report covers that task, or every task of the family, and
a task that is also a family name (``artists``) covers its family too. Sections, each included
only when its inputs are present: the receptive-field arithmetic of question 1.1 and of each
covered task's network; every study of a covered task found under ``studies`` (its table,
figures and a caption of what was varied), whatever the study is named; every KerasTuner search
of a covered task found under ``tuning`` (candidates with their optimism, the winner against the hand recipe);
with ``runs`` (a folder of run directories named by task, as ``kerascnn reproduce`` writes them) each covered
task's result (validation and, where labelled, test accuracy, epochs, resolution, seed, wall time and the
command), its curves and confusion matrix, and the assignment's figures of the family (``RUN_FIGURES``);
and the ``<task>_tuned`` recipe of a covered task when one is registered. Figures are linked relative to
the report; with ``figures`` they are copied there first, each under ``FIGURE_BYTES``, so a guide in
docs/ can include the report and its figures.
"""
import json
import os
import time
from pathlib import Path

from kerascnn.tables import format_mean_sd, markdown_lines

FIGURE_BYTES = 200_000
RECEPTIVE_FIELD_ROWS = 12  # deeper networks get one line, not a table
CONFUSION_MAX_CLASSES = 30  # beyond this a confusion matrix figure is unreadable (Caltech-101 has 101)
# The figures each assignment asks for, drawn from a family's runs: (task, figure kind, caption), and
# optionally the images to draw, relative to the run's dataset folder (default: the first validation image).
RUN_FIGURES = {
    "cifar10": [("cifar10_bn", "filters", "first-layer filters before and after training")],
    "caltech101": [("caltech101_improved", "activations", "conv1 and conv2 activations of an accordion and a camera",
                    ["accordion/image_0001.jpg", "camera/image_0001.jpg"])],
    "clipart": [("clipart_own", "tsne", "t-SNE of the penultimate features, validation images"),
                ("clipart_own", "gradcam", "Grad-CAM"), ("clipart_own", "guided-backprop", "guided backpropagation"),
                ("clipart_own", "activation-max", "activation maximisation of the last conv layer")],
    "faces": [("faces_alexnet_finetune", "guided-backprop", "guided backpropagation of the fine-tuned AlexNet")],
}


def publish_figure(path, figures):
    """``path`` itself, or with ``figures`` a copy there (named by its run and file) under FIGURE_BYTES:
    PNGs above it are re-saved with a 256-colour palette, then halved in size until they fit."""
    path = Path(path)
    if figures is None:
        return path
    from PIL import Image

    from kerascnn.io import atomic_path

    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    target = figures / f"{path.parent.name}_{path.name}" if path.parent.name not in ("vis", "eval") else \
        figures / f"{path.parent.parent.name}_{path.name}"
    image = Image.open(path)
    scale = 1.0
    while True:
        with atomic_path(target) as tmp:
            out = image if scale == 1.0 else image.resize((int(image.width * scale), int(image.height * scale)))
            if path.stat().st_size > FIGURE_BYTES or scale != 1.0:
                out = out.convert("RGB").quantize(256)
            out.save(tmp, format="PNG", optimize=True)
        if target.stat().st_size <= FIGURE_BYTES:
            return target
        scale /= 2


def _rel(path, out):
    return Path(os.path.relpath(Path(path).resolve(), Path(out).resolve().parent)).as_posix()


def task_family(task):
    """A task's family: its name up to the first underscore (``caltech101_lenet`` -> ``caltech101``)."""
    return task.split("_")[0]


def covers(name, task):
    """Whether the report on ``name`` (a task or a family) includes what was run on ``task``."""
    return task == name or task_family(task) == name


def covered_tasks(name):
    """The registered tasks a report on ``name`` covers; a KeyError when it is neither a task nor a family."""
    from kerascnn.tasks import TASKS

    tasks = [task for task in TASKS if covers(name, task)]
    if not tasks:
        families = sorted({task_family(task) for task in TASKS})
        raise KeyError(f"unknown task or family {name!r}; tasks: {', '.join(TASKS)}; families: {', '.join(families)}")
    return tasks


def study_task(study_dir):
    """The task a study directory was run on: its study.json's, else its registered study's; None if unknown."""
    from kerascnn.experiments import STUDIES

    info = study_dir / "study.json"
    task = json.loads(info.read_text()).get("task") if info.exists() else None
    if task is None and study_dir.name in STUDIES:
        task = STUDIES[study_dir.name].task
    return task


def receptive_field_section(tasks, runs=None):
    """The artists assignment's question 1.1, for the artists family, then each covered task's network: its
    table, or for deep networks one line on the last layer (``kerascnn receptive-field TASK`` prints them all).
    A task's run under ``runs``, when there is one, says where its data is."""
    from kerascnn import rundir
    from kerascnn.analysis import network_for_fields, parse_stack, receptive_fields, stack_from_model
    from kerascnn.tasks import resolve_config

    columns = ["layer", "kind", "kernel", "stride", "receptive_field", "jump"]
    lines = []
    if task_family(tasks[0]) == "artists":
        question = receptive_fields(parse_stack("conv:5,conv:3"))
        lines += ["A 5x5 convolution then a 3x3 convolution, both stride 1 (question 1.1, `kerascnn receptive-field "
                  "--stack conv:5,conv:3`):", ""]
        lines += markdown_lines(question, columns)
        lines += ["", f"A unit of the second map sees a {question[-1]['receptive_field']}x"
                      f"{question[-1]['receptive_field']} patch of the image: each added layer widens the field by "
                      "(kernel - 1) x jump, so depth buys context with few parameters.", ""]
    for task in tasks:
        run_dir = Path(runs) / task if runs else None
        cfg = rundir.load_config(run_dir) if run_dir and (run_dir / "config.json").exists() else resolve_config(task)
        rows = receptive_fields(stack_from_model(network_for_fields(cfg)))
        if len(rows) > RECEPTIVE_FIELD_ROWS:
            last = rows[-1]
            lines += [f"The `{task}` task's network has {len(rows)} convolution and pooling layers; the last, "
                      f"`{last['layer']}`, sees {last['receptive_field']}x{last['receptive_field']} pixels of its "
                      f"{cfg.image_size}x{cfg.image_size} input with a jump of {last['jump']} "
                      f"(`kerascnn receptive-field {task}` lists every layer).", ""]
        elif rows:  # a network without convolutions or pooling has no receptive field to tabulate
            lines += [f"The `{task}` task's own network (`kerascnn receptive-field {task}`):", ""]
            lines += markdown_lines(rows, columns) + [""]
    return ["## Receptive fields", ""] + lines if lines else []


STUDY_FIGURES = (("sweep.png", "accuracy against the swept value"),
                 ("robustness.png", "accuracy on transformed validation images"),
                 ("transformed_examples.png", "one validation image under each transformation"),
                 ("curves.png", "validation (solid) and train (dotted) curves per variant"))


def study_epochs(study, info):
    """The epochs a study ran for: `--epochs`, else the last `epochs=` among its base and `--set` overrides
    (reproduce shortens some studies that way); None when the task's own recipe decided."""
    if info.get("epochs"):
        return info["epochs"]
    sets = (study.base if study else []) + info.get("overrides", [])
    values = [item.split("=", 1)[1] for item in sets if item.startswith("epochs=")]
    return values[-1] if values else None


def study_section(name, study_dir, out, figures=None):
    from kerascnn.experiments import STUDIES

    study = STUDIES.get(name)
    info = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").exists() else {}
    table = (study_dir / "table.md").read_text().splitlines()
    table = [line for line in table if not line.startswith("### ")]
    while table and not table[0].strip():
        table.pop(0)
    epochs = study_epochs(study, info)
    runs = f"{info.get('repeats', 1)} seed(s) per variant" + (f", {epochs} epochs" if epochs else "")
    lines = [f"### {name}", "", f"*What was varied:* {study.description if study else info.get('description', '')} "
             f"(base task `{info.get('task', study.task if study else '?')}`, {runs}; "
             f"`kerascnn experiment {name}`).", ""] + table + [""]
    if study and "overrides" not in (table[0] if table else ""):  # the table does not already say
        lines += ["Variants:", ""] + [f"- `{v}`: {' '.join(o) or '(the base recipe)'}" for v, o in study.variants]
        lines += [""]
    # The standard figures, then any a study's post hook drew (faces.weights: weights_hidden300.png).
    known = [(study_dir / figure, caption) for figure, caption in STUDY_FIGURES]
    drawn = [(path, path.stem.replace("_", " ")) for path in sorted(study_dir.glob("*.png"))
             if path.name not in dict(STUDY_FIGURES)]
    for path, caption in known + drawn:
        if path.exists():
            lines += [f"![{name}: {caption}]({_rel(publish_figure(path, figures), out)})", "",
                      f"*Figure: {name}, {caption}.*", ""]
    return lines


VERDICT_WORDS = {"beats": "beats it beyond the seeds' spread",
                 "within noise": "is ahead of it only within the seeds' spread", "does not beat": "does not beat it"}


def search_verdict(summary):
    """The winner against the hand recipe; searches written before summaries carried a verdict are judged
    here the same way."""
    from tuning.candidates import verdict

    winner, hand = summary["winner"], summary["baseline"]
    return summary.get("verdict") or verdict(winner["retrain_mean"], winner["retrain_sd"], hand["mean"], hand["sd"])


def selection_sentence(summary):
    """How the winner was chosen, for a search with selection splits; empty otherwise."""
    if not summary.get("select_splits"):
        return ""
    return (f" Each was also trained once on validation splits {', '.join(map(str, summary['select_splits']))}, "
            "and the winner is the best mean over splits (over_splits: the retrain mean on the search's split "
            "and one score per selection split).")


def tuning_section(summary, search_name):
    from tuning.candidates import candidate_columns, candidate_rows, split_check_words

    winner, hand = summary["winner"], summary["baseline"]
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [f"### {summary['tuner']} search `{search_name}`", "",
             f"{summary['trials_finished']} trials finished in {summary['search_minutes']:.1f} min of search, "
             f"trials up to {summary['max_epochs']} epochs, space `{summary['space']}`. The top "
             f"{len(summary['candidates'])} were retrained for {summary['max_epochs']} epochs on seeds {seeds}; "
             "optimism is the search score minus the retrain mean." + selection_sentence(summary), ""]
    lines += markdown_lines(candidate_rows(summary["candidates"]), candidate_columns(summary["candidates"])) + [""]
    verdict = search_verdict(summary)
    lines += [f"Winner: trial {winner['trial']}, val accuracy **{format_mean_sd(winner['retrain_mean'], winner['retrain_sd'])}**; "
              f"the hand recipe `{hand['task']}` on the same seeds: {format_mean_sd(hand['mean'], hand['sd'])}. "
              f"The winner {VERDICT_WORDS[verdict]}.", ""]
    if summary.get("test"):
        test = summary["test"]
        lines += [f"On the test split, scored after the choice and never used for it: winner "
                  f"{format_mean_sd(test['winner_mean'], test['winner_sd'])} "
                  f"({' '.join(f'{v:.4f}' for v in test['winner_scores'])}), hand recipe "
                  f"{format_mean_sd(test['baseline_mean'], test['baseline_sd'])} "
                  f"({' '.join(f'{v:.4f}' for v in test['baseline_scores'])}). The winner "
                  f"{VERDICT_WORDS[test['verdict']]}.", ""]
    if summary.get("split_seeds"):
        splits = ", ".join(str(s["split_seed"]) for s in summary["split_seeds"])
        lines += [f"On validation splits {splits}, which the search never saw: winner "
                  f"{format_mean_sd(summary['split_winner_mean'], summary.get('split_winner_sd'))}, hand recipe "
                  f"{format_mean_sd(summary['split_baseline_mean'], summary.get('split_baseline_sd'))}; the winner is "
                  f"{split_check_words(summary['split_seeds'])}.", ""]
    lines += ["Its command:", "", "```", summary["command"], "```", ""]
    return lines


def epochs_label(cfg, epochs_run=None):
    """Epochs as a report shows them: those run (early stopping ends some sooner), or head+fine-tuning."""
    return f"{cfg.epochs}+{cfg.fine_tune_epochs}" if cfg.fine_tune_epochs else (epochs_run or cfg.epochs)


def run_result(run_dir):
    """The row a report shows for a finished run: its scores, settings and wall time."""
    from kerascnn import rundir
    from kerascnn.evaluate import evaluate_run

    cfg, metrics = rundir.load_config(run_dir), rundir.read_json(run_dir, "metrics.json")
    try:
        test = evaluate_run(run_dir, split="test", checkpoint="best")["accuracy"]
    except ValueError:  # no test split, or one without labels (clipart)
        test = None
    source = metrics.get("backbone_source") or {}
    return {"task": cfg.task, "val_accuracy": metrics["best"]["val_accuracy"], "test_accuracy": test,
            "epochs": epochs_label(cfg, metrics["epochs_run"]),
            "resolution": f"{cfg.image_size} px", "seed": cfg.seed, "minutes": metrics["train_seconds"] / 60,
            "backbone": source.get("task") or "", "backbone_run": source.get("run_dir") or "", "run_dir": str(run_dir),
            "machines": metrics.get("machines")}


def backbone_lines(rows):
    """Each transfer task's backbone run as it is now: its own score, since the family report that has its row
    may have been made from an earlier run of that task."""
    from kerascnn import rundir

    lines = []
    for row in rows:
        if not row.get("backbone_run"):
            continue
        run = Path(row["backbone_run"])
        if not (run / "metrics.json").exists():
            lines.append(f"- `{row['task']}` started from `{run}`, which holds no finished run now.")
            continue
        metrics = rundir.read_json(run, "metrics.json")
        lines.append(f"- `{row['task']}` started from the `{row['backbone']}` run at `{run}`: best validation accuracy "
                     f"{metrics['best']['val_accuracy']:.4f} at epoch {metrics['best_epoch']} of "
                     f"{metrics['epochs_run']}, {wall_time(metrics['train_seconds'] / 60)} of training.")
    return ["Backbones:", ""] + lines + [""] if lines else []


def machines_lines(rows):
    """Which machine trained each run, since wall times compare only on one: a line when every run names the
    same, a list otherwise (``not recorded`` where a run's metrics.json does not say); nothing when none says."""
    from kerascnn.machine import machine_line

    if not any(row.get("machines") for row in rows):
        return []
    groups = {}
    for row in rows:
        text = ", then ".join(machine_line(m) for m in row.get("machines") or [None])
        groups.setdefault(text, []).append(f"`{row['task']}`")
    if len(groups) == 1:
        return [f"Trained on {next(iter(groups))}.", ""]
    return ["Trained on:", ""] + [f"- {', '.join(tasks)}: {text}" for text, tasks in groups.items()] + [""]


def wall_time(minutes):
    """Seconds for runs under a minute (the artists tasks take a few), minutes otherwise."""
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:.1f} min"


def task_command(row):
    """The command that trains a reported task, and the run its backbone came from."""
    return f"`kerascnn train --task {row['task']}`" + (f" (backbone: the {row['backbone']} run)" if row["backbone"] else "")


def runs_section(tasks, runs_root, out, figures):
    """Each covered task's run under ``runs_root``: one table, the curves of all of them overlaid, each one's
    confusion matrix, then the family's assignment figures (``RUN_FIGURES``)."""
    from kerascnn.vis.commands import visualize

    found = [t for t in tasks if (Path(runs_root) / t / "metrics.json").exists()]
    if not found:
        return [], []
    rows = [run_result(Path(runs_root) / t) for t in found]
    table = [{**r, "val_accuracy": f"{r['val_accuracy']:.4f}",
              "test_accuracy": "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}",
              "wall_time": wall_time(r["minutes"]), "command": task_command(r)} for r in rows]
    lines = ["## Tasks", "", f"Each task at its defaults (`{runs_root}/<task>`, best checkpoint; wall time is "
             "training, with its per-epoch evaluation and checkpoints):", ""]
    lines += markdown_lines(table, ["task", "val_accuracy", "test_accuracy", "epochs", "resolution", "seed",
                                    "wall_time", "command"]) + [""]
    lines += machines_lines(rows) + backbone_lines(rows)
    # One figure of every task's curves: per-task curve figures would repeat it and crowd the guides.
    from kerascnn import rundir
    from kerascnn.vis.curves import plot_overlaid

    overlaid = Path(runs_root) / "overlaid" / f"{task_family(tasks[0])}.png"
    plot_overlaid(overlaid, {r["task"]: rundir.read_history(r["run_dir"]) for r in rows},
                  f"{task_family(tasks[0])}: every task at its defaults")
    lines += [f"![the tasks' curves overlaid]({_rel(publish_figure(overlaid, figures), out)})", "",
              "*Figure: validation accuracy and loss of every task above, overlaid (train dotted).*", ""]
    many = [r for r in rows if len(rundir.class_names(r["run_dir"])) > CONFUSION_MAX_CLASSES]
    if many:
        names = ", ".join(f"`{r['task']}`" for r in many)
        classes = len(rundir.class_names(many[0]["run_dir"]))
        lines += [f"{names}: {classes} classes, too many for a readable confusion matrix; `kerascnn evaluate RUN` "
                  "writes it as CSV and PNG, with per-class accuracy.", ""]
    for row in rows:
        if row in many:
            continue
        matrix = visualize(Path(row["run_dir"]), kind="confusion", out=Path(row["run_dir"]) / "eval")[0]
        lines += [f"![{row['task']}: validation confusion matrix]({_rel(publish_figure(matrix, figures), out)})", "",
                  f"*Figure: `{row['task']}`, validation confusion matrix.*", ""]
    family = task_family(tasks[0])
    for task, kind, caption, *images in RUN_FIGURES.get(family, []):
        if task in found:
            run = Path(runs_root) / task
            options = {"images": images[0]} if images else {}  # relative paths are found in the run's dataset
            command = f"kerascnn visualize {run} --kind {kind}" + (f" --images {' '.join(images[0])}" if images else "")
            for path in visualize(run, kind=kind, out=run / "vis", **options):
                # The figure itself; per-image panels written beside it (pic_018_dog_grey.png) are its parts.
                if path.suffix == ".png" and path.stem.startswith(kind.replace("-", "_")):
                    lines += [f"![{task}: {caption}]({_rel(publish_figure(path, figures), out)})", "",
                              f"*Figure: `{task}`, {caption} (`{command}`).*", ""]
    return lines, rows


def tuned_recipe_section(task):
    from kerascnn.tasks import TASKS

    tuned = TASKS.get(f"{task}_tuned")
    if tuned is None:
        return []
    base, cfg = TASKS[task].config.to_dict(), tuned.config.to_dict()
    changed = [{"key": k, task: base.get(k), f"{task}_tuned": v} for k, v in cfg.items()
               if k not in ("task", "model_args") and v != base.get(k)]
    changed += [{"key": f"model.{k}", task: TASKS[task].config.model_args.get(k, "(default)"), f"{task}_tuned": v}
                for k, v in tuned.config.model_args.items()]
    return ([f"## The `{task}_tuned` recipe", "", tuned.description, "",
             "What it changes relative to the starter recipe:", ""]
            + markdown_lines(changed, ["key", task, f"{task}_tuned"])
            + ["", f"Train it with `kerascnn train --task {task}_tuned`.", ""])


def build_report(*, task, studies="studies", tuning="tuning_runs", runs=None, figures=None, out=None,
                 keep_absent=False):
    """Write the report on ``task`` (a task or a family of tasks) to ``out`` (default ``reports/<task>.md``).

    ``keep_absent``: the report already at ``out`` (with its ``.json`` sidecar) keeps what is absent now: each
    study and search section whose directory is gone, and the task results with their time table when none of
    the covered tasks' runs is found. Each kept section says so. This adds a new study to a published report
    after its other runs were deleted, without training them again.

    Returns ``{"path": ..., "studies": [study names], "searches": [search directories], "runs": [rows],
    "kept": [kept section headings]}``.
    """
    from kerascnn.experiments import STUDIES
    from kerascnn.io import atomic_write, write_json

    tasks = covered_tasks(task)
    out = Path(out or Path("reports") / f"{task}.md")
    previous = PreviousReport(out) if keep_absent else PreviousReport(None)
    studies_root, tuning_root = Path(studies), Path(tuning)
    command = f"kerascnn report {task} --studies {studies} --tuning {tuning}" + (f" --runs {runs}" if runs else "") \
        + (f" --figures {figures}" if figures else "") + (f" --out {out}" if out else "") \
        + (" --keep-absent" if keep_absent else "")
    lines = [f"# Report: {task}", "", f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `{command}`.", ""]
    run_rows = []
    if runs:
        run_lines, run_rows = runs_section(tasks, runs, out, figures)
        lines += run_lines
    time_lines, time_rows = reproduce_time_section(task, runs)
    if not run_rows and previous.runs:  # the results stand together: kept whole, with their time table
        lines += previous.kept("## Tasks")
        run_rows, time_rows, time_lines = previous.runs, previous.time, previous.kept("## Time on this machine")
    lines += receptive_field_section(tasks, runs)
    lines += time_lines

    study_dirs = sorted(d for d in studies_root.glob("*")
                        if (d / "table.md").exists() and covers(task, study_task(d) or ""))
    study_blocks = {d.name: study_section(d.name, d, out, figures) for d in study_dirs}
    study_rows = {d.name: study_summary(d) for d in study_dirs}
    for name in set(previous.studies) - set(study_blocks):
        study_blocks[name], study_rows[name] = previous.kept("## Studies", name), previous.studies[name]
    if study_blocks:
        lines += ["## Studies", ""]
        for name in sorted(study_blocks):
            lines += study_blocks[name]
    lines += missing_studies_section(task, set(study_blocks))

    summaries = sorted(p for p in tuning_root.glob("*/summary.json")
                       if covers(task, json.loads(p.read_text()).get("task", "")))
    # Named by its directory under --tuning: a path relative to the report would point outside the repo.
    search_blocks = {p.parent.name: tuning_section(json.loads(p.read_text()), p.parent.name) for p in summaries}
    search_rows = {p.parent.name: search_summary(json.loads(p.read_text()), p.parent.name) for p in summaries}
    for name in set(previous.searches) - set(search_blocks):
        search_blocks[name] = previous.kept(SEARCH_HEADING, name)
        search_rows[name] = previous.searches[name]
    if search_blocks:
        lines += [SEARCH_HEADING, "", f"Each search is a directory under `{tuning_root}`, written by `kerascnn tune`.",
                  ""]
        for name in sorted(search_blocks):
            lines += search_blocks[name]
    for covered in tasks:
        lines += tuned_recipe_section(covered)
    if not study_blocks and not search_blocks and not run_rows:
        commands = [f"`kerascnn experiment {name}`" for name, study in STUDIES.items() if covers(task, study.task)]
        commands += [f"`kerascnn tune --task {tasks[0]}`"]
        hint = f": run one of {', '.join(commands)} first" if commands else ""
        lines += [f"No studies under `{studies_root}` and no searches under `{tuning_root}` yet{hint}.", ""]
    atomic_write(out, "\n".join(lines))
    # The task rows as data beside the Markdown: `kerascnn results` assembles the README's table from them.
    write_json(out.with_suffix(".json"), {
        "report": task, "command": command, "runs": run_rows, "time": time_rows,
        "studies": [study_rows[name] for name in sorted(study_rows)],
        "searches": [search_rows[name] for name in sorted(search_rows)]})
    return {"path": str(out), "studies": sorted(study_blocks), "searches": [str(p.parent) for p in summaries],
            "runs": run_rows, "kept": previous.kept_headings}


SEARCH_HEADING = "## Hyperparameter search (KerasTuner)"


class PreviousReport:
    """The sections of the report already at ``path`` and the rows of its ``.json`` sidecar, to keep those
    whose inputs are absent now (``build_report(keep_absent=True)``); empty when ``path`` is None or new."""

    def __init__(self, path):
        self.sections, self.runs, self.time, self.studies, self.searches = {}, [], [], {}, {}
        self.kept_headings, self.generated = [], ""
        if path is None or not Path(path).exists() or not Path(path).with_suffix(".json").exists():
            return
        text = Path(path).read_text()
        sidecar = json.loads(Path(path).with_suffix(".json").read_text())
        self.generated = next((line.split(" by ")[0].removeprefix("Generated ") for line in text.splitlines()
                               if line.startswith("Generated ")), "")
        for heading, block in split_sections(text.splitlines(), "## "):
            self.sections[heading] = block
            if heading in ("## Studies", SEARCH_HEADING):
                for sub, lines in split_sections(block, "### "):
                    self.sections[(heading, section_name(sub))] = lines
        self.studies = {row["study"]: row for row in sidecar.get("studies", [])
                        if ("## Studies", row["study"]) in self.sections}
        names = [key[1] for key in self.sections if isinstance(key, tuple) and key[0] == SEARCH_HEADING]
        # A sidecar row names its search; older sidecars list the searches in the report's order.
        self.searches = {row.get("name", fallback): row for row, fallback in zip(sidecar.get("searches", []), names)}
        if "## Tasks" in self.sections:
            self.runs, self.time = sidecar.get("runs", []), sidecar.get("time", [])

    def kept(self, heading, name=None):
        """The section's lines as they were, its heading followed by a line saying it was kept."""
        block = self.sections.get(heading if name is None else (heading, name), [])
        if not block:
            return []
        self.kept_headings.append(block[0])
        note = f"*Kept from the report generated {self.generated}: its inputs were absent when this one was made.*"
        # The last section of a file has no blank line after it; wherever it lands now, one ends it.
        body = list(block[1:])
        while body and body[-1] == "":
            body.pop()
        if len(body) > 1 and body[1].startswith("*Kept from the report generated"):
            return [block[0]] + body + [""]  # kept before: the note names the report that made it
        return [block[0], "", note] + body + [""]


def split_sections(lines, marker):
    """The sections of ``lines`` headed by lines starting with ``marker`` (``"## "``): [(heading, lines)], each
    block's lines from its heading up to the next heading of that level or above, the blank lines that end it
    included. Lines in code blocks are not headings."""
    sections, current, fenced = [], None, False
    for line in lines:
        fenced ^= line.startswith("```")
        level = len(marker) - 1
        heading_level = len(line) - len(line.lstrip("#"))
        if not fenced and line.startswith("#") and 0 < heading_level <= level and line[heading_level:].startswith(" "):
            current = (line, [line]) if line.startswith(marker) else None
            if current:
                sections.append(current)
        elif current:
            current[1].append(line)
    return sections


def section_name(heading):
    """The name a study or search section is known by: a study's heading is its name (``### cifar10.dropout``),
    a search's names its directory in backticks (``### hyperband search `faces_mlp_hyperband` ``)."""
    text = heading.lstrip("#").strip()
    return text.split("`")[1] if "`" in text else text


def reproduce_time_section(task, runs):
    """For a family whose runs are a ``kerascnn reproduce`` root's (``ROOT/runs`` beside ``ROOT/throughput.json``):
    each reproduce step's estimate against the measured training time of its finished runs."""
    from kerascnn.machine import machine_line
    from kerascnn.reproduce import FAMILIES, _hms, estimate, load_cache, measured_label, plan_steps

    root = Path(runs).parent if runs else None
    if task not in FAMILIES or root is None or not (root / "throughput.json").exists():
        return [], []
    machine = load_cache(root)["machine"]
    steps = [step for step in estimate(plan_steps([task], root), root=root, measure=False) if step.kind != "report"]
    rows = [{"step": f"{step.kind} {step.name}", "runs": step.runs, "estimate": _hms(step.estimate_s)
             if step.estimate_s is not None else "", "measured": measured_label(step),
             "measured / estimate": f"{step.measured_s / step.estimate_s:.2f}"
             if step.finished == step.runs and step.runs and step.estimate_s else ""} for step in steps]
    lines = ["## Time on this machine", "",
             f"`kerascnn reproduce {task} --plan` estimates each step from the step benchmark "
             f"(`{root / 'throughput.json'}`, " + (f"measured on {machine_line(machine)}" if machine else
                                                   "which does not name the machine it was measured on")
             + "); measured is the training time of the step's finished runs (`train_seconds` in each run's "
             "metrics.json), runs an earlier step made left out.", ""]
    return lines + markdown_lines(rows, ["step", "runs", "estimate", "measured", "measured / estimate"]) + [""], rows


def missing_studies_section(task, present):
    """The registered studies of a covered task that have no table yet, each with the command that runs it."""
    from kerascnn.experiments import STUDIES

    missing = [name for name, study in STUDIES.items() if covers(task, study.task) and name not in present]
    if not missing:
        return []
    family = task_family(covered_tasks(task)[0])
    return (["## Studies not run yet", "", f"`kerascnn reproduce {family}` runs these at their reproduce settings, "
             "`kerascnn experiment NAME` at the study's own:", ""]
            + [f"- `{name}`: {STUDIES[name].description}" for name in missing] + [""])


def study_summary(study_dir):
    """A study in one row, for the README: its best variant on validation against the reference (the first
    variant) and the verdict on their difference. A study whose rows are not variants (artists.robustness:
    one row per transformation) gives its name, task and seeds only."""
    info = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").exists() else {}
    summary = {"study": study_dir.name, "task": info.get("task") or study_task(study_dir),
               "seeds": info.get("repeats", 1), "epochs": info.get("epochs")}
    rows = [row for row in info.get("rows", []) if "variant" in row and "val_accuracy" in row]
    if rows:
        # Seeds' means tie in steps of one validation image: the steadier variant of a tie is the better claim.
        best = max(rows, key=lambda row: (row["val_accuracy"], -(row.get("val_accuracy_std") or 0.0)))
        reference = next((row for row in rows if row.get("verdict") == "reference"), rows[0])
        summary.update(best=best["variant"], best_val=best["val_accuracy"], best_sd=best.get("val_accuracy_std"),
                       reference=reference["variant"], reference_val=reference["val_accuracy"],
                       reference_sd=reference.get("val_accuracy_std"), verdict=best.get("verdict", ""))
    elif any("best_val_accuracy" in row and "last_val_accuracy" in row for row in info.get("rows", [])):
        # A best-against-last study (cifar10.early_stopping): what restoring the best checkpoint gains.
        summary["checkpoints"] = [{"variant": row["variant"], "best": row["best_val_accuracy"],
                                   "last": row["last_val_accuracy"]} for row in info["rows"]]
    return summary


def search_summary(summary, name):
    """A KerasTuner search (its directory ``name``) in one row, for the README: its budget and its winner
    against the hand recipe."""
    winner, hand = summary["winner"], summary["baseline"]
    return {"name": name, "task": summary["task"], "tuner": summary["tuner"], "trials": summary["trials_finished"],
            "minutes": summary["search_minutes"], "max_epochs": summary["max_epochs"],
            "seeds": summary["seeds"], "winner": winner["retrain_mean"], "winner_sd": winner["retrain_sd"],
            "hand_recipe": hand["task"], "hand": hand["mean"], "hand_sd": hand["sd"],
            "verdict": search_verdict(summary), "test": summary.get("test")}


# ---------------------------------------------------------------- the README's results tables

def block_markers(name):
    """The comment lines around a generated block of the README: ``<!-- NAME: kerascnn results -->`` ..."""
    return f"<!-- {name}: kerascnn results -->", f"<!-- /{name} -->"


RESULTS_BEGIN, RESULTS_END = block_markers("results")


def read_reports(reports, link_from):
    """Each report's sidecar (``<reports>/<family>.json``), with ``link`` the report relative to ``link_from``."""
    records = []
    for sidecar in sorted(Path(reports).glob("*.json")):
        record = json.loads(sidecar.read_text())
        records.append({**record, "link": Path(os.path.relpath(sidecar.with_suffix(".md"), link_from)).as_posix()})
    return records


def heading_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as hyphens."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def results_rows(*, reports="docs/reports", link_from="."):
    """One row per registered task, in ``kerascnn tasks`` order, from the reports' task rows
    (``<reports>/<family>.json``, written beside each report): command, validation and test accuracy,
    epochs, resolution, wall time and the report, linked relative to ``link_from``. A task no report
    covers says how to produce it."""
    from kerascnn.tasks import TASKS

    found = {row["task"]: {**row, "report": record["link"]}
             for record in read_reports(reports, link_from) for row in record.get("runs", [])}
    rows = []
    for name, task in TASKS.items():
        cfg = task.config
        row = found.get(name)
        if row is not None:
            rows.append({"task": name, "command": task_command(row), "val_accuracy": f"{row['val_accuracy']:.4f}",
                         "test_accuracy": "" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}",
                         "epochs": row["epochs"], "resolution": row["resolution"],
                         "wall_time": wall_time(row["minutes"]),
                         "report": f"[{Path(row['report']).stem}]({row['report']})"})
        elif cfg.dataset == "folder":
            rows.append({"task": name, "command": f"`kerascnn train --task {name} --data-dir DIR`",
                         "val_accuracy": "your own images", "test_accuracy": "", "epochs": epochs_label(cfg),
                         "resolution": f"{cfg.image_size} px", "wall_time": "", "report": ""})
        else:
            rows.append({"task": name, "command": f"`kerascnn train --task {name}`",
                         "val_accuracy": f"not reproduced yet: `kerascnn reproduce {task_family(name)}`",
                         "test_accuracy": "", "epochs": epochs_label(cfg), "resolution": f"{cfg.image_size} px",
                         "wall_time": "", "report": ""})
    return rows


RESULTS_COLUMNS = ["task", "command", "val_accuracy", "test_accuracy", "epochs", "resolution", "wall_time", "report"]


def study_rows(*, reports="docs/reports", link_from="."):
    """One row per study in the reports: its best variant on validation against the reference, with the
    study's verdict on the difference (a finding only beyond the seeds' spread), linked to its section."""
    rows = []
    for record in read_reports(reports, link_from):
        for study in record.get("studies", []):
            row = {"study": study["study"], "task": study["task"], "seeds": study["seeds"],
                   "best_val": "", "reference_val": "", "difference": "see the report",
                   "report": f"[{record['report']}]({record['link']}#{heading_anchor(study['study'])})"}
            if "best" in study:
                row["best_val"] = f"{study['best']} {format_mean_sd(study['best_val'], study['best_sd'])}"
                row["reference_val"] = f"{study['reference']} {format_mean_sd(study['reference_val'], study['reference_sd'])}"
                row["difference"] = ("the reference is best" if study["verdict"] == "reference"
                                     else study["verdict"])
            elif study.get("checkpoints"):
                row["difference"] = "best minus last checkpoint: " + ", ".join(
                    f"{c['variant']} {c['best'] - c['last']:+.4f}" for c in study["checkpoints"])
            rows.append(row)
    return rows


STUDY_COLUMNS = ["study", "task", "seeds", "best_val", "reference_val", "difference", "report"]

def search_rows(*, reports="docs/reports", link_from="."):
    """One row per KerasTuner search in the reports: its budget, and its winner's retrain mean against the
    hand recipe on the same seeds."""
    rows = []
    for record in read_reports(reports, link_from):
        for search in record.get("searches", []):
            seeds = ", ".join(map(str, search["seeds"]))
            rows.append({"task": search["task"],
                         "budget": f"{search['tuner']}, {search['trials']} trials in {search['minutes']:.1f} min, "
                                   f"up to {search['max_epochs']} epochs",
                         "winner_val": format_mean_sd(search["winner"], search["winner_sd"]),
                         "hand_recipe_val": f"{search['hand_recipe']} {format_mean_sd(search['hand'], search['hand_sd'])}",
                         "seeds": seeds, "verdict": VERDICT_WORDS.get(search["verdict"], search["verdict"]),
                         "test": held_out_comparison(search.get("test")),
                         "report": f"[{record['report']}]({record['link']}#hyperparameter-search-kerastuner)"})
    return rows


def held_out_comparison(test):
    """A search's winner against the hand recipe on the test split, or "" when the task has no test split."""
    if not test:
        return ""
    return (f"{format_mean_sd(test['winner_mean'], test['winner_sd'])} against "
            f"{format_mean_sd(test['baseline_mean'], test['baseline_sd'])}: "
            f"{VERDICT_WORDS[test['verdict']]}")


SEARCH_COLUMNS = ["task", "budget", "seeds", "winner_val", "hand_recipe_val", "verdict", "test", "report"]

# The README's generated blocks: name -> (rows, columns).
README_BLOCKS = {"results": (results_rows, RESULTS_COLUMNS), "studies": (study_rows, STUDY_COLUMNS),
                 "searches": (search_rows, SEARCH_COLUMNS)}


def readme_tables(*, reports="docs/reports", link_from="."):
    """Every generated block of the README as ``{name: Markdown table}``."""
    return {name: "\n".join(markdown_lines(make(reports=reports, link_from=link_from), columns))
            for name, (make, columns) in README_BLOCKS.items()}


def write_results(readme, tables):
    """Replace each block ``{name: table}`` of ``readme`` between its markers (``block_markers``); nothing is
    written when a block's markers are missing."""
    from kerascnn.io import atomic_write

    text = Path(readme).read_text()
    missing = [name for name in tables if not all(marker in text for marker in block_markers(name))]
    if missing:
        wanted = "; ".join(" and ".join(repr(m) for m in block_markers(name)) for name in missing)
        raise ValueError(f"{readme} has no {', '.join(missing)} block: put the lines {wanted} where the tables go")
    for name, table in tables.items():
        begin, end = block_markers(name)
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    atomic_write(readme, text)
