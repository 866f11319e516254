"""MkDocs hook: the pages that are generated, never typed by hand.

- ``cli.md``: every command and option of ``datadam`` (application commands included),
  from the Typer app itself, so the reference cannot disagree with ``--help``;
- the results pages, one per area, from the committed JSON under ``docs/results/``;
- the source tree the API reference reads (see :func:`_api_source_tree`).

Every ``docs/results/*.json`` is recognised by its shape (:func:`kind_of`) and every
``docs/results/evaluations/*.json`` is an evaluation (``datadam evaluate --json`` or
``datadam merge-evaluations --json``, with the ``commands`` and ``machine`` that
``tests/benchmarks/record_commands.py`` wrote into it). Each kind is a section of one
area's page (:data:`SECTIONS`): distillation accuracy, speed, continual learning and
NAS. A file of no known shape, or one that lacks what its kind needs, fails the build
with the file's name, so a result can neither go unpublished nor break a page silently.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PAGES = {
    "distillation": ("Distillation accuracy", "results/distillation.md",
                     "How accurate the distilled sets are: the benchmark's targets, paired "
                     "comparisons, every merged evaluation, and the distillation benches."),
    "speed": ("Speed: distillation and evaluation cost", "results/speed.md",
              "What a distillation iteration and an evaluation network cost, in seconds, "
              "FLOPs and memory."),
    "continual": ("Continual learning", "results/continual.md",
                  "Replay memories on split MNIST (`tests/benchmarks/bench_continual.py`)."),
    "nas": ("Architecture search", "results/nas.md",
            "Distilled and random proxies ranking architectures against full-data training "
            "(`tests/benchmarks/bench_nas.py`)."),
}

# (kind, page, section heading), in the order of the pages' sections.
SECTIONS = [
    ("targets", "distillation", "Targets"),
    ("power", "distillation", "Attention power"),
    ("comparison", "distillation", "Paired comparisons"),
    ("evaluation", "distillation", "Evaluations"),
    ("distillation", "distillation", "Distillation benches"),
    ("convergence", "distillation", "Accuracy against iterations"),
    ("cross_architecture", "distillation", "Cross-architecture evaluation"),
    ("speed", "speed", "Distillation: seconds and FLOPs per iteration"),
    ("memory", "speed", "Distillation: memory"),
    ("eval_speed", "speed", "Evaluation: training speed (bf16, torch.compile)"),
    ("evaluate", "speed", "Evaluation: networks together or side by side"),
    ("continual", "continual", "Replay memories"),
    ("nas", "nas", "Proxy rank studies"),
]

# `datadam compare-evaluations --json` files of attention power p = 4 against p = 1, one per IPC:
# the distillation page draws them as one table of their own.
POWER_COMPARISONS = "mnist_ipc*_power_p4_vs_p1.json"

RESULTS = Path(__file__).resolve().parents[1] / "results"

Item = tuple[str, dict[str, Any]]  # (the file's name under docs/results/, its content)
Rendered = tuple[str, dict[str, bytes]]  # (markdown, {image name: PNG bytes})


class ResultError(ValueError):
    """A committed result file the pages cannot show; the message names the file."""


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
    """The kind of a ``docs/results/*.json`` file, by its shape; :class:`ValueError` for
    a shape no section shows."""
    if not isinstance(report, dict):
        raise ValueError(f"unknown benchmark JSON shape (a JSON {type(report).__name__}, not an object)")
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


# -- finding and rendering the results -----------------------------------------------------

def _read(path: Path, name: str) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{name}: not a readable JSON file ({e})") from None
    if not isinstance(report, dict):
        raise ResultError(f"{name}: unknown benchmark JSON shape "
                          f"(a JSON {type(report).__name__}, not an object)")
    return report


def results_by_kind(results: Path) -> dict[str, list[Item]]:
    """Every result file under ``results`` by kind (:data:`SECTIONS`), in name order;
    :class:`ResultError` naming the first file that is no result of a known kind."""
    by_kind: dict[str, list[Item]] = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        name = f"docs/results/{path.name}"
        report = _read(path, name)
        try:
            kind = kind_of(report)
        except ValueError as e:
            raise ResultError(f"{name}: {e}") from None
        if kind == "comparison" and fnmatch.fnmatch(path.name, POWER_COMPARISONS):
            kind = "power"
        by_kind[kind].append((path.name, report))
    for path in sorted((results / "evaluations").glob("*.json")):
        name = f"docs/results/evaluations/{path.name}"
        report = _read(path, name)
        if not {"runs", "summary", "settings"} <= set(report):
            raise ResultError(f"{name}: not an evaluation (it has no runs, summary and settings; "
                              "keys: " + ", ".join(sorted(report)) + ")")
        by_kind["evaluation"].append((f"evaluations/{path.name}", report))
    return by_kind


def render_section(kind: str, items: list[Item]) -> Rendered:
    """One section's markdown and images: a table over every file of a collective kind
    (:data:`COLLECTIVE`), else each file's own part; :class:`ResultError` naming the file
    that lacks what its kind needs."""
    if kind in COLLECTIVE:
        rows_of, table = COLLECTIVE[kind]
        rows = [(name, report, _checked(name, kind, rows_of, name, report)) for name, report in items]
        return table(rows)
    texts, images = [], {}
    for name, report in items:
        text, pngs = _checked(name, kind, RENDER[kind], Path(name).stem, report)
        texts.append(text)
        images.update(pngs)
    return "\n\n".join(texts), images


def _checked(name: str, kind: str, render: Callable, *args: Any) -> Any:
    try:
        return render(*args)
    except ResultError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration) as e:
        what = f"no {e.args[0]!r}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ResultError(f"docs/results/{name}: not a {kind} result the pages can show ({what})") from None


def results_pages(results: Path) -> dict[str, Rendered]:
    """Each page of :data:`PAGES` (by its URI): markdown and images."""
    by_kind = results_by_kind(results)
    pages: dict[str, Rendered] = {}
    for page, (title, uri, intro) in PAGES.items():
        lines, images = [f"# {title}", "", intro, "",
                         "Generated when the site is built from the JSON files under `docs/results/` "
                         "([the index](README.md) says which file is which).", ""], {}
        for kind, section_page, heading in SECTIONS:
            if section_page != page:
                continue
            lines += [f"## {heading}", ""]
            if not by_kind.get(kind):
                lines += ["No results of this kind are committed yet.", ""]
                continue
            text, pngs = render_section(kind, by_kind[kind])
            lines += [text, ""]
            images.update(pngs)
        pages[uri] = ("\n".join(lines), images)
    return pages


def on_files(files: Files, config, **kwargs) -> Files:
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    for uri, (text, images) in results_pages(Path(config["docs_dir"]) / "results").items():
        for name, png in images.items():
            files.append(File.generated(config, f"results/img/{name}", content=png))
        files.append(File.generated(config, uri, content=text))
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
    lines = [f"### {stem}", "", *_commands(report),
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
    lines = [f"### {stem}", "", *_commands(report),
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
    lines = [f"### {stem}", "", *_commands(report),
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
    from datadam.apps.nas.rank_study import StudyResult
    from datadam.apps.nas.study_report import markdown_table, plot_scatter

    result = StudyResult.from_record(report)  # a study of any schema version, in today's form
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(plot_scatter(result, Path(tmp) / "scatter.png")).read_bytes()
    name = f"{stem}_scatter.png"
    lines = [f"### {stem}", "", *_commands(report), markdown_table(result), "",
             f"![Proxy against full-data accuracy](img/{name})"]
    return "\n".join(lines), {name: png}


def render_evaluate(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    train = report["train"]
    lines = [f"### {stem}", "", *_commands(report),
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
    lines = [f"### {stem}", "", report.get("what", ""), "", "Commands:", "", "```bash",
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
    lines = [f"### {stem}", "", *_commands(report), *([report["note"], ""] if report.get("note") else []),
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
              "[paired comparisons](distillation.md#paired-comparisons) (one set, two modes)."]
    return "\n".join(lines), {}


def _set_ipc(s: dict) -> str:
    from datadam.distill.multiformation import describe_ipc

    return describe_ipc(s["images_per_class"], s.get("config"))


def render_convergence(stem: str, report: dict) -> tuple[str, dict[str, bytes]]:
    from datadam.plots import convergence_figure, figure_png

    s = report["settings"]
    points = [report["points"][k] for k in sorted(report["points"], key=int)]
    lines = [f"### {stem}", "", *_commands(report),
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
    lines = [f"### {stem}", "", *_commands(report),
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


# -- the sections that are one table over many files ----------------------------------------

def _compare_command(name: str, report: dict) -> str:
    first = next(iter(report["models"].values()))
    options = "".join(f" --{flag} {first[key]}" for flag, key, default in
                      (("metric", "metric", "accuracy"), ("confidence", "confidence", 0.95))
                      if first.get(key, default) != default)
    return f"datadam compare-evaluations {report['a']} {report['b']}{options} --json docs/results/{name}"


def _machine_of(reference: str) -> str | None:
    """The machine an evaluation file named by a comparison (``docs/results/...``) records."""
    path = RESULTS / reference.removeprefix("docs/results/")
    try:
        return json.loads(path.read_text()).get("machine")
    except (OSError, ValueError, AttributeError):
        return None


def comparison_rows(name: str, report: dict) -> list[dict[str, Any]]:
    """One row per model of a ``datadam compare-evaluations --json`` file: the cells of
    the table (B - A in points, the interval, p, pairs, how often B was ahead)."""
    from datadam.evaluate import comparison_text

    rows = []
    for model, c in report["models"].items():
        text = comparison_text(c, missing="–")
        rows.append({"model": model, "a": f"{100 * c['a_mean']:.2f}", "b": f"{100 * c['b_mean']:.2f}",
                     "difference": text["difference"], "interval": text["interval"], "p": text["p"],
                     "pairs": text["pairs"], "ahead": text["ahead"], "unit": c["unit"],
                     "mean": 100 * c["difference_mean"],
                     "bounds": None if c["interval"] is None else [100 * v for v in c["interval"]]})
    return rows


def _commands_block(commands: list[str]) -> list[str]:
    return ["```bash", *commands, "```", ""]


def _machines_line(machines: set[str | None]) -> list[str]:
    known = sorted(m for m in machines if m)
    if not known:
        return ["Machine: not recorded.", ""]
    return [("Machines: " if len(known) > 1 else "Machine: ") + "; ".join(known)
            + (" (some files record none)" if None in machines else "") + ".", ""]


def comparisons_table(rows: list[tuple[str, dict, list[dict]]]) -> Rendered:
    """Every paired comparison in one table, their commands, a forest plot of B - A, and
    the pictures of compared sets committed beside them (``P_A.png`` and ``P_B.png`` for
    ``P_A_vs_B.json``)."""
    lines = ["`datadam compare-evaluations A B`: accuracy (%) of A and B, B - A in points "
             "(mean ± std), the 95 % interval of the mean difference (Student's t), the paired "
             "t-test's p, and on how many pairs B was ahead: network by network, or distillation "
             "by distillation for replicates. The sets are described in the "
             "[evaluations](#evaluations) table.", "",
             "| comparison | A | B | A % | B % | B - A | interval | p | pairs | B ahead |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    forest, pictures, commands, machines = [], [], [], set()
    for name, report, cells in rows:
        stem = Path(name).stem
        for cell in cells:
            label = stem if len(cells) == 1 else f"{stem} ({cell['model']})"
            lines.append(f"| {label} | `{Path(report['a']).stem}` | `{Path(report['b']).stem}` | "
                         f"{cell['a']} | {cell['b']} | {cell['difference']} | {cell['interval']} | "
                         f"{cell['p']} | {cell['pairs']} | {cell['ahead']} {cell['unit']}s |")
            forest.append((label, cell["mean"], cell["bounds"]))
        commands.append(_compare_command(name, report))
        machines |= {_machine_of(report["a"]), _machine_of(report["b"])}
        head, _, tail = stem.rpartition("_vs_")
        prefix, _, first = head.rpartition("_")
        for side in (first, tail):
            if (RESULTS / f"{prefix}_{side}.png").is_file():
                pictures.append(f"![{prefix}: {side}]({prefix}_{side}.png)")
    lines += ["", "Commands:", "", *_commands_block(commands), *_machines_line(machines)]
    name = "comparisons.png"
    lines += [f"![B - A of every comparison, with its interval](img/{name})", ""]
    if pictures:
        lines += ["The compared sets, where their pictures are committed (`datadam show SET --out PNG`):", "",
                  *pictures, ""]
    return "\n".join(lines), {name: _forest_png(forest)}


def _forest_png(forest: list[tuple[str, float, list[float] | None]]) -> bytes:
    """B - A of every comparison as a dot with its interval, one line each, zero marked."""
    from datadam.plots import figure_png

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(forest) + 1.2), dpi=120)
    for y, (_, mean, bounds) in enumerate(forest):
        low, high = bounds or (mean, mean)
        color = "C2" if low > 0 else "C3" if high < 0 else "0.4"
        ax.plot([low, high], [y, y], color=color, lw=2)
        ax.plot([mean], [y], "o", color=color, ms=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(forest)), [label for label, _, _ in forest], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("B - A (accuracy points), 95 % interval")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def power_rows(name: str, report: dict) -> list[dict[str, Any]]:
    """:func:`comparison_rows` of one attention-power comparison, with its IPC (from the
    file's ``budget``, else its name ``mnist_ipcN_...``)."""
    ipc = (report.get("budget") or {}).get("ipc")
    if ipc is None:
        match = re.match(r"mnist_ipc(\d+)_", name)
        ipc = int(match.group(1)) if match else "?"
    return [{**row, "ipc": ipc} for row in comparison_rows(name, report)]


def _by_ipc(row: tuple[str, dict, list[dict]]) -> int:
    ipc = row[2][0]["ipc"] if row[2] else None
    return ipc if isinstance(ipc, int) else 1 << 30


def power_table(rows: list[tuple[str, dict, list[dict]]]) -> Rendered:
    """The attention-power comparisons (:data:`POWER_COMPARISONS`), one row per IPC."""
    lines = [f"DataDAM with attention power p = 4 (A) against p = 1 (B), from every "
             f"`docs/results/{POWER_COMPARISONS}` (`datadam compare-evaluations`): accuracy (%), "
             "B - A in points, its 95 % interval, p and the pairs compared.", "",
             "| IPC | model | A: p = 4 % | B: p = 1 % | B - A | interval | p | pairs | B ahead |",
             "|---|---|---|---|---|---|---|---|---|"]
    commands, machines = [], set()
    for name, report, cells in sorted(rows, key=_by_ipc):
        for cell in cells:
            lines.append(f"| {cell['ipc']} | {cell['model']} | {cell['a']} | {cell['b']} | "
                         f"{cell['difference']} | {cell['interval']} | {cell['p']} | "
                         f"{cell['pairs']} | {cell['ahead']} {cell['unit']}s |")
        commands += report.get("commands") or [_compare_command(name, report)]
        machines.add(report.get("machine"))
    lines += ["", "Commands:", "", *_commands_block(commands), *_machines_line(machines)]
    return "\n".join(lines), {}


def evaluation_rows(name: str, report: dict) -> dict[str, Any]:
    """What the evaluations table shows of one evaluation file: the set, the networks,
    accuracy per model, commands and machine."""
    from datadam.evaluate import EvaluationResult

    result = EvaluationResult.from_dict(report, source=name)
    models = {model: _pm(summary, "accuracy") for model, summary in result.summary.items()}
    return {"set": result.describe_set(), "models": models,
            "networks": {model: _budget(result, model) for model in models},
            "commands": report.get("commands") or [], "machine": report.get("machine")}


def evaluations_table(rows: list[tuple[str, dict, dict]]) -> Rendered:
    """Every evaluation file in one table, then the commands that made each; a part
    ``X_seedN.json`` of a committed ``X.json`` is shown through that file."""
    lines = ["Every evaluation under `docs/results/evaluations/`: networks trained apart and "
             "merged (`datadam merge-evaluations`, with `--replicates` for a recipe distilled "
             "with several seeds) or one `datadam evaluate` run; mean ± std of the final test "
             "accuracy (%). The comparisons and targets above read these files.", "",
             "| file | set | model | networks | accuracy % | machine |", "|---|---|---|---|---|---|"]
    commands = []
    names = {name for name, _, _ in rows}
    for name, _, row in rows:
        if re.sub(r"_seed\d+\.json$", ".json", name) in names - {name}:
            continue  # one network of a merged file that the table shows
        for model, accuracy in row["models"].items():
            lines.append(f"| `{Path(name).stem}` | {row['set']} | {model} | {row['networks'][model]} | "
                         f"{accuracy} | {row['machine'] or 'not recorded'} |")
        commands += [f"# {name}", *(row["commands"] or ["# (commands not recorded)"])]
    lines += ["", "Commands, file by file:", "", *_commands_block(commands)]
    return "\n".join(lines), {}


COLLECTIVE: dict[str, tuple[Callable, Callable]] = {
    "comparison": (comparison_rows, comparisons_table),
    "power": (power_rows, power_table),
    "evaluation": (evaluation_rows, evaluations_table),
}


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
        sections += [f"#### {target['claim']}", "",
                     "| evidence | recipe | networks | accuracy (%) | verdict |", "|---|---|---|---|---|",
                     *rows, ""]
    lines = [f"### {report['title']}", "", report["description"], "",
             "A target of a threshold is met when one of its rows reaches it; a target of "
             "one set or recipe (B) above another (A) is met when B is above A on every row: "
             "the 95 % interval of B - A (`datadam compare-evaluations`: network by network "
             "for two sets, distillation by distillation for replicates) lies above zero. "
             "\"level\" means the interval holds zero. Every figure below is computed from "
             "the files named when the site is built.", "",
             "| target | status |", "|---|---|", *summary, "", *sections]
    return "\n".join(lines), {}


RENDER: dict[str, Callable[[str, dict], Rendered]] = {
    "memory": render_memory, "targets": render_targets, "distillation": render_distillation,
    "speed": render_speed, "continual": render_continual, "nas": render_nas, "evaluate": render_evaluate,
    "eval_speed": render_eval_speed, "convergence": render_convergence,
    "cross_architecture": render_cross_architecture}


# At import, not in on_config: mkdocstrings reads its search paths before any hook runs,
# and drops one that does not exist yet (a fresh clone).
_api_source_tree(Path(__file__).resolve().parents[2])
