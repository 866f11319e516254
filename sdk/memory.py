"""Up-front estimates of the memory a run needs, so that an impossible run is refused at
once with a message instead of being killed by the kernel (or running out of GPU
memory) hours in.

The estimates count what grows with the run's sizes: the autograd graph of the
images that are learned or trained on, the real images' forward, and the image
tensors themselves. The per-image bytes of a network's graph are measured, not
modelled: a tiny forward of the very network records the tensors autograd saves (for
two batch sizes, so that the weights cancel out). The data set itself is not counted:
it is loaded already, and the available figure is taken after it.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from datadam import models
from datadam.errors import ConfigError
from datadam.models.convnet import ConvNet

GB = 1e9
# A distillation's synthetic set, in stored form, lives several times over: the
# parameter, its gradient, SGD's momentum, and decoded and augmented copies.
_SYNTHETIC_COPIES = 5
# The real batch's images exist whole (not chunked): gathered, normalised, augmented.
_REAL_INPUT_COPIES = 3


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run needs, in parts.

    Attributes:
        parts: a description of each part (``"the real forward, 640 images at once"``) to
            its bytes, largest first.
        advice: what lowers the largest part (``"lower --ipc (Python: ipc=...)"``).
        processes: how many processes of the run share the memory (torchrun on one
            machine's CPU); :attr:`total` is for all of them.
    """

    parts: dict[str, int]
    advice: str
    processes: int = 1

    @property
    def total(self) -> int:
        """Bytes needed in all, by every process together."""
        return self.processes * sum(self.parts.values())

    def describe(self) -> str:
        """``"about 31.2 GB (the ... 25.1 GB, ...)"``."""
        each = ", ".join(f"{what} {_size(size)}" for what, size in self.parts.items())
        whose = f" for each of {self.processes} processes" if self.processes > 1 else ""
        return f"about {_size(self.total)} ({each}{whose})"


def _size(size: float) -> str:
    return f"{size / GB:.1f} GB" if size >= 0.1 * GB else f"{size / 1e6:.0f} MB"


def available_bytes(device: torch.device) -> int | None:
    """Bytes still free for the run on ``device``, or None where nothing reliable says.

    CPU: the kernel's ``MemAvailable`` (free memory plus reclaimable caches), lowered to
    what a memory cgroup's limit leaves; CUDA: the device's free memory plus what
    PyTorch's caching allocator holds unused; other devices: None.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    figures = [f for f in (_mem_available(), _cgroup_headroom()) if f is not None]
    return min(figures) if figures else None


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # free pages only, without the caches: lower, so no run is let through wrongly
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """A memory cgroup's limit less its usage, the reclaimable file cache not counted as
    used (v2, then v1); None without a limit."""
    for limit, usage, stat, inactive in (
            ("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
             "total_inactive_file")):
        root = Path("/sys/fs/cgroup")
        try:
            text = (root / limit).read_text().strip()
            if text == "max" or int(text) >= 1 << 60:
                return None
            stats = dict(line.split() for line in (root / stat).read_text().splitlines())
            used = int((root / usage).read_text()) - int(stats.get(inactive, 0))
            return max(0, int(text) - used)
        except (OSError, ValueError):
            continue
    return None


def _saved_bytes(run: Callable[[], object]) -> tuple[int, int]:
    """``(total, largest)`` bytes of the distinct storages autograd saves for backward
    while ``run()`` runs."""
    storages: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[(s.device, s.data_ptr())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()  # kept alive, so no saved storage is freed and its address reused
    del out
    return sum(storages.values()), max(storages.values(), default=0)


def graph_bytes_per_image(run: Callable[[int], object], unit: int = 1) -> tuple[float, float]:
    """``(graph, largest)``: bytes per image of the autograd graph of ``run(n)`` (a
    forward of ``n`` images), and of its largest saved tensor, from two forwards of
    ``unit`` and ``2 * unit`` images (the weights, saved by both, cancel out)."""
    small, _ = _saved_bytes(lambda: run(unit))
    large, largest = _saved_bytes(lambda: run(2 * unit))
    return max(0.0, (large - small) / unit), largest / (2 * unit)


def estimate_distillation_memory(config, dataset, device: torch.device,
                                 memory_format: torch.memory_format = torch.contiguous_format,
                                 real_per_class: int | None = None, world: int = 1) -> MemoryEstimate:
    """The peak memory of one process of a DataDAM or DM distillation, in parts.

    Counted: the autograd graph of the synthetic training images (``images_per_class *
    K``, kept from their forward until the backward), with a backward allowance of
    their largest activation; the real forward (the largest network's activations of
    the real images held at once: a chunk, for a ConvNet, see
    :mod:`datadam.distill.chunked`); the real batch's input images; the synthetic
    images with their gradient, momentum and copies. Not counted: the data set (loaded
    already), the weights, the interpreter and libraries.

    Args:
        config: the run's resolved :class:`~datadam.distill.config.DistillConfig`.
        dataset: the training images (only their shape and class count are read).
        device, memory_format: where and in which layout the run computes.
        real_per_class: real images per class of an iteration (default: ``batch_real``
            capped by the smallest class).
        world: processes the real batch is split over.
    """
    from datadam.distill.chunked import images_per_chunk

    k, shape = dataset.num_classes, tuple(dataset.images.shape[1:])
    if real_per_class is None:
        counts = torch.bincount(dataset.labels, minlength=k)
        real_per_class = min(config.batch_real, int(counts.min()))
    rows = k * -(-real_per_class // world)  # this process's share, rounded up
    n_syn = k * config.images_per_class
    graph = largest = held = 0.0
    at_once = rows
    for name, options in _candidate_networks(config):
        probe = _distillation_probe(name, options, config, shape, k, torch.device(device), memory_format)
        if probe is None:
            continue  # not distillable: refused when it is drawn
        graph, largest = max(graph, probe.graph), max(largest, probe.largest)
        chunk = None if probe.elements is None else images_per_chunk(probe.elements)
        if chunk is None or rows <= chunk:
            held = max(held, rows * probe.one_shot)
        else:
            held = max(held, chunk * probe.chunked)
            at_once = min(at_once, chunk)
    pixels = 4 * torch.Size(shape).numel()
    what = f"the {n_syn:,}-image synthetic set's autograd graph"
    parts = {
        what: int(n_syn * (graph + largest)),
        f"the real forward, {min(rows, at_once):,} images at once": int(held),
        f"the {rows:,} real images": int(rows * pixels * _REAL_INPUT_COPIES),
        "the synthetic images": int(k * config.ipc * pixels * _SYNTHETIC_COPIES + n_syn * pixels * 2),
    }
    parts = dict(sorted(parts.items(), key=lambda item: -item[1]))
    advice = ("lower --ipc (Python: ipc=...)" if next(iter(parts)) == what
              else "lower --batch-real (Python: batch_real=...)")
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if torch.device(device).type == "cpu" else 1
    return MemoryEstimate(parts, advice, processes)


class _Probe(NamedTuple):
    """Bytes per image of a network in a distillation."""

    graph: float  # a synthetic image's autograd graph
    largest: float  # the largest tensor in it
    one_shot: float  # what a real image's one-shot forward holds at its peak
    chunked: float  # what a real image of a chunk holds at its peak
    elements: int | None  # elements of its largest activation, if chunked at all


_PROBES: dict[tuple, _Probe | None] = {}


def _distillation_probe(name: str, options: dict, config, shape: tuple[int, ...], classes: int,
                        device: torch.device, memory_format: torch.memory_format) -> _Probe | None:
    """The :class:`_Probe` of the network ``name`` with ``options`` (None: it has no
    ``forward_features``), measured once per process for each setting that shapes it."""
    groups = classes if config.bn_statistics == "class" else 1
    attention = config.method == "datadam" and config.sam_weight != 0
    key = (name, repr(sorted(options.items())), shape, classes, groups, attention, config.attention_power,
           config.real_precision, str(device), str(memory_format))
    if key not in _PROBES:
        with torch.random.fork_rng(devices=[]):  # any weights will do; the caller's stream stays
            net = models.create(name, shape[0], classes, shape[1:], **options)
        _PROBES[key] = (_measure(net.to(device, memory_format=memory_format).train(), config, shape,
                                 groups, attention, device, memory_format)
                        if hasattr(net, "forward_features") else None)
    return _PROBES[key]


def _measure(net: nn.Module, config, shape: tuple[int, ...], groups: int, attention: bool,
             device: torch.device, memory_format: torch.memory_format) -> _Probe:
    from datadam.distill.chunked import largest_activation
    from datadam.distill.loss import matching_targets

    def images(n: int) -> torch.Tensor:
        return torch.zeros(n, *shape, device=device).contiguous(memory_format=memory_format)

    def synthetic(n: int):
        # the class means over the groups: the same graph per image as over the classes
        x = images(n).requires_grad_(True)
        return matching_targets(net.forward_features(x, groups=groups), groups,
                                config.attention_power, attention)

    graph, largest = graph_bytes_per_image(synthetic, unit=groups)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                         enabled=config.real_precision == "bf16"):
        feats = net.forward_features(images(groups), groups=groups)
    sizes = [t.nbytes / groups for t in (*feats.activations, feats.embedding)]
    # One-shot, every block's activation is kept until the class means, and the largest
    # is transiently there twice (a convolution's input and output, or a norm's). A chunk
    # holds one block at a time: its convolution's output and its pooled quarter.
    elements = largest_activation(net, shape) if isinstance(net, ConvNet) else None
    return _Probe(graph, largest, sum(sizes) + max(sizes), 1.25 * max(sizes), elements)


def _candidate_networks(config) -> list[tuple[str, dict]]:
    """Every (model name, options) the run can draw; with many choices, each choice's
    values one at a time instead of all their combinations."""
    from datadam.distill.config import model_names

    names, choices = model_names(config.model), config.model_choices
    combos = list(itertools.islice(itertools.product(*choices.values()), 64))
    if len(combos) < 64:
        return [(name, {**config.model_options, **dict(zip(choices, combo))})
                for name in names for combo in combos]
    first = {**config.model_options, **{key: values[0] for key, values in choices.items()}}
    return [(name, first) for name in names] + [
        (name, {**first, key: value}) for name in names
        for key, values in choices.items() for value in values[1:]]


def check_distillation_memory(config, dataset, device: torch.device,
                              memory_format: torch.memory_format = torch.contiguous_format,
                              real_per_class: int | None = None, world: int = 1) -> MemoryEstimate:
    """:func:`estimate_distillation_memory`, and a :class:`~datadam.errors.ConfigError`
    with its figures if it exceeds :func:`available_bytes`; returns the estimate."""
    estimate = estimate_distillation_memory(config, dataset, device, memory_format, real_per_class, world)
    _refuse_beyond(estimate, device, "this distillation")
    return estimate


def estimate_training_memory(net: nn.Module, image_shape: tuple[int, ...], batch: int,
                             device: torch.device, networks: int = 1) -> MemoryEstimate:
    """The peak memory of training ``networks`` copies of ``net`` (SGD with momentum,
    cross-entropy) on minibatches of ``batch`` images ``[C, H, W]``, in parts: the
    autograd graph of a minibatch's forward with a backward allowance of its largest
    tensor, and the weights with their gradient and optimiser state. ``net`` itself is
    left untouched (a copy is probed)."""
    probe = copy.deepcopy(net).to(device).train()

    def forward(n: int) -> torch.Tensor:
        logits = probe(torch.zeros(n, *image_shape, device=device))
        return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=device))

    graph, largest = graph_bytes_per_image(forward, unit=2)  # BatchNorm needs 2 images
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    what = (f"the autograd graph of {networks} x {batch:,} images" if networks > 1
            else f"the autograd graph of a {batch:,}-image minibatch")
    parts = {what: int(networks * batch * (graph + largest)),
             "the weights, gradients and optimiser state": int(networks * weights * 4)}
    parts = dict(sorted(parts.items(), key=lambda item: -item[1]))
    return MemoryEstimate(parts, "lower the batch size or the networks trained at once")


def check_training_memory(net: nn.Module, image_shape: tuple[int, ...], batch: int,
                          device: torch.device, networks: int = 1) -> MemoryEstimate:
    """:func:`estimate_training_memory`, and a :class:`~datadam.errors.ConfigError` with
    its figures if it exceeds :func:`available_bytes`; returns the estimate."""
    estimate = estimate_training_memory(net, image_shape, batch, device, networks)
    _refuse_beyond(estimate, device, "this training")
    return estimate


def _refuse_beyond(estimate: MemoryEstimate, device: torch.device, what: str) -> None:
    available = available_bytes(device)
    if available is not None and estimate.total > available:
        raise ConfigError(f"{what} needs {estimate.describe()} but {_size(available)} are "
                          f"available on {device}: {estimate.advice}")


__all__ = ["MemoryEstimate", "available_bytes", "check_distillation_memory", "check_training_memory",
           "estimate_distillation_memory", "estimate_training_memory", "graph_bytes_per_image"]
