"""Output files: every one checked before the work starts, and no other result replaced.

A run that can only fail at its end wastes the run, and a file replaced by another kind
of result loses the first. :func:`check_outputs` therefore runs before any work, on every
path a command will write, and refuses:

- a folder where a file goes, a parent that is a file or cannot be written to;
- a suffix that does not match what is written (``--out eval.json`` for a synthetic set);
- an existing file that is not this same result of the same inputs, unless ``force``.

"The same result" is decided per kind of output: a synthetic set of the same settings and
data, an evaluation of the same set under the same protocol, or, for pictures and other
files, the same :func:`provenance` token, which every such file datadam writes carries in
its own metadata (a PNG text chunk, the PDF's subject, the SVG's description, a JSON key).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadam.errors import ConfigError
from datadam.files import datadam_metadata, identify
from datadam.pictures import FIGURE_SUFFIXES

_PROVENANCE_PREFIX = "datadam-provenance:"


class OutputError(ConfigError):
    """An output path cannot be written, or would replace a file that is another result."""


def provenance(kind: str, **inputs: Any) -> str:
    """A token naming the result ``kind`` made from ``inputs`` (JSON-serialisable values).

    Two outputs carry the same token exactly when they are the same kind of result of the
    same inputs, so a file holding the token may be replaced by a new run; the token is
    plain ASCII, so it can be found in any of the formats datadam writes.
    """
    text = json.dumps({"kind": kind, **inputs}, sort_keys=True, default=str)
    return _PROVENANCE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def holds_provenance(path: Path, token: str) -> bool:
    """Whether the file at ``path`` carries ``token`` (see :func:`provenance`)."""
    try:
        return token.encode() in path.read_bytes()
    except OSError:
        return False


@dataclass(frozen=True)
class Output:
    """One path a command will write.

    Attributes:
        path: where.
        option: how the user named it (``--out``), for the messages.
        what: what is written there (``"synthetic set"``), for the messages.
        suffixes: the suffixes it may have (the first is the one suggested).
        same: whether an existing file at ``path`` is this same result of the same inputs,
            which may then be replaced without ``force``; ``None``: never.
        folder: the output is a folder of files (it must not exist or be empty).
    """

    path: Path
    option: str
    what: str
    suffixes: tuple[str, ...] = ()
    same: Callable[[Path], bool] | None = None
    folder: bool = False

    @classmethod
    def figure(cls, path: Path, option: str, what: str, token: str) -> Output:
        """A picture in any of :data:`FIGURE_SUFFIXES`, replaceable when it carries ``token``."""
        return cls(path, option, what, FIGURE_SUFFIXES, lambda p: holds_provenance(p, token))


def check_outputs(outputs: Iterable[Output | None], force: bool = False) -> None:
    """Refuse, with :class:`OutputError` naming the user's path, any output that cannot be
    written or would replace another result (``force`` allows the latter). ``None``
    entries (options not given) are skipped. Creates nothing."""
    seen: dict[Path, str] = {}
    for output in outputs:
        if output is None:
            continue
        resolved = Path(os.path.abspath(output.path))
        if resolved in seen:
            raise OutputError(f"{output.option} {output.path}: the same path as {seen[resolved]}")
        seen[resolved] = output.option
        _check_one(output, force)


def _check_one(output: Output, force: bool) -> None:
    path, name = output.path, f"{output.option} {output.path}"
    if output.folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{name}: a file exists there; the {output.what} is a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise OutputError(f"{name}: the folder exists and is not empty; choose another, "
                              "or add --force to write into it")
    else:
        if path.is_dir():
            raise OutputError(f"{name} is a folder; give a file name in it, e.g. "
                              f"{path / ('result' + (output.suffixes[0] if output.suffixes else ''))}")
        suffix = path.suffix.lower()
        if output.suffixes and suffix not in output.suffixes:
            raise OutputError(f"{name}: a {output.what} is written as "
                              f"{' or '.join(output.suffixes)}, not {suffix or 'a file without suffix'}")
        if path.exists() and not force and not (output.same and output.same(path)):
            raise OutputError(f"{name} exists and holds {identify(path)}, not this "
                              f"{output.what}: choose another path, or add --force to replace it")
    _check_writable(path.parent, name)


def _check_writable(folder: Path, name: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we can create files in
    (tried for real: permission bits do not tell on a read-only file system or as root)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{name}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise OutputError(f"{name}: cannot write in {existing} ({e.strerror or e})") from None


def same_synthetic_set(settings: dict[str, Any], dataset: str, images: int,
                       ignore: tuple[str, ...] = ()) -> Callable[[Path], bool]:
    """A ``same`` test: the file is a synthetic set of ``settings`` (a config's dict), made
    from ``images`` images of ``dataset``; the keys in ``ignore`` may differ (``iterations``
    when a run is extended)."""
    wanted = json.loads(json.dumps({k: v for k, v in settings.items() if k not in ignore}))

    def same(path: Path) -> bool:
        meta = datadam_metadata(path)
        if not meta or meta.get("kind", "synthetic") != "synthetic":
            return False
        saved = {k: v for k, v in (meta.get("config") or {}).items() if k not in ignore}
        return (saved == wanted and meta.get("dataset") == dataset
                and meta.get("dataset_images") == images)

    return same


def check_checkpoint(checkpoint: Path, resume: bool, force: bool) -> None:
    """Refuse to start a run over the checkpoint an earlier run left at ``checkpoint``: it
    holds that run's progress (``resume`` goes on from it, ``force`` starts over)."""
    if checkpoint.exists() and not resume and not force:
        raise OutputError(f"{checkpoint} holds {identify(checkpoint)} of an earlier run: add "
                          "--resume to go on from it, --force to start over, or choose another --out")


def stamp_provenance(path: Path, token: str) -> None:
    """Add ``token`` to the JSON object at ``path`` (written by a library function that
    does not know the command's inputs), atomically."""
    from datadam.files import write_json

    payload = json.loads(path.read_text(encoding="utf-8"))
    write_json(path, {**payload, "provenance": token})


def command_provenance(command: str, params: dict[str, Any],
                       ignore: tuple[str, ...] = ("progress", "force", "device")) -> str:
    """The :func:`provenance` of a command's result from its parameters (Typer's
    ``ctx.params``), leaving out those that do not change the result."""
    return provenance(command, **{k: str(v) if isinstance(v, Path) else v
                                  for k, v in params.items() if k not in ignore})
