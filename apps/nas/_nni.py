"""Importing NNI: a one-line error when it is missing."""

from __future__ import annotations

from types import ModuleType

from datadam.errors import ConfigError

INSTALL_HINT = "the NAS extra is not installed: pip install 'datadam[nas]'"


def import_nni() -> ModuleType:
    """Import and return :mod:`nni`, or raise :class:`ConfigError` naming the extra to install.

    The package's ``__init__``, which runs before this module, has told NNI to use no
    deep-learning framework (datadam trains with plain PyTorch).
    """
    try:
        import nni
        import nni.nas.nn.pytorch  # noqa: F401 - fails early when a dependency of the NAS part is missing
    except ImportError as e:
        raise ConfigError(f"{INSTALL_HINT} ({e})") from None
    return nni
