"""The progress bars' own columns."""

from __future__ import annotations

from datadam.progress import LossColumn, RateColumn, progress_bar


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
