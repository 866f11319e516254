"""The balance of DataDAM's two loss terms at a synthetic set (``datadam show --balance``)."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import fast_distill
from typer.testing import CliRunner

from datadam.cli import app
from datadam.distill import distill
from datadam.distill.balance import term_balance
from datadam.errors import ConfigError


def test_term_balance_measures_each_weighted_term_and_its_gradient(tiny):
    syn = distill(tiny, "datadam", ipc=2, **fast_distill())
    balance = term_balance(syn, tiny, networks=3, device="cpu")
    assert len(balance.networks) == 3 and len({row["seed"] for row in balance.networks}) == 3
    for row in balance.networks:
        assert row["attention"] > 0 and row["last_layer"] > 0
        assert row["attention_gradient"] > 0 and row["last_layer_gradient"] > 0
    summary = balance.summary()
    ratios = [r["attention_gradient"] / r["last_layer_gradient"] for r in balance.networks]
    assert summary["gradient_ratio"] == pytest.approx(sum(ratios) / 3)
    assert balance.settings["task_balance"] == 0.01 and balance.settings["networks"] == 3
    # the same seed draws the same networks, real images and augmentation
    assert term_balance(syn, tiny, networks=3, device="cpu").networks == balance.networks
    assert term_balance(syn, tiny, networks=3, seed=1, device="cpu").networks != balance.networks

    # the set's lambda weights the last-layer term and its gradient, and nothing else
    doubled = syn.metadata["config"]["task_balance"] * 2
    syn.metadata["config"] = dict(syn.metadata["config"], task_balance=doubled)
    heavier = term_balance(syn, tiny, networks=3, device="cpu")
    for row, other in zip(balance.networks, heavier.networks):
        assert other["last_layer"] == pytest.approx(2 * row["last_layer"], rel=1e-4)
        assert other["last_layer_gradient"] == pytest.approx(2 * row["last_layer_gradient"], rel=1e-4)
        assert other["attention_gradient"] == pytest.approx(row["attention_gradient"], rel=1e-4)


def test_term_balance_refuses_what_it_cannot_measure(tiny, mnist_idx_root):
    syn = distill(tiny, "datadam", ipc=1, **fast_distill(iterations=1))
    with pytest.raises(ConfigError, match="at least 1"):
        term_balance(syn, tiny, networks=0)
    coreset = distill(tiny, "random", ipc=1, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="datadam and dm, not of 'random'"):
        term_balance(coreset, tiny, networks=1)
    renamed = dataclasses.replace(syn, classes=[f"class {i}" for i in range(len(syn.classes))])
    with pytest.raises(ConfigError, match="not the data of this synthetic set"):
        term_balance(renamed, tiny, networks=1)


def test_show_balance_from_the_cli(mnist_idx_root, tmp_path):
    runner = CliRunner()
    out = tmp_path / "s.safetensors"
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "1",
                            "--iterations", "2", "--batch-real", "4", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["show", str(out), "--balance", "2", "--root", str(mnist_idx_root),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "loss terms (weighted) and their gradients" in r.output and "ratio" in r.output
    words = " ".join(r.output.split())  # rich wraps long lines
    assert "drives the images" in words and "(mean over 2 networks)" in words

    coreset = tmp_path / "r.safetensors"
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--method", "random",
                            "--ipc", "1", "--out", str(coreset), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["show", str(coreset), "--balance", "2", "--root", str(mnist_idx_root)])
    assert r.exit_code == 1 and "error: the loss terms are those of datadam and dm" in r.output
    assert "Traceback" not in r.output
