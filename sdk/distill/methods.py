"""The condensation methods by name, and :func:`distill`, the one entry point to them.

Importing this module registers the methods datadam ships (:mod:`~datadam.distill.matching`
and :mod:`~datadam.distill.coreset`); a method of your own registers itself with
:func:`~datadam.distill.base.register_method`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from datadam.data.convert import as_image_dataset
from datadam.distill import coreset, matching  # noqa: F401  (they register their methods)
from datadam.distill.base import _METHODS, IterationCallback, Method, resolve_device
from datadam.distill.config import DistillConfig
from datadam.errors import UnknownNameError
from datadam.synthetic import SyntheticSet


def available_methods() -> list[str]:
    """The names :func:`distill` accepts as ``method``."""
    return sorted(_METHODS)


def settings_used(method: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (a set's config) but those that ``method`` does not read
    (:attr:`Method.uses_settings`); all of them for a method this installation lacks."""
    uses = _METHODS[method].uses_settings if method in _METHODS else None
    return dict(settings) if uses is None else {k: v for k, v in settings.items() if k in uses}


def get_method(name: str) -> type[Method]:
    try:
        return _METHODS[name.lower()]
    except KeyError:
        raise UnknownNameError("method", name, available_methods()) from None


def distill(dataset: Any, method: str | None = None, ipc: int | None = None, *,
            device: str | torch.device = "auto", progress: bool | None = None,
            checkpoint: str | Path | None = None, checkpoint_every: int = 500,
            resume: bool = False, config: DistillConfig | None = None,
            callbacks: Sequence[IterationCallback] = (), snapshot_every: int = 0,
            **options: Any) -> SyntheticSet:
    """Condense ``dataset`` into ``ipc`` images per class.

    Args:
        dataset: the training split: an :class:`~datadam.data.ImageDataset`
            (:func:`datadam.data.load`), an ``(images, labels)`` pair of tensors, a
            ``TensorDataset`` or a map-style Dataset of ``(image, label)``
            (:func:`datadam.data.as_image_dataset`: ``uint8 [N, C, H, W]`` or float in
            ``[0, 1]``, labels ``0..K-1``).
        method: ``datadam`` (default), ``dm``, ``random``, ``herding`` or ``kcenter``.
        ipc: images per class (default 10).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        progress: show a progress bar (None: only on a terminal).
        checkpoint: file to write the run's state to every ``checkpoint_every``
            iterations, after the last one and on Ctrl-C (a diverging run leaves the last
            good one in place).
        resume: continue from ``checkpoint``; the result equals an uninterrupted run.
            With more ``iterations`` than the checkpoint's run, it extends that run.
        config: a full :class:`DistillConfig`; ``options`` override its fields.
        callbacks: functions called with an :class:`IterationState` after every image
            update (``datadam``, ``dm``), e.g. a :class:`datadam.monitor.TensorBoardLogger`.
        snapshot_every: keep a copy of the images at iteration 0 and every this many
            iterations in ``SyntheticSet.snapshots`` (0: none), for
            :func:`datadam.plots.plot_evolution`. Snapshots survive a resume.
        **options: any :class:`DistillConfig` field (``iterations``, ``batch_real``,
            ``lr_img``, ``attention_power``, ``task_balance``, ``init``, ``seed``...).
            ``augmentation`` left out comes from the data, and the set's
            ``metadata["augmentation_rule"]`` says why
            (:func:`datadam.augment.augmentation_rule`).

    Returns:
        A :class:`~datadam.synthetic.SyntheticSet` with images ``[K * ipc, C, H, W]``
        (``[K * ipc * factor**2, C, H, W]`` with multi-formation).

    Raises:
        DataTypeError: ``dataset`` is none of the kinds above (a ``TypeError``).
        DataFormatError: malformed data, in one line (labels not ``0..K-1``, float
            pixels outside ``[0, 1]``, images and labels of different lengths...).
    """
    dataset = as_image_dataset(dataset)
    given = {k: v for k, v in (("method", method), ("ipc", ipc)) if v is not None}
    cfg = (config or DistillConfig()).replace(**given, **options)
    cls = get_method(cfg.method)
    cfg = cfg.resolve(dataset)
    runner = cls(cfg, resolve_device(device), progress=progress, checkpoint=checkpoint,
                 checkpoint_every=checkpoint_every, resume=resume, callbacks=callbacks,
                 snapshot_every=snapshot_every)
    return runner.run(dataset)
