"""Watching a distillation while it runs: TensorBoard logging as an iteration callback.

Examples:
    >>> from datadam.monitor import TensorBoardLogger
    >>> with TensorBoardLogger("runs/tb", image_every=100) as logger:       # doctest: +SKIP
    ...     syn = datadam.distill(train, ipc=10, callbacks=[logger])

Then ``tensorboard --logdir runs/tb``. TensorBoard is optional:
``pip install 'datadam[tensorboard]'``.
"""

from __future__ import annotations

import json
from pathlib import Path

from datadam.distill.base import IterationState
from datadam.errors import ConfigError, MissingDependencyError


def _summary_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError, not ModuleNotFoundError, without tensorboard
        raise MissingDependencyError(
            "TensorBoard logging needs the tensorboard package: pip install 'datadam[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardLogger:
    """An iteration callback (``distill(callbacks=[...])``) writing TensorBoard events.

    Logs the scalar ``loss`` at every iteration (and ``loss_terms/attention``,
    ``loss_terms/last_layer`` for DataDAM), the settings once as text, and the
    image grid ``synthetic`` (one row per class) at iteration ``image_every``, its
    multiples and the last iteration.
    """

    def __init__(self, log_dir: str | Path, image_every: int = 100):
        if image_every < 1:
            raise ConfigError("image_every must be at least 1")
        self.log_dir = Path(log_dir)
        self.image_every = image_every
        self.writer = _summary_writer(self.log_dir)
        self._settings_written = False

    def __call__(self, state: IterationState) -> None:
        from torchvision.utils import make_grid

        if not self._settings_written:
            settings = json.dumps(state.config.to_dict(), indent=2)
            # TensorBoard renders text as markdown: indent four spaces for a code block
            self.writer.add_text("settings", "    " + settings.replace("\n", "\n    "), 0)
            self._settings_written = True
        self.writer.add_scalar("loss", state.loss, state.iteration)
        for name, value in state.terms.items():
            self.writer.add_scalar(f"loss_terms/{name}", value, state.iteration)
        if state.iteration % self.image_every == 0 or state.iteration == state.iterations:
            grid = make_grid(state.denormalized(), nrow=state.config.ipc, padding=2, pad_value=1.0)
            self.writer.add_image("synthetic", grid, state.iteration)

    def close(self) -> None:
        """Flush the events to disk and close the file."""
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
