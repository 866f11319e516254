"""How far a proxy's ranking of architectures agrees with the full data's."""

from __future__ import annotations

import statistics
from typing import Any

from datadam.apps.nas.proxy import RANDOM
from datadam.errors import ConfigError


def rank_quality(proxy_accuracy: list[float], full_accuracy: list[float], top_k: int = 5) -> dict[str, Any]:
    """How well ``proxy_accuracy`` ranks architectures compared with ``full_accuracy``.

    Returns Spearman's rho and Kendall's tau-b (scipy, ties averaged) with their
    p-values, the index and full-data accuracy of the proxy's best architecture, that
    architecture's rank by full-data accuracy (1 = truly best), the best full-data
    accuracy of all (what a perfect proxy would pick), and how many of the proxy's
    top ``top_k`` are in the full data's top ``top_k``. Ties in picking and top-k
    sets go to the earlier architecture.
    """
    import warnings

    from scipy.stats import kendalltau, spearmanr

    if len(proxy_accuracy) != len(full_accuracy) or len(full_accuracy) < 2:
        raise ConfigError("rank quality needs two equally long lists of at least 2 accuracies")
    k = min(top_k, len(full_accuracy))
    with warnings.catch_warnings():  # a constant list has no ranking: recorded as None below
        warnings.simplefilter("ignore")
        rho, rho_p = spearmanr(proxy_accuracy, full_accuracy)
        tau, tau_p = kendalltau(proxy_accuracy, full_accuracy)

    def order(values: list[float]) -> list[int]:  # best first, stable on ties
        return sorted(range(len(values)), key=lambda i: -values[i])

    by_proxy, by_full = order(proxy_accuracy), order(full_accuracy)
    chosen = by_proxy[0]
    return {
        "spearman": _finite(rho), "spearman_p": _finite(rho_p),
        "kendall": _finite(tau), "kendall_p": _finite(tau_p),
        "chosen_index": chosen, "chosen_full_accuracy": full_accuracy[chosen],
        "chosen_full_rank": 1 + sum(a > full_accuracy[chosen] for a in full_accuracy),
        "best_full_accuracy": max(full_accuracy),
        "top_k": k, "top_k_overlap": len(set(by_proxy[:k]) & set(by_full[:k])),
    }


def _finite(x: float) -> float | None:
    """JSON has no NaN: a constant list has no rank correlation, recorded as null."""
    x = float(x)
    return x if x == x else None


def random_draws_summary(proxies: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """Mean, std (sample), min and max of the random proxies' Spearman and Kendall.

    ``proxies``: a study's quality per proxy (``StudyResult.proxies``). None unless the
    study has at least two random draws (``random``, ``random:K``...) with defined
    correlations: the spread a synthetic proxy's correlation should be read against.
    """
    qs = [q for q in proxies.values() if q["details"].get("kind") == RANDOM
          and q["spearman"] is not None and q["kendall"] is not None]
    if len(qs) < 2:
        return None
    summary: dict[str, float] = {"draws": len(qs)}
    for key in ("spearman", "kendall"):
        values = [q[key] for q in qs]
        summary |= {f"{key}_mean": statistics.fmean(values), f"{key}_std": statistics.stdev(values),
                    f"{key}_min": min(values), f"{key}_max": max(values)}
    return summary
