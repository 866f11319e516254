"""MkDocs hook: the pages that are generated, never typed by hand.

- ``cli.md``: every command and option of ``datadam`` (application commands included),
  from the Typer app itself, so the reference cannot disagree with ``--help``;
- the results pages, from the committed benchmark JSON under ``docs/results/``;
- the source tree the API reference reads (see :func:`_api_source_tree`).

Every ``docs/results/*.json`` is recognised by its shape and rendered, tables and a
plot, into one page per kind: ``results/distillation.md`` (``bench_distill.py``),
``results/speed.md`` (``bench_speed.py``), ``results/continual.md``
(``bench_continual.py``), ``results/nas.md`` (``bench_nas.py``) and
``results/evaluate.md`` (``bench_evaluate.py``), ``results/eval-speed.md``
(``bench_eval_speed.py``), ``results/convergence.md``
(``bench_convergence.py``), ``results/cross-architecture.md``
(``bench_cross_arch.py``), ``results/comparisons.md`` (``datadam compare-evaluations
--json``) and ``results/targets.md`` (``targets.json``: the benchmark's targets, each
judged from the committed evaluations it names). A JSON file of no
known shape fails the build, so a new benchmark cannot silently go unpublished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PAGES = {
    "targets": ("Targets", "results/targets.md"),
    "distillation": ("MNIST distillation", "results/distillation.md"),
    "speed": ("Distillation speed", "results/speed.md"),
    "continual": ("Continual learning", "results/continual.md"),
    "nas": ("Architecture search proxies", "results/nas.md"),
    "evaluate": ("Evaluation: networks together or side by side", "results/evaluate.md"),
    "eval_speed": ("Evaluation: training speed (bf16, torch.compile)", "results/eval-speed.md"),
    "convergence": ("Accuracy against iterations", "results/convergence.md"),
    "cross_architecture": ("Cross-architecture evaluation", "results/cross-architecture.md"),
    "comparison": ("Paired comparisons", "results/comparisons.md"),
    "memory": ("Distillation memory", "results/memory.md"),
}


def _api_source_tree(root: Path) -> None:
    """``build/api-src/datadam``: the package as installed (``sdk/`` with ``apps/`` as
    ``datadam.apps``), made of symlinks so that mkdocstrings reads the sources where
    they are. The editable install maps two folders onto one package, which a
    static reader cannot follow."""
    tree = root / "build" / "api-src" / "datadam"
    tree.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (root / "sdk").iterdir() if p.name != "__pycache__"}
    wanted["apps"] = root / "apps"
    for name, target in wanted.items():
        link = tree / name
        if link.is_symlink() and Path(os.readlink(link)) == target.resolve():
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
    for stale in tree.iterdir():
        if stale.name not in wanted:
            stale.unlink()


def kind_of(report: dict[str, Any]) -> str:
    if "targets" in report:
        return "targets"
    if "entries" in report:
        return "distillation"
    if "points" in report:
        return "convergence"
    if "sets" in report and "models" in report.get("settings", {}):
        return "cross_architecture"
    if "modes" in report and "rows" in report:
        return "eval_speed"
    if "rows" in report:
        return "speed"
    if "class_orders" in report.get("settings", {}):
        return "continual"
    if "architectures" in report and "proxies" in report:
        return "nas"
    if "paths" in report and "speedup" in report:
        return "evaluate"
    if {"a", "b", "models"} <= set(report):
        return "comparison"
    if "peak_rss_mb" in report:
        return "memory"
    raise ValueError("unknown benchmark JSON shape (keys: " + ", ".join(sorted(report)) + ")")


def cli_reference() -> str:
    import click
    import typer
    from typer.cli import get_docs_for_click

    from datadam.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    ctx.ensure_object(dict)
    body = get_docs_for_click(obj=command, ctx=ctx, name="datadam", title="Command reference")
    del click  # typer's generator needs click's Context, which typer.Context is
    return (body.strip() + "\n\n---\n\nGenerated from the command line itself when the site is "
            "built; `datadam COMMAND --help` prints the same. Shell completion: "
            "`datadam --install-completion` (bash, zsh, fish, PowerShell).\n")


def on_files(files: Files, config, **kwargs) -> Files:
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    results = Path(config["docs_dir"]) / "results"
    by_kind: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        report = json.loads(path.read_text())
        try:
            by_kind[kind_of(report)].append((path.stem, report))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    for kind, (title, uri) in PAGES.items():
        source = ("`docs/results/targets.json` and the committed evaluations it names" if kind == "targets"
                  else "the JSON files the benchmark scripts in `tests/benchmarks/` committed under "
                       "`docs/results/`")
        lines = [f"# {title}", "", f"Generated when the site is built from {source}.", ""]
        if not by_kind.get(kind):
            lines.append("No results of this kind are committed yet.")
        for stem, report in by_kind.get(kind, []):
            text, images = RENDER[kind](stem, report)
            lines += [text, ""]
            for name, png in images.items():
                files.append(File.generated(config, f"results/img/{name}", content=png))
        files.append(File.generated(config, uri, content="\n".join(lines)))
    return files


# -- renderers: (markdown, {image name: png bytes}) ----------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pm(summary: dict, key: str) -> str:
    return f"{100 * summary[key + '_mean']:.2f} ± {100 * summary[key + '_std']:.2f}"


def _accuracy_bars(stem: str, groups: list[str], series: dict[str, dict[int, dict]],
                   alt: str) -> tuple[str, dict[str, bytes]]:
    """Grouped bars of test accuracy with its spread: ``series`` maps a label to {group
    index: summary with ``accuracy_mean``/``accuracy_std``}. Returns the image line and PNG."""
    from datadam.plots import figure_png

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=120)
    width = 0.8 / max(len(series), 1)
    for j, (label, cells) in enumerate(series.items()):
        xs = [k + (j - (len(series) - 1) / 2) * width for k in cells]
        ax.bar(xs, [100 * c["accuracy_mean"] for c in cells.values()], width,
               yerr=[100 * c["accuracy_std"] for c in cells.values()], capsize=3, label=label)
    ax.set_xticks(range(len(groups)), groups)
    low = min((100 * c["accuracy_mean"] for cells in series.values() for c in cells.values()), default=0)
    ax.set_ylim(max(0, low - 10), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, ncols=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    name = f"{stem}.png"
    return f"![{alt}](img/{name})", {name: figure_png(fig)}


def _commands(report: dict) -> list[str]:
    settings = report.get("settings", {})
    commands = report.get("commands") or [settings.get("command") or report.get("command")]
    lines = ["Commands:" if len(commands) > 1 else "Command:", "", "```bash",
             *[c for c in commands if c], "```", ""]
    entries = report.get("entries")
    machines = {e.get("machine") for e in (entries.values() if isinstance(entries, dict) else ())
                if isinstance(e, dict)} - {None}
    machine = settings.get("machine") or report.get("machine")
    if len(machines) > 1:
        lines += [f"Machines: {', '.join(sorted(machines))} (per run below)", ""]
    elif machine:
        lines += [f"Machine: {machine}", ""]
    return lines


def _against_dm(entries: list[dict], model: str) -> list[str]:
    """The bench's own rows of DataDAM against DM (``tests/benchmarks/against_dm.py``), so
    the page and the bench's markdown table cannot disagree."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tests" / "benchmarks" / "against_dm.py"
    spec = importlib.util.spec_from_file_location("against_dm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.against_dm_rows(entries, model)


def render_distillation(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:

    entries = report["entries"].values()
    variants = list(dict.fromkeys(e["variant"] for e in entries))
    ipcs = sorted({e["ipc"] for e in entries})
    cell = {(e["variant"], e["ipc"]): e for e in entries}
    model = next(iter(next(iter(entries))["evaluation"]["summary"]))
    settings = next(iter(entries))["evaluation"]["settings"]
    lines = [f"## {stem}", "", *_commands(report),
             f"Evaluation: {settings['runs']} fresh {model} networks x {_trained(settings['train'])} "
             f"on each synthetic set, tested on {settings['test_images']} "
             f"{settings['test_dataset']} test images; mean ± std of the final accuracy (%).", "",
             "| variant | options | " + " | ".join(f"IPC {i}" for i in ipcs) + " |",
             "|---|---|" + "---|" * len(ipcs)]
    for v in variants:
        sample = next(e for e in entries if e["variant"] == v)
        options = ", ".join(f"{k}={x}" for k, x in sample["options"].items()) or "defaults"
        row = [_pm(cell[v, i]["evaluation"]["summary"][model], "accuracy") if (v, i) in cell else "–"
               for i in ipcs]
        lines.append(f"| {v} ({sample['method']}) | {options} | " + " | ".join(row) + " |")
    lines += _against_dm(list(entries), model)
    # runs added by later commands may have run on another machine: name it per run then
    machines = {e.get("machine") for e in entries} - {None}
    per_machine = len(machines) > 1
    lines += ["", "Distillation iterations and seconds per iteration as each run recorded them:", "",
              "| run | iterations | s / iteration | distillation s |" + (" machine |" if per_machine else ""),
              "|---|---|---|---|" + ("---|" if per_machine else "")]
    for key, e in report["entries"].items():
        iters = e["evaluation"]["settings"]["synthetic"].get("iterations_done")
        spi = f"{e['seconds_per_iteration']:.3f}" if e.get("seconds_per_iteration") else "–"
        where = f" {e.get('machine', '–')} |" if per_machine else ""
        lines.append(f"| {key} | {iters} | {spi} | {e['distill_seconds']:.1f} |{where}")

    series = {v: {k: cell[v, i]["evaluation"]["summary"][model] for k, i in enumerate(ipcs) if (v, i) in cell}
              for v in variants}
    image, pngs = _accuracy_bars(stem, [f"IPC {i}" for i in ipcs], series, "Accuracy per variant and IPC")
    lines += ["", image]
    return "\n".join(lines), pngs


def render_speed(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.plots import figure_png

    rows = report["rows"]
    lines = [f"## {stem}", "", *_commands(report),
             "Limit: GFLOP/s of a plain no-grad forward of the same network on the same real images, "
             "in the row's real precision.",
             "", "| data | model | IPC | batch_real | real precision | s / iteration | GFLOP / iteration "
                 "| GFLOP/s | limit GFLOP/s | iteration / real forward | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['model']} | {r['ipc']} | {r['batch_real']} | "
                     f"{r.get('real_precision', 'fp32')} | "
                     f"{r['seconds_per_iteration']:.3f} | {r['gflop_per_iteration']:.1f} | "
                     f"{r['achieved_gflops']:.1f} | {r['limit_gflops']:.1f} | "
                     f"{r['iteration_over_real_forward']:.2f} | {r['peak_rss_mb']:.0f} |")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=120)
    labels = [f"{r['data']}\nipc {r['ipc']}, b {r['batch_real']}" for r in rows]
    precisions = list(dict.fromkeys(r.get("real_precision", "fp32") for r in rows))
    colors = [f"C{precisions.index(r.get('real_precision', 'fp32'))}" for r in rows]
    ax.bar(range(len(rows)), [r["seconds_per_iteration"] for r in rows], color=colors)
    if len(precisions) > 1:
        from matplotlib.patches import Patch
        ax.legend([Patch(color=f"C{i}") for i in range(len(precisions))],
                  [f"real images in {p}" for p in precisions], fontsize=7)
    ax.set_xticks(range(len(rows)), labels, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per iteration")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    name = f"{stem}.png"
    lines += ["", f"![Seconds per iteration](img/{name})"]
    return "\n".join(lines), {name: figure_png(fig)}


def render_continual(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.apps.continual.plots import plot_accuracy

    settings = report["settings"]
    lines = [f"## {stem}", "", *_commands(report),
             f"{settings['dataset']}, {settings['ipc']} images per class, {settings['protocol']} "
             f"protocol, {settings['experiences']} experiences, {len(settings.get('class_orders', []))} "
             f"class order(s); learner {settings['model']} trained {settings['learner']['epochs']} "
             f"epoch(s) per experience.", "",
             "| buffer | orders | final accuracy % | final forgetting % | seconds |",
             "|---|---|---|---|---|"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | {s['orders']} | {_pm(s, 'final_accuracy')} | "
                     f"{100 * s['final_forgetting_mean']:.2f} | {s['seconds_mean']:.1f} |")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(plot_accuracy(report, Path(tmp) / "plot.png")).read_bytes()
    name = f"{stem}.png"
    lines += ["", f"![Accuracy on the classes seen](img/{name})"]
    return "\n".join(lines), {name: png}


def render_nas(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.apps.nas.study import StudyResult, markdown_table, plot_scatter

    result = StudyResult(report["architectures"], report["proxies"], report.get("settings", {}))
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(plot_scatter(result, Path(tmp) / "scatter.png")).read_bytes()
    name = f"{stem}_scatter.png"
    lines = [f"## {stem}", "", *_commands(report), markdown_table(result), "",
             f"![Proxy against full-data accuracy](img/{name})"]
    return "\n".join(lines), {name: png}


def render_evaluate(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    train = report["train"]
    lines = [f"## {stem}", "", *_commands(report),
             f"{report['synthetic']} ({report['ipc']} per class) on device {report['device']}: "
             f"{report['runs']} x {report['model']}, {train['epochs']} epochs.", "",
             "| path | seconds (all runs) | accuracy % |", "|---|---|---|"]
    for name, p in report["paths"].items():
        lines.append(f"| {name.replace('_', ' ')} | {p['seconds']:.1f} | {_pm(p, 'accuracy')} |")
    other = next(name for name in report["paths"] if name != "one_at_a_time").replace("_", " ")
    seconds = report.get("seconds", "the networks' training time")
    lines += ["", f"Seconds: {seconds}. Speed-up of the {other} path over one at a time: "
              f"{report['speedup']}x; the largest difference "
              f"between the two paths in one run's accuracy: {100 * report['max_accuracy_difference']:.2f} "
              "points."]
    return "\n".join(lines), {}


def render_memory(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    machine = report.get("machine", {})
    commands = report.get("commands") or {}
    lines = [f"## {stem}", "", report.get("what", ""), "", "Commands:", "", "```bash",
             *(commands.values() if isinstance(commands, dict) else commands), "```", "",
             f"Machine: {machine.get('cpu', 'not recorded')}, {machine.get('cores', '?')} cores.", "",
             "| batch_real | peak resident memory (MB) | estimate before the run | seconds per iteration |",
             "|---|---|---|---|"]
    for size, peak in report["peak_rss_mb"].items():
        estimate = (report.get("estimate") or {}).get(size, {}).get("described", "-")
        seconds = (report.get("seconds_per_iteration") or {}).get(size)
        lines.append(f"| {size} | {peak:,} | {estimate} | {'-' if seconds is None else f'{seconds:.2f}'} |")
    for key in ("before", "seconds_per_iteration_note", "estimate_note"):
        if report.get(key):
            lines += ["", str(report[key])]
    return "\n".join(lines), {}


def render_eval_speed(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    modes, base = report["modes"], report["modes"][0]
    first = all("first_epoch_seconds" in r for r in report["rows"])
    compiled = ("; the first epoch, timed apart, holds a compiled mode's compilation where one was needed "
                "(cold cache; a later IPC reuses the graph an earlier one compiled for any batch size).")
    lines = [f"## {stem}", "", *_commands(report), *([report["note"], ""] if report.get("note") else []),
             *([f"Made by {report['made_by']}.", ""] if report.get("made_by") else []),
             f"{report['model']}, training {report['train']}: median seconds per epoch over alternating "
             f"blocks of the modes, from the same seed; the speed-up is over {base}"
             + (compiled if first else "."), "",
             "| IPC | images | mode | s / epoch | speed-up | 1,000 epochs |"
             + (" first epoch |" if first else ""),
             "|---|---|---|---|---|---|" + ("---|" if first else "")]
    for r in report["rows"]:
        for mode in modes:
            lines.append(f"| {r['ipc']} | {r['images']} | {mode} | {r['seconds_per_epoch'][mode]:.3f} | "
                         f"x{r['speedup'][mode]:.2f} | {r['seconds_per_1000_epochs'][mode]:.0f} s |"
                         + (f" {r['first_epoch_seconds'][mode]:.1f} s |" if first else ""))
    lines += ["", "What a mode does to accuracy is measured network by network on the "
              "[paired comparisons](comparisons.md) page (one set, two modes)."]
    return "\n".join(lines), {}


def _set_ipc(s: dict) -> str:
    from datadam.distill.multiformation import describe_ipc

    return describe_ipc(s["ipc"], s.get("config"))


def render_convergence(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.plots import convergence_figure, figure_png

    s = report["settings"]
    points = [report["points"][k] for k in sorted(report["points"], key=int)]
    lines = [f"## {stem}", "", *_commands(report),
             f"Set: {s['method']}, {_set_ipc(s)}, {s['dataset']}, {s['iterations_done']} iterations, "
             f"made with `{s['distill_command']}`. Iteration 0 is the initialisation.", "",
             f"Evaluation: {s['runs']} fresh {s['model']} networks x {s['epochs']} epochs at each "
             "iteration; mean ± std of the final accuracy (%).", "",
             "| iteration | accuracy | matching loss (mean of the 100 iterations before) |",
             "|---|---|---|"]
    for p in points:
        loss = "–" if p["loss"] is None else f"{p['loss']:.2f}"
        lines.append(f"| {p['iteration']} | {_pm(p, 'accuracy')} | {loss} |")
    apart = [f"iteration {p['iteration']}: seeds {', '.join(map(str, p['evaluation']['settings']['seed']))}"
             for p in points if isinstance(p["evaluation"]["settings"].get("seed"), list)]
    if apart:
        lines += ["", "Networks trained apart, one process each (`datadam evaluate --runs 1 --seed S`), "
                      "and merged (`datadam merge-evaluations`): " + "; ".join(apart) + "."]
    fig = convergence_figure([p["iteration"] for p in points],
                             [100 * p["accuracy_mean"] for p in points],
                             [100 * p["accuracy_std"] for p in points], report.get("loss_history"),
                             f"{s['method']} {_set_ipc(s)} on {s['dataset']}")
    name = f"{stem}.png"
    lines += ["", f"![Accuracy and loss against iterations](img/{name})"]
    return "\n".join(lines), {name: figure_png(fig)}


def render_cross_architecture(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:

    s = report["settings"]
    models, sets = s["models"], report["sets"]
    lines = [f"## {stem}", "", *_commands(report),
             f"Evaluation: {s['runs']} fresh networks of each model x {s['epochs']} epochs on each set, "
             "the protocol's SGD and DSA; mean ± std of the final test accuracy (%).", "",
             "| set | method | IPC | iterations | " + " | ".join(models) + " |",
             "|---|---|---|---|" + "---|" * len(models)]
    for name, e in sets.items():
        cells = [_pm(e["models"][m], "accuracy") if m in e["models"] else "–" for m in models]
        lines.append(f"| {name} | {e['method']} | {e['ipc']} | {e['iterations']} | "
                     + " | ".join(cells) + " |")
    series = {name: {k: e["models"][m] for k, m in enumerate(models) if m in e["models"]}
              for name, e in sets.items()}
    image, pngs = _accuracy_bars(stem, models, series, "Accuracy per set and architecture")
    lines += ["", image]
    return "\n".join(lines), pngs


def render_comparison(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.evaluate import comparison_text
    from datadam.plots import comparison_figure, figure_png

    models = report["models"]
    first = next(iter(models.values()))
    options = "".join(f" --{flag} {first[key]}" for flag, key, default in
                      (("metric", "metric", "accuracy"), ("confidence", "confidence", 0.95))
                      if first[key] != default)
    by = ("network by network" if first["unit"] == "network" else
          "distillation by distillation: each sample is the mean difference of one distillation's networks")
    command = (f"datadam compare-evaluations {report['a']} {report['b']}{options} "
               f"--json docs/results/{stem}.json")
    lines = [f"## {stem}", "", "Command:", "", "```bash", command, "```", "",
             f"- A = {report['a_set']}", f"- B = {report['b_set']}",
             *([f"- one set under two protocols, A vs B: {', '.join(first['protocol_differences'])}"]
               if first.get("protocol_differences") else []), "",
             f"{first['metric'].replace('_', ' ')} (%), {by}; B - A in points, mean ± std, the "
             f"{100 * first['confidence']:g} % interval of the mean (Student's t), the paired t-test's p "
             f"and on how many {first['unit']}s B was ahead.", "",
             "| model | pairs | A | B | B - A | interval | p | B ahead |",
             "|---|---|---|---|---|---|---|---|"]
    for name, c in models.items():
        text = comparison_text(c, missing="–")
        lines.append(f"| {name} | {text['pairs']} | {100 * c['a_mean']:.2f} | {100 * c['b_mean']:.2f} | "
                     f"{text['difference']} | {text['interval']} | {text['p']} | {text['ahead']} |")
    name = f"{stem}.png"
    lines += ["", f"![{stem}: every pair, A to B](img/{name})"]
    return "\n".join(lines), {name: figure_png(comparison_figure(models, *report["labels"]))}


RESULTS = Path(__file__).resolve().parents[1] / "results"


def _evaluation_at(reference: str):
    """The evaluation a target names: an evaluation JSON under ``docs/results/``
    (``evaluations/x.json``), or ``bench.json#entry``, an entry of a distillation bench's JSON."""
    from datadam.errors import ConfigError
    from datadam.evaluate import EvaluationResult, read_report

    path, _, entry = reference.partition("#")
    try:
        report = read_report(RESULTS / path)
        if entry:
            report = report["entries"][entry]["evaluation"]
    except (ConfigError, KeyError, TypeError) as e:
        raise ValueError(f"a target names {reference}, which docs/results/ does not hold "
                         f"({type(e).__name__}: {e})") from None
    return EvaluationResult.from_dict(report, source=reference)


def _trained(train: dict) -> str:
    """``train["epochs"]`` epochs, and how that training left the eager fp32 protocol."""
    from datadam.training import describe_departures

    return ", ".join([f"{train['epochs']:,} epochs", *describe_departures(train)])


def _budget(result, model: str) -> str:
    return f"{len(result.runs[model])} x {_trained(result.settings['train'])}"


def render_targets(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    """Every target with the evidence it names, judged here: a row of one evaluation
    reaches ``at_least`` or not; a row of two (A, B) is B above, level with or below A by
    the 95 % interval of ``compare_results`` (network by network, or distillation by
    distillation for replicates)."""
    from datadam.evaluate import compare_results, comparison_text

    model = report.get("model", "convnet3")
    summary, sections = [], []
    for target in report["targets"]:
        threshold = target.get("at_least")
        rows, verdicts = [], []
        for reference in target["evidence"]:
            if threshold is not None:
                result = _evaluation_at(reference)
                s = result.summary[model]
                mean = 100 * s["accuracy_mean"]
                verdicts.append(mean >= threshold)
                verdict = "reaches it" if verdicts[-1] else f"{threshold - mean:.2f} points short"
                rows.append(f"| `{reference}` | {result.describe_set()} | {_budget(result, model)} | "
                            f"{_pm(s, 'accuracy')} | {verdict} |")
                continue
            a, b = (_evaluation_at(r) for r in reference)
            c = compare_results(a, b)[model]
            text = comparison_text(c, missing="–")
            low, high = c["interval"] or (0.0, 0.0)
            verdict = "above" if low > 0 else "below" if high < 0 else "level"
            verdicts.append(verdict == "above")
            rows.append(f"| `{reference[0]}` against `{reference[1]}` | "
                        f"{a.describe_set()} against {b.describe_set()} | "
                        f"{_budget(b, model)} | {100 * c['a_mean']:.2f} against {100 * c['b_mean']:.2f}; "
                        f"B - A {text['difference']}, {text['interval']}, p = {text['p']}, B ahead in "
                        f"{text['ahead']} {c['unit']}s | {verdict} |")
        met = any(verdicts) if threshold is not None else all(verdicts)
        status = "**met**" if met else "**not met**"
        summary.append(f"| {target['claim']} | {status} |")
        sections += [f"### {target['claim']}", "",
                     "| evidence | recipe | networks | accuracy (%) | verdict |", "|---|---|---|---|---|",
                     *rows, ""]
    lines = [f"## {report['title']}", "", report["description"], "",
             "A target of a threshold is met when one of its rows reaches it; a target of "
             "one set or recipe (B) above another (A) is met when B is above A on every row: "
             "the 95 % interval of B - A (`datadam compare-evaluations`: network by network "
             "for two sets, distillation by distillation for replicates) lies above zero. "
             "\"level\" means the interval holds zero. Every figure below is computed from "
             "the files named when the site is built.", "",
             "| target | status |", "|---|---|", *summary, "", *sections]
    return "\n".join(lines), {}


RENDER = {"memory": render_memory,
          "targets": render_targets, "distillation": render_distillation, "speed": render_speed,
          "continual": render_continual, "nas": render_nas, "evaluate": render_evaluate,
          "eval_speed": render_eval_speed,
          "convergence": render_convergence, "cross_architecture": render_cross_architecture,
          "comparison": render_comparison}


# At import, not in on_config: mkdocstrings reads its search paths before any hook runs,
# and drops one that does not exist yet (a fresh clone).
_api_source_tree(Path(__file__).resolve().parents[2])
