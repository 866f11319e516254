"""The ConvNet search space as plain data: its choices, its size, and building one network.

Nothing here imports NNI, so the command line can describe the space (and fail fast on
bad options) before the NNI extra is loaded. :mod:`datadam.apps.nas.space` turns a
:class:`SearchSpace` into an NNI model space.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from datadam import models
from datadam.apps.nas.settings import SpaceSettings
from datadam.errors import ConfigError

#: The keys of an architecture, in the order of :meth:`SearchSpace.key`.
CHOICES = ("depth", "width", "norm", "activation", "pooling")

Architecture = dict[str, Any]


@dataclass(frozen=True)
class SearchSpace(SpaceSettings):
    """Candidate values of each ConvNet option, in the spirit of the DC paper's space.

    The defaults keep widths small: on MNIST a wide ConvNet reaches about 99% whatever
    the other choices, so the ground-truth ranking would be noise (docs/nas.md says how
    the defaults were chosen). 3 x 3 x 3 x 3 x 2 = 162 architectures.

    Its fields (``depth``, ``width``, ``norm``, ``activation``, ``pooling``), each with
    its default and help, are :class:`~datadam.apps.nas.settings.SpaceSettings`'s.
    """

    def __post_init__(self) -> None:
        for name, allowed in (("norm", models.NORMS), ("activation", models.ACTIVATIONS),
                              ("pooling", models.POOLINGS)):
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad:
                raise ConfigError(f"{name} choices must be among {', '.join(allowed)}, not {bad}")
        for name in CHOICES:
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"the space needs at least one {name}")
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} choices repeat a value: {list(values)}")
        if min(self.depth) < 1 or min(self.width) < 1:
            raise ConfigError("depth and width choices must be at least 1")
        if "groupnorm" in self.norm and any(w % 4 for w in self.width):
            raise ConfigError("norm 'groupnorm' needs every width divisible by 4")

    @property
    def size(self) -> int:
        """Number of distinct architectures."""
        return math.prod(len(getattr(self, name)) for name in CHOICES)

    def choices(self) -> dict[str, list[Any]]:
        return {name: list(getattr(self, name)) for name in CHOICES}

    def architectures(self) -> list[Architecture]:
        """Every architecture, in a fixed order (the last choice varies fastest)."""
        return [dict(zip(CHOICES, values))
                for values in itertools.product(*(getattr(self, name) for name in CHOICES))]

    def contains(self, arch: Architecture) -> bool:
        return set(arch) == set(CHOICES) and all(arch[k] in getattr(self, k) for k in CHOICES)

    def check_image_size(self, im_size: tuple[int, int]) -> None:
        """Raise :class:`ConfigError` if the deepest pooled network cannot take ``im_size``."""
        if any(p != "none" for p in self.pooling) and min(im_size) < 2 ** max(self.depth):
            raise ConfigError(f"depth {max(self.depth)} with 2x2 pooling needs images of at least "
                              f"{2 ** max(self.depth)} px, not {im_size[0]}x{im_size[1]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        return cls(**{k: tuple(v) for k, v in d.items() if k in CHOICES})

    def describe(self) -> str:
        parts = " x ".join(f"{name} {{{', '.join(map(str, getattr(self, name)))}}}" for name in CHOICES)
        return f"{self.size} architectures: {parts}"


def distill_family(space: SearchSpace, widths: bool = True) -> dict[str, Any]:
    """Settings of :func:`datadam.distill` that draw every sampled network from ``space``.

    The published method matches features of one architecture (ConvNet-3); a proxy
    distilled that way teaches networks like it best. Drawn from the space, each
    iteration's network is one of the candidates the proxy will have to rank; only
    normalised ones (``norm`` "none" left out; instance norm if the space has no other):
    a random network without normalisation has features whose scale differs from the
    next one's by orders of magnitude, and one such iteration's gradient throws the
    images off (measured on MNIST: pixel values of 1e8 after 1,000 iterations).
    ``widths=False`` keeps the distillation network's own width (128).
    """
    norms = [n for n in space.norm if n != "none"] or ["instancenorm"]
    choices: dict[str, list[Any]] = {"net_norm": norms, "net_act": list(space.activation),
                                     "net_pooling": list(space.pooling)}
    if widths:
        choices["net_width"] = list(space.width)
    return {"model": ",".join(f"convnet{d}" for d in space.depth), "model_choices": choices}


def arch_key(arch: Architecture) -> str:
    """A stable, readable name, e.g. ``d3-w16-batchnorm-relu-avgpooling``."""
    return f"d{arch['depth']}-w{arch['width']}-{arch['norm']}-{arch['activation']}-{arch['pooling']}"


def arch_code(arch: Architecture) -> int:
    """A stable integer per architecture, to derive seeds from (``hash`` changes between processes)."""
    return key_code(arch_key(arch))


def key_code(key: str) -> int:
    """A stable integer per candidate key (any space's), to derive seeds from."""
    return int.from_bytes(key.encode(), "little") % (1 << 61)


def build_network(arch: Architecture, channel: int, num_classes: int, im_size: tuple[int, int],
                  seed: int | None = None) -> nn.Module:
    """The core :class:`~datadam.models.ConvNet` of ``arch`` (what every trial trains)."""
    return models.create(f"convnet{arch['depth']}", channel, num_classes, tuple(im_size), seed=seed,
                         net_width=arch["width"], net_norm=arch["norm"], net_act=arch["activation"],
                         net_pooling=arch["pooling"])
