"""Each setting of a config dataclass described once: its help, its bounds, and how the
command line names and groups it.

A setting is a dataclass field made by :func:`setting`, whose ``metadata`` holds a
:class:`Setting`. The config refuses values outside the bounds (:func:`check_bounds`),
and the command line builds its options from the same record
(``datadam.cli.options.with_settings``), so that adding a setting is one edit.
Nothing here imports torch: ``datadam --help`` reads these records.

Examples:
    >>> @dataclass(frozen=True)
    ... class Recipe:
    ...     steps: int = setting(10, help="Steps.", metavar="N", low=1)
    ...
    ...     def __post_init__(self) -> None:
    ...         check_bounds(self)
    >>> Recipe(steps=0)
    Traceback (most recent call last):
    datadam.errors.ConfigError: steps must be at least 1, not 0
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from datadam.errors import ConfigError

# Help panels of the command line, in the order a new user reads them (the options
# without a panel come first).
METHOD_PANEL = "Method"
DATA_PANEL = "Data"
RUN_PANEL = "Run control"
TRAINING_PANEL = "Training"

_KEY = "datadam.setting"


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: from ``low`` (itself allowed if
    ``low_allowed``) up to ``high`` exclusive; ``None``: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_allowed: bool = True

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_allowed)):
            return False
        return self.high is None or value < self.high

    def describe(self) -> str:
        """``"at least 1"``, ``"above 0"``, ``"below 1"`` or ``"in [0, 1)"``."""
        if self.low is not None and self.high is not None:
            return f"in {'[' if self.low_allowed else '('}{self.low:g}, {self.high:g})"
        if self.low is not None:
            return f"{'at least' if self.low_allowed else 'above'} {self.low:g}"
        return f"below {self.high:g}" if self.high is not None else "any number"


@dataclass(frozen=True)
class Setting:
    """What a config field says about itself (its ``metadata``).

    Attributes:
        help: one sentence for the command line; ``None``: the setting is not an option.
        metavar: the option's placeholder, upper case (``N``, ``LR``).
        panel: the help panel (:data:`METHOD_PANEL`...); ``None``: the first, unnamed one.
        flags: the option's names, e.g. ``("--iterations", "-n")`` or
            ``("--compile/--no-compile",)``; empty: ``--field-name``.
        show_default: words for the default where the value cannot say it (a default
            resolved later from the data).
        bounds: the numbers allowed, checked by :func:`check_bounds` and by the option.
    """

    help: str | None = None
    metavar: str | None = None
    panel: str | None = None
    flags: tuple[str, ...] = ()
    show_default: str | None = None
    bounds: Bounds | None = None


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, help: str | None = None,
            metavar: str | None = None, panel: str | None = None, flags: tuple[str, ...] = (),
            show_default: str | None = None, low: float | None = None, high: float | None = None,
            low_allowed: bool = True) -> Any:
    """A dataclass field carrying its :class:`Setting` (the arguments of the same names;
    ``low``, ``high`` and ``low_allowed`` make its :class:`Bounds`)."""
    bounds = Bounds(low, high, low_allowed) if low is not None or high is not None else None
    record = Setting(help, metavar, panel, tuple(flags), show_default, bounds)
    return field(default=default, default_factory=default_factory, metadata={_KEY: record})


def setting_of(config_field: Field) -> Setting:
    """The :class:`Setting` of a dataclass field (an empty one for a plain field)."""
    return config_field.metadata.get(_KEY) or Setting()


def settings_of(config: Any) -> dict[str, Setting]:
    """Field name to :class:`Setting` of a config dataclass (or instance), in field order."""
    return {f.name: setting_of(f) for f in fields(config)}


def check_bounds(config: Any) -> None:
    """:class:`ConfigError` naming the first field of ``config`` outside its bounds. A
    ``None`` passes where it is the field's default ("resolved later")."""
    for config_field in fields(config):
        bounds = setting_of(config_field).bounds
        value = getattr(config, config_field.name)
        if bounds is None or (value is None and config_field.default is None):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{config_field.name} must be a finite number, not {value!r}")
        if value not in bounds:
            raise ConfigError(f"{config_field.name} must be {bounds.describe()}, not {value:g}")
