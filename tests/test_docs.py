"""The documentation's examples run on tiny data, and its generated pages are sound.

`make test` also builds the whole site with ``mkdocs build --strict``; these tests
keep the example scripts themselves from rotting."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadam.cli import app
from datadam.synthetic import SyntheticSet

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"


def run_example(name: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_every_example_is_tested_and_shown():
    # own_tensors.py runs in test_library_use.py
    tested = {"quickstart.py", "pictures.py", "continual_memory.py", "own_tensors.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
    page = (REPO / "docs" / "examples.md").read_text()
    assert all(f'--8<-- "{name}"' in page for name in tested)


def test_quickstart_example(mnist_idx_root, tmp_path):
    proc = run_example("quickstart.py", "--root", mnist_idx_root, "--ipc", 1, "--iterations", 2,
                       "--epochs", 1, "--runs", 1, "--out", tmp_path)
    assert "test accuracy" in proc.stdout
    syn = SyntheticSet.load(tmp_path / "mnist_ipc1.safetensors")
    assert len(syn) == 10 and syn.metadata["iterations_done"] == 2
    assert (tmp_path / "mnist_ipc1.png").is_file() and (tmp_path / "mnist_ipc1_loss.png").is_file()
    evaluation = json.loads((tmp_path / "mnist_ipc1_eval.json").read_text())
    assert evaluation["synthetic"] == "mnist_ipc1.safetensors"
    # what the example leaves is a run directory for `datadam report`
    r = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_pictures_example(mnist_idx_root, tmp_path):
    run_example("pictures.py", "--root", mnist_idx_root, "--ipc", 1, "--iterations", 2,
                "--every", 1, "--out", tmp_path)
    for name in ("attention_mnist.png", "evolution_mnist.png"):
        assert (tmp_path / name).stat().st_size > 1000
    syn = SyntheticSet.load(tmp_path / "pictures.safetensors")
    assert syn.metadata["snapshot_iterations"] == [0, 1, 2]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_continual_memory_example(mnist_idx_root):
    pytest.importorskip("avalanche")
    proc = run_example("continual_memory.py", "--root", mnist_idx_root, "--ipc", 1,
                       "--iterations", 2)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("after experience")]
    assert len(lines) == 5  # 5 experiences of 2 digits
    assert "10 classes seen, 10 images in memory" in lines[-1]  # 1 image per class


def _hook():
    spec = importlib.util.spec_from_file_location("docs_hook", REPO / "docs" / "hooks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_committed_result_has_a_page_and_unknown_ones_fail():
    hook = _hook()
    kinds = {hook.kind_of(json.loads(p.read_text()))
             for p in (REPO / "docs" / "results").glob("*.json")}
    assert kinds <= set(hook.PAGES)
    with pytest.raises(ValueError, match="unknown benchmark JSON"):
        hook.kind_of({"accuracy": 0.9})
    with pytest.raises(ValueError, match="unknown benchmark JSON"):  # `datadam evaluate --json`'s shape
        hook.kind_of({"runs": {}, "summary": {}, "settings": {"models": ["convnet3"]}})


def test_generated_results_pages_quote_the_json():
    hook = _hook()
    report = json.loads((REPO / "docs" / "results" / "mnist_distill_reduced.json").read_text())
    text, images = hook.render_distillation("mnist_distill_reduced", report)
    dm10 = report["entries"]["dm/ipc10"]["evaluation"]["summary"]["convnet3"]
    assert f"{100 * dm10['accuracy_mean']:.2f} ± {100 * dm10['accuracy_std']:.2f}" in text
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    assert "Evaluation: 5 fresh convnet3 networks x 150 epochs on each synthetic set" in text
    # a bench evaluated with bench_distill.py --eval-precision bf16 --eval-compile says so
    departed = copy.deepcopy(report)
    for entry in departed["entries"].values():
        entry["evaluation"]["settings"]["train"].update(precision="bf16", compile=True)
    assert ("networks x 150 epochs, trained in bfloat16, compiled with torch.compile on each synthetic set"
            in hook.render_distillation("mnist_distill_reduced", departed)[0])
    # DataDAM against its DM twin (same IPC and shared options), network by network
    dd10 = report["entries"]["datadam/ipc10"]["evaluation"]["runs"]["convnet3"]
    dm10_runs = report["entries"]["dm/ipc10"]["evaluation"]["runs"]["convnet3"]
    diffs = [100 * (x["accuracy"] - y["accuracy"]) for x, y in zip(dd10, dm10_runs)]
    mean = sum(diffs) / len(diffs)
    row = next(line for line in text.splitlines() if line.startswith("| datadam | 10 | dm |"))
    assert f"{mean:+.2f} ± " in row and f"{sum(d > 0 for d in diffs)} of {len(diffs)}" in row
    ablations = json.loads((REPO / "docs" / "results" / "mnist_ipc1_it3000.json").read_text())
    lines = hook.render_distillation("mnist_ipc1_it3000", ablations)[0].splitlines()
    assert any(line.startswith("| datadam_f2 | 1 | dm_f2 |") for line in lines)  # a factor's twin
    assert any(line.startswith("| datadam_noise | 1 | dm |") for line in lines)  # init is DataDAM's own
    assert not any(line.startswith("| random_f2 |") for line in lines)  # 0 iterations: no DM twin


def test_a_distillation_benchs_markdown_sets_datadam_against_dm_as_the_page_does():
    hook = _hook()
    sys.path.insert(0, str(REPO / "tests" / "benchmarks"))
    try:
        import bench_distill
    finally:
        sys.path.remove(str(REPO / "tests" / "benchmarks"))
    path = REPO / "docs" / "results" / "mnist_ipc1_f2_it3000_bn_all.json"
    report = json.loads(path.read_text())

    def rows(text):
        return [line for line in text.splitlines() if line.startswith("| datadam")
                and line.count("|") == 8]

    page = rows(hook.render_distillation(path.stem, report)[0])
    assert page == ["| datadam_p1_f2 | 1 | dm_f2 | +0.61 ± 0.15 | [+0.42, +0.80] | 0.0009 | 5 of 5 |"]
    assert rows(bench_distill.table(report)) == page
    assert bench_distill.table(report) in path.with_suffix(".md").read_text()  # the committed table
    one = {"entries": {k: v for k, v in report["entries"].items() if k.startswith("dm")},
           "settings": report["settings"]}
    assert "DataDAM against DM" not in bench_distill.table(one)  # no DataDAM entry: no rows


def test_a_committed_comparison_renders_its_table_and_pairs():
    hook = _hook()
    path = REPO / "docs" / "results" / "mnist_ipc10_it20000_dm_vs_datadam.json"
    report = json.loads(path.read_text())
    assert hook.kind_of(report) == "comparison"
    text, images = hook.render_comparison(path.stem, report)
    c = report["models"]["convnet3"]
    row = next(line for line in text.splitlines() if line.startswith("| convnet3 |"))
    lo, hi = (100 * v for v in c["interval"])
    assert f"{100 * c['difference_mean']:+.2f} ± {100 * c['difference_std']:.2f}" in row
    assert f"[{lo:+.2f}, {hi:+.2f}]" in row and f"{c['b_ahead']} of {c['units']}" in row
    assert f"datadam compare-evaluations {report['a']} {report['b']} --json" in text
    assert report["a_set"] in text and list(images) == [f"{path.stem}.png"]
    assert images[f"{path.stem}.png"].startswith(b"\x89PNG")


def _evaluation_file(path: Path, method: str, accuracies: list[float], **train) -> None:
    runs = [{"accuracy": a, "seed": 0, "run": i} for i, a in enumerate(accuracies)]
    mean = sum(accuracies) / len(accuracies)
    std = (sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1)) ** 0.5
    path.write_text(json.dumps({
        "runs": {"convnet3": runs}, "summary": {"convnet3": {"accuracy_mean": mean, "accuracy_std": std}},
        "settings": {"synthetic": {"method": method, "iterations_done": 100,
                                   "config": {"attention_power": 4.0, "bn_statistics": "all", "seed": 0}},
                     "ipc": 10, "train": {"epochs": 300, **train}, "seed": 0, "test_dataset": "mnist"}}))


def test_targets_are_judged_from_the_evaluations_they_name(tmp_path, monkeypatch):
    hook = _hook()
    monkeypatch.setattr(hook, "RESULTS", tmp_path)
    _evaluation_file(tmp_path / "dm.json", "dm", [0.950, 0.952, 0.948, 0.951, 0.949])
    _evaluation_file(tmp_path / "dd.json", "datadam", [0.955, 0.956, 0.954, 0.957, 0.953])
    _evaluation_file(tmp_path / "level.json", "datadam", [0.951, 0.950, 0.949, 0.952, 0.948])
    _evaluation_file(tmp_path / "compiled.json", "datadam", [0.955, 0.956, 0.954, 0.957, 0.953], compile=True)
    report = {"title": "T", "description": "D", "targets": [
        {"claim": "above", "evidence": [["dm.json", "dd.json"]]},
        {"claim": "above everywhere", "evidence": [["dm.json", "dd.json"], ["dm.json", "level.json"]]},
        {"claim": "reaches 95.4", "at_least": 95.4, "evidence": ["dm.json", "dd.json"]},
        {"claim": "reaches 96", "at_least": 96.0, "evidence": ["dd.json", "compiled.json"]}]}
    assert hook.kind_of(report) == "targets"
    text, images = hook.render_targets("targets", report)
    assert images == {}
    status = dict(line.strip("|").split(" | ") for line in text.splitlines()
                  if line.count("|") == 3 and not line.startswith("|---") and "status" not in line)
    assert {k.strip(): v.strip() for k, v in status.items()} == {
        "above": "**met**", "above everywhere": "**not met**", "reaches 95.4": "**met**",
        "reaches 96": "**not met**"}
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].endswith("| above |") and "+0.50 ±" in rows[0] and "5 of 5 networks" in rows[0]
    assert "| dm, IPC 10, 100 iterations, seed 0 against datadam p = 4, IPC 10, 100 iterations, seed 0 |" \
        in rows[0]
    assert rows[2].endswith("| level |")
    assert "| 95.50 ± 0.16 | reaches it |" in rows[4] and rows[3].endswith("| 0.40 points short |")
    assert rows[5].endswith("| 5 x 300 epochs | 95.50 ± 0.16 | 0.50 points short |")
    # how training departed from the eager fp32 protocol is named beside the budget
    assert rows[6].endswith("| 5 x 300 epochs, compiled with torch.compile | 95.50 ± 0.16 "
                            "| 0.50 points short |")
    # a target naming a file or an entry that is not there fails the build
    for missing in ("gone.json", "dd.json#no/entry"):
        with pytest.raises(ValueError, match=f"a target names {missing}, which docs/results/ does not hold"):
            hook.render_targets("t", {"title": "T", "description": "D", "targets": [
                {"claim": "x", "at_least": 1, "evidence": [missing]}]})


def test_the_committed_targets_name_committed_evaluations():
    hook = _hook()
    report = json.loads((REPO / "docs" / "results" / "targets.json").read_text())
    text, _ = hook.render_targets("targets", report)
    replicates = json.loads((REPO / "docs" / "results" / "evaluations" /
                             "ipc1_dd_f2_it3000_replicates_e1000.json").read_text())
    s = replicates["summary"]["convnet3"]
    assert f"| {100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_std']:.2f} | reaches it |" in text
    assert "| IPC 10: at least 97.8 % (DSA) | **met** |" in text


def test_cli_reference_lists_every_command_and_new_option():
    text = _hook().cli_reference()
    for command in ("distill", "evaluate", "show", "report", "convert", "continual", "data info"):
        assert f"## `datadam {command}`" in text
    assert "--snapshot-every" in text and "--tensorboard" in text and "--attention" in text


def test_rest_habits_of_docstrings_become_markdown():
    spec = importlib.util.spec_from_file_location("griffe_rest", REPO / "docs" / "hooks" / "griffe_rest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.rewrite("Use :func:`load` or :class:`~datadam.synthetic.SyntheticSet`.\n\n"
                          ">>> import datadam\n>>> datadam.data.available()\n\nLayout::\n\n"
                          "    ROOT/train/<class>/\n      a.png\n\nAfter.")
    assert "`load`" in text and "[`SyntheticSet`][datadam.synthetic.SyntheticSet]" in text
    assert "```python\n>>> import datadam\n>>> datadam.data.available()\n```" in text
    assert "Layout:\n\n```text\nROOT/train/<class>/\n  a.png\n```\n\nAfter." in text
