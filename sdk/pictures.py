"""Pictures written in the format of their file's suffix (PNG, JPEG, PDF or SVG),
atomically, with a provenance token in the file's own metadata
(:func:`datadam.outputs.provenance`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadam.errors import ConfigError
from datadam.files import atomic_path

if TYPE_CHECKING:  # the command line reads FIGURE_SUFFIXES without torch
    import torch

#: Picture formats a figure or image grid can be written in, chosen by the file's suffix.
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def pyplot():
    """matplotlib.pyplot on the Agg backend (headless: files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, provenance: str | None = None) -> Path:
    """Write ``fig`` atomically in the format of ``path``'s suffix (png, jpg, pdf or svg)
    and close it. ``provenance`` (:func:`datadam.outputs.provenance`) goes into the file's
    own metadata, so that the same picture of the same inputs can be replaced later."""
    fmt = figure_format(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **_figure_metadata(fmt, provenance))
    pyplot().close(fig)
    return Path(path)


def save_picture(image: torch.Tensor, path: str | Path, provenance: str | None = None) -> Path:
    """Write ``image`` (``[C, H, W]`` in ``[0, 1]``, C = 1 or 3) pixel for pixel, atomically,
    in the format of ``path``'s suffix, with ``provenance`` as in :func:`save_figure`. PNG
    and JPEG keep the image's own pixels and channels (grey stays grey); PDF and SVG embed it."""
    import torch

    fmt = figure_format(path)
    pixels = image.clamp(0, 1).mul(255).add(0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    with atomic_path(path) as tmp:
        if fmt in ("png", "jpeg"):
            _save_raster(pixels, tmp, fmt, provenance)
        else:
            pyplot()  # the Agg backend, before matplotlib.image draws the vector page
            from matplotlib.image import imsave

            imsave(tmp, pixels, format=fmt, cmap="gray", **_figure_metadata(fmt, provenance))
    return Path(path)


def _save_raster(pixels: Any, path: Path, fmt: str, provenance: str | None) -> None:
    from PIL import Image, PngImagePlugin

    picture = Image.fromarray(pixels)
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        if provenance:
            info.add_text("Description", provenance)
        picture.save(path, format="PNG", pnginfo=info)
    else:
        picture.save(path, format="JPEG", quality=95, **({"comment": provenance} if provenance else {}))


def figure_format(path: str | Path) -> str:
    """The matplotlib format of a picture file, from its suffix; :class:`ConfigError` for
    any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ConfigError(f"{path}: a picture is written as {', '.join(FIGURE_SUFFIXES)}, "
                          f"not {suffix or 'a file without suffix'}")
    return "jpeg" if suffix in (".jpg", ".jpeg") else suffix[1:]


def _figure_metadata(fmt: str, provenance: str | None) -> dict[str, Any]:
    """``savefig`` keywords that store ``provenance`` where each format keeps a note."""
    if provenance is None:
        return {}
    if fmt == "jpeg":  # matplotlib has no JPEG metadata; Pillow writes a comment segment
        return {"pil_kwargs": {"comment": provenance}}
    key = {"png": "Description", "pdf": "Subject", "svg": "Description"}[fmt]
    return {"metadata": {key: provenance}}
