"""The command line's contract: outputs checked before any work, no result replaced without
--force, every numeric option bounded, and a help that starts fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadam.cli import app

runner = CliRunner()
DISTILL = ["--ipc", 1, "--iterations", 2, "--batch-real", 4, "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *words: str) -> str:
    """The error line, after checking the result is a one-line error naming ``words``."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def distill(root, out, *extra):
    return run("distill", "mnist", "--root", root, "--out", out, *DISTILL, *extra)


@pytest.fixture
def made(mnist_idx_root, tmp_path) -> Path:
    out = tmp_path / "made.safetensors"
    assert distill(mnist_idx_root, out).exit_code == 0
    return out


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# -- outputs checked before any work -------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("adir", ["is a folder"]),
    ("eval.json", [".safetensors", "not .json"]),
    ("blocker/sub/s.safetensors", ["is a file, not a folder"]),
])
def test_a_bad_out_fails_before_any_iteration_naming_the_users_path(mnist_idx_root, tmp_path, name, words,
                                                                   monkeypatch):
    from datadam.cli import distill_commands

    def no_work(*args, **kwargs):
        raise AssertionError("the data was read before the output was checked")

    monkeypatch.setattr(distill_commands, "load_data", no_work)
    (tmp_path / "adir").mkdir()
    (tmp_path / "blocker").write_text("x")
    before = files_in(tmp_path)
    r = run("distill", "mnist", "--root", mnist_idx_root, "--out", tmp_path / name, "--iterations", 10**6)
    one_line_error(r, tmp_path / name, *words)
    assert files_in(tmp_path) == before  # no checkpoint, no temporary file left behind
    assert ".tmp" not in r.output


def test_an_unwritable_folder_is_refused_before_the_work(mnist_idx_root, tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    out = tmp_path / "s.safetensors"
    one_line_error(distill(mnist_idx_root, out), out, "cannot write")
    assert not out.exists()


def test_distill_never_writes_over_another_kind_of_result(mnist_idx_root, tmp_path):
    evaluation = tmp_path / "eval.safetensors"
    evaluation.write_bytes(b"not a set")
    before = evaluation.read_bytes()
    one_line_error(distill(mnist_idx_root, evaluation), evaluation, "--force")
    assert evaluation.read_bytes() == before
    assert distill(mnist_idx_root, evaluation, "--force").exit_code == 0


def test_distill_replaces_only_the_same_result_of_the_same_inputs(mnist_idx_root, made):
    r = distill(mnist_idx_root, made)  # the same command again: the same result, replaced
    assert r.exit_code == 0, r.output
    before = made.read_bytes()
    r = distill(mnist_idx_root, made, "--seed", 1)  # other settings: refused
    one_line_error(r, made, "--force")
    assert made.read_bytes() == before


def test_a_checkpoint_of_another_run_is_not_started_over(mnist_idx_root, tmp_path, made):
    out = tmp_path / "run.safetensors"
    checkpoint = tmp_path / "run.ckpt.safetensors"
    checkpoint.write_bytes(made.read_bytes())
    before = checkpoint.read_bytes()
    one_line_error(distill(mnist_idx_root, out), checkpoint, "--resume", "--force")
    assert checkpoint.read_bytes() == before and not out.exists()


def test_evaluate_json_replaces_only_the_same_evaluation(mnist_idx_root, tmp_path, made):
    report = tmp_path / "e.json"
    evaluate = ["evaluate", made, "--root", mnist_idx_root, "--runs", 1, "--epochs", 1, "--json", report]
    assert run(*evaluate).exit_code == 0
    assert run(*evaluate).exit_code == 0  # the same evaluation again
    before = report.read_bytes()
    one_line_error(run(*evaluate, "--seed", 3), report, "--force")
    one_line_error(run(*evaluate[:-2], "--json", made), made)  # a set is not an evaluation
    assert report.read_bytes() == before
    assert run(*evaluate, "--seed", 3, "--force").exit_code == 0
    assert json.loads(report.read_text())["settings"]["seed"] == 3


def test_a_bad_evaluate_json_fails_before_the_first_network(mnist_idx_root, tmp_path, made, monkeypatch):
    import datadam.evaluate as evaluation

    def no_work(*args, **kwargs):
        raise AssertionError("a network trained before the output was checked")

    monkeypatch.setattr(evaluation, "evaluate", no_work)
    folder = tmp_path / "results"
    folder.mkdir()
    one_line_error(run("evaluate", made, "--root", mnist_idx_root, "--epochs", 10**6, "--json", folder),
                   folder, "is a folder")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pdf", ".svg"])
def test_show_writes_the_format_of_the_suffix(made, tmp_path, suffix):
    grid, loss = tmp_path / f"grid{suffix}", tmp_path / f"loss{suffix}"
    r = run("show", made, "--out", grid, "--loss", loss)
    assert r.exit_code == 0, r.output
    magic = {".png": b"\x89PNG", ".jpg": b"\xff\xd8", ".pdf": b"%PDF", ".svg": b"<?xml"}[suffix]
    assert grid.read_bytes().startswith(magic) and loss.read_bytes().startswith(magic)
    assert run("show", made, "--out", grid, "--loss", loss).exit_code == 0  # the same pictures again


def test_show_never_draws_over_another_file(made, tmp_path):
    photo = tmp_path / "holiday.png"
    photo.write_bytes(b"\x89PNG someone's picture")
    one_line_error(run("show", made, "--out", photo), photo, "--force")
    assert photo.read_bytes() == b"\x89PNG someone's picture"
    one_line_error(run("show", made, "--out", tmp_path / "grid.gif"), "grid.gif", ".png")


def test_report_replaces_only_its_own_page(made, tmp_path):
    page = made.parent / "report.html"
    page.write_text("<html>my notes</html>")
    one_line_error(run("report", made.parent), page, "--force")
    assert page.read_text() == "<html>my notes</html>"
    assert run("report", made.parent, "--force").exit_code == 0
    assert run("report", made.parent).exit_code == 0  # its own page, made again


def test_comparison_outputs_are_checked_first(mnist_idx_root, tmp_path, made):
    report = tmp_path / "e.json"
    assert run("evaluate", made, "--root", mnist_idx_root, "--runs", 1, "--epochs", 1,
               "--json", report).exit_code == 0
    one_line_error(run("compare-evaluations", report, report, "--json", made), made)
    one_line_error(run("merge-evaluations", report, "--json", made), made)
    merged = tmp_path / "m.json"
    assert run("merge-evaluations", report, "--json", merged).exit_code == 0
    assert run("merge-evaluations", report, "--json", merged).exit_code == 0  # the same merge again


# -- bounds: no traceback from any value ---------------------------------------------------

NUMERIC_METAVARS = {"N", "LR", "M", "P", "LAMBDA", "W", "F", "SIZE", "K", "LEVEL", "PORT"}


def numeric_options() -> dict[tuple[str, ...], list[str]]:
    """Every numeric option of every command, found through its metavar."""
    import typer.main

    found: dict[tuple[str, ...], list[str]] = {}

    def walk(command, path):
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, sub_name))
        options = [p.opts[0] for p in getattr(command, "params", [])
                   if p.param_type_name == "option" and (p.metavar or "").split(" ")[0] in NUMERIC_METAVARS]
        if options:
            found[path] = options

    walk(typer.main.get_command(app), ())
    return found


def test_every_numeric_option_is_found():
    found = numeric_options()
    assert {"--lr-img", "--momentum", "--power", "--batch-real"} <= set(found[("distill",)])
    assert {"--lr", "--runs", "--epochs"} <= set(found[("evaluate",)])
    assert ("nas", "search") in found and ("continual",) in found


@pytest.mark.parametrize("value", ["-2", "0", "nan"])
def test_no_numeric_option_of_any_command_ends_in_a_traceback(made, tmp_path, value):
    missing = tmp_path / "no-data"  # every command stops at its data at the latest: no long run
    report = tmp_path / "e.json"
    report.write_text("{}")
    base = {
        ("distill",): ["mnist", "--out", tmp_path / "x.safetensors", "--root", missing],
        ("evaluate",): [made, "--root", missing],
        ("show",): [made, "--root", missing],
        ("report",): [tmp_path],
        ("convert",): [made, "--dataset", "mnist", "--out", tmp_path / "c.safetensors", "--root", missing],
        ("compare-evaluations",): [report, report],
        ("continual",): ["mnist", "--out", tmp_path / "cl", "--root", missing],
        ("nas", "distill"): ["mnist", "--out", tmp_path / "p.safetensors", "--root", missing],
        ("nas", "search"): ["mnist", "--proxy", "random", "--out", tmp_path / "s", "--root", missing],
        ("nas", "study"): ["mnist", "--proxies", "random", "--out", tmp_path / "st", "--root", missing],
        ("data", "info"): ["mnist", "--root", missing],
        ("data", "check"): ["mnist", "--root", missing],
    }
    for path, options in numeric_options().items():
        for option in options:
            r = run(*path, *base[path], option, value)
            where = f"{' '.join(path)} {option} {value}"
            assert "Traceback" not in r.output, f"{where}\n{r.output}"
            assert r.exception is None or isinstance(r.exception, SystemExit), f"{where}: {r.exception!r}"
            assert r.exit_code in (0, 1, 2), f"{where}: exit {r.exit_code}\n{r.output}"


@pytest.mark.parametrize("option, value, words", [
    ("--lr-img", "-1", ["--lr-img", "above 0"]),
    ("--momentum", "-0.5", ["--momentum", "[0, 1)"]),
    ("--power", "-2", ["--power", "above 0"]),
    ("--net-lr", "0", ["--net-lr", "above 0"]),
])
def test_out_of_range_values_name_the_option(mnist_idx_root, tmp_path, option, value, words):
    r = distill(mnist_idx_root, tmp_path / "s.safetensors", option, value)
    assert r.exit_code == 2 and "Traceback" not in r.output
    for word in words:
        assert word in r.output


def test_the_api_refuses_out_of_range_settings_with_a_typed_error():
    from datadam.distill import DistillConfig
    from datadam.errors import ConfigError

    for field, value in [("lr_img", -1.0), ("momentum", 1.0), ("attention_power", -2.0),
                         ("task_balance", -0.1), ("net_lr", 0.0), ("seed", -1)]:
        with pytest.raises(ConfigError, match=field):
            DistillConfig(**{field: value})


# -- help and start-up ---------------------------------------------------------------------

def test_help_and_version_start_without_torch():
    code = ("import sys; sys.argv = ['datadam', '--help']\n"
            "from datadam.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands")[1]
    assert "distill" in commands and "..." not in commands  # whole one-line summaries


def test_distill_help_puts_common_options_first_with_uppercase_metavars():
    r = runner.invoke(app, ["distill", "--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0
    text = r.output
    def at(option: str) -> int:  # the option's row, not a mention in the description
        return text.index(f"│ {option}") if f"│ {option}" in text else text.index(f"│ *  {option}")

    assert at("--out") < text.index("─ Method") < at("--batch-real")
    assert text.index("─ Method") < text.index("─ Run control") < at("--checkpoint-every")
    assert "<int range>" not in text and "list[str]" not in text and "<bool>" not in text.split("--help")[0]
    assert "PATH" in text and "N [x>=1]" in text


def test_short_flags_mean_one_thing_everywhere():
    meanings: dict[str, set[str]] = {}
    import typer.main

    group = typer.main.get_command(app)

    def walk(command):
        for param in getattr(command, "params", []):
            for flag in param.opts:
                if len(flag) == 2 and flag.startswith("-") and flag != "-h":
                    meanings.setdefault(flag, set()).add(param.opts[0] if param.opts[0] != flag
                                                         else param.name)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(group)
    assert {flag: names for flag, names in meanings.items() if len(names) > 1} == {}


def test_other_libraries_warnings_stay_out_of_the_output(monkeypatch):
    import warnings

    from datadam import data
    from datadam.errors import DatadamWarning

    real = data.available

    def noisy():
        warnings.warn("no QP solver found on your system", UserWarning, stacklevel=1)
        warnings.warn("the set was condensed from other data", DatadamWarning, stacklevel=1)
        return real()

    monkeypatch.setattr(data, "available", noisy)
    r = run("data", "list")
    assert r.exit_code == 0, r.output
    assert "warning: the set was condensed from other data" in r.output
    assert "QP solver" not in r.output and ".py:" not in r.output
