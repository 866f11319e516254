"""What every iterative method does around its image updates, apart from the algorithm.

:class:`IterativeMethod` keeps the caller's options of an iterative run and its
:class:`~datadam.distill.base.RunLog`; :class:`Bookkeeping` holds the duties of each
iteration as hooks that the loop calls: Ctrl-C before an update, then one device-to-host
copy of the loss, its parts and the images' finiteness (the divergence check and the
loss history), then snapshots, callbacks, checkpoints every N iterations, the iteration's
time and the progress bar.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from datadam.data.base import ImageDataset
from datadam.distill.base import IterationCallback, IterationState, Method, RunLog
from datadam.distill.config import DistillConfig
from datadam.distill.multiformation import decode
from datadam.errors import DistillationInterrupted, DivergenceError
from datadam.progress import LossColumn, progress_bar


class IterativeMethod(Method):
    """A method that learns its images in ``config.iterations`` updates.

    Args:
        config: the run's settings.
        device: where it runs.
        progress: show a progress bar (None: only on a terminal).
        checkpoint: file the run's state is written to every ``checkpoint_every``
            iterations, after the last one and on Ctrl-C.
        checkpoint_every: iterations between checkpoints.
        resume: continue from ``checkpoint``.
        callbacks: called with an :class:`IterationState` after every update.
        snapshot_every: keep the images at iteration 0 and every this many (0: never).
    """

    def __init__(self, config: DistillConfig, device: torch.device, progress: bool | None = None,
                 checkpoint: str | Path | None = None, checkpoint_every: int = 500,
                 resume: bool = False, callbacks: Sequence[IterationCallback] = (),
                 snapshot_every: int = 0):
        super().__init__(config, device, snapshot_every=snapshot_every)
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.callbacks = list(callbacks)
        self.snapshot_every = snapshot_every
        self.log = RunLog()

    def run_log(self) -> RunLog:
        return self.log


@dataclass(frozen=True)
class IterationReading:
    """What the host learns of one image update: the loss, its parts by name, and
    whether every image is still finite after the update."""

    loss: float
    terms: dict[str, float]
    images_finite: bool

    def divergence(self, iteration: int) -> str | None:
        """What went wrong at ``iteration`` (the loss first), or None."""
        if not math.isfinite(self.loss):
            return f"loss became {self.loss} at iteration {iteration}"
        if not self.images_finite:
            return f"synthetic images became non-finite at iteration {iteration}"
        return None


def read_iteration(loss: torch.Tensor, terms: dict[str, torch.Tensor],
                   images: torch.Tensor) -> IterationReading:
    """The loss (0-dim), its ``terms`` (0-dim each, of the loss's dtype) and whether all of
    ``images`` are finite, in one device-to-host copy: on a GPU every copy waits for the
    queued work, so the loop waits once per iteration."""
    finite = torch.isfinite(images.detach()).all().to(loss.dtype)
    value, *parts, images_finite = torch.stack(
        [loss.detach(), *(t.detach() for t in terms.values()), finite]).tolist()
    return IterationReading(value, dict(zip(terms, parts)), images_finite == 1.0)


def diverged(what: str, checkpoint: Path | None) -> DivergenceError:
    """The error of a run that diverged; it never writes the checkpoint, which holds the
    last good state."""
    kept = ""
    if checkpoint and checkpoint.is_file():
        kept = f"; the last good state is in {checkpoint}"
    return DivergenceError(f"{what}; stopped{kept}; try a smaller --lr-img")


def interrupted(iteration: int, iterations: int, saved: Path | None) -> DistillationInterrupted:
    """The error of a run stopped by Ctrl-C at ``iteration``, its state ``saved`` there (or
    nowhere)."""
    return DistillationInterrupted(
        f"interrupted at iteration {iteration}/{iterations}; "
        + (f"checkpoint saved to {saved}; continue with --resume (Python: resume=True)"
           if saved else "no checkpoint file was set (Python: checkpoint=PATH), "
           "so the run cannot be continued"))


@contextmanager
def stop_on_sigint() -> Iterator[dict]:
    """First Ctrl-C asks the loop to stop at the next iteration boundary (``flag["stop"]``);
    a second one interrupts at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Bookkeeping:
    """The duties of an iterative run around its image updates, as hooks of its loop:
    :meth:`begin` before an update, :meth:`record` right after it, :meth:`finish` at the
    end of the iteration, all inside :meth:`running`.

    Args:
        method: the run; its options and its :class:`RunLog`, which this fills.
        dataset: the real images (their classes and normalisation, for callbacks).
        images: the images the optimiser updates (multi-formation images encoded).
        save: writes a checkpoint of the run after that many iterations; returns where,
            or None when the run has no checkpoint file.
        show_progress: the progress bar's setting (None: only on a terminal).
    """

    def __init__(self, method: IterativeMethod, dataset: ImageDataset, images: torch.Tensor,
                 save: Callable[[int], Path | None], show_progress: bool | None) -> None:
        self.method, self.log, self.config = method, method.log, method.config
        self.dataset, self.images, self.save = dataset, images, save
        self.show_progress = show_progress
        self._stop = {"stop": False}
        self._tick = 0.0

    @contextmanager
    def running(self, start: int) -> Iterator[Bookkeeping]:
        """Show the progress bar and catch Ctrl-C while the loop runs from iteration ``start``."""
        log = self.log
        log.iterations_done = start
        if start == 0 and self.method.snapshot_every:
            log.keep_snapshot(self.images, 0)
        with progress_bar(self.show_progress, LossColumn()) as bar, stop_on_sigint() as stop:
            self._bar, self._stop = bar, stop
            self._task = bar.add_task(f"{self.method.name} ipc={self.config.ipc}",
                                      total=self.config.iterations, completed=start,
                                      loss=log.history[-1] if log.history else None)
            yield self

    def begin(self, iteration: int) -> None:
        """Before the update of ``iteration``: after a Ctrl-C, save and stop."""
        self._tick = time.perf_counter()
        if self._stop["stop"]:
            raise interrupted(iteration, self.config.iterations, self.save(iteration))

    def record(self, iteration: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """After the update of ``iteration`` (of ``loss``, with its parts ``terms``): stop if
        the loss or the images are not finite, else log the loss."""
        reading = read_iteration(loss, terms, self.images)
        problem = reading.divergence(iteration)
        if problem:
            raise diverged(problem, self.method.checkpoint)
        self.log.record(reading.loss, reading.terms)

    def finish(self) -> None:
        """The end of an iteration: snapshot, callbacks and checkpoint when due, time,
        progress bar."""
        method, log, done = self.method, self.log, self.log.iterations_done
        if method.snapshot_every and done % method.snapshot_every == 0:
            log.keep_snapshot(self.images, done)
        if method.callbacks:
            state = self.state()
            for callback in method.callbacks:
                callback(state)
        # the last iteration too: a finished run can then be extended with resume
        if method.checkpoint and (done % method.checkpoint_every == 0 or done == self.config.iterations):
            self.save(done)
        log.iteration_seconds.append(time.perf_counter() - self._tick)
        self._bar.update(self._task, advance=1, loss=log.history[-1])

    def state(self) -> IterationState:
        """What a callback sees now."""
        cfg, dataset, log = self.config, self.dataset, self.log
        return IterationState(log.iterations_done, cfg.iterations, log.history[-1],
                              decode(self.images.detach(), cfg.factor), cfg, list(dataset.classes),
                              dataset.mean, dataset.std, log.last_terms())


__all__ = ["Bookkeeping", "IterationReading", "IterativeMethod", "diverged", "interrupted",
           "read_iteration", "stop_on_sigint"]
