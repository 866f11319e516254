"""``datadam nas search`` and ``datadam nas study`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import torch
from typer.testing import CliRunner

from datadam import data, distill
from datadam.cli import app
from datadam.synthetic import SyntheticSet

runner = CliRunner()
TINY_SPACE = ["--depths", "1,2", "--widths", "4", "--norms", "batchnorm", "--activations", "relu",
              "--poolings", "avgpooling"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_nas_group_is_an_entry_point_and_loads_no_nni():
    assert any(e.name == "nas" and e.value == "datadam.apps.nas.cli:app"
               for e in entry_points(group="datadam.commands"))
    r = run("nas", "--help")
    assert r.exit_code == 0 and "search" in r.output and "study" in r.output
    code = "import sys, datadam.cli; print('nni' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_search_and_study_commands(mnist_idx_root, tmp_path):
    r = run("nas", "search", "mnist", "--proxy", "random", "--ipc", 1, "--strategy", "grid",
            "--epochs", 1, "--validation", 10, "--root", mnist_idx_root, "--out", tmp_path / "s",
            "--precision", "bf16", "--no-progress", *TINY_SPACE)
    assert r.exit_code == 0, r.output
    assert "space: 2 architectures" in r.output and "trial 2/2" in r.output and "best of 2 trials" in r.output
    settings = json.loads((tmp_path / "s" / "search.json").read_text())["settings"]
    assert settings["strategy"] == "grid" and settings["task"]["train"]["precision"] == "bf16"
    # another search into the same folder would replace its results: refused, the file kept
    before = (tmp_path / "s" / "search.json").read_bytes()
    r = run("nas", "search", "mnist", "--proxy", "random", "--ipc", 1, "--strategy", "grid",
            "--epochs", 2, "--validation", 10, "--root", mnist_idx_root, "--out", tmp_path / "s",
            "--no-progress", *TINY_SPACE)
    assert r.exit_code == 1 and "search.json" in r.output and "--force" in r.output, r.output
    assert (tmp_path / "s" / "search.json").read_bytes() == before

    syn = tmp_path / "syn.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(syn)
    r = run("nas", "study", "mnist", "--proxies", f"{syn},random", "--archs", 2, "--epochs", 1,
            "--full-epochs", 1, "--batch", 4, "--full-batch", 16, "--validation", 10,
            "--root", mnist_idx_root, "--out", tmp_path / "st",
            "--no-progress", *TINY_SPACE)
    assert r.exit_code == 0, r.output
    assert "Spearman" in r.output and "full data (ground truth)" in r.output
    report = json.loads((tmp_path / "st" / "study.json").read_text())
    assert set(report["proxies"]) == {"syn.safetensors", "random"}
    # condensed from the whole training split, the validation images included: said, and kept
    assert "warning: syn.safetensors was condensed from" in r.output
    details = report["proxies"]["syn.safetensors"]["details"]
    assert "has seen validation images" in details["validation_overlap"]
    assert report["proxies"]["random"]["details"]["validation_overlap"] is None
    assert report["settings"]["full_train"]["epochs"] == 1 and report["settings"]["seed"] == 0
    assert (report["settings"]["proxy_train"]["batch"], report["settings"]["full_train"]["batch"]) == (4, 16)
    assert {report["settings"][k]["precision"] for k in ("proxy_train", "full_train")} == {"fp32"}
    for name in ("study.md", "study_scatter.png", "full_data_cache.json"):
        assert (tmp_path / "st" / name).stat().st_size > 0


def test_distill_command_writes_a_proxy_the_study_accepts(mnist_idx_root, tmp_path):
    proxy = tmp_path / "proxy.safetensors"
    r = run("nas", "distill", "mnist", "--ipc", 1, "--iterations", 2, "--validation", 10, "--root",
            mnist_idx_root, "--out", proxy, "--no-progress", "--device", "cpu", "--networks", "space",
            *TINY_SPACE)
    assert r.exit_code == 0, r.output
    train = data.load("mnist", mnist_idx_root)
    assert f"condensed from {len(train) - 10} training images" in r.output
    syn = SyntheticSet.load(proxy)
    assert syn.metadata["config"]["model"] == "convnet1,convnet2" and len(syn) == 10
    assert not proxy.with_name("proxy.ckpt.safetensors").exists()
    r = run("nas", "study", "mnist", "--proxies", f"{proxy},random", "--archs", 2, "--epochs", 1,
            "--full-epochs", 1, "--validation", 10, "--root", mnist_idx_root, "--out", tmp_path / "s",
            "--no-progress", *TINY_SPACE)
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output  # made for this very split


@pytest.mark.parametrize("args, message", [
    (["search", "mnist", "--proxy", "random", "--strategy", "bayes"], "unknown strategy 'bayes'"),
    (["search", "mnist", "--proxy", "random", "--engine", "k8s", "--trials", "1"], "unknown engine 'k8s'"),
    (["search", "mnist", "--proxy", "nothere.safetensors", "--trials", "1"], "no such file"),
    (["search", "mnist", "--proxy", "random", "--depths", "1,x"], "--depths must be comma-separated"),
    (["search", "mnist", "--proxy", "random", "--norms", "weightnorm"], "norm choices must be among"),
    (["study", "mnist", "--proxies", "full"], "ground truth"),
    (["distill", "mnist", "--networks", "resnet"], "--networks must be convnet or space"),
    (["distill", "mnist", "--widths", "8,x"], "--widths must be comma-separated"),
    (["study", "mnist", "--proxies", "random", "--archs", "999"], "between 2 and 162"),
    (["search", "mnist", "--proxy", "random", "--trials", "1", "--precision", "fp8"], "precision must be"),
    (["study", "mnist", "--proxies", "random", "--archs", "2", "--precision", "fp8"], "precision must be"),
])
def test_errors_are_one_line(mnist_idx_root, tmp_path, args, message):
    r = run("nas", *args, "--root", mnist_idx_root, "--validation", 10, "--ipc", 1, "--out", tmp_path / "o")
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 2  # the space line at most, then the error


@pytest.mark.parametrize("shape, classes, message", [
    ((10, 1, 28, 28), [str(i) for i in range(3)], "not the same dataset"),
    ((10, 1, 32, 32), None, "1x32x32"),
])
def test_a_proxy_of_another_dataset_is_one_line(mnist_idx_root, tmp_path, shape, classes, message):
    test = data.load("mnist", mnist_idx_root, split="test")
    other = tmp_path / "other.safetensors"
    labels = torch.arange(shape[0]) % len(classes or test.classes)
    SyntheticSet(torch.zeros(shape), labels, classes or test.classes, (0.1,), (0.3,)).save(other)
    for cmd in (["search", "mnist", "--proxy", other, "--trials", 1],
                ["study", "mnist", "--proxies", f"{other},random"]):
        r = run("nas", *cmd, "--root", mnist_idx_root, "--validation", 10, "--out", tmp_path / "o")
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output


def test_missing_nni_names_the_extra(mnist_idx_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nni", None)  # what a missing package looks like to import
    r = run("nas", "search", "mnist", "--proxy", "random", "--out", tmp_path / "o", "--root", mnist_idx_root)
    assert r.exit_code == 1, r.output
    assert "pip install 'datadam[nas]'" in r.output and len(r.output.strip().splitlines()) == 1


def _nas_options(command: str) -> dict:
    import typer.main

    return {p.name: p for p in typer.main.get_command(app).commands["nas"].commands[command].params}


@pytest.mark.parametrize("command, config", [
    ("search", "SearchSettings"), ("search", "TrialSettings"), ("study", "StudySettings"),
    ("study", "TrialSettings"), ("distill", "ProxySettings"),
])
def test_the_options_of_a_nas_command_are_its_settings(command, config):
    """A setting is written once, in its field of datadam.apps.nas.settings: the option's
    default, help, placeholder, names and bounds come from there."""
    import dataclasses

    from datadam.apps.nas import settings
    from datadam.settings import setting_of

    options = _nas_options(command)
    for field in dataclasses.fields(getattr(settings, config)):
        option, record = options[field.name], setting_of(field)
        assert (option.default, option.help, option.metavar) == (field.default, record.help, record.metavar)
        assert option.opts == list(record.flags or ["--" + field.name.replace("_", "-")]), field.name
        assert option.show_default == (record.show_default or True), field.name
        bounds = record.bounds
        if bounds is not None and bounds.low_allowed:  # a whole number: Typer's own range
            assert option.min == bounds.low, field.name
            assert option.max == (None if bounds.high is None else bounds.high - 1), field.name


def test_the_nas_commands_defaults_are_the_librarys():
    """The commands' defaults and the functions' are the same values, so they cannot drift."""
    import inspect

    from datadam.apps import nas
    from datadam.apps.nas import cli
    from datadam.apps.nas.proxy import PROXY_NETWORKS
    from datadam.apps.nas.settings import RANDOM_IPC, TRIALS
    from datadam.training import TrainConfig

    search, study = _nas_options("search"), _nas_options("study")
    distill_options = _nas_options("distill")

    def defaults(function) -> dict:
        return {name: p.default for name, p in inspect.signature(function).parameters.items()}

    # the search space: the options' lists are SearchSpace()'s, in every command
    for options in (search, study, distill_options):
        space = cli._space(*(options[n].default for n in ("depths", "widths", "norms", "activations",
                                                          "poolings")))
        assert space == nas.SearchSpace()
    # nas.search and the NNI strategy
    api = defaults(nas.search)
    for name in ("strategy", "population", "sample_size", "engine", "port", "reports", "validation"):
        assert search[name].default == api[name], name
    assert search["trials"].default is None  # TRIALS, or the whole space with grid
    assert search["trials"].show_default == str(TRIALS) and api["trials"] == TRIALS
    assert api["ipc"] == RANDOM_IPC and search["ipc"].show_default.endswith(f"else {RANDOM_IPC}")
    assert search["strategy"].default in nas.STRATEGIES
    strategy = defaults(nas.make_strategy)
    assert (strategy["population"], strategy["sample_size"]) == (api["population"], api["sample_size"])
    task = nas.Task("mnist")
    assert (task.validation, task.ipc, task.reports) == (api["validation"], api["ipc"], api["reports"])
    # the budgets: nas.study trains with PROXY_TRAIN and FULL_TRAIN unless told otherwise
    proxy, full = nas.PROXY_TRAIN, nas.FULL_TRAIN
    assert (study["epochs"].default, study["batch"].default) == (proxy.epochs, proxy.batch)
    assert (study["full_epochs"].default, study["full_batch"].default) == (full.epochs, full.batch)
    assert search["lr"].default == study["lr"].default == proxy.lr == full.lr
    assert search["epochs"].default is None and search["batch"].default is None
    assert search["epochs"].show_default == f"{proxy.epochs} on a small proxy, {full.epochs} on the full data"
    assert search["batch"].show_default == f"{proxy.batch} on a small proxy, {full.batch} on the full data"
    assert search["precision"].default == study["precision"].default == TrainConfig().precision
    # nas.study
    api = defaults(nas.study)
    for name in ("archs", "top_k", "validation", "ipc"):
        assert study[name].default == api[name], name
    # nas.distill_proxy
    api = defaults(nas.distill_proxy)
    for name in ("ipc", "iterations", "networks", "validation"):
        assert distill_options[name].default == api[name], name
    assert api["networks"] == PROXY_NETWORKS[0]
