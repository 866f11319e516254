"""Benchmark: the evaluation protocol's N networks trained together (stacked with
torch.func.vmap), or side by side in worker processes (``--jobs``), against one after
another, on the same synthetic set.

Both paths train the same networks (the same seeds, minibatches and augmentations), so
the accuracies must agree up to rounding; the script reports both, the largest
difference and the speed-up.

    python tests/benchmarks/bench_evaluate.py --synthetic out/mnist_ipc10.safetensors \
        --out docs/results/evaluate_together_cpu
    python tests/benchmarks/bench_evaluate.py --compare jobs --jobs 2 --out docs/results/evaluate_jobs_cpu

With ``--compare jobs`` the seconds are the wall time of the whole evaluation (test
scoring included), one process with every torch thread against ``--jobs`` processes
sharing them; with ``--compare together`` they are the networks' own training time.

Without ``--synthetic`` (or when the file is missing) it evaluates 10 random real
MNIST images per class, which costs the same as a distilled set of that size.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from machine import describe  # tests/benchmarks/machine.py (the script's own folder)

import datadam
from datadam.evaluate import TrainConfig, evaluate
from datadam.files import atomic_path
from datadam.synthetic import SyntheticSet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", default=None,
                    help="a synthetic set [default: 10 random real images per class]")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--model", default="convnet3")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compare", choices=("together", "jobs"), default="together",
                    help="the path set against one at a time")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of --compare jobs")
    ap.add_argument("--out", default="docs/results/evaluate_together")
    args = ap.parse_args()
    test = datadam.data.load("mnist", split="test")
    if args.synthetic and Path(args.synthetic).exists():
        syn, source = SyntheticSet.load(args.synthetic), args.synthetic
    else:
        syn, source = datadam.distill(datadam.data.load("mnist"), "random", ipc=10, seed=0,
                                      progress=False), "random real MNIST, 10 per class (seed 0)"
    train = TrainConfig(epochs=args.epochs)
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": describe(),
              "synthetic": source, "ipc": syn.ipc, "model": args.model, "runs": args.runs,
              "train": asdict(train), "paths": {}}
    other = "together" if args.compare == "together" else f"{args.jobs}_processes"
    result["seconds"] = ("the networks' training time" if args.compare == "together"
                         else "wall time of the evaluation, test scoring included")
    for path in ("one_at_a_time", other):
        options = ({"together": path == "together"} if args.compare == "together"
                   else {"together": False, "jobs": 1 if path == "one_at_a_time" else args.jobs})
        start = time.perf_counter()
        r = evaluate(syn, test, [args.model], runs=args.runs, train=train, device=args.device,
                     progress=True, **options)
        wall = time.perf_counter() - start
        s = r.summary[args.model]
        result["device"] = r.settings["device"]
        result["paths"][path] = {
            "seconds": round(s["train_seconds_mean"] * args.runs if args.compare == "together" else wall, 3),
            "accuracy": [x["accuracy"] for x in r.runs[args.model]],
            "accuracy_mean": s["accuracy_mean"], "accuracy_std": s["accuracy_std"]}
    apart, joint = result["paths"]["one_at_a_time"], result["paths"][other]
    result["speedup"] = round(apart["seconds"] / joint["seconds"], 3)
    result["max_accuracy_difference"] = max(abs(a - b) for a, b in zip(apart["accuracy"], joint["accuracy"]))
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    lines = [
        f"# Evaluation: networks trained {'together' if other == 'together' else f'in {args.jobs} processes'}"
        " vs one at a time", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; device {result['device']}  ",
        f"Set: {source} ({syn.ipc} per class); {args.runs} x {args.model}, {args.epochs} epochs, "
        "the protocol's SGD and DSA", "",
        "| path | seconds (all runs) | accuracy % (mean ± std) |", "|---|---:|---|",
    ]
    for name, p in result["paths"].items():
        lines.append(f"| {name.replace('_', ' ')} | {p['seconds']:.1f} | "
                     f"{100 * p['accuracy_mean']:.2f} ± {100 * p['accuracy_std']:.2f} |")
    lines += ["", f"Speed-up: {result['speedup']}x; largest difference in a run's accuracy: "
              f"{100 * result['max_accuracy_difference']:.2f} points.", ""]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
