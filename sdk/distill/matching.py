"""Distribution-matching methods: DataDAM (attention + last layer) and DM (last layer only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from datadam import models
from datadam.augment import DSA
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed, register_method
from datadam.distill.config import DistillConfig, model_names
from datadam.distill.distributed import Shard, current_shard
from datadam.distill.iterative import Bookkeeping, IterativeMethod
from datadam.distill.loss import (
    class_means,
    loss_terms,
    matching_loss,
    matching_targets,
    real_matching_targets,
    spatial_attention,
)
from datadam.distill.multiformation import decode, encode
from datadam.errors import ConfigError
from datadam.memory import check_distillation_memory
from datadam.records import migrate, stamp
from datadam.synthetic import load_tensors, save_tensors

# Streams of randomness derived from (seed, iteration, stream): one purpose each.
_INIT, _BATCH, _NETWORK, _NET_TRAIN, _ARCHITECTURE = 1, 2, 3, 4, 5


class SiameseBatches:
    """Each iteration's real images of every class, and one siamese DSA draw applied to
    them and to the synthetic images alike.

    Args:
        dataset: the real images.
        batch_real: real images per class and iteration (fewer if a class has fewer).
        augmentation: DSA preset or families.
        images_per_class: synthetic training images per class (``ipc * factor**2``).
        device: where the batches are made.
        memory_format: the layout they are made in.
        shard: this process's share of every class (all of it in a single process).
    """

    def __init__(self, dataset: ImageDataset, batch_real: int, augmentation: str, images_per_class: int,
                 device: torch.device, memory_format: torch.memory_format, shard: Shard) -> None:
        k = dataset.num_classes
        self.dataset, self.device, self.memory_format, self.shard = dataset, device, memory_format, shard
        self.by_class = [dataset.indices_of(c) for c in range(k)]
        self.per_class = min(batch_real, min(len(i) for i in self.by_class))
        if self.per_class < shard.world:
            raise ConfigError(f"{self.per_class} real images per class do not split over "
                              f"{shard.world} processes")
        # every rank draws the same batch and keeps its slice of each class
        local_per_class = len(shard.take(torch.arange(self.per_class)))
        self.real_groups = torch.arange(k, device=device).repeat_interleave(local_per_class)
        self.syn_groups = torch.arange(k, device=device).repeat_interleave(images_per_class)
        self.dsa = DSA.from_name(augmentation)
        self._mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
        self._std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)

    def real_images(self, idx: torch.Tensor) -> torch.Tensor:
        """The normalised real images ``idx`` ``[n, C, H, W]``, on the device, in the layout."""
        images = self.dataset.images
        x = images[idx].to(self.device, non_blocking=True).float()
        x = (x.div_(255.0) if images.dtype == torch.uint8 else x).sub_(self._mean).div_(self._std)
        return x.contiguous(memory_format=self.memory_format)

    def draw(self, syn: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(real, syn)``, both grouped by class, augmented with the same parameters per
        class; ``syn`` is ``[K * images_per_class, C, H, W]`` and keeps its autograd graph."""
        idx = torch.cat([self.shard.take(i[torch.randperm(len(i), generator=g)[:self.per_class]])
                         for i in self.by_class])
        real = self.real_images(idx)
        if self.dsa.enabled:
            params = self.dsa.sample(len(self.by_class), g, self.dataset.image_size)
            real = self.dsa.apply(real, params, self.real_groups)
            syn = self.dsa.apply(syn, params, self.syn_groups)
        return real, syn.contiguous(memory_format=self.memory_format)


class NetworkWindows:
    """The random network of every window of ``keep`` iterations, drawn when its window
    starts (``draw(window)``); a resumed run starts with the network it ``restored``, which
    belongs to the window of the last finished iteration, ``start - 1``."""

    def __init__(self, draw: Callable[[int], nn.Module], keep: int, start: int = 0,
                 restored: nn.Module | None = None) -> None:
        self.draw, self.keep = draw, keep
        self.current = restored
        self.window = (start - 1) // keep if restored is not None else -1

    def at(self, iteration: int) -> nn.Module:
        """The network of ``iteration``."""
        if iteration // self.keep != self.window:
            self.window = iteration // self.keep
            self.current = self.draw(self.window)
        return self.current


class MatchingMethod(IterativeMethod):
    """Learns synthetic images by matching statistics of fresh random networks.

    Subclasses choose what is matched through ``attention`` (DataDAM: spatial attention
    of the inner blocks plus the last-layer mean; DM: the last-layer mean only).
    """

    attention: ClassVar[bool] = True
    multi_formation = True
    shard: Shard = Shard()  # this process's slice of the real images (torchrun)

    @property
    def memory_format(self) -> torch.memory_format:
        # oneDNN's CPU convolutions are faster in NHWC (channels-last) than in NCHW.
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    def batches(self, dataset: ImageDataset) -> SiameseBatches:
        """The iterations' real batches and siamese augmentation of this run on ``dataset``."""
        cfg = self.config
        return SiameseBatches(dataset, cfg.batch_real, cfg.augmentation, cfg.images_per_class,
                              self.device, self.memory_format, self.shard)

    def condense(self, dataset: ImageDataset) -> torch.Tensor:
        cfg, classes = self.config, dataset.num_classes
        batches = self._setup(dataset)
        syn = self._initial_images(batches).requires_grad_(True)
        optimizer = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
        start, restored = self._load_checkpoint(dataset, syn, optimizer) if self.resume else (0, None)
        networks = NetworkWindows(lambda w: self.network(dataset, derive_seed(cfg.seed, w, _NETWORK)),
                                  cfg.net_keep, start, restored)
        book = Bookkeeping(self, dataset, syn, show_progress=self.progress if self.shard.is_main else False,
                           save=lambda n: self._save_checkpoint(dataset, syn, optimizer, networks.current, n))
        with book.running(start):
            for it in range(start, cfg.iterations):
                book.begin(it)
                net = networks.at(it)
                g = torch.Generator().manual_seed(derive_seed(cfg.seed, it, _BATCH))
                real, syn_in = batches.draw(decode(syn, cfg.factor), g)
                terms = self.loss_terms(net, real, syn_in, classes)
                loss = terms["attention"] + terms["last_layer"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                book.record(it, loss, terms)
                if cfg.net_steps:
                    self._train_network(net, batches, it)
                book.finish()
        return decode(syn.detach(), cfg.factor)

    def loss(self, net: nn.Module, real: torch.Tensor, syn: torch.Tensor, classes: int) -> torch.Tensor:
        """The matching loss of one iteration; ``real`` and ``syn`` are grouped by class."""
        terms = self.loss_terms(net, real, syn, classes)
        return terms["attention"] + terms["last_layer"]

    def loss_terms(self, net: nn.Module, real: torch.Tensor, syn: torch.Tensor,
                   classes: int) -> dict[str, torch.Tensor]:
        """:meth:`loss` in its two weighted parts (see :func:`loss_terms`)."""
        cfg = self.config
        reduce = self.shard.all_sum if self.shard.distributed else None
        norm_groups = classes if cfg.bn_statistics == "class" else 1
        # Real features only enter as class means: a bfloat16 forward changes them far
        # less than drawing another real batch does, and is about twice as fast.
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                             enabled=cfg.real_precision == "bf16"):
            real_targets = real_matching_targets(net, real, classes, norm_groups, cfg.attention_power,
                                                 self.attention, reduce)
        syn_targets = matching_targets(net.forward_features(syn, groups=norm_groups), classes,
                                       cfg.attention_power, self.attention)
        return loss_terms(real_targets, syn_targets, cfg.sam_weight if self.attention else 0.0,
                          cfg.task_balance, cfg.loss_scale)

    # -- pieces of the loop ------------------------------------------------------------

    def _setup(self, dataset: ImageDataset) -> SiameseBatches:
        """The run's real batches, after the checks that would otherwise fail later: every
        network it may draw, and its memory."""
        cfg = self.config
        self.shard = current_shard()
        batches = self.batches(dataset)
        self._check_networks(dataset)
        # refused now, with figures, rather than killed by the kernel hours in
        check_distillation_memory(cfg, dataset, self.device, self.memory_format, batches.per_class,
                                  self.shard.world)
        # the loss's two terms, recorded apart when there are two (DM's is its only one)
        self.log.records_terms = self.attention and cfg.sam_weight != 0
        return batches

    def _initial_images(self, batches: SiameseBatches) -> torch.Tensor:
        cfg, dataset = self.config, batches.dataset
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, 0, _INIT))
        if cfg.init == "noise":
            shape = (dataset.num_classes * cfg.ipc, dataset.channels, *dataset.image_size)
            return torch.randn(shape, generator=g).to(self.device)
        per_class = cfg.ipc * cfg.factor ** 2  # factor**2 real images tile each stored one
        idx = torch.cat([i[torch.randperm(len(i), generator=g)[:per_class]] for i in batches.by_class])
        return encode(batches.real_images(idx), cfg.factor).clone()

    def _check_networks(self, dataset: ImageDataset) -> None:
        """Build every model name and every choice value once, so that a bad one fails
        before the first iteration instead of whenever it happens to be drawn."""
        cfg = self.config
        names = model_names(cfg.model)
        if len(names) == 1 and not cfg.model_choices:
            return  # built at the first iteration anyway
        first = {**cfg.model_options, **{k: v[0] for k, v in cfg.model_choices.items()}}
        variants = [(name, first) for name in names]
        variants += [(names[0], {**first, key: value})
                     for key, values in cfg.model_choices.items() for value in values[1:]]
        for name, options in variants:
            models.create(name, dataset.channels, dataset.num_classes, dataset.image_size, **options)

    def network(self, dataset: ImageDataset, seed: int) -> nn.Module:
        """The random network of this run's architecture that ``seed`` draws, on the run's
        device and in training mode (BatchNorm on batch statistics)."""
        cfg = self.config
        # The architecture is drawn from another stream than the weights, so adding
        # choices does not change which initial weights a given architecture gets.
        name, options = cfg.draw_network(derive_seed(seed, _ARCHITECTURE))
        net = models.create(name, dataset.channels, dataset.num_classes, dataset.image_size,
                            seed=seed, **options)
        if not hasattr(net, "forward_features"):
            raise ConfigError(f"model {name!r} has no forward_features(); "
                              "distill with a ConvNet (convnet1-convnet8)")
        net = net.to(self.device, memory_format=self.memory_format).train()
        if not cfg.net_steps:
            net.requires_grad_(False)
        return net

    def _train_network(self, net: nn.Module, batches: SiameseBatches, it: int) -> None:
        """Handout variant: plain SGD steps on real minibatches between image updates."""
        cfg, dataset, real_images = self.config, batches.dataset, batches.real_images
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, it, _NET_TRAIN))
        params = [p for p in net.parameters() if p.requires_grad]
        for _ in range(cfg.net_steps):
            idx = torch.randint(len(dataset), (min(cfg.net_batch, len(dataset)),), generator=g)
            x, y = real_images(idx), dataset.labels[idx].to(self.device)
            loss = F.cross_entropy(net(x), y)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, grad in zip(params, grads):
                    p.sub_(cfg.net_lr * grad)

    # -- checkpoints ---------------------------------------------------------------------

    def _fingerprint(self, dataset: ImageDataset) -> dict:
        return {"name": dataset.name, "n": len(dataset), "classes": list(dataset.classes),
                "shape": list(dataset.images.shape[1:])}

    def _save_checkpoint(self, dataset, syn, optimizer, net, iteration: int) -> Path | None:
        if not self.checkpoint:
            return None
        if not self.shard.is_main:  # every rank holds the same state; one writes it
            return self.checkpoint
        state = optimizer.state.get(syn, {})
        tensors = {"syn": syn.detach(),
                   "momentum": state.get("momentum_buffer", torch.zeros(0))}
        if self.config.net_steps and net is not None:
            tensors.update({f"net.{k}": v for k, v in net.state_dict().items()})
        if self.log.snapshots:
            tensors["snapshots"] = torch.stack(self.log.snapshots)
        save_tensors(self.checkpoint, tensors, stamp("checkpoint", {
            "kind": "checkpoint", "method": self.name, "config": self.config.to_dict(),
            "iteration": iteration, "loss_history": self.log.history[:iteration],
            "loss_terms": {name: v[:iteration] for name, v in self.log.term_history.items()},
            "snapshot_iterations": list(self.log.snapshot_iterations),
            "dataset": self._fingerprint(dataset), "saved_at": time.time(),
            # lets SyntheticSet.load read a run in progress as a set
            "mean": list(dataset.mean), "std": list(dataset.std),
            "wall_time_s": round(self.elapsed_seconds(), 3),
        }))
        return self.checkpoint

    def _load_checkpoint(self, dataset, syn, optimizer) -> tuple[int, nn.Module | None]:
        if not self.checkpoint or not self.checkpoint.is_file():
            raise ConfigError(f"cannot resume: no checkpoint at {self.checkpoint}")
        tensors, meta = load_tensors(self.checkpoint)
        if meta.get("kind") != "checkpoint":
            raise ConfigError(f"{self.checkpoint}: not a datadam checkpoint")
        meta = migrate("checkpoint", meta)
        saved = dict(DistillConfig.from_saved(meta["config"]).to_dict(), iterations=None)
        mine = dict(self.config.to_dict(), iterations=None)
        differ = sorted(k for k in mine if saved.get(k) != mine[k])
        if differ:
            raise ConfigError(f"cannot resume from {self.checkpoint}: settings differ "
                              f"({', '.join(differ)})")
        if meta["dataset"] != self._fingerprint(dataset):
            raise ConfigError(f"cannot resume from {self.checkpoint}: it was made on other data")
        iteration = int(meta["iteration"])
        self.log.resumed_at = iteration
        self.log.earlier_seconds = float(meta["wall_time_s"])
        with torch.no_grad():
            syn.copy_(tensors["syn"].to(syn.device))
        if tensors["momentum"].numel():
            optimizer.state[syn]["momentum_buffer"] = tensors["momentum"].to(syn.device).clone()
        self.log.history = list(meta["loss_history"])
        terms = meta["loss_terms"]
        if not terms:
            # terms recorded from here on would be shorter than the loss history
            self.log.records_terms = False
        self.log.term_history = {name: list(v) for name, v in terms.items()}
        if "snapshots" in tensors:
            self.log.snapshots = list(tensors["snapshots"].unbind(0))
            self.log.snapshot_iterations = [int(i) for i in meta.get("snapshot_iterations", [])]
        net = None
        if self.config.net_steps and any(k.startswith("net.") for k in tensors):
            net = self.network(dataset, derive_seed(self.config.seed,
                                                     iteration // self.config.net_keep, _NETWORK))
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        return iteration, net


@register_method
class DataDAM(MatchingMethod):
    """DataDAM (ICCV 2023): spatial attention matching on the inner blocks plus
    last-layer mean matching, on a fresh random ConvNet every iteration."""

    name = "datadam"
    attention = True


@register_method
class DM(MatchingMethod):
    """Distribution matching (Zhao & Bilen, 2023): last-layer mean matching only."""

    name = "dm"
    attention = False
    uses_settings = tuple(f.name for f in fields(DistillConfig)
                          if f.name not in ("attention_power", "sam_weight"))  # the attention term's


__all__ = ["DM", "DataDAM", "MatchingMethod", "class_means", "loss_terms", "matching_loss",
           "matching_targets", "real_matching_targets", "spatial_attention"]
