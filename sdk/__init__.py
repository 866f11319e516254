"""datadam: dataset distillation with attention matching (DataDAM, ICCV 2023).

Condense a labelled image dataset into a few synthetic images per class::

    import datadam
    train = datadam.data.load("mnist", split="train")
    net = datadam.models.create("convnet3", channel=1, num_classes=10, im_size=(28, 28))
"""

from typing import TYPE_CHECKING

from datadam._version import __version__  # noqa: F401
from datadam.errors import DatadamError  # noqa: E402
from datadam.lazy import lazy_exports  # noqa: E402

if TYPE_CHECKING:  # what the names are, for type checkers and the API reference
    from datadam import data, distill, models
    from datadam.distill import DistillConfig
    from datadam.synthetic import SyntheticSet

# Loaded on first use, so that the command line's `--help` and `--version` need no torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    "data": "", "models": "", "distill": "", "DistillConfig": "distill", "SyntheticSet": "synthetic",
})

__all__ = ["__version__", "data", "models", "distill", "DistillConfig", "DatadamError",
           "SyntheticSet"]
