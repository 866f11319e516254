"""datadam distill / evaluate / show / convert from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import without_timing
from typer.testing import CliRunner

from datadam import data, distill
from datadam.cli import app
from datadam.synthetic import SyntheticSet

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_distill_show_evaluate(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run("distill", "mnist", "--root", mnist_idx_root, "--ipc", 2, "--iterations", 3,
            "--batch-real", 4, "--out", out, "--device", "cpu", "--seed", 7, "--power", 1)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "3 iterations" in r.output
    syn = SyntheticSet.load(out)
    assert syn.metadata["seed"] == 7 and syn.metadata["config"]["attention_power"] == 1.0
    assert not (tmp_path / "s.ckpt.safetensors").exists()  # removed once the set is written

    r = run("show", out, "--out", tmp_path / "g.png", "--loss", tmp_path / "l.png",
            "--folder", tmp_path / "f")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "l.png").stat().st_size > 0
    assert "loss terms" in r.output and "attention" in r.output and "last layer" in r.output
    assert "datadam p = 1, IPC 2, 3 iterations" in r.output  # the recipe, in one line
    assert syn.sha256() in r.output.replace("\n", "").replace("│", "").replace(" ", "")
    assert len(list((tmp_path / "f").iterdir())) == 10
    assert "attention_power=1.0" in r.output and "iterations=3" in r.output  # every setting DataDAM reads

    r = run("evaluate", out, "--root", mnist_idx_root, "--runs", 2, "--epochs", 2,
            "--models", "convnet3,alexnet", "--json", tmp_path / "e.json", "--full-data",
            "--full-epochs", 1)
    assert r.exit_code == 0, r.output
    assert "convnet3" in r.output and "alexnet" in r.output and "full data" in r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert len(report["runs"]["alexnet"]) == 2 and "full_data" in report
    assert report["cli_options"]["runs"] == 2 and report["cli_options"]["models"] == "convnet3,alexnet"


def test_show_lists_the_settings_a_method_reads(mnist_idx_root, tmp_path):
    train = data.load("mnist", mnist_idx_root)

    def settings_row(method: str, **options) -> str:
        path = tmp_path / f"{method}.safetensors"
        distill(train, method, ipc=1, progress=False, **options).save(path)
        r = run("show", path)
        assert r.exit_code == 0, r.output
        rows: dict[str, str] = {}
        key = ""
        for line in r.output.splitlines():
            if line.count("│") == 3:  # a row of the table, or the continuation of one
                _, name, value, _ = line.split("│")
                key = name.strip() or key
                rows[key] = rows.get(key, "") + value.strip()
        return rows["settings"]

    dm = settings_row("dm", iterations=2, batch_real=4)
    assert "iterations=2" in dm and "task_balance" in dm
    assert "attention_power" not in dm and "sam_weight" not in dm
    herding = settings_row("herding")
    assert "model=convnet3" in herding and "iterations" not in herding and "lr_img" not in herding
    assert settings_row("random") == "none"


def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(mnist_idx_root, tmp_path, monkeypatch):
    out = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(out)
    args = ["evaluate", out, "--root", mnist_idx_root, "--runs", 3, "--epochs", 2]
    assert run(*args, "--json", tmp_path / "whole.json").exit_code == 0
    whole = json.loads((tmp_path / "whole.json").read_text())

    import datadam.evaluate as evaluation  # the command imports it when it runs
    real_evaluate = evaluation.evaluate

    def ctrl_c_after_two_networks(*a, on_network, **k):
        def saved(result):
            on_network(result)
            if sum(len(r) for r in result.runs.values()) == 2:
                raise KeyboardInterrupt
        return real_evaluate(*a, on_network=saved, **k)

    monkeypatch.setattr(evaluation, "evaluate", ctrl_c_after_two_networks)
    part = tmp_path / "part.json"
    r = run(*args, "--json", part)
    assert r.exit_code == 130 and "evaluation interrupted" in r.output and "--resume" in r.output
    partial = json.loads(part.read_text())
    assert partial["in_progress"] == {"networks": 2, "of": 3} and len(partial["runs"]["convnet3"]) == 2
    monkeypatch.setattr(evaluation, "evaluate", real_evaluate)

    r = run(*args, "--json", part)
    assert r.exit_code == 1 and "unfinished evaluation (2 of 3 networks)" in r.output
    r = run(*args, "--json", part, "--resume")
    assert r.exit_code == 0, r.output
    resumed = json.loads(part.read_text())
    assert "in_progress" not in resumed
    assert resumed["runs"]["convnet3"][:2] == partial["runs"]["convnet3"]  # kept as they were
    assert without_timing(resumed["runs"]["convnet3"]) == without_timing(whole["runs"]["convnet3"])
    # more --runs later: the three are kept, two are added
    r = run(*args[:-4], "--runs", 5, "--epochs", 2, "--json", part, "--resume")
    assert r.exit_code == 0, r.output
    assert [r["run"] for r in json.loads(part.read_text())["runs"]["convnet3"]] == [0, 1, 2, 3, 4]
    r = run(*args[:-4], "--runs", 3, "--epochs", 3, "--json", part, "--resume")
    assert r.exit_code == 1 and "differs in 'train.epochs' (2 vs 3)" in r.output
    assert run(*args, "--resume").exit_code == 1
    assert "cannot resume: no evaluation" in run(*args, "--json", tmp_path / "none.json", "--resume").output

    # Ctrl-C in the middle of a network: it goes on from its last save
    from datadam.training import TrainingCheckpoint
    real_save = TrainingCheckpoint.save

    def ctrl_c_after_the_first_save(self, state):
        real_save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingCheckpoint, "save", ctrl_c_after_the_first_save)
    long = ["evaluate", out, "--root", mnist_idx_root, "--runs", 1, "--epochs", 60]
    r = run(*long, "--json", tmp_path / "long.json", "--resume")
    assert r.exit_code == 1 and "cannot resume: no evaluation" in r.output
    r = run(*long, "--json", tmp_path / "long.json")
    assert r.exit_code == 130 and "saved as of its last 50 epochs (long.network.pt)" in r.output
    assert "finished networks" not in r.output
    assert not (tmp_path / "long.json").exists() and (tmp_path / "long.network.pt").exists()
    monkeypatch.setattr(TrainingCheckpoint, "save", real_save)
    assert run(*long, "--json", tmp_path / "long.json", "--resume").exit_code == 0
    assert not (tmp_path / "long.network.pt").exists()
    assert run(*long, "--json", tmp_path / "uninterrupted.json").exit_code == 0
    assert without_timing(json.loads((tmp_path / "long.json").read_text())["runs"]["convnet3"]) == \
        without_timing(json.loads((tmp_path / "uninterrupted.json").read_text())["runs"]["convnet3"])

    # Ctrl-C in the full-data run, which comes last: every network is kept, only it runs again
    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(evaluation, "evaluate_full_data", ctrl_c)
    full = tmp_path / "full.json"
    assert run(*args, "--json", full, "--full-data", "--full-epochs", 1).exit_code == 130
    before = json.loads(full.read_text())
    assert before["in_progress"] == {"networks": 3, "of": 3} and "full_data" not in before
    monkeypatch.undo()
    assert run(*args, "--json", full, "--full-data", "--full-epochs", 1, "--resume").exit_code == 0
    after = json.loads(full.read_text())
    assert "full_data" in after and after["runs"] == before["runs"]


def test_merge_evaluations_of_one_set_run_apart(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(out)
    for seed in (0, 1):
        r = run("evaluate", out, "--root", mnist_idx_root, "--runs", 1, "--epochs", 2, "--seed", seed,
                "--json", tmp_path / f"e{seed}.json")
        assert r.exit_code == 0, r.output
        assert "s.safetensors: random, IPC 1, seed 0, on mnist test" in " ".join(r.output.split())
    parts = [tmp_path / "e0.json", tmp_path / "e1.json"]
    r = run("merge-evaluations", *parts, "--json", tmp_path / "all.json")
    assert r.exit_code == 0, r.output
    assert "merged (evaluation seeds 0, 1)" in r.output and "convnet3" in r.output
    assert "s.safetensors: random, IPC 1, seed 0" in r.output
    merged = json.loads((tmp_path / "all.json").read_text())
    singles = [json.loads(p.read_text())["runs"]["convnet3"][0]["accuracy"] for p in parts]
    assert [r["accuracy"] for r in merged["runs"]["convnet3"]] == singles
    assert merged["synthetic"] == "s.safetensors"
    assert [(p["file"], p["cli_options"]["seed"]) for p in merged["parts"]] == [
        (str(parts[0]), 0), (str(parts[1]), 1)]

    r = run("merge-evaluations", parts[0], parts[0], "--json", tmp_path / "twice.json")
    assert r.exit_code == 1 and "in two of the evaluations" in r.output
    assert not (tmp_path / "twice.json").exists()
    (tmp_path / "bad.json").write_text("{")
    r = run("merge-evaluations", parts[0], tmp_path / "bad.json")
    assert r.exit_code == 1 and "bad.json: not an evaluation result (it is damaged JSON" in r.output
    assert "Traceback" not in r.output


def test_compare_evaluations_of_two_sets(mnist_idx_root, tmp_path):
    root = data.load("mnist", mnist_idx_root)
    for name, ipc in (("a", 1), ("b", 2)):
        distill(root, "random", ipc=ipc, progress=False).save(tmp_path / f"{name}.safetensors")
        for seed in (0, 3):
            r = run("evaluate", tmp_path / f"{name}.safetensors", "--root", mnist_idx_root, "--runs", 2,
                    "--epochs", 2, "--seed", seed, "--json", tmp_path / f"{name}{seed}.json")
            assert r.exit_code == 0, r.output
    r = run("compare-evaluations", tmp_path / "a0.json", tmp_path / "b0.json", "--json", tmp_path / "c.json",
            "--plot", tmp_path / "c.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert "A = a0.json: random, IPC 1, seed 0" in r.output
    assert "B = b0.json: random, IPC 2, seed 0" in r.output
    assert "convnet3" in r.output and "of 2" in r.output and "95%" in r.output
    comparison = json.loads((tmp_path / "c.json").read_text())
    (a, b) = (json.loads((tmp_path / f).read_text())["runs"]["convnet3"] for f in ("a0.json", "b0.json"))
    c = comparison["models"]["convnet3"]
    assert c["pairs"] == 2 and [(n["a"], n["b"]) for n in c["networks"]] == [
        (x["accuracy"], y["accuracy"]) for x, y in zip(a, b)]

    r = run("compare-evaluations", tmp_path / "a0.json", tmp_path / "b3.json", "--json", tmp_path / "no.json")
    assert r.exit_code == 1 and "has a twin in the second" in r.output and "--seed" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "no.json").exists()
    r = run("compare-evaluations", tmp_path / "a0.json", tmp_path / "b0.json", "--metric", "auc")
    assert r.exit_code == 1 and "have no auc (it is measured for two classes only)" in r.output


def test_compare_recipes_over_replicate_distillations(mnist_idx_root, tmp_path):
    root = data.load("mnist", mnist_idx_root)
    for name, ipc in (("a", 1), ("b", 2)):
        for seed in (0, 1):
            syn = distill(root, "random", ipc=ipc, seed=seed, progress=False)
            syn.save(tmp_path / f"{name}{seed}.safetensors")
            r = run("evaluate", tmp_path / f"{name}{seed}.safetensors", "--root", mnist_idx_root, "--runs", 2,
                    "--epochs", 2, "--json", tmp_path / f"{name}{seed}.json")
            assert r.exit_code == 0, r.output
    r = run("merge-evaluations", tmp_path / "a0.json", tmp_path / "a1.json", "--json", tmp_path / "no.json")
    assert r.exit_code == 1 and "'synthetic.config.seed' (0 vs 1)" in r.output and "--replicates" in r.output
    assert not (tmp_path / "no.json").exists()
    for name in "ab":
        r = run("merge-evaluations", tmp_path / f"{name}0.json", tmp_path / f"{name}1.json", "--replicates",
                "--json", tmp_path / f"{name}.json")
        assert r.exit_code == 0, r.output
        assert f"2 distillations: random, IPC {1 if name == 'a' else 2}, seeds 0, 1" in r.output
    merged = json.loads((tmp_path / "a.json").read_text())
    assert merged["settings"]["distill_seeds"] == [0, 1] and len(merged["runs"]["convnet3"]) == 4
    assert merged["synthetic"] == ["a0.safetensors", "a1.safetensors"]

    r = run("compare-evaluations", tmp_path / "a.json", tmp_path / "b.json", "--json", tmp_path / "c.json",
            "--plot", tmp_path / "c.png")
    assert r.exit_code == 0, r.output
    assert "distillation by distillation" in r.output and "b.json: random, IPC 2, seeds 0, 1" in r.output
    c = json.loads((tmp_path / "c.json").read_text())["models"]["convnet3"]
    assert c["unit"] == "distillation" and c["units"] == 2 and c["pairs"] == 4
    assert [d["distill_seed"] for d in c["distillations"]] == [0, 1]
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    r = run("compare-evaluations", tmp_path / "a.json", tmp_path / "b0.json")
    assert r.exit_code == 1 and "compare replicates with replicates" in r.output
    assert "Traceback" not in r.output


def test_distill_with_several_architectures(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run("distill", "mnist", "--root", mnist_idx_root, "--ipc", 1, "--iterations", 2, "--batch-real", 4,
            "--model", "convnet1,convnet2", "--model-choice", "net_norm=batchnorm,none",
            "--model-choice", "net_width=8,16", "--out", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    config = SyntheticSet.load(out).metadata["config"]
    assert config["model"] == "convnet1,convnet2"
    assert config["model_choices"] == {"net_norm": ["batchnorm", "none"], "net_width": [8, 16]}


def test_distill_with_another_network_option(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run("distill", "mnist", "--root", mnist_idx_root, "--ipc", 1, "--iterations", 2, "--batch-real", 4,
            "--model-option", "net_norm=instancenorm", "--out", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    syn = SyntheticSet.load(out)
    options = syn.metadata["config"]["model_options"]
    assert options == {"net_norm": "instancenorm", "net_pooling": "avgpooling"}  # the other default stays
    assert "net_norm instancenorm" in syn.describe()


@pytest.mark.parametrize("args, message", [
    (["distill", "cifar", "--out", "x.safetensors"], "unknown dataset 'cifar'"),
    (["distill", "mnist", "--method", "dc", "--out", "x.safetensors"], "unknown method 'dc'"),
    (["distill", "mnist", "--ipc", "9", "--out", "x.safetensors"], "larger than class"),
    (["distill", "mnist", "--init", "zeros", "--out", "x.safetensors"], "init must be"),
    (["distill", "mnist", "--augmentation", "blur", "--out", "x.safetensors"], "unknown augmentation"),
    (["distill", "mnist", "--device", "cuda:7", "--out", "x.safetensors"], "cuda"),
    (["distill", "mnist", "--model", "lenet", "--out", "x.safetensors"], "unknown model 'lenet'"),
    (["distill", "mnist", "--model", "convnet2,lenet", "--out", "x.safetensors"], "unknown model 'lenet'"),
    (["distill", "mnist", "--model-choice", "net_norm", "--out", "x.safetensors"], "OPTION=VALUE,VALUE"),
    (["distill", "mnist", "--model-choice", "net_norm=batchnorm,fancy", "--out", "x.safetensors"], "fancy"),
    (["distill", "mnist", "--model-choice", "colour=red,blue", "--out", "x.safetensors"],
     "model 'convnet3' does not take that option"),
    (["distill", "mnist", "--model-option", "net_norm=batchnorm,none", "--out", "x.safetensors"],
     "--model-option net_norm: one value, not 2"),
    (["distill", "mnist", "--model-option", "net_norm=fancy", "--out", "x.safetensors"], "fancy"),
])
def test_distill_errors_are_one_line(mnist_idx_root, tmp_path, args, message):
    os.chdir(tmp_path)
    extra = [] if "--ipc" in args else ["--ipc", "1"]
    r = runner.invoke(app, args + extra + ["--root", str(mnist_idx_root), "--iterations", "1"])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not list(tmp_path.glob("x*.safetensors"))


def test_evaluate_errors(mnist_idx_root, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = run("evaluate", bad, "--root", mnist_idx_root)
    assert r.exit_code == 1 and "bad.safetensors: not a synthetic set" in r.output
    other = tmp_path / "other.safetensors"
    SyntheticSet(torch.zeros(3, 1, 28, 28), torch.arange(3), ["a", "b", "c"], (0.1,), (0.3,),
                 {"dataset": "mnist"}).save(other)
    r = run("evaluate", other, "--root", mnist_idx_root, "--epochs", 1, "--runs", 1)
    assert r.exit_code == 1 and "not the same dataset" in r.output
    r = run("evaluate", other, "--root", mnist_idx_root, "--precision", "fp16")
    assert r.exit_code == 1 and "precision must be fp32 or bf16, not 'fp16'" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_evaluate_jobs_trains_networks_side_by_side(mnist_idx_root, tmp_path):
    syn = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(syn)
    r = run("evaluate", syn, "--root", mnist_idx_root, "--runs", 3, "--epochs", 2, "--device", "cpu",
            "--jobs", 2, "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["settings"]["jobs"] == 2 and [n["run"] for n in report["runs"]["convnet3"]] == [0, 1, 2]
    r = run("evaluate", syn, "--root", mnist_idx_root, "--jobs", 2, "--together")
    assert r.exit_code == 1 and "jobs > 1 trains networks in CPU processes" in r.output


def test_one_set_trained_in_bf16_compares_with_fp32(mnist_idx_root, tmp_path):
    syn = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(syn)
    for precision in ("fp32", "bf16"):
        r = run("evaluate", syn, "--root", mnist_idx_root, "--runs", 2, "--epochs", 2, "--device", "cpu",
                "--precision", precision, "--json", tmp_path / f"{precision}.json")
        assert r.exit_code == 0, r.output
        assert ("trained in bfloat16" in r.output) == (precision == "bf16")
    assert json.loads((tmp_path / "bf16.json").read_text())["settings"]["train"]["precision"] == "bf16"
    r = run("compare-evaluations", tmp_path / "fp32.json", tmp_path / "bf16.json",
            "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert "one set under two protocols" in r.output and "train.precision" in r.output
    comparison = json.loads((tmp_path / "c.json").read_text())["models"]["convnet3"]
    assert comparison["pairs"] == 2 and comparison["protocol_differences"] == [
        "'train.precision' ('fp32' vs 'bf16')"]



def test_one_set_trained_compiled_compares_with_eager(mnist_idx_root, tmp_path):
    syn = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(syn)
    for mode in ("--no-compile", "--compile"):
        r = run("evaluate", syn, "--root", mnist_idx_root, "--runs", 2, "--epochs", 2, "--device", "cpu",
                "--model-option", "net_width=8", mode, "--json", tmp_path / f"{mode}.json")
        assert r.exit_code == 0, r.output
        words = " ".join(r.output.split())  # the table's title wraps
        assert ("images), compiled" in words) == (mode == "--compile") and "CUDA" not in r.output
    eager, compiled = (json.loads((tmp_path / f"{mode}.json").read_text())
                       for mode in ("--no-compile", "--compile"))
    assert compiled["settings"]["train"]["compile"] is True and eager["settings"]["train"]["compile"] is False
    for a, b in zip(eager["runs"]["convnet3"], compiled["runs"]["convnet3"]):
        assert abs(a["accuracy"] - b["accuracy"]) < 0.01  # the same networks up to rounding
    r = run("compare-evaluations", tmp_path / "--no-compile.json", tmp_path / "--compile.json",
            "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    comparison = json.loads((tmp_path / "c.json").read_text())["models"]["convnet3"]
    assert comparison["pairs"] == 2
    assert comparison["protocol_differences"] == ["'train.compile' (False vs True)"]
    r = run("report", tmp_path, "--out", tmp_path / "report.html")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report.html").read_text().count("compiled with torch.compile") == 1


def test_evaluate_with_model_options(mnist_idx_root, tmp_path):
    syn = tmp_path / "s.safetensors"
    distill(data.load("mnist", mnist_idx_root), "random", ipc=1, progress=False).save(syn)
    r = run("evaluate", syn, "--root", mnist_idx_root, "--runs", 1, "--epochs", 1,
            "--model-option", "first_padding=3", "--model-option", "net_width=16",
            "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["settings"]["model_options"] == {"convnet3": {"first_padding": 3, "net_width": 16}}
    for option, message in [("first_padding", "OPTION=VALUE"), ("first_padding=3,4", "one value, not 2"),
                            ("colour=red", "model 'convnet3' does not take that option")]:
        r = run("evaluate", syn, "--root", mnist_idx_root, "--runs", 1, "--epochs", 1,
                "--model-option", option)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output


def test_convert_official_pt(mnist_idx_root, tmp_path):
    pt = tmp_path / "res.pt"
    torch.save({"data": [[torch.randn(10, 1, 28, 28), torch.arange(10)]]}, pt)
    r = run("convert", pt, "--dataset", "mnist", "--root", mnist_idx_root,
            "--out", tmp_path / "c.safetensors")
    assert r.exit_code == 0, r.output
    assert SyntheticSet.load(tmp_path / "c.safetensors").metadata["dataset"] == "mnist"


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    ckpt = tmp_path / "s.ckpt.safetensors"
    cmd = [sys.executable, "-m", "datadam", "distill", "mnist", "--root", str(mnist_idx_root),
           "--ipc", "1", "--batch-real", "4", "--iterations", "100000", "--checkpoint-every", "5",
           "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # the shell's code for Ctrl-C
    assert err.startswith("loaded mnist train:")  # what was read, from where
    assert err.splitlines()[1].startswith("interrupted at iteration") and "error" not in err
    assert "--resume" in err and "Traceback" not in err
    assert not out.exists()
    saved = SyntheticSet  # the checkpoint is not a synthetic set, but it is a datadam file
    from datadam.synthetic import load_tensors
    _, meta = load_tensors(ckpt)
    done = meta["iteration"]
    assert done >= 5
    r = run("distill", "mnist", "--root", mnist_idx_root, "--ipc", 1, "--batch-real", 4,
            "--iterations", done + 2, "--checkpoint-every", 5, "--out", out, "--device", "cpu",
            "--resume")
    assert r.exit_code == 0, r.output
    assert saved.load(out).metadata["iterations_done"] == done + 2


def test_keep_checkpoint_lets_a_finished_run_be_extended(mnist_idx_root, tmp_path):
    common = ["distill", "mnist", "--root", mnist_idx_root, "--ipc", 1, "--batch-real", 4,
              "--checkpoint-every", 10, "--device", "cpu", "--seed", 5]
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    assert run(*common, "--iterations", 5, "--out", whole).exit_code == 0
    r = run(*common, "--iterations", 3, "--out", part, "--keep-checkpoint")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "part.ckpt.safetensors").is_file()  # 3 is not a multiple of 10: the end
    # a checkpoint reads as the run in progress: shown and evaluated like a set
    r = run("show", tmp_path / "part.ckpt.safetensors")
    assert r.exit_code == 0 and "iteration 3 of 3" in r.output, r.output
    r = run("evaluate", tmp_path / "part.ckpt.safetensors", "--root", mnist_idx_root,
            "--runs", 1, "--epochs", 1)
    assert r.exit_code == 0 and "run in progress: iteration 3 of 3" in r.output, r.output
    r = run(*common, "--iterations", 5, "--out", part, "--resume")
    assert r.exit_code == 0, r.output
    extended = SyntheticSet.load(part)
    assert extended.metadata["iterations_done"] == 5
    assert torch.equal(extended.images, SyntheticSet.load(whole).images)
    assert not (tmp_path / "part.ckpt.safetensors").exists()  # no --keep-checkpoint this time


def test_unwritable_output_is_one_line(mnist_idx_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("distill", "mnist", "--root", mnist_idx_root, "--ipc", 1, "--iterations", 1,
            "--batch-real", 2, "--method", "random", "--out", blocker / "sub" / "s.safetensors")
    assert r.exit_code == 1 and r.output.startswith("error: ") and "Traceback" not in r.output
