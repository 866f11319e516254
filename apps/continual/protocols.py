"""The two continual-learning protocols, as Avalanche strategies a user would write:

- ``replay``: fine-tune one model on each experience, with a replay memory mixed into
  every minibatch (``Naive`` + Avalanche's ``ReplayPlugin``);
- ``retrain``: the papers' protocol (GDumb-style): after the memory is updated with an
  experience, a model trained from its initial weights on the memory alone
  (``Naive`` + :class:`RetrainOnMemoryPlugin`).

Both train with datadam's DSA on every minibatch (:class:`DSAPlugin`), as the
distillation papers' evaluation does.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, LRSchedulerPlugin, ReplayPlugin, SupervisedPlugin
from avalanche.training.storage_policy import ExemplarsBuffer
from torch import nn

from datadam.augment import DSA
from datadam.errors import ConfigError

PROTOCOLS = ("replay", "retrain")


class RetrainOnMemoryPlugin(SupervisedPlugin):
    """GDumb-style training with any storage policy: at each experience the memory is
    updated first (from that experience's data), then the model restarts from its
    initial weights and trains on the memory alone.

    Avalanche's ``GDumbPlugin`` hard-wires a class-balanced reservoir; this one takes the
    storage policy to compare (:class:`~datadam.apps.continual.buffers.DistilledBuffer`, herding...).
    A policy that looks at the model to select (herding) sees the model of the previous
    step, trained on the memory so far; at the first step, the initial weights.
    """

    def __init__(self, storage_policy: ExemplarsBuffer):
        super().__init__()
        self.storage_policy = storage_policy
        self._initial: nn.Module | None = None

    def before_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if self._initial is None:
            self._initial = copy.deepcopy(strategy.model)

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        self.storage_policy.post_adapt(strategy, strategy.experience)
        strategy.model = copy.deepcopy(self._initial)
        strategy.adapted_dataset = self.storage_policy.buffer

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        # a fresh model must not inherit the momentum of the previous one
        strategy.optimizer.state.clear()


class DistilledReplayPlugin(ReplayPlugin):
    """Avalanche's ``ReplayPlugin`` for a storage policy with Avalanche's ``pre_adapt`` /
    ``post_adapt`` hooks (a :class:`~datadam.apps.continual.buffers.DistilledBuffer`, or any
    ``ExemplarsBuffer``).

    - Before each experience trains, the policy's ``pre_adapt`` looks at it: a
      ``DistilledBuffer`` refuses then, not after the training, a memory it cannot fill.
    - After each experience, the memory is updated through ``post_adapt``: Avalanche 0.6's
      own plugin calls the deprecated ``update``, which warns on every experience.

    Args:
        storage_policy: the memory; its ``max_size`` is the plugin's ``mem_size``.
        batch_size: new images per minibatch, as ``ReplayPlugin``'s (None: the
            strategy's ``train_mb_size``).
        batch_size_mem: replayed images per minibatch, likewise.
        task_balanced_dataloader: balance the replayed images over tasks, as
            ``ReplayPlugin``'s.
    """

    def __init__(self, storage_policy: ExemplarsBuffer, batch_size: int | None = None,
                 batch_size_mem: int | None = None, task_balanced_dataloader: bool = False):
        super().__init__(mem_size=storage_policy.max_size, batch_size=batch_size,
                         batch_size_mem=batch_size_mem,
                         task_balanced_dataloader=task_balanced_dataloader,
                         storage_policy=storage_policy)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        pre_adapt = getattr(self.storage_policy, "pre_adapt", None)
        if pre_adapt is not None:
            pre_adapt(strategy, strategy.experience)
        super().before_training_exp(strategy, **kwargs)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.storage_policy.post_adapt(strategy, strategy.experience)


class DSAPlugin(SupervisedPlugin):
    """Differentiable siamese augmentation (datadam's DSA) of every training minibatch,
    drawn from a seeded generator; evaluation minibatches are left alone."""

    def __init__(self, dsa: DSA, seed: int = 0):
        super().__init__()
        self.dsa = dsa
        self.generator = torch.Generator().manual_seed(seed)

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        if self.dsa.enabled:
            strategy.mbatch[0] = self.dsa(strategy.mb_x, self.generator)


@dataclass(frozen=True)
class LearnerConfig:
    """How the continual learner trains.

    ``replay``: ``epochs`` passes over each experience (minibatch ``batch`` of new data
    plus ``batch`` replayed images). ``retrain``: ``epochs`` over the memory, lr x0.1
    at half of them (the evaluation protocol's schedule).
    """

    epochs: int = 1
    batch: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


def make_strategy(protocol: str, model: nn.Module, memory: ExemplarsBuffer | None,
                  learner: LearnerConfig, dsa: DSA, *, device: torch.device, seed: int = 0,
                  metrics: EvaluationPlugin | None = None) -> Naive:
    """A ``Naive`` strategy for ``protocol`` (``replay`` or ``retrain``) with ``memory``.

    ``memory=None`` in the replay protocol is plain fine-tuning (no replay), the lower
    bound. Metrics default to accuracy and forgetting per experience and stream, with
    no logger (results are read from ``strategy.eval``'s return value).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if memory is None and protocol == "retrain":
        raise ConfigError("the retrain protocol trains on the memory alone: it needs a buffer")
    optimizer = torch.optim.SGD(model.parameters(), lr=learner.lr, momentum=learner.momentum,
                                weight_decay=learner.weight_decay)
    plugins: list[SupervisedPlugin] = [DSAPlugin(dsa, seed)]
    if protocol == "replay" and memory is not None:
        plugins.append(DistilledReplayPlugin(memory, batch_size=learner.batch,
                                             batch_size_mem=learner.batch))
    if protocol == "retrain":
        plugins.append(RetrainOnMemoryPlugin(memory))
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(learner.epochs // 2, 1)], 0.1)
        plugins.append(LRSchedulerPlugin(scheduler, reset_scheduler=True, reset_lr=True))
    if metrics is None:
        with warnings.catch_warnings():  # no logger on purpose: results come from strategy.eval
            warnings.filterwarnings("ignore", "No loggers specified")
            metrics = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                       forgetting_metrics(experience=True, stream=True), loggers=[])
    return Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(),
                 train_mb_size=learner.batch,
                 train_epochs=learner.epochs, eval_mb_size=1024, device=device,
                 plugins=plugins, evaluator=metrics)
