"""The evaluation protocol: metrics, compatibility checks, results."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
from helpers import without_timing

from datadam import data, distill
from datadam.errors import ConfigError, UnknownNameError
from datadam.evaluate import (
    EvaluationResult,
    TrainConfig,
    binary_auc,
    compare_results,
    evaluate,
    evaluate_full_data,
    merge_results,
)
from datadam.synthetic import SyntheticSet


def test_binary_auc_matches_definition():
    assert binary_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert binary_auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == 0.5
    assert binary_auc(torch.tensor([0.2, 0.9]), torch.tensor([0, 1])) == 1.0


def test_evaluate_reports_every_run_and_settings(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    result = evaluate(syn, test, ["convnet3", "alexnet"], runs=2, train=TrainConfig(epochs=2),
                      progress=False, device="cpu")
    assert set(result.runs) == {"convnet3", "alexnet"} and len(result.runs["convnet3"]) == 2
    run = result.runs["convnet3"][0]
    assert 0 <= run["accuracy"] <= 1 and len(run["per_class_accuracy"]) == 10
    assert run["train_flops"] > 0
    s = result.summary["convnet3"]
    accs = torch.tensor([r["accuracy"] for r in result.runs["convnet3"]], dtype=torch.float64)
    assert s["accuracy_mean"] == pytest.approx(float(accs.mean()))
    assert result.settings["runs"] == 2 and result.settings["train"]["epochs"] == 2
    assert result.settings["synthetic"]["method"] == "random"
    # reproducible: the same seed trains the same networks
    again = evaluate(syn, test, ["convnet3"], runs=2, train=TrainConfig(epochs=2), progress=False)
    assert [r["accuracy"] for r in again.runs["convnet3"]] == [r["accuracy"] for r in result.runs["convnet3"]]


def test_a_coreset_file_from_before_it_recorded_its_feature_network_merges(mnist_idx_root):
    import copy

    from datadam.records import migrate_settings

    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "herding", ipc=1, progress=False)
    parts = [evaluate(syn, test, ["convnet3"], runs=1, train=TrainConfig(epochs=1), seed=seed, progress=False)
             for seed in (0, 1)]
    # the first written as before (record version 1): the config said BatchNorm, the
    # network had instance norm
    written = copy.deepcopy(parts[0].to_dict())
    del written["schema"]
    written["settings"]["synthetic"]["config"]["model_options"]["net_norm"] = "batchnorm"
    old = EvaluationResult.from_dict(written)
    assert merge_results([old, parts[1]]).settings["runs"] == 2
    # DataDAM keeps the norm it was given: there it is another recipe
    given = {"model_options": {"net_norm": "batchnorm"}, "model_choices": {}}
    assert migrate_settings(given, "datadam")["model_options"] == given["model_options"]
    assert migrate_settings(given, "herding")["model_options"] == {"net_norm": "instancenorm"}


def test_evaluations_run_apart_merge_into_one_result(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    quick = TrainConfig(epochs=2)
    parts = [evaluate(syn, test, ["convnet3"], runs=runs, train=quick, seed=seed, progress=False)
             for seed, runs in ((0, 2), (5, 1))]
    merged = merge_results(parts)
    records = merged.runs["convnet3"]
    assert [(r["seed"], r["run"]) for r in records] == [(0, 0), (0, 1), (5, 0)]
    assert [r["accuracy"] for r in records] == [r["accuracy"] for p in parts for r in p.runs["convnet3"]]
    accs = torch.tensor([r["accuracy"] for r in records], dtype=torch.float64)
    assert merged.summary["convnet3"]["accuracy_mean"] == pytest.approx(float(accs.mean()))
    assert merged.summary["convnet3"]["accuracy_std"] == pytest.approx(float(accs.std(correction=0)))
    assert merged.settings["runs"] == 3 and merged.settings["seed"] == [0, 5]
    assert [m["seed"] for m in merged.settings["merged_from"]] == [0, 5]
    # a merged result is read back and merged again like any other
    again = merge_results([EvaluationResult.from_dict(merged.to_dict())])
    assert again.summary == merged.summary

    with pytest.raises(ConfigError, match="seed 0 is in two"):
        merge_results([parts[0], parts[0]])
    longer = evaluate(syn, test, ["convnet3"], runs=1, train=TrainConfig(epochs=3), seed=9, progress=False)
    with pytest.raises(ConfigError, match=r"differ in 'train.epochs' \(2 vs 3\)"):
        merge_results([parts[0], longer])
    other_set = evaluate(distill(train, "random", ipc=1, progress=False), test, ["convnet3"], runs=1,
                         train=quick, seed=9, progress=False)
    with pytest.raises(ConfigError, match=r"differ in 'synthetic.config.ipc' \(2 vs 1\)"):
        merge_results([parts[0], other_set])
    with pytest.raises(ConfigError, match="no evaluation results"):
        merge_results([])
    (tmp_path / "x.json").write_text('{"runs": []}')
    with pytest.raises(ConfigError, match="x.json: not an evaluation result"):
        EvaluationResult.load(tmp_path / "x.json")


def test_an_evaluation_names_the_very_set_it_measured(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    digest = syn.sha256()
    assert len(digest) == 64 and SyntheticSet.load(syn.save(tmp_path / "s.safetensors")).sha256() == digest
    assert SyntheticSet(syn.images, syn.labels, syn.classes, syn.mean, syn.std, {}).sha256() == digest
    nudged = syn.images.clone()
    nudged[0, 0, 0, 0] += 1e-6
    twin = SyntheticSet(nudged, syn.labels, syn.classes, syn.mean, syn.std, dict(syn.metadata))
    assert twin.sha256() != digest  # same metadata, another set

    quick = TrainConfig(epochs=1)
    part = evaluate(syn, test, ["convnet3"], runs=1, train=quick, seed=0, progress=False)
    assert part.settings["synthetic"]["sha256"] == digest
    of_twin = evaluate(twin, test, ["convnet3"], runs=1, train=quick, seed=1, progress=False)
    with pytest.raises(ConfigError, match=r"differ in 'synthetic.sha256'.*one recipe and seed made two"):
        merge_results([part, of_twin])
    with pytest.raises(ConfigError, match="earlier evaluation differs in 'synthetic.sha256'"):
        evaluate(twin, test, ["convnet3"], runs=2, train=quick, seed=0, progress=False, done=part)
    # an evaluation written before sets had a digest still merges, matched on the rest
    older = EvaluationResult.from_dict(of_twin.to_dict())
    del older.settings["synthetic"]["sha256"]
    merged = merge_results([older, part])
    assert merged.settings["synthetic"]["sha256"] == digest and len(merged.runs["convnet3"]) == 2
    twin_again = evaluate(twin, test, ["convnet3"], runs=1, train=quick, seed=2, progress=False)
    with pytest.raises(ConfigError, match="differ in 'synthetic.sha256'"):
        merge_results([older, part, twin_again])  # each alike the older part, not each other
    # replicate distillations: one digest per set, in merged_from
    other_seed = distill(train, "random", ipc=2, seed=1, progress=False)
    replicates = merge_results([part, evaluate(other_seed, test, ["convnet3"], runs=1, train=quick,
                                               progress=False)], replicates=True)
    assert "sha256" not in replicates.settings["synthetic"]
    assert [m["sha256"] for m in replicates.settings["merged_from"]] == [digest, other_seed.sha256()]


def test_evaluate_goes_on_from_an_earlier_evaluation(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    quick = TrainConfig(epochs=2)

    whole = evaluate(syn, test, ["convnet3"], runs=3, train=quick, progress=False)
    seen = []
    first = evaluate(syn, test, ["convnet3"], runs=1, train=quick, progress=False,
                     on_network=lambda r: seen.append(len(r.runs["convnet3"])))
    assert seen == [1]
    rest = evaluate(syn, test, ["convnet3"], runs=3, train=quick, progress=False, done=first,
                    on_network=lambda r: seen.append(len(r.runs["convnet3"])))
    assert seen == [1, 2, 3]  # the kept network is not trained again
    assert rest.runs["convnet3"][0] == first.runs["convnet3"][0]
    assert without_timing(rest.runs["convnet3"]) == without_timing(whole.runs["convnet3"])
    mean = whole.summary["convnet3"]["accuracy_mean"]
    assert rest.summary["convnet3"]["accuracy_mean"] == pytest.approx(mean)
    with pytest.raises(ConfigError, match="differs in 'seed' \\(0 vs 1\\)"):
        evaluate(syn, test, ["convnet3"], runs=3, train=quick, seed=1, progress=False, done=first)


def test_evaluate_refuses_other_classes_or_shapes(mnist_idx_root, make_folder):
    test = data.load("mnist", mnist_idx_root, split="test")
    other = SyntheticSet(torch.zeros(3, 1, 28, 28), torch.arange(3), ["a", "b", "c"], (0.1,), (0.3,))
    with pytest.raises(ConfigError, match="not the same dataset"):
        evaluate(other, test, runs=1, train=TrainConfig(epochs=1), progress=False)
    shaped = SyntheticSet(torch.zeros(10, 1, 32, 32), torch.arange(10), test.classes, (0.1,), (0.3,))
    with pytest.raises(ConfigError, match="1x32x32"):
        evaluate(shaped, test, runs=1, train=TrainConfig(epochs=1), progress=False)
    ok = SyntheticSet(torch.zeros(10, 1, 28, 28), torch.arange(10), test.classes, (0.1,), (0.3,))
    with pytest.raises(UnknownNameError):
        evaluate(ok, test, ["lenet9"], runs=1, train=TrainConfig(epochs=1), progress=False)


def test_mhist_pipeline_end_to_end_reports_balanced_accuracy_and_auc(mhist_root):
    train = data.load("mhist", mhist_root, image_size=32)
    test = data.load("mhist", mhist_root, split="test", image_size=32)
    syn = distill(train, "datadam", ipc=2, iterations=3, batch_real=4, progress=False, device="cpu")
    assert syn.images.shape == (4, 3, 32, 32)
    assert syn.metadata["config"]["augmentation"] == "natural"
    assert syn.metadata["config"]["task_balance"] == 0.01
    result = evaluate(syn, test, runs=1, train=TrainConfig(epochs=3), progress=False)
    run = result.runs["convnet3"][0]
    assert {"accuracy", "balanced_accuracy", "auc"} <= set(run)


def test_full_data_upper_bound_reports_cost(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    out = evaluate_full_data(train, test, train=TrainConfig(epochs=1, schedule="cosine",
                                                            augmentation="none"), progress=False)
    assert out["train_images"] == 50 and out["train_flops"] > 0 and out["train_seconds"] >= 0
    assert 0 <= out["accuracy"] <= 1


def test_two_sets_compare_network_by_network(mnist_idx_root):
    from scipy import stats

    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    quick = TrainConfig(epochs=2)
    one, two = (distill(train, "random", ipc=ipc, progress=False) for ipc in (1, 3))
    a = evaluate(one, test, ["convnet3"], runs=3, train=quick, progress=False)
    b = evaluate(two, test, ["convnet3"], runs=3, train=quick, progress=False)
    c = compare_results(a, b)["convnet3"]
    acc_a = [r["accuracy"] for r in a.runs["convnet3"]]
    acc_b = [r["accuracy"] for r in b.runs["convnet3"]]
    diffs = torch.tensor(acc_b, dtype=torch.float64) - torch.tensor(acc_a, dtype=torch.float64)
    assert c["pairs"] == 3 and c["unpaired"] == 0
    assert [(n["a"], n["b"]) for n in c["networks"]] == list(zip(acc_a, acc_b))
    assert c["difference_mean"] == pytest.approx(float(diffs.mean()))
    assert c["difference_std"] == pytest.approx(float(diffs.std()))
    # Student's t on the differences, computed here from its definition
    se = float(diffs.std()) / 3 ** 0.5
    t = float(diffs.mean()) / se
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 2))
    half = stats.t.ppf(0.975, 2) * se
    assert c["interval"] == pytest.approx([float(diffs.mean()) - half, float(diffs.mean()) + half])
    assert c["b_ahead"] == int((diffs > 0).sum()) and c["a_ahead"] + c["b_ahead"] + c["ties"] == 3
    # a set against itself: no difference on any network
    same = compare_results(a, a)["convnet3"]
    assert same["ties"] == 3 and same["interval"] == [0.0, 0.0] and same["p_value"] == 1.0

    # networks pair by seed and run, so parts evaluated apart pair once merged
    parts = [evaluate(two, test, ["convnet3"], runs=1, train=quick, seed=s, progress=False) for s in (4, 5)]
    others = [evaluate(one, test, ["convnet3"], runs=1, train=quick, seed=s, progress=False) for s in (5, 6)]
    apart = compare_results(merge_results(others), merge_results(parts))["convnet3"]
    assert apart["pairs"] == 1 and apart["unpaired"] == 2 and apart["interval"] is None
    assert apart["networks"] == [{"seed": 5, "run": 0, "a": others[0].runs["convnet3"][0]["accuracy"],
                                  "b": parts[1].runs["convnet3"][0]["accuracy"]}]

    with pytest.raises(ConfigError, match="no network of the first evaluation has a twin"):
        compare_results(a, parts[0])
    longer = evaluate(two, test, ["convnet3"], runs=1, train=TrainConfig(epochs=3), progress=False)
    with pytest.raises(ConfigError, match=r"differ in 'train.epochs' \(2 vs 3\)"):
        compare_results(a, longer)
    with pytest.raises(ConfigError, match="unknown metric 'loss'"):
        compare_results(a, b, metric="loss")


def test_one_set_under_two_protocols_compares_the_protocols(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    fp32, bf16 = (evaluate(syn, test, ["convnet3"], runs=3, train=TrainConfig(epochs=4, precision=p),
                           progress=False, device="cpu") for p in ("fp32", "bf16"))
    assert bf16.settings["train"]["precision"] == "bf16" and fp32.settings["train"]["precision"] == "fp32"
    c = compare_results(fp32, bf16)["convnet3"]
    assert c["pairs"] == 3 and c["protocol_differences"] == ["'train.precision' ('fp32' vs 'bf16')"]
    assert compare_results(fp32, fp32)["convnet3"]["protocol_differences"] == []
    # another set under another protocol: the difference could be either's
    other = evaluate(distill(train, "random", ipc=2, seed=1, progress=False), test, ["convnet3"], runs=3,
                     train=TrainConfig(epochs=4, precision="bf16"), progress=False, device="cpu")
    with pytest.raises(ConfigError, match=r"'train.precision' \('fp32' vs 'bf16'\).*only one set"):
        compare_results(fp32, other)


def test_an_evaluation_from_before_the_precision_and_compile_settings_was_fp32_and_eager():
    report = {"runs": {}, "summary": {}, "settings": {"train": {"epochs": 2, "lr": 0.01}}}
    folded = EvaluationResult.from_dict(report).settings["train"]
    assert folded == {"epochs": 2, "lr": 0.01, "precision": "fp32", "compile": False}
    assert report["settings"]["train"] == {"epochs": 2, "lr": 0.01}  # the caller's dict is left alone
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16, not 'fp16'"):
        TrainConfig(precision="fp16")
    # a key holds every field; saves keyed before the fields existed are migrated to match
    # (tests/test_records.py)
    assert TrainConfig().key() == asdict(TrainConfig())
    assert TrainConfig().key()["precision"] == "fp32" and TrainConfig().key()["compile"] is False
    assert TrainConfig(precision="bf16").key()["precision"] == "bf16"


def test_replicate_distillations_merge_and_compare_distillation_by_distillation(mnist_idx_root):
    from scipy import stats

    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    quick = TrainConfig(epochs=2)

    def evaluations(ipc: int, seeds: tuple[int, ...]) -> list[EvaluationResult]:
        return [evaluate(distill(train, "random", ipc=ipc, seed=s, progress=False), test, ["convnet3"],
                         runs=2, train=quick, progress=False) for s in seeds]

    a_parts, b_parts = evaluations(1, (0, 1, 2)), evaluations(3, (0, 1, 2))
    with pytest.raises(ConfigError, match=r"'synthetic.config.seed' \(0 vs 1\).*--replicates"):
        merge_results(a_parts)
    a = merge_results(a_parts, replicates=True)
    records = a.runs["convnet3"]
    assert [(r["distill_seed"], r["seed"], r["run"]) for r in records] == [
        (d, 0, run) for d in (0, 1, 2) for run in (0, 1)]
    assert a.settings["distill_seeds"] == [0, 1, 2] and a.settings["synthetic"]["config"]["seed"] == [0, 1, 2]
    accs = torch.tensor([r["accuracy"] for r in records], dtype=torch.float64)
    assert a.summary["convnet3"]["accuracy_mean"] == pytest.approx(float(accs.mean()))
    with pytest.raises(ConfigError, match="distilled with seed 0 is in two"):
        merge_results([a_parts[0], a_parts[0]], replicates=True)
    with pytest.raises(ConfigError, match=r"'synthetic.config.ipc' \(1 vs 3\)"):
        merge_results([a_parts[0], b_parts[1]], replicates=True)

    b = merge_results(b_parts, replicates=True)
    c = compare_results(a, b)["convnet3"]
    assert c["unit"] == "distillation" and c["units"] == 3 and c["pairs"] == 6 and c["unpaired"] == 0
    # the sample is each distillation's mean over its networks
    means = [[sum(r["accuracy"] for r in p.runs["convnet3"]) / 2 for p in parts]
             for parts in (a_parts, b_parts)]
    assert [(d["distill_seed"], d["a"], d["b"]) for d in c["distillations"]] == [
        (s, pytest.approx(x), pytest.approx(y)) for s, x, y in zip((0, 1, 2), *means)]
    diffs = torch.tensor(means[1], dtype=torch.float64) - torch.tensor(means[0], dtype=torch.float64)
    assert c["difference_mean"] == pytest.approx(float(diffs.mean()))
    assert c["difference_std"] == pytest.approx(float(diffs.std()))
    se = float(diffs.std()) / 3 ** 0.5
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(abs(float(diffs.mean()) / se), 2))
    half = stats.t.ppf(0.975, 2) * se
    assert c["interval"] == pytest.approx([float(diffs.mean()) - half, float(diffs.mean()) + half])
    assert c["a_ahead"] + c["b_ahead"] + c["ties"] == 3
    assert {n["distill_seed"] for n in c["networks"]} == {0, 1, 2}
    # distillations pair by seed: a recipe distilled with seed 0 only pairs once
    once = compare_results(a, merge_results(b_parts[:1], replicates=True))["convnet3"]
    assert once["units"] == 1 and once["pairs"] == 2 and once["unpaired"] == 4 and once["interval"] is None

    with pytest.raises(ConfigError, match="holds 3 distillations, the second one set: compare replicates"):
        compare_results(a, b_parts[0])

    # A file that kept a choice of one value as a choice (as configs did before folding it
    # into the options) drew the very same networks: it is the same recipe as the option
    def recipe(part: EvaluationResult, options: dict, choices: dict) -> EvaluationResult:
        synthetic = part.settings["synthetic"]
        config = {**synthetic["config"], "model_options": options, "model_choices": choices}
        settings = {**part.settings, "synthetic": {**synthetic, "config": config}}
        # read as a file of record version 1 (no schema), as such a file is
        return EvaluationResult.from_dict({"runs": part.runs, "summary": part.summary, "settings": settings})

    average, maximum = ({"net_norm": "batchnorm", "net_pooling": p} for p in ("avgpooling", "maxpooling"))
    older = recipe(a_parts[0], average, {"net_pooling": ["maxpooling"]})
    merged = merge_results([older, recipe(a_parts[1], maximum, {})], replicates=True)
    merged = merged.settings["synthetic"]["config"]
    assert merged["model_options"] == maximum and merged["model_choices"] == {}
    drawn = recipe(a_parts[0], average, {"net_pooling": ["maxpooling", "avgpooling"]})
    with pytest.raises(ConfigError, match="differ in 'synthetic.config.model_options.net_pooling'"):
        merge_results([drawn, recipe(a_parts[1], maximum, {})], replicates=True)


@pytest.fixture
def clock(monkeypatch):
    """evaluate's clock made to move only when training or testing says: train_network
    takes 1 s, train_networks_together 2 s, predict 100 s, whatever they really take."""
    from datadam.evaluate import baseline, runner

    now = [0.0]

    def taking(seconds, real):
        def run(*args, **kwargs):
            out = real(*args, **kwargs)
            now[0] += seconds
            return out
        return run
    for evaluation in (runner, baseline):  # evaluate() and evaluate_full_data()
        monkeypatch.setattr(evaluation, "time", SimpleNamespace(perf_counter=lambda: now[0]))
        for name, seconds in (("train_network", 1.0), ("train_networks_together", 2.0), ("predict", 100.0)):
            if hasattr(evaluation, name):
                monkeypatch.setattr(evaluation, name, taking(seconds, getattr(evaluation, name)))


@pytest.mark.parametrize("backend", ["one at a time", "together", "jobs"])
def test_testing_is_timed_apart_from_training_and_shown_in_the_progress(mnist_idx_root, monkeypatch, capsys,
                                                                          clock, backend):
    from datadam.progress import INTERVAL_VARIABLE

    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=1, progress=False)
    monkeypatch.setenv(INTERVAL_VARIABLE, "0.000001")  # off a terminal: a status line on every step
    capsys.readouterr()
    result = evaluate(syn, test, ["convnet3"], runs=2, train=TrainConfig(epochs=2), progress=None,
                      device="cpu", together=backend == "together", jobs=2 if backend == "jobs" else 1,
                      model_options={"convnet3": {"net_width": 8}})
    runs = result.runs["convnet3"]
    if backend == "jobs":  # the workers train and test with their own functions and clocks
        assert all(r["test_seconds"] > 0 and r["train_seconds"] > 0 for r in runs)
    else:  # a stacked training's 2 s are the two networks' 1 s each
        assert [(r["train_seconds"], r["test_seconds"]) for r in runs] == [(1.0, 100.0)] * 2
    s = result.summary["convnet3"]
    assert s["test_seconds_mean"] == pytest.approx(sum(r["test_seconds"] for r in runs) / 2)
    assert s["train_seconds_mean"] == pytest.approx(sum(r["train_seconds"] for r in runs) / 2)
    # two tasks: the epochs of both networks, and the 2 x 20 test images they scored
    lines = [line.split()[:3] for line in capsys.readouterr().err.splitlines()]
    assert [words for words in lines if words[0] == "test"][-1] == ["test", "convnet3", "40/40"]
    assert [words for words in lines if words[0] == "train"][-1] == ["train", "convnet3", "4/4"]
    assert result.settings["trained_together"] == {"convnet3": backend == "together"}


def test_a_file_from_before_testing_was_timed_apart_reads_and_merges(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=1, progress=False)
    parts = [evaluate(syn, test, ["convnet3"], runs=1, train=TrainConfig(epochs=1), seed=seed, progress=False)
             for seed in (0, 1)]
    old = parts[0].to_dict()
    for record in old["runs"]["convnet3"]:
        del record["test_seconds"]
    del old["summary"]["convnet3"]["test_seconds_mean"]
    older = EvaluationResult.from_dict(old)
    assert "test_seconds_mean" not in merge_results([older]).summary["convnet3"]
    # the mean is over the networks that were timed
    merged = merge_results([older, parts[1]]).summary["convnet3"]
    assert merged["test_seconds_mean"] == parts[1].runs["convnet3"][0]["test_seconds"]


def test_full_data_times_testing_apart(mnist_idx_root, clock):
    train, test = (data.load("mnist", mnist_idx_root, split=split) for split in ("train", "test"))
    out = evaluate_full_data(train, test, train=TrainConfig(epochs=1, schedule="cosine", augmentation="none"),
                             progress=False)
    assert (out["train_seconds"], out["test_seconds"]) == (1.0, 100.0)
