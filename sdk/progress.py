"""Progress bars (rich) that stay quiet when output is not a terminal."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Steps per second, e.g. ``3.21 it/s``."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s", style="progress.data.speed")


class LossColumn(ProgressColumn):
    """The task's ``loss`` field, e.g. ``loss 36.61``; ``loss -`` before the first value."""

    def render(self, task) -> Text:
        loss = task.fields.get("loss")
        return Text(f"loss {loss:.4g}" if loss is not None else "loss -")


def progress_bar(enabled: bool | None, *fields: ProgressColumn) -> Progress:
    """A bar with description, count, ``fields``, rate, elapsed time and ETA.

    ``enabled=None`` shows it only when the console is a terminal.
    """
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *fields,
                   RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    bar.disable = not bar.console.is_terminal if enabled is None else not enabled
    return bar
