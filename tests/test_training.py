"""Training several networks at once (torch.func) against one after another."""

from __future__ import annotations

import pytest
import torch

from datadam import data, distill, models
from datadam.augment import DSA
from datadam.errors import ConfigError
from datadam.evaluate import evaluate
from datadam.training import (
    TrainConfig,
    TrainingCheckpoint,
    can_train_together,
    train_network,
    train_networks_together,
)


def _nets(seeds, **options):
    return [models.create("convnet3", 1, 4, (16, 16), seed=s, net_width=8, **options) for s in seeds]


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_stacked_training_gives_the_weights_of_one_network_at_a_time(schedule):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(24, 1, 16, 16, generator=g), torch.arange(4).repeat(6)
    # batch 10 of 24 images: three minibatches an epoch, the last one short
    config = TrainConfig(epochs=4, batch=10, lr=0.05, schedule=schedule)
    dsa, seeds = DSA.from_name("digits"), [3, 7, 11]
    one_by_one = _nets(seeds)
    for net, seed in zip(one_by_one, seeds):
        train_network(net, images, labels, config, dsa, seed)
    together = train_networks_together(_nets(seeds), images, labels, config, dsa, seeds)
    untrained = _nets(seeds)
    for a, b, c in zip(one_by_one, together, untrained):
        for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
            assert not torch.equal(p, r), f"{name} did not train"
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("together", [False, True])
def test_bf16_training_learns_with_its_own_rounding(together):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(6)
    # class k is a bright quadrant k on noise: learnable in a few epochs
    images = 0.3 * torch.randn(24, 1, 16, 16, generator=g)
    for i, k in enumerate(labels.tolist()):
        images[i, :, 8 * (k // 2):8 * (k // 2) + 8, 8 * (k % 2):8 * (k % 2) + 8] += 2.0
    dsa, seeds = DSA.from_name("none"), [3, 7]
    trained = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(epochs=30, batch=8, lr=0.05, precision=precision)
        nets = _nets(seeds)
        if together:
            train_networks_together(nets, images, labels, config, dsa, seeds)
        else:
            for net, seed in zip(nets, seeds):
                train_network(net, images, labels, config, dsa, seed)
        trained[precision] = nets
    for fp32, bf16 in zip(trained["fp32"], trained["bf16"]):
        assert all(p.dtype == torch.float32 for p in bf16.parameters())  # autocast leaves the weights fp32
        assert not all(torch.equal(p, q) for p, q in zip(fp32.parameters(), bf16.parameters()))
        with torch.no_grad():
            assert (bf16.eval()(images).argmax(1) == labels).float().mean() == 1.0


def test_networks_trained_together_go_on_from_their_save_to_the_same_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(24, 1, 16, 16, generator=g), torch.arange(4).repeat(6)
    config, dsa, seeds = TrainConfig(epochs=7, batch=10, lr=0.05), DSA.from_name("digits"), [3, 7]
    whole = train_networks_together(_nets(seeds), images, labels, config, dsa, seeds)
    saves = TrainingCheckpoint(tmp_path / "nets.pt", key="set/convnet3/runs 0-1", every=2)
    ticks = []

    def ctrl_c_after_epoch_5():
        ticks.append(1)
        if len(ticks) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_networks_together(_nets(seeds), images, labels, config, dsa, seeds,
                                progress=ctrl_c_after_epoch_5, checkpoint=saves)
    assert torch.load(saves.path, weights_only=True)["epoch"] == 4
    resumed = TrainingCheckpoint(saves.path, key=saves.key, every=2)
    ticks.clear()
    nets = train_networks_together(_nets(seeds), images, labels, config, dsa, seeds,
                                   progress=lambda: ticks.append(1), checkpoint=resumed)
    assert len(ticks) == 7 and resumed.earlier_seconds > 0 and not saves.path.exists()
    for a, b in zip(whole, nets):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(p, q), name
    # the save of the same networks with other seeds is not gone on from
    with pytest.raises(KeyboardInterrupt):
        ticks.clear()
        train_networks_together(_nets(seeds), images, labels, config, dsa, seeds,
                                progress=ctrl_c_after_epoch_5, checkpoint=saves)
    other = TrainingCheckpoint(saves.path, key=saves.key, every=2)
    train_networks_together(_nets([3, 8]), images, labels, config, dsa, [3, 8], checkpoint=other)
    assert other.earlier_seconds == 0.0


def test_networks_with_state_in_the_forward_cannot_be_stacked():
    assert can_train_together(_nets([0])[0])
    batchnorm = _nets([0], net_norm="batchnorm")
    assert not can_train_together(batchnorm[0])
    with pytest.raises(ValueError, match="BatchNorm"):
        train_networks_together(batchnorm, torch.zeros(4, 1, 16, 16), torch.arange(4), TrainConfig(epochs=1),
                                DSA.from_name("none"), [0])


def test_evaluate_together_matches_one_at_a_time(mnist_idx_root):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    options = {"convnet3": {"net_width": 16}}
    kwargs = dict(runs=3, train=TrainConfig(epochs=6), progress=False, device="cpu", model_options=options)
    apart = evaluate(syn, test, ["convnet3"], together=False, **kwargs)
    joint = evaluate(syn, test, ["convnet3"], together=True, **kwargs)
    assert apart.settings["trained_together"] == {"convnet3": False}
    assert joint.settings["trained_together"] == {"convnet3": True}
    for a, b in zip(apart.runs["convnet3"], joint.runs["convnet3"]):
        # the same networks up to rounding: at most one test image may flip
        assert abs(a["accuracy"] - b["accuracy"]) <= 1 / len(test) + 1e-6


def test_evaluate_with_jobs_trains_the_same_networks_in_processes(mnist_idx_root, tmp_path, monkeypatch):
    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=2, progress=False)
    saves = tmp_path / "saves"
    saves.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' count: the same floating-point order
    try:
        # 55 epochs: each network saves at 50 (to its own file) and removes it at the end
        kwargs = dict(runs=3, train=TrainConfig(epochs=55), progress=False, device="cpu", seed=4,
                      model_options={"convnet3": {"net_width": 16}})
        one = evaluate(syn, test, ["convnet3"], **kwargs)
        seen = []
        two = evaluate(syn, test, ["convnet3"], jobs=2, network_checkpoint=saves / "e.network.pt",
                       on_network=lambda r: seen.append(len(r.runs["convnet3"])), **kwargs)
    finally:
        torch.set_num_threads(threads)
    assert [r["run"] for r in two.runs["convnet3"]] == [0, 1, 2] and seen == [1, 2, 3]
    for a, b in zip(one.runs["convnet3"], two.runs["convnet3"]):
        assert a["accuracy"] == b["accuracy"]
        assert a["per_class_accuracy"] == pytest.approx(b["per_class_accuracy"], nan_ok=True, abs=0)
    assert two.settings["jobs"] == 2 and one.settings["jobs"] == 1
    assert list(saves.iterdir()) == []  # every network's save is removed once it is done
    with pytest.raises(ConfigError, match="jobs > 1 trains networks in CPU processes"):
        evaluate(syn, test, ["convnet3"], jobs=2, together=True, **kwargs)
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        evaluate(syn, test, ["convnet3"], jobs=0, **kwargs)


def test_a_network_saved_one_at_a_time_goes_on_with_jobs_and_back(mnist_idx_root, tmp_path, monkeypatch):
    import datadam.evaluate.runner as evaluation

    train = data.load("mnist", mnist_idx_root)
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(train, "random", ipc=1, progress=False)
    kwargs = dict(runs=1, train=TrainConfig(epochs=60), progress=False, device="cpu",
                  model_options={"convnet3": {"net_width": 8}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = evaluate(syn, test, ["convnet3"], **kwargs).runs["convnet3"][0]
        single = tmp_path / "e.network.pt"
        per_run = tmp_path / "e.network.convnet3.run0.pt"

        def interrupted_at_epoch_52():
            real = evaluation.train_network

            def train_until_52(*args, progress=None, **options):
                ticks = []

                def tick():
                    ticks.append(1)
                    if len(ticks) == 52:
                        raise KeyboardInterrupt
                return real(*args, progress=tick, **options)
            with monkeypatch.context() as patch:
                patch.setattr(evaluation, "train_network", train_until_52)
                with pytest.raises(KeyboardInterrupt):
                    evaluate(syn, test, ["convnet3"], network_checkpoint=single, **kwargs)
            # a mark of the interrupted process's time: only a resumed network counts it
            state = torch.load(single, weights_only=True)
            torch.save(dict(state, seconds=1e6), single)

        interrupted_at_epoch_52()
        with_jobs = evaluate(syn, test, ["convnet3"], jobs=2, network_checkpoint=single, **kwargs)
        interrupted_at_epoch_52()
        single.replace(per_run)  # as a --jobs evaluation leaves it
        without = evaluate(syn, test, ["convnet3"], network_checkpoint=single, **kwargs)
    finally:
        torch.set_num_threads(threads)
    for resumed in (with_jobs.runs["convnet3"][0], without.runs["convnet3"][0]):
        assert resumed["train_seconds"] >= 1e6  # went on from the save
        assert resumed["accuracy"] == whole["accuracy"]  # to the uninterrupted network
    assert not single.exists() and not per_run.exists()


def test_evaluate_together_refuses_batchnorm_before_training(mnist_idx_root):
    test = data.load("mnist", mnist_idx_root, split="test")
    syn = distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False)
    with pytest.raises(ConfigError, match="one at a time"):
        evaluate(syn, test, ["convnet2", "convnet3"], runs=2, train=TrainConfig(epochs=1), progress=False,
                 together=True, model_options={"convnet3": {"net_norm": "batchnorm"}})


def test_an_interrupted_training_goes_on_from_its_save_to_the_same_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(24, 1, 16, 16, generator=g), torch.arange(4).repeat(6)
    # BatchNorm: its running statistics must come back too; 7 epochs: the lr drops at 3
    config, dsa = TrainConfig(epochs=7, batch=10, lr=0.05), DSA.from_name("digits")
    whole = train_network(_nets([5], net_norm="batchnorm")[0], images, labels, config, dsa, 5)

    saves = TrainingCheckpoint(tmp_path / "net.pt", key="set/convnet3/run 0", every=2)
    epochs = []

    def ctrl_c_after_epoch_5():
        epochs.append(len(epochs) + 1)
        if len(epochs) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(_nets([5], net_norm="batchnorm")[0], images, labels, config, dsa, 5,
                      progress=ctrl_c_after_epoch_5, checkpoint=saves)
    assert saves.path.exists() and torch.load(saves.path, weights_only=True)["epoch"] == 4
    torch.manual_seed(123)  # a new process has another global stream (dropout): the save restores it
    resumed = TrainingCheckpoint(saves.path, key=saves.key, every=2)
    ticks = []
    net = train_network(_nets([5], net_norm="batchnorm")[0], images, labels, config, dsa, 5,
                        progress=lambda: ticks.append(1), checkpoint=resumed)
    assert len(ticks) == 7 and resumed.earlier_seconds > 0 and not saves.path.exists()
    for (name, a), b in zip(whole.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), name

    # the save of another network, or a damaged file, is not gone on from
    with pytest.raises(KeyboardInterrupt):
        epochs.clear()
        train_network(_nets([5], net_norm="batchnorm")[0], images, labels, config, dsa, 5,
                      progress=ctrl_c_after_epoch_5, checkpoint=saves)
    other = TrainingCheckpoint(saves.path, key="set/convnet3/run 1", every=2)
    net = train_network(_nets([5], net_norm="batchnorm")[0], images, labels, config, dsa, 5, checkpoint=other)
    assert other.earlier_seconds == 0.0  # trained from the start, to the uninterrupted weights
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), net.state_dict().values()))
    saves.path.write_bytes(b"not a checkpoint")
    assert saves.load({"key": saves.key}) is None
    with pytest.raises(ValueError, match="every >= 1"):
        TrainingCheckpoint(tmp_path / "net.pt", key="k", every=0)


def test_bf16_on_a_gpu_without_bfloat16_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(ConfigError, match="Tesla T4 has no bfloat16: use --precision fp32"):
        TrainConfig(precision="bf16").check_device(torch.device("cuda"))
    TrainConfig().check_device(torch.device("cuda"))  # fp32 runs anywhere
    TrainConfig(precision="bf16").check_device(torch.device("cpu"))


@pytest.mark.parametrize("together", [False, True])
def test_compiled_training_gives_the_weights_of_eager_training(together):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(24, 1, 16, 16, generator=g), torch.arange(4).repeat(6)
    dsa, seeds = DSA.from_name("digits"), [3, 7]

    def trained(compile: bool) -> list[torch.nn.Module]:
        config = TrainConfig(epochs=4, batch=8, lr=0.05, compile=compile)
        nets = _nets(seeds)
        if together:
            return train_networks_together(nets, images, labels, config, dsa, seeds)
        return [train_network(net, images, labels, config, dsa, seed) for net, seed in zip(nets, seeds)]

    eager, compiled, again = trained(False), trained(True), trained(True)
    for nets in zip(eager, compiled, again, _nets(seeds)):
        for (name, p), q, r, u in zip(*(net.named_parameters() if i == 0 else net.parameters()
                                        for i, net in enumerate(nets))):
            assert not torch.equal(q, u), f"{name} did not train"
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)  # fused kernels round otherwise
            assert torch.equal(q, r), f"{name}: the same seed compiled twice differs"


def test_a_compile_that_fails_is_a_config_error():
    import torch._dynamo
    import torch._inductor.config

    torch._dynamo.reset()  # no graph compiled by an earlier test may stand in for this one
    net = models.create("convnet3", 1, 4, (12, 12), seed=0, net_width=4)
    images, labels = torch.randn(8, 1, 12, 12), torch.arange(4).repeat(2)
    config = TrainConfig(epochs=1, batch=8, compile=True)
    # inductor's own patch: monkeypatch would delete the config entries it restores, which
    # breaks every later compile in this process
    with torch._inductor.config.patch({"cpp.cxx": (None, "/nonexistent/c++"), "fx_graph_cache": False}), \
            pytest.raises(ConfigError, match=r"compile failed \(.*C\+\+ compiler.*\): train without compile"):
        train_network(net, images, labels, config, DSA.from_name("none"), 0)
    torch._dynamo.reset()
