"""Differentiable siamese augmentation (DSA), batched.

One draw of :meth:`DSA.sample` gives parameters for ``G`` groups; :meth:`DSA.apply`
augments a batch whose sample ``i`` belongs to group ``group[i]``. Applying the same
draw to real and synthetic batches is the *siamese* use: class ``k``'s real and
synthetic images share class ``k``'s parameters, and one call augments every class
at once. With ``group = arange(N)`` every image gets its own parameters (the
evaluation use). Gradients flow to the input images.

Families: ``color`` (brightness +-0.5, saturation x[0, 2], contrast
x[0.5, 1.5]), ``crop`` (translate by up to 12.5% of the size), ``cutout`` (one square
of half the size set to 0), ``flip`` (horizontal, p 0.5), ``scale`` (x and y in
[1/1.2, 1.2]), ``rotate`` (+-15 degrees). Flip changes a digit's identity, so the
digit preset leaves it out; which preset a dataset gets is :func:`augmentation_rule`'s
decision, from the images rather than the dataset's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from datadam.errors import ConfigError, UnknownNameError

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
PRESETS = {
    "digits": ("color", "crop", "cutout", "scale", "rotate"),
    "natural": FAMILIES,
    "none": (),
}
# The preset of a registered dataset known by name only (a set's metadata, a NAS spec).
DATASET_PRESET = {"mnist": "digits"}
# Images this small and of one channel are taken for digits or characters (MNIST, EMNIST,
# KMNIST...), whose class a flip can change, unless the data says otherwise.
GLYPH_MAX_SIDE = 32


def augmentation_rule(dataset: Any) -> tuple[str, str]:
    """``(preset, why)``: the DSA preset the data calls for, and the reason in words.

    The rule, for an :class:`~datadam.data.ImageDataset` (what its images are, not what it
    is called):

    1. ``orientation_sensitive`` True (a mirrored image can change its class: digits,
       characters, text; MNIST's loader sets it): ``digits``, every family but ``flip``.
    2. ``orientation_sensitive`` False: ``natural``, every family.
    3. None (not said): ``digits`` for 1-channel images of at most
       :data:`GLYPH_MAX_SIDE` pixels a side, which are taken for digits or characters
       (MNIST, EMNIST, KMNIST; Fashion-MNIST too, which only loses the flips it could
       have had); ``natural`` otherwise (colour or larger images: photographs, MHIST, an
       image folder). Pass ``orientation_sensitive=True`` for larger or colour glyphs,
       False for small grey images that flips do not change, or set ``augmentation``.

    A registry name (a string, as before) gives :data:`DATASET_PRESET`'s preset:
    ``digits`` for ``mnist``, ``natural`` for any other.
    """
    if isinstance(dataset, str):
        preset = DATASET_PRESET.get(dataset, "natural")
        return preset, f"the preset of the {dataset} dataset"
    flag = getattr(dataset, "orientation_sensitive", None)
    if flag is True:
        return "digits", "orientation-sensitive data: no flips"
    if flag is False:
        return "natural", "data marked not orientation-sensitive: flips allowed"
    channels, (height, width) = dataset.channels, dataset.image_size
    if channels == 1 and max(height, width) <= GLYPH_MAX_SIDE:
        return "digits", (f"1-channel images of at most {GLYPH_MAX_SIDE} px, taken for digits or "
                          "characters: no flips")
    return "natural", "images not marked orientation-sensitive: flips allowed"


def preset_for(dataset: Any) -> str:
    """The augmentation preset of ``dataset``, an :class:`~datadam.data.ImageDataset` or
    a registry name: :func:`augmentation_rule`'s, which says why."""
    return augmentation_rule(dataset)[0]


def describe_augmentation(dataset: Any, chosen: str | None) -> str:
    """Why ``chosen`` augments ``dataset``, in one line for a set's metadata:
    ``"digits: orientation-sensitive data: no flips"``, or for a choice other than the
    rule's ``"natural: given explicitly (the data's rule: digits, ...)"``."""
    preset, why = augmentation_rule(dataset)
    if chosen is None or chosen == preset:
        return f"{preset}: {why}"
    return f"{chosen}: given explicitly (the data's rule: {preset}, {why})"


@dataclass(frozen=True)
class DSA:
    """Differentiable siamese augmentation over a set of families.

    Args:
        families: the families to draw from (a preset name is resolved by :meth:`from_name`).
        one_family: draw one family per call (default) instead of chaining all of them.
    """

    families: tuple[str, ...] = PRESETS["natural"]
    one_family: bool = True
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    crop: float = 0.125
    cutout: float = 0.5
    scale: float = 1.2
    rotate: float = 15.0
    flip: float = 0.5

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ConfigError(f"unknown augmentation {', '.join(unknown)}; "
                              f"families: {', '.join(FAMILIES)}")

    @classmethod
    def from_name(cls, spec: str, **kwargs) -> DSA:
        """A preset name (``digits``, ``natural``, ``none``) or families joined by ``_``."""
        if spec in PRESETS:
            return cls(PRESETS[spec], **kwargs)
        families = tuple(f for f in spec.split("_") if f)
        if any(f not in FAMILIES for f in families):
            raise UnknownNameError("augmentation", spec, list(PRESETS) + list(FAMILIES))
        return cls(families, **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.families)

    def sample(self, groups: int, generator: torch.Generator, image_size: tuple[int, int]) -> dict:
        """Parameters for ``groups`` groups: ``{family: {name: tensor [groups]}}`` (CPU)."""
        if not self.families:
            return {}
        if self.one_family:
            pick = int(torch.randint(len(self.families), (1,), generator=generator))
            chosen = (self.families[pick],)
        else:
            chosen = self.families
        h, w = image_size

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(groups, generator=generator) * (hi - lo) + lo

        params = {}
        for family in chosen:
            if family == "color":
                params[family] = {
                    "brightness": uniform(-0.5, 0.5) * self.brightness,
                    "saturation": torch.rand(groups, generator=generator) * self.saturation,
                    "contrast": torch.rand(groups, generator=generator) + self.contrast,
                }
            elif family == "crop":
                sh, sw = int(h * self.crop + 0.5), int(w * self.crop + 0.5)
                params[family] = {
                    "dx": torch.randint(-sw, sw + 1, (groups,), generator=generator).float(),
                    "dy": torch.randint(-sh, sh + 1, (groups,), generator=generator).float(),
                }
            elif family == "cutout":
                params[family] = {
                    "cx": torch.randint(0, w + (1 - int(w * self.cutout) % 2), (groups,),
                                        generator=generator).float(),
                    "cy": torch.randint(0, h + (1 - int(h * self.cutout) % 2), (groups,),
                                        generator=generator).float(),
                }
            elif family == "flip":
                params[family] = {"flip": torch.rand(groups, generator=generator) < self.flip}
            elif family == "scale":
                params[family] = {"sx": uniform(1 / self.scale, self.scale),
                                  "sy": uniform(1 / self.scale, self.scale)}
            elif family == "rotate":
                params[family] = {"angle": uniform(-1, 1) * math.radians(self.rotate)}
        return params

    def apply(self, x: torch.Tensor, params: dict, group: torch.Tensor) -> torch.Tensor:
        """Augment ``x [N, C, H, W]``; sample ``i`` uses the parameters of ``group[i]``."""
        for family, p in params.items():
            p = {k: v.to(x.device)[group] for k, v in p.items()}
            x = getattr(self, f"_{family}")(x, p)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment every image of ``x`` with its own parameters."""
        params = self.sample(x.shape[0], generator, tuple(x.shape[2:]))
        return self.apply(x, params, torch.arange(x.shape[0], device=x.device))

    # One method per family; each takes per-sample parameters [N].
    @staticmethod
    def _color(x: torch.Tensor, p: dict) -> torch.Tensor:
        x = x + p["brightness"].view(-1, 1, 1, 1)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * p["saturation"].view(-1, 1, 1, 1) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * p["contrast"].view(-1, 1, 1, 1) + mean

    @staticmethod
    def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _crop(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        h, w = x.shape[2:]
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        # align_corners=True: one pixel is 2 / (size - 1) in normalised coordinates.
        theta[:, 0, 2] = -p["dx"] * 2 / max(w - 1, 1)
        theta[:, 1, 2] = -p["dy"] * 2 / max(h - 1, 1)
        return self._affine(x, theta)

    def _scale(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 1, 1] = p["sx"], p["sy"]
        return self._affine(x, theta)

    def _rotate(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
        theta = torch.stack([torch.stack([cos, sin, torch.zeros_like(cos)], 1),
                             torch.stack([-sin, cos, torch.zeros_like(cos)], 1)], 1)
        return self._affine(x, theta)

    def _cutout(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        h, w = x.shape[2:]
        half_h, half_w = int(h * self.cutout + 0.5) // 2, int(w * self.cutout + 0.5) // 2
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((ys - p["cy"].view(-1, 1, 1)).abs() < half_h) & \
                 ((xs - p["cx"].view(-1, 1, 1)).abs() < half_w)
        return x * (~inside).unsqueeze(1).to(x.dtype)

    @staticmethod
    def _flip(x: torch.Tensor, p: dict) -> torch.Tensor:
        return torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(3), x)
