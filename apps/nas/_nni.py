"""Importing NNI: the environment it needs and a one-line error when it is missing."""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from datadam.errors import ConfigError

INSTALL_HINT = "the NAS extra is not installed: pip install 'datadam[nas]'"


def import_nni() -> ModuleType:
    """Import and return :mod:`nni`, or raise :class:`ConfigError` naming the extra to install.

    nni 3.0 imports pytorch_lightning unless ``NNI_FRAMEWORK`` is set before its first
    import; datadam trains with plain PyTorch, so it asks for no framework.
    """
    os.environ.setdefault("NNI_FRAMEWORK", "none")
    # nni 3.0 warns once per torch class it does not know (torch 2.14 added some); harmless noise.
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    try:
        import nni
        import nni.nas.nn.pytorch  # noqa: F401 - fails early when a dependency of the NAS part is missing
    except ImportError as e:
        raise ConfigError(f"{INSTALL_HINT} ({e})") from None
    return nni
