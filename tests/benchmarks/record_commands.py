"""Write into an evaluation JSON the commands that made it and the machine they ran on.

``datadam merge-evaluations`` keeps each part's command-line options (``parts``), but
names the parts by their files; once the merged file is the one record of an experiment,
those files go, and the commands must read without them. This script turns every part's
options, a part's own parts included (``--replicates`` merges of merged files), into the
``datadam evaluate`` command line, adds the merge command, and writes ``commands`` and
``machine`` into the file (the results pages print both)::

    python tests/benchmarks/record_commands.py docs/results/evaluations/ipc10_dd_it1500_e1000.json \\
        --machine "AMD EPYC, 2 cores, no GPU" \\
        --before "datadam distill mnist --ipc 10 --iterations 1500 --real-precision bf16"

Files it runs on again keep the commands they hold (the parts may be gone by then).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any


def _evaluate_parameters() -> list:
    import typer

    from datadam.cli import app

    return typer.main.get_command(app).commands["evaluate"].params


def evaluate_command(options: dict[str, Any], parameters: list | None = None) -> str:
    """The ``datadam evaluate`` command line of one run's recorded ``cli_options``:
    the set, then every option that differs from the command's default."""
    words = ["datadam", "evaluate", str(options["synthetic"])]
    for p in parameters if parameters is not None else _evaluate_parameters():
        if p.name == "synthetic" or p.name not in options:
            continue
        value = options[p.name]
        if value == p.default or value is None or value == []:
            continue
        if getattr(p, "is_flag", False):
            words.append(p.opts[0] if value else p.secondary_opts[0])
        else:
            for item in value if isinstance(value, list) else [value]:
                words += [p.opts[0], str(item)]
    return shlex.join(words)


def _part_commands(part: dict[str, Any], parameters: list) -> list[str]:
    """The commands behind one entry of ``parts``: its options, or, for a part that was
    itself a merge, the commands recorded in (or recoverable from) that part's file."""
    if part.get("cli_options"):
        return [evaluate_command(part["cli_options"], parameters)]
    path = Path(part["file"])
    if not path.is_file():
        raise SystemExit(f"{path}: a part with no options recorded is gone; its commands are lost")
    return commands_of(json.loads(path.read_text()), path, parameters)


def commands_of(report: dict[str, Any], path: Path, parameters: list) -> list[str]:
    """Every command that made the evaluation ``report`` (read from ``path``)."""
    if report.get("commands"):
        return list(report["commands"])
    if report.get("cli_options"):
        return [evaluate_command(report["cli_options"], parameters)]
    parts = report.get("parts") or []
    if not parts:
        raise SystemExit(f"{path}: neither commands, options nor parts are recorded")
    commands = [c for part in parts for c in _part_commands(part, parameters)]
    replicates = " --replicates" if report.get("settings", {}).get("distill_seeds") else ""
    merge = (f"datadam merge-evaluations{replicates} "
             + " ".join(shlex.quote(p["file"]) for p in parts) + f" --json {shlex.quote(str(path))}")
    return [*commands, merge]


def main() -> None:
    from datadam.files import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="evaluation JSON files to complete")
    ap.add_argument("--machine", required=True, help="CPU model and cores the networks trained on")
    ap.add_argument("--before", action="append", default=[],
                    help="a command that came first (the distillation of the set); repeatable")
    args = ap.parse_args()
    parameters = _evaluate_parameters()
    for path in args.files:
        report = json.loads(path.read_text())
        commands = commands_of(report, path, parameters)
        report["commands"] = [*(c for c in args.before if c not in commands), *commands]
        report["machine"] = args.machine
        write_json(path, report)
        print(f"{path}: {len(report['commands'])} commands")


if __name__ == "__main__":
    main()
