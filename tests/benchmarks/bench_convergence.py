"""Benchmark: test accuracy of a synthetic set against the distillation iterations.

Evaluates the snapshots that ``datadam distill --snapshot-every N`` keeps inside the
set (iteration 0 is the initialisation: random real images when ``--init real``) and
the final images, each with the protocol, and writes a JSON, a markdown
table and a PNG plot (accuracy with its spread, and the matching loss, against the
iterations). Resumable: iterations already in the JSON are skipped, and the finished
networks of an iteration in progress are kept in ``OUT_networks/``. The set may be the
checkpoint of a run in progress (``S.ckpt.safetensors``); run again on the final set
with the same ``--out`` to add the later points. ``--evaluation E.json --at N`` takes the
point at N from an evaluation made apart (``datadam evaluate --at-iteration N --json``, or
``datadam merge-evaluations`` of networks trained in several processes) instead of
training the networks here; it must be of this run at N with ``--runs`` and ``--epochs``.

    datadam distill mnist --ipc 10 --iterations 4000 --snapshot-every 500 \\
        --out mnist_ipc10.safetensors
    python tests/benchmarks/bench_convergence.py mnist_ipc10.safetensors \\
        --runs 5 --epochs 300 --out docs/results/mnist_convergence
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from kept_networks import evaluate_keeping, forget  # tests/benchmarks/ (the script's own folder)
from machine import describe

import datadam
from datadam.distill.multiformation import describe_ipc
from datadam.evaluate import EvaluationResult, TrainConfig
from datadam.files import atomic_path
from datadam.plots import convergence_figure, save_figure
from datadam.synthetic import SyntheticSet

MODEL = "convnet3"


def same_run(config: dict | None) -> dict:
    return {k: v for k, v in (config or {}).items() if k != "iterations"}


def set_name(s: dict) -> str:
    """``datadam IPC 10 on mnist``; a multi-formation set names its stored IPC and factor."""
    return f"{s['method']} {describe_ipc(s['ipc'], s.get('config'))} on {s['dataset']}"


def table(results: dict) -> str:
    s = results["settings"]
    lines = [
        "# Accuracy against distillation iterations",
        "",
        *[f"Command: `{c}`  " for c in s["commands"]],
        f"Machine: {s['machine']}  ",
        f"Set: {set_name(s)}, {s['iterations_done']} iterations"
        + (f" (a checkpoint of a run of {s['in_progress']['iterations']} in progress)"
           if s.get("in_progress") else "")
        + f", distilled with `{s['distill_command']}`  ",
        f"Evaluation: {s['runs']} {MODEL} networks x {s['epochs']} epochs each "
        "(protocol: 1,000); mean ± std of the final test accuracy.",
        "",
        "| iteration | accuracy % | matching loss (mean of the 100 iterations before) |",
        "|---|---|---|",
    ]
    apart = []
    for key in sorted(results["points"], key=int):
        r = results["points"][key]
        loss = "-" if r["loss"] is None else f"{r['loss']:.2f}"
        lines.append(f"| {key} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} | {loss} |")
        seeds = r["evaluation"]["settings"].get("seed")
        if isinstance(seeds, list):  # a `datadam merge-evaluations` result
            apart.append(f"iteration {key}: evaluation seeds {', '.join(map(str, seeds))}")
    if apart:
        lines += ["", "Networks trained apart (`datadam evaluate --runs 1 --seed S`, one process per "
                      "network) and merged with `datadam merge-evaluations`: " + "; ".join(apart) + "."]
    return "\n".join(lines) + "\n"


def plot(results: dict, history: list[float], path: Path) -> None:
    points = [results["points"][k] for k in sorted(results["points"], key=int)]
    s = results["settings"]
    save_figure(convergence_figure([p["iteration"] for p in points],
                                   [100 * p["accuracy_mean"] for p in points],
                                   [100 * p["accuracy_std"] for p in points], history,
                                   set_name(s)), path)


def made_apart(path: Path, syn: SyntheticSet, iteration: int, runs: int, epochs: int) -> EvaluationResult:
    """The evaluation in ``path``, if it is of ``syn``'s run at ``iteration`` with this budget."""
    try:
        ev = EvaluationResult.load(path)
    except datadam.errors.ConfigError as e:
        sys.exit(str(e))
    of = ev.settings.get("synthetic") or {}
    same = same_run(of.get("config")) == same_run(syn.metadata.get("config"))
    if not same or of.get("iterations_done") != iteration:
        sys.exit(f"{path} evaluates another run, or this run at iteration {of.get('iterations_done')}, "
                 f"not at {iteration}")
    got = (len(ev.runs.get(MODEL, [])), ev.settings.get("train", {}).get("epochs"))
    if got != (runs, epochs):
        sys.exit(f"{path} has {got[0]} {MODEL} networks x {got[1]} epochs, not {runs} x {epochs}")
    return ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("synthetic", type=Path, help="a set distilled with --snapshot-every, or the "
                    "checkpoint of such a run in progress")
    ap.add_argument("--at", default="all", help="iterations, comma-separated [all snapshots and the end]")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--root", default=None)
    ap.add_argument("--evaluation", type=Path, default=None,
                    help="the point at --at (one iteration) from this `datadam evaluate --json` "
                         "or `datadam merge-evaluations --json` file instead of training networks")
    ap.add_argument("--distill-command", default="not given", help="the command that made the set")
    ap.add_argument("--out", default="docs/results/mnist_convergence", help="path prefix of .json, .md, .png")
    args = ap.parse_args()
    syn = SyntheticSet.load(args.synthetic)
    final = int(syn.metadata.get("iterations_done", 0))
    its = (sorted({*syn.snapshot_iterations, final}) if args.at == "all"
           else [int(i) for i in args.at.split(",")])
    if args.evaluation and len(its) != 1:
        sys.exit("--evaluation gives the point at one iteration: name it with --at")
    json_path = Path(args.out + ".json")
    results = json.loads(json_path.read_text()) if json_path.exists() else {"points": {}}
    command = "python " + shlex.join(sys.argv)
    if "settings" in results:
        s = results["settings"]
        # Points from the run's checkpoint and from its final set are the same images, so
        # a curve may be started while the run goes on (or before --resume extends it): the
        # same run has the same config but for its planned iterations.
        if (s["runs"], s["epochs"], same_run(s["config"])) != (
                args.runs, args.epochs, same_run(syn.metadata.get("config"))):
            sys.exit("this JSON holds another run or budget: write to another --out")
        if s["iterations_done"] > final:
            sys.exit(f"this JSON holds points of the run up to iteration {s['iterations_done']}; "
                     f"{args.synthetic} stops at {final}")
        commands = list(dict.fromkeys(s["commands"] + [command]))
    else:
        commands = [command]
    results["settings"] = {
        "commands": commands, "machine": describe(), "synthetic": args.synthetic.name,
        "distill_command": args.distill_command, "method": syn.metadata.get("method"),
        "dataset": syn.metadata.get("dataset"),
        "ipc": syn.ipc, "images_per_class": syn.images_per_class, "iterations_done": final,
        "config": syn.metadata.get("config"), "runs": args.runs, "epochs": args.epochs,
        "seed": args.seed, "model": MODEL, "datadam": datadam.__version__,
        "in_progress": syn.metadata.get("in_progress"),
    }
    history = list(syn.metadata.get("loss_history") or [])
    results["loss_history"] = history
    test = datadam.data.load(results["settings"]["dataset"] or "mnist", args.root, split="test")
    for it in its:
        if str(it) in results["points"]:
            continue
        try:
            at = syn.at_iteration(it)
        except datadam.errors.ConfigError as e:
            sys.exit(str(e))
        networks = Path(f"{args.out}_networks") / f"iteration{it}.json"
        if args.evaluation:
            ev = made_apart(args.evaluation, syn, it, args.runs, args.epochs)
        else:
            ev = evaluate_keeping(networks, at, test, [MODEL], runs=args.runs, seed=args.seed,
                                  train=TrainConfig(epochs=args.epochs), device=args.device, progress=False)
        summary = ev.summary[MODEL]
        recent = history[max(0, it - 100):it]
        results["points"][str(it)] = {
            "iteration": it, "accuracy_mean": summary["accuracy_mean"],
            "accuracy_std": summary["accuracy_std"],
            "loss": sum(recent) / len(recent) if recent else None, "evaluation": ev.to_dict()}
        print(f"iteration {it}: {100 * summary['accuracy_mean']:.2f} ± "
              f"{100 * summary['accuracy_std']:.2f}", flush=True)
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(results, indent=1))
        forget(networks)
        with atomic_path(Path(args.out + ".md")) as tmp:
            tmp.write_text(table(results))
        plot(results, history, Path(args.out + ".png"))


if __name__ == "__main__":
    main()
