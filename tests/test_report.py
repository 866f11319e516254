"""``datadam report``: one self-contained HTML page, checked in a real headless browser."""

from __future__ import annotations

import base64
import html.parser
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from datadam.cli import app
from datadam.errors import DatadamWarning
from datadam.report import find_runs, write_report
from datadam.synthetic import SyntheticSet, save_tensors

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


class _Page(html.parser.HTMLParser):
    """The tags of a page: images (and their sources), scripts, links, table cells."""

    def __init__(self):
        super().__init__()
        self.images, self.external, self.cells, self.scripts = [], [], [], 0
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        self._in_cell = tag in ("td", "th")

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data.strip())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as `make demo` leaves one: a set (with snapshots), its evaluation,
    a stale checkpoint and an unrelated JSON file."""
    from helpers import write_mnist_idx

    root = tmp_path_factory.mktemp("report")
    write_mnist_idx(root / "data", n_train=50, n_test=20)
    out = root / "run"
    syn = out / "mnist_ipc1.safetensors"
    r = run("distill", "mnist", "--root", root / "data", "--ipc", 1, "--iterations", 3,
            "--batch-real", 4, "--snapshot-every", 1, "--device", "cpu", "--out", syn)
    assert r.exit_code == 0, r.output
    r = run("evaluate", syn, "--root", root / "data", "--runs", 2, "--epochs", 2,
            "--json", out / "evaluation.json")
    assert r.exit_code == 0, r.output
    # a damaged checkpoint and a JSON of another kind: named in a warning, left out
    save_tensors(out / "mnist_ipc1.ckpt.safetensors", {"syn": torch.zeros(10, 1, 28, 28)},
                 {"kind": "checkpoint", "iteration": 1})
    (out / "notes.json").write_text(json.dumps({"note": "not an evaluation"}))
    return out


def test_report_is_one_self_contained_page(run_dir, tmp_path):
    r = run("report", run_dir, "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert [line.split(": ", 2)[1] for line in r.output.splitlines() if line.startswith("warning:")] == [
        str(run_dir / "mnist_ipc1.ckpt.safetensors"), str(run_dir / "notes.json")]
    text = (tmp_path / "r.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.external == [] and page.scripts == 0  # nothing fetched, nothing run
    # loss curve, image grid, evolution strip of the 3 first classes
    assert len(page.images) == 5
    for image in page.images:
        png = base64.b64decode(image["src"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    accuracy = evaluation["summary"]["convnet3"]
    assert (f"{100 * accuracy['accuracy_mean']:.2f} ± {100 * accuracy['accuracy_std']:.2f}"
            in page.cells)
    assert "mnist_ipc1.safetensors" in page.cells and "datadam" in page.cells  # file, method
    syn = SyntheticSet.load(run_dir / "mnist_ipc1.safetensors")
    assert syn.sha256() in page.cells and syn.describe() in page.cells  # its digest and recipe
    assert "loss terms" in page.cells  # DataDAM's attention and last-layer shares
    assert any(c.startswith("attention ") and "last layer" in c for c in page.cells)
    assert "ckpt" not in text.replace("checkpoint_every", "")


def test_evaluations_are_paired_with_their_set(run_dir):
    with pytest.warns(DatadamWarning, match="left out of the report"):
        (entry,) = find_runs(run_dir)
    assert entry.path.name == "mnist_ipc1.safetensors"
    assert [p.name for p, _ in entry.evaluations] == ["evaluation.json"]


def test_evaluations_without_a_name_go_to_the_longest_matching_set(run_dir, tmp_path):
    for name in ("mnist_ipc1", "mnist_ipc10"):
        shutil.copy(run_dir / "mnist_ipc1.safetensors", tmp_path / f"{name}.safetensors")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    del evaluation["synthetic"]  # as written before evaluations named their set
    (tmp_path / "mnist_ipc10_eval.json").write_text(json.dumps(evaluation))
    owners = {e.path.stem: [p.name for p, _ in e.evaluations] for e in find_runs(tmp_path)}
    assert owners == {"mnist_ipc1": [], "mnist_ipc10": ["mnist_ipc10_eval.json"]}


def test_an_unfinished_evaluation_says_so(run_dir, tmp_path):
    shutil.copy(run_dir / "mnist_ipc1.safetensors", tmp_path)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    evaluation["runs"]["convnet3"] = evaluation["runs"]["convnet3"][:1]
    evaluation["in_progress"] = {"networks": 1, "of": 2}  # as evaluate --json writes it mid-way
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    r = run("report", tmp_path, "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert "unfinished: 1 of 2 networks so far" in (tmp_path / "r.html").read_text()


def test_an_evaluation_of_other_images_than_the_file_holds_is_flagged(run_dir, tmp_path):
    shutil.copy(run_dir / "mnist_ipc1.safetensors", tmp_path)
    r = run("evaluate", tmp_path / "mnist_ipc1.safetensors", "--at-iteration", 1, "--runs", 1,
            "--epochs", 1, "--root", run_dir.parent / "data", "--json", tmp_path / "at1.json")
    assert r.exit_code == 0, r.output
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    evaluation["settings"]["synthetic"]["sha256"] = "0" * 64  # the file was distilled again since
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    assert run("report", tmp_path, "--out", tmp_path / "r.html").exit_code == 0
    text = (tmp_path / "r.html").read_text()
    assert text.count("measured other images than this file holds (sha256 000000000000") == 1
    assert "the images at iteration 1;" in text  # an earlier snapshot of the run: not flagged


def test_default_output_and_errors(run_dir, tmp_path):
    with pytest.warns(DatadamWarning, match="left out of the report"):
        path = write_report(run_dir)
    assert path == run_dir / "report.html" and path.stat().st_size > 10_000
    path.unlink()
    r = run("report", tmp_path)
    assert r.exit_code == 1 and "no synthetic set" in r.output
    r = run("report", tmp_path / "missing")
    assert r.exit_code == 1 and "no such folder" in r.output


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None,
                    reason="no chromium on PATH: `make browser` installs Debian's (as root with apt-get)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    report = write_report(run_dir, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,1800",
         "--hide-scrollbars", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
    assert shot.is_file(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1800)
    grey = image.convert("L")
    colours = grey.getcolors(maxcolors=1 << 16)
    # a blank page is one colour; the report has text, tables, plots and images
    assert colours is not None and len(colours) > 64
    non_white = sum(count for count, value in colours if value < 245)
    assert non_white > 0.02 * image.width * image.height
    # the embedded images were decoded: the indigo heading rule and the plots' colours
    pixels = np.asarray(image.resize((300, 450))).reshape(-1, 3).astype(int)
    coloured = pixels[pixels.max(1) - pixels.min(1) > 60]
    assert len(np.unique(coloured, axis=0)) > 20


def test_a_set_older_than_a_setting_shows_the_value_it_was_made_with(run_dir, tmp_path):
    """A file written before ``bn_statistics`` existed was made per class: ``show`` and
    the report say so instead of leaving the setting out."""
    from datadam.synthetic import load_tensors

    tensors, meta = load_tensors(run_dir / "mnist_ipc1.safetensors")
    del meta["config"]["bn_statistics"], meta["schema"]  # as a set of version 1 (datadam.records)
    old = tmp_path / "old" / "mnist_ipc1.safetensors"
    old.parent.mkdir()
    save_tensors(old, tensors, meta)
    r = run("show", old)
    assert r.exit_code == 0, r.output
    assert "bn_statistics=class" in r.output
    assert "bn_statistics=all" in run("show", run_dir / "mnist_ipc1.safetensors").output
    write_report(old.parent, tmp_path / "r.html")
    page = _Page()
    page.feed((tmp_path / "r.html").read_text())
    row = page.cells.index("config: bn_statistics")
    assert page.cells[row + 1] == "class"


def test_a_merge_of_replicates_goes_with_each_of_its_sets(run_dir, tmp_path):
    """``merge-evaluations --replicates`` names several sets: the report shows the merge
    with each set the folder holds, says so, and warns about none of it."""
    data = run_dir.parent / "data"
    shutil.copy(run_dir / "mnist_ipc1.safetensors", tmp_path / "s0.safetensors")
    r = run("distill", "mnist", "--root", data, "--ipc", 1, "--iterations", 3, "--batch-real", 4,
            "--seed", 1, "--device", "cpu", "--out", tmp_path / "s1.safetensors")
    assert r.exit_code == 0, r.output
    parts = []
    for name in ("s0", "s1"):
        parts.append(tmp_path / f"{name}_part.json")
        r = run("evaluate", tmp_path / f"{name}.safetensors", "--root", data, "--runs", 1,
                "--epochs", 1, "--json", parts[-1])
        assert r.exit_code == 0, r.output
    merged = tmp_path / "replicates.json"
    r = run("merge-evaluations", *parts, "--replicates", "--json", merged)
    assert r.exit_code == 0, r.output
    for part in parts:
        part.unlink()
    assert json.loads(merged.read_text())["synthetic"] == ["s0.safetensors", "s1.safetensors"]

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatadamWarning)
        entries = find_runs(tmp_path)
    assert {e.path.name: [p.name for p, _ in e.evaluations] for e in entries} == {
        "s0.safetensors": ["replicates.json"], "s1.safetensors": ["replicates.json"]}
    write_report(tmp_path, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert text.count("Replicate distillations merged: the runs are those of 2 sets") == 2
