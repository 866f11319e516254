"""Benchmark: distill real MNIST with every method at several IPC and evaluate each set
with the protocol. Writes a JSON (every setting and number) and a
markdown table. Resumable: entries already in the JSON are skipped, and a distillation in progress
keeps a checkpoint (every 100 iterations and on Ctrl-C, in ``OUT_checkpoints/``), so
the same command run again continues where it stopped, even in the middle of a
20,000-iteration run or of an evaluation (its finished networks are kept in
``OUT_checkpoints/VARIANT_ipcN.evaluation.json``). Every distilled set is kept in
``OUT_sets/VARIANT_ipcN.safetensors`` (a set already there is evaluated, not distilled
again), so it can be looked at or evaluated another way later (``datadam show``,
``datadam evaluate``).

    python tests/benchmarks/bench_distill.py --ipcs 1,10,50 --iterations 20000 \\
        --eval-runs 5 --eval-epochs 1000 --out docs/results/mnist_distill

The defaults are the paper's budget; the committed table states the budget it used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from against_dm import against_dm_rows  # tests/benchmarks/ (the script's own folder)
from kept_networks import evaluate_keeping, forget
from machine import describe

import datadam
from datadam.errors import DistillationInterrupted
from datadam.evaluate import TrainConfig
from datadam.files import atomic_path
from datadam.synthetic import SyntheticSet
from datadam.training import describe_departures

# name -> (method, options): the baselines, DataDAM, and its ablations.
VARIANTS = {
    "random": ("random", {}),
    "herding": ("herding", {}),
    "kcenter": ("kcenter", {}),
    "dm": ("dm", {}),
    "datadam": ("datadam", {}),
    "datadam_p1": ("datadam", {"attention_power": 1.0}),
    "datadam_no_sam": ("datadam", {"sam_weight": 0.0}),
    "datadam_noise": ("datadam", {"init": "noise"}),
    "datadam_bf16": ("datadam", {"real_precision": "bf16"}),
    # multi-formation (IDC): each stored image holds 2 x 2 training images
    "datadam_f2": ("datadam", {"factor": 2}),
    "dm_f2": ("dm", {"factor": 2}),
    "datadam_p1_f2": ("datadam", {"attention_power": 1.0, "factor": 2}),
    # BatchNorm statistics over all classes at once (the official code; the default since
    # 2026-12-05) or per class (the default before, so the variants above ran with it then)
    "dm_bn_all": ("dm", {"bn_statistics": "all"}),
    "datadam_bn_all": ("datadam", {"bn_statistics": "all"}),
    "dm_bn_class": ("dm", {"bn_statistics": "class"}),
    "datadam_bn_class": ("datadam", {"bn_statistics": "class"}),
    # their start: random real images, 2 x 2 downsampled ones tiled into each stored image
    "random_f2": ("datadam", {"factor": 2, "iterations": 0}),
}




def machine_lines(results: dict) -> list[str]:
    """One line naming the machine, or one per machine with the entries it ran."""
    by_machine: dict[str, list[str]] = {}
    for key, entry in results["entries"].items():
        by_machine.setdefault(entry.get("machine", results["settings"]["machine"]), []).append(key)
    if len(by_machine) <= 1:
        return [f"Machine: {results['settings']['machine']}  "]
    return [f"Machine: {machine} ({', '.join(keys)})  " for machine, keys in by_machine.items()]


def table(results: dict) -> str:
    s = results["settings"]
    entries = results["entries"]
    variants = list(dict.fromkeys([e["variant"] for e in entries.values()] + s["variants"]))
    ipcs = sorted({e["ipc"] for e in entries.values()} | set(s["ipcs"]))
    commands = results.get("commands", [s["command"]])
    lines = [
        "# MNIST distillation benchmark",
        "",
        *[f"Command: `{c}`  " for c in commands],
        *machine_lines(results),
        f"Budget: {s['iterations']} distillation iterations; evaluation {s['eval_runs']} ConvNet-3 "
        f"networks x {s['eval_epochs']} epochs each"
        + "".join(f", {departure}" for departure in describe_departures(
            {"precision": s.get("eval_precision"), "compile": s.get("eval_compile")}))
        + " (protocol: 20,000 iterations, 1,000 epochs)  ",
        "Accuracy: mean ± std of the final test accuracy over the evaluation networks (10,000 test images).",
        "",
        "| method | " + " | ".join(f"IPC {i}" for i in ipcs) + " |",
        "|---|" + "---|" * len(ipcs),
    ]
    for variant in variants:
        cells = []
        for ipc in ipcs:
            r = results["entries"].get(f"{variant}/ipc{ipc}")
            if r is None:
                cells.append("not run")
                continue
            m = r["evaluation"]["summary"]["convnet3"]
            cells.append(f"{100 * m['accuracy_mean']:.2f} ± {100 * m['accuracy_std']:.2f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += against_dm_rows(list(entries.values()))
    lines += ["", "Variants: " + "; ".join(f"{v} = {VARIANTS[v][0]} {VARIANTS[v][1] or ''}".strip()
                                        for v in variants),
              "", "Distillation seconds per iteration (as recorded by each run):", ""]
    for key, r in results["entries"].items():
        if r.get("seconds_per_iteration"):
            lines.append(f"- {key}: {r['seconds_per_iteration']:.3f} s/it")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipcs", default="1,10,50")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--eval-runs", type=int, default=5)
    ap.add_argument("--eval-epochs", type=int, default=1000)
    ap.add_argument("--eval-precision", choices=("fp32", "bf16"), default="fp32",
                    help="training arithmetic of the evaluation networks (as datadam evaluate --precision)")
    ap.add_argument("--eval-compile", action="store_true",
                    help="torch.compile the evaluation networks' training (as datadam evaluate --compile)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--root", default=None)
    ap.add_argument("--out", default="docs/results/mnist_distill", help="path prefix of .json and .md")
    args = ap.parse_args()
    ipcs = [int(i) for i in args.ipcs.split(",")]
    variants = args.variants.split(",")
    json_path, md_path = Path(args.out + ".json"), Path(args.out + ".md")
    results = json.loads(json_path.read_text()) if json_path.exists() else {"entries": {}}
    command = "python " + " ".join(sys.argv)
    if "settings" in results:
        previous = results.get("commands", [results["settings"]["command"]])
        earlier = results["settings"]
        if (earlier["iterations"], earlier["eval_runs"], earlier["eval_epochs"],
                earlier.get("eval_precision", "fp32"), earlier.get("eval_compile", False)) != (
                args.iterations, args.eval_runs, args.eval_epochs, args.eval_precision, args.eval_compile):
            sys.exit("this JSON holds another budget: write to another --out")
        results["commands"] = list(dict.fromkeys(previous + [command]))
        for entry in results["entries"].values():  # entries of earlier commands keep their machine
            entry.setdefault("machine", results["settings"]["machine"])
    results["settings"] = {
        "command": command, "machine": describe(), "ipcs": ipcs,
        "variants": variants, "iterations": args.iterations, "eval_runs": args.eval_runs,
        "eval_epochs": args.eval_epochs, "eval_precision": args.eval_precision,
        "eval_compile": args.eval_compile, "seed": args.seed,
        "datadam": datadam.__version__,
    }
    train = datadam.data.load("mnist", args.root)
    test = datadam.data.load("mnist", args.root, split="test")
    for ipc in ipcs:
        for variant in variants:
            key = f"{variant}/ipc{ipc}"
            if key in results["entries"]:
                continue
            method, options = VARIANTS[variant]
            checkpoint = Path(args.out + "_checkpoints") / f"{variant}_ipc{ipc}.ckpt.safetensors"
            kept = Path(args.out + "_sets") / f"{variant}_ipc{ipc}.safetensors"
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            kept.parent.mkdir(parents=True, exist_ok=True)
            if kept.is_file():
                syn = SyntheticSet.load(kept)
            else:
                try:
                    # a variant may fix its own iterations (a start, with 0)
                    syn = datadam.distill(train, method, ipc, **{"iterations": args.iterations, **options},
                                          seed=args.seed, device=args.device, progress=False,
                                          checkpoint=checkpoint, checkpoint_every=100,
                                          resume=checkpoint.is_file())
                except DistillationInterrupted as e:
                    sys.exit(f"{key}: {e}; run the same command again to continue")
                syn.save(kept)
            distill_s = syn.metadata.get("wall_time_s", 0.0)  # carried over resumes
            networks = checkpoint.with_name(f"{variant}_ipc{ipc}.evaluation.json")
            ev = evaluate_keeping(networks, syn, test, ["convnet3"], runs=args.eval_runs, seed=args.seed,
                                  train=TrainConfig(epochs=args.eval_epochs, precision=args.eval_precision,
                                                    compile=args.eval_compile),
                                  device=args.device,
                                  progress=False)
            per_it = syn.metadata["seconds_per_iteration"]
            results["entries"][key] = {"variant": variant, "method": method, "ipc": ipc,
                                       "machine": results["settings"]["machine"],
                                       "options": options, "distill_seconds": distill_s,
                                       "seconds_per_iteration": per_it,
                                       "evaluation": ev.to_dict()}
            acc = ev.summary["convnet3"]
            print(f"{key}: {100 * acc['accuracy_mean']:.2f} ± {100 * acc['accuracy_std']:.2f} "
                  f"(distill {distill_s:.0f} s)", flush=True)
            with atomic_path(json_path) as tmp:
                tmp.write_text(json.dumps(results, indent=1))
            with atomic_path(md_path) as tmp:
                tmp.write_text(table(results))
            checkpoint.unlink(missing_ok=True)
            forget(networks)


if __name__ == "__main__":
    main()
