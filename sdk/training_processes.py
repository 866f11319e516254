"""Training several networks at once on a CPU, one worker process each.

A small network does not keep several CPU cores busy: its convolutions are too small to
split well over threads. Training ``jobs`` networks side by side, each in its own
process with its share of the threads, keeps every core busy; it is what running
``datadam evaluate --runs 1 --seed S`` in several shells and merging the files does, in
one command.

Each network is trained by :func:`datadam.training.train_network` with the seed, data
and protocol it would get in the calling process, so the weights are the same up to the
floating-point order of the thread count. The workers are started with ``spawn`` (no
fork of a process holding torch's thread pools), receive the images once, and send back
each trained network's logits on the test images (scoring 10,000 images is seconds of a
core: done where the network is, so the network itself need not travel); the progress
of each epoch and of each chunk of test images comes back through a queue.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from datadam import models as model_registry
from datadam.augment import DSA
from datadam.training import TrainConfig, TrainingCheckpoint, predict, train_network


@dataclass(frozen=True)
class NetworkJob:
    """One network to train: the registry ``model`` built for ``channels`` x ``image_size``
    images of ``classes`` classes with ``seed`` and ``options``, saved every 50 epochs
    to ``checkpoint`` (under ``key``) when given. ``tag`` names it in the progress queue."""

    tag: Any
    model: str
    channels: int
    classes: int
    image_size: tuple[int, int]
    seed: int
    options: dict[str, Any]
    checkpoint: Path | None = None
    key: str = ""

    def build(self) -> torch.nn.Module:
        return model_registry.create(self.model, self.channels, self.classes, self.image_size,
                                     seed=self.seed, **self.options)


# The worker's inputs, set once per process by _start_worker.
_WORKER: dict[str, Any] = {}


# What a worker reports on the queue, as (event, job tag, count): an epoch done, or
# count test images scored.
EPOCH, TESTED = "epoch", "tested"


def _start_worker(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, config: TrainConfig,
                  augmentation: str, threads: int, events: Any) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(images=images, labels=labels, test_images=test_images, config=config,
                   dsa=DSA.from_name(augmentation), events=events)


def _train(job: NetworkJob) -> tuple[float, float, torch.Tensor]:
    """Train and test ``job``'s network: its training and testing seconds and its logits."""
    net = job.build()
    saves = TrainingCheckpoint(job.checkpoint, job.key) if job.checkpoint else None
    events = _WORKER["events"]
    start = time.perf_counter()
    train_network(net, _WORKER["images"], _WORKER["labels"], _WORKER["config"], _WORKER["dsa"], job.seed,
                  progress=lambda: events.put((EPOCH, job.tag, 1)), checkpoint=saves)
    tested = time.perf_counter()
    logits = predict(net, _WORKER["test_images"], progress=lambda n: events.put((TESTED, job.tag, n)))
    done = time.perf_counter()
    return (saves.earlier_seconds if saves else 0.0) + tested - start, done - tested, logits


def train_in_processes(jobs: Iterable[NetworkJob], processes: int, images: torch.Tensor,
                       labels: torch.Tensor, test_images: torch.Tensor, config: TrainConfig,
                       augmentation: str, on_epoch: Callable[[Any], None],
                       on_trained: Callable[[NetworkJob, float, float, torch.Tensor], None],
                       on_tested: Callable[[Any, int], None] | None = None) -> None:
    """Train every job on CPU ``images [N, C, H, W]`` and ``labels [N]`` in ``processes``
    worker processes, with ``torch.get_num_threads() // processes`` threads each (at
    least one), and test each network on ``test_images [M, C, H, W]`` where it was trained.

    Called in this process: ``on_epoch(tag)`` after each epoch of a job's network,
    ``on_tested(tag, n)`` after each chunk of ``n`` test images it scored, and
    ``on_trained(job, train_seconds, test_seconds, logits)`` with the job's training
    and testing times and its network's logits ``[M, K]``
    (:func:`~datadam.training.predict`) as it finishes, in the order they finish.

    An exception in a worker is raised here, and the workers left are stopped.
    """
    jobs = list(jobs)
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    threads = max(1, torch.get_num_threads() // processes)
    worker_inputs = (images.cpu(), labels.cpu(), test_images.cpu(), config, augmentation, threads, events)
    pool = ProcessPoolExecutor(max_workers=min(processes, len(jobs)) or 1, mp_context=context,
                               initializer=_start_worker, initargs=worker_inputs)

    def report(event: tuple[str, Any, int]) -> None:
        kind, tag, count = event
        if kind == EPOCH:
            on_epoch(tag)
        elif on_tested is not None:
            on_tested(tag, count)

    def drain(timeout: float) -> None:
        try:
            report(events.get(timeout=timeout))
            while True:
                report(events.get_nowait())
        except queue_module.Empty:
            pass

    try:
        job_of = {pool.submit(_train, job): job for job in jobs}
        pending = set(job_of)
        while pending:
            drain(0.2)
            finished, pending = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in finished:
                train_seconds, test_seconds, logits = future.result()
                drain(0)  # the network's last epochs and test images before the network itself
                on_trained(job_of[future], train_seconds, test_seconds, logits)
    except BaseException:  # Ctrl-C or a worker's error: stop the others, whose saves stay
        processes_left = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes_left:
            process.terminate()
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        events.close()
