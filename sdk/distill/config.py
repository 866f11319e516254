"""Every setting of a distillation run, with the published defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from datadam.errors import ConfigError
from datadam.records import migrate_settings
from datadam.settings import METHOD_PANEL, check_bounds, setting


def default_model(image_size: tuple[int, int]) -> str:
    """ConvNet-3 up to 32 px, then one block more per doubling: 64 -> 5, 112 -> 6, 224 -> 7."""
    side = min(image_size)
    return "convnet3" if side <= 32 else f"convnet{max(3, round(math.log2(side)) - 1)}"


def default_lr_img(ipc: int) -> float:
    """The published image learning rate: 1.0 up to IPC 50, then 10.0."""
    return 1.0 if ipc <= 50 else 10.0


def default_task_balance(image_size: tuple[int, int]) -> float:
    """The published lambda of the last-layer term: 0.01 up to 64 px, then 0.02."""
    return 0.01 if min(image_size) <= 64 else 0.02


#: The methods datadam ships (others may be added with ``register_method``).
METHODS = ("datadam", "dm", "random", "herding", "kcenter")
REAL_PRECISIONS = ("fp32", "bf16")
BN_STATISTICS = ("all", "class")


def model_names(model: str) -> list[str]:
    """The registry names of a ``model`` setting: one name, or several joined by commas."""
    return [name.strip() for name in model.split(",") if name.strip()]


def draw_network(model: str, options: dict[str, Any], choices: dict[str, list[Any]],
                 seed: int) -> tuple[str, dict[str, Any]]:
    """The model name and constructor options of the network drawn with ``seed``.

    With one name and no ``choices`` this is ``(model, options)`` whatever the seed.
    Otherwise the name is drawn uniformly from ``model``'s names and each option in
    ``choices`` uniformly from its values (it overrides ``options``), all from ``seed``.
    """
    names = model_names(model)
    if len(names) == 1 and not choices:
        return names[0], dict(options)
    import torch  # here, not at the top: the CLI reads this module's defaults without torch

    g = torch.Generator().manual_seed(seed)

    def pick(values: list[Any]) -> Any:
        return values[int(torch.randint(len(values), (1,), generator=g))]

    name = pick(names)
    drawn = dict(options)
    for key in sorted(choices):
        drawn[key] = pick(list(choices[key]))
    return name, drawn


def _is_value_list(values: Any) -> bool:
    """Whether ``values`` is a model choice's list of candidates (a string is one value)."""
    return not isinstance(values, (str, bytes, Mapping)) and hasattr(values, "__len__")


def _value_list(key: str, values: Any) -> list[Any]:
    """A model choice's candidates as the list they are drawn from. A set comes sorted:
    its own order changes with Python's hash seed, so the same seed would draw other networks."""
    if not _is_value_list(values) or not len(values):
        raise ConfigError(f"model choice {key!r} needs a non-empty list of values, not {values!r}")
    if isinstance(values, (set, frozenset)):
        try:
            return sorted(values)
        except TypeError:  # values of several types: any fixed order will do
            return sorted(values, key=repr)
    return list(values)


def fold_fixed_choices(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (a config's dict) with every model choice of one value moved into the
    model options: such a choice is a fixed option. The architecture is drawn from its own
    stream (:meth:`MatchingMethod.network`), so both draw the very same networks and make the
    very same set; this is the form configs keep and the one settings are compared in."""
    choices = settings.get("model_choices") or {}
    return with_fixed_options(settings, {key: values[0] for key, values in choices.items()
                                         if _is_value_list(values) and len(values) == 1})


def with_fixed_options(settings: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (a config's dict) with the options ``fixed`` among its model options and
    out of its model choices."""
    if not fixed:
        return dict(settings)
    choices = settings.get("model_choices") or {}
    return {**settings, "model_options": {**(settings.get("model_options") or {}), **fixed},
            "model_choices": {key: values for key, values in choices.items() if key not in fixed}}


@dataclass(frozen=True)
class DistillConfig:
    """Settings of one distillation. ``None`` means "the published default
    for this dataset", resolved by :meth:`resolve`.

    Attributes:
        method: ``datadam``, ``dm``, ``random``, ``herding`` or ``kcenter``.
        ipc: synthetic images per class.
        iterations: image updates (official code 20,000; the paper's table 8,000).
        batch_real: real images per class per iteration (official 64).
        lr_img: SGD lr of the images (None: 1.0 for ipc <= 50, else 10.0).
        momentum: SGD momentum of the images.
        attention_power: p of the spatial attention ``sum_c |f|^p`` (paper 4, official code 1).
        task_balance: lambda of the last-layer term (None: 0.01 up to 64 px, else 0.02).
        sam_weight: weight of the attention term (1 for DataDAM, 0 for DM and the ablation).
        loss_scale: the overall factor of the loss (100 in the official code).
        model: network registry name (None: :func:`default_model` of the image size), or
            several joined by commas (``convnet1,convnet2,convnet3``): each sampled
            network is then one of them, drawn at random.
        model_options: constructor options of the network (BatchNorm by default).
        model_choices: constructor options drawn at random for each sampled network,
            option name to its candidate values (``{"net_norm": ["batchnorm",
            "instancenorm"]}``); they override ``model_options``. Any collection will do and
            is kept as a list (a set sorted, so that one seed draws one network); a
            choice of one value is kept as the option it is. Empty: every network is the
            same architecture (the published method).
        init: ``real`` (random real images of the class) or ``noise``.
        augmentation: DSA preset or families (None: from the data,
            :func:`datadam.augment.augmentation_rule`: ``digits``, with no flips, for
            orientation-sensitive data such as MNIST, else ``natural``).
        net_steps: handout variant: SGD steps on the sampled network between image
            updates (0: the published method, the network is never trained).
        net_lr: lr of those steps.
        net_batch: real minibatch of those steps.
        net_keep: keep a sampled network for this many iterations (1: fresh every time).
        real_precision: ``fp32``, or ``bf16`` to forward the real images under bfloat16
            autocast (their features only enter as class means, kept in float32); the
            synthetic images and their gradient stay float32. Faster on recent GPUs and
            some CPUs; on CPUs whose bfloat16 elementwise kernels are slow, slower.
        bn_statistics: the batch statistics of the sampled networks' BatchNorm layers:
            ``all`` over every class's images at once (the official DataDAM code, and
            DM's for BatchNorm networks: one forward of all classes), or ``class`` per
            class (as K separate forwards, so that every class is normalised on its own).
        factor: multi-formation (IDC): each stored image holds ``factor x factor`` tiles,
            each upsampled to a training image, so the set trains on ``ipc * factor**2``
            images per class of ``1/factor`` the resolution, for the pixels of ``ipc``.
            1: the published method. The image size must be divisible by it.
        seed: fixes the result.
    """

    # Each field's metadata (datadam.settings.setting) is its option of `datadam distill`:
    # help, bounds (checked here and by the option), placeholder, panel. A rate of 0 would
    # leave the images as they start; a negative one is refused by torch.optim with a
    # traceback, and a negative power turns small activations into infinities.
    method: str = setting("datadam", flags=("--method", "-m"), metavar="NAME",
                          help=f"Condensation method: {', '.join(METHODS)}.")
    ipc: int = setting(10, low=1, metavar="N", help="Synthetic images per class.")
    iterations: int = setting(20_000, low=0, flags=("--iterations", "-n"), metavar="N",
                              help="Image updates (official code: 20,000).")
    batch_real: int = setting(64, low=1, metavar="N", panel=METHOD_PANEL,
                              help="Real images per class per iteration (at most the smallest class).")
    lr_img: float | None = setting(None, low=0.0, low_allowed=False, metavar="LR", panel=METHOD_PANEL,
                                   show_default="1.0, or 10.0 above IPC 50", help="Image learning rate.")
    momentum: float = setting(0.5, low=0.0, high=1.0, metavar="M", panel=METHOD_PANEL,
                              help="Image SGD momentum.")
    attention_power: float = setting(1.0, low=0.0, low_allowed=False, flags=("--power",), metavar="P",
                                     panel=METHOD_PANEL,
                                     help="Attention power p (the paper: 4, the official code: 1).")
    task_balance: float | None = setting(None, low=0.0, metavar="LAMBDA", panel=METHOD_PANEL,
                                         show_default="0.01, 0.02 above 64 px",
                                         help="Lambda of the last-layer term.")
    sam_weight: float = setting(1.0, low=0.0, metavar="W", panel=METHOD_PANEL,
                                help="Weight of the attention term (0 = ablation without SAM).")
    loss_scale: float = setting(100.0, low=0.0, low_allowed=False)
    model: str | None = setting(None, metavar="NAMES", panel=METHOD_PANEL,
                                show_default="convnet3, deeper for large images",
                                help="Distillation network, or several joined by commas to draw each "
                                     "sampled network from.")
    model_options: dict[str, Any] = setting(
        default_factory=lambda: {"net_norm": "batchnorm", "net_pooling": "avgpooling"},
        flags=("--model-option",), metavar="OPTION=VALUE", panel=METHOD_PANEL,
        help="Constructor option of the distillation network, e.g. net_norm=instancenorm (repeatable).")
    model_choices: dict[str, list[Any]] = setting(
        default_factory=dict, flags=("--model-choice",), metavar="OPTION=VALUES", panel=METHOD_PANEL,
        show_default="the same network every time",
        help="Draw a network option per sampled network, e.g. net_norm=batchnorm,instancenorm (repeatable).")
    init: str = setting("real", metavar="INIT", panel=METHOD_PANEL, help="Initialisation: real or noise.")
    augmentation: str | None = setting(None, metavar="NAME", panel=METHOD_PANEL,
                                       show_default="digits for mnist, natural otherwise",
                                       help="DSA preset (digits, natural, none) or families joined by _.")
    net_steps: int = setting(0, low=0, metavar="N", panel=METHOD_PANEL,
                             help="Handout variant: train the sampled network N steps between image "
                                  "updates (0 = the published method).")
    net_lr: float = setting(0.01, low=0.0, low_allowed=False, metavar="LR", panel=METHOD_PANEL,
                            help="Learning rate of those steps.")
    net_batch: int = setting(256, low=1)
    net_keep: int = setting(1, low=1, metavar="N", panel=METHOD_PANEL,
                            help="Keep a sampled network for N iterations.")
    real_precision: str = setting("fp32", metavar="PRECISION", panel=METHOD_PANEL,
                                  help="Precision of the real images' forward: fp32, or bf16 (faster on "
                                       "recent GPUs and on some CPUs, slower on others: measure; the "
                                       "synthetic images and their gradient stay fp32).")
    bn_statistics: str = setting("all", metavar="WHICH", panel=METHOD_PANEL,
                                 help="BatchNorm statistics of the sampled networks: all (every class's "
                                      "images at once, as the official code) or class (each class on "
                                      "its own).")
    factor: int = setting(1, low=1, metavar="F", panel=METHOD_PANEL,
                          help="Multi-formation (IDC): each stored image holds F x F tiles, each a "
                               "training image (1 = the published method).")
    seed: int = setting(0, low=0, metavar="N", help="Seed: the same seed gives the same result.")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.init not in ("real", "noise"):
            raise ConfigError(f"init must be 'real' or 'noise', not {self.init!r}")
        if self.real_precision not in REAL_PRECISIONS:
            raise ConfigError(f"real_precision must be {' or '.join(REAL_PRECISIONS)}, "
                              f"not {self.real_precision!r}")
        if self.bn_statistics not in BN_STATISTICS:
            raise ConfigError(f"bn_statistics must be {' or '.join(BN_STATISTICS)}, "
                              f"not {self.bn_statistics!r}")
        if self.model is not None and not model_names(self.model):
            raise ConfigError("model needs at least one name")
        choices = {key: _value_list(key, values) for key, values in self.model_choices.items()}
        folded = fold_fixed_choices({"model_options": self.model_options, "model_choices": choices})
        object.__setattr__(self, "model_options", folded["model_options"])
        object.__setattr__(self, "model_choices", folded["model_choices"])

    def resolve(self, dataset: Any, image_size: tuple[int, int] | None = None) -> DistillConfig:
        """A copy with every ``None`` replaced by the published default for the data.

        Args:
            dataset: the training :class:`~datadam.data.ImageDataset`: its image size sets
                the model, lambda and the multi-formation check, its images the
                augmentation (:func:`datadam.augment.augmentation_rule`: no flips for
                orientation-sensitive data or small grey glyphs). A registry name still
                works, with ``image_size``, and then only the name decides the augmentation.
            image_size: ``(H, W)``; by default the dataset's.
        """
        from datadam.augment import preset_for

        if image_size is None:
            if isinstance(dataset, str):
                raise ConfigError("resolve(name, image_size) needs the image size with a dataset name")
            image_size = dataset.image_size
        changes: dict[str, Any] = {}
        if self.lr_img is None:
            changes["lr_img"] = default_lr_img(self.ipc)
        if self.task_balance is None:
            changes["task_balance"] = default_task_balance(image_size)
        if self.model is None:
            changes["model"] = default_model(image_size)
        if self.augmentation is None:
            changes["augmentation"] = preset_for(dataset)
        if any(size % self.factor for size in image_size):
            raise ConfigError(f"factor {self.factor} does not divide the image size "
                              f"{image_size[0]}x{image_size[1]}")
        resolved = self.replace(**changes) if changes else self
        resolved.validate()
        return resolved

    def validate(self) -> None:
        """Fail early, before any data is touched, on names that do not exist."""
        from datadam import models
        from datadam.augment import DSA

        if self.augmentation is not None:
            DSA.from_name(self.augmentation)
        if self.model is not None:
            for name in model_names(self.model):
                models.get_factory(name)

    @property
    def images_per_class(self) -> int:
        """Training images per class of the result: ``ipc * factor**2``."""
        return self.ipc * self.factor ** 2

    def draw_network(self, seed: int) -> tuple[str, dict[str, Any]]:
        """The model name and constructor options of the network sampled with ``seed``
        (:func:`draw_network` of this config's model, options and choices)."""
        if self.model is None:
            raise ConfigError("resolve() the config before drawing networks")
        return draw_network(self.model, self.model_options, self.model_choices, seed)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> DistillConfig:
        """The settings saved in a file's metadata (``metadata["config"]``), of any version
        (:func:`datadam.records.migrate_settings` brings an earlier one to today's form)."""
        settings = migrate_settings(saved, saved.get("method"))
        return cls(**{k: v for k, v in settings.items() if k in cls.__dataclass_fields__})

    def replace(self, **changes: Any) -> DistillConfig:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown distillation option(s): {', '.join(sorted(unknown))}")
        return DistillConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# lambda's published values, low and high resolution. Which one is a set's default depends
# on its image size, which an evaluation does not record, so only others are named.
_PUBLISHED_TASK_BALANCES = (default_task_balance((64, 64)), default_task_balance((224, 224)))


def describe_recipe(method: str | None, images_per_class: int, config: Mapping[str, Any] | None = None, *,
                    iterations: int | None = None, seeds: int | Sequence[int] | None = None) -> str:
    """What made a set, in the words every report uses, e.g.
    ``"datadam p = 4, IPC 1 x factor 2 = 4 per class, 3,000 iterations, from noise, seed 0"``.

    Args:
        method: the set's method (``datadam``, ``dm``, ``random``...).
        images_per_class: its training images per class (``SyntheticSet.images_per_class``:
            ``ipc * factor**2`` for a multi-formation set).
        config: its saved distillation settings (``metadata["config"]``, of any version:
            :func:`datadam.records.migrate_settings` reads it); besides the
            attention power and the multi-formation factor, every setting of DataDAM or DM
            that differs from the published method is named (the initialisation, the SAM
            weight, lambda, the handout variant, per-class BatchNorm statistics...), so
            that two recipes read differently wherever they differ. Precision and the
            data-dependent defaults (model, augmentation) are not named.
        iterations: image updates done (named for DataDAM and DM).
        seeds: the distillation seed, or the seeds of replicate distillations.
    """
    settings = migrate_settings(dict(config or {}), method)
    from datadam.distill.multiformation import describe_ipc

    words = [_describe_method(method, settings), describe_ipc(images_per_class, settings)]
    if method in ("datadam", "dm"):
        if iterations is not None:
            words.append(f"{iterations:,} iterations")
        words += _departures(settings)
    if isinstance(seeds, int):
        words.append(f"seed {seeds}")
    elif seeds:
        words.append(f"seeds {', '.join(map(str, seeds))}")
    return ", ".join(words)


def _describe_method(method: str | None, settings: Mapping[str, Any]) -> str:
    if method != "datadam":
        return str(method or "a set of unknown method")
    sam = settings.get("sam_weight", 1.0)
    if sam == 0:
        return "datadam without the SAM term"
    power = f"datadam p = {settings.get('attention_power', DistillConfig.attention_power):g}"
    return power if sam == 1 else f"{power}, SAM weight {sam:g}"


def _departures(settings: Mapping[str, Any]) -> list[str]:
    """The words for each setting of ``settings`` that departs from the published method."""
    default = DistillConfig()

    def differs(key: str) -> bool:
        return key in settings and settings[key] != getattr(default, key)

    words = []
    if differs("init"):
        words.append(f"from {settings['init']}")
    if differs("batch_real"):
        words.append(f"{settings['batch_real']} real images per class")
    ipc = settings.get("ipc", default.ipc)
    lr_img = settings.get("lr_img")
    if lr_img is not None and lr_img != default_lr_img(ipc):
        words.append(f"image lr {lr_img:g}")
    if differs("momentum"):
        words.append(f"momentum {settings['momentum']:g}")
    task_balance = settings.get("task_balance")
    if task_balance is not None and task_balance not in _PUBLISHED_TASK_BALANCES:
        words.append(f"lambda {task_balance:g}")
    if differs("loss_scale"):
        words.append(f"loss scale {settings['loss_scale']:g}")
    if settings.get("net_steps"):
        words.append(f"networks trained {settings['net_steps']} step(s) per update at lr "
                     f"{settings.get('net_lr', default.net_lr):g}")
    if differs("net_keep"):
        words.append(f"each network kept {settings['net_keep']} iterations")
    if settings.get("bn_statistics") == "class":
        words.append("per-class BatchNorm statistics")
    # A choice of one value is a fixed option, and reads like one.
    folded = fold_fixed_choices(settings)
    choices, options = folded.get("model_choices") or {}, folded.get("model_options") or {}
    for key, value in options.items():
        if default.model_options.get(key) != value:
            words.append(f"{key} {value}")
    if len(model_names(settings.get("model") or "")) > 1:
        words.append(f"networks drawn from {settings['model']}")
    for key, values in choices.items():
        words.append(f"{key} drawn from {', '.join(map(str, values))}")
    return words
