"""datadam: dataset distillation with attention matching (DataDAM, ICCV 2023).

Condense a labelled image dataset into a few synthetic images per class::

    import datadam
    train = datadam.data.load("mnist", split="train")
    net = datadam.models.create("convnet3", channel=1, num_classes=10, im_size=(28, 28))
"""

__version__ = "0.1.0"

from datadam import data, models  # noqa: E402
from datadam.distill import DistillConfig, distill  # noqa: E402
from datadam.errors import DatadamError  # noqa: E402
from datadam.synthetic import SyntheticSet  # noqa: E402

__all__ = ["__version__", "data", "models", "distill", "DistillConfig", "DatadamError",
           "SyntheticSet"]
