"""The ``kerascnn`` command. Parsers are defined here; each command imports its heavy parts lazily."""
import argparse
import json
import os
import shlex
import sys
import warnings
from functools import partial
from pathlib import Path

from kerascnn.tables import console_table as format_table, format_mean_sd


def emit(args, text, payload):
    """Human-readable text, or with --json one JSON object as the last line."""
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    elif text:
        print(text)


def is_run_dir(value):
    return (Path(value) / "config.json").exists()


def config_from(args, target=None):
    """Resolve a run directory's config, or a task's config with --data-dir and --set applied."""
    from kerascnn import rundir
    from kerascnn.tasks import resolve_config

    target = target or args.target
    if is_run_dir(target):
        return rundir.load_config(target)
    return resolve_config(target, getattr(args, "set", None) or (), data_dir=getattr(args, "data_dir", None))


def model_from(args):
    """The model of a run (best checkpoint) or a freshly built model of a task."""
    if is_run_dir(args.target):
        from kerascnn import rundir

        return rundir.load_model(args.target, "best")
    from kerascnn.data import dataset_module
    from kerascnn.train import build_model

    cfg = config_from(args)
    input_shape, num_classes = dataset_module(cfg.dataset).input_spec(cfg)
    return build_model(cfg, input_shape, num_classes)


# ---------------------------------------------------------------- commands

def recipe_line(cfg):
    """The recipe in one line: the fields that differ from a Config's defaults, model arguments included."""
    from kerascnn.config import Config

    defaults = Config().to_dict()
    fields = {k: v for k, v in cfg.to_dict().items() if k != "model_args" and v != defaults[k]}
    fields.update({f"model.{k}": v for k, v in cfg.model_args.items()})
    return " ".join(f"{k}={v}" for k, v in fields.items()).replace(", ", ",")


def announce_run(args):
    """What a user needs from a run's first second: where it writes, what it trains, how to watch it."""
    def on_start(run_dir, cfg):
        from kerascnn.interrupt import set_resume_hint

        args.started_run_dir = run_dir
        set_resume_hint(f"kerascnn train --resume {run_dir}")
        lines = [f"run directory: {run_dir}", f"recipe: {recipe_line(cfg)}"]
        if cfg.tensorboard:
            lines.append(f"watch it: tensorboard --logdir {run_dir / 'tensorboard'}")
        print("\n".join(lines), file=sys.stderr if args.json else sys.stdout, flush=True)

    return on_start


def cmd_train(args):
    from kerascnn.tasks import get_task, resolve_config
    from kerascnn.train import train

    if args.resume:
        if args.set or args.task:
            raise SystemExit("error: --resume continues a run with its own config.json; drop --task/--set")
        metrics = train(resume=args.resume, quiet=args.quiet, on_start=announce_run(args))
    else:
        if not args.task:
            raise SystemExit("error: give --task NAME (see `kerascnn tasks`) or --resume RUN_DIR")
        overrides = list(args.set or [])
        if args.epochs is not None:
            overrides.append(f"epochs={args.epochs}")
        cfg = resolve_config(args.task, overrides, data_dir=args.data_dir)
        if args.show_config:
            from kerascnn.config import describe_fields
            from kerascnn.models import model_arguments

            rows = [{"key": k, "value": v, "help": h} for k, v, h in describe_fields(cfg, model_arguments(cfg.model))]
            return emit(args, f"{get_task(args.task).description}\n\n" + format_table(rows), cfg.to_dict())
        metrics = train(cfg, run_dir=args.run_dir, quiet=args.quiet, runs_root=args.runs_root,
                        on_start=announce_run(args))
    text = (f"run directory: {metrics['run_dir']}\n"
            f"best val accuracy {metrics['best_val_accuracy']:.4f} at epoch {metrics['best_epoch']} "
            f"of {metrics['epochs_run']}; train {metrics['train_seconds']:.1f} s, {metrics['images_per_s']} images/s")
    emit(args, text, metrics)


def cmd_tasks(args):
    from kerascnn.tasks import TASKS

    rows = [{"task": t.name, "dataset": t.config.dataset, "model": t.config.model, "description": t.description}
            for t in TASKS.values()]
    emit(args, format_table(rows), rows)


def cmd_models(args):
    from kerascnn.models import available_models, model_arguments

    rows = [{"model": name, "arguments": model_arguments(name)} for name in available_models()]
    text = format_table([{"model": r["model"], "arguments (model.KEY=default)": " ".join(
        f"{k}={v}" for k, v in r["arguments"].items()).replace(", ", ",")} for r in rows])
    emit(args, f"{text}\n\npick one with --set model=NAME; set its arguments with --set model.KEY=VALUE", rows)


def cmd_evaluate(args):
    from kerascnn.evaluate import evaluate_run

    m = evaluate_run(args.run, split=args.split, checkpoint=args.checkpoint, tta=args.tta)
    tta = "" if m["tta"] == "none" else f", test-time {m['tta']} averaging"
    text = (f"{m['split']} ({m['checkpoint']}{tta}): accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} "
            f"on {m['images']} images\nconfusion matrix: {m['confusion_png']}, {m['confusion_csv']}")
    macro, top5 = m["macro"], m.get("top5_accuracy")
    text += (f"\nmacro precision {macro['precision']:.4f}, recall {macro['recall']:.4f}, f1 {macro['f1']:.4f}; "
             f"mean per-class accuracy {m['mean_per_class_accuracy']:.4f}"
             + (f"; top-5 accuracy {top5:.4f}" if top5 is not None else "") + f"\nper class: {m['per_class_csv']}")
    emit(args, text, m)


def cmd_predict(args):
    from kerascnn.predict import predict_files, write_predictions

    rows, skipped = predict_files(args.run, args.inputs, checkpoint=args.checkpoint)
    if args.out:
        write_predictions(rows, args.out, minimal=args.minimal)
    text = format_table(rows[:50] if args.out else rows, ["id", "label", "class_name", "probability"])
    if len(rows) == 1 and not args.out:
        row = rows[0]
        text = f"{row['file']}: {row['class_name']} (class {row['label']}), probability {row['probability']:.4f}"
    if args.out:
        text = f"wrote {len(rows)} predictions to {args.out}" + (f" ({len(skipped)} unreadable skipped)" if skipped else "")
    emit(args, text, {"predictions": len(rows), "out": args.out, "skipped": skipped,
                      "rows": rows if not args.out else rows[:20]})


def cmd_export(args):
    from kerascnn.export import FORMATS, available_formats, export_run, verify_export

    formats = available_formats() if "all" in args.format else tuple(args.format)
    if "all" in args.format and formats != FORMATS:
        print(f"note: TensorFlow is not installed, so --format all exports {', '.join(formats)} only",
              file=sys.stderr)
    written = export_run(args.run, formats, checkpoint=args.checkpoint)
    payload = {"run_dir": args.run, "exported": written}
    text = "\n".join(f"{fmt:10s} {path}" for fmt, path in written.items())
    if args.verify:
        report = verify_export(args.run, written, checkpoint=args.checkpoint)
        payload["verify"] = report
        text += "\n" + format_table([{"format": k, **v} for k, v in report.items()])
    emit(args, text, payload)


def cmd_params(args):
    from kerascnn.analysis import parameter_table

    table = parameter_table(model_from(args))
    text = format_table(table["layers"]) + (f"\n\ntotal {table['total']:,}  trainable {table['trainable']:,}  "
                                             f"non-trainable {table['non_trainable']:,}")
    emit(args, text, table)


def cmd_receptive_field(args):
    from kerascnn.analysis import network_for_fields, parse_stack, receptive_fields, stack_from_model

    if args.stack:
        stack = parse_stack(args.stack)
    elif args.target and is_run_dir(args.target):
        stack = stack_from_model(model_from(args))
    elif args.target:
        stack = stack_from_model(network_for_fields(config_from(args)))
    else:
        raise SystemExit("error: give a run directory or task, or --stack 'conv:5,conv:3'")
    rows = receptive_fields(stack)
    last = rows[-1] if rows else {}
    text = format_table(rows) + (f"\n\nreceptive field of the last layer: {last['receptive_field']}x"
                                 f"{last['receptive_field']} input pixels" if rows else "")
    emit(args, text, {"layers": rows, "receptive_field": last.get("receptive_field")})


def cmd_visualize(args):
    from kerascnn.vis.commands import visualize

    given = {"checkpoint": args.checkpoint, "split": args.split, "images": args.images, "units": args.units,
             "class_name": args.class_name, "layers": args.layers.split(",") if args.layers else None,
             "count": args.count}
    written = visualize(args.run, kind=args.kind, out=args.out, **{k: v for k, v in given.items() if v is not None})
    emit(args, "\n".join(map(str, written)), {"figures": [str(p) for p in written]})


def cmd_experiment(args):
    from kerascnn.experiments import STUDIES, run_study

    if args.list or not args.name:
        rows = [{"study": s.name, "task": s.task, "variants": len(s.variants), "seeds": s.repeats,
                 "reproduce runs": " ".join((["--only", *s.reproduce_only] if s.reproduce_only else [])
                                            + (["--set", *s.reproduce_sets] if s.reproduce_sets else [])) or "all",
                 "what": s.description}
                for s in STUDIES.values()]
        return emit(args, format_table(rows), rows)
    result = run_study(args.name, epochs=args.epochs, overrides=args.set or [], repeats=args.repeats,
                       data_dir=args.data_dir, out_root=args.out, quiet=args.quiet, only=args.only)
    emit(args, result["markdown"] + f"\nstudy directory: {result['study_dir']}", result)


def cmd_tune(args):
    from tuning.search import run_search

    result = run_search(task=args.task, tuner=args.tuner, max_epochs=args.max_epochs, max_trials=args.max_trials,
                        time_budget=args.time_budget, out=args.out, name=args.name, top_k=args.top_k,
                        retrain_seeds=args.retrain_seeds, split_seeds=args.split_seeds,
                        select_splits=args.select_splits, baseline=args.baseline,
                        overwrite=args.overwrite, overrides=args.set or (), data_dir=args.data_dir,
                        keep_trial_models=args.keep_trial_models, verbose=args.verbose, progress=None if args.json else partial(print, flush=True))
    if result.get("worker"):
        text = f"worker {result['tuner_id']} finished its trials"
        return emit(args, text, {"text": text, "worker": True})
    text = tune_summary(result, args.tuner)
    emit(args, text, {**result, "text": text})


def tune_summary(result, tuner):
    """The search's table, its winner against the hand recipe, the split and test checks, and the winner's command."""
    from tuning.candidates import candidate_rows, split_check_words

    seeds = ", ".join(map(str, result["seeds"]))
    hand = result["baseline"]
    lines = [f"{result['trials_finished']} trials finished ({tuner}, {result['search_minutes']:.1f} min of search"
             f"{', stopped by the time budget' if result['stopped_by_budget'] else ''}); the top "
             f"{len(result['candidates'])} retrained for {result['max_epochs']} epochs on seeds {seeds} "
             f"(optimism = search score - retrain mean)"
             + (f"; winner chosen by the mean over validation splits (over_splits: this split and "
                f"{', '.join(map(str, result['select_splits']))})" if result.get("select_splits") else "") + ":",
             format_table(candidate_rows(result["candidates"])), "",
             f"winner: trial {result['winner']['trial']}, val accuracy "
             f"{format_mean_sd(result['winner']['retrain_mean'], result['winner']['retrain_sd'])}; hand recipe "
             f"{hand['task']} on the same seeds: {format_mean_sd(hand['mean'], hand['sd'])}"]
    if result["split_seeds"]:
        lines.append(f"on validation splits {', '.join(str(s['split_seed']) for s in result['split_seeds'])}: winner "
                     f"{format_mean_sd(result['split_winner_mean'], result['split_winner_sd'])}, hand recipe "
                     f"{format_mean_sd(result['split_baseline_mean'], result['split_baseline_sd'])}; winner "
                     f"{split_check_words(result['split_seeds'])}")
    if result.get("test"):
        test = result["test"]
        lines.append(f"on the test split, scored after the choice and never used for it: winner "
                     f"{format_mean_sd(test['winner_mean'], test['winner_sd'])}, hand recipe "
                     f"{format_mean_sd(test['baseline_mean'], test['baseline_sd'])} ({test['verdict']})")
    if result["verdict"] == "beats":
        lines.append(f"the winner beats {hand['task']} beyond the seeds' spread; reproduce it: {result['command']}")
    elif result["verdict"] == "within noise":
        lines.append(f"the winner is ahead of {hand['task']} only within the seeds' spread, not a finding; its "
                     f"command: {result['command']}")
    else:
        lines.append(f"the winner does not beat {hand['task']}; its command: {result['command']}")
    return "\n".join(lines)


def cmd_reproduce(args):
    from kerascnn.reproduce import check_inputs, estimate, over_budget, plan_rows, plan_steps, run_reproduce

    progress = None if args.json else partial(print, flush=True)
    if args.plan or args.dry_run:
        steps = plan_steps(args.families, args.root, args.min_seeds)
        problems = check_inputs(steps, root=args.root, data_root=args.data_root)
        if args.plan:
            estimate(steps, root=args.root, data_root=args.data_root, progress=progress)
        rows = plan_rows(steps, args.root) if args.plan else [
            {"step": k, "family": s.family, "kind": s.kind, "name": s.name, "command": s.command(args.root)}
            for k, s in enumerate(steps, start=1)]
        total = sum(s.estimate_s for s in steps) if args.plan else None
        left = sum(s.left_s for s in steps) if args.plan else None
        overruns = over_budget(steps) if args.plan else []
        hidden = ("estimate_s", "left_s", "measured_s", "finished", "command")
        lines = [format_table([{k: v for k, v in r.items() if k not in hidden} for r in rows])]
        if args.plan:
            lines.append(f"total: {total / 3600:.1f} h on this machine, {left / 3600:.1f} h of it left under "
                         f"{args.root} (estimated from the step benchmark; throughputs in "
                         f"{Path(args.root) / 'throughput.json'})")
        lines += [f"over budget: {note}" for note in overruns]
        lines += [f"problem: {p}" for p in problems] or ["inputs: every dataset and backbone source is present "
                                                       "or planned"]
        emit(args, "\n".join(lines), {"steps": rows, "total_s": total, "left_s": left, "over_budget": overruns,
                                      "problems": problems})
        return 1 if problems else 0
    results = run_reproduce(families=args.families, root=args.root, data_root=args.data_root,
                            min_seeds=args.min_seeds, progress=progress)
    emit(args, format_table(results), {"steps": results})
    return 0


def cmd_report(args):
    from kerascnn.report import build_report

    result = build_report(task=args.task, studies=args.studies, tuning=args.tuning, runs=args.runs,
                          figures=args.figures, out=args.out, keep_absent=args.keep_absent)
    kept = "".join(f"\nkept from the previous report: {heading.lstrip('#').strip()}" for heading in result["kept"])
    emit(args, f"wrote {result['path']}{kept}", result)


def cmd_results(args):
    from kerascnn.report import README_BLOCKS, readme_tables, write_results

    link_from = Path(args.readme).parent if args.readme else Path(".")
    rows = {name: make(reports=args.reports, link_from=link_from) for name, (make, _) in README_BLOCKS.items()}
    if args.readme:
        write_results(args.readme, readme_tables(reports=args.reports, link_from=link_from))
    text = "\n\n".join(f"{name}:\n{format_table(block)}" for name, block in rows.items())
    emit(args, text + (f"\nwrote the {', '.join(rows)} tables into {args.readme}" if args.readme else ""), rows)


def cmd_benchmark(args):
    from kerascnn.benchmark import run_benchmark, runtime_info

    rows = run_benchmark(tasks=args.task, parts=args.parts, epochs=args.epochs,
                         synthetic_images=args.synthetic_images, step_epochs=args.step_epochs, repeats=args.repeats,
                         overrides=args.set or (), data_dir=args.data_dir, against=args.against)
    runtime = runtime_info()
    emit(args, " ".join(f"{k}={v}" for k, v in runtime.items()) + "\n" + format_table(rows),
         {"runtime": runtime, "results": rows})


def cmd_data(args):
    if args.data_command == "augmentations":
        from kerascnn.data.augment import AUGMENTATIONS

        rows = [{"name": k, "default": d, "what": w} for k, (d, _, w) in sorted(AUGMENTATIONS.items())]
        return emit(args, format_table(rows), rows)
    if args.data_command == "artists":
        from kerascnn.data import data_home
        from kerascnn.data.artists import download

        from kerascnn.progress import stderr_is_tty

        dest = download(args.url, args.dest or data_home() / "artists", sha256=args.sha256, progress=stderr_is_tty())
        return emit(args, f"artists data in {dest}", {"path": str(dest)})
    if args.data_command == "faces":
        from kerascnn.data.faces_fetch import run

        status = run(args)
        if status:
            raise SystemExit(status)
        return None
    if args.data_command == "info":
        from kerascnn.data import load_dataset

        cfg = config_from(args, args.task)
        splits = load_dataset(cfg)
        rows = [{"split": name, "images": len(part.x), "shape": "x".join(map(str, part.x.shape[1:]))}
                for name in ("train", "val", "test") if (part := getattr(splits, name)) is not None]
        text = format_table(rows) + f"\n{splits.num_classes} classes: {', '.join(splits.class_names)}"
        if splits.empty_classes:
            text += f"\nclass folders without images: {', '.join(splits.empty_classes)}"
        return emit(args, text, {"splits": rows, "class_names": splits.class_names,
                                 "empty_classes": splits.empty_classes})
    raise SystemExit("error: give a data command: info, augmentations, artists, faces")


# ---------------------------------------------------------------- parsers

JSON_HELP = "print one JSON object as the last line"
RUN_HELP = "a run directory (one with config.json)"
TARGET_HELP = "a run directory, or a task name (see `kerascnn tasks`)"
VERBOSE_HELP = "show TensorFlow's start-up and C++ log lines (also shown when TF_CPP_MIN_LOG_LEVEL is exported)"


def version_text():
    """kerascnn's version with those of Keras and TensorFlow, read from package metadata: no TensorFlow import."""
    from importlib.metadata import PackageNotFoundError, version

    import kerascnn

    parts = [f"kerascnn {kerascnn.__version__}"]
    for name in ("keras", "tensorflow"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")


class _Version(argparse.Action):
    """--version, with the versions looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _add_verbose(parser, top=True):
    """--verbose on the top-level parser and on every sub-parser, so it goes before or after the command.
    Below the top it defaults to SUPPRESS: a sub-parser's default would overwrite a top-level --verbose."""
    parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help=VERBOSE_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child, top=False)


def _common(p, data=True, overrides=True):
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    if data:
        p.add_argument("--data-dir", help="local dataset directory or file (overrides the default location)")
    if overrides:
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override recipe fields or model.ARG")


def build_parser():
    parser = argparse.ArgumentParser(prog="kerascnn", description=__doc__.splitlines()[0].replace(
        "The ``kerascnn`` command. ", "Train, study, tune, explain and export Keras image classifiers. "))
    parser.add_argument("--version", action=_Version,
                        help="print the versions of kerascnn, Keras and TensorFlow, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a task into a run directory")
    p.add_argument("--task", help="the task to train (see `kerascnn tasks`)")
    p.add_argument("--epochs", type=int, help="epochs to train (default: the task's)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<task>/<time>-<id>)")
    p.add_argument("--runs-root", default="runs", help="parent of the default run directories (default runs)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--show-config", action="store_true", help="print the resolved config and every key, then exit")
    _common(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("tasks", help="list the tasks")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_tasks)

    p = sub.add_parser("models", help="list the model families with their model.* arguments and defaults")
    p.add_argument("--json", action="store_true", help="print the list as one JSON object on the last line")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("evaluate", help="metrics and confusion matrix of a run on a split")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--split", default="val", choices=["train", "val", "test"],
                   help="the split to evaluate (default val)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last", "initial"],
                   help="the weights to evaluate (default best)")
    p.add_argument("--tta", default="none", choices=["none", "flip"],
                   help="flip: average the predictions of each image and its mirror")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files or folders")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders searched for images")
    p.add_argument("--out", help="write a CSV (id,label,class_name,probability)")
    p.add_argument("--minimal", action="store_true", help="write only id,label (the assignments' format)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="the weights to use (default best)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_predict)

    p = sub.add_parser("export", help="export a run's model (keras, savedmodel, tflite)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--format", nargs="+", default=["all"], choices=["all", "keras", "savedmodel", "tflite"],
                   help="the formats to write (default all)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"],
                   help="the weights to export (default best)")
    p.add_argument("--verify", action="store_true",
                   help="reload each export in a new process and compare with the checkpoint on val images")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("params", help="parameter counts of a run or task, per layer")
    p.add_argument("target", metavar="RUN_OR_TASK", help=TARGET_HELP)
    _common(p)
    p.set_defaults(fn=cmd_params)

    p = sub.add_parser("receptive-field", help="receptive field, jump and start per conv/pool layer")
    p.add_argument("target", nargs="?", metavar="RUN_OR_TASK", help=TARGET_HELP)
    p.add_argument("--stack", help="a layer stack instead, e.g. 'conv:5,conv:3' or 'conv:5:2,pool:2:2'"
                                   " (kind:kernel[:stride[:padding[:dilation]]])")
    _common(p)
    p.set_defaults(fn=cmd_receptive_field)

    from kerascnn.vis.commands import KINDS

    p = sub.add_parser("visualize", help="figures from a run (curves, confusion, ...)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--kind", required=True, help=f"the figure: {', '.join(KINDS)}")
    p.add_argument("--out", help="output folder (default RUN/vis)")
    # Options left unset take each figure kind's own default; one a kind does not use is an error.
    p.add_argument("--checkpoint", choices=["best", "last", "initial"], help="(default best)")
    p.add_argument("--split", help="(default val)")
    p.add_argument("--layers", help="comma-separated layer names, or conv1, conv2 for the n-th conv layer")
    p.add_argument("--images", nargs="+", help="image files (paths, or paths relative to the dataset folder)")
    p.add_argument("--units", nargs="+", type=int, help="unit or filter indices")
    p.add_argument("--class", dest="class_name", help="class name or index to explain")
    p.add_argument("--count", type=int, help="how many images to draw (top-losses; default 16)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_visualize)

    p = sub.add_parser("experiment", help="run a study (a list of config variants) and tabulate it")
    p.add_argument("name", nargs="?", help="the study to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--epochs", type=int, help="epochs per run (default: each variant's)")
    p.add_argument("--repeats", type=int, help="seeds per variant (default: the study's, see --list); tables "
                   "report mean and std")
    p.add_argument("--only", nargs="+", default=[], metavar="VARIANT", help="run only these variants")
    p.add_argument("--out", default="studies", help="root of study directories")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _common(p)
    p.set_defaults(fn=cmd_experiment)

    p = sub.add_parser("tune", help="KerasTuner search over a model family")
    p.add_argument("--task", default="artists", help="the task to tune (default artists)")
    p.add_argument("--tuner", default="hyperband", choices=["hyperband", "random", "bayesian"],
                   help="the search algorithm (default hyperband)")
    p.add_argument("--max-epochs", type=int, help="most epochs of one trial (default: the task's epochs)")
    p.add_argument("--max-trials", type=int, default=30, help="most trials, random and bayesian (default 30)")
    p.add_argument("--time-budget", type=float, help="stop starting new trials after this many minutes")
    p.add_argument("--out", default="tuning_runs", help="root of search directories (default tuning_runs)")
    p.add_argument("--name", help="the search's directory under --out (default TASK_TUNER)")
    p.add_argument("--top-k", type=int, default=3, help="configurations retrained after the search (default 3)")
    p.add_argument("--retrain-seeds", type=int, default=3,
                   help="fresh seeds each of the top-k is retrained on; the best mean wins (default 3)")
    p.add_argument("--split-seeds", type=int, nargs="+", default=[], metavar="K",
                   help="also train the winner and the hand recipe on these validation splits (split_seed=K)")
    p.add_argument("--select-splits", type=int, nargs="+", default=[], metavar="K",
                   help="also train each top-k configuration once on these validation splits and choose the "
                   "winner by the mean over splits; for small validation sets (distinct from --split-seeds)")
    p.add_argument("--baseline", help="the hand recipe to beat (default: the family's best, e.g. artists_tuned)")
    p.add_argument("--overwrite", action="store_true", help="delete the search directory and start afresh")
    p.add_argument("--keep-trial-models", action="store_true",
                   help="keep every trial's model files (by default a finished trial keeps only its records; "
                   "the retrains keep their models)")
    _common(p)
    p.set_defaults(fn=cmd_tune)

    p = sub.add_parser("reproduce", help="run every task default and study of some families, then their reports")
    p.add_argument("families", nargs="+", metavar="FAMILY", help="artists, cifar10, caltech101, clipart, faces, or all")
    p.add_argument("--root", default="reproduce", help="where runs, studies and reports go (default reproduce)")
    p.add_argument("--data-root", help="a folder laid out like ../shared/data (default: the data home)")
    p.add_argument("--plan", action="store_true", help="print every step with its estimated wall time, then exit")
    p.add_argument("--dry-run", action="store_true", help="check that every dataset and backbone source is "
                   "present or planned, then exit")
    p.add_argument("--min-seeds", type=int, default=1, metavar="N",
                   help="run every study on at least N seeds (default: each study's own, sized to fit a night; "
                   "2 or more gives every comparison a spread to judge it by)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_reproduce)

    p = sub.add_parser("report", help="assemble a Markdown report from studies and runs")
    p.add_argument("task", help="the task to report on")
    p.add_argument("--studies", default="studies", help="root of study directories (default studies)")
    p.add_argument("--tuning", default="tuning_runs", help="root of search directories (default tuning_runs)")
    p.add_argument("--runs", help="a folder of run directories named by task (as `kerascnn reproduce` writes "
                   "them): adds each task's result and figures")
    p.add_argument("--figures", help="copy the report's figures here (each under 200 KB), e.g. docs/figures/FAMILY")
    p.add_argument("--out", help="the Markdown file to write (default reports/TASK.md)")
    p.add_argument("--keep-absent", action="store_true",
                   help="keep the sections of the report already at --out whose studies, searches or runs are "
                        "absent now (each says so), e.g. to add a study after the other runs were deleted")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("results", help="one row per task, study and search from the family reports (the README's "
                                        "results tables)")
    p.add_argument("--reports", default="docs/reports", help="the reports' folder (default docs/reports)")
    p.add_argument("--readme", help="rewrite the tables between the results, studies and searches markers of this "
                                    "Markdown file")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(fn=cmd_results)

    p = sub.add_parser("benchmark", help="training and input-pipeline throughput")
    p.add_argument("--task", nargs="+", default=["artists"], help="the tasks to measure (default artists)")
    p.add_argument("--parts", nargs="+", default=["decode", "pipeline", "step", "run"],
                   choices=["decode", "pipeline", "step", "run"],
                   help="what to measure (step needs no data: synthetic images of the task's shape)")
    p.add_argument("--epochs", type=int, help="epochs of the full run (default: the task's)")
    p.add_argument("--synthetic-images", type=int, default=1536, help="images per synthetic step epoch")
    p.add_argument("--step-epochs", type=int, default=1, help="epochs of the synthetic step measurement (default 1)")
    p.add_argument("--repeats", type=int, default=1, help="measurements per part; the table reports each (default 1)")
    p.add_argument("--against", metavar="RUNS",
                   help="a runs root (e.g. reproduce/runs): time the step of each task's finished run there and "
                        "set the run's own throughput against it; --task all takes every task found")
    _common(p)
    p.set_defaults(fn=cmd_benchmark)

    p = sub.add_parser("data", help="dataset utilities: info, augmentations, downloads")
    dsub = p.add_subparsers(dest="data_command")
    d = dsub.add_parser("info", help="split sizes and classes of a task's dataset")
    d.add_argument("task", help="the task whose dataset to describe")
    _common(d)
    d = dsub.add_parser("augmentations", help="list the augmentation names for --set augment=[...]")
    d.add_argument("--json", action="store_true", help=JSON_HELP)
    d = dsub.add_parser("artists", help="download the artists archive from a URL you have")
    d.add_argument("action", choices=["download"], help="what to do: download")
    d.add_argument("--url", required=True, help="the archive's URL")
    d.add_argument("--sha256", help="the archive's expected SHA-256; a mismatch is an error")
    d.add_argument("--dest", help="where to unpack it (default DATA_HOME/artists)")
    d.add_argument("--json", action="store_true", help=JSON_HELP)
    d = dsub.add_parser("faces", help="FaceScrub download-crop-verify")
    fsub = d.add_subparsers(dest="faces_command", required=True)
    f = fsub.add_parser("fetch")
    try:
        from kerascnn.data.faces_fetch import add_arguments

        add_arguments(f)
    except ImportError:
        pass
    p.set_defaults(fn=cmd_data)
    _add_verbose(parser)
    return parser


def resume_hint(args, argv, exc):
    """The command that continues interrupted work: a run's --resume, else the same command again (studies
    skip their finished runs and resume the interrupted one; searches resume from their saved state, so the
    hint drops --overwrite, which would delete it)."""
    if args.command == "train" and getattr(exc, "run_dir", None):
        return f"kerascnn train --resume {exc.run_dir}"
    return "kerascnn " + shlex.join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite")


# Commands that never import TensorFlow, as "command" or "command subcommand"; the others get the quiet import.
WITHOUT_TENSORFLOW = {"tasks", "report", "data", "data artists", "data faces"}


def needs_tensorflow(args):
    if args.command == "report" and getattr(args, "runs", None):  # scoring runs and drawing their figures
        return True
    return " ".join(filter(None, (args.command, getattr(args, "data_command", None)))) not in WITHOUT_TENSORFLOW


def error_message(exc):
    """One line for a handled error: a KeyError's own message without its quotes, an OSError's reason and path."""
    if isinstance(exc, KeyError) and exc.args:
        return exc.args[0]
    if isinstance(exc, OSError) and exc.strerror and type(exc).__str__ is OSError.__str__:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return exc


def main(argv=None):
    from kerascnn.config import ConfigError
    from kerascnn.data.download import DownloadError
    from kerascnn.interrupt import Interrupted

    args = build_parser().parse_args(argv)
    if needs_tensorflow(args):
        from kerascnn.quiet import import_tensorflow

        import_tensorflow(verbose=args.verbose)
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    from kerascnn.interrupt import set_resume_hint
    from kerascnn.quiet import plain_own_warnings, warn_once

    warn_once()
    plain_own_warnings()

    set_resume_hint(resume_hint(args, argv, None))  # train's own hint comes once its run directory exists
    try:
        status = args.fn(args)  # a command returns a non-zero status only when it has one to report
    except Interrupted as exc:
        print(f"interrupted: {exc}; continue with: {resume_hint(args, argv, exc)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt as exc:
        exc.run_dir = getattr(args, "started_run_dir", None)
        print(f"interrupted at once; from the last checkpoint, continue with: {resume_hint(args, argv, exc)}",
              file=sys.stderr)
        return 130
    except (ConfigError, KeyError, ValueError, DownloadError, OSError) as exc:
        if os.environ.get("KERASCNN_DEBUG"):
            raise
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
