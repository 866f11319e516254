"""Progress bars (rich): drawn on a terminal, a plain status line now and then elsewhere.

A run whose output goes to a file (``nohup``, a batch scheduler's log) gets a line such
as ``distill 600/2000 loss 1.234 0.35 it/s 0:28:12 ETA 1:06:40`` on stderr every
``$DATADAM_PROGRESS_INTERVAL`` seconds (default 60; 0 turns them off) and one when a
task that wrote such lines finishes, so an hour-long run's log says where it stands.
"""

from __future__ import annotations

import os
import sys
import time

from rich import get_console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from datadam.errors import ConfigError

INTERVAL_VARIABLE = "DATADAM_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 60.0


class RateColumn(ProgressColumn):
    """Steps per second, e.g. ``3.21 it/s``."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s", style="progress.data.speed")


class LossColumn(ProgressColumn):
    """The task's ``loss`` field, e.g. ``loss 36.61``; ``loss -`` before the first value."""

    def render(self, task) -> Text:
        loss = task.fields.get("loss")
        return Text(f"loss {loss:.4g}" if loss is not None else "loss -")


class StatusLines(Progress):
    """A :class:`rich.progress.Progress` that draws nothing and instead writes each task's
    columns as one plain line to ``stream`` at most every ``interval`` seconds, and once
    more when a task that wrote a line finishes."""

    def __init__(self, *columns: ProgressColumn, interval: float, stream=None):
        super().__init__(*columns, disable=True)
        self.interval, self.stream = interval, stream
        self._last_line: dict[TaskID, float] = {}
        self._wrote: set[TaskID] = set()

    def add_task(self, *args, **kwargs) -> TaskID:
        task_id = super().add_task(*args, **kwargs)
        self._last_line[task_id] = time.monotonic()
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_write(task_id)

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_write(task_id)

    def line(self, task_id: TaskID) -> str:
        """The task's columns as plain text (the bar itself left out)."""
        task = self._tasks[task_id]
        parts = (column(task) for column in self.columns if not isinstance(column, BarColumn))
        return " ".join(part.plain.strip() for part in parts if isinstance(part, Text) and part.plain.strip())

    def _maybe_write(self, task_id: TaskID) -> None:
        now = time.monotonic()
        finished = self._tasks[task_id].finished
        if now - self._last_line[task_id] < self.interval and not (finished and task_id in self._wrote):
            return
        if finished:
            self._wrote.discard(task_id)
            self._last_line[task_id] = float("inf")  # one closing line, however often it is updated after
        else:
            self._wrote.add(task_id)
            self._last_line[task_id] = now
        stream = self.stream or sys.stderr
        try:
            stream.write(self.line(task_id) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or file: a status line must not end a long run
            self.interval = float("inf")
            self._wrote.clear()


def status_interval() -> float:
    """Seconds between status lines off a terminal: ``$DATADAM_PROGRESS_INTERVAL``, else 60."""
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{INTERVAL_VARIABLE} must be a number of seconds >= 0 (0 = no status lines), "
                          f"not {text!r}")
    return value


def progress_bar(enabled: bool | None, *fields: ProgressColumn) -> Progress:
    """A bar with description, count, ``fields``, rate, elapsed time and ETA.

    ``enabled=None`` draws it on a terminal; elsewhere it writes :class:`StatusLines`
    every ``$DATADAM_PROGRESS_INTERVAL`` seconds (none when that is 0). ``False`` is silent.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *fields,
               RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    if enabled is None and not get_console().is_terminal:  # the console a Progress draws on
        interval = status_interval()
        if interval:
            return StatusLines(*columns, interval=interval)
        enabled = False
    return Progress(*columns, disable=enabled is False)  # None here: a terminal, so a bar
