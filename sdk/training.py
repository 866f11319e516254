"""Training networks on a small image set with the evaluation protocol's recipe: one
network (:func:`train_network`, which a :class:`TrainingCheckpoint` makes resumable), or
several of one architecture at once as one stacked network (:func:`train_networks_together`),
and scoring one (:func:`predict`).

One small network at a time leaves an accelerator mostly idle; stacking the networks'
parameters (``torch.func.stack_module_state``) and mapping the forward pass over them
(``torch.func.vmap``) trains all of them in one batched step per minibatch. The result
is the same as training them one after another, not merely the same in distribution:
network ``i`` draws its minibatch order and augmentations from its own generator
seeded with ``seeds[i]``, in the order the one-network loop draws them, and the summed
loss separates into one gradient per network. Only floating-point summation order
differs.

Examples:
    >>> nets = [models.create("convnet3", 1, 10, (28, 28), seed=s) for s in seeds]  # doctest: +SKIP
    >>> config, dsa = TrainConfig(epochs=300), DSA.from_name("digits")
    >>> train_networks_together(nets, images, labels, config, dsa, seeds)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from datadam.augment import DSA
from datadam.errors import ConfigError
from datadam.files import atomic_path
from datadam.records import migrate, stamp
from datadam.training_settings import TrainSettings


@dataclass(frozen=True)
class TrainConfig(TrainSettings):
    """How an evaluation network is trained.

    Defaults are the protocol's: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
    256, lr x0.1 at half the epochs (``schedule="step"``), DSA on every minibatch.
    The official code trains 1,000 epochs; fewer are a reduced budget and are
    recorded as such in every result. ``precision="bf16"`` trains under bfloat16
    autocast: faster on a CPU or GPU with bfloat16 units, a departure from the protocol
    that is recorded too. ``compile=True`` runs each network's forward and backward
    through ``torch.compile`` (TorchInductor, which fuses the normalisation, activation
    and pooling around each convolution): the same training up to floating-point
    rounding, at the cost of one compilation per process (tens of seconds on a CPU,
    where it needs a C++ compiler).

    Its fields, each with its help and bounds, are :class:`~datadam.training_settings.TrainSettings`'s.
    """

    def key(self) -> dict[str, Any]:
        """The settings that identify a network trained with this config, for saves and
        caches: every field (:func:`dataclasses.asdict`). A key read from a file is
        compared after :func:`datadam.records.migrate`, which brings an earlier one to
        today's fields."""
        return asdict(self)

    def compiled(self, step: Callable) -> Callable:
        """``step`` (a network or a function) through ``torch.compile`` when ``compile``
        is on, else ``step`` itself."""
        if not self.compile:
            return step
        if not torch.cuda.is_available():
            # A CUDA build of torch warns, when Inductor first builds CPU kernels, that it
            # found no CUDA runtime: true and beside the point on a machine without a GPU.
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        return torch.compile(step)

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast context of a training step on ``device`` (off for fp32)."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def check_device(self, device: torch.device) -> None:
        """:class:`ConfigError` if ``device`` cannot train in this precision (bf16 on a GPU
        older than Ampere), before any network trains."""
        if self.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"{torch.cuda.get_device_name(device)} has no bfloat16: use --precision fp32")




def describe_departures(train: dict[str, Any]) -> list[str]:
    """How training ``train`` (:class:`TrainConfig`'s fields as a dict, e.g. a result's
    ``settings["train"]``) departed from the eager fp32 protocol, in the words every table
    and report uses: ``["trained in bfloat16", "compiled with torch.compile"]`` at most."""
    return ((["trained in bfloat16"] if train.get("precision") == "bf16" else [])
            + (["compiled with torch.compile"] if train.get("compile") else []))


@contextmanager
def compile_errors(compiling: bool) -> Iterator[None]:
    """Turn a failure of ``torch.compile`` (e.g. no working C++ compiler on a CPU) into
    a one-line :class:`ConfigError` when ``compiling``."""
    if not compiling:  # leaves torch._dynamo unimported, which the except clause would import
        yield
        return
    try:
        yield
    except torch._dynamo.exc.BackendCompilerFailed as err:
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ConfigError(f"torch.compile failed ({reason}): train without compile") from err


def can_train_together(net: nn.Module) -> bool:
    """Whether ``net`` can be stacked: no module that updates state or draws randomness
    inside the forward pass (BatchNorm's running statistics, dropout), which a mapped
    functional forward cannot reproduce network by network."""
    stateful = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return not any(isinstance(m, stateful) for m in net.modules())


def make_optimizer(params, config: TrainConfig) -> tuple[torch.optim.Optimizer,
                                                         torch.optim.lr_scheduler.LRScheduler]:
    """The protocol's SGD and learning-rate schedule over ``params``."""
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [config.epochs // 2], gamma=0.1)
    return opt, sched


def epoch_batches(images: torch.Tensor, labels: torch.Tensor, batch: int, dsa: DSA,
                  generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's minibatches ``(x [B, C, H, W], y [B])``: a permutation drawn from
    ``generator``, then, per minibatch, its augmentation drawn from the same generator."""
    order = torch.randperm(images.shape[0], generator=generator).to(images.device)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        x = images[idx]
        yield (dsa(x, generator) if dsa.enabled else x), labels[idx]


@dataclass
class TrainingCheckpoint:
    """Where :func:`train_network` keeps the state of a long training run, so that an
    interrupted run goes on from its last save and ends with the very weights of an
    uninterrupted one.

    Attributes:
        path: the file (written atomically; removed when training ends).
        key: what the run trains (e.g. the set's digest, the model and the run); a file
            of another key, seed or protocol is not resumed from but replaced.
        every: epochs between saves.
        earlier_seconds: set by a resumed run: the training time of the runs before it
            (add it to this run's own for the network's).
    """

    path: Path
    key: str
    every: int = 50
    earlier_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.every < 1:
            raise ValueError(f"a training checkpoint needs every >= 1 epoch, not {self.every}")

    def load(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """The saved state of the run ``identity`` names, or None."""
        state = self.load_any()
        return state if state and state.get("identity") == identity else None

    def saved_key(self) -> str | None:
        """The key of the run whose save is at ``path`` (None: no save, or not one of ours)."""
        state = self.load_any()
        identity = state.get("identity") if state else None
        return identity.get("key") if isinstance(identity, dict) else None

    def load_any(self) -> dict[str, Any] | None:
        """The save at ``path``, whichever run it is of, in today's form
        (:func:`datadam.records.migrate`); None if there is none or it is damaged."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a foreign or damaged file: train from the start and replace it
            return None
        if not (isinstance(state, dict) and isinstance(state.get("identity"), dict)):
            return None  # not a save of ours
        return migrate("network_save", state)

    def save(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(stamp("network_save", state), tmp)

    def resume(self, identity: dict[str, Any], opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, generators: list[torch.Generator],
               device: torch.device) -> dict[str, Any] | None:
        """Restore the optimiser, schedule and random streams of the run ``identity``
        names from its save and return the save (its ``network`` and ``epoch`` are the
        caller's to use), or None when there is none."""
        saved = self.load(identity)
        if saved is None:
            return None
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["schedule"])
        states = saved["generator"]  # one network's state, or a list for networks trained together
        for g, state in zip(generators, states if isinstance(states, list) else [states]):
            g.set_state(state)
        torch.set_rng_state(saved["global_generator"])  # dropout draws from it
        if "cuda_generator" in saved:
            torch.cuda.set_rng_state(saved["cuda_generator"], device)
        if "mps_generator" in saved:
            torch.mps.set_rng_state(saved["mps_generator"])
        self.earlier_seconds = saved["seconds"]
        return saved

    def save_if_due(self, epochs_done: int, epochs: int, identity: dict[str, Any], network: dict[str, Any],
                    opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                    generators: list[torch.Generator], device: torch.device, started: float) -> None:
        """Save the run after ``epochs_done`` epochs when that is a multiple of ``every``
        (and not the end): ``network`` (a state dict), optimiser, schedule, random
        streams and the training time since ``started`` (``time.perf_counter``)."""
        if epochs_done % self.every or epochs_done >= epochs:
            return
        state = {"identity": identity, "epoch": epochs_done, "network": network,
                 "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                 "generator": (generators[0].get_state() if len(generators) == 1
                               else [g.get_state() for g in generators]),
                 "global_generator": torch.get_rng_state(),
                 "seconds": self.earlier_seconds + time.perf_counter() - started}
        if device.type == "cuda":  # dropout on the device draws from the device's stream
            state["cuda_generator"] = torch.cuda.get_rng_state(device)
        elif device.type == "mps":
            state["mps_generator"] = torch.mps.get_rng_state()
        self.save(state)


def resumable_epochs(config: TrainConfig, checkpoint: TrainingCheckpoint | None, seeds: dict[str, Any],
                     opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                     generators: list[torch.Generator], device: torch.device, progress,
                     restore: Callable[[dict[str, Any]], None],
                     weights: Callable[[], dict[str, Any]]) -> Iterator[int]:
    """The epochs a training loop has still to run, one per value, with the loop's
    bookkeeping around them. A save of this run (``checkpoint``'s key, the ``seeds`` and
    ``config``) is restored first: the optimiser, schedule and random streams here, the
    network by ``restore``. After each epoch the schedule steps, the run is saved when
    due (the network as ``weights()`` gives it) and ``progress`` ticks, for the skipped
    epochs too. The save is removed when the last epoch is done."""
    identity = {"key": checkpoint.key, **seeds, "train": config.key()} if checkpoint else None
    first, started = 0, time.perf_counter()
    saved = checkpoint.resume(identity, opt, sched, generators, device) if checkpoint else None
    if saved is not None:
        restore(saved["network"])
        first = saved["epoch"]
    for _ in range(first):
        if progress is not None:
            progress()
    for epoch in range(first, config.epochs):
        yield epoch
        sched.step()
        if checkpoint:
            checkpoint.save_if_due(epoch + 1, config.epochs, identity, weights(), opt, sched, generators,
                                   device, started)
        if progress is not None:
            progress()
    if checkpoint:
        checkpoint.path.unlink(missing_ok=True)


def train_network(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                  dsa: DSA, seed: int, progress=None,
                  checkpoint: TrainingCheckpoint | None = None) -> nn.Module:
    """Train ``net`` on normalised ``images [N, C, H, W]`` with ``labels [N]`` in place and
    return it; ``seed`` fixes the minibatch order and the augmentations, ``progress`` is
    called once per epoch (for the epochs a resumed run skips too).

    With ``checkpoint``, the network, optimiser, schedule and random streams are saved
    every ``checkpoint.every`` epochs, and a run whose save exists goes on from it."""
    g = torch.Generator().manual_seed(seed)
    opt, sched = make_optimizer(net.parameters(), config)
    net.train()
    step = config.compiled(net)  # shares net's parameters: saves and predict use net
    epochs = resumable_epochs(config, checkpoint, {"seed": seed}, opt, sched, [g], images.device,
                              progress, restore=net.load_state_dict, weights=net.state_dict)
    with compile_errors(config.compile):  # Inductor compiles at the first minibatch of each shape
        for _ in epochs:
            for x, y in epoch_batches(images, labels, config.batch, dsa, g):
                with config.autocast(x.device):
                    loss = F.cross_entropy(step(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net


def train_networks_together(nets: list[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                            config: TrainConfig, dsa: DSA, seeds: list[int], progress=None,
                            checkpoint: TrainingCheckpoint | None = None) -> list[nn.Module]:
    """Train ``nets`` (one architecture, different initial weights) on normalised
    ``images [N, C, H, W]`` with ``labels [N]``, network ``i`` as
    ``train_network(nets[i], ..., seed=seeds[i])`` would; the trained weights are
    written back into ``nets``, which are returned.

    ``progress`` is called once per epoch (for the epochs a resumed run skips too). Every
    network must pass :func:`can_train_together`. With ``checkpoint``, all of them are
    saved every ``checkpoint.every`` epochs in one file, and a run whose save exists goes
    on from it, as :func:`train_network` does.
    """
    if len(nets) != len(seeds):
        raise ValueError(f"{len(nets)} networks but {len(seeds)} seeds")
    if not all(can_train_together(net) for net in nets):
        raise ValueError("a network has BatchNorm or dropout; train it with train_network")
    for net in nets:
        net.train()
    params, buffers = stack_module_state(nets)  # leaves [R, ...], detached copies of the weights
    template = copy.deepcopy(nets[0]).to("meta")

    def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (p, b), (x,))

    stacked_forward = config.compiled(vmap(forward))
    opt, sched = make_optimizer(list(params.values()), config)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    @torch.no_grad()
    def restore(saved: dict[str, torch.Tensor]) -> None:
        for name, p in params.items():
            p.copy_(saved[name])

    epochs = resumable_epochs(config, checkpoint, {"seeds": list(seeds)}, opt, sched, generators,
                              images.device, progress, restore=restore,
                              weights=lambda: {name: p.detach() for name, p in params.items()})
    with compile_errors(config.compile):  # Inductor compiles at the first minibatch of each shape
        for _ in epochs:
            # Network i's minibatches come from its own generator, drawn exactly as train_network draws them.
            for step in zip(*(epoch_batches(images, labels, config.batch, dsa, g) for g in generators)):
                batches, targets = zip(*step)
                y = torch.stack(targets)
                with config.autocast(y.device):
                    logits = stacked_forward(params, buffers, torch.stack(batches))  # [R, B, K]
                    # Each network's loss is the mean over its own minibatch; their sum has, for
                    # each network's parameters, exactly that network's gradient.
                    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
                loss = loss.view(y.shape).mean(1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    with torch.no_grad():
        for i, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][i])
    return nets


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor, chunk: int | None = None,
            progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Logits ``[N, K]`` of ``net`` in eval mode over normalised ``images`` ``[N, C, H, W]``.

    ``chunk`` images go through at once; None: 128 on the CPU, 1024 elsewhere.
    ``progress`` is called with the number of images of each chunk once it is queued
    (on a GPU the work may still be running; the caller's clock waits for it).
    """
    if chunk is None:
        # On the CPU a chunk's activations should stay in cache, which small chunks do;
        # a GPU wants large ones to fill its cores.
        chunk = 128 if images.device.type == "cpu" else 1024
    net.eval()
    logits = []
    for s in range(0, len(images), chunk):
        logits.append(net(images[s:s + chunk]).float())
        if progress is not None:
            progress(len(logits[-1]))
    return torch.cat(logits)


def wait_for(device: torch.device) -> None:
    """Block until the work queued on ``device`` is done, so that a clock read next
    counts it (a GPU runs kernels after the Python call that launched them returns)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
