"""A command given a file of another kind says, in one line, what the file is and which
command reads it; ``datadam report`` names every file it leaves out."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import fast_distill
from safetensors.torch import save_file
from typer.testing import CliRunner

from datadam import distill
from datadam.cli import app
from datadam.synthetic import SyntheticSet

runner = CliRunner()

CLASSES = [str(i) for i in range(10)]
EVALUATION = {"runs": {"convnet3": []}, "summary": {}, "settings": {}}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    """The error of a refused command: exit 1, no traceback, and one ``error:`` line that
    ends the output (what the command printed before it, e.g. the data it loaded, aside)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


@pytest.fixture
def files(tmp_path):
    """One file of every kind a command may be given by mistake, by name."""
    images, labels = torch.randn(10, 1, 28, 28), torch.arange(10)
    made = {
        "set": SyntheticSet(images, labels, CLASSES, (0.13,), (0.31,),
                            {"method": "random", "dataset": "mnist"}).save(tmp_path / "s.safetensors"),
        "official": tmp_path / "res_DataDAM_MNIST.pt",
        "model": tmp_path / "model.pt",
        "weights": tmp_path / "weights.safetensors",
        "evaluation": tmp_path / "s_eval.json",
        "study": tmp_path / "study.json",
        "truncated": tmp_path / "cut_eval.json",
        "picture": tmp_path / "grid.png",
    }
    torch.save({"data": [[images, labels]], "accs_all_exps": {"ConvNet": [0.9]}}, made["official"])
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, made["model"])
    save_file({"conv.weight": torch.zeros(2, 2)}, str(made["weights"]))
    text = json.dumps({**EVALUATION, "synthetic": "s.safetensors"}, indent=1)
    made["evaluation"].write_text(text)
    made["study"].write_text(json.dumps({"trials": [{"accuracy": 0.9}], "space": "convnet"}))
    made["truncated"].write_text(text[: len(text) // 2])
    made["picture"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return made


NOT_AN_EVALUATION = {
    "set": "not an evaluation result (it is a synthetic set: evaluate it with `datadam evaluate`",
    "official": "not an evaluation result (it is an official DataDAM/DC/DM result: import it with "
                "`datadam convert",
    "weights": "not an evaluation result (it is a safetensors file of other tensors; "
               "`datadam evaluate --json` writes one)",
    "study": "not an evaluation result (it is JSON of another kind; `datadam evaluate --json` writes one)",
    "truncated": "not an evaluation result (it is damaged JSON (Expecting",
    "picture": "not an evaluation result (it is neither JSON, safetensors nor a PyTorch file;",
}


@pytest.mark.parametrize("kind", NOT_AN_EVALUATION)
def test_compare_evaluations_names_what_it_was_given(files, kind):
    line = one_error_line(run("compare-evaluations", files[kind], files["evaluation"]))
    assert f"{files[kind]}: {NOT_AN_EVALUATION[kind]}" in line
    line = one_error_line(run("compare-evaluations", files["evaluation"], files[kind]))
    assert f"{files[kind]}: {NOT_AN_EVALUATION[kind]}" in line


@pytest.mark.parametrize("kind", NOT_AN_EVALUATION)
def test_merge_evaluations_names_what_it_was_given(files, kind):
    line = one_error_line(run("merge-evaluations", files["evaluation"], files[kind]))
    assert f"{files[kind]}: {NOT_AN_EVALUATION[kind]}" in line


NOT_A_SET = {
    "official": "not a synthetic set (it is an official DataDAM/DC/DM result: import it with "
                "`datadam convert {path} --dataset NAME --out SET.safetensors`)",
    "evaluation": "not a synthetic set (it is an evaluation result: `datadam compare-evaluations`, "
                  "`merge-evaluations` and `report` read it)",
    "weights": "not a synthetic set (it is a safetensors file of other tensors; "
               "`datadam distill` writes one)",
    "model": "not a synthetic set (it is a PyTorch file of other content (a dict of 'model', 'epoch'); "
             "`datadam distill` writes one)",
    "picture": "not a synthetic set (it is neither JSON, safetensors nor a PyTorch file; "
               "`datadam distill` writes one)",
}


@pytest.mark.parametrize("command", ["evaluate", "show"])
@pytest.mark.parametrize("kind", NOT_A_SET)
def test_evaluate_and_show_name_what_they_were_given(files, command, kind):
    line = one_error_line(run(command, files[kind]))
    assert line == f"error: {files[kind]}: {NOT_A_SET[kind].format(path=files[kind])}"


NOT_OFFICIAL = {
    "model": "not an official DataDAM/DC/DM result (it is a PyTorch file of other content (a dict of "
             "'model', 'epoch'); one holds {'data': [[images, labels], ...]}, a pair per experiment)",
    "picture": "not an official DataDAM/DC/DM result (it is neither JSON, safetensors nor a PyTorch "
               "file; one holds {'data': [[images, labels], ...]}, a pair per experiment)",
    "evaluation": "not an official DataDAM/DC/DM result (it is an evaluation result: "
                  "`datadam compare-evaluations`, `merge-evaluations` and `report` read it)",
    "set": "not an official DataDAM/DC/DM result (it is a synthetic set: evaluate it with "
           "`datadam evaluate`, describe it with `datadam show`)",
}


@pytest.mark.parametrize("kind", NOT_OFFICIAL)
def test_convert_names_what_an_official_result_holds(files, kind, mnist_idx_root, tmp_path):
    out = tmp_path / "converted.safetensors"
    line = one_error_line(run("convert", files[kind], "--dataset", "mnist", "--root", mnist_idx_root,
                              "--out", out))
    assert line == f"error: {files[kind]}: {NOT_OFFICIAL[kind]}"
    assert not out.exists()


def test_convert_refuses_an_official_result_without_the_experiment(mnist_idx_root, tmp_path):
    empty = tmp_path / "empty.pt"
    torch.save({"data": []}, empty)
    line = one_error_line(run("convert", empty, "--dataset", "mnist", "--root", mnist_idx_root,
                              "--out", tmp_path / "c.safetensors"))
    assert line == f"error: {empty}: an official result without images and labels in experiment -1 of its 0"


def warnings_of(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("warning: ")]


def test_report_shows_a_checkpoint_as_a_run_in_progress_and_names_what_it_leaves_out(
        tiny, files, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    distill(tiny, "dm", ipc=1, **fast_distill(iterations=2)).save(run_dir / "done.safetensors")
    ckpt = run_dir / "going.ckpt.safetensors"
    distill(tiny, "dm", ipc=1, checkpoint=ckpt, checkpoint_every=1, **fast_distill(iterations=1))
    foreign = {name: run_dir / files[name].name.replace("s_eval", "done_eval")
               for name in ("weights", "study", "truncated")}
    for name, path in foreign.items():
        path.write_bytes(files[name].read_bytes())
    (run_dir / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    elsewhere = run_dir / "other_eval.json"
    elsewhere.write_text(json.dumps({**EVALUATION, "synthetic": "other.safetensors"}))

    r = run("report", run_dir, "--out", tmp_path / "r.html")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    told = warnings_of(r)
    assert len(told) == 5, r.output
    for path in [*foreign.values(), run_dir / "broken.safetensors", elsewhere]:
        (line,) = [line for line in told if f"warning: {path}: " in line]
        assert line.endswith("; left out of the report")
    assert f"{elsewhere}: an evaluation of other.safetensors, which {run_dir} does not hold" in r.output
    assert f"{run_dir / 'broken.safetensors'}: not a synthetic set (it is " in r.output

    page = (tmp_path / "r.html").read_text()
    assert "1 synthetic set(s) and 1 run(s) in progress" in page
    assert "A run in progress, not a result: the checkpoint of a distillation at iteration 1 of 1" in page
    assert page.index("<h2>done</h2>") < page.index("<h2>going.ckpt</h2>")  # the results first


def test_report_of_nothing_but_foreign_files_names_them(files, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "w.safetensors").write_bytes(files["weights"].read_bytes())
    r = run("report", run_dir)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert warnings_of(r) == [f"warning: {run_dir / 'w.safetensors'}: not a synthetic set (it is a "
                              "safetensors file of other tensors; `datadam distill` writes one); "
                              "left out of the report"]
    assert f"error: {run_dir}: no synthetic set (*.safetensors) to report on" in r.output
