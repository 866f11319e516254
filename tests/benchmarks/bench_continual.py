"""Benchmark: replay memories at equal memory on split MNIST (5 experiences of 2
classes), over several class orders, with Avalanche. Writes the JSON of every run, a
markdown table and the accuracy plot. Resumable: runs already in the JSON are kept.

    python tests/benchmarks/bench_continual.py --protocol retrain --out docs/results/continual_mnist

Both protocols share the distilled memories (``--cache``), so each experience is
condensed once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from machine import describe  # tests/benchmarks/machine.py (the script's own folder)

import datadam
from datadam.apps.continual import ContinualConfig, compare_buffers, plot_accuracy
from datadam.files import atomic_path


def table(result: dict) -> str:
    s = result["settings"]
    learner = s["learner"]
    lines = [
        f"# Continual learning on split MNIST: {s['protocol']} protocol",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- stream: {s['experiences']} experiences of {len(s['classes']) // s['experiences']} classes, "
        f"{s['train_images']} training images ({s['train_per_class'] or 'all'} per class), tested on "
        f"{s['test_images']} test images ({s['test_per_class'] or 'all'} per class) of the classes seen",
        f"- memory: {s['ipc']} images per class ({s['ipc'] * len(s['classes'])} in the end) for every buffer",
        f"- learner: {s['model']} {s['model_options'] or ''} trained {learner['epochs']} epoch(s) per "
        f"experience, batch {learner['batch']}, SGD lr {learner['lr']}, DSA `{s['augmentation']}`"
        + (" (lr x0.1 at half), from its initial weights on the memory alone" if s["protocol"] == "retrain"
           else ", fine-tuned with replay (Avalanche ReplayPlugin)"),
        f"- distilled memories: {s['distill']} per experience, from that experience's data only",
        f"- class orders: {s['class_orders']}",
        "",
        "| buffer | final accuracy (%) | forgetting (%) | accuracy after each experience (%) | s / order |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["summary"].items():
        curve = " / ".join(f"{100 * a:.1f}" for a in m["accuracy_mean"])
        final = f"{100 * m['final_accuracy_mean']:.2f} ± {100 * m['final_accuracy_std']:.2f}"
        lines.append(f"| {name} | {final} | {100 * m['final_forgetting_mean']:.2f} | {curve} | "
                     f"{m['seconds_mean']:.0f} |")
    lines += ["", "Mean ± std over the class orders (population std); accuracy is on the test images of "
              "the classes seen so far. Per-order numbers are in the JSON. s / order: wall time of a "
              "run, distillation included unless the memory came from the shared cache (the "
              "other protocol's run may have paid it), on a machine other jobs were sharing.", ""]
    per_order = ["| buffer | " + " | ".join(f"order {i + 1}" for i in range(len(s["class_orders"]))) + " |",
                 "|---|" + "---|" * len(s["class_orders"])]
    for name in result["summary"]:
        finals = {r["order_index"]: r["final_accuracy"] for r in result["runs"] if r["buffer"] == name}
        per_order.append(f"| {name} | " + " | ".join(
            f"{100 * finals[i]:.2f}" if i in finals else "-" for i in range(len(s["class_orders"]))) + " |")
    return "\n".join(lines + ["Final accuracy per class order (%):", ""] + per_order) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", default="retrain", choices=("retrain", "replay"))
    ap.add_argument("--buffers", default=None,
                    help="comma-separated [default: random,herding,dm,datadam (+ none for replay)]")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--orders", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="learner minibatch [default: 256 / 128]")
    ap.add_argument("--width", type=int, default=None, help="learner ConvNet width [default: 128]")
    ap.add_argument("--iterations", type=int, default=200, help="distillation iterations per experience")
    ap.add_argument("--train-per-class", type=int, default=None)
    ap.add_argument("--test-per-class", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="out/continual_memories", help="distilled memories (shared)")
    ap.add_argument("--out", default="docs/results/continual_mnist", help="prefix of .json/.md/.png")
    args = ap.parse_args()

    buffers = args.buffers or ("random,herding,dm,datadam" + (",none" if args.protocol == "replay" else ""))
    config = ContinualConfig(
        buffers=tuple(buffers.split(",")), ipc=args.ipc, orders=args.orders, protocol=args.protocol,
        epochs=args.epochs, batch=args.batch, model_options={"net_width": args.width} if args.width else {},
        train_per_class=args.train_per_class, test_per_class=args.test_per_class,
        distill={"iterations": args.iterations}, seed=args.seed)
    out = Path(f"{args.out}_{args.protocol}")
    result = compare_buffers(datadam.data.load("mnist"), datadam.data.load("mnist", split="test"), config,
                             results=out.with_suffix(".json"), cache_dir=args.cache, device="cpu",
                             progress=True)
    result["command"] = "python " + " ".join(sys.argv)
    result["machine"] = describe()
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(table(result))
    plot_accuracy(result, out.with_suffix(".png"))
    print(table(result))


if __name__ == "__main__":
    main()
