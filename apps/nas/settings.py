"""The settings of NAS runs, without torch: each one's default, bounds and help written
once, in its field (:func:`datadam.settings.setting`).

The library takes its defaults from here (:class:`~datadam.apps.nas.architecture.SearchSpace`
is :class:`SpaceSettings` with its checks, :func:`~datadam.apps.nas.architecture_search.search`,
:func:`~datadam.apps.nas.rank_study.study`, :func:`~datadam.apps.nas.proxy.distill_proxy`
and :class:`~datadam.apps.nas.evaluator.Task` their arguments' defaults), and ``datadam nas``
its options, when the command line starts and before torch or NNI is imported. A field
whose default is ``None`` is resolved later; its ``show_default`` says how.
"""

from __future__ import annotations

from dataclasses import dataclass

from datadam.apps.nas.budgets import FULL_BUDGET, PROXY_BUDGET
from datadam.settings import check_bounds, setting

STRATEGIES = ("random", "evolution", "grid")
ENGINES = ("sequential", "ts")
#: What each iteration's network of :func:`~datadam.apps.nas.proxy.distill_proxy` is: the
#: published method's ConvNet-3 (``convnet``), or drawn from the search space (``space``).
#: On MNIST the space-drawn proxy ranked 96 architectures worse (Spearman 0.864 against
#: 0.915, docs/nas.md), so it is not the default.
PROXY_NETWORKS = ("convnet", "space")
#: Trials of a search unless its strategy is grid (which tries the whole space).
TRIALS = 30
#: Images per class of the ``random`` proxy when no synthetic proxy says how many.
RANDOM_IPC = 10


@dataclass(frozen=True)
class SpaceSettings:
    """The choices of the ConvNet search space, field by field (the fields of
    :class:`~datadam.apps.nas.architecture.SearchSpace`, which checks them; on the command
    line each is a comma-separated list)."""

    depth: tuple[int, ...] = setting((1, 2, 3), flags=("--depths",), metavar="DEPTHS",
                                     help="Comma-separated ConvNet depths to search.")
    width: tuple[int, ...] = setting((8, 16, 32), flags=("--widths",), metavar="WIDTHS",
                                     help="Comma-separated ConvNet widths (channels) to search.")
    norm: tuple[str, ...] = setting(("batchnorm", "instancenorm", "none"), flags=("--norms",),
                                    metavar="NAMES",
                                    help="Normalisations to search: batchnorm, instancenorm, groupnorm, "
                                         "layernorm, none.")
    activation: tuple[str, ...] = setting(("relu", "gelu", "sigmoid"), flags=("--activations",),
                                          metavar="NAMES",
                                          help="Activations to search: relu, leakyrelu, sigmoid, gelu.")
    pooling: tuple[str, ...] = setting(("avgpooling", "maxpooling"), flags=("--poolings",), metavar="NAMES",
                                       help="Poolings to search: avgpooling, maxpooling, none.")


@dataclass(frozen=True)
class TrialSettings:
    """How every network of a search or a study is trained and scored, beside its
    architecture and budget.

    Attributes:
        validation: real training images held out to score every network.
        ipc: images per class of the ``random`` proxy; ``None``: as many as the first
            synthetic proxy, else :data:`RANDOM_IPC`.
        lr: SGD learning rate of every network (the budgets', :mod:`~datadam.apps.nas.budgets`).
    """

    validation: int = setting(5000, low=1, metavar="N",
                              help="Real training images held out to score every network.")
    ipc: int | None = setting(None, low=1, metavar="N", help="Images per class of the random proxy.",
                              show_default=f"as many as the synthetic proxy, else {RANDOM_IPC}")
    lr: float = setting(PROXY_BUDGET["lr"], low=0.0, low_allowed=False, metavar="LR",
                        help="SGD learning rate (cosine annealing to 0).")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class SearchSettings:
    """How a search runs (the arguments of :func:`~datadam.apps.nas.architecture_search.search`
    of the same names).

    Attributes:
        strategy: NNI strategy, one of :data:`STRATEGIES`.
        trials: architectures to try; ``None``: :data:`TRIALS`, the whole space with ``grid``.
        population: regularized evolution's population.
        sample_size: regularized evolution's tournament size.
        engine: one of :data:`ENGINES`.
        port: of NNI's web portal (``ts`` engine).
        epochs: training epochs of every candidate; ``None``: the budget's
            (``PROXY_BUDGET``, ``FULL_BUDGET`` for the full data).
        batch: training minibatch of every candidate; ``None``: the budget's.
        reports: validation accuracies per trial reported to NNI.
    """

    strategy: str = setting("evolution", flags=("--strategy", "-s"), metavar="NAME",
                            help="NNI strategy: random, evolution (regularized evolution) or grid.")
    trials: int | None = setting(None, low=1, metavar="N", show_default=str(TRIALS),
                                 help="Architectures to try (grid: the whole space).")
    population: int = setting(10, low=2, metavar="N", help="Evolution: population size.")
    sample_size: int = setting(3, low=1, metavar="N", help="Evolution: tournament size.")
    engine: str = setting("sequential", metavar="ENGINE",
                          help="sequential (trials in this process) or ts (NNI manager and web portal "
                               "on 127.0.0.1:PORT, trials in subprocesses).")
    port: int = setting(8080, low=1, high=65536, metavar="PORT",
                        help="Port of NNI's web portal (--engine ts).")
    epochs: int | None = setting(None, low=1, metavar="N", help="Training epochs of every candidate.",
                                 show_default=f"{PROXY_BUDGET['epochs']} on a small proxy, "
                                              f"{FULL_BUDGET['epochs']} on the full data")
    batch: int | None = setting(None, low=1, metavar="N", help="Training minibatch of every candidate.",
                                show_default=f"{PROXY_BUDGET['batch']} on a small proxy, "
                                             f"{FULL_BUDGET['batch']} on the full data")
    reports: int = setting(4, low=1, metavar="N",
                           help="Validation accuracies per trial reported to NNI (the last is final).")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class StudySettings:
    """How a study runs: the arguments of :func:`~datadam.apps.nas.rank_study.study` of the
    same names, and the budgets' epochs and minibatch (``PROXY_BUDGET``, ``FULL_BUDGET``)."""

    archs: int = setting(20, low=2, flags=("--archs", "-k"), metavar="N",
                         help="Architectures sampled from the space.")
    top_k: int = setting(5, low=1, metavar="K", help="Size of the top sets compared.")
    epochs: int = setting(PROXY_BUDGET["epochs"], low=1, metavar="N",
                          help="Training epochs of every network on a small proxy.")
    full_epochs: int = setting(FULL_BUDGET["epochs"], low=1, metavar="N",
                               help="Training epochs of every network on the full data.")
    batch: int = setting(PROXY_BUDGET["batch"], low=1, metavar="N",
                         help="Training minibatch of every network on a small proxy.")
    full_batch: int = setting(FULL_BUDGET["batch"], low=1, metavar="N",
                              help="Training minibatch of every network on the full data.")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class ProxySettings:
    """How a proxy is condensed (the arguments of :func:`~datadam.apps.nas.proxy.distill_proxy`
    of the same names)."""

    ipc: int = setting(10, low=1, metavar="N", help="Synthetic images per class.")
    iterations: int = setting(1000, low=0, flags=("--iterations", "-n"), metavar="N",
                              help="Image updates (a proxy needs a ranking, not top accuracy: the "
                                   "studies in docs/nas.md used 1,000).")
    networks: str = setting(PROXY_NETWORKS[0], metavar="WHICH",
                            help="Each iteration's random network: 'convnet' (the published "
                                 "method's ConvNet-3) or 'space' (drawn from the search space "
                                 "below; it ranked MNIST architectures worse, see docs/nas.md).")

    def __post_init__(self) -> None:
        check_bounds(self)
