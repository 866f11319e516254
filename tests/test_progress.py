"""The progress bars' own columns."""

from __future__ import annotations

import time

import pytest

from datadam.errors import ConfigError
from datadam.progress import (
    DEFAULT_INTERVAL,
    INTERVAL_VARIABLE,
    LossColumn,
    RateColumn,
    StatusLines,
    progress_bar,
)


def test_loss_column_shows_a_dash_before_the_first_loss():
    bar = progress_bar(False, LossColumn())
    task_id = bar.add_task("distill", total=10, loss=None)
    task = bar.tasks[task_id]
    assert LossColumn().render(task).plain == "loss -"
    bar.update(task_id, advance=1, loss=36.6123)
    assert LossColumn().render(task).plain == "loss 36.61"
    assert RateColumn().render(task).plain.endswith("it/s")


def test_bars_are_quiet_unless_asked_or_on_a_terminal():
    assert progress_bar(False).disable
    assert not progress_bar(True).disable


def test_off_a_terminal_the_bar_writes_a_status_line_every_interval(monkeypatch, capsys):
    monkeypatch.setenv(INTERVAL_VARIABLE, "0.000001")
    bar = progress_bar(None, LossColumn())
    assert isinstance(bar, StatusLines)
    with bar:
        task = bar.add_task("distill", total=3, loss=None)
        for step in range(3):
            time.sleep(0.001)
            bar.update(task, advance=1, loss=3.0 - step)
        bar.update(task, loss=0.5)  # a finished task writes its closing line once
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[:3] for line in lines] == [["distill", "1/3", "loss"], ["distill", "2/3", "loss"],
                                                    ["distill", "3/3", "loss"]]
    assert "loss 3 " in lines[0] and "it/s" in lines[-1] and "ETA" in lines[-1]


def test_status_lines_wait_for_the_interval_and_zero_turns_them_off(monkeypatch, capsys):
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)
    bar = progress_bar(None)
    assert isinstance(bar, StatusLines) and bar.interval == DEFAULT_INTERVAL
    with bar:
        task = bar.add_task("evaluate convnet3", total=5)
        for _ in range(5):
            bar.advance(task)
    assert capsys.readouterr().err == ""  # a task shorter than the interval says nothing, not even its end
    monkeypatch.setenv(INTERVAL_VARIABLE, "0")
    assert progress_bar(None).disable and not isinstance(progress_bar(None), StatusLines)


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_interval_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv(INTERVAL_VARIABLE, value)
    with pytest.raises(ConfigError, match=INTERVAL_VARIABLE):
        progress_bar(None)
    assert progress_bar(False).disable  # an explicit choice does not read it


def test_a_closed_stream_silences_the_status_lines_without_stopping_the_work():
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    bar = StatusLines(LossColumn(), interval=0.0, stream=Closed())
    with bar:
        task = bar.add_task("distill", total=3, loss=None)
        for _ in range(3):
            bar.update(task, advance=1, loss=1.0)  # no error reaches the caller
    assert bar.tasks[0].completed == 3 and bar.interval == float("inf")
