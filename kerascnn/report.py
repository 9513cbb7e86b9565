"""``kerascnn report NAME``: one Markdown report assembled from whatever studies and tuning runs exist.

``NAME`` is a task (``faces_mlp``) or a family of tasks (``caltech101``: the tasks named
``caltech101`` or ``caltech101_*``); the report covers that task, or every task of the family, and
a task that is also a family name (``artists``) covers its family too. Sections, each included
only when its inputs are present: the receptive-field arithmetic of question 1.1 and of each
covered task's network; every study of a covered task found under ``studies`` (its table,
figures and a caption of what was varied), whatever the study is named; every KerasTuner search
of a covered task found under ``tuning`` (candidates with their optimism, the winner against the hand recipe); and
the ``<task>_tuned`` recipe of a covered task when one is registered. Figures are linked
relative to the report.
"""
import json
import os
import time
from pathlib import Path

from kerascnn.tables import format_mean_sd, markdown_lines


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


def receptive_field_section(tasks):
    from kerascnn.analysis import parse_stack, receptive_fields, stack_from_model
    from kerascnn.data import dataset_module
    from kerascnn.tasks import resolve_config
    from kerascnn.train import build_model

    columns = ["layer", "kind", "kernel", "stride", "receptive_field", "jump"]
    question = receptive_fields(parse_stack("conv:5,conv:3"))
    lines = ["## Receptive field (question 1.1)", "",
             "A 5x5 convolution then a 3x3 convolution, both stride 1 (`kerascnn receptive-field --stack "
             "conv:5,conv:3`):", ""]
    lines += markdown_lines(question, columns)
    lines += ["", f"A unit of the second map sees a {question[-1]['receptive_field']}x"
                  f"{question[-1]['receptive_field']} patch of the image: each added layer widens the field by "
                  "(kernel - 1) x jump, so depth buys context with few parameters.", ""]
    for task in tasks:
        cfg = resolve_config(task)
        module = dataset_module(cfg.dataset)
        if not hasattr(module, "input_spec"):
            continue
        try:
            shape, classes = module.input_spec(cfg)
        except FileNotFoundError as error:  # the class count comes from the dataset's folders
            lines += [f"The `{task}` task's network is left out: {str(error).splitlines()[0]}", ""]
            continue
        rows = receptive_fields(stack_from_model(build_model(cfg, shape, classes)))
        if rows:  # a network without convolutions or pooling has no receptive field to tabulate
            lines += [f"The `{task}` task's own network (`kerascnn receptive-field {task}`):", ""]
            lines += markdown_lines(rows, columns) + [""]
    return lines


def study_section(name, study_dir, out):
    from kerascnn.experiments import STUDIES

    study = STUDIES.get(name)
    info = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").exists() else {}
    table = (study_dir / "table.md").read_text().splitlines()
    table = [line for line in table if not line.startswith("### ")]
    while table and not table[0].strip():
        table.pop(0)
    runs = f"{info.get('repeats', 1)} seed(s) per variant" + (f", {info['epochs']} epochs" if info.get("epochs")
                                                                else "")
    lines = [f"### {name}", "", f"*What was varied:* {study.description if study else info.get('description', '')} "
             f"(base task `{info.get('task', study.task if study else '?')}`, {runs}; "
             f"`kerascnn experiment {name}`).", ""] + table + [""]
    if study and "overrides" not in (table[0] if table else ""):  # the table does not already say
        lines += ["Variants:", ""] + [f"- `{v}`: {' '.join(o) or '(the base recipe)'}" for v, o in study.variants]
        lines += [""]
    for figure, caption in (("sweep.png", "accuracy against the swept value"),
                            ("robustness.png", "accuracy on transformed validation images"),
                            ("transformed_examples.png", "one validation image under each transformation"),
                            ("curves.png", "validation (solid) and train (dotted) curves per variant")):
        if (study_dir / figure).exists():
            lines += [f"![{name}: {caption}]({_rel(study_dir / figure, out)})", "",
                      f"*Figure: {name}, {caption}.*", ""]
    return lines


def tuning_section(summary, summary_path, out):
    from tuning.candidates import CANDIDATE_COLUMNS, candidate_rows

    winner, hand = summary["winner"], summary["baseline"]
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [f"### {summary['tuner']} search (`{_rel(summary_path.parent, out)}`)", "",
             f"{summary['trials_finished']} trials finished in {summary['search_minutes']:.1f} min (this invocation), "
             f"trials up to {summary['max_epochs']} epochs, space `{summary['space']}`. The top "
             f"{len(summary['candidates'])} were retrained for {summary['max_epochs']} epochs on seeds {seeds}; "
             "optimism is the search score minus the retrain mean.", ""]
    lines += markdown_lines(candidate_rows(summary["candidates"]), CANDIDATE_COLUMNS) + [""]
    verdict = "beats" if summary["beats_baseline"] else "does not beat"
    lines += [f"Winner: trial {winner['trial']}, val accuracy **{format_mean_sd(winner['retrain_mean'], winner['retrain_sd'])}**; "
              f"the hand recipe `{hand['task']}` on the same seeds: {format_mean_sd(hand['mean'], hand['sd'])}. "
              f"The winner {verdict} it.", ""]
    if summary.get("split_seeds"):
        splits = ", ".join(str(s["split_seed"]) for s in summary["split_seeds"])
        lines += [f"On validation splits {splits}, which the search never saw: winner "
                  f"{format_mean_sd(summary['split_winner_mean'], summary.get('split_winner_sd'))}, hand recipe "
                  f"{format_mean_sd(summary['split_baseline_mean'], summary.get('split_baseline_sd'))}.", ""]
    lines += ["Its command:", "", "```", summary["command"], "```", ""]
    return lines


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


def build_report(*, task, studies="studies", tuning="tuning_runs", out=None):
    """Write the report on ``task`` (a task or a family of tasks) to ``out`` (default ``reports/<task>.md``).

    Returns ``{"path": ..., "studies": [study names], "searches": [search directories]}``.
    """
    from kerascnn.experiments import STUDIES
    from kerascnn.io import atomic_write
    from kerascnn.tasks import TASKS

    tasks = covered_tasks(task)
    out = Path(out or Path("reports") / f"{task}.md")
    studies_root, tuning_root = Path(studies), Path(tuning)
    lines = [f"# Report: {task}", "", f"Generated {time.strftime('%Y-%m-%d %H:%M')} by "
             f"`kerascnn report {task} --studies {studies} --tuning {tuning}`.", ""]
    lines += receptive_field_section(tasks)

    study_dirs = sorted(d for d in studies_root.glob("*")
                        if (d / "table.md").exists() and covers(task, study_task(d) or ""))
    if study_dirs:
        lines += ["## Studies", ""]
        for d in study_dirs:
            lines += study_section(d.name, d, out)

    summaries = sorted(p for p in tuning_root.glob("*/summary.json")
                       if covers(task, json.loads(p.read_text()).get("task", "")))
    if summaries:
        lines += ["## Hyperparameter search (KerasTuner)", ""]
        for path in summaries:
            lines += tuning_section(json.loads(path.read_text()), path, out)
    for covered in tasks:
        lines += tuned_recipe_section(covered)
    if not study_dirs and not summaries:
        commands = [f"`kerascnn experiment {name}`" for name, study in STUDIES.items() if covers(task, study.task)]
        commands += [f"`kerascnn tune --task {t}`" for t in tasks if TASKS[t].config.model == "simple_cnn"]
        hint = f": run one of {', '.join(commands)} first" if commands else ""
        lines += [f"No studies under `{studies_root}` and no searches under `{tuning_root}` yet{hint}.", ""]
    atomic_write(out, "\n".join(lines))
    return {"path": str(out), "studies": [d.name for d in study_dirs], "searches": [str(p.parent) for p in summaries]}
