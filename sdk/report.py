"""One self-contained HTML page for a run directory, to send to a colleague.

A run directory holds synthetic sets (``*.safetensors``) and, optionally, the
evaluations of them written by ``datadam evaluate --json``; the checkpoint of a run in
progress (``S.ckpt.safetensors``) comes after the sets, marked as such, and any other file
of those suffixes is named in a warning. The page has, per synthetic set: its settings,
the loss curve, the images (one row per class), the evolution of the images when the run
kept snapshots, and the evaluation tables. CSS is inline and images are embedded as
base64 PNGs, so the one file is the whole report.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from datadam._version import __version__
from datadam.errors import ConfigError, DatadamError, DatadamWarning
from datadam.evaluate import read_report
from datadam.files import EVALUATION, atomic_path, describe_json, is_evaluation, not_a
from datadam.records import RecordVersionError, migrate
from datadam.synthetic import SyntheticSet, SyntheticSetFormatError
from datadam.training import describe_departures

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       max-width: 1100px; margin: 2em auto; padding: 0 1.2em; background: #fff; }
h1 { font-size: 1.6em; border-bottom: 3px solid #3f51b5; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #3f51b5; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #d5d9e2; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #eef0f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #e2e5ec; margin: .4em 0; image-rendering: pixelated; }
img.plot { image-rendering: auto; }
.muted { color: #667; font-size: .88em; }
.warning { color: #8a1c1c; background: #fdf0f0; padding: .3em .6em; border-left: 3px solid #c62828; }
code { background: #f3f4f8; padding: 0 .25em; border-radius: 3px; }
"""


@dataclass
class RunEntry:
    """One synthetic set of a run directory, or the checkpoint of a run in progress, and
    the evaluations that name it."""

    path: Path
    synthetic: SyntheticSet
    evaluations: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    @property
    def in_progress(self) -> bool:
        """Whether this is the checkpoint of a distillation that has not finished (it runs,
        or it stopped): its images are those of an iteration on the way, not a result."""
        return "in_progress" in self.synthetic.metadata


def find_runs(run_dir: str | Path) -> list[RunEntry]:
    """The synthetic sets in ``run_dir``, then the checkpoints of runs in progress
    (:attr:`RunEntry.in_progress`), each with the evaluation JSONs that belong to it:
    those whose ``synthetic`` field names its file (a merge of replicate distillations
    names several, and goes with each of them), else those whose name starts with its
    stem (``mnist_ipc10_eval.json``). Any other ``*.safetensors`` or ``*.json`` file, and
    an evaluation of no set here, is named in a :class:`DatadamWarning` and left out."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DatadamError(f"{run_dir}: not a directory")
    entries = _sets(run_dir)
    if not entries:
        raise DatadamError(f"{run_dir}: no synthetic set (*.safetensors) to report on")
    for path in sorted(run_dir.glob("*.json")):
        report = _evaluation(path)
        if report is None:
            continue
        owners = _owners(path, report, entries)
        if not owners:
            _leave_out(f"{path}: {_evaluated_sets(report)}, which {run_dir} does not hold")
        for entry in owners:
            entry.evaluations.append((path, report))
    return entries


def _leave_out(message: str) -> None:
    # A file the page does not show must not vanish unseen: it may be the result looked for.
    warnings.warn(f"{message}; left out of the report", DatadamWarning, stacklevel=3)


def _sets(run_dir: Path) -> list[RunEntry]:
    finished, in_progress = [], []
    for path in sorted(run_dir.glob("*.safetensors")):
        try:
            entry = RunEntry(path, SyntheticSet.load(path))
        except (SyntheticSetFormatError, RecordVersionError) as e:
            _leave_out(str(e))
            continue
        (in_progress if entry.in_progress else finished).append(entry)
    return finished + in_progress


def _evaluation(path: Path) -> dict[str, Any] | None:
    """The content of the evaluation JSON at ``path``, in today's form
    (:func:`datadam.records.migrate`); None, with a warning, if it is not one or is of a
    later datadam."""
    try:
        report = read_report(path)
    except ConfigError as e:
        _leave_out(str(e))
        return None
    if not is_evaluation(report):
        _leave_out(not_a(path, EVALUATION, describe_json(report)))
        return None
    try:
        return migrate("evaluation", report)
    except RecordVersionError as e:
        _leave_out(f"{path}: {e}")
        return None


def _owners(path: Path, report: dict[str, Any], entries: list[RunEntry]) -> list[RunEntry]:
    named = report.get("synthetic")
    if isinstance(named, list):  # merge-evaluations --replicates: shown with each set it holds
        return [e for e in entries if e.path.name in set(map(str, named))]
    if named is not None:
        return [e for e in entries if e.path.name == named]
    # the longest stem wins: mnist_ipc10_eval.json belongs to mnist_ipc10, not mnist_ipc1
    return sorted((e for e in entries if path.stem.startswith(e.path.stem)),
                  key=lambda e: len(e.path.stem), reverse=True)[:1]


def _evaluated_sets(report: dict[str, Any]) -> str:
    named = report.get("synthetic")
    if isinstance(named, list):  # merge-evaluations --replicates: one result of several sets
        return f"an evaluation of {len(named)} sets merged ({', '.join(map(str, named))})"
    if named is None:
        return "an evaluation that names no set and whose name begins with no set's"
    return f"an evaluation of {named}"


def _img(png: bytes, alt: str, css_class: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _grid_png(syn: SyntheticSet, scale: int) -> bytes:
    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    grid = make_grid(syn.denormalized(), nrow=max(syn.images_per_class, 1), padding=2, pad_value=1.0)
    image = to_pil_image(grid)
    image = image.resize((image.width * scale, image.height * scale), resample=0)  # nearest
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _pm(summary: dict[str, float], key: str, scale: float = 100.0, digits: int = 2) -> str:
    if f"{key}_mean" not in summary:
        return "–"
    return f"{scale * summary[f'{key}_mean']:.{digits}f} ± {scale * summary[f'{key}_std']:.{digits}f}"


def _measured_other_images(syn: SyntheticSet, settings: dict[str, Any]) -> str:
    """Why an evaluation that names ``syn``'s file did not measure its images (it was
    made again since, e.g.), or ``""``; evaluations older than the digest pass."""
    measured = settings.get("synthetic") or {}
    digest, iteration = measured.get("sha256"), measured.get("iterations_done")
    if not digest:
        return ""
    if iteration != syn.metadata.get("iterations_done") and iteration in syn.snapshot_iterations:
        syn = syn.at_iteration(iteration)  # an evaluation --at-iteration of this run
    held = syn.sha256()
    if digest == held:
        return ""
    return (f"This evaluation measured other images than this file holds (sha256 {digest[:12]}…, "
            f"the file's {held[:12]}…): the set was made again after it was evaluated.")


def _evaluation_html(path: Path, report: dict[str, Any], syn: SyntheticSet) -> str:
    settings = report.get("settings", {})
    train = settings.get("train", {})
    measured = settings.get("synthetic") or {}
    head = ["model", "runs", "accuracy %", "balanced accuracy %", "AUC", "train s / network"]
    rows = []
    for model, summary in report["summary"].items():
        cells = [model, len(report["runs"].get(model, [])), _pm(summary, "accuracy"),
                 _pm(summary, "balanced_accuracy"), _pm(summary, "auc", 1.0, 3),
                 f"{summary.get('train_seconds_mean', float('nan')):.1f}"]
        rows.append("<tr>" + "".join(f'<td class="{"num" if i else ""}">{html.escape(str(c))}</td>'
                                     for i, c in enumerate(cells)) + "</tr>")
    table = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows)
             + "</table>")
    at = measured.get("iterations_done")
    what = ("" if at in (None, syn.metadata.get("iterations_done")) else f"the images at iteration {at}; ") \
        + (f"{settings.get('test_images', '?')} test images of {settings.get('test_dataset', '?')}; "
            f"{train.get('epochs', '?')} epochs, batch {train.get('batch', '?')}, lr {train.get('lr', '?')}, "
            + "".join(f"{departure}, " for departure in describe_departures(train))
            + f"augmentation {settings.get('augmentation', '?')}, seed {settings.get('seed', '?')}")
    unfinished = report.get("in_progress")
    if unfinished:  # written after every network: say that more are to come
        what += (f"; unfinished: {unfinished.get('networks')} of {unfinished.get('of')} networks so far "
                 "(datadam evaluate --resume goes on)")
    out = f"<h3>Evaluation <code>{html.escape(path.name)}</code></h3>{table}" \
          f'<p class="muted">{html.escape(what)}. Mean ± std of the final accuracy over the runs.</p>'
    named = report.get("synthetic")
    if isinstance(named, list):  # the mean is the recipe's, not this set's alone
        out += (f'<p>Replicate distillations merged: the runs are those of {len(named)} sets '
                f'({html.escape(", ".join(map(str, named)))}), this one among them.</p>')
    other = _measured_other_images(syn, settings)
    if other:
        out += f'<p class="warning">{html.escape(other)}</p>'
    full = report.get("full_data")
    if full:
        out += (f'<p>Full training split ({full.get("train_images", "?")} images, '
                f'{full.get("train", {}).get("epochs", "?")} epochs): {100 * full["accuracy"]:.2f} % in '
                f'{full["train_seconds"]:.1f} s.</p>')
    return out


def _entry_html(entry: RunEntry, image_scale: int) -> str:
    from datadam.plots import evolution_figure, figure_png, loss_figure

    syn, meta = entry.synthetic, entry.synthetic.metadata
    cfg = meta.get("config") or {}
    rows = [("file", entry.path.name), *syn.facts(),
            ("seconds per iteration", meta.get("seconds_per_iteration")), ("device", meta.get("device")),
            ("versions", ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items()))]
    rows += [(f"config: {k}", v) for k, v in cfg.items() if k not in ("method", "seed")]
    parts = [f"<h2>{html.escape(entry.path.stem)}</h2>"]
    if entry.in_progress:
        parts.append(f'<p class="warning">A run in progress, not a result: the checkpoint of a '
                     f'distillation at {html.escape(syn.describe_progress())}. It goes on while the '
                     'run does, or with <code>datadam distill ... --resume</code> if it stopped.</p>')
    parts += ["<h3>Settings</h3>", _table(rows)]
    history = meta.get("loss_history") or []
    if history:
        title = f"{syn.describe()} on {meta.get('dataset')}"
        parts += ["<h3>Loss</h3>", _img(figure_png(loss_figure(history, title, syn.loss_terms)),
                                        "loss curve", "plot")]
    parts += ["<h3>Images</h3>", '<p class="muted">One row per class: '
              + html.escape(", ".join(syn.classes)) + "</p>",
              _img(_grid_png(syn, image_scale), "synthetic images")]
    if syn.snapshots is not None:
        parts.append('<h3>Evolution</h3><p class="muted">The first images of the first classes '
                     'over the iterations; <code>datadam show --evolution</code> draws any class.</p>')
        for label in range(min(len(syn.classes), 3)):
            parts.append(_img(figure_png(evolution_figure(syn, label, max_images=4)),
                              f"evolution of class {syn.classes[label]}", "plot"))
    if entry.evaluations:
        parts += [_evaluation_html(path, report, syn) for path, report in entry.evaluations]
    else:
        parts.append('<p class="muted">No evaluation in this directory: run '
                     f'<code>datadam evaluate {html.escape(entry.path.name)} --json '
                     f'{html.escape(entry.path.stem)}_eval.json</code>.</p>')
    return "\n".join(parts)


def render_report(run_dir: str | Path, image_scale: int = 3, provenance: str | None = None) -> str:
    """The HTML text of the report on ``run_dir`` (see :func:`write_report`); ``provenance``
    (:func:`datadam.outputs.provenance`) is kept in a ``<meta>`` tag."""
    run_dir = Path(run_dir)
    entries = find_runs(run_dir)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(_entry_html(e, image_scale) for e in entries)
    title = f"datadam report: {run_dir.resolve().name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>"
            + (f'<meta name="generator" content="{html.escape(provenance)}">' if provenance else "")
            + f"<style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="muted">{_counted(entries)}; written by datadam {__version__} '
            f"on {when}.</p>{body}</body></html>\n")


def _counted(entries: list[RunEntry]) -> str:
    running = sum(entry.in_progress for entry in entries)
    sets = f"{len(entries) - running} synthetic set(s)"
    return sets + (f" and {running} run(s) in progress" if running else "")


def write_report(run_dir: str | Path, out: str | Path | None = None, image_scale: int = 3,
                 provenance: str | None = None) -> Path:
    """Write the report on ``run_dir`` to ``out`` (default ``run_dir/report.html``),
    atomically. ``image_scale`` enlarges the image grid (nearest neighbour)."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    text = render_report(run_dir, image_scale, provenance)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
