"""Benchmark: seconds per epoch of the evaluation protocol's training in fp32 and in
bfloat16 (``datadam evaluate --precision bf16``), per IPC, on this machine.

Each IPC's set is random real MNIST images (a distilled set of that size costs the
same). The two precisions train the same network from the same seed in alternating
blocks of epochs, so a load that comes and goes on the machine falls on both; the
result is the median seconds per epoch of each and their ratio. What bf16 does to
accuracy is measured apart, network by network, with ``datadam compare-evaluations``
(docs/results/README.md).

    python tests/benchmarks/bench_eval_precision.py --out docs/results/eval_precision
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from machine import describe  # tests/benchmarks/machine.py (the script's own folder)

import datadam
from datadam.augment import DSA
from datadam.synthetic import atomic_path
from datadam.training import TrainConfig, train_network


def seconds_per_epoch(syn, config: TrainConfig, epochs: int) -> float:
    net = datadam.models.create("convnet3", syn.image_shape[0], len(syn.classes), syn.image_shape[1:], seed=0)
    start = time.perf_counter()
    config = replace(config, epochs=epochs)
    train_network(net, syn.images, syn.labels, config, DSA.from_name("digits"), seed=0)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipc", default="1,10,50", help="comma-separated IPCs")
    ap.add_argument("--images-per-block", type=int, default=5000,
                    help="each block trains about this many images (epochs = this / set size)")
    ap.add_argument("--blocks", type=int, default=5, help="alternating blocks per precision")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the evaluations ran one each)")
    ap.add_argument("--note", default="", help="what else ran on the machine, recorded with the result")
    ap.add_argument("--out", default="docs/results/eval_precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = datadam.data.load("mnist")
    rows = []
    for ipc in (int(v) for v in args.ipc.split(",")):
        syn = datadam.distill(train, "random", ipc=ipc, seed=0, progress=False)
        epochs = max(1, args.images_per_block // len(syn))
        seconds_per_epoch(syn, TrainConfig(), 1)  # warm-up: allocator and kernels
        seconds_per_epoch(syn, TrainConfig(precision="bf16"), 1)
        times = {"fp32": [], "bf16": []}
        for _ in range(args.blocks):
            for precision in times:
                times[precision].append(seconds_per_epoch(syn, TrainConfig(precision=precision), epochs))
        fp32, bf16 = (statistics.median(times[p]) for p in ("fp32", "bf16"))
        rows.append({"ipc": ipc, "images": len(syn), "epochs_per_block": epochs,
                     "fp32_seconds_per_epoch": round(fp32, 4), "bf16_seconds_per_epoch": round(bf16, 4),
                     "bf16_speedup": round(fp32 / bf16, 2),
                     "fp32_seconds_per_1000_epochs": round(1000 * fp32, 1),
                     "bf16_seconds_per_1000_epochs": round(1000 * bf16, 1),
                     "blocks": {p: [round(t, 4) for t in ts] for p, ts in times.items()}})
        print(f"IPC {ipc}: fp32 {fp32:.3f} s/epoch, bf16 {bf16:.3f} s/epoch, x{fp32 / bf16:.2f}", flush=True)
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": describe(),
              "note": args.note, "model": "convnet3", "precisions": ["fp32", "bf16"],
              "train": "the protocol's (SGD lr 0.01, batch 256, DSA digits)", "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Evaluation training: fp32 against bf16 ({result['machine']})", "",
             f"`{result['command']}`", "", *([args.note, ""] if args.note else []),
             "| IPC | images | fp32 s/epoch | bf16 s/epoch | bf16 speed-up | 1,000 epochs fp32 "
             "| 1,000 epochs bf16 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['ipc']} | {r['images']} | {r['fp32_seconds_per_epoch']:.3f} "
              f"| {r['bf16_seconds_per_epoch']:.3f} "
              f"| x{r['bf16_speedup']:.2f} | {r['fp32_seconds_per_1000_epochs']:.0f} s "
              f"| {r['bf16_seconds_per_1000_epochs']:.0f} s |" for r in rows]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
