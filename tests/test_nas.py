"""datadam.apps.nas: the NNI model space, the proxy evaluator, search and the proxy study."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from torch import nn

from datadam import data, distill
from datadam.apps.nas.architecture import SearchSpace, arch_key
from datadam.apps.nas.architecture_search import SearchResult, search
from datadam.apps.nas.full_data_cache import CACHE_FORMAT, FullDataCache
from datadam.apps.nas.proxy import (
    ValidationOverlapWarning,
    distill_proxy,
    make_proxy,
    note_validation_overlap,
    split_validation,
    validation_overlap,
)
from datadam.apps.nas.rank_study import StudyResult, study
from datadam.apps.nas.ranking import rank_quality
from datadam.apps.nas.space import ConvNetSpace, space_size
from datadam.apps.nas.study_report import markdown_table, plot_scatter
from datadam.apps.nas.taskdata import FORMAT, load_data, save_data
from datadam.data import as_image_dataset
from datadam.errors import ConfigError, DataFormatError, UnknownNameError
from datadam.records import RecordVersionError
from datadam.synthetic import SyntheticSet
from datadam.training import TrainConfig

TINY = SearchSpace(depth=(1, 2), width=(4, 8), norm=("batchnorm",), activation=("relu",),
                   pooling=("avgpooling",))
FAST = {"epochs": 2, "batch": 64}

_NORM_TYPES = {"batchnorm": nn.BatchNorm2d, "instancenorm": nn.GroupNorm, "groupnorm": nn.GroupNorm,
               "layernorm": nn.LayerNorm, "none": nn.Identity}
_ACT_TYPES = {"relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "leakyrelu": nn.LeakyReLU}
_POOL_TYPES = {"avgpooling": nn.AvgPool2d, "maxpooling": nn.MaxPool2d, "none": nn.Identity}


def test_space_samples_a_valid_network_of_every_choice():
    space = SearchSpace(norm=("batchnorm", "instancenorm", "groupnorm", "layernorm", "none"),
                        activation=("relu", "gelu", "sigmoid", "leakyrelu"),
                        pooling=("avgpooling", "maxpooling", "none"))
    model_space = ConvNetSpace(1, 10, (28, 28), space.to_dict())
    assert space_size(model_space) == space.size == 3 * 3 * 5 * 4 * 3
    assert set(model_space.simplify()) == {"depth", "width", "norm", "activation", "pooling"}
    x = torch.randn(2, 1, 28, 28)
    # every value of every choice, each against every value of the others once (the
    # 540 combinations cost minutes of rebuilding for little more assurance)
    base = {k: v[0] for k, v in space.choices().items()}
    archs = [base | {name: value} for name, values in space.choices().items() for value in values]
    archs += [dict(zip(space.choices(), values)) for values in
              zip(*(reversed(v * 5) for v in space.choices().values()))]
    for arch in archs:
        model = model_space.freeze(arch)
        assert model.arch == arch
        blocks = model.net.blocks
        assert len(blocks) == arch["depth"]
        conv, norm, act = blocks[-1]
        assert conv.out_channels == arch["width"]
        assert type(norm) is _NORM_TYPES[arch["norm"]] and isinstance(act, _ACT_TYPES[arch["activation"]])
        assert type(model.net.pools[0]) is _POOL_TYPES[arch["pooling"]]
        out = model(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all(), arch_key(arch)


def test_space_rejects_bad_choices():
    with pytest.raises(ConfigError, match="norm choices"):
        SearchSpace(norm=("batchnorm", "weightnorm"))
    with pytest.raises(ConfigError, match="divisible by 4"):
        SearchSpace(width=(6,), norm=("groupnorm",))
    with pytest.raises(ConfigError, match="at least 16 px"):
        SearchSpace(depth=(4,)).check_image_size((8, 8))
    with pytest.raises(ConfigError, match="repeat"):
        SearchSpace(depth=(2, 2))


def test_random_proxy_is_balanced_and_disjoint_from_validation(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    split = split_validation(train, 10, seed=3)
    proxy = make_proxy("random", split.train, 2, seed=4)
    assert torch.bincount(proxy.labels, minlength=10).tolist() == [2] * 10
    val = {bytes(x.numpy()) for x in split.validation_images}
    assert not any(bytes(x.numpy()) in val for x in proxy.images)
    assert len(split.train) == 40 and len(split.validation_labels) == 10
    again = split_validation(train, 10, seed=3)
    assert torch.equal(again.validation_images, split.validation_images)


def test_distill_proxy_never_sees_validation_images_and_draws_networks_from_the_space(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    split = split_validation(train, 10, seed=2)
    # zero iterations: the proxy is its real initialisation, drawn from the training pool only
    start = distill_proxy("mnist", ipc=1, iterations=0, space=TINY, validation=10, seed=2,
                          root=mnist_idx_root, progress=False)
    pool, held = split.train.normalized(), split.validation_images
    for image in start.images:
        assert (pool - image).abs().flatten(1).amax(1).min() < 1e-5
        assert (held - image).abs().flatten(1).amax(1).min() > 1e-3
    syn = distill_proxy("mnist", ipc=1, iterations=2, space=TINY, networks="space", validation=10, seed=2,
                        root=mnist_idx_root, progress=False, batch_real=4)
    meta = syn.metadata
    assert meta["dataset_images"] == len(train) - 10 and meta["iterations_done"] == 2
    assert meta["nas_split"]["validation_images"] == 10 and meta["nas_split"]["split_seed"] == 2
    assert meta["nas_split"]["networks"] == "space"
    assert meta["config"]["model"] == "convnet1,convnet2"
    assert meta["config"]["model_choices"]["net_width"] == [4, 8]
    published = distill_proxy("mnist", ipc=1, iterations=1, space=TINY, validation=10,
                              root=mnist_idx_root, progress=False, batch_real=4)
    assert published.metadata["config"]["model"] == "convnet3"
    assert published.metadata["config"]["model_choices"] == {}
    with pytest.raises(ConfigError, match="networks must be"):
        distill_proxy("mnist", networks="resnet", root=mnist_idx_root)


def test_a_proxy_that_has_seen_validation_images_is_flagged(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    split = split_validation(train, 10, seed=2)
    own, whole = tmp_path / "own.safetensors", tmp_path / "whole.safetensors"
    distill_proxy("mnist", ipc=1, iterations=0, validation=10, seed=2, root=mnist_idx_root,
                  progress=False).save(own)
    distill(train, "random", ipc=1, progress=False).save(whole)
    assert validation_overlap(make_proxy(str(own), split.train, 1, 0), split) is None
    other_split = split_validation(train, 10, seed=3)
    assert "condensed for another validation split" in validation_overlap(
        make_proxy(str(own), other_split.train, 1, 0), other_split)
    proxy = make_proxy(str(whole), split.train, 1, 0)
    with pytest.warns(ValidationOverlapWarning, match=f"condensed from {len(train)} training images"):
        note_validation_overlap(proxy, split)
    assert "has seen validation images" in proxy.details["validation_overlap"]
    assert validation_overlap(make_proxy("random", split.train, 1, 0), split) is None


def test_random_draws_are_other_subsets_of_the_same_size(mnist_idx_root):
    split = split_validation(data.load("mnist", mnist_idx_root), 10, seed=3)
    first, same, other = (make_proxy(spec, split.train, 2, seed=4)
                          for spec in ("random", "random:0", "random:1"))
    assert (first.name, same.name, other.name) == ("random", "random", "random:1")
    assert torch.equal(first.images, same.images)
    assert torch.bincount(other.labels, minlength=10).tolist() == [2] * 10
    assert not torch.equal(first.images, other.images)
    with pytest.raises(ConfigError, match="random:K"):
        make_proxy("random:two", split.train, 2, seed=4)


def test_search_in_process_returns_the_best_architecture(mnist_idx_root, tmp_path):
    seen = []
    result = search("mnist", "random", tmp_path / "s", strategy="random", trials=3, space=TINY,
                    train=FAST, validation=10, ipc=1, reports=2, root=mnist_idx_root,
                    on_trial=seen.append)
    assert len(result.trials) == 3 == len(seen)
    keys = [t["key"] for t in result.trials]
    assert len(set(keys)) == 3 and all(TINY.contains(t["arch"]) for t in result.trials)
    assert result.best["accuracy"] == max(t["accuracy"] for t in result.trials)
    assert result.best["accuracy"] == max(t["accuracy"] for t in seen)
    assert all(len(t["intermediate"]) == 1 and len(t["curve"]) == 2 for t in result.trials)
    saved = json.loads((tmp_path / "s" / "search.json").read_text())
    assert saved["best"]["key"] == result.best["key"] and saved["schema"] == 2
    assert SearchResult.load(tmp_path / "s" / "search.json").trials == result.trials
    assert set(saved["settings"]["versions"]) == {"datadam", "torch", "python", "nni"}
    assert saved["settings"]["space_size"] == 4 and saved["settings"]["task"]["train"]["epochs"] == 2
    # NNI's experiment folder and manifest stay inside the output folder
    assert (tmp_path / "s" / "nni" / ".experiment").exists()
    assert (tmp_path / "s" / "nni" / saved["settings"]["experiment_id"]).is_dir()
    # every setting fixed by the seed: the same search gives the same trials
    again = search("mnist", "random", tmp_path / "t", strategy="random", trials=3, space=TINY,
                   train=FAST, validation=10, ipc=1, reports=2, root=mnist_idx_root)
    assert [(t["key"], t["accuracy"]) for t in again.trials] == \
        [(t["key"], t["accuracy"]) for t in result.trials]


def test_grid_search_covers_the_space_and_evolution_runs(mnist_idx_root, tmp_path):
    grid = search("mnist", "random", tmp_path / "g", strategy="grid", trials=None, space=TINY,
                  train={"epochs": 1}, validation=10, ipc=1, reports=1, root=mnist_idx_root)
    assert sorted(t["key"] for t in grid.trials) == sorted(arch_key(a) for a in TINY.architectures())
    evo = search("mnist", "random", tmp_path / "e", strategy="evolution", trials=3, space=TINY,
                 train={"epochs": 1}, validation=10, ipc=1, reports=1, root=mnist_idx_root,
                 population=2, sample_size=1)
    assert len(evo.trials) == 3 and evo.settings["population"] == 2
    with pytest.raises(UnknownNameError, match="unknown strategy 'bayes'"):
        search("mnist", "random", tmp_path / "x", strategy="bayes", trials=2, root=mnist_idx_root)


def test_rank_quality_on_constructed_cases():
    q = rank_quality([1, 2, 3, 4], [1, 3, 2, 4], top_k=2)
    # rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60; tau = (5 - 1) / 6
    assert q["spearman"] == pytest.approx(0.8) and q["kendall"] == pytest.approx(4 / 6)
    assert q["chosen_index"] == 3 and q["chosen_full_accuracy"] == 4 and q["chosen_full_rank"] == 1
    assert q["top_k_overlap"] == 1  # proxy's top 2 {3, 2}, full data's {3, 1}
    rev = rank_quality([0.9, 0.5, 0.1], [0.2, 0.6, 0.95])
    assert rev["spearman"] == pytest.approx(-1) and rev["kendall"] == pytest.approx(-1)
    assert rev["chosen_full_accuracy"] == 0.2 and rev["chosen_full_rank"] == 3
    assert rev["best_full_accuracy"] == 0.95 and rev["top_k"] == 3 and rev["top_k_overlap"] == 3
    flat = rank_quality([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])
    assert flat["spearman"] is None and flat["kendall"] is None  # no ranking at all, not NaN
    with pytest.raises(ConfigError):
        rank_quality([1.0], [1.0])


@pytest.fixture
def tiny_synthetic(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    path = tmp_path / "syn.safetensors"
    distill(train, "random", ipc=1, progress=False, seed=5).save(path)
    return path


def test_study_measures_each_proxy_and_caches_full_data(mnist_idx_root, tiny_synthetic, tmp_path):
    cache = tmp_path / "cache.json"
    kwargs = dict(archs=4, space=TINY, proxy_train=FAST, full_train={"epochs": 1}, validation=10,
                  root=mnist_idx_root, cache=cache)
    with pytest.warns(ValidationOverlapWarning):  # tiny_synthetic was condensed from all 50 images
        result = study("mnist", [str(tiny_synthetic), "random"], **kwargs)
    assert len(result.architectures) == 4 and set(result.proxies) == {"syn.safetensors", "random"}
    assert result.proxies["random"]["details"]["images"] == 10  # as many as the synthetic set
    full = [r["full"]["accuracy"] for r in result.architectures]
    for name, q in result.proxies.items():
        expected = rank_quality([r[name]["accuracy"] for r in result.architectures], full, 5)
        assert {k: q[k] for k in expected} == expected
        assert q["chosen_arch"] == result.architectures[q["chosen_index"]]["key"]
        assert q["seconds_per_arch"] > 0 and q["speedup_vs_full"] > 0
        # the same networks, 40 full-data images x 1 epoch against 10 proxy images x 2 epochs,
        # all scored on the same 10 validation images: training costs 2x more on the full data
        assert 1 < q["flops_speedup_vs_full"] < 2
    assert result.settings["full_data"]["cached_archs"] == 0
    assert len(json.loads(cache.read_text())["entries"]) == 4
    with pytest.warns(ValidationOverlapWarning):
        again = study("mnist", [str(tiny_synthetic), "random"], **kwargs)
    assert again.settings["full_data"]["cached_archs"] == 4
    assert [r["full"] for r in again.architectures] == [r["full"] for r in result.architectures]
    for name, q in result.proxies.items():  # proxies train the same networks again: same ranking
        for key in ("spearman", "kendall", "chosen_arch", "top_k_overlap", "accuracy_mean"):
            assert again.proxies[name][key] == q[key], key


def test_study_summarises_random_draws(mnist_idx_root, tmp_path, monkeypatch):
    result = study("mnist", ["random", "random:1", "random:2"], archs=4, space=TINY, proxy_train=FAST,
                   full_train={"epochs": 1}, validation=10, root=mnist_idx_root, ipc=1)
    draws = result.settings["random_draws"]
    values = [q["spearman"] for q in result.proxies.values()]
    assert draws["draws"] == 3 and None not in values
    assert draws["spearman_mean"] == pytest.approx(sum(values) / len(values))
    assert draws["spearman_min"] == min(values) and draws["spearman_max"] == max(values)
    line = f"Random subsets, 3 draws: Spearman {draws['spearman_mean']:.3f}"
    assert line in markdown_table(result)
    png = plot_scatter(result, tmp_path / "two.png", ["random:2", "random"])
    assert png.stat().st_size > 0
    drawn = []
    monkeypatch.setattr("matplotlib.axes.Axes.set_title", lambda ax, title, **kw: drawn.append(title))
    plot_scatter(result, tmp_path / "default.png")
    assert [t.split("\n")[0] for t in drawn] == ["random"]  # further draws are summarised, not drawn
    with pytest.raises(ConfigError, match="no proxy named 'random:7'"):
        plot_scatter(result, tmp_path / "bad.png", ["random:7"])
    with pytest.raises(ConfigError, match="same name"):
        study("mnist", ["random", "random:0"], archs=2, space=TINY, validation=10, root=mnist_idx_root, ipc=1)


def test_study_refuses_a_proxy_of_another_dataset(mnist_idx_root, tmp_path):
    other = tmp_path / "other.safetensors"
    SyntheticSet(torch.zeros(3, 1, 28, 28), torch.arange(3), ["a", "b", "c"], (0.1,), (0.3,)).save(other)
    with pytest.raises(ConfigError, match="not the same dataset"):
        study("mnist", [str(other)], archs=2, space=TINY, validation=10, root=mnist_idx_root)
    with pytest.raises(ConfigError, match="ground truth"):
        study("mnist", ["full"], archs=2, space=TINY, validation=10, root=mnist_idx_root)
    with pytest.raises(ConfigError, match="between 2 and 4"):
        study("mnist", ["random"], archs=5, space=TINY, validation=10, root=mnist_idx_root, ipc=1)


def test_full_data_cache_rejects_foreign_files(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"entries": {}}')
    with pytest.raises(DataFormatError, match="not a datadam full-data cache"):
        FullDataCache(bad)


def test_search_takes_the_training_data_itself(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    result = search((train.images, train.labels), "random", tmp_path / "s", strategy="random", trials=2,
                    space=TINY, train=FAST, validation=10, ipc=1, reports=1)
    assert len(result.trials) == 2 and 0.0 <= result.best["accuracy"] <= 1.0
    assert json.loads((tmp_path / "s" / "search.json").read_text())["best"]["key"] == result.best["key"]


def test_a_cache_of_an_earlier_datadam_still_hits(tmp_path):
    arch = TINY.architectures()[0]
    split = {"validation_images": 10, "split_seed": 0}
    fp32, bf16 = TrainConfig(epochs=1), TrainConfig(epochs=1, precision="bf16")

    def v1_key(train: TrainConfig) -> str:  # version 1 left the later fields out at their defaults
        later = {("precision", "fp32"), ("compile", False)}
        fields = {k: v for k, v in asdict(train).items() if (k, v) not in later}
        return json.dumps({"dataset": "mnist", "options": {}, "validation": 10, "split_seed": 0,
                           "arch": arch_key(arch), "train": fields, "seed": 0}, sort_keys=True)

    measured = {"accuracy": 0.5, "seconds": 2.0, "train_seconds": 1.5, "eval_seconds": 0.2}
    path = tmp_path / "cache.json"
    path.write_text(json.dumps({"format": CACHE_FORMAT, "entries": {
        v1_key(fp32): measured, v1_key(bf16): measured | {"accuracy": 0.4, "warm_up_seconds": 0.3}}}))
    cache = FullDataCache(path)
    unmeasured = measured | {"warm_up_seconds": None}
    assert cache.get(FullDataCache.key("mnist", None, split, arch, fp32, 0)) == unmeasured
    assert cache.get(FullDataCache.key("mnist", None, split, arch, bf16, 0))["warm_up_seconds"] == 0.3
    assert cache.get(FullDataCache.key("mnist", None, split, arch, TrainConfig(epochs=2), 0)) is None
    cache.put("another", measured | {"warm_up_seconds": 0.1})
    saved = json.loads(path.read_text())
    assert saved["schema"] == 2 and FullDataCache(path).entries == cache.entries
    path.write_text(json.dumps(saved | {"schema": 3}))
    with pytest.raises(RecordVersionError, match="upgrade datadam"):
        FullDataCache(path)


def test_study_takes_the_training_data_itself(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)
    cache = tmp_path / "cache.json"
    kwargs = dict(archs=2, space=TINY, proxy_train=FAST, full_train={"epochs": 1}, validation=10, ipc=1,
                  cache=cache)
    first = study((train.images, train.labels), ["random"], **kwargs)
    fingerprint = first.settings["data_fingerprint"]
    assert first.settings["dataset"] == "tensors" and fingerprint.startswith("data:")
    assert {json.loads(key)["dataset"] for key in json.loads(cache.read_text())["entries"]} == {fingerprint}
    assert study("mnist", ["random"], **kwargs).settings["full_data"]["cached_archs"] == 0  # other data
    # the same images and labels from a data file: the same data, so the same cache entries
    path = save_data(as_image_dataset((train.images, train.labels)), tmp_path / "data.safetensors")
    again = study(path, ["random"], **kwargs)
    assert again.settings["full_data"]["cached_archs"] == 2
    assert again.settings["data_fingerprint"] == fingerprint
    assert [r["full"] for r in again.architectures] == [r["full"] for r in first.architectures]


def test_search_and_study_results_read_back_from_any_version(tmp_path):
    search_v1 = {"best": {"key": "a", "accuracy": 0.5}, "trials": [{"key": "a", "accuracy": 0.5}],
                 "settings": {"strategy": "random"}}
    study_v1 = {"architectures": [{"key": "a"}], "proxies": {"random": {"spearman": 0.5}},
                "settings": {"archs": 1}}
    for kind, v1 in ((SearchResult, search_v1), (StudyResult, study_v1)):
        path = tmp_path / f"{kind.__name__}.json"
        path.write_text(json.dumps(v1))  # written before schema versions
        result = kind.load(path)
        assert result.to_dict() == v1
        result.save(path)
        assert json.loads(path.read_text()) == v1 | {"schema": 2} and kind.load(path) == result
        path.write_text(json.dumps(v1 | {"schema": 3}))
        with pytest.raises(RecordVersionError, match="upgrade datadam"):
            kind.load(path)
        with pytest.raises(DataFormatError, match="it has no 'settings'"):
            kind.from_record({k: v for k, v in v1.items() if k != "settings"})
        path.write_text("[1, 2]")
        with pytest.raises(DataFormatError, match="not a NAS"):
            kind.load(path)


def test_task_data_files_are_records(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    x, y = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8), torch.arange(6) % 3
    dataset = as_image_dataset((x, y))
    path = save_data(dataset, tmp_path / "d.safetensors")
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["datadam"])
    assert header["schema"] == 2
    # a file written before schema versions reads the same
    del header["schema"]
    save_file({"images": x, "labels": y}, str(tmp_path / "v1.safetensors"),
              metadata={"format": FORMAT, "datadam": json.dumps(header)})
    old = load_data(tmp_path / "v1.safetensors")
    assert torch.equal(old.images, dataset.images) and old.classes == dataset.classes
