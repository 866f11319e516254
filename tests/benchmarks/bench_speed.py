"""Benchmark: cost of one distillation iteration against the machine's own limit.

For each configuration it measures, in one run:

- seconds per DataDAM iteration (median after warm-up) and peak resident memory
  (each configuration runs in its own process, so the peak is its own);
- FLOPs per iteration (torch's flop counter) and the achieved GFLOP/s;
- the machine's limit: GFLOP/s of a plain batched no-grad forward of the same network
  on the same number of real images, with no distillation around it;
- the ratio of the two.

    python tests/benchmarks/bench_speed.py --out docs/results/speed

MNIST configurations use the real data; MHIST-shaped ones (3x64, 3x112, 3x224 with
ConvNet-5/6/7, two classes) use random images, which cost the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from machine import describe  # tests/benchmarks/machine.py (the script's own folder)

CONFIGS = [
    {"data": "mnist", "ipc": ipc, "batch_real": b, "real_precision": p}
    for p in ("fp32", "bf16") for b in (64, 256) for ipc in (1, 10, 50)
] + [
    {"data": f"mhist{s}", "size": s, "ipc": 10, "batch_real": 64, "real_precision": p}
    for p in ("fp32", "bf16") for s in (64, 112, 224)
]


def dataset(cfg):
    import torch

    import datadam
    from datadam.data import ImageDataset

    if cfg["data"] == "mnist":
        return datadam.data.load("mnist")
    s, n = cfg["size"], max(cfg["batch_real"], cfg["ipc"]) + 8
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2 * n, 3, s, s), dtype=torch.uint8, generator=g)
    return ImageDataset(images, torch.arange(2).repeat_interleave(n), ["HP", "SSA"],
                        (0.5,) * 3, (0.25,) * 3, "train", "mhist")


def measure(cfg, iterations: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import datadam
    from datadam.distill import DistillConfig
    from datadam.distill.matching import DataDAM

    data = dataset(cfg)
    options = dict(ipc=cfg["ipc"], batch_real=cfg["batch_real"], real_precision=cfg["real_precision"],
                   progress=False)
    syn = datadam.distill(data, "datadam", iterations=iterations, **options)
    per_iteration = syn.metadata["seconds_per_iteration"]
    counter = FlopCounterMode(display=False)
    with counter:
        datadam.distill(data, "datadam", iterations=1, **options)
    flops = counter.get_total_flops()

    # The limit: the same network, a plain forward of the same real images, in the
    # precision the iteration forwards them in.
    resolved = DistillConfig(ipc=cfg["ipc"], batch_real=cfg["batch_real"]).resolve(data.name, data.image_size)
    method = DataDAM(resolved, torch.device("cpu"))
    net = method.network(data, 0)
    k = data.num_classes
    n = k * min(cfg["batch_real"], int(torch.bincount(data.labels).min()))
    x = data.normalized(torch.arange(n) % len(data)).contiguous(memory_format=method.memory_format)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["real_precision"] == "bf16")
    with torch.no_grad(), autocast:
        counter = FlopCounterMode(display=False)
        with counter:
            net(x)
        forward_flops = counter.get_total_flops()
        times = []
        for _ in range(6):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    forward_s = statistics.median(times[1:])
    achieved = flops / per_iteration / 1e9
    limit = forward_flops / forward_s / 1e9
    return dict(cfg, model=resolved.model, seconds_per_iteration=per_iteration,
                gflop_per_iteration=flops / 1e9, achieved_gflops=achieved,
                real_forward_seconds=forward_s, real_forward_gflop=forward_flops / 1e9,
                limit_gflops=limit, ratio=achieved / limit,
                iteration_over_real_forward=per_iteration / forward_s,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=6, help="timed iterations (the first is warm-up)")
    ap.add_argument("--only", default=None, help="run one configuration given as JSON (internal)")
    ap.add_argument("--out", default="docs/results/speed")
    args = ap.parse_args()
    if args.only:
        print(json.dumps(measure(json.loads(args.only), args.iterations)))
        return
    rows = []
    for cfg in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--iterations", str(args.iterations),
                              "--only", json.dumps(cfg)], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
    from datadam.files import atomic_path

    result = {"command": "python " + " ".join(sys.argv), "machine": describe(), "rows": rows}
    with atomic_path(args.out + ".json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    lines = ["# Distillation speed against the machine's limit", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']}  ",
             "Limit: GFLOP/s of a plain no-grad forward of the same network on the same real images, "
             "in the precision of the row (`--real-precision`: the real images' forward; the synthetic "
             "images always go through float32).", "",
             "| data | model | IPC | batch_real | real precision | s/iter | GFLOP/iter | GFLOP/s | "
             "limit GFLOP/s | ratio | iter / real forward | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['model']} | {r['ipc']} | {r['batch_real']} | "
                     f"{r.get('real_precision', 'fp32')} | "
                     f"{r['seconds_per_iteration']:.3f} | {r['gflop_per_iteration']:.1f} | "
                     f"{r['achieved_gflops']:.1f} | {r['limit_gflops']:.1f} | {r['ratio']:.2f} | "
                     f"{r['iteration_over_real_forward']:.2f} | {r['peak_rss_mb']:.0f} |")
    with atomic_path(args.out + ".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
