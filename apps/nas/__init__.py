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
:class:`ConvNetSpace`, :func:`search` and :func:`study` do.
"""

from __future__ import annotations

from datadam.lazy import lazy_exports

_EXPORTS = {
    "SearchSpace": "architecture", "arch_key": "architecture", "build_network": "architecture",
    "ConvNetSpace": "space", "space_size": "space",
    "Proxy": "proxy", "make_proxy": "proxy", "distill_proxy": "proxy",
    "distill_family": "architecture", "split_validation": "proxy",
    "Task": "evaluator", "train_and_validate": "evaluator", "evaluate_trial": "evaluator",
    "make_evaluator": "evaluator", "PROXY_TRAIN": "evaluator", "FULL_TRAIN": "evaluator",
    "search": "search", "SearchResult": "search", "make_strategy": "search", "STRATEGIES": "search",
    "study": "study", "StudyResult": "study", "rank_quality": "study", "FullDataCache": "study",
    "sample_architectures": "study", "markdown_table": "study", "plot_scatter": "study",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
