"""KerasTuner searches: every family's space builds, trials are `kerascnn train` runs, the winner is
retrained on fresh seeds against the hand recipe, bad arguments fail, HParams records exist, Ctrl-C
leaves a search that resumes, and a chief with two workers shares one search."""
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import keras_tuner
import pytest

from conftest import ROOT, hparams_of, write_image_folder
from kerascnn.tasks import TASKS, resolve_config
from tuning.hypermodels import SPACES, TaskHyperModel, space_for, tunable_tasks
from tuning.simple_cnn import KERNELS, MAX_DEPTH, POOL_SIZES, STRIDES, block_output, fit_to_input, overrides_for, \
    sample_space


def random_hyperparameters(hypermodel, seed):
    """A HyperParameters object with every active value drawn at random, as a random-search oracle would."""
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    rng = random.Random(seed)
    for _ in range(3):  # later passes fill values whose condition an earlier pass switched on
        hypermodel.build(hp)
        for p in hp.space:
            if hp.is_active(p):
                hp.values[p.name] = p.random_sample(rng.randint(0, 2**31))
    return hp


def build(cfg, classes):
    from kerascnn.train import build_model

    channels = 1 if cfg.grayscale else 3
    return build_model(cfg, (cfg.image_size, cfg.image_size, channels), classes)


# ---------------------------------------------------------------- the artists SimpleCNN space

def test_fit_to_input_keeps_every_map_at_least_one_pixel_for_all_stacks():
    rng = random.Random(0)
    for _ in range(3000):
        depth = rng.randint(1, MAX_DEPTH)
        kernels = [rng.choice(KERNELS) for _ in range(depth)]
        strides = [rng.choice(STRIDES) for _ in range(depth)]
        padding = rng.choice(["valid", "same"])
        pool = rng.choice((0,) + POOL_SIZES)
        plan = fit_to_input(50, kernels, strides, padding, pool)
        assert plan.sizes and min(plan.sizes) >= 1
        assert all(f <= s for f, s in zip(plan.strides, strides))
        size = 50
        for k, s, expected in zip(plan.kernels, plan.strides, plan.sizes):
            size = block_output(size, k, s, plan.padding, plan.pool_size)
            assert size == expected


def test_deepest_largest_stride_stack_keeps_all_five_layers():
    plan = fit_to_input(50, [7] * 5, [3] * 5, "valid", 3)
    assert len(plan.kernels) == 5 and min(plan.sizes) >= 1
    assert "padding valid->same" in plan.adjustments and "pool_size->2" in plan.adjustments


def test_feasible_stacks_are_left_alone():
    plan = fit_to_input(50, [5, 5], [2, 2], "valid", 0)
    assert (plan.strides, plan.padding, plan.sizes, plan.adjustments) == ([2, 2], "valid", [23, 10], [])


@pytest.mark.parametrize("padding,pooling", itertools.product(["valid", "same"], ["none", "max"]))
def test_deep_stacks_with_large_strides_build(padding, pooling):
    hp = keras_tuner.HyperParameters()
    sample_space(hp)
    hp.values.update({"depth": MAX_DEPTH, "padding": padding, "pooling": pooling, "pool_size": 3})
    for i in range(1, MAX_DEPTH + 1):
        hp.values.update({f"filters_{i}": 16, f"kernel_{i}": 7, f"stride_{i}": 3})
    overrides, plan = overrides_for(sample_space(hp), 50)
    model = build(resolve_config("artists", overrides), 11)
    assert tuple(model.output.shape) == (None, 11)
    assert len([layer for layer in model.layers if layer.name.startswith("conv")]) == MAX_DEPTH
    assert all(d >= 1 for d in model.get_layer("flatten").input.shape[1:])


# ---------------------------------------------------------------- every family's space

# (task, small-size overrides, classes, draws): one task per space, trained on its own model.
FAMILY_TASKS = [("artists", [], 11, 12), ("cifar10_bn", [], 10, 4),
                ("caltech101_improved", ["image_size=32"], 101, 4), ("clipart_own", ["image_size=32"], 7, 4),
                ("faces_mlp", [], 12, 4)]


@pytest.mark.parametrize("task,small,classes,draws", FAMILY_TASKS, ids=[t[0] for t in FAMILY_TASKS])
def test_sampled_configurations_of_every_space_resolve_and_build(task, small, classes, draws):
    """Each draw is a list of --set overrides that `kerascnn train` accepts, and its model builds."""
    base = resolve_config(task, small)
    hypermodel = TaskHyperModel(space_for(base), base)
    seen = set()
    for seed in range(draws):
        overrides = hypermodel.overrides(random_hyperparameters(hypermodel, seed))
        cfg = resolve_config(task, small + overrides)
        seen.add(tuple(overrides))
        model = build(cfg, classes)
        assert tuple(model.output.shape) == (None, classes)
        assert cfg.learning_rate != base.learning_rate
    assert len(seen) == draws


def test_the_space_follows_the_tasks_model_and_data():
    """Architecture choices apply to the family's own model, recipe choices to every task of the family."""
    resnet18 = resolve_config("caltech101_resnet18")
    overrides = TaskHyperModel(space_for(resnet18), resnet18).overrides(keras_tuner.HyperParameters())
    assert [o.split("=")[0] for o in overrides] == ["augment", "label_smoothing", "learning_rate"]
    features = resolve_config("faces_alexnet_features")
    overrides = TaskHyperModel(space_for(features), features).overrides(keras_tuner.HyperParameters())
    assert [o.split("=")[0] for o in overrides] == ["model.hidden", "model.dropout", "model.l2",
                                                    "label_smoothing", "learning_rate"]
    assert {"artists", "cifar10_vgg", "caltech101_lenet", "clipart_resnet50_scratch", "faces_alexnet_finetune"} \
        <= set(tunable_tasks())
    assert set(SPACES) == {"artists_simple_cnn", "cifar10_convnet", "caltech101_net", "clipart_clipnet", "faces_mlp"}
    assert all(TASKS[space.hand_recipe] for space in SPACES.values())


# Each registered search winner and the command line its search printed (docs/reports/<family>.md).
SEARCH_WINNERS = {
    "artists_searched": ("artists_tuned", [
        "model.filters=[16]", "model.kernel_size=[3]", "model.strides=[2]", "model.padding=valid",
        "model.pooling=true", "model.pool_type=max", "model.pool_size=3", "model.pool_strides=2", "model.dense=[64]",
        "model.dropout=0.3", "model.dropout_placement=[conv,flatten,dense]", "model.batch_norm=false",
        "optimizer=rmsprop", "learning_rate=0.000647522", "weight_decay=0.01",
        "augment=[flip,rotate:15,translate:0.1,zoom:0.15,jitter:0.15]", "epochs=150"]),
    "faces_mlp_searched": ("faces_mlp", [
        "model.hidden=[100]", "model.dropout=0.3", "model.l2=0", "preprocess=zca", "zca_epsilon=1.957",
        "augment=[flip]", "label_smoothing=0.1", "learning_rate=0.00189446", "epochs=100"]),
}


@pytest.mark.parametrize("task", sorted(SEARCH_WINNERS))
def test_a_registered_search_winner_trains_exactly_as_its_command_line(task):
    base, overrides = SEARCH_WINNERS[task]
    registered, searched = resolve_config(task), resolve_config(base, overrides)
    assert registered.replace(task=base).to_dict() | {"model_args": None} == searched.to_dict() | {"model_args": None}
    built = [build(cfg, 7) for cfg in (registered, searched)]
    assert built[0].count_params() == built[1].count_params()
    assert [layer.get_config() | {"name": None} for layer in built[0].layers] == \
        [layer.get_config() | {"name": None} for layer in built[1].layers]


def test_a_task_without_a_space_is_refused_with_the_list():
    with pytest.raises(ValueError, match=r"task 'folder' .* no search space; tasks that have one: artists, "):
        space_for(resolve_config("folder"))


# ---------------------------------------------------------------- kerascnn tune end to end

def tune_args(data, out, **changes):
    args = dict(task="artists", tuner="random", max_epochs=2, max_trials=2, out=str(out), name="t", top_k=2,
                retrain_seeds=2, baseline="artists", data_dir=str(data),
                overrides=["batch_size=16", "tensorboard=false"])
    return {**args, **changes}


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    from tuning.search import run_search

    tmp_path = tmp_path_factory.mktemp("search")
    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    lines = []
    result = run_search(**tune_args(data, tmp_path / "tuning", split_seeds=[1], progress=lines.append))
    return tmp_path, data, result, lines


def test_trials_are_train_runs_and_the_winner_is_retrained_on_fresh_seeds(search):
    from kerascnn import rundir

    tmp_path, data, result, lines = search
    project = tmp_path / "tuning" / "t"
    assert result["trials_finished"] == 2 and len(result["candidates"]) == 2
    for candidate in result["candidates"]:
        record = json.loads((project / "trials" / f"trial_{candidate['trial']}.json").read_text())
        run = rundir.load_config(project / "trials" / f"trial_{candidate['trial']}")
        assert run.task == "artists" and run.epochs == 2 and run.seed == 0 and run.batch_size == 16
        assert record["overrides"] == ["batch_size=16", "tensorboard=false", *candidate["overrides"], "epochs=2"]
        assert len(candidate["retrain_scores"]) == 2
        assert candidate["optimism"] == pytest.approx(candidate["search_score"] - candidate["retrain_mean"])
        for seed in (1, 2):  # fresh seeds: the search trained on seed 0
            retrain = project / "retrain" / f"trial_{candidate['trial']}" / f"seed{seed}"
            assert rundir.load_config(retrain).seed == seed
            assert (retrain / "best.keras").exists()  # the retrains are the models to evaluate and export
        trial_dir = project / "trials" / f"trial_{candidate['trial']}"
        assert (trial_dir / "metrics.json").exists() and (trial_dir / "history.csv").exists()
        assert not any((trial_dir / name).exists() for name in rundir.MODEL_FILES)  # hundreds of trials, no models
    assert result["seeds"] == [1, 2]
    assert result["winner"]["retrain_mean"] == max(c["retrain_mean"] for c in result["candidates"])
    assert result["baseline"]["task"] == "artists" and len(result["baseline"]["scores"]) == 2
    gap = result["winner"]["retrain_mean"] - result["baseline"]["mean"]
    spread = result["winner"]["retrain_sd"] + result["baseline"]["sd"]
    assert result["verdict"] == ("beats" if gap > spread else "within noise" if gap > 0 else "does not beat")
    assert result["beats_baseline"] == (result["verdict"] == "beats")
    assert [s["split_seed"] for s in result["split_seeds"]] == [1]
    assert rundir.load_config(project / "splits" / "split1" / "winner" / "seed1").split_seed == 1
    assert (project / "candidates.md").read_text().startswith("| rank | trial | epochs | search_score | retrain |")
    assert json.loads((project / "summary.json").read_text())["command"] == result["command"]
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert len(trial_lines) == 2 and all(", best " in line and " min" in line for line in trial_lines)


def test_the_winner_and_the_hand_recipe_are_scored_on_test_only_where_there_is_a_test_split(search, tmp_path):
    """Test accuracy is scored after the choice, from each seed's best checkpoint; artists has no test split."""
    from kerascnn.evaluate import evaluate_run
    from kerascnn.experiments.runner import train_variant
    from kerascnn.tasks import resolve_config
    from test_cifar10 import TINY_CONVNET, write_npz
    from tuning.search import _test_scores

    search_dir, _, result, _ = search
    assert "test" not in result
    assert _test_scores(search_dir / "tuning" / "t" / "baseline" / "artists", [1, 2]) is None
    write_npz(tmp_path / "c.npz", n_train=40, n_more=0, n_test=20)
    cfg = resolve_config("cifar10", TINY_CONVNET + ["epochs=1", "seed=1"], data_dir=str(tmp_path / "c.npz"))
    train_variant(cfg, tmp_path / "runs" / "seed1", quiet=True)
    scores = _test_scores(tmp_path / "runs", [1])
    assert scores == [evaluate_run(tmp_path / "runs" / "seed1", split="test", checkpoint="best")["accuracy"]]
    assert 0.0 <= scores[0] <= 1.0


def test_tied_trials_rank_by_id_whatever_order_the_oracle_lists_them():
    from types import SimpleNamespace

    from tuning.search import finished_configurations

    def trial(trial_id, score, lr):
        return SimpleNamespace(trial_id=trial_id, score=score, hyperparameters=SimpleNamespace(values={"lr": lr}))

    tuner = SimpleNamespace(spec={"max_epochs": 2}, searched=lambda hp: [f"learning_rate={hp.values['lr']}"],
                            oracle=SimpleNamespace(trials={"2": trial("2", 1.0, 3), "1": trial("1", 1.0, 2),
                                                           "0": trial("0", 0.5, 1)}))
    assert [c["trial"] for c in finished_configurations(tuner)] == ["1", "2", "0"]


def test_the_winners_command_reproduces_its_trial(search):
    """A trial is its --set list: training it again with the same seed and epochs gives the same score."""
    from kerascnn.train import train

    tmp_path, data, result, _ = search
    winner = result["winner"]
    cfg = resolve_config("artists", ["batch_size=16", "tensorboard=false", *winner["overrides"], "epochs=2"],
                         data_dir=str(data))
    metrics = train(cfg, run_dir=tmp_path / "again", quiet=True)
    assert metrics["best"]["val_accuracy"] == pytest.approx(winner["search_score"], abs=1e-6)


def test_every_trial_has_an_hparams_record(search):
    tmp_path, _, result, _ = search
    project = tmp_path / "tuning" / "t"
    records = sorted((project / "tensorboard").iterdir())
    assert [p.name for p in records] == sorted(f"trial_{c['trial']}" for c in result["candidates"])
    for candidate in result["candidates"]:
        record = hparams_of(project / "tensorboard" / f"trial_{candidate['trial']}")
        assert record["epochs"] == 2
        assert f"learning_rate={record['learning_rate']:.6g}" in candidate["overrides"]


def test_a_finished_search_resumes_without_training_and_the_cli_prints_the_table(search, capsys):
    from kerascnn.cli import main

    tmp_path, data, result, _ = search
    project = tmp_path / "tuning" / "t"
    before = sorted(p.stat().st_mtime for p in project.rglob("metrics.json"))
    assert main(["tune", "--task", "artists", "--tuner", "random", "--max-epochs", "2", "--max-trials", "2",
                 "--out", str(tmp_path / "tuning"), "--name", "t", "--top-k", "2", "--retrain-seeds", "2",
                 "--split-seeds", "1", "--baseline", "artists", "--data-dir", str(data),
                 "--set", "batch_size=16", "tensorboard=false", "--json"]) == 0
    assert sorted(p.stat().st_mtime for p in project.rglob("metrics.json")) == before
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["candidates"] == result["candidates"]
    text = payload["text"].splitlines()
    assert text[0].startswith("2 trials finished (random, ") and "on seeds 1, 2" in text[0]
    assert text[1].split() == ["rank", "trial", "epochs", "search_score", "retrain", "optimism", "overrides"]
    assert any(line.startswith("winner: trial ") and "hand recipe artists on the same seeds" in line for line in text)
    assert text[-1].endswith(result["command"])


def test_the_printed_summary_gives_the_test_check_where_the_search_made_one(search):
    """The test split's scores are printed with their verdict, after the choice, before the winner's command."""
    from kerascnn.cli import tune_summary

    _, _, result, _ = search
    assert "test split" not in tune_summary(result, "random")
    test = {"winner_mean": 0.8228, "winner_sd": 0.0094, "baseline_mean": 0.8129, "baseline_sd": 0.0021,
            "verdict": "within noise"}
    lines = tune_summary({**result, "test": test}, "random").splitlines()
    assert lines[-2] == ("on the test split, scored after the choice and never used for it: winner 0.8228 ± 0.0094, "
                         "hand recipe 0.8129 ± 0.0021 (within noise)")
    assert lines[-1].endswith(result["command"])


def test_the_winner_beats_the_hand_recipe_only_beyond_the_seeds_spread():
    from tuning.candidates import verdict

    assert verdict(0.7253, 0.0110, 0.7143, 0.0110) == "within noise"  # ahead by 1.1 points, spread 2.2
    assert verdict(0.7600, 0.0100, 0.7143, 0.0110) == "beats"
    assert verdict(0.7100, 0.0100, 0.7143, 0.0110) == "does not beat"
    assert verdict(0.72, None, 0.71, None) == "beats"  # one seed: no spread to go by



def test_the_split_check_pairs_the_two_on_each_split():
    """On the same splits the winner can be ahead on every one while the two means' spreads overlap: the
    faces search's split check, 0.8283 ± 0.0279 against 0.8106 ± 0.0310."""
    from tuning.candidates import split_check_words

    faces = [{"winner": 0.8598, "baseline": 0.8447}, {"winner": 0.8182, "baseline": 0.8030},
             {"winner": 0.8068, "baseline": 0.7841}]
    assert split_check_words(faces) == "ahead on 3 of 3, by +0.0177 ± 0.0044 split for split (a finding)"
    mixed = [{"winner": 0.86, "baseline": 0.84}, {"winner": 0.80, "baseline": 0.81}]
    assert split_check_words(mixed) == "ahead on 1 of 2, by +0.0050 ± 0.0212 split for split (not beyond the spread)"
    assert split_check_words(mixed[1:]) == "ahead on 0 of 1, by -0.0100 (one split, no verdict)"

def test_hyperband_budgets_become_the_trials_epochs(tmp_path):
    from kerascnn import rundir
    from tuning.search import run_search

    data = write_image_folder(tmp_path / "data", classes=3, per_class=6, size=50)
    result = run_search(**tune_args(data, tmp_path / "tuning", tuner="hyperband", max_epochs=3, time_budget=0.05,
                                    top_k=1, retrain_seeds=1, keep_trial_models=True,
                                    overrides=["batch_size=16", "tensorboard=false", "warmup_epochs=2", "epochs=6"]))
    trials = tmp_path / "tuning" / "t" / "trials"
    for record in trials.glob("trial_*.json"):
        record = json.loads(record.read_text())
        cfg = rundir.load_config(record["run_dir"])
        assert rundir.load_model(record["run_dir"]).count_params() > 0  # kept on request
        assert cfg.epochs == record["epochs"] <= 3
        assert cfg.warmup_epochs == min(record["epochs"] - 1, round(2 * record["epochs"] / 6))
    assert result["max_epochs"] == 3
    # The same command again: the budget is spent, so no new trial starts, and the search time adds up.
    records = sorted(p.name for p in trials.glob("trial_*.json"))
    again = run_search(**tune_args(data, tmp_path / "tuning", tuner="hyperband", max_epochs=3, time_budget=0.05,
                                   top_k=1, retrain_seeds=1, overrides=["batch_size=16", "tensorboard=false",
                                                                        "warmup_epochs=2", "epochs=6"]))
    assert sorted(p.name for p in trials.glob("trial_*.json")) == records
    assert again["stopped_by_budget"] and again["search_minutes"] >= result["search_minutes"] >= 0.05


def test_bad_arguments_and_foreign_directories_fail_clearly(tmp_path, search):
    from tuning.search import run_search

    _, data, _, _ = search
    for changes, message in [({"max_epochs": 0}, "--max-epochs must be >= 1"),
                             ({"time_budget": -1}, "--time-budget must be a positive"),
                             ({"tuner": "grid"}, "unknown tuner 'grid'; choose one of hyperband, random, bayesian"),
                             ({"task": "folder"}, "no search space")]:
        with pytest.raises(ValueError, match=message):
            run_search(**tune_args(data, tmp_path / "tuning", **changes))
    assert not (tmp_path / "tuning").exists()
    other = tmp_path / "tuning" / "t"
    other.mkdir(parents=True)
    (other / "search.json").write_text(json.dumps({"task": "faces_mlp", "space": "faces_mlp", "tuner": "random",
                                                   "max_epochs": 2, "overrides": []}))
    with pytest.raises(ValueError, match=r"holds another search \(task 'faces_mlp' there, 'artists' here"):
        run_search(**tune_args(data, tmp_path / "tuning"))
    (other / "search.json").unlink()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a search of this tool"):
        run_search(**tune_args(data, tmp_path / "tuning"))
    with pytest.raises(ValueError, match="not a search directory; refusing to overwrite"):
        run_search(**tune_args(data, tmp_path / "tuning", overwrite=True))
    assert (other / "notes.txt").read_text() == "mine"


def test_spent_time_budget_starts_no_trial(tmp_path):
    from tuning.search import run_search

    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    with pytest.raises(ValueError, match="no finished trials"):
        run_search(**tune_args(data, tmp_path / "tuning", time_budget=1e-9, tuner="hyperband"))


def test_a_finished_search_without_a_budget_file_counts_its_summarys_minutes(search, tmp_path):
    """A search finished before budget files existed: the same command with more trials allowed starts none."""
    import shutil

    from tuning.search import BUDGET_FILE, run_search, spent_minutes

    search_dir, data, result, _ = search
    project = tmp_path / "tuning" / "t"
    shutil.copytree(search_dir / "tuning" / "t", project)
    (project / BUDGET_FILE).unlink()
    assert spent_minutes(project) == result["search_minutes"]
    again = run_search(**tune_args(data, tmp_path / "tuning", split_seeds=[1], max_trials=4,
                                   time_budget=result["search_minutes"]))
    assert again["trials_finished"] == 2 and again["winner"]["trial"] == result["winner"]["trial"]



def test_selection_splits_train_every_candidate_on_them_and_choose_by_the_mean_over_splits(search, tmp_path, capsys):
    """A finished search rerun with --select-splits: no new trials or retrains, one run per candidate and split,
    and the winner is the best mean over the search's split (its retrain mean) and the selection splits.
    Resuming prints one line of its own, not KerasTuner's."""
    import shutil

    from kerascnn import rundir
    from kerascnn.cli import tune_summary
    from kerascnn.report import tuning_section
    from tuning.search import run_search

    search_dir, data, result, _ = search
    project = tmp_path / "tuning" / "t"
    shutil.copytree(search_dir / "tuning" / "t", project)
    before = {p: p.stat().st_mtime for p in (project / "retrain").rglob("metrics.json")}
    lines = []
    chosen = run_search(**tune_args(data, tmp_path / "tuning", split_seeds=[1], select_splits=[2, 3],
                                    progress=lines.append))
    assert lines[0] == f"resuming the search in {project}: 2 trials finished"
    assert "Reloading" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime for p in (project / "retrain").rglob("metrics.json")} == before
    assert chosen["trials_finished"] == 2 and chosen["select_splits"] == [2, 3]
    for candidate in chosen["candidates"]:
        assert len(candidate["select_scores"]) == 2
        assert candidate["select_mean"] == pytest.approx((candidate["retrain_mean"] + sum(candidate["select_scores"])) / 3)
        for split, score in zip([2, 3], candidate["select_scores"]):
            run = project / "select" / f"split{split}" / f"trial_{candidate['trial']}" / "seed1"
            assert rundir.load_config(run).split_seed == split
            assert rundir.read_json(run, "metrics.json")["best"]["val_accuracy"] == score
    assert chosen["winner"]["select_mean"] == max(c["select_mean"] for c in chosen["candidates"])
    assert (project / "candidates.md").read_text().startswith(
        "| rank | trial | epochs | search_score | retrain | optimism | over_splits | overrides |")
    assert "winner chosen by the mean over validation splits (over_splits: this split and 2, 3)" in \
        tune_summary(chosen, "random")
    assert "Each was also trained once on validation splits 2, 3" in "\n".join(tuning_section(chosen, "t"))
    for clash, message in [([1], r"clashing: 1 \(a --split-seeds check split\)"),
                           ([0], r"clashing: 0 \(the search's own split\)"), ([2, 2], "clashing: repeats")]:
        with pytest.raises(ValueError, match=message):
            run_search(**tune_args(data, tmp_path / "tuning", split_seeds=[1], select_splits=clash))


# ---------------------------------------------------------------- processes: Ctrl-C and several machines

def kerascnn(args, tmp_path, **env):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERASCNN_DATA": str(tmp_path / "data_home"), **env}
    return subprocess.Popen([sys.executable, "-m", "kerascnn", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ctrl_c_in_a_trial_leaves_a_search_the_same_command_resumes(tmp_path):
    from kerascnn import rundir

    # Long enough that the signal lands inside the trial: an epoch of 12 tiny images takes ~20 ms on a fast
    # machine, so 40 epochs could end between two polls.
    epochs = 150
    data = write_image_folder(tmp_path / "data", classes=3, per_class=6, size=32)
    args = ["tune", "--task", "artists", "--tuner", "random", "--max-trials", "1", "--max-epochs", str(epochs),
            "--top-k", "1", "--retrain-seeds", "1", "--baseline", "artists", "--out", str(tmp_path / "tuning"),
            "--name", "t", "--data-dir", str(data), "--overwrite", "--set", "image_size=32", "batch_size=16",
            "tensorboard=false"]
    proc = kerascnn(args, tmp_path)
    run_dir = tmp_path / "tuning" / "t" / "trials" / "trial_0"
    deadline = time.monotonic() + 120
    while not ((run_dir / "history.csv").exists() and len(rundir.read_history(run_dir)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with: kerascnn tune --task artists" in err and "--overwrite" not in err.split("continue with")[1]
    stopped_at = len(rundir.read_history(run_dir))
    assert stopped_at < epochs
    proc = kerascnn([a for a in args if a != "--overwrite"] + ["--json"], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials_finished"] == 1 and summary["candidates"][0]["trial"] == "0"
    history = rundir.read_history(run_dir)
    assert [int(row["epoch"]) for row in history] == list(range(1, epochs + 1))  # resumed, not restarted


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chief_and_two_workers_share_one_search(tmp_path):
    """KerasTuner's distributed mode on 127.0.0.1: the documented command, three processes."""
    data = write_image_folder(tmp_path / "data", classes=3, per_class=6, size=32)
    args = ["tune", "--task", "artists", "--tuner", "random", "--max-trials", "4", "--max-epochs", "1",
            "--top-k", "1", "--retrain-seeds", "1", "--baseline", "artists", "--out", str(tmp_path / "tuning"),
            "--name", "shared", "--data-dir", str(data), "--json", "--set", "image_size=32", "batch_size=16",
            "tensorboard=false"]
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    chief = kerascnn(args, tmp_path, KERASTUNER_TUNER_ID="chief", **oracle)
    time.sleep(3)
    workers = [kerascnn(args, tmp_path, KERASTUNER_TUNER_ID=f"tuner{k}", **oracle) for k in range(2)]
    try:
        outputs = [p.communicate(timeout=300) for p in (*workers, chief)]
    finally:
        for p in (*workers, chief):
            p.kill()
    for p, (out, err) in zip((*workers, chief), outputs):
        assert p.returncode == 0, err
    assert all(json.loads(out.strip().splitlines()[-1])["worker"] for out, _ in outputs[:2])
    summary = json.loads(outputs[2][0].strip().splitlines()[-1])
    trials = tmp_path / "tuning" / "shared" / "trials"
    records = [json.loads(p.read_text()) for p in sorted(trials.glob("trial_*.json"))]
    assert sorted(r["trial"] for r in records) == ["0", "1", "2", "3"]  # every trial ran, once
    assert {r["tuner_id"] for r in records} == {"tuner0", "tuner1"}
    assert summary["trials_finished"] == 4 and summary["candidates"] and summary["baseline"]["scores"]


def test_ctrl_c_in_a_retrains_last_epoch_stops_before_the_next_retrain(tmp_path, ctrl_c_in_each_runs_last_epoch):
    from kerascnn.interrupt import Interrupted, stop_at_safe_points
    from tuning.search import _train_seeds

    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    with stop_at_safe_points(), pytest.raises(Interrupted, match="stopped before retraining candidate 1, seed 2"):
        _train_seeds("artists", ["epochs=1", "batch_size=16", "tensorboard=false"], [1, 2], str(data),
                     tmp_path / "retrain", None, "retraining candidate 1")
    assert ctrl_c_in_each_runs_last_epoch == [tmp_path / "retrain" / "seed1"]
