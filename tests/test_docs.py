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
    # each runs in a test: here, in test_library_use, test_continual_library and test_nas_library
    tested = {"quickstart.py", "pictures.py", "continual_memory.py", "own_tensors.py",
              "continual_avalanche.py", "nas_own_space.py"}
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


def test_every_committed_result_renders_on_its_areas_page():
    """Every committed file renders (what it measured is the file's business, not this
    test's): each top-level JSON by its name or its table row, each evaluation by a row."""
    hook = _hook()
    results = REPO / "docs" / "results"
    pages = {uri: text for uri, (text, _) in hook.results_pages(results).items()}
    assert set(pages) == {uri for _, uri, _ in hook.PAGES.values()}
    site = "\n".join(pages.values())
    power = sorted(results.glob(hook.POWER_COMPARISONS))
    for path in sorted(results.glob("*.json")):
        if path not in power:
            assert Path(path).stem in site, path.name
    power_rows = [line for line in pages["results/distillation.md"].split("## Attention power")[1]
                  .split("\n## ")[0].splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(power_rows) == sum(len(json.loads(p.read_text())["models"]) for p in power)
    for path in sorted((results / "evaluations").glob("*.json")):
        merged = path.stem.rpartition("_seed")[0]
        if not (merged and (path.parent / f"{merged}.json").exists()):  # a part shows through its merge
            assert f"| `{path.stem}` |" in pages["results/distillation.md"], path.name


def _evaluation(method: str, accuracies: list[float], *, ipc: int = 10, iterations: int = 100,
                epochs: int = 300, test_images: int = 10000, **train) -> dict:
    """An evaluation result as ``datadam evaluate --json`` writes it, with made-up
    accuracies of network 0, 1, ... (the same seed: they pair up network by network)."""
    runs = [{"accuracy": a, "seed": 0, "run": i} for i, a in enumerate(accuracies)]
    mean = sum(accuracies) / len(accuracies)
    std = (sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1)) ** 0.5
    return {"runs": {"convnet3": runs},
            "summary": {"convnet3": {"accuracy_mean": mean, "accuracy_std": std}},
            "settings": {"synthetic": {"method": method, "iterations_done": iterations,
                                       "config": {"attention_power": 4.0, "bn_statistics": "all", "seed": 0}},
                         "ipc": ipc, "runs": len(accuracies), "train": {"epochs": epochs, **train}, "seed": 0,
                         "test_dataset": "mnist", "test_images": test_images}}


def _bench_entry(variant: str, method: str, ipc: int, accuracies: list[float], options=None, **extra) -> dict:
    evaluation = _evaluation(method, accuracies, ipc=ipc, iterations=0 if method == "random" else 40,
                             epochs=40, test_images=1234)
    return {"variant": variant, "method": method, "ipc": ipc, "options": options or {},
            "distill_seconds": 12.5, "seconds_per_iteration": None if method == "random" else 0.3125,
            "evaluation": evaluation, **extra}


def _made_bench(tmp_path: Path) -> tuple[Path, dict]:
    """A distillation bench's JSON written in ``tmp_path``: numbers made up for the test,
    so that what the page shows can only have come from this file."""
    entries = {
        "random/ipc1": _bench_entry("random", "random", 1, [0.6111, 0.6222, 0.6333]),
        "dm/ipc1": _bench_entry("dm", "dm", 1, [0.7101, 0.7202, 0.7303]),
        "dm/ipc10": _bench_entry("dm", "dm", 10, [0.9010, 0.9020, 0.9030]),
        "datadam/ipc10": _bench_entry("datadam", "datadam", 10, [0.9050, 0.9010, 0.9110]),
        "datadam_p1/ipc1": _bench_entry("datadam_p1", "datadam", 1, [0.7000, 0.7300, 0.7400],
                                        {"attention_power": 1.0}),
        "dm_f2/ipc1": _bench_entry("dm_f2", "dm", 1, [0.8000, 0.8100, 0.8200], {"factor": 2}),
    }
    report = {"entries": entries, "commands": ["python tests/benchmarks/bench_distill.py --made-up"],
              "settings": {"command": "python tests/benchmarks/bench_distill.py --made-up",
                           "machine": "a made-up machine", "ipcs": [1, 10],
                           "variants": ["random", "dm", "datadam", "datadam_p1", "dm_f2"],
                           "iterations": 40, "eval_runs": 3, "eval_epochs": 40, "seed": 0}}
    path = tmp_path / "made_bench.json"
    path.write_text(json.dumps(report))
    return path, report


def _comparison_row(a: list[float], b: list[float]) -> tuple[str, str]:
    """``(mean ± std of B - A, "k of n")`` in points, worked out here."""
    diffs = [100 * (y - x) for x, y in zip(a, b)]
    mean = sum(diffs) / len(diffs)
    std = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
    return f"{mean:+.2f} ± {std:.2f}", f"{sum(d > 0 for d in diffs)} of {len(diffs)}"


def test_a_distillation_page_shows_what_its_json_says(tmp_path):
    hook = _hook()
    path, _ = _made_bench(tmp_path)
    report = json.loads(path.read_text())
    text, images = hook.render_distillation(path.stem, report)
    lines = text.splitlines()
    assert lines[0] == "### made_bench" and "python tests/benchmarks/bench_distill.py --made-up" in text
    assert "Machine: a made-up machine" in lines
    # the bench's evaluation settings and every cell, from this file
    assert ("Evaluation: 3 fresh convnet3 networks x 40 epochs on each synthetic set, tested on 1234 "
            "mnist test images") in text
    assert "| random (random) | defaults | 62.22 ± 1.11 | – |" in lines  # no IPC 10 entry: a dash
    assert "| dm (dm) | defaults | 72.02 ± 1.01 | 90.20 ± 0.10 |" in lines
    assert "| datadam (datadam) | defaults | – | 90.57 ± 0.50 |" in lines
    assert "| datadam_p1 (datadam) | attention_power=1.0 | 72.33 ± 2.08 | – |" in lines
    assert "| dm_f2 (dm) | factor=2 | 81.00 ± 1.00 | – |" in lines
    # DataDAM against its DM twin (same IPC, same options but DataDAM's own), network by network
    difference, ahead = _comparison_row([0.9010, 0.9020, 0.9030], [0.9050, 0.9010, 0.9110])
    row = next(line for line in lines if line.startswith("| datadam | 10 | dm |"))
    assert f"| {difference} |" in row and row.endswith(f"| {ahead} |") and ahead == "2 of 3"
    difference, ahead = _comparison_row([0.7101, 0.7202, 0.7303], [0.7000, 0.7300, 0.7400])
    row = next(line for line in lines if line.startswith("| datadam_p1 | 1 | dm |"))
    assert f"| {difference} |" in row and row.endswith(f"| {ahead} |")
    assert not any(line.startswith("| dm_f2 | 1 |") for line in lines)  # DM is nobody's DataDAM
    # the runs' own iterations and seconds
    assert "| dm/ipc10 | 40 | 0.312 | 12.5 |" in lines and "| random/ipc1 | 0 | – | 12.5 |" in lines
    assert list(images) == ["made_bench.png"] and images["made_bench.png"].startswith(b"\x89PNG")
    # a bench evaluated with bench_distill.py --eval-precision bf16 --eval-compile says so
    departed = copy.deepcopy(report)
    for entry in departed["entries"].values():
        entry["evaluation"]["settings"]["train"].update(precision="bf16", compile=True)
    assert ("networks x 40 epochs, trained in bfloat16, compiled with torch.compile on each synthetic set"
            in hook.render_distillation(path.stem, departed)[0])
    # runs made on two machines name theirs, run by run
    moved = copy.deepcopy(report)
    moved["entries"]["dm/ipc10"]["machine"] = "machine B"
    moved["entries"]["dm/ipc1"]["machine"] = "machine A"
    text = hook.render_distillation(path.stem, moved)[0]
    assert "| dm/ipc10 | 40 | 0.312 | 12.5 | machine B |" in text.splitlines()
    assert "| random/ipc1 | 0 | – | 12.5 | – |" in text.splitlines()


def test_a_distillation_benchs_markdown_sets_datadam_against_dm_as_the_page_does(tmp_path):
    hook = _hook()
    sys.path.insert(0, str(REPO / "tests" / "benchmarks"))
    try:
        import bench_distill
    finally:
        sys.path.remove(str(REPO / "tests" / "benchmarks"))
    path, report = _made_bench(tmp_path)

    def rows(text):
        return [line for line in text.splitlines() if line.startswith("| datadam")
                and line.count("|") == 8]

    page = rows(hook.render_distillation(path.stem, report)[0])
    assert [row.split(" | ")[:3] for row in page] == [["| datadam", "10", "dm"], ["| datadam_p1", "1", "dm"]]
    assert rows(bench_distill.table(report)) == page
    one = {"entries": {k: v for k, v in report["entries"].items() if k.startswith("dm")},
           "settings": report["settings"]}
    assert "DataDAM against DM" not in bench_distill.table(one)  # no DataDAM entry: no rows
    assert "DataDAM against DM" not in hook.render_distillation(path.stem, one)[0]


def _made_comparison(tmp_path: Path) -> tuple[Path, dict]:
    """What ``datadam compare-evaluations A B --json`` writes, for two evaluations made here."""
    from datadam.evaluate import EvaluationResult, compare_results

    a = _evaluation("dm", [0.9100, 0.9200, 0.9150, 0.9050])
    b = _evaluation("datadam", [0.9180, 0.9230, 0.9140, 0.9160])
    models = compare_results(EvaluationResult.from_dict(a), EvaluationResult.from_dict(b))
    report = {"a": "made/a.json", "b": "made/b.json", "a_set": "a.json: made-up dm set",
              "b_set": "b.json: made-up datadam set", "labels": ["dm\na", "datadam\nb"], "models": models}
    path = tmp_path / "made_comparison.json"
    path.write_text(json.dumps(report))
    return path, report


def test_the_comparisons_table_has_a_row_per_comparison_and_their_commands(tmp_path, monkeypatch):
    hook = _hook()
    monkeypatch.setattr(hook, "RESULTS", tmp_path)
    path, report = _made_comparison(tmp_path)
    assert hook.kind_of(report) == "comparison"
    (tmp_path / "made_a.png").write_bytes(b"png")  # a picture of set A, named after the comparison
    text, images = hook.render_section("comparison", [(path.name, report), ("made_a_vs_b.json", report)])
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| comparison |"))
    rows = [line for line in lines if line.startswith(("| made_comparison |", "| made_a_vs_b |"))]
    assert len(rows) == 2 and all(row.count("|") == header.count("|") for row in rows)
    c = report["models"]["convnet3"]
    difference, ahead = _comparison_row([0.9100, 0.9200, 0.9150, 0.9050], [0.9180, 0.9230, 0.9140, 0.9160])
    lo, hi = (100 * v for v in c["interval"])
    assert rows[0] == (f"| made_comparison | `a` | `b` | 91.25 | 91.78 | {difference} | "
                       f"[{lo:+.2f}, {hi:+.2f}] | {c['p_value']:.2g} | 4 | {ahead} networks |")
    assert ("datadam compare-evaluations made/a.json made/b.json --json docs/results/made_comparison.json"
            in lines)
    assert "Machine: not recorded." in lines  # made/a.json and made/b.json are not there
    assert "![made: a](made_a.png)" in lines and "![made: b](made_b.png)" not in lines
    assert list(images) == ["comparisons.png"] and images["comparisons.png"].startswith(b"\x89PNG")


def test_the_attention_power_table_reads_every_power_comparison(tmp_path):
    hook = _hook()
    _, report = _made_comparison(tmp_path)
    items = [("mnist_ipc10_power_p4_vs_p1.json", report),
             ("mnist_ipc1_power_p4_vs_p1.json", {**report, "budget": {"ipc": 1}, "machine": "a made-up CPU",
                                                 "commands": ["datadam compare-evaluations x y"]})]
    text, images = hook.render_section("power", items)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 10"]  # sorted by IPC
    assert all(row.count("|") == 10 for row in rows)
    assert "| IPC | model | A: p = 4 % | B: p = 1 % | B - A | interval | p | pairs | B ahead |" in lines
    assert "datadam compare-evaluations x y" in lines
    assert "Machine: a made-up CPU (some files record none)." in lines
    assert ("datadam compare-evaluations made/a.json made/b.json --json "
            "docs/results/mnist_ipc10_power_p4_vs_p1.json") in lines
    assert images == {}


def test_the_evaluations_table_has_a_row_per_file_and_model(tmp_path):
    hook = _hook()
    merged = _evaluation("datadam", [0.9, 0.91, 0.92])
    merged["runs"]["alexnet"] = merged["runs"]["convnet3"]
    merged["summary"]["alexnet"] = merged["summary"]["convnet3"]
    merged.update(machine="a made-up CPU", commands=["datadam evaluate s.safetensors --runs 1",
                                                    "datadam merge-evaluations a b --json m.json"])
    items = [("evaluations/m.json", merged), ("evaluations/m_seed0.json", _evaluation("datadam", [0.9, 0.9])),
             ("evaluations/one.json", _evaluation("dm", [0.8, 0.82]))]
    text, _ = hook.render_section("evaluation", items)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("| `")]
    recipe = "datadam p = 4, IPC 10, 100 iterations, seed 0"
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| `m`", recipe, "convnet3"], ["| `m`", recipe, "alexnet"],
        ["| `one`", "dm, IPC 10, 100 iterations, seed 0", "convnet3"]]
    assert all(row.count("|") == 7 for row in rows)
    assert rows[0].endswith("| 3 x 300 epochs | 91.00 ± 1.00 | a made-up CPU |")
    assert rows[2].endswith("| not recorded |")
    assert lines.index("# evaluations/m.json") + 1 == lines.index("datadam evaluate s.safetensors --runs 1")
    assert "# evaluations/one.json" in lines and "# (commands not recorded)" in lines


def test_a_malformed_result_fails_naming_its_file(tmp_path):
    hook = _hook()
    results = tmp_path / "results"
    (results / "evaluations").mkdir(parents=True)
    cases = [("odd.json", json.dumps({"accuracy": 0.9}),
              r"docs/results/odd\.json: unknown benchmark JSON shape"),
             ("broken.json", "{not json", r"docs/results/broken\.json: not a readable JSON file"),
             ("list.json", "[1, 2]", r"docs/results/list\.json: unknown benchmark JSON shape \(a JSON list"),
             ("bench.json", json.dumps({"entries": {"dm/ipc1": {"method": "dm"}}}),
              r"docs/results/bench\.json: not a distillation result the pages can show \(no 'variant'\)"),
             ("evaluations/e.json", json.dumps({"summary": {}}),
              r"docs/results/evaluations/e\.json: not an evaluation \(it has no runs, summary and settings"),
             ("evaluations/f.json", json.dumps({"runs": {}, "summary": {}, "settings": []}),
              r"docs/results/evaluations/f\.json: not a evaluation result the pages can show")]
    for name, content, message in cases:
        (results / name).write_text(content)
        with pytest.raises(hook.ResultError, match=message):
            hook.results_pages(results)
        (results / name).unlink()
    with pytest.raises(ValueError, match="unknown benchmark JSON"):  # `datadam evaluate --json`'s shape
        hook.kind_of({"runs": {}, "summary": {}, "settings": {"models": ["convnet3"]}})


class _SiteConfig(dict):
    """The parts of an MkDocs config that the hook and ``File.generated`` read."""

    def __init__(self, docs_dir: Path, site_dir: Path):
        super().__init__(docs_dir=str(docs_dir))
        self.site_dir, self.use_directory_urls = str(site_dir), True
        self.plugins = type("Plugins", (), {"_current_plugin": None})()


def test_the_site_has_a_page_per_area_made_from_the_json_files_found(tmp_path, monkeypatch):
    from mkdocs.structure.files import Files

    hook = _hook()
    docs = tmp_path / "docs"
    (docs / "results").mkdir(parents=True)
    monkeypatch.setattr(hook, "RESULTS", docs / "results")
    _made_bench(docs / "results")
    _made_comparison(docs / "results")
    files = hook.on_files(Files([]), _SiteConfig(docs, tmp_path / "site"))
    pages = {f.src_uri: f.content_bytes for f in files}
    distillation = pages["results/distillation.md"].decode()
    assert distillation.startswith("# Distillation accuracy\n") and "### made_bench" in distillation
    assert "| dm (dm) | defaults | 72.02 ± 1.01 | 90.20 ± 0.10 |" in distillation
    assert "| made_comparison | `a` | `b` |" in distillation
    sections = distillation.split("\n## ")
    assert [section.split("\n")[0] for section in sections[1:]] == [
        heading for _, page, heading in hook.SECTIONS if page == "distillation"]
    assert pages["results/img/made_bench.png"].startswith(b"\x89PNG")
    assert pages["results/img/comparisons.png"].startswith(b"\x89PNG")
    for page in ("speed", "continual", "nas"):  # nothing of theirs: every section says so
        text = pages[hook.PAGES[page][1]].decode()
        assert text.count("No results of this kind are committed yet.") == sum(
            p == page for _, p, _ in hook.SECTIONS), page
    assert "## `datadam distill`" in pages["cli.md"].decode()
    # a JSON of no known shape fails the build, naming the file
    (docs / "results" / "odd.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(ValueError, match=r"odd\.json: unknown benchmark JSON shape"):
        hook.on_files(Files([]), _SiteConfig(docs, tmp_path / "site"))


def _evaluation_file(path: Path, method: str, accuracies: list[float], **train) -> None:
    path.write_text(json.dumps(_evaluation(method, accuracies, **train)))


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
    """Every target renders from files that are there (whether it is met is the
    evidence's business, not this test's: the judging is tested on made-up files above)."""
    hook = _hook()
    report = json.loads((REPO / "docs" / "results" / "targets.json").read_text())
    text, _ = hook.render_targets("targets", report)
    for target in report["targets"]:
        assert any(line.startswith(f"| {target['claim']} | **") for line in text.splitlines())


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


def test_a_memory_page_shows_what_its_json_says():
    hook = _hook()
    report = {"what": "peak memory of two runs",
              "commands": {"8": "datadam distill a", "900": "datadam distill b"},
              "machine": {"cpu": "Test CPU", "cores": 2},
              "peak_rss_mb": {"8": 1234, "900": 5678},
              "estimate": {"8": {"described": "about 0.1 GB"}, "900": {"described": "about 4.2 GB"}},
              "seconds_per_iteration": {"8": 0.5, "900": 12.25}}
    assert hook.kind_of(report) == "memory"
    text, images = hook.RENDER["memory"]("mem", report)
    assert images == {}
    assert "| 8 | 1,234 | about 0.1 GB | 0.50 |" in text and "| 900 | 5,678 | about 4.2 GB | 12.25 |" in text
    assert "datadam distill b" in text and "Test CPU, 2 cores" in text


def test_a_convergence_page_names_a_sets_stored_and_training_images():
    hook = _hook()
    point = {"accuracy_mean": 0.9, "accuracy_std": 0.01, "loss": 1.5, "evaluation": {"settings": {"seed": 0}}}
    report = {"points": {str(i): {**point, "iteration": i} for i in (0, 500)},
              "settings": {"commands": ["python tests/benchmarks/bench_convergence.py s.safetensors"],
                           "machine": {"cpu": "Test CPU", "cores": 2}, "synthetic": "s.safetensors",
                           "distill_command": "datadam distill mnist --ipc 10 --factor 2",
                           "method": "datadam", "dataset": "mnist", "ipc": 10, "images_per_class": 40,
                           "iterations_done": 500, "config": {"ipc": 10, "factor": 2}, "runs": 2,
                           "epochs": 300, "model": "convnet3"},
              "loss_history": [2.0, 1.5]}
    assert hook.kind_of(report) == "convergence"
    text, images = hook.RENDER["convergence"]("conv", report)
    assert "Set: datadam, IPC 10 x factor 2 = 40 per class, mnist, 500 iterations" in text
    assert "| 500 | 90.00 ± 1.00 | 1.50 |" in text and list(images) == ["conv.png"]


def test_record_commands_writes_every_command_behind_a_merged_file(tmp_path, monkeypatch):
    """``tests/benchmarks/record_commands.py``: each part's options become its ``datadam
    evaluate`` line (defaults left out), a replicate merge's parts are followed into their
    own parts, and the merge commands close each list."""
    spec = importlib.util.spec_from_file_location("record_commands",
                                                  REPO / "tests" / "benchmarks" / "record_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = {"synthetic": "s.safetensors", "runs": 1, "epochs": 1000, "seed": 3, "device": "cpu",
               "compile": True, "progress": False, "model_option": ["net_norm=instancenorm"],
               "json_out": None}
    line = module.evaluate_command(options)
    assert line.startswith("datadam evaluate s.safetensors --")
    pairs = line.removeprefix("datadam evaluate s.safetensors --").split(" --")  # in the CLI's order
    assert sorted(pairs) == ["compile", "device cpu", "model-option net_norm=instancenorm", "no-progress",
                             "runs 1", "seed 3"]  # --epochs 1000 is the default, --json not given
    monkeypatch.chdir(tmp_path)
    seed_merge = {"parts": [{"file": f"p{s}.json", "cli_options": {**options, "seed": s}} for s in (0, 1)]}
    Path("s0.json").write_text(json.dumps(seed_merge))
    replicates = {"settings": {"distill_seeds": [0, 1]}, "parts": [
        {"file": "s0.json", "cli_options": None},
        {"file": "s1.json", "cli_options": None}]}
    Path("s1.json").write_text(json.dumps({"commands": ["datadam evaluate t.safetensors"]}))
    commands = module.commands_of(replicates, Path("r.json"), module._evaluate_parameters())
    assert [c.split(" --")[0] for c in commands] == [
        "datadam evaluate s.safetensors", "datadam evaluate s.safetensors",
        "datadam merge-evaluations p0.json p1.json", "datadam evaluate t.safetensors",
        "datadam merge-evaluations"]
    assert commands[-1] == "datadam merge-evaluations --replicates s0.json s1.json --json r.json"
    Path("s1.json").unlink()
    with pytest.raises(SystemExit, match="s1.json: a part with no options recorded is gone"):
        module.commands_of(replicates, Path("r.json"), module._evaluate_parameters())
