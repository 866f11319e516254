"""The NNI model space over the ConvNet family.

Each option of :class:`~datadam.apps.nas.architecture.SearchSpace` is an ``nni.choice``
registered on the space with ``add_mutable``, so NNI sees five categorical mutables and
every multi-trial strategy (random, regularized evolution, grid, TPE...) can sample it.
A frozen sample builds the core :class:`~datadam.models.ConvNet` (NNI's ``ensure_frozen``
pattern for modules that take plain values), the very network the evaluation trains.
"""

from __future__ import annotations

from typing import Any

import torch

from datadam.apps.nas._nni import import_nni
from datadam.apps.nas.architecture import CHOICES, Architecture, SearchSpace, build_network

nni = import_nni()
_ModelSpace = nni.nas.nn.pytorch.ModelSpace
_ensure_frozen = nni.mutable.ensure_frozen
_model_context = nni.nas.space.model_context


class ConvNetSpace(_ModelSpace):
    """NNI model space: ConvNet depth, width, normalisation, activation and pooling.

    Args:
        channel: input channels ``C`` of the data.
        num_classes: classes ``K``.
        im_size: image size ``(H, W)``.
        space: the choices, as :meth:`SearchSpace.to_dict` (default: :class:`SearchSpace`'s).

    Attributes:
        arch: the architecture this instance was built with (the first choices during
            NNI's dry run, the sampled ones once frozen).
        net: that :class:`~datadam.models.ConvNet`.

    >>> space = ConvNetSpace(1, 10, (28, 28))                         # doctest: +SKIP
    >>> model = space.freeze({"depth": 2, "width": 8, "norm": "none",
    ...                       "activation": "gelu", "pooling": "maxpooling"})  # doctest: +SKIP
    >>> model.arch["depth"], model(torch.zeros(4, 1, 28, 28)).shape   # doctest: +SKIP
    (2, torch.Size([4, 10]))
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int] | list[int],
                 space: dict[str, Any] | None = None):
        super().__init__()
        choices = SearchSpace.from_dict(space) if space else SearchSpace()
        choices.check_image_size(tuple(im_size))
        arch: Architecture = {}
        for name in CHOICES:
            mutable = self.add_mutable(nni.choice(name, list(getattr(choices, name))))
            arch[name] = _ensure_frozen(mutable)
        self.arch = arch
        self.net = build_network(arch, channel, num_classes, tuple(im_size))

    def freeze(self, sample: dict[str, Any]) -> ConvNetSpace:
        """The space rebuilt with ``sample``'s choices (NNI's recipe for spaces with ``add_mutable``)."""
        with _model_context(sample):
            return self.__class__(*self.trace_args, **self.trace_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def space_size(space: ConvNetSpace) -> int:
    """Number of architectures NNI sees in ``space`` (the product of its choices' sizes)."""
    size = 1
    for mutable in space.simplify().values():
        size *= len(mutable.values)
    return size
