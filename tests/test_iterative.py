"""The bookkeeping of iterative methods, piece by piece, and the loop's one host copy."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from helpers import fast_distill

from datadam.data import as_image_dataset
from datadam.distill import DistillConfig, distill
from datadam.distill.base import RunLog
from datadam.distill.coreset import Herding
from datadam.distill.iterative import (
    Bookkeeping,
    IterationReading,
    diverged,
    interrupted,
    read_iteration,
)
from datadam.distill.matching import DataDAM, NetworkWindows
from datadam.errors import DistillationInterrupted, DivergenceError

_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


class HostReads:
    """Counts the Tensor methods that copy a value to the host (on a GPU, each waits for
    the queued work)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in _READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def read(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)
        return read


def _terms(attention: float, last: float) -> dict[str, torch.Tensor]:
    return {"attention": torch.tensor(attention), "last_layer": torch.tensor(last)}


def test_one_reading_copies_the_loss_its_terms_and_the_images_finiteness_at_once(monkeypatch):
    images = torch.randn(4, 1, 3, 3)
    terms = _terms(0.25, 2.0)
    reads = HostReads(monkeypatch)
    reading = read_iteration(terms["attention"] + terms["last_layer"], terms, images)
    assert reads.count == 1
    assert reading == IterationReading(2.25, {"attention": 0.25, "last_layer": 2.0}, True)
    images[2, 0, 1, 1] = float("-inf")
    assert not read_iteration(torch.tensor(1.0), terms, images).images_finite


def test_the_loss_is_blamed_before_the_images():
    assert IterationReading(1.0, {}, True).divergence(7) is None
    assert IterationReading(float("nan"), {}, False).divergence(7) == "loss became nan at iteration 7"
    assert IterationReading(float("inf"), {}, True).divergence(2) == "loss became inf at iteration 2"
    images = IterationReading(1.0, {}, False).divergence(3)
    assert images == "synthetic images became non-finite at iteration 3"


def test_a_divergence_names_the_checkpoint_only_if_it_exists(tmp_path):
    ckpt = tmp_path / "c.safetensors"
    assert str(diverged("x", ckpt)) == "x; stopped; try a smaller --lr-img"
    assert str(diverged("x", None)) == "x; stopped; try a smaller --lr-img"
    ckpt.write_bytes(b"")
    assert str(diverged("x", ckpt)) == f"x; stopped; the last good state is in {ckpt}; try a smaller --lr-img"


def test_an_interruption_says_how_to_continue_or_that_it_cannot(tmp_path):
    assert "checkpoint saved to a.st; continue with --resume" in str(interrupted(4, 10, tmp_path / "a.st")
                                                                  ).replace(str(tmp_path) + os.sep, "")
    assert str(interrupted(4, 10, None)).startswith("interrupted at iteration 4/10; no checkpoint file")


def test_the_log_records_terms_only_when_asked():
    log = RunLog()
    log.record(3.0, {"attention": 1.0, "last_layer": 2.0})
    assert (log.history, log.term_history, log.iterations_done) == ([3.0], {}, 1)
    log = RunLog(records_terms=True)
    for value in (3.0, 1.5):
        log.record(value, {"attention": value / 3, "last_layer": 2 * value / 3})
    assert log.term_history == {"attention": [1.0, 0.5], "last_layer": [2.0, 1.0]}
    assert log.last_terms() == {"attention": 0.5, "last_layer": 1.0} and log.iterations_done == 2


def test_the_log_keeps_snapshots_as_copies_and_times_without_the_first_iteration():
    log = RunLog()
    images = torch.zeros(2, 1, 2, 2, requires_grad=True)
    log.keep_snapshot(images, 0)
    with torch.no_grad():
        images += 1
    assert log.snapshots[0].sum() == 0 and not log.snapshots[0].requires_grad
    assert log.seconds_per_iteration() is None
    log.iteration_seconds = [9.0, 1.0, 3.0, 2.0]
    assert log.seconds_per_iteration() == 2.0


def test_a_coreset_has_no_iterative_state():
    coreset = Herding(DistillConfig(), torch.device("cpu"), checkpoint="ignored.safetensors")
    assert coreset.run_log() == RunLog()
    assert not any(hasattr(coreset, name) for name in ("log", "checkpoint", "callbacks", "history"))


def test_networks_are_drawn_once_per_window_and_a_restored_one_ends_its_window():
    drawn = []
    windows = NetworkWindows(lambda w: drawn.append(w) or f"net{w}", keep=3)
    assert [windows.at(it) for it in range(7)] == ["net0"] * 3 + ["net1"] * 3 + ["net2"]
    assert drawn == [0, 1, 2]
    drawn.clear()
    resumed = NetworkWindows(lambda w: drawn.append(w) or f"net{w}", keep=3, start=5, restored="restored")
    assert [resumed.at(it) for it in (5, 6)] == ["restored", "net2"] and drawn == [2]


@pytest.fixture
def book_parts(tmp_path):
    """A DataDAM run's bookkeeping (nothing condensed): 3 classes, 6 iterations,
    snapshots every 2, checkpoints every 4, a callback, and ``save`` recording its calls."""
    data = as_image_dataset((torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.arange(3).repeat(2)))
    states, saves = [], []
    cfg = DistillConfig(ipc=1, iterations=6).resolve(data)
    method = DataDAM(cfg, torch.device("cpu"), progress=False, checkpoint=tmp_path / "c.safetensors",
                     checkpoint_every=4, callbacks=[states.append], snapshot_every=2)
    method.log.records_terms = True
    images = torch.randn(3, 1, 4, 4, requires_grad=True)
    book = Bookkeeping(method, data, images, save=lambda n: saves.append(n) or method.checkpoint,
                       show_progress=False)
    return book, method, images, states, saves


def _iterate(book: Bookkeeping, iteration: int, loss: float = 1.0) -> None:
    book.begin(iteration)
    book.record(iteration, torch.tensor(loss), _terms(loss / 4, 3 * loss / 4))
    book.finish()


def test_the_bookkeeping_of_a_whole_run(book_parts):
    book, method, images, states, saves = book_parts
    with book.running(0):
        for it in range(6):
            _iterate(book, it, loss=float(it + 1))
    log = method.log
    assert log.history == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and log.iterations_done == 6
    assert log.term_history["attention"] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    assert log.snapshot_iterations == [0, 2, 4, 6]
    assert saves == [4, 6]  # every 4, and the last
    assert [(s.iteration, s.iterations, s.loss) for s in states] == [(i, 6, float(i)) for i in range(1, 7)]
    assert states[-1].terms == {"attention": 1.5, "last_layer": 4.5}
    torch.testing.assert_close(states[-1].images, images.detach())
    assert len(log.iteration_seconds) == 6


def test_a_resumed_run_takes_no_snapshot_of_its_start(book_parts):
    book, method, _, states, saves = book_parts
    with book.running(3):
        _iterate(book, 3)
    assert method.log.iterations_done == 4 and method.log.snapshot_iterations == [4] and saves == [4]


def test_a_divergence_stops_before_anything_is_logged_or_saved(book_parts):
    book, method, images, states, saves = book_parts
    with book.running(0):
        for it in range(3):
            _iterate(book, it)
        with pytest.raises(DivergenceError, match="loss became nan at iteration 3; stopped; try"):
            _iterate(book, 3, loss=float("nan"))
        with torch.no_grad():
            images[0, 0, 0, 0] = float("inf")
        with pytest.raises(DivergenceError, match="synthetic images became non-finite at iteration 3"):
            _iterate(book, 3)
    assert method.log.iterations_done == 3 and len(method.log.history) == 3
    assert len(states) == 3 and saves == []


def test_ctrl_c_saves_and_stops_at_the_next_iteration(book_parts):
    book, method, _, states, saves = book_parts
    with book.running(0):
        _iterate(book, 0)
        book.begin(1)
        os.kill(os.getpid(), signal.SIGINT)  # caught: the loop finishes its iteration
        book.record(1, torch.tensor(1.0), _terms(0.25, 0.75))
        book.finish()
        saved = f"iteration 2/6; checkpoint saved to {method.checkpoint}"
        with pytest.raises(DistillationInterrupted, match=saved):
            book.begin(2)
    assert saves == [2] and method.log.iterations_done == 2


def test_the_loop_copies_from_the_device_once_per_iteration(tiny, monkeypatch):
    """Without augmentation (whose draws read the CPU generator's numbers), each image
    update reads one value to the host: the loss, its terms and the images' finiteness."""
    counts = {}
    for iterations in (2, 5):
        reads = HostReads(monkeypatch)
        distill(tiny, "datadam", ipc=1, **fast_distill(iterations=iterations, augmentation="none"))
        counts[iterations] = reads.count
        monkeypatch.undo()
    assert (counts[5] - counts[2]) == 3
