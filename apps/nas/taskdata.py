"""The data of a NAS task, where every trial can reach it.

NNI may run each trial in a subprocess that runs nothing of the user's script: a
dataset registered there (:func:`datadam.data.register`) or held in one of its variables
is unknown to it. So a task names its data in one of three ways, each a string that
travels in the trial's JSON parameters:

- a registry name (``"mnist"``), loaded by every process alike;
- the path of a data file (:func:`save_data`), read by every process alike;
- ``"memory:<fingerprint>"``, data given in Python and held by this process
  (:func:`hold`), which :func:`persist` writes to a data file for subprocess trials.

>>> import torch                                                    # doctest: +SKIP
>>> ref = hold(as_image_dataset((torch.rand(20, 1, 8, 8), torch.arange(20) % 2)))  # doctest: +SKIP
>>> path = persist(ref, "runs/own/nni")      # runs/own/nni/data-<fingerprint>.safetensors  # doctest: +SKIP
>>> resolve(path).images.shape                                      # doctest: +SKIP
torch.Size([20, 1, 8, 8])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from datadam import records
from datadam.apps.nas.record_kinds import TASK_DATA
from datadam.data.base import ImageDataset
from datadam.errors import DatadamError, DataFormatError
from datadam.files import atomic_path

#: The ``format`` of a data file's safetensors metadata, which names the file as one;
#: its ``datadam`` entry is a ``nas_task_data`` record (:mod:`datadam.apps.nas.record_kinds`).
FORMAT = "datadam.nas.data/1"
MEMORY = "memory:"

# Data given in Python, by fingerprint: what "memory:<fingerprint>" refers to. It lives
# as long as the process, like the tasks that name it.
_HELD: dict[str, ImageDataset] = {}


def fingerprint(dataset: ImageDataset) -> str:
    """16 hex digits of SHA-256 over the images, labels, classes and statistics: the same
    data gives the same name in every process, other data another."""
    h = hashlib.sha256()
    h.update(json.dumps([str(dataset.images.dtype), list(dataset.images.shape), list(dataset.classes),
                         list(dataset.mean), list(dataset.std)]).encode())
    h.update(dataset.images.contiguous().numpy().tobytes())
    h.update(dataset.labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def hold(dataset: ImageDataset) -> str:
    """Keep ``dataset`` in this process; returns the ``"memory:<fingerprint>"`` naming it."""
    key = fingerprint(dataset)
    _HELD.setdefault(key, dataset)
    return MEMORY + key


def is_held(ref: str | None) -> bool:
    return bool(ref) and ref.startswith(MEMORY)


def save_data(dataset: ImageDataset, path: str | Path) -> Path:
    """Write ``dataset`` (its raw images ``[N, C, H, W]``, labels ``[N]``, classes and
    statistics) to a safetensors file that :func:`load_data` reads in any process."""
    meta = records.stamp(TASK_DATA, {
        "name": dataset.name, "split": dataset.split, "classes": list(dataset.classes),
        "mean": list(dataset.mean), "std": list(dataset.std), "source": dataset.source,
        "orientation_sensitive": dataset.orientation_sensitive})
    with atomic_path(path) as tmp:
        save_file({"images": dataset.images.contiguous().cpu(), "labels": dataset.labels.contiguous().cpu()},
                  str(tmp), metadata={"format": FORMAT, "datadam": json.dumps(meta)})
    return Path(path)


def load_data(path: str | Path) -> ImageDataset:
    """The dataset :func:`save_data` wrote to ``path``; :class:`DataFormatError` in one
    line for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such data file")
    try:
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise DataFormatError(f"{path}: not a NAS data file ({e})") from None
    if header.get("format") != FORMAT:
        raise DataFormatError(f"{path}: not a NAS data file (datadam.apps.nas.save_data writes one)")
    meta = records.migrate(TASK_DATA, json.loads(header["datadam"]))
    tensors = load_file(str(path))
    return ImageDataset(tensors["images"], tensors["labels"].to(torch.int64), meta["classes"],
                        tuple(meta["mean"]), tuple(meta["std"]), meta["split"], meta["name"],
                        source=f"{meta['source'] or 'data'}, saved for NAS trials in {path}",
                        orientation_sensitive=meta["orientation_sensitive"])


def persist(ref: str, folder: str | Path) -> str:
    """``ref`` as a reference any process can follow: held data is written to
    ``folder/data-<fingerprint>.safetensors`` (once) and that path returned; a path is
    returned as it is."""
    if not is_held(ref):
        return ref
    path = Path(folder).resolve() / f"data-{ref[len(MEMORY):]}.safetensors"
    if not path.exists():
        save_data(resolve(ref), path)
    return str(path)


def resolve(ref: str) -> ImageDataset:
    """The dataset ``ref`` names: held data, or a data file's."""
    if not is_held(ref):
        return load_data(ref)
    try:
        return _HELD[ref[len(MEMORY):]]
    except KeyError:
        raise DatadamError(
            "the task's data was given in Python to another process, and this one (an NNI trial "
            "subprocess) cannot see it: run the experiment with datadam.apps.nas.Experiment, or "
            "make the evaluator with make_evaluator(task, folder=...), to save it where trials read it"
        ) from None
