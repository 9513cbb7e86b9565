"""`kerascnn report`: sections appear for what exists, figures are linked relative to the report."""
import json

import pytest

from kerascnn.cli import main
from kerascnn.io import write_json
from kerascnn.report import build_report, covered_tasks


def fake_study(root, name, figures=("curves.png", "sweep.png"), task="artists"):
    d = root / name
    d.mkdir(parents=True)
    (d / "table.md").write_text(f"### {name}: x\n\n| variant | val_accuracy |\n|---|---|\n| a | 0.5000 |\n")
    write_json(d / "study.json", {"study": name, "task": task, "repeats": 2, "epochs": 3})
    for figure in figures:
        (d / figure).write_bytes(b"png")
    return d


def fake_search(root):
    d = root / "artists_hyperband"
    d.mkdir(parents=True)
    winner = {"rank": 1, "trial": "0003", "epochs": 30, "search_score": 0.75, "overrides": ["model.pooling=true"],
              "retrain_scores": [0.70, 0.72], "retrain_mean": 0.71, "retrain_sd": 0.0141, "optimism": 0.04}
    write_json(d / "summary.json", {
        "task": "artists", "tuner": "hyperband", "space": "artists_simple_cnn", "trials_finished": 5,
        "search_minutes": 3.0, "max_epochs": 30, "seeds": [1, 2], "candidates": [winner], "winner": winner,
        "command": "kerascnn train --task artists --set model.pooling=true epochs=30",
        "baseline": {"task": "artists_tuned", "scores": [0.7, 0.7], "mean": 0.7, "sd": 0.0},
        "beats_baseline": True, "split_seeds": []})


def test_report_assembles_what_is_present(tmp_path):
    studies, tuning = tmp_path / "studies", tmp_path / "tuning"
    pooling = fake_study(studies, "artists.pooling", figures=("curves.png", "sweep.png", "weights_hidden300.png"))
    write_json(pooling / "study.json", {"study": "artists.pooling", "task": "artists", "repeats": 2, "epochs": 3,
                                        "rows": [{"variant": "none", "val_accuracy": 0.6, "val_accuracy_std": 0.01,
                                                  "verdict": "reference"},
                                                 {"variant": "max", "val_accuracy": 0.7, "val_accuracy_std": 0.02,
                                                  "verdict": "+0.1000, finding"}]})
    fake_study(studies, "artists.robustness", figures=("robustness.png",))
    fake_study(studies, "cifar10.other", task="cifar10")
    fake_search(tuning)
    out = tmp_path / "reports" / "artists.md"
    result = build_report(task="artists", studies=str(studies), tuning=str(tuning), out=str(out))
    text = out.read_text()
    assert result["path"] == str(out) and result["studies"] == ["artists.pooling", "artists.robustness"]
    assert "## Receptive fields" in text and "(question 1.1, `kerascnn" in text and "7x7 patch" in text
    assert "### artists.pooling" in text and "cifar10.other" not in text
    assert "*What was varied:* no pooling vs max/avg pooling" in text
    assert "](../studies/artists.pooling/sweep.png)" in text and "](../studies/artists.robustness/robustness.png)" in text
    # A figure a study's own hook drew is shown too, after the standard ones.
    assert text.index("artists.pooling/curves.png") < text.index("](../studies/artists.pooling/weights_hidden300.png)")
    assert "kerascnn train --task artists --set model.pooling=true" in text and "**0.7100 ± 0.0141**" in text
    assert "| 1 | 0003 | 30 | 0.7500 | 0.7100 ± 0.0141 | +0.0400 | model.pooling=true |" in text
    # The summary has no verdict of its own: 0.71 ± 0.0141 against 0.70 is a lead within the seeds' spread.
    assert ("the hand recipe `artists_tuned` on the same seeds: 0.7000 ± 0.0000. The winner is ahead of it only "
            "within the seeds' spread.") in text
    assert "`artists_tuned` recipe" in text
    # The artists studies with no table yet are listed with the command that runs them.
    missing = text.split("## Studies not run yet")[1].split("##")[0]
    assert "`kerascnn reproduce artists`" in missing and "- `artists.dropout`: dropout rate" in missing
    assert "artists.pooling" not in missing and "artists.robustness" not in missing
    # Beside the Markdown, the studies and searches as the README's tables read them.
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert [s["study"] for s in sidecar["studies"]] == ["artists.pooling", "artists.robustness"]
    assert sidecar["studies"][0] == {"study": "artists.pooling", "task": "artists", "seeds": 2, "epochs": 3,
                                     "best": "max", "best_val": 0.7, "best_sd": 0.02, "reference": "none",
                                     "reference_val": 0.6, "reference_sd": 0.01, "verdict": "+0.1000, finding"}
    assert sidecar["studies"][1] == {"study": "artists.robustness", "task": "artists", "seeds": 2, "epochs": 3}
    assert sidecar["searches"] == [{"name": "artists_hyperband", "task": "artists", "tuner": "hyperband", "trials": 5,
                                    "minutes": 3.0,
                                    "max_epochs": 30, "seeds": [1, 2], "winner": 0.71, "winner_sd": 0.0141,
                                    "hand_recipe": "artists_tuned", "hand": 0.7, "hand_sd": 0.0, "verdict": "within noise",
                                    "test": None}]


def test_report_without_studies_says_what_to_run(tmp_path):
    out = tmp_path / "r.md"
    build_report(task="artists", studies=str(tmp_path / "none"), tuning=str(tmp_path / "none"), out=str(out))
    text = out.read_text()
    assert "`kerascnn experiment artists.pooling`" in text and "`kerascnn tune --task artists`" in text


def test_a_report_covers_a_task_or_its_family():
    assert covered_tasks("faces_mlp") == ["faces_mlp"]
    assert covered_tasks("caltech101") == ["caltech101_lenet", "caltech101_improved", "caltech101_resnet18",
                                           "caltech101_resnet50", "caltech101_vgg11_bn", "caltech101_alexnet"]
    assert covered_tasks("artists") == ["artists", "artists_tuned", "artists_searched"]
    with pytest.raises(KeyError, match="unknown task or family 'faces_cnn'.*families: artists, caltech101"):
        covered_tasks("faces_cnn")


def test_studies_are_found_by_their_task_not_their_name(tmp_path, capsys):
    studies = tmp_path / "studies"
    fake_study(studies, "faces.preprocessing", figures=(), task="faces_mlp")
    fake_study(studies, "faces_other_task", figures=(), task="faces_alexnet_features")
    fake_study(studies, "caltech101.models", figures=(), task="caltech101_lenet")
    fake_study(studies, "artists.pooling", figures=())
    # A study directory without study.json is placed by its registered study's task.
    registered = fake_study(studies, "clipart.ablation", figures=(), task=None)
    (registered / "study.json").unlink()
    none = str(tmp_path / "none")

    result = build_report(task="faces_mlp", studies=str(studies), tuning=none, out=str(tmp_path / "faces_mlp.md"))
    assert result["studies"] == ["faces.preprocessing"]
    result = build_report(task="faces", studies=str(studies), tuning=none, out=str(tmp_path / "faces.md"))
    assert result["studies"] == ["faces.preprocessing", "faces_other_task"]
    text = (tmp_path / "faces.md").read_text()
    assert "### faces.preprocessing" in text and "caltech101.models" not in text

    assert main(["report", "caltech101", "--studies", str(studies), "--tuning", none,
                 "--out", str(tmp_path / "c.md"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["studies"] == ["caltech101.models"]
    text = (tmp_path / "c.md").read_text()
    assert "# Report: caltech101" in text
    assert all(f"The `{task}` task's own network" in text for task in ("caltech101_lenet", "caltech101_improved"))
    # A deep network gets one line on its last layer instead of a table of every layer.
    assert "The `caltech101_resnet18` task's network has " in text and "lists every layer" in text
    assert build_report(task="clipart_own", studies=str(studies), tuning=none,
                        out=str(tmp_path / "clip.md"))["studies"] == ["clipart.ablation"]


def test_publish_figure_keeps_every_figure_under_the_limit(tmp_path):
    import numpy as np
    from PIL import Image

    from kerascnn.report import FIGURE_BYTES, publish_figure

    noisy = tmp_path / "run" / "vis" / "big.png"
    noisy.parent.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)).save(noisy)
    assert noisy.stat().st_size > FIGURE_BYTES
    small = tmp_path / "run" / "small.png"
    Image.new("RGB", (50, 40), "white").save(small)
    published = publish_figure(noisy, tmp_path / "figures")
    assert published == tmp_path / "figures" / "run_big.png" and published.stat().st_size <= FIGURE_BYTES
    assert publish_figure(small, tmp_path / "figures").read_bytes() != b"" and publish_figure(small, None) == small
    assert Image.open(tmp_path / "figures" / "run_small.png").size == (50, 40)


def test_a_report_with_runs_tabulates_them_and_publishes_their_figures(tmp_path, monkeypatch):
    from conftest import write_image_folder
    from kerascnn.tasks import resolve_config
    from kerascnn.train import train

    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    cfg = resolve_config("artists", ["epochs=2", "batch_size=16", "tensorboard=false"], data_dir=str(data))
    metrics = train(cfg, run_dir=tmp_path / "runs" / "artists", quiet=True)
    tuned = resolve_config("artists_tuned", ["epochs=3", "batch_size=16", "tensorboard=false"], data_dir=str(data))
    train(tuned, run_dir=tmp_path / "runs" / "artists_tuned", quiet=True)
    out = tmp_path / "docs" / "artists-report.md"
    result = build_report(task="artists", runs=str(tmp_path / "runs"), studies=str(tmp_path / "none"),
                          tuning=str(tmp_path / "none"), figures=str(tmp_path / "docs" / "figures" / "artists"),
                          out=str(out))
    text = out.read_text()
    assert [r["task"] for r in result["runs"]] == ["artists", "artists_tuned"]
    from kerascnn.machine import describe_machine, machine_line

    assert f"\n\nTrained on {machine_line(describe_machine())}.\n\n" in text  # both runs on this machine
    assert result["runs"][0]["val_accuracy"] == metrics["best"]["val_accuracy"] and result["runs"][0]["test_accuracy"] \
        is None
    row = next(line for line in text.splitlines() if line.startswith("| artists |"))
    assert f"| {metrics['best']['val_accuracy']:.4f} |  | 2 | 50 px | 0 |" in row and "`kerascnn train --task artists`" \
        in row
    figures = sorted(p.name for p in (tmp_path / "docs" / "figures" / "artists").iterdir())
    # One overlaid figure carries every task's curves; each task adds its confusion matrix.
    assert figures == ["artists_confusion_val_best.png", "artists_tuned_confusion_val_best.png",
                       "overlaid_artists.png"]
    assert "](figures/artists/artists_confusion_val_best.png)" in text and "No studies" not in text
    assert "](figures/artists/overlaid_artists.png)" in text
    sidecar = json.loads(out.with_suffix(".json").read_text())  # the rows `kerascnn results` reads
    assert sidecar["report"] == "artists" and [r["task"] for r in sidecar["runs"]] == ["artists", "artists_tuned"]

    # The runs deleted: --keep-absent keeps the task results whole, with their rows for `kerascnn results`.
    import shutil

    shutil.move(tmp_path / "runs", tmp_path / "moved")
    result = build_report(task="artists", runs=str(tmp_path / "runs"), studies=str(tmp_path / "none"),
                          tuning=str(tmp_path / "none"), out=str(out), keep_absent=True)
    kept = out.read_text()
    assert result["kept"] == ["## Tasks"] and row in kept and "](figures/artists/overlaid_artists.png)" in kept
    assert kept.split("## Tasks\n\n")[1].startswith("*Kept from the report generated ")
    assert json.loads(out.with_suffix(".json").read_text())["runs"] == sidecar["runs"]
    shutil.move(tmp_path / "moved", tmp_path / "runs")

    # Too many classes for a readable confusion matrix (Caltech-101's 101): a pointer instead of a figure.
    monkeypatch.setattr("kerascnn.report.CONFUSION_MAX_CLASSES", 2)
    build_report(task="artists", runs=str(tmp_path / "runs"), studies=str(tmp_path / "none"),
                 tuning=str(tmp_path / "none"), out=str(tmp_path / "many.md"))
    text = (tmp_path / "many.md").read_text()
    assert "confusion" not in text.replace("for a readable confusion matrix", "")
    assert "`artists`, `artists_tuned`: 3 classes, too many for a readable confusion matrix; `kerascnn evaluate RUN`" \
        in text


def test_the_readme_results_table_has_one_row_per_task_from_the_reports(tmp_path):
    from kerascnn.report import RESULTS_BEGIN, RESULTS_END, block_markers, readme_tables, results_rows, write_results
    from kerascnn.tasks import TASKS

    reports = tmp_path / "docs" / "reports"
    write_json(reports / "artists.json", {"report": "artists", "command": "kerascnn report artists", "runs": [
        {"task": "artists", "val_accuracy": 0.67031, "test_accuracy": None, "epochs": 50, "resolution": "50 px",
         "seed": 0, "minutes": 0.025, "backbone": "", "run_dir": "r/artists"},
        {"task": "faces_alexnet_finetune", "val_accuracy": 0.8826, "test_accuracy": 0.91448, "epochs": 30,
         "resolution": "224 px", "seed": 0, "minutes": 9.31, "backbone": "caltech101_alexnet", "run_dir": "r/f"}]})
    rows = results_rows(reports=str(reports), link_from=str(tmp_path))
    assert [r["task"] for r in rows] == list(TASKS)
    by_task = {r["task"]: r for r in rows}
    assert by_task["artists"] == {"task": "artists", "command": "`kerascnn train --task artists`",
                                  "val_accuracy": "0.6703", "test_accuracy": "", "epochs": 50, "resolution": "50 px",
                                  "wall_time": "2 s", "report": "[artists](docs/reports/artists.md)"}
    finetune = by_task["faces_alexnet_finetune"]
    assert finetune["test_accuracy"] == "0.9145" and finetune["wall_time"] == "9.3 min"
    assert finetune["command"] == "`kerascnn train --task faces_alexnet_finetune` (backbone: the caltech101_alexnet run)"
    assert by_task["cifar10"]["val_accuracy"] == "not reproduced yet: `kerascnn reproduce cifar10`"
    assert by_task["folder"]["command"] == "`kerascnn train --task folder --data-dir DIR`"

    readme = tmp_path / "README.md"
    studies_begin, studies_end = block_markers("studies")
    searches_begin, searches_end = block_markers("searches")
    readme.write_text(f"# x\n\nbefore\n{RESULTS_BEGIN}\nSTALE table\n{RESULTS_END}\nbetween\n"
                      f"{studies_begin}\n{studies_end}\n{searches_begin}\nSTALE\n{searches_end}\nafter\n")
    assert main(["results", "--reports", str(reports), "--readme", str(readme), "--json"]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n\nbefore\n{RESULTS_BEGIN}\n| task | command | val_accuracy |")
    assert text.endswith(f"{searches_end}\nafter\n") and "STALE" not in text
    assert f"{RESULTS_END}\nbetween\n{studies_begin}\n| study |" in text
    assert "| artists | `kerascnn train --task artists` | 0.6703 |  | 50 | 50 px | 2 s | [artists](docs/reports/artists.md) |" \
        in text.splitlines()
    results_block = text.split(RESULTS_BEGIN)[1].split(RESULTS_END)[0]
    assert len([line for line in results_block.splitlines() if line.startswith("| ")]) == len(TASKS) + 1
    assert by_task["clipart_resnet50_finetune"]["epochs"] == "3+6"  # head, then fine-tuning
    readme.write_text(f"# only the results block\n{RESULTS_BEGIN}\n{RESULTS_END}\n")
    with pytest.raises(ValueError, match="has no studies, searches block"):
        write_results(readme, readme_tables(reports=str(reports), link_from=str(tmp_path)))
    assert readme.read_text() == f"# only the results block\n{RESULTS_BEGIN}\n{RESULTS_END}\n"


def test_the_readme_has_one_row_per_study_and_search_with_its_verdict(tmp_path):
    """Studies and searches as the README shows them: the best variant against the reference with the study's
    verdict, and a search's winner against the hand recipe, on validation and, where there is one, on test."""
    from kerascnn.report import search_rows, study_rows

    reports = tmp_path / "docs" / "reports"
    write_json(reports / "faces.json", {"report": "faces", "command": "kerascnn report faces", "runs": [], "studies": [
        {"study": "faces.transfer", "task": "faces_alexnet_features", "seeds": 3, "epochs": None,
         "best": "pretrained", "best_val": 0.89646, "best_sd": 0.00219, "reference": "pretrained",
         "reference_val": 0.89646, "reference_sd": 0.00219, "verdict": "reference"},
        {"study": "faces.weights", "task": "faces_mlp", "seeds": 1, "epochs": None, "best": "hidden800",
         "best_val": 0.82197, "best_sd": None, "reference": "hidden300", "reference_val": 0.81061, "reference_sd": None,
         "verdict": "+0.0114, one seed, no verdict"},
        {"study": "artists.robustness", "task": "artists_tuned", "seeds": 3, "epochs": None},
        {"study": "cifar10.early_stopping", "task": "cifar10", "seeds": 1, "epochs": None, "checkpoints": [
            {"variant": "plain", "best": 0.5638, "last": 0.5638}, {"variant": "batch_norm", "best": 0.6760,
                                                                    "last": 0.6741}]}],
        "searches": [{"task": "faces_mlp", "tuner": "hyperband", "trials": 162, "minutes": 10.08, "max_epochs": 100,
                      "seeds": [1, 2, 3], "winner": 0.87753, "winner_sd": 0.00789, "hand_recipe": "faces_mlp",
                      "hand": 0.87121, "hand_sd": 0.0, "verdict": "within noise",
                      "test": {"winner_mean": 0.81660, "winner_sd": 0.00430, "baseline_mean": 0.81289,
                               "baseline_sd": 0.00214, "verdict": "within noise"}}]})
    rows = study_rows(reports=str(reports), link_from=str(tmp_path))
    assert rows[0] == {"study": "faces.transfer", "task": "faces_alexnet_features", "seeds": 3,
                       "best_val": "pretrained 0.8965 ± 0.0022", "reference_val": "pretrained 0.8965 ± 0.0022",
                       "difference": "the reference is best", "report": "[faces](docs/reports/faces.md#facestransfer)"}
    assert rows[1]["best_val"] == "hidden800 0.8220" and rows[1]["difference"] == "+0.0114, one seed, no verdict"
    assert rows[2]["difference"] == "see the report" and rows[2]["best_val"] == ""
    assert rows[3]["difference"] == "best minus last checkpoint: plain +0.0000, batch_norm +0.0019"
    search = search_rows(reports=str(reports), link_from=str(tmp_path))[0]
    assert search["budget"] == "hyperband, 162 trials in 10.1 min, up to 100 epochs" and search["seeds"] == "1, 2, 3"
    assert (search["winner_val"], search["hand_recipe_val"], search["verdict"]) == \
        ("0.8775 ± 0.0079", "faces_mlp 0.8712 ± 0.0000", "is ahead of it only within the seeds' spread")
    assert search["test"] == "0.8166 ± 0.0043 against 0.8129 ± 0.0021: is ahead of it only within the seeds' spread"
    assert search["report"] == "[faces](docs/reports/faces.md#hyperparameter-search-kerastuner)"


def test_the_readme_tables_are_the_ones_the_committed_reports_make():
    from pathlib import Path

    from kerascnn.report import block_markers, readme_tables

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    for name, table in readme_tables(reports=str(root / "docs" / "reports"), link_from=str(root)).items():
        begin, end = block_markers(name)
        assert readme.split(begin)[1].split(end)[0].strip() == table, "run `kerascnn results --readme README.md`"


def test_a_study_section_states_the_epochs_it_ran_for():
    from kerascnn.experiments import STUDIES
    from kerascnn.report import study_epochs

    early = STUDIES["cifar10.early_stopping"]
    assert study_epochs(early, {"epochs": None, "overrides": []}) == "50"  # its own base
    assert study_epochs(early, {"epochs": None, "overrides": ["epochs=30"]}) == "30"  # reproduce's --set
    assert study_epochs(early, {"epochs": 12, "overrides": ["epochs=30"]}) == 12  # --epochs wins
    assert study_epochs(STUDIES["cifar10.batchnorm"], {}) is None  # the task's recipe decides


def test_a_best_against_last_study_summarises_what_restoring_the_best_checkpoint_gains(tmp_path):
    from kerascnn.report import study_summary

    write_json(tmp_path / "cifar10.early_stopping" / "study.json", {
        "study": "cifar10.early_stopping", "task": "cifar10", "repeats": 1, "epochs": None, "rows": [
            {"variant": "plain", "best_val_accuracy": 0.56, "last_val_accuracy": 0.55},
            {"variant": "batch_norm", "best_val_accuracy": 0.68, "last_val_accuracy": 0.68}]})
    summary = study_summary(tmp_path / "cifar10.early_stopping")
    assert summary["checkpoints"] == [{"variant": "plain", "best": 0.56, "last": 0.55},
                                      {"variant": "batch_norm", "best": 0.68, "last": 0.68}]
    assert "best" not in summary  # no variant is "best": the question is best against last within each


def test_a_study_summary_breaks_a_tie_of_means_by_the_smaller_spread(tmp_path):
    from kerascnn.report import study_summary

    write_json(tmp_path / "clipart.ablation" / "study.json", {
        "study": "clipart.ablation", "task": "clipart_own", "repeats": 2, "epochs": 12, "rows": [
            {"variant": "baseline", "val_accuracy": 0.794, "val_accuracy_std": 0.014, "verdict": "reference"},
            {"variant": "noisy", "val_accuracy": 0.828, "val_accuracy_std": 0.026, "verdict": "+0.0340, within noise"},
            {"variant": "steady", "val_accuracy": 0.828, "val_accuracy_std": 0.010, "verdict": "+0.0340, finding"},
            {"variant": "worse", "val_accuracy": 0.790, "val_accuracy_std": 0.0, "verdict": "-0.0040, within noise"}]})
    summary = study_summary(tmp_path / "clipart.ablation")
    assert (summary["best"], summary["best_sd"], summary["verdict"]) == ("steady", 0.010, "+0.0340, finding")
    assert (summary["reference"], summary["reference_sd"]) == ("baseline", 0.014)


def test_a_report_names_the_machine_of_each_run_where_they_differ():
    from kerascnn.report import machines_lines

    avx2 = {"cpu": "AMD EPYC", "vector": "AVX2", "cores": 2, "backend": "tensorflow", "keras": "3.15.1",
            "tensorflow": "2.21.0"}
    avx512 = {**avx2, "vector": "AVX-512"}
    rows = [{"task": "a", "machines": [avx512]}, {"task": "b", "machines": [avx2]},
            {"task": "c", "machines": [avx2]}, {"task": "d", "machines": [None, avx2]}, {"task": "e"}]
    assert machines_lines(rows) == [
        "Trained on:", "",
        "- `a`: AMD EPYC (AVX-512), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0",
        "- `b`, `c`: AMD EPYC (AVX2), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0",
        "- `d`: not recorded, then AMD EPYC (AVX2), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0",
        "- `e`: not recorded", ""]
    assert machines_lines(rows[1:3]) == ["Trained on AMD EPYC (AVX2), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0.", ""]
    assert machines_lines([{"task": "e"}, {"task": "f", "machines": None}]) == []  # no run says: no line


def test_a_report_gives_each_transfer_tasks_backbone_run_its_own_score(tmp_path):
    from kerascnn.report import backbone_lines

    backbone = tmp_path / "runs" / "caltech101_resnet50"
    write_json(backbone / "metrics.json", {"best": {"val_accuracy": 0.62561}, "best_epoch": 15, "epochs_run": 16,
                                           "train_seconds": 2911.5})
    rows = [{"task": "clipart_own", "backbone": "", "backbone_run": ""},
            {"task": "clipart_resnet50_finetune", "backbone": "caltech101_resnet50", "backbone_run": str(backbone)},
            {"task": "cifar10_vgg", "backbone": "caltech101_vgg11_bn", "backbone_run": str(tmp_path / "gone")}]
    assert backbone_lines(rows) == [
        "Backbones:", "",
        f"- `clipart_resnet50_finetune` started from the `caltech101_resnet50` run at `{backbone}`: best validation "
        "accuracy 0.6256 at epoch 15 of 16, 48.5 min of training.",
        f"- `cifar10_vgg` started from `{tmp_path / 'gone'}`, which holds no finished run now.", ""]
    assert backbone_lines(rows[:1]) == []


def test_a_kept_section_ends_with_a_blank_line_wherever_it_lands(tmp_path):
    # The previous report ends in the study's section, with no newline after its last line.
    out = tmp_path / "artists.md"
    out.write_text("# Report: artists\n\nGenerated 2026-01-01 00:00 by `x`.\n\n## Studies\n\n"
                   "### artists.pooling\n\n| variant | val_accuracy |\n|---|---|\n| max | 0.7000 |")
    write_json(out.with_suffix(".json"), {"studies": [{"study": "artists.pooling", "best": "max"}]})
    build_report(task="artists", studies=str(tmp_path / "none"), tuning=str(tmp_path / "none"), out=str(out),
                 keep_absent=True)
    text = out.read_text()
    block = text[text.index("### artists.pooling"):text.index("## Studies not run yet")]
    assert block.endswith("| max | 0.7000 |\n\n") and "*Kept from the report generated 2026-01-01 00:00" in block
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_keep_absent_adds_a_study_to_a_report_whose_other_inputs_are_gone(tmp_path, capsys):
    studies, tuning, out = tmp_path / "studies", tmp_path / "tuning", tmp_path / "reports" / "artists.md"
    pooling = fake_study(studies, "artists.pooling")
    write_json(pooling / "study.json", {"study": "artists.pooling", "task": "artists", "repeats": 2, "epochs": 3,
                                        "rows": [{"variant": "none", "val_accuracy": 0.6, "verdict": "reference"},
                                                 {"variant": "max", "val_accuracy": 0.7, "verdict": "+0.1000, finding"}]})
    fake_search(tuning)
    build_report(task="artists", studies=str(studies), tuning=str(tuning), out=str(out))
    first = out.read_text()
    # The inputs are deleted and a new study is run: without --keep-absent the report loses the old ones.
    for path in sorted(tmp_path.glob("*/*/*")) + sorted(tmp_path.glob("*/*")):
        if "reports" not in str(path):
            path.unlink() if path.is_file() else path.rmdir()
    fake_study(studies, "artists.dropout")
    main(["report", "artists", "--studies", str(studies), "--tuning", str(tuning), "--out", str(out),
          "--keep-absent"])
    assert "kept from the previous report: artists.pooling" in capsys.readouterr().out
    text = out.read_text()
    assert text.index("### artists.dropout") < text.index("### artists.pooling")  # in name order
    lines = text.splitlines()  # a kept section keeps the blank line that ends it
    assert all(lines[i - 1] == "" for i, line in enumerate(lines) if line.startswith("## ") and i)
    pooling_block = text[text.index("### artists.pooling"):text.index("## Studies not run yet")]
    assert pooling_block.split("\n")[2].startswith("*Kept from the report generated ")
    assert first[first.index("| variant | val_accuracy |"):first.index("## Studies not run yet")].strip() \
        in pooling_block  # the section itself is unchanged
    assert "`artists.pooling`" not in text[text.index("## Studies not run yet"):]
    assert "search `artists_hyperband`" in text and "**0.7100 ± 0.0141**" in text
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert [row["study"] for row in sidecar["studies"]] == ["artists.dropout", "artists.pooling"]
    assert sidecar["studies"][1]["best"] == "max" and sidecar["searches"][0]["name"] == "artists_hyperband"
    # Kept again by a later report: one note, naming the report that first kept it.
    build_report(task="artists", studies=str(studies), tuning=str(tuning), out=str(out), keep_absent=True)
    again = out.read_text()
    assert again.count("*Kept from the report generated") == 2  # the study and the search, once each
    assert again[again.index("### artists.pooling"):] == text[text.index("### artists.pooling"):]
    build_report(task="artists", studies=str(studies), tuning=str(tuning), out=str(out))
    assert "### artists.pooling" not in out.read_text()
