"""Benchmark: a condensed set as a NAS proxy on real MNIST (issue 6).

Samples architectures from the ConvNet space, trains each on the full training data
(the ground truth; cached, so a rerun pays it once), on a DataDAM synthetic set and on
a random real subset of the same size, scores all on the same real validation images,
and writes JSON + markdown + the scatter plot. Make the proxy first (or let this
script make a missing one the same way), e.g.:

    datadam nas distill mnist --ipc 10 --iterations 1000 --out out/nas/mnist_ipc10.safetensors
    python tests/benchmarks/bench_nas.py --proxy out/nas/mnist_ipc10.safetensors \\
        --archs 24 --threads 1 --out docs/results/nas_mnist

Run on purpose, not in CI (minutes to tens of minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from machine import describe  # tests/benchmarks/machine.py (the script's own folder)

from datadam.apps.nas.architecture import SearchSpace
from datadam.apps.nas.evaluator import FULL_TRAIN, PROXY_TRAIN
from datadam.apps.nas.proxy import PROXY_NETWORKS, distill_proxy
from datadam.apps.nas.rank_study import study
from datadam.apps.nas.study_report import markdown_table, plot_scatter
from datadam.files import atomic_path
from datadam.synthetic import SyntheticSet


def report(result, command: str, distill_commands: dict[str, str], machine_line: str, threads: int,
           scatter: str) -> str:
    s = result.settings
    full = s["full_data"]
    names = list(result.proxies)
    aug = s["proxy_train"]["augmentation"] or "digits, the MNIST preset"
    lines = [
        "# A condensed set as a NAS proxy on real MNIST",
        "",
        f"Command: `{command}`  ",
        *(f"Proxy {name} made with: `{how}`  " for name, how in distill_commands.items()),
        f"Machine: {machine_line}; torch threads: {threads} (the 2 cores were shared with another job)  ",
        f"Architectures: {s['archs']} sampled (seed {s['seed']}) from a space of {s['space_size']}: "
        + ", ".join(f"{k} {{{', '.join(map(str, v))}}}" for k, v in s["space"].items()) + "  ",
        f"Validation: {s['split']['validation_images']} real training images held out "
        f"(seed {s['split']['split_seed']}); every network is scored on them.  ",
        f"Full data: {full['images']} images, {s['full_train']['epochs']} epochs "
        f"(SGD lr {s['full_train']['lr']}, cosine, batch {s['full_train']['batch']}, no augmentation); "
        f"accuracy {100 * full['accuracy_min']:.2f}-{100 * full['accuracy_max']:.2f}% "
        f"(mean {100 * full['accuracy_mean']:.2f}, std {100 * full['accuracy_std']:.2f}).  ",
        f"Proxies: {s['proxy_train']['epochs']} epochs (SGD lr {s['proxy_train']['lr']}, cosine, "
        f"batch {s['proxy_train']['batch']}, DSA: {aug}).  ",
        "",
        markdown_table(result),
        "Speed-up (time): seconds per architecture (training plus scoring the validation images) on "
        "the full data over the same on the proxy; training alone: "
        + ", ".join(f"{n} {train_speedup(result, n):.1f}x" for n in names) + ". The seconds were "
        "taken while another job shared the two cores, and full-data seconds may come from the cache "
        "(an earlier run): read them with that in mind. Speed-up (FLOPs): the same ratio in "
        "floating-point operations (forward + backward per training image, forward per validation "
        "image; DSA and the optimiser left out), which no other job can stretch.",
        "",
        f"![proxy vs full-data accuracy]({scatter})",
        "",
        "| architecture | full data % | " + " | ".join(f"{n} %" for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for row in sorted(result.architectures, key=lambda r: -r["full"]["accuracy"]):
        lines.append(f"| {row['key']} | {100 * row['full']['accuracy']:.2f} | "
                     + " | ".join(f"{100 * row[n]['accuracy']:.2f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def train_speedup(result, name: str) -> float:
    rows = result.architectures
    return sum(r["full"]["train_seconds"] for r in rows) / sum(r[name]["train_seconds"] for r in rows)


def make_or_describe(path: str, args: argparse.Namespace) -> str:
    """Distil the proxy at ``path`` if it does not exist; return how it was made."""
    if not Path(path).exists():
        # `datadam nas distill`: condensed from the training images the study trains on,
        # never from the held-out validation images that score every architecture
        distill_proxy("mnist", iterations=args.distill_iterations, networks=args.distill_networks,
                      validation=args.validation, seed=args.seed, progress=True).save(path)
    meta = SyntheticSet.load(path).metadata
    cfg = meta.get("config", {})
    split = meta.get("nas_split")
    if split is not None:  # made by `datadam nas distill` (distill_proxy)
        return (f"datadam nas distill {meta.get('dataset')} --ipc {cfg.get('ipc')} "
                f"--iterations {meta.get('iterations_done')} --networks {split['networks']} "
                f"--validation {split['validation_images']} --seed {meta.get('seed')} --out {Path(path).name}"
                f" (condensed from {meta['dataset_images']} real images)")
    how = (f"datadam distill {meta.get('dataset')} --method {meta.get('method')} "
           f"--ipc {cfg.get('ipc')} --iterations {meta.get('iterations_done')} --seed {meta.get('seed')}")
    if cfg.get("model") and cfg["model"] != "convnet3":
        how += f" --model {cfg['model']}"
    how += "".join(f" --model-choice {k}={','.join(map(str, v))}"
                   for k, v in (cfg.get("model_choices") or {}).items())
    how += f" --out {Path(path).name}"
    if meta.get("dataset_images") is not None:  # sets written before it was recorded lack it
        how += f" (condensed from {meta['dataset_images']} real images)"
    return how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True, action="append",
                        help="DataDAM synthetic set (.safetensors), made here if it does not exist; "
                             "repeat to judge several")
    parser.add_argument("--distill-iterations", type=int, default=200,
                        help="iterations of a proxy this script makes")
    parser.add_argument("--distill-networks", choices=PROXY_NETWORKS, default=PROXY_NETWORKS[0],
                        help="networks a proxy this script makes is distilled with (datadam nas "
                             "distill --networks): the published ConvNet-3, or drawn from the space")
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=PROXY_TRAIN.epochs, help="training epochs on a proxy")
    parser.add_argument("--batch", type=int, default=PROXY_TRAIN.batch, help="minibatch on a proxy")
    parser.add_argument("--full-epochs", type=int, default=FULL_TRAIN.epochs,
                        help="training epochs on the full data")
    parser.add_argument("--random-draws", type=int, default=1,
                        help="random real subsets to judge (random, random:1, ...): their spread")
    parser.add_argument("--validation", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the cores are shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="out/nas/full_data_cache.json")
    parser.add_argument("--out", default="docs/results/nas_mnist", help="path prefix of the outputs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    distill_commands = {Path(p).name: make_or_describe(p, args) for p in args.proxy}
    start = time.perf_counter()

    def on_step(proxy: str, row: dict) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {proxy:>24}: {row['key']:<36} "
              f"{100 * row[proxy]['accuracy']:6.2f}% in {row[proxy]['seconds']:.2f} s", flush=True)

    randoms = ["random"] + [f"random:{k}" for k in range(1, args.random_draws)]
    result = study("mnist", [*args.proxy, *randoms], archs=args.archs, space=SearchSpace(),
                   proxy_train={"epochs": args.epochs, "batch": args.batch},
                   full_train={"epochs": args.full_epochs},
                   validation=args.validation, seed=args.seed, device="cpu", cache=args.cache,
                   on_step=on_step)
    result.settings.update(command=command, distill_commands=distill_commands, machine=describe(),
                           torch_threads=args.threads, proxy_metadata={
                               Path(p).name: {k: meta.get(k) for k in (
                                   "method", "dataset", "config", "iterations_done", "seed", "wall_time_s",
                                   "dataset_images")}
                               for p in args.proxy for meta in [SyntheticSet.load(p).metadata]})
    out = Path(args.out)
    result.save(out.with_suffix(".json"))
    scatter = f"{out.name}_scatter.png"
    plot_scatter(result, out.parent / scatter)
    text = report(result, command, distill_commands, result.settings["machine"], args.threads, scatter)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text)
    print(text)
    print(json.dumps({n: {k: q[k] for k in ("spearman", "kendall", "chosen_full_accuracy",
                                             "top_k_overlap", "speedup_vs_full")}
                      for n, q in result.proxies.items()}, indent=1))


if __name__ == "__main__":
    main()
