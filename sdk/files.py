"""What a file is, for the one-line error of a command given the wrong one.

datadam reads three kinds of file: synthetic sets (safetensors written by ``datadam
distill``, the checkpoints of runs in progress included), evaluation results (JSON
written by ``datadam evaluate --json``) and the ``.pt`` results of the official
DataDAM/DC/DM code (imported by ``datadam convert``). A reader given another file says
what that file is and which command reads it, e.g. ``a.safetensors: not an evaluation
result (it is a synthetic set: evaluate it with `datadam evaluate`...)``, rather than a
parser's complaint about some byte.

A file is recognised by its content, not by its name, and nothing in it runs:
safetensors and JSON are parsed as data, a ``.pt`` file is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datadam.records import migrate

#: The ``format`` entry of the safetensors files datadam writes (sets and checkpoints).
FORMAT = "datadam.synthetic/1"

SYNTHETIC_SET = "a synthetic set"
CHECKPOINT = "the checkpoint of a distillation in progress"
EVALUATION = "an evaluation result"
OFFICIAL = "an official DataDAM/DC/DM result"
NETWORK_SAVE = "a network saved in training by `datadam evaluate`"
DATADAM_FILE = "a datadam safetensors file"
DIRECTORY = "a directory"

# What to do with a file of each kind, said to whoever gave it to a command that reads another.
_USE = {
    SYNTHETIC_SET: "evaluate it with `datadam evaluate`, describe it with `datadam show`",
    CHECKPOINT: "`datadam evaluate` and `datadam show` read it as the set so far",
    EVALUATION: "`datadam compare-evaluations`, `merge-evaluations` and `report` read it",
    OFFICIAL: "import it with `datadam convert {path} --dataset NAME --out SET.safetensors`",
    NETWORK_SAVE: "`datadam evaluate --resume` goes on from it",
    DIRECTORY: "`datadam report` reads a run directory",
}
# Where a file of the expected kind comes from, said of a file that is of no kind above.
_SOURCE = {
    SYNTHETIC_SET: "`datadam distill` writes one",
    EVALUATION: "`datadam evaluate --json` writes one",
    OFFICIAL: "one holds {'data': [[images, labels], ...]}, a pair per experiment",
    DATADAM_FILE: "`datadam distill` writes synthetic sets and checkpoints",
}
_UNKNOWN = "neither JSON, safetensors nor a PyTorch file"


def not_a(path: str | Path, expected: str, what: str | None = None) -> str:
    """The one-line message for ``path`` given where ``expected`` (one of the kinds above)
    was: ``"PATH: not EXPECTED (it is WHAT: what to do with it)"``. ``what`` is
    :func:`identify`'s answer unless given, by a caller that has read the content (then
    ``path`` may name a part of a file, ``results.json#entry``)."""
    if what is None:
        if not Path(path).exists():
            return f"{path}: no such file"
        what = identify(path)
    use = _USE.get(what)
    told = f"{what}: {use.format(path=path)}" if use else f"{what}; {_SOURCE[expected]}"
    return f"{path}: not {expected} (it is {told})"


def identify(path: str | Path) -> str:
    """What the existing file at ``path`` holds, in words: one of the kinds above, or a
    description of another file (``"a safetensors file of other tensors"``, ``"damaged
    JSON (...)"``, ``"JSON of another kind"``...)."""
    path = Path(path)
    if path.is_dir():
        return DIRECTORY
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError as e:
        return f"a file that cannot be read ({e.strerror or e})"
    if not head:
        return "an empty file"
    # safetensors: the header's length (8 bytes, little-endian), then the header, a JSON
    # object; tested first, as a length whose low byte is 0x80 starts as a pickle does
    if len(head) == 9 and head[8:] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        return _safetensors_kind(path)
    if head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or a bare pickle
        return _torch_kind(path)
    return _json_kind(path)


def is_evaluation(content: Any) -> bool:
    """Whether parsed JSON ``content`` is an evaluation result (``runs``, ``summary`` and
    ``settings``, as :class:`datadam.evaluate.EvaluationResult` writes them)."""
    return isinstance(content, dict) and all(isinstance(content.get(k), dict)
                                             for k in ("runs", "summary", "settings"))


def describe_json(content: Any) -> str:
    """What parsed JSON ``content`` is, in words."""
    if is_evaluation(content):
        return EVALUATION
    if isinstance(content, dict) and {"a", "b", "models"} <= content.keys():
        return "a comparison of two evaluations (`datadam compare-evaluations --json`)"
    return "JSON of another kind"


def describe_torch(content: Any) -> str:
    """What an object read by ``torch.load`` is, in words."""
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        return OFFICIAL
    if isinstance(content, dict) and "identity" in content and "network" in content:
        return NETWORK_SAVE
    if isinstance(content, dict):
        keys = ", ".join(repr(k) for k in list(content)[:4]) + (", ..." if len(content) > 4 else "")
        return f"a PyTorch file of other content (a dict of {keys or 'nothing'})"
    return f"a PyTorch file of other content (a {type(content).__name__})"


def _torch_kind(path: Path) -> str:
    import torch

    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - code in a pickle, or a damaged archive: either way not ours
        return "a pickle that torch.load(weights_only=True) refuses to read"
    return describe_torch(content)


def _safetensors_header(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file's header (no tensor is read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def datadam_metadata(path: str | Path) -> dict[str, Any] | None:
    """The ``datadam`` metadata of a set or checkpoint file, read from its header alone
    (no tensor is loaded), in today's form (:func:`datadam.records.migrate`); ``None`` for
    any file that is not a readable one of ours. Raises
    :class:`~datadam.records.RecordVersionError` for one of a later datadam."""
    try:
        header = _safetensors_header(Path(path))
        meta = json.loads(header["datadam"]) if header.get("format") == FORMAT else None
    except Exception:  # noqa: BLE001 - any failure to read it means "not one of ours"
        return None
    if not isinstance(meta, dict):
        return None
    kind = meta.get("kind", "synthetic")
    return migrate(kind, meta) if kind in ("synthetic", "checkpoint") else meta


def _safetensors_kind(path: Path) -> str:
    from safetensors import SafetensorError

    try:
        header = _safetensors_header(path)
    except (SafetensorError, OSError, ValueError) as e:
        return f"a damaged safetensors file ({_first_line(e)})"
    if header.get("format") != FORMAT:
        return "a safetensors file of other tensors"
    try:
        kind = json.loads(header["datadam"]).get("kind", "synthetic")
    except (KeyError, AttributeError, json.JSONDecodeError):
        return "a datadam safetensors file with damaged metadata"
    return {"synthetic": SYNTHETIC_SET, "checkpoint": CHECKPOINT}.get(kind, f"a datadam {kind}")


def _json_kind(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return _UNKNOWN
    try:
        content = json.loads(text)
    except json.JSONDecodeError as e:
        # a cut-off or hand-edited result still starts as JSON does
        return f"damaged JSON ({e})" if text.lstrip()[:1] in ("{", "[") else _UNKNOWN
    return describe_json(content)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- writing ---------------------------------------------------------------------------

@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The file gets the permissions a plain ``open(path, "w")`` would (0666 less the umask),
    not mkstemp's private 0600, so results stay readable by the people they are shared with.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically (the old file stays until the new one is whole)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    return Path(path)
