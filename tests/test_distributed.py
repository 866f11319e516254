"""Data-parallel distillation: sharded real images with all-reduced sums give the same
synthetic set as one process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import datadam
from datadam.distill import matching
from datadam.distill.distributed import Shard
from datadam.distill.matching import class_means, matching_targets
from datadam.errors import ConfigError
from datadam.kernels import grouped_batch_norm
from datadam.synthetic import SyntheticSet


class TwoRanks:
    """An all-reduce between two threads standing for two ranks: every call waits for the
    other rank's tensor and both get the same sum."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=30)
        self.slots: list[torch.Tensor | None] = [None, None]

    def reduce_for(self, rank: int):
        def reduce(t: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = t.clone()
            self.barrier.wait()
            total = self.slots[0] + self.slots[1]
            self.barrier.wait()  # both have read before either overwrites its slot
            return t.copy_(total)
        return reduce

    def run(self, work) -> list:
        out: list = [None, None]

        def rank(r: int) -> None:
            with torch.no_grad():  # grad mode is per thread; real features never need it
                out[r] = work(r, self.reduce_for(r))

        threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_synchronised_batch_norm_equals_the_whole_batch(layout):
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(8)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-1, 1)
    x = torch.randn(3 * 5, 8, 6, 6)  # 3 groups of 5 images
    with torch.no_grad():
        whole = grouped_batch_norm(norm, x.clone().contiguous(memory_format=torch.channels_last), 3)
    # rank r holds images r, r + 2, ... of every group: 3 and 2 images, unequal on purpose
    rows = [torch.cat([torch.arange(g * 5, (g + 1) * 5)[r::2] for g in range(3)]) for r in (0, 1)]
    parts = TwoRanks().run(lambda r, reduce: grouped_batch_norm(
        norm, x[rows[r]].clone().contiguous(memory_format=layout), 3, reduce))
    for r in (0, 1):
        torch.testing.assert_close(parts[r], whole[rows[r]], rtol=1e-5, atol=1e-5)


def test_class_means_over_ranks():
    feats = torch.randn(3 * 5, 7)
    rows = [torch.cat([torch.arange(g * 5, (g + 1) * 5)[r::2] for g in range(3)]) for r in (0, 1)]
    parts = TwoRanks().run(lambda r, reduce: class_means(feats[rows[r]], 3, reduce))
    torch.testing.assert_close(parts[0], class_means(feats, 3))
    torch.testing.assert_close(parts[1], parts[0])


def test_one_collective_per_statistic_and_the_same_targets_as_one_process():
    """Per iteration of ConvNet-3: a sum-and-count and a variance per BatchNorm, and one
    sum-and-count per matched mean: 9 all-reduces; the targets equal one process's."""
    net = datadam.models.create("convnet3", 1, 3, (28, 28), net_norm="batchnorm")
    net = net.train().requires_grad_(False)
    x = torch.randn(3 * 5, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    rows = [torch.cat([torch.arange(g * 5, (g + 1) * 5)[r::2] for g in range(3)]) for r in (0, 1)]
    calls = [0, 0]

    def targets(r, reduce):
        def counted(t):
            calls[r] += 1
            return reduce(t)
        return matching_targets(net.forward_features(x[rows[r]].contiguous(memory_format=torch.channels_last),
                                                     groups=3, reduce=counted), 3, 4.0, reduce=counted)

    parts = TwoRanks().run(targets)
    assert calls == [9, 9]
    with torch.no_grad():
        whole = matching_targets(net.forward_features(x, groups=3), 3, 4.0)
    for got, want in zip(parts[0], whole):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_reduce_identity_matches_the_plain_path():
    torch.manual_seed(1)
    norm = torch.nn.BatchNorm2d(4)
    x = torch.randn(12, 4, 6, 6)
    with torch.no_grad():
        plain = grouped_batch_norm(norm, x.clone().contiguous(memory_format=torch.channels_last), 3)
        with_reduce = grouped_batch_norm(norm, x.clone().contiguous(memory_format=torch.channels_last),
                                          3, lambda t: t)
        channels_first = grouped_batch_norm(norm, x.clone(), 3, lambda t: t)  # the GPU-layout path
    torch.testing.assert_close(with_reduce, plain)
    torch.testing.assert_close(channels_first, plain, rtol=1e-5, atol=1e-5)
    feats = torch.randn(12, 7)
    torch.testing.assert_close(class_means(feats, 3, lambda t: t), class_means(feats, 3))


def test_reduce_needs_no_autograd():
    norm = torch.nn.BatchNorm2d(4)
    x = torch.randn(4, 4, 3, 3, requires_grad=True)
    with pytest.raises(ConfigError, match="without autograd"):
        grouped_batch_norm(norm, x, 2, lambda t: t)


def test_too_few_real_images_for_the_processes(monkeypatch, mnist_idx_root):
    monkeypatch.setattr(matching, "current_shard", lambda: Shard(0, 4))
    train = datadam.data.load("mnist", mnist_idx_root)
    with pytest.raises(ConfigError, match="do not split over 4 processes"):
        datadam.distill(train, ipc=1, iterations=1, batch_real=3, device="cpu", progress=False)


@pytest.mark.slow
def test_two_processes_give_the_same_set_as_one(mnist_idx_root, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    # 5 real images per class: ranks get 3 and 2, so unequal slices are covered too
    args = ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "1", "--iterations", "3",
            "--batch-real", "5", "--device", "cpu", "--seed", "5", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "datadam", *args, "--out", str(tmp_path / "one.safetensors")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "datadam", *args,
                          "--out", str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # rank 0 alone writes and reports
    a, b = SyntheticSet.load(tmp_path / "one.safetensors"), SyntheticSet.load(tmp_path / "two.safetensors")
    assert b.metadata["processes"] == 2 and a.metadata["processes"] == 1
    torch.testing.assert_close(b.images, a.images, rtol=1e-4, atol=1e-4)
    assert b.metadata["loss_history"] == pytest.approx(a.metadata["loss_history"], rel=1e-4)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["one.safetensors", "two.safetensors"]
