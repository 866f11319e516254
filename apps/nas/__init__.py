"""Neural architecture search with NNI, a condensed set as the proxy.

Training candidate architectures on a condensed set instead of the full data ranks
them at a fraction of the cost; this package runs that inside NNI's NAS machinery and
measures how far the ranking can be trusted.

- :class:`SearchSpace` / :class:`ConvNetSpace`: the ConvNet family (depth, width,
  normalisation, activation, pooling) as plain data and as an NNI model space.
- :func:`train_and_validate` / :func:`evaluate_trial`: train one architecture on a
  proxy (a synthetic set, ``random`` real images, or ``full``) and score it on a real
  validation split carved from the training set; the latter is NNI's
  ``FunctionalEvaluator`` function and reports with ``nni.report_*``.
- :func:`distill_proxy`: a DataDAM proxy condensed from the training images outside
  the validation split, each iteration's network drawn from the space.
- :func:`search`: NNI's Random, RegularizedEvolution or GridSearch strategy, trials
  in-process by default.
- :class:`Task` / :func:`make_evaluator` / :class:`Experiment`: the same evaluator in an
  NNI experiment of your own, over any ``ModelSpace`` (docs/nas.md, "Use it in your own
  NNI experiment").
- :func:`study`: Spearman and Kendall rank correlation of each proxy with full-data
  training, the full-data accuracy of each proxy's pick, top-k overlap and time.

>>> from datadam.apps import nas                                          # doctest: +SKIP
>>> result = nas.search("mnist", "mnist_ipc10.safetensors", "out/search",
...                     strategy="evolution", trials=30)                   # doctest: +SKIP
>>> result.best["key"], result.best["accuracy"]                            # doctest: +SKIP
>>> report = nas.study("mnist", ["mnist_ipc10.safetensors", "random"], archs=20,
...                    cache="out/full_data_cache.json")                   # doctest: +SKIP
>>> report.proxies["random"]["spearman"]                                   # doctest: +SKIP

Names load lazily: importing the package does not import NNI (the ``nas`` extra);
:class:`ConvNetSpace`, :func:`search` and :func:`study` do. It does tell NNI to use no
deep-learning framework (``NNI_FRAMEWORK=none``, unless set already): nni 3.0 otherwise
imports pytorch_lightning with its NAS modules and fails without it. So a script may
``import nni`` before or after this package, as long as the package comes before
``nni.nas.nn`` and ``nni.nas.evaluator`` (or ``NNI_FRAMEWORK=none`` is in the environment).
"""

from __future__ import annotations

import os
import sys
import warnings

from datadam.lazy import lazy_exports


def _no_framework() -> None:
    """Make NNI use no framework, whether or not ``nni`` itself is imported already.

    nni 3.0 reads ``NNI_FRAMEWORK`` once, when ``import nni`` runs, and only its NAS
    modules (``nni.nas.nn``, ``nni.nas.evaluator``...) act on it; a script that imported
    ``nni`` first gets the setting through ``nni.set_default_framework`` as long as none
    of those modules is loaded. The environment variable also reaches NNI's trial
    subprocesses, which import nni before anything else.
    """
    if "NNI_FRAMEWORK" in os.environ:
        return  # the user's choice
    os.environ["NNI_FRAMEWORK"] = "none"
    framework = sys.modules.get("nni.common.framework")
    nas_loaded = any(name in sys.modules for name in
                     ("nni.nas.nn", "nni.nas.evaluator", "nni.nas.space", "nni.nas.hub", "nni.nas.oneshot"))
    if framework is not None and not nas_loaded:
        framework.set_default_framework("none")


_no_framework()
# nni 3.0 warns once per torch class it does not know (newer torch added some) whenever a
# LayerChoice or a ModelSpace is built: noise, not a problem of the user's space.
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)

_EXPORTS = {
    "SearchSpace": "architecture", "arch_key": "architecture", "build_network": "architecture",
    "ConvNetSpace": "space", "space_size": "space",
    "Proxy": "proxy", "make_proxy": "proxy", "distill_proxy": "proxy",
    "distill_family": "architecture", "split_validation": "proxy",
    "Task": "evaluator", "train_and_validate": "evaluator", "evaluate_trial": "evaluator",
    "make_evaluator": "evaluator", "PROXY_TRAIN": "evaluator", "FULL_TRAIN": "evaluator",
    "PROXY_BUDGET": "budgets", "FULL_BUDGET": "budgets",
    "save_data": "taskdata", "load_data": "taskdata",
    "Experiment": "experiment", "experiment_config": "experiment", "TrialsFailedError": "experiment",
    "search": "architecture_search", "SearchResult": "architecture_search",
    "make_strategy": "architecture_search", "STRATEGIES": "architecture_search",
    "study": "rank_study", "StudyResult": "rank_study", "sample_architectures": "rank_study",
    "rank_quality": "ranking", "FullDataCache": "full_data_cache",
    "markdown_table": "study_report", "plot_scatter": "study_report",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
