"""Benchmark: seconds per epoch of the evaluation protocol's training in several modes,
per IPC, on this machine. A mode is a precision, ``fp32`` or ``bf16`` (``datadam
evaluate --precision``), optionally ``+compile`` (``datadam evaluate --compile``).

Each IPC's set is random real MNIST images (a distilled set of that size costs the
same). The modes train the same network from the same seed in alternating blocks of
epochs, so a load that comes and goes on the machine falls on all of them; the result is
the median seconds per epoch of each and its speed-up over the first mode. Each mode's
first epoch is timed apart and reported: for a compiled mode it holds the compilation,
measured cold (Inductor's on-disk cache is a fresh folder for each run of the script),
where one was needed: after the first IPC's, the minibatch size is marked dynamic and a
later IPC reuses that graph.
What a mode does to accuracy is measured apart, network by network, with ``datadam
compare-evaluations`` (docs/results/README.md).

    python tests/benchmarks/bench_eval_speed.py --modes fp32,fp32+compile,bf16,bf16+compile \\
        --out docs/results/eval_speed
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from machine import describe  # tests/benchmarks/machine.py (the script's own folder)


def parse_mode(mode: str) -> dict:
    """``"bf16+compile"`` -> ``{"precision": "bf16", "compile": True}``."""
    precision, *flags = mode.split("+")
    if flags not in ([], ["compile"]):
        raise SystemExit(f"unknown mode {mode!r}: a precision (fp32, bf16), optionally +compile")
    return {"precision": precision, "compile": flags == ["compile"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="fp32,bf16",
                    help="comma-separated modes; speed-ups are over the first (default: fp32,bf16)")
    ap.add_argument("--ipc", default="1,10,50", help="comma-separated IPCs")
    ap.add_argument("--images-per-block", type=int, default=5000,
                    help="each block trains about this many images (epochs = this / set size)")
    ap.add_argument("--blocks", type=int, default=5, help="alternating blocks per mode")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the evaluations ran one each)")
    ap.add_argument("--note", default="", help="what else ran on the machine, recorded with the result")
    ap.add_argument("--out", default="docs/results/eval_speed")
    args = ap.parse_args()
    modes = args.modes.split(",")
    configs = {mode: parse_mode(mode) for mode in modes}
    # a cold compilation, not one read back from an earlier run's cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_eval_speed_inductor_")

    import torch

    import datadam
    from datadam.augment import DSA
    from datadam.files import atomic_path
    from datadam.training import TrainConfig, train_network

    def seconds_per_epoch(syn, config: TrainConfig, epochs: int) -> float:
        net = datadam.models.create("convnet3", syn.image_shape[0], len(syn.classes), syn.image_shape[1:],
                                    seed=0)
        start = time.perf_counter()
        train_network(net, syn.images, syn.labels, replace(config, epochs=epochs), DSA.from_name("digits"),
                      seed=0)
        return (time.perf_counter() - start) / epochs

    torch.set_num_threads(args.threads)
    train = datadam.data.load("mnist")
    rows = []
    for ipc in (int(v) for v in args.ipc.split(",")):
        syn = datadam.distill(train, "random", ipc=ipc, seed=0, progress=False)
        epochs = max(1, args.images_per_block // len(syn))
        # the first epoch apart: allocator, kernels and, compiled, the compilation
        first = {mode: seconds_per_epoch(syn, TrainConfig(**configs[mode]), 1) for mode in modes}
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.blocks):
            for mode in modes:
                times[mode].append(seconds_per_epoch(syn, TrainConfig(**configs[mode]), epochs))
        median = {mode: statistics.median(ts) for mode, ts in times.items()}
        rows.append({"ipc": ipc, "images": len(syn), "epochs_per_block": epochs,
                     "seconds_per_epoch": {m: round(s, 4) for m, s in median.items()},
                     "speedup": {m: round(median[modes[0]] / s, 2) for m, s in median.items()},
                     "seconds_per_1000_epochs": {m: round(1000 * s, 1) for m, s in median.items()},
                     "first_epoch_seconds": {m: round(s, 2) for m, s in first.items()},
                     "blocks": {m: [round(t, 4) for t in ts] for m, ts in times.items()}})
        print(f"IPC {ipc}: " + ", ".join(f"{m} {median[m]:.3f} s/epoch (x{median[modes[0]] / median[m]:.2f}, "
                                         f"first epoch {first[m]:.1f} s)" for m in modes), flush=True)
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": describe(),
              "note": args.note, "model": "convnet3", "modes": modes,
              "train": "the protocol's (SGD lr 0.01, batch 256, DSA digits)", "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.with_suffix('.json')} (rendered on the results page eval-speed)")


if __name__ == "__main__":
    main()
