"""Snapshots, iteration callbacks, TensorBoard, and the attention / evolution pictures."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import datadam
from datadam.cli import app
from datadam.distill import IterationState
from datadam.errors import ConfigError
from datadam.plots import (
    attention_maps,
    class_index,
    convergence_figure,
    plot_attention,
    plot_evolution,
    save_figure,
)
from datadam.synthetic import SyntheticSet, SyntheticSetFormatError

runner = CliRunner()
TINY = {"batch_real": 4, "device": "cpu", "seed": 3}


@pytest.fixture
def train(mnist_idx_root):
    return datadam.data.load("mnist", mnist_idx_root, "train")


def _distinct_tiles(path) -> int:
    """Number of distinct pixel values: a blank or one-colour image has 1 or 2."""
    return len(Image.open(path).convert("L").getcolors(maxcolors=1 << 16) or [])


def test_snapshots_are_kept_in_the_file_and_match_the_run(train, tmp_path):
    syn = datadam.distill(train, ipc=2, iterations=5, snapshot_every=2, **TINY)
    assert syn.metadata["snapshot_iterations"] == [0, 2, 4]
    assert syn.snapshots.shape == (3, *syn.images.shape)
    # iteration 0 is the initialisation; a run of 4 iterations ends where snapshot 4 is
    four = datadam.distill(train, ipc=2, iterations=4, **TINY)
    assert torch.equal(syn.snapshots[2], four.images)
    assert not torch.equal(syn.snapshots[0], syn.snapshots[2])
    syn.save(tmp_path / "s.safetensors")
    back = SyntheticSet.load(tmp_path / "s.safetensors")
    assert torch.equal(back.snapshots, syn.snapshots)
    assert back.metadata["snapshot_iterations"] == [0, 2, 4]
    plain = datadam.distill(train, ipc=2, iterations=2, **TINY)
    assert plain.snapshots is None and "snapshot_iterations" not in plain.metadata


def test_snapshots_survive_a_resume(train, tmp_path):
    ckpt = tmp_path / "c.safetensors"
    whole = datadam.distill(train, ipc=1, iterations=6, snapshot_every=2, **TINY)
    datadam.distill(train, ipc=1, iterations=3, snapshot_every=2, checkpoint=ckpt,
                    checkpoint_every=3, **TINY)
    resumed = datadam.distill(train, ipc=1, iterations=6, snapshot_every=2, checkpoint=ckpt,
                              resume=True, **TINY)
    assert resumed.metadata["snapshot_iterations"] == [0, 2, 4, 6]
    assert torch.equal(resumed.snapshots, whole.snapshots)


def test_mismatched_snapshots_are_refused(train, tmp_path):
    syn = datadam.distill(train, ipc=1, iterations=2, snapshot_every=1, **TINY)
    syn.metadata["snapshot_iterations"] = [0]  # three snapshots, one iteration listed
    syn.save(tmp_path / "bad.safetensors")
    with pytest.raises(SyntheticSetFormatError, match="snapshots"):
        SyntheticSet.load(tmp_path / "bad.safetensors")


def test_at_iteration_gives_the_set_a_shorter_run_would_have_made(train, mnist_idx_root, tmp_path):
    syn = datadam.distill(train, ipc=2, iterations=5, snapshot_every=2, **TINY)
    four = datadam.distill(train, ipc=2, iterations=4, **TINY)
    at_four = syn.at_iteration(4)
    assert torch.equal(at_four.images, four.images) and torch.equal(at_four.labels, syn.labels)
    assert at_four.metadata["iterations_done"] == 4 and at_four.snapshots is None
    assert at_four.metadata["loss_history"] == syn.metadata["loss_history"][:4]
    assert torch.equal(syn.at_iteration(5).images, syn.images)  # the end is always there
    with pytest.raises(ConfigError, match="snapshots at iterations 0, 2, 4"):
        syn.at_iteration(3)
    with pytest.raises(ConfigError, match="no snapshots"):
        four.at_iteration(2)
    syn.save(tmp_path / "s.safetensors")
    out = runner.invoke(app, ["evaluate", str(tmp_path / "s.safetensors"), "--at-iteration", "3",
                              "--root", str(mnist_idx_root), "--epochs", "1", "--runs", "1"])
    assert out.exit_code == 1 and "no images at iteration 3" in out.output
    out = runner.invoke(app, ["evaluate", str(tmp_path / "s.safetensors"), "--at-iteration", "2",
                              "--root", str(mnist_idx_root), "--epochs", "1", "--runs", "1",
                              "--device", "cpu", "--json", str(tmp_path / "e.json")])
    assert out.exit_code == 0, out.output
    assert "at iteration 2" in out.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["settings"]["synthetic"]["iterations_done"] == 2


def test_convergence_figure_draws_accuracy_and_loss(tmp_path):
    fig = convergence_figure([0, 500, 1000], [90.0, 94.0, 95.0], [1.0, 0.5, 0.4],
                             [40.0 - i / 100 for i in range(1000)], "datadam ipc 10")
    accuracy_ax, loss_ax = fig.axes
    assert accuracy_ax.get_title() == "datadam ipc 10" and loss_ax.get_yscale() == "log"
    assert list(accuracy_ax.lines[0].get_xdata()) == [0, 500, 1000]
    save_figure(fig, tmp_path / "c.png")
    assert _distinct_tiles(tmp_path / "c.png") > 10


def test_loss_figure_draws_each_loss_term_beside_the_loss():
    from datadam.plots import loss_figure

    history = [30.0 - i / 100 for i in range(1000)]
    terms = {"attention": [h * 0.6 for h in history], "last_layer": [h * 0.4 for h in history]}
    ax = loss_figure(history, "datadam IPC 10", terms).axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["per iteration", "mean of 20 iterations", "attention term (SAM)", "last-layer term"]
    # each term as its moving average over the same window as the loss's
    assert ax.lines[2].get_ydata()[0] == pytest.approx(0.6 * ax.lines[1].get_ydata()[0])
    assert len(loss_figure(history).axes[0].lines) == 2  # a set without terms: the loss alone


def test_callbacks_see_every_iteration_with_the_current_images(train):
    seen: list[IterationState] = []
    syn = datadam.distill(train, method="dm", ipc=1, iterations=3,
                          callbacks=[lambda s: seen.append(s)], **TINY)
    assert [s.iteration for s in seen] == [1, 2, 3]
    assert [float(f"{s.loss:.6g}") for s in seen] == syn.metadata["loss_history"]  # the file keeps 6 digits
    assert all(s.terms == {} for s in seen)  # DM's loss is its only term
    assert all(s.iterations == 3 and s.config.method == "dm" for s in seen)
    assert torch.equal(seen[-1].images.cpu(), syn.images)
    pixels = seen[-1].denormalized()
    assert pixels.min() >= 0 and pixels.max() <= 1


def test_tensorboard_logs_loss_every_iteration_and_images_every_n(train, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from datadam.monitor import TensorBoardLogger

    with TensorBoardLogger(tmp_path / "tb", image_every=2) as logger:
        datadam.distill(train, ipc=1, iterations=5, callbacks=[logger], **TINY)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0}).Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4, 5]
    attention, last = events.Scalars("loss_terms/attention"), events.Scalars("loss_terms/last_layer")
    assert [e.step for e in attention] == [e.step for e in last] == [1, 2, 3, 4, 5]
    for total, a, b in zip(events.Scalars("loss"), attention, last):
        assert a.value + b.value == pytest.approx(total.value, rel=1e-4)
    assert [e.step for e in events.Images("synthetic")] == [2, 4, 5]  # every 2, and the last


def test_missing_tensorboard_is_one_line(mnist_idx_root, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root),
                            "--out", str(tmp_path / "s.safetensors"), "--tensorboard",
                            str(tmp_path / "tb")])
    assert r.exit_code == 1
    assert "pip install 'datadam[tensorboard]'" in r.output and "Traceback" not in r.output


def test_attention_maps_are_normalised_per_image(train):
    net = datadam.models.create("convnet3", 1, 10, (28, 28), seed=0,
                                net_norm="batchnorm", net_pooling="avgpooling").train()
    maps = attention_maps(net, train.normalized(slice(0, 4)), power=4)
    assert [tuple(m.shape) for m in maps] == [(4, 28, 28), (4, 14, 14)]  # blocks 1, 2 of 3
    for m in maps:
        assert torch.allclose(m.flatten(1).norm(dim=1), torch.ones(4), atol=1e-5)


def test_class_index_by_name_prefix_or_index(train):
    syn = datadam.distill(train, method="random", ipc=1, **TINY)
    assert class_index(syn, "3") == 3 and class_index(syn, "7 - seven") == 7
    assert class_index(syn, 9) == 9
    with pytest.raises(ConfigError, match="unknown"):
        class_index(syn, "cat")
    with pytest.raises(ConfigError, match="out of range"):
        class_index(syn, 10)


def test_attention_and_evolution_pictures(train, tmp_path):
    syn = datadam.distill(train, ipc=2, iterations=4, snapshot_every=2, **TINY)
    att = plot_attention(syn, train, 3, tmp_path / "a.png", n_images=3)
    evo = plot_evolution(syn, 3, tmp_path / "e.png")
    for path in (att, evo):
        assert _distinct_tiles(path) > 50  # real content, not an empty canvas
    # the strip has one column per snapshot (0, 2, 4): wider than tall for 2 images
    width, height = Image.open(evo).size
    assert width > height
    without = datadam.distill(train, ipc=1, iterations=1, **TINY)
    with pytest.raises(ConfigError, match="snapshot-every"):
        plot_evolution(without, 0, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_show_draws_attention_and_evolution_from_the_cli(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "1",
                            "--iterations", "3", "--batch-real", "4", "--snapshot-every", "1",
                            "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["show", str(out), "--root", str(mnist_idx_root), "--class", "5",
                            "--attention", str(tmp_path / "a.png"),
                            "--evolution", str(tmp_path / "e.png")])
    assert r.exit_code == 0, r.output
    assert "0, 1, 2, 3" in r.output  # the snapshot iterations
    assert _distinct_tiles(tmp_path / "a.png") > 50 and _distinct_tiles(tmp_path / "e.png") > 20
    r = runner.invoke(app, ["show", str(out), "--class", "dog", "--evolution", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "unknown" in r.output


def test_tensorboard_from_the_cli(mnist_idx_root, tmp_path):
    pytest.importorskip("tensorboard")
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "1",
                            "--iterations", "2", "--batch-real", "4", "--device", "cpu",
                            "--out", str(tmp_path / "s.safetensors"),
                            "--tensorboard", str(tmp_path / "tb"), "--tensorboard-every", "1"])
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
