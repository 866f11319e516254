"""The up-front memory estimate: a run that cannot fit is refused before its first
iteration, with the figures; a run that fits is not."""

from __future__ import annotations

import pytest
import torch
from helpers import fast_distill
from typer.testing import CliRunner

import datadam
from datadam import memory, models
from datadam.cli import app
from datadam.distill import chunked
from datadam.distill.config import DistillConfig
from datadam.errors import ConfigError

CPU = torch.device("cpu")


def estimate(tiny, **settings) -> memory.MemoryEstimate:
    cfg = DistillConfig(**settings).resolve(tiny.name, tiny.image_size)
    return memory.estimate_distillation_memory(cfg, tiny, CPU, torch.channels_last,
                                               real_per_class=settings.get("batch_real"))


def test_a_run_beyond_the_available_memory_is_refused_before_any_iteration(tiny, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 50_000_000)
    iterations = []
    with pytest.raises(ConfigError) as caught:
        datadam.distill(tiny, ipc=5, callbacks=[iterations.append], **fast_distill())
    assert not iterations
    message = str(caught.value)
    assert "this distillation needs about" in message and "but 50 MB are available on cpu" in message
    assert "the 50-image synthetic set's autograd graph" in message and " MB" in message
    assert "lower --ipc" in message


def test_a_run_that_fits_is_not_refused(tiny):
    assert estimate(tiny, ipc=2).total < memory.available_bytes(CPU)
    syn = datadam.distill(tiny, ipc=2, **fast_distill())
    assert syn.metadata["iterations_done"] == 3


def test_the_cli_refuses_in_one_line(mnist_idx_root, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10_000_000)
    r = CliRunner().invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "2",
                                 "--iterations", "3", "--batch-real", "4", "--device", "cpu",
                                 "--out", str(tmp_path / "s.safetensors")])
    assert r.exit_code != 0
    assert "needs about" in r.output and "10 MB are available" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "s.safetensors").exists()


def test_the_synthetic_graph_grows_with_the_images_and_the_real_forward_stops_at_a_chunk(tiny, monkeypatch):
    def part(e: memory.MemoryEstimate, what: str) -> int:
        return next(size for name, size in e.parts.items() if what in name)

    graph = part(estimate(tiny, ipc=2), "autograd graph")
    assert part(estimate(tiny, ipc=4), "autograd graph") == pytest.approx(2 * graph, rel=1e-6)

    monkeypatch.setattr(chunked, "REAL_CHUNK_ELEMENTS", 30 * 128 * 28 * 28)  # 30 images
    forward = {n: part(estimate(tiny, batch_real=n), "real forward") for n in (2, 3, 300, 3000)}
    assert forward[3] == pytest.approx(1.5 * forward[2])  # one piece: all the images at once
    assert forward[300] == forward[3000] <= forward[3]  # in chunks of 30, however many
    assert "the real forward, 30 images at once" in estimate(tiny, batch_real=3000).describe()


def test_processes_on_one_machine_share_its_memory(tiny, monkeypatch):
    one = estimate(tiny, ipc=2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    four = estimate(tiny, ipc=2)
    assert four.total == 4 * one.total and "for each of 4 processes" in four.describe()


def test_the_available_memory_of_this_machine():
    available = memory.available_bytes(CPU)
    assert available is not None and 0 < available < 1 << 50
    assert memory.available_bytes(torch.device("meta")) is None


def test_training_estimate_scales_with_the_batch_and_leaves_the_network_alone(monkeypatch):
    net = models.create("convnet3", 1, 10, (28, 28), net_norm="batchnorm")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    small = memory.estimate_training_memory(net, (1, 28, 28), 64, CPU)
    large = memory.estimate_training_memory(net, (1, 28, 28), 256, CPU, networks=2)
    graph = next(iter(small.parts.values()))
    assert next(iter(large.parts.values())) == pytest.approx(8 * graph, rel=1e-6)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())

    monkeypatch.setattr(memory, "available_bytes", lambda device: graph // 2)
    with pytest.raises(ConfigError, match="this training needs about .* lower the batch size"):
        memory.check_training_memory(net, (1, 28, 28), 64, CPU)


def test_an_evaluation_beyond_the_available_memory_is_refused_before_training(tiny, monkeypatch):
    from datadam import distill, memory
    from datadam.errors import ConfigError
    from datadam.evaluate import TrainConfig, evaluate

    syn = distill(tiny, "random", ipc=1, progress=False)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1 << 20)
    trained = []
    monkeypatch.setattr("datadam.evaluate.runner.train_network", lambda *a, **k: trained.append(1))
    with pytest.raises(ConfigError, match="available"):
        evaluate(syn, tiny, ["convnet3"], runs=1, train=TrainConfig(epochs=1), progress=False)
    assert trained == []
