"""`kerascnn report`: sections appear for what exists, figures are linked relative to the report."""
import argparse

from kerascnn.io import write_json
from kerascnn.report import build_report


def fake_study(root, name, figures=("curves.png", "sweep.png")):
    d = root / name
    d.mkdir(parents=True)
    (d / "table.md").write_text(f"### {name}: x\n\n| variant | val_accuracy |\n|---|---|\n| a | 0.5000 |\n")
    write_json(d / "study.json", {"study": name, "task": "artists", "repeats": 2, "epochs": 3})
    for figure in figures:
        (d / figure).write_bytes(b"png")
    return d


def fake_search(root):
    d = root / "artists_hyperband"
    d.mkdir(parents=True)
    write_json(d / "summary.json", {
        "task": "artists", "tuner": "hyperband", "trials_finished": 5, "max_epochs": 30, "best_trial": "0003",
        "best_search_score": 0.7, "command": "kerascnn train --task artists --set model.pooling=true",
        "fit_adjustments": [], "top_trials": [{"rank": 1, "trial": "0003", "val_accuracy": 0.7}],
        "retrain": [{"seed": 0, "run_dir": str(d / "retrain" / "seed0"), "val_accuracy": 0.71,
                     "train_accuracy": 0.9, "best_epoch": 20, "epochs_run": 50}],
        "val_accuracy_mean": 0.71, "val_accuracy_std": None})


def test_report_assembles_what_is_present(tmp_path):
    studies, tuning = tmp_path / "studies", tmp_path / "tuning"
    fake_study(studies, "artists.pooling")
    fake_study(studies, "artists.robustness", figures=("robustness.png",))
    fake_study(studies, "cifar10.other")
    fake_search(tuning)
    out = tmp_path / "reports" / "artists.md"
    args = argparse.Namespace(task="artists", studies=str(studies), tuning=str(tuning), out=str(out), json=False)
    result = build_report(args)
    text = out.read_text()
    assert result["path"] == str(out) and result["studies"] == ["artists.pooling", "artists.robustness"]
    assert "Receptive field (question 1.1)" in text and "7x7 patch" in text
    assert "### artists.pooling" in text and "cifar10.other" not in text
    assert "*What was varied:* no pooling vs max/avg pooling" in text
    assert "](../studies/artists.pooling/sweep.png)" in text and "](../studies/artists.robustness/robustness.png)" in text
    assert "kerascnn train --task artists --set model.pooling=true" in text and "**0.7100**" in text
    assert "`artists_tuned` recipe" in text


def test_report_without_studies_says_what_to_run(tmp_path):
    out = tmp_path / "r.md"
    build_report(argparse.Namespace(task="artists", studies=str(tmp_path / "none"), tuning=str(tmp_path / "none"),
                                    out=str(out), json=True))
    assert "kerascnn experiment artists.<study>" in out.read_text()
