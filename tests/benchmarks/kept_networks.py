"""Evaluations that keep every finished network in a file.

A protocol evaluation trains networks of 1,000 epochs, about 20 minutes each on one
CPU core; a benchmark stopped by Ctrl-C in the middle of one goes on from the networks
it has finished when the same command runs again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from datadam.evaluate import EvaluationResult, evaluate
from datadam.files import write_json


def evaluate_keeping(path: Path, *args: Any, **kwargs: Any) -> EvaluationResult:
    """:func:`datadam.evaluate.evaluate` that writes the result so far to ``path`` after
    every network and starts from the networks already there (the same networks an
    uninterrupted evaluation trains). The caller removes ``path`` once it has stored
    the result; on Ctrl-C the benchmark exits saying where the networks are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done = EvaluationResult.load(path) if path.is_file() else None
    try:
        return evaluate(*args, done=done, on_network=lambda result: write_json(path, result.to_dict()),
                        **kwargs)
    except KeyboardInterrupt:
        sys.exit(f"interrupted; the finished evaluation networks are in {path}: "
                 "run the same command again to go on")


def forget(path: Path) -> None:
    """Remove ``path`` (once its result is stored) and its folder if nothing else is in it."""
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()
