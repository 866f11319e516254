"""Griffe extension for the API reference: datadam's docstrings are Google style with a
few reStructuredText habits that mkdocstrings would print literally. Rewritten here,
so the source stays readable in a terminal and the site renders it:

- ``:func:`x```, ``:class:`~a.b.C```... roles become code, a link when the target is a
  full ``datadam.`` path;
- a top-level doctest (``>>>`` lines outside an ``Examples:`` section) becomes a Python
  code block;
- ``text::`` followed by an indented block becomes ``text:`` and a code block.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    short, target = match.group(1) == "~", match.group(2)
    shown = target.rsplit(".", 1)[-1] if short else target
    if target.startswith("datadam."):
        return f"[`{shown}`][{target}]"
    return f"`{shown}`"


def rewrite(text: str) -> str:
    text = _ROLE.sub(_role, text)
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip() and not lines[i][:1].isspace():
                block.append(lines[i])
                i += 1
            out += ["```python", *block, "```"]
            continue
        if line.rstrip().endswith("::") and not line[:1].isspace():
            out.append(line.rstrip()[:-1])
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            indent = min(len(b) - len(b.lstrip()) for b in block if b.strip()) if block else 0
            out += ["", "```text", *(b[indent:] for b in block), "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RestToMarkdown(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
