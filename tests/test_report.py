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
    fake_study(studies, "artists.pooling", figures=("curves.png", "sweep.png", "weights_hidden300.png"))
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

    # Too many classes for a readable confusion matrix (Caltech-101's 101): a pointer instead of a figure.
    monkeypatch.setattr("kerascnn.report.CONFUSION_MAX_CLASSES", 2)
    build_report(task="artists", runs=str(tmp_path / "runs"), studies=str(tmp_path / "none"),
                 tuning=str(tmp_path / "none"), out=str(tmp_path / "many.md"))
    text = (tmp_path / "many.md").read_text()
    assert "confusion" not in text.replace("for a readable confusion matrix", "")
    assert "`artists`, `artists_tuned`: 3 classes, too many for a readable confusion matrix; `kerascnn evaluate RUN`" \
        in text


def test_the_readme_results_table_has_one_row_per_task_from_the_reports(tmp_path):
    from kerascnn.report import RESULTS_BEGIN, RESULTS_END, results_rows, write_results
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
    readme.write_text(f"# x\n\nbefore\n{RESULTS_BEGIN}\nold table\n{RESULTS_END}\nafter\n")
    assert main(["results", "--reports", str(reports), "--readme", str(readme), "--json"]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n\nbefore\n{RESULTS_BEGIN}\n| task | command | val_accuracy |")
    assert text.endswith(f"{RESULTS_END}\nafter\n") and "old table" not in text
    assert "| artists | `kerascnn train --task artists` | 0.6703 |  | 50 | 50 px | 2 s | [artists](docs/reports/artists.md) |" \
        in text.splitlines()
    assert len([line for line in text.splitlines() if line.startswith("| ")]) == len(TASKS) + 1  # and the header
    assert by_task["clipart_resnet50_finetune"]["epochs"] == "3+6"  # head, then fine-tuning
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="has no results block"):
        write_results(readme, rows)
    assert readme.read_text() == "# no markers\n"


def test_the_readme_results_table_is_the_one_the_committed_reports_make():
    from pathlib import Path

    from kerascnn.report import RESULTS_BEGIN, RESULTS_COLUMNS, RESULTS_END, results_rows
    from kerascnn.tables import markdown_lines

    root = Path(__file__).resolve().parents[1]
    rows = results_rows(reports=str(root / "docs" / "reports"), link_from=str(root))
    block = (root / "README.md").read_text().split(RESULTS_BEGIN)[1].split(RESULTS_END)[0].strip()
    assert block == "\n".join(markdown_lines(rows, RESULTS_COLUMNS)), "run `kerascnn results --readme README.md`"
