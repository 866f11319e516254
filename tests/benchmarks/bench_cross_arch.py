"""Benchmark: how well synthetic sets distilled with ConvNet-3 train other architectures.

Trains fresh networks of each model (default: the paper's ConvNet-3, AlexNet, VGG-11
and ResNet-18) on each set with the protocol and tests them on the real
test split. Writes a JSON (every setting and run) and a markdown table, one row per set
and one column per model. Resumable: a (set, model) cell already in the JSON is
skipped and the finished networks of a cell in progress are kept in ``OUT_networks/``,
so the same command run again goes on where it stopped.

    python tests/benchmarks/bench_cross_arch.py --set datadam=mnist_ipc10.safetensors \\
        --set dm=mnist_ipc10_dm.safetensors --runs 5 --epochs 1000 \\
        --out docs/results/mnist_cross_arch
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
from datadam.evaluate import TrainConfig
from datadam.files import atomic_path
from datadam.synthetic import SyntheticSet

MODELS = "convnet3,alexnet,vgg11,resnet18"


def table(results: dict) -> str:
    s = results["settings"]
    models = s["models"]
    lines = [
        "# Cross-architecture evaluation",
        "",
        *[f"Command: `{c}`  " for c in s["commands"]],
        f"Machine: {s['machine']}  ",
        f"Evaluation: {s['runs']} fresh networks of each model x {s['epochs']} epochs "
        "(protocol: 5 x 1,000), the protocol's SGD and DSA; mean ± std of the final test accuracy (%).",
        "",
        "| set | method | IPC | iterations | " + " | ".join(models) + " |",
        "|---|---|---|---|" + "---|" * len(models),
    ]
    for name, entry in results["sets"].items():
        cells = []
        for model in models:
            m = entry["models"].get(model)
            cells.append("not run" if m is None else
                         f"{100 * m['accuracy_mean']:.2f} ± {100 * m['accuracy_std']:.2f}")
        lines.append(f"| {name} | {entry['method']} | {entry['ipc']} | {entry['iterations']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Sets:", ""] + [f"- {name}: `{entry['file']}`" for name, entry in results["sets"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, metavar="NAME=PATH",
                    help="a synthetic set and its row name (repeatable)")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--root", default=None)
    ap.add_argument("--out", default="docs/results/mnist_cross_arch", help="path prefix of .json and .md")
    args = ap.parse_args()
    sets = {}
    for item in args.set:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            sys.exit(f"--set {item!r}: write NAME=PATH with PATH an existing synthetic set")
        sets[name] = Path(path)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    json_path = Path(args.out + ".json")
    command = "python " + shlex.join(sys.argv)
    results = json.loads(json_path.read_text()) if json_path.exists() else {"sets": {}}
    if "settings" in results:
        s = results["settings"]
        if (s["runs"], s["epochs"], s["seed"]) != (args.runs, args.epochs, args.seed):
            sys.exit("this JSON holds another budget: write to another --out")
        commands = list(dict.fromkeys(s["commands"] + [command]))
        models = list(dict.fromkeys(s["models"] + models))
    else:
        commands = [command]
    results["settings"] = {"commands": commands, "machine": describe(), "models": models,
                           "runs": args.runs, "epochs": args.epochs, "seed": args.seed,
                           "datadam": datadam.__version__}
    tests: dict[str, datadam.data.ImageDataset] = {}
    for name, path in sets.items():
        syn = SyntheticSet.load(path)
        dataset = syn.metadata.get("dataset") or "mnist"
        if dataset not in tests:
            tests[dataset] = datadam.data.load(dataset, args.root, split="test")
        entry = results["sets"].setdefault(name, {
            "file": str(path), "method": syn.metadata.get("method"), "ipc": syn.ipc, "dataset": dataset,
            "iterations": syn.metadata.get("iterations_done"), "config": syn.metadata.get("config"),
            "models": {}})
        for model in models:
            if model in entry["models"]:
                continue
            networks = Path(f"{args.out}_networks") / f"{name}_{model}.json"
            ev = evaluate_keeping(networks, syn, tests[dataset], [model], runs=args.runs, seed=args.seed,
                                  train=TrainConfig(epochs=args.epochs), device=args.device, progress=False)
            summary = ev.summary[model]
            entry["models"][model] = dict(summary, runs=ev.runs[model])
            print(f"{name} / {model}: {100 * summary['accuracy_mean']:.2f} ± "
                  f"{100 * summary['accuracy_std']:.2f} ({summary['train_seconds_mean']:.0f} s per network)",
                  flush=True)
            with atomic_path(json_path) as tmp:
                tmp.write_text(json.dumps(results, indent=1))
            forget(networks)
            with atomic_path(Path(args.out + ".md")) as tmp:
                tmp.write_text(table(results))


if __name__ == "__main__":
    main()
