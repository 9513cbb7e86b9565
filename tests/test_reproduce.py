"""`kerascnn reproduce`: the plan covers every task and study once, backbones come first, estimates follow the
step benchmark, missing inputs are named, and a run is resumable (finished steps are not trained again)."""
import json

import pytest

from conftest import write_image_folder
from kerascnn.cli import main
from kerascnn.data.faces_alexnet import extractor_weights
from kerascnn.experiments import STUDIES, Study
from kerascnn.reproduce import (CACHE_FORMAT, FAMILIES, RUN_OVERHEAD_S, check_inputs, estimate, estimate_run_seconds, over_budget,
                                plan_steps, run_reproduce, shape_key, step_configs, study_runs)
from kerascnn.tasks import TASKS, resolve_config


def test_the_plan_covers_every_task_and_study_once_with_backbones_first(tmp_path):
    steps = plan_steps(["all"], tmp_path)
    trained = [s.name for s in steps if s.kind == "train"]
    assert sorted(trained) == sorted(t for t in TASKS if t != "folder")
    assert sorted(s.name for s in steps if s.kind == "experiment") == sorted(STUDIES)
    assert [s.name for s in steps if s.kind == "report"] == list(FAMILIES)
    position = {s.name: k for k, s in enumerate(steps)}
    for step in steps:
        spec = TASKS.get(step.name) if step.kind == "train" else STUDIES.get(step.name)
        source = getattr(spec, "pretrained_on", None)
        if source:
            assert position[source] < position[step.name]
            assert any(s.endswith(f"={tmp_path / 'runs' / source}") for s in step.sets)
    for name in ("faces_alexnet_features", "faces.transfer"):  # cached features take their weights elsewhere
        assert next(s for s in steps if s.name == name).sets == [
            f"feature_weights={tmp_path / 'runs' / 'caltech101_alexnet'}"]
    transfer = next(s for s in steps if s.name == "faces.transfer")
    backbone = str(tmp_path / "runs" / "caltech101_alexnet")
    assert [extractor_weights(c) for c in step_configs(transfer)] == [backbone] * 3 + [None] * 3
    assert all(s.repeats == 3 for s in steps if s.name.startswith("artists."))



def test_min_seeds_raises_every_study_to_that_many_seeds_and_keeps_more(tmp_path, capsys):
    own = {s.name: s for s in plan_steps(["all"], tmp_path) if s.kind == "experiment"}
    raised = {s.name: s for s in plan_steps(["all"], tmp_path, min_seeds=2) if s.kind == "experiment"}
    assert {n: s.repeats for n, s in raised.items()} == {n: max(2, STUDIES[n].repeats) for n in own}
    assert raised["cifar10.dropout"].command(tmp_path).startswith(
        f"kerascnn experiment cifar10.dropout --out {tmp_path / 'studies'} --repeats 2 --only p0.0 ")
    assert own["cifar10.dropout"].repeats == 1 and raised["artists.pooling"].repeats == 3
    assert len(study_runs(raised["cifar10.dropout"])) == 2 * len(study_runs(own["cifar10.dropout"]))
    assert raised["cifar10.batchnorm"].reuse == own["cifar10.batchnorm"].reuse  # seed 0 is still the tasks' runs
    with pytest.raises(ValueError, match="--min-seeds must be >= 1, got 0"):
        plan_steps(["all"], tmp_path, min_seeds=0)
    main(["reproduce", "cifar10", "--dry-run", "--min-seeds", "2", "--root", str(tmp_path), "--json"])
    commands = [s["command"] for s in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"]]
    assert next(c for c in commands if " cifar10.dropout " in c) == raised["cifar10.dropout"].command(tmp_path)

def test_one_family_brings_only_the_backbones_it_needs(tmp_path):
    steps = plan_steps(["clipart"], tmp_path)
    assert [s.name for s in steps] == ["caltech101_resnet50", "clipart_resnet50_finetune", "clipart_resnet50_scratch",
                                       "clipart_own", "clipart.ablation", "clipart.transfer", "clipart"]
    assert steps[1].command(tmp_path) == (f"kerascnn train --task clipart_resnet50_finetune --run-dir "
                                          f"{tmp_path / 'runs' / 'clipart_resnet50_finetune'} --set "
                                          f"model.weights={tmp_path / 'runs' / 'caltech101_resnet50'}")
    with pytest.raises(ValueError, match="unknown family paintings; choose from artists, cifar10"):
        plan_steps(["paintings"], tmp_path)


def artists_cache(root, steps, machine):
    """A throughput.json for the artists family: 100 images/s for every shape, measured on ``machine``."""
    cfg = resolve_config("artists")
    (root / "throughput.json").write_text(json.dumps({
        "format": CACHE_FORMAT, "machine": machine,
        "images_per_s": {shape_key(c): 100.0 for s in steps for c in step_configs(s)},
        "sizes": {f"artists|{cfg.val_fraction}": [360, 91, 0]}}))


def test_estimates_follow_the_measured_throughput_and_the_data(tmp_path):
    from kerascnn.benchmark import runtime_info

    steps = plan_steps(["artists"], tmp_path)
    cfg = resolve_config("artists")
    artists_cache(tmp_path, steps, runtime_info())
    estimate(steps, root=tmp_path)
    assert steps[0].estimate_s == pytest.approx(RUN_OVERHEAD_S + cfg.epochs * (360 + 91 / 3) / 100)
    pooling = next(s for s in steps if s.name == "artists.pooling")
    assert pooling.estimate_s == pytest.approx(sum(estimate_run_seconds(c, lambda _: 100.0, (360, 91, 0))
                                                   for c in step_configs(pooling, reused=False)))
    assert len(step_configs(pooling)) == 3 * len(STUDIES["artists.pooling"].variants)
    # Its no_pooling variant at seed 0 is the artists task's default run, trained once, in step 1.
    assert pooling.reuse == {"no_pooling": "artists"}
    assert len(step_configs(pooling, reused=False)) == len(step_configs(pooling)) - 1



def test_a_plan_says_which_task_overruns_a_sitting_and_when_the_course_overruns_a_night(tmp_path):
    steps = plan_steps(["clipart"], tmp_path)
    for step in steps:
        step.estimate_s = 600.0
    assert over_budget(steps) == []
    steps[0].estimate_s = 59 * 60 + 35  # caltech101_resnet50 on a CPU without AVX-512
    steps[4].estimate_s = 10 * 3600  # a study may take longer than a sitting, not than a night
    notes = over_budget(steps)
    assert len(notes) == 2
    assert notes[0].startswith("caltech101_resnet50 is estimated at 0:59:35 here, over the 45 minutes")
    assert notes[1].startswith("the plan totals 11.8 h here, more than a night (10 h): run it a family")

def test_a_frozen_head_phase_and_its_fine_tuning_are_timed_at_their_own_speeds():
    finetune = resolve_config("clipart_resnet50_finetune")  # 3 epochs on a frozen backbone, then 6 on all of it
    speeds = {"frozen": 40.0, "trained": 10.0}

    def images_per_s(cfg):
        return speeds[shape_key(cfg).split("|")[3]]

    assert estimate_run_seconds(finetune, images_per_s, (100, 0, 0)) == RUN_OVERHEAD_S + 3 * 100 / 40 + 6 * 100 / 10
    # Test images count only where the recipe evaluates them every epoch.
    faces = resolve_config("faces_alexnet_finetune")
    assert faces.track_test
    assert estimate_run_seconds(faces, lambda _: 10.0, (100, 30, 60)) == pytest.approx(
        RUN_OVERHEAD_S + faces.epochs * (100 + 90 / 3) / 10)
    assert estimate_run_seconds(resolve_config("artists"), lambda _: 10.0, (100, 30, 60)) == pytest.approx(
        RUN_OVERHEAD_S + resolve_config("artists").epochs * (100 + 30 / 3) / 10)


def test_each_transfer_variant_is_timed_at_the_speed_of_the_backbone_it_trains():
    from kerascnn.experiments.transfer import describe_backbone

    # vgg_transfer freezes its backbone unless told otherwise, resnet50 trains it: the builders' defaults decide.
    study = next(s for s in plan_steps(["cifar10"], ".", min_seeds=1) if s.name == "cifar10.transfer")
    keys = {variant: shape_key(cfg) for variant, seed, cfg in study_runs(study)}
    frozen = "vgg_transfer|32px|batch200|frozen|preprocess=imagenet|augment=flip"
    assert keys == {"frozen": frozen, "fine_tuned": frozen.replace("frozen", "trained"),
                    "scratch": frozen.replace("frozen", "trained")}  # the weights' source costs nothing
    assert shape_key(resolve_config("cifar10_vgg")) == frozen
    resnet = resolve_config("clipart_resnet50_scratch").replace(model_args={})
    assert shape_key(resnet).split("|")[3] == "trained"
    assert describe_backbone(resnet) == "random init, trained"


def test_configs_share_a_step_benchmark_only_where_their_steps_do_the_same_work():
    plain, bn = resolve_config("cifar10"), resolve_config("cifar10_bn")
    assert shape_key(plain) == "convnet|32px|batch200|trained|preprocess=centered"
    assert shape_key(bn) == "convnet|32px|batch200|trained|preprocess=centered|batch_norm=true"
    # Regularisation strength and the dropout rate change no work; a dropout layer, strides and augmentation do.
    assert shape_key(plain.replace(model_args={"l2": 0.0}, seed=3, learning_rate=0.1)) == shape_key(plain)
    dropout = {shape_key(resolve_config("cifar10_bn", [f"model.dropout={p}"])) for p in (0.2, 0.8)}
    assert dropout == {shape_key(bn) + "|dropout=on"}
    assert shape_key(resolve_config("artists", ["model.strides=1"])) != shape_key(resolve_config("artists"))
    assert shape_key(resolve_config("cifar10_bn", ["augment=[flip,crop:4]"])) == shape_key(bn) + "|augment=flip,crop"
    assert shape_key(resolve_config("cifar10_bn", ["augment=[flip,crop:2]"])) == shape_key(bn) + "|augment=flip,crop"


def test_throughputs_of_another_machine_are_measured_again_and_read_as_they_are(tmp_path, monkeypatch):
    import kerascnn.reproduce as reproduce
    from kerascnn.benchmark import runtime_info
    from kerascnn.machine import machine_line

    here = runtime_info()
    steps = plan_steps(["artists"], tmp_path)
    # Measured on another machine, or on one the file does not name: the plan measures again, here.
    for elsewhere in ({**here, "vector": "SSE4.2", "cores": 64}, None):
        artists_cache(tmp_path, steps, elsewhere)
        read = estimate(plan_steps(["artists"], tmp_path), root=tmp_path, measure=False)
        assert read[0].estimate_s == pytest.approx(RUN_OVERHEAD_S + 50 * (360 + 91 / 3) / 100)  # what the file says
        measured, lines = [], []

        def measure(cfg, cache, images=None):
            if shape_key(cfg) not in cache:
                measured.append(shape_key(cfg))
            return cache.setdefault(shape_key(cfg), 200.0)

        monkeypatch.setattr(reproduce, "measure_throughput", measure)
        again = estimate(plan_steps(["artists"], tmp_path), root=tmp_path, progress=lines.append)
        assert measured and again[0].estimate_s == pytest.approx(RUN_OVERHEAD_S + 50 * (360 + 91 / 3) / 200)
        where = machine_line(elsewhere) if elsewhere else "a machine it does not name"
        assert f"{tmp_path / 'throughput.json'} holds step throughputs measured on {where}: measuring them again " \
               "on this one" in lines
        kept = json.loads((tmp_path / "throughput.json").read_text())
        assert kept["machine"] == here and set(kept["images_per_s"].values()) == {200.0}
    # Measured here: kept.
    measured.clear()
    estimate(plan_steps(["artists"], tmp_path), root=tmp_path)
    assert measured == []


def test_throughputs_kept_in_an_older_format_are_measured_again_and_sizes_kept(tmp_path):
    from kerascnn.reproduce import load_cache

    old = {"images_per_s": {"vgg_transfer|32px|batch200|trained": 506.0}, "sizes": {"cifar10|0.2": [4136, 1034, 1017]}}
    (tmp_path / "throughput.json").write_text(json.dumps(old))
    assert load_cache(tmp_path) == {"format": CACHE_FORMAT, "machine": None, "images_per_s": {}, "sizes": old["sizes"]}
    (tmp_path / "throughput.json").write_text(json.dumps({**old, "format": CACHE_FORMAT}))
    assert load_cache(tmp_path)["images_per_s"] == old["images_per_s"]


def test_estimates_never_need_the_backbone_weights(tmp_path):
    from kerascnn.reproduce import without_weights

    step = next(s for s in plan_steps(["clipart"], tmp_path) if s.name == "clipart_resnet50_finetune")
    cfg = without_weights(step_configs(step)[0])
    assert cfg.model_args["weights"] is None and cfg.model_args["train_backbone"] is False


def test_missing_inputs_are_named_and_the_dry_run_fails(tmp_path, capsys):
    steps = plan_steps(["clipart"], tmp_path)
    problems = check_inputs(steps[1:], root=tmp_path, data_root=tmp_path / "nowhere")
    assert problems[0].startswith(f"dataset clipart: nothing at {tmp_path / 'nowhere' / 'clipart'}")
    assert any("backbone run" in p and "caltech101_resnet50 is missing and no step trains it" in p for p in problems)
    assert main(["reproduce", "faces", "--dry-run", "--root", str(tmp_path), "--data-root", str(tmp_path / "none"),
                 "--json"]) == 1
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [s["name"] for s in payload["steps"]][:2] == ["caltech101_alexnet", "faces_mlp"]
    assert any(p.startswith("dataset faces: nothing at") for p in payload["problems"])


@pytest.fixture
def stand_in_family(tmp_path, monkeypatch):
    """A family of one task and one study (two variants, two seeds) on tiny data: run_reproduce's arguments."""
    import kerascnn.reproduce as reproduce
    from kerascnn.tasks import Task

    write_image_folder(tmp_path / "data" / "artists", classes=3, per_class=8, size=50)
    tiny = resolve_config("artists", ["epochs=2", "batch_size=16", "tensorboard=false", "image_size=32"])
    monkeypatch.setitem(TASKS, "tiny_artists", Task("tiny_artists", "a stand-in", tiny.replace(task="tiny_artists")))
    monkeypatch.setitem(STUDIES, "artists.tiny", Study("artists.tiny", "tiny_artists", "stand-in",
                                                       [("a", []), ("b", ["model.dropout=0.5"])], repeats=2))
    monkeypatch.setattr(reproduce, "family_tasks", lambda family: ["tiny_artists"])
    monkeypatch.setattr(reproduce, "family_studies", lambda family: ["artists.tiny"])
    return dict(families=["artists"], root=tmp_path / "out", data_root=tmp_path / "data")


def test_a_reproduction_runs_every_step_then_skips_them(tmp_path, monkeypatch, stand_in_family):
    """The stand-in family: trained, reported, and not trained again."""
    import kerascnn.train

    lines = []
    args = {**stand_in_family, "progress": lines.append}
    before = estimate(plan_steps(["artists"], args["root"]), root=args["root"], data_root=args["data_root"])
    assert all(s.left_s == s.estimate_s > 0 for s in before)
    results = run_reproduce(**args)
    assert [r["name"] for r in results] == ["tiny_artists", "artists.tiny", "artists"]
    assert (tmp_path / "out" / "runs" / "tiny_artists" / "metrics.json").exists()
    assert sorted(p.parent.name + "/" + p.name for p in (tmp_path / "out" / "studies" / "artists.tiny" / "runs")
                  .glob("*/seed*")) == ["a/seed0", "a/seed1", "b/seed0", "b/seed1"]
    # Variant a at seed 0 has the task's recipe: the study links the task's run instead of training it again.
    linked = tmp_path / "out" / "studies" / "artists.tiny" / "runs" / "a" / "seed0"
    assert linked.is_symlink() and linked.resolve() == (tmp_path / "out" / "runs" / "tiny_artists").resolve()
    assert not (tmp_path / "out" / "studies" / "artists.tiny" / "runs" / "b" / "seed0").is_symlink()
    assert (tmp_path / "out" / "reports" / "artists.md").exists()
    after = estimate(plan_steps(["artists"], args["root"]), root=args["root"], data_root=args["data_root"])
    assert [s.left_s for s in after] == [0.0, 0.0, 60.0] and [s.estimate_s for s in after] == [
        s.estimate_s for s in before]
    # What each step measured: the training time of its runs, the run step 1 made left out of the study's.
    metrics = json.loads((tmp_path / "out" / "runs" / "tiny_artists" / "metrics.json").read_text())
    assert (after[0].finished, after[0].runs, after[0].measured_s) == (1, 1, metrics["train_seconds"])
    assert (after[1].finished, after[1].runs) == (3, 3) and before[1].finished == before[1].measured_s == 0
    report = (tmp_path / "out" / "reports" / "artists.md").read_text()
    time_table = report.split("## Time on this machine")[1].split("##")[0]
    from kerascnn.benchmark import runtime_info
    from kerascnn.machine import machine_line

    assert f"throughput.json`, measured on {machine_line(runtime_info())});" in time_table
    assert "| train tiny_artists | 1 | " in time_table and "| experiment artists.tiny | 3 | " in time_table
    # Without measuring, a root with no throughput.json gives no estimates, only what was measured.
    unmeasured = estimate(plan_steps(["artists"], args["root"]), root=tmp_path / "empty", measure=False)
    assert [s.estimate_s for s in unmeasured[:2]] == [None, None]
    assert not (tmp_path / "empty" / "throughput.json").exists()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps[0].startswith("step 1 of 3: kerascnn train --task tiny_artists") and "left)" in steps[0]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished step was trained again")

    monkeypatch.setattr(kerascnn.train, "train", no_training)
    assert [r["name"] for r in run_reproduce(**args)] == ["tiny_artists", "artists.tiny", "artists"]


def test_ctrl_c_in_a_steps_last_epoch_stops_before_the_next_step(tmp_path, stand_in_family,
                                                                ctrl_c_in_each_runs_last_epoch):
    from kerascnn.interrupt import Interrupted

    with pytest.raises(Interrupted, match=r"stopped before step 2 of 3 \(experiment artists.tiny\)"):
        run_reproduce(**stand_in_family)
    assert len(ctrl_c_in_each_runs_last_epoch) == 1
    assert not (tmp_path / "out" / "studies" / "artists.tiny" / "runs").exists()
